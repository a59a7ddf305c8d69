//! The faults of `--faults`: what the operator asks for ([`FaultSpec`]), which canister gets
//! which ([`assign`]), and the [`Injector`] that plays them out alongside a rollout.

use std::collections::BTreeMap;
use std::rc::Rc;

use candid::{encode_args, CandidType, Principal};
use fleet_api::endpoint::{CallKind, Endpoint};
use fleet_api::manager::method::UpdateSettings;
use fleet_api::manager::SettingsUpdate;
use fleet_api::rollout::method::PipelineLog;
use fleet_api::rollout::{
    Hold, LogPageArg, Phase, PipelineLogKind, PipelineLogPage, RolloutStatus, MAX_ROLLOUT_PAGE,
};
use ic_sim::{IcSim, RejectCode};
use serde::{Deserialize, Serialize};

use super::report::{HoldCounts, ManagerLowReport, ManagerUpgradeReport};
use super::SECOND_NS;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};

/// Shares and duration `--faults all` and a kind named without a value take.
const DEFAULT_TRAP: f64 = 0.03;
const DEFAULT_HEALTH: f64 = 0.02;
const DEFAULT_BUSY: f64 = 0.02;
const DEFAULT_FROZEN: f64 = 0.02;
const DEFAULT_MANAGER_LOW_SECS: u64 = 120;
/// How long a busy canister's stop hangs, counted from the manager's first start of its
/// pipeline: past the default stop deadline (60 s), so the first attempt is deferred, and
/// before the deadline of the retry that follows the default 60 s backoff, so that retry
/// upgrades it.
pub const BUSY_SECS: u64 = 150;
/// How long after the manager first reaches a frozen canister its owner tops it up: the
/// default retries after 60 s and 180 s still find it frozen, the one after 420 s upgrades it.
pub const FROZEN_SECS: u64 = 240;
/// Simulated seconds an operator waits for a drain to get ready before giving the manager
/// upgrade up.
const MAX_DRAIN_SECS: u64 = 600;

/// What `--faults` asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultSpec {
    /// Share of the fleet whose target release traps in `post_upgrade`.
    pub trap: f64,
    /// Share of the fleet on which the target release fails the health check.
    pub health: f64,
    /// Share of the fleet whose stop hangs for [`BUSY_SECS`].
    pub busy: f64,
    /// Share of the fleet without cycles until [`FROZEN_SECS`] after the manager reaches it.
    pub frozen: f64,
    /// Simulated seconds the manager is out of cycles (0: not at all).
    pub manager_low_secs: u64,
    pub manager_upgrade: bool,
}

/// A share of the fleet: a fraction from 0 to 1 (which NaN is not).
fn parse_share(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|x| (0.0..=1.0).contains(x))
}

impl FaultSpec {
    /// `--faults all`.
    fn all() -> Self {
        FaultSpec {
            trap: DEFAULT_TRAP,
            health: DEFAULT_HEALTH,
            busy: DEFAULT_BUSY,
            frozen: DEFAULT_FROZEN,
            manager_low_secs: DEFAULT_MANAGER_LOW_SECS,
            manager_upgrade: true,
        }
    }

    /// Parses the items of `--faults` in order; every mistake is a usage error naming the item.
    pub fn parse(items: &[String]) -> Result<Self, CliError> {
        let mut spec = FaultSpec::default();
        for item in items {
            let item = item.trim();
            let bad = |why: String| CliError::Usage(format!("--faults `{item}`: {why}"));
            let not_a_share =
                |v: &str| bad(format!("{v} is not a share: give a fraction from 0 to 1"));
            if item.is_empty() {
                return Err(bad("an empty item (a stray comma?)".into()));
            }
            let (kind, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let share = |default: f64| -> Result<f64, CliError> {
                value.map_or(Ok(default), |v| {
                    parse_share(v).ok_or_else(|| not_a_share(v))
                })
            };
            match kind {
                "all" if value.is_none() => spec = FaultSpec::all(),
                "trap" => spec.trap = share(DEFAULT_TRAP)?,
                "health" => spec.health = share(DEFAULT_HEALTH)?,
                "busy" => spec.busy = share(DEFAULT_BUSY)?,
                "frozen" => spec.frozen = share(DEFAULT_FROZEN)?,
                "manager-low" => {
                    spec.manager_low_secs = match value {
                        None => DEFAULT_MANAGER_LOW_SECS,
                        Some(v) => match v.parse::<u64>() {
                            Ok(s) if s <= 86_400 => s,
                            _ => {
                                return Err(bad(format!(
                                    "{v} is not a duration: give whole seconds up to 86400"
                                )))
                            }
                        },
                    }
                }
                "manager-upgrade" if value.is_none() => spec.manager_upgrade = true,
                "all" | "manager-upgrade" => return Err(bad(format!("{kind} takes no value"))),
                // The first spelling: `--faults F`, a share failing the health check.
                _ if value.is_none() && kind.parse::<f64>().is_ok() => {
                    spec.health = parse_share(kind).ok_or_else(|| not_a_share(kind))?
                }
                _ => {
                    return Err(bad(format!(
                        "unknown fault kind `{kind}`: give all, trap, health, busy, frozen, \
                         manager-low or manager-upgrade"
                    )))
                }
            }
        }
        Ok(spec)
    }

    /// Faults of the release itself: the manager must fail or roll back those canisters.
    pub fn release(&self) -> bool {
        self.trap > 0.0 || self.health > 0.0
    }

    fn per_canister(&self) -> [(FaultClass, f64); 4] {
        [
            (FaultClass::Trap, self.trap),
            (FaultClass::Health, self.health),
            (FaultClass::Busy, self.busy),
            (FaultClass::Frozen, self.frozen),
        ]
    }
}

/// The fault one canister gets; at most one each, so every outcome has one cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultClass {
    Trap,
    Health,
    Busy,
    Frozen,
    None,
}

impl FaultClass {
    pub fn is_release(self) -> bool {
        matches!(self, FaultClass::Trap | FaultClass::Health)
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            FaultClass::Trap => "post_upgrade traps",
            FaultClass::Health => "health check fails",
            FaultClass::Busy => "stop hangs (busy)",
            FaultClass::Frozen => "frozen (no cycles)",
            FaultClass::None => "no fault",
        }
    }
}

/// Which canister gets which fault. Each kind asked for gets `round(n * share)` canisters (at
/// least one, so that a small rehearsal still shows it); the faulty canisters are spread
/// evenly over the fleet (and so over its stages, which follow id order), and the kinds are
/// interleaved among them so that each kind is spread evenly too.
pub fn assign(n: u32, spec: &FaultSpec) -> Result<Vec<FaultClass>, CliError> {
    let wanted: Vec<(FaultClass, u32)> = spec
        .per_canister()
        .into_iter()
        .filter(|(_, share)| *share > 0.0)
        .map(|(class, share)| (class, ((f64::from(n) * share).round() as u32).max(1)))
        .collect();
    let total: u32 = wanted.iter().map(|w| w.1).sum();
    if total > n {
        return Err(CliError::Usage(format!(
            "--faults: {total} canisters would get a fault (one per canister, at least one per \
             kind), but the fleet has {n}: give more --users or smaller shares"
        )));
    }
    let mut slots: Vec<(f64, FaultClass)> = wanted
        .iter()
        .flat_map(|&(class, k)| (0..k).map(move |j| ((f64::from(j) + 0.5) / f64::from(k), class)))
        .collect();
    slots.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut out = vec![FaultClass::None; n as usize];
    for (j, (_, class)) in slots.into_iter().enumerate() {
        // Steps of n / total >= 1: distinct positions, all below n.
        let at = ((j as f64 + 0.5) * f64::from(n) / f64::from(total)).floor() as usize;
        out[at] = class;
    }
    Ok(out)
}

/// The user canister's fault switch (`fault_switch` builds), as `set_faults` takes it.
#[derive(CandidType)]
pub(super) struct FaultSwitch {
    trap_post_upgrade: bool,
    fail_health: bool,
    trap_health: bool,
}

impl FaultSwitch {
    /// The switch for a canister with a release fault of `class`.
    pub(super) fn for_class(class: FaultClass) -> Self {
        FaultSwitch {
            trap_post_upgrade: class == FaultClass::Trap,
            fail_health: class == FaultClass::Health,
            trap_health: false,
        }
    }
}

#[derive(CandidType, Deserialize, Debug)]
pub(super) enum SetFaultsError {
    NotAController,
}

/// The fault switch's `set_faults`, which only `fault_switch` builds export (so it is not part of
/// the user canister's interface in `fleet_api`).
pub(super) struct SetFaults;

impl Endpoint for SetFaults {
    const NAME: &'static str = "set_faults";
    const KIND: CallKind = CallKind::Update;
    type Args = (FaultSwitch,);
    type Reply = Result<(), SetFaultsError>;
}

/// A failing health check without the fault switch (foreign releases): the health check is the
/// next call the canister receives after its upgrade, and it is rejected.
pub(super) fn reject_health_check(sim: &IcSim, id: Principal) {
    sim.fault_reject_next_calls(id, 1, RejectCode::CanisterReject)
}

/// The manager's cycles fault, step by step.
enum LowState {
    Off,
    /// Waits for a third of the rollout to finish with pipelines in flight.
    Armed,
    /// Out of cycles (frozen) until `until`; `balance` is put back at the end.
    Dry {
        until: u64,
        balance: u128,
        frozen_reserve: u128,
        reserve: u128,
    },
    /// Cycles for one pipeline at a time (hold) until `until`.
    Low {
        until: u64,
        balance: u128,
    },
    Done,
}

/// The operator's upgrade of the manager, step by step.
enum UpgradeState {
    Off,
    /// Waits for two thirds of the rollout to finish (and the cycles fault to be over).
    Armed,
    Draining {
        since: u64,
    },
    Done,
}

/// What the injector saw of the manager's own faults, for the report.
pub(super) struct ManagerFaults {
    pub holds: HoldCounts,
    pub low: ManagerLowReport,
    pub upgrade: ManagerUpgradeReport,
}

/// Runs the faults alongside a rollout: lifts the per-canister faults on their schedule,
/// drives the manager's cycles and upgrade, and counts the holds seen. Every call it makes to
/// the manager is measured, so that the rollout's own instructions can be told apart.
pub(super) struct Injector {
    sim: Rc<IcSim>,
    manager: Principal,
    admin: Principal,
    manager_wasm: Vec<u8>,
    /// Busy canisters: when their stop stops hanging, known once the manager first starts
    /// their pipeline (the hang is counted from there, so a canister in a late stage is busy
    /// as long as one in the canary).
    busy: BTreeMap<Principal, Option<u64>>,
    /// Frozen canisters: the balance their owner puts back, and when.
    frozen: BTreeMap<Principal, (u128, Option<u64>)>,
    /// Next entry of the manager's pipeline log to read.
    log_next: u64,
    low: LowState,
    upgrade: UpgradeState,
    seen: ManagerFaults,
    /// Manager instructions spent on the rehearsal's own queries and calls.
    pub overhead: u64,
    /// When the first rollout started, for the report's times.
    pub start_ns: u64,
}

impl Injector {
    /// An injector for `spec`'s manager faults; the canisters' faults come with [`Self::inject`].
    pub(super) fn new(
        sim: Rc<IcSim>,
        manager: Principal,
        admin: Principal,
        manager_wasm: Vec<u8>,
        spec: &FaultSpec,
    ) -> Self {
        Injector {
            sim,
            manager,
            admin,
            manager_wasm,
            busy: BTreeMap::new(),
            frozen: BTreeMap::new(),
            log_next: 0,
            low: if spec.manager_low_secs > 0 {
                LowState::Armed
            } else {
                LowState::Off
            },
            upgrade: if spec.manager_upgrade {
                UpgradeState::Armed
            } else {
                UpgradeState::Off
            },
            seen: ManagerFaults {
                holds: HoldCounts::default(),
                low: ManagerLowReport {
                    out_of_cycles_secs: spec.manager_low_secs,
                    low_secs: spec.manager_low_secs / 2,
                    ..Default::default()
                },
                upgrade: ManagerUpgradeReport::default(),
            },
            overhead: 0,
            start_ns: 0,
        }
    }

    /// Puts the canisters' environment faults (and, without the fault switch, the failing
    /// health checks) in place. Only the pipeline log entries from here on matter: reading
    /// starts at the log's current end.
    pub(super) fn inject(
        &mut self,
        m: &Manager,
        canisters: &[Principal],
        classes: &[FaultClass],
        switch: bool,
    ) -> Result<(), CliError> {
        let page = self.log_page(m, u64::MAX, 1)?;
        self.log_next = page.next;
        for (&id, class) in canisters.iter().zip(classes) {
            match class {
                FaultClass::Health if !switch => reject_health_check(&self.sim, id),
                FaultClass::Busy => {
                    self.sim.fault_hold_call_context(id, true);
                    self.busy.insert(id, None);
                }
                FaultClass::Frozen => {
                    self.frozen.insert(id, (self.sim.cycle_balance(id), None));
                    self.sim.fault_drain_cycles(id);
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// What was seen of the manager's faults; the injector is done.
    pub(super) fn into_seen(self) -> ManagerFaults {
        self.seen
    }

    pub(super) fn measure<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let before = self.sim.instructions_total(self.manager);
        let out = f();
        self.overhead += self.sim.instructions_total(self.manager) - before;
        out
    }

    fn now(&self) -> u64 {
        self.sim.get_time().as_nanos_since_unix_epoch()
    }

    fn since_start(&self) -> f64 {
        self.now().saturating_sub(self.start_ns) as f64 / 1e9
    }

    pub(super) fn poll(&mut self, m: &Manager) -> Result<RolloutStatus, CliError> {
        let s = self.measure(|| mgr::rollout_status(m))?.ok_or_else(|| {
            CliError::Refused("the manager reports no rollout after starting one".into())
        })?;
        let holds = &mut self.seen.holds;
        match &s.hold {
            Some(Hold::Draining) => holds.draining += 1,
            Some(Hold::ManagerLowCycles { .. }) => holds.manager_low_cycles += 1,
            Some(Hold::ManagerFaults { .. }) => holds.manager_faults += 1,
            None => {}
        }
        Ok(s)
    }

    fn log_page(
        &mut self,
        m: &Manager,
        from: u64,
        limit: u32,
    ) -> Result<PipelineLogPage, CliError> {
        let arg = LogPageArg {
            from,
            limit: Some(limit),
        };
        self.measure(|| m.call_ok::<PipelineLog>((arg,)))
    }

    /// Reads the pipeline log up to its end: a busy or frozen canister's clock starts at the
    /// first start of its pipeline.
    fn read_pipeline_log(&mut self, m: &Manager) -> Result<(), CliError> {
        let waiting = self.busy.values().any(Option::is_none)
            || self.frozen.values().any(|(_, at)| at.is_none());
        if !waiting {
            return Ok(());
        }
        loop {
            let page = self.log_page(m, self.log_next, MAX_ROLLOUT_PAGE)?;
            let full = page.entries.len() as u32 >= MAX_ROLLOUT_PAGE;
            for (seq, e) in &page.entries {
                self.log_next = seq + 1;
                if e.kind != PipelineLogKind::Started {
                    continue;
                }
                if let Some(at @ None) = self.busy.get_mut(&e.canister_id) {
                    *at = Some(e.at + BUSY_SECS * SECOND_NS);
                }
                if let Some((_, at @ None)) = self.frozen.get_mut(&e.canister_id) {
                    *at = Some(e.at + FROZEN_SECS * SECOND_NS);
                }
            }
            self.log_next = self.log_next.max(page.first);
            if !full {
                self.log_next = self.log_next.max(page.next);
                return Ok(());
            }
        }
    }

    /// Lifts the per-canister faults whose time has come (all of them with `all`).
    fn lift_canister_faults(&mut self, all: bool) {
        let now = self.now();
        let due = |at: &Option<u64>| all || at.is_some_and(|t| t <= now);
        let sim = Rc::clone(&self.sim);
        self.busy.retain(|id, at| {
            if due(at) {
                sim.fault_hold_call_context(*id, false);
            }
            !due(at)
        });
        self.frozen.retain(|id, (balance, at)| {
            if due(at) {
                // The owner tops the canister up again.
                sim.add_cycles(*id, *balance);
            }
            !due(at)
        });
    }

    /// Gives the manager cycles. The first update call after a top-up re-arms the manager's
    /// timer, which the IC stopped while it was frozen: an operator's no-op settings update
    /// stands for any command.
    fn top_up(&mut self, m: &Manager, cycles: u128) -> Result<(), CliError> {
        self.sim.add_cycles(self.manager, cycles);
        let r = self.measure(|| m.call::<UpdateSettings>((SettingsUpdate::default(),)))?;
        r.into_result()
            .map(|_| ())
            .map_err(|e| CliError::Refused(format!("update_settings after the top-up: {e:?}")))
    }

    /// One round's worth of fault handling, given the status just polled.
    pub(super) fn act(&mut self, m: &Manager, s: &RolloutStatus) -> Result<(), CliError> {
        self.read_pipeline_log(m)?;
        self.lift_canister_faults(false);
        // One time for the round: a top-up's update call runs rounds of its own.
        let now = self.now();
        self.low_step(m, s, now)?;
        self.upgrade_step(m, s, now)
    }

    /// The manager's cycles fault: drained a third into the rollout with pipelines in flight,
    /// then low, then topped up in full.
    fn low_step(&mut self, m: &Manager, s: &RolloutStatus, now: u64) -> Result<(), CliError> {
        let c = &s.counts;
        match self.low {
            LowState::Armed
                if s.phase == Phase::Running
                    && c.finished() * 3 >= c.total()
                    && c.in_flight > 0 =>
            {
                let metrics = self.measure(|| mgr::metrics(m))?;
                let balance = self.sim.cycle_balance(self.manager);
                self.sim.fault_drain_cycles(self.manager);
                let at = self.since_start();
                let report = &mut self.seen.low;
                report.injected = true;
                report.at_secs = Some(at);
                report.pipeline_cycles_reserve = Some(metrics.pipeline_cycles_reserve);
                self.low = LowState::Dry {
                    until: now + report.out_of_cycles_secs * SECOND_NS,
                    balance,
                    frozen_reserve: metrics.cycles_balance - metrics.liquid_cycles,
                    reserve: metrics.pipeline_cycles_reserve,
                };
            }
            LowState::Dry {
                until,
                balance,
                frozen_reserve,
                reserve,
            } if now >= until => {
                if reserve == 0 || self.seen.low.low_secs == 0 {
                    self.top_up(m, balance)?;
                    self.low = LowState::Done;
                } else {
                    // One and a half pipelines' reserve: liquid enough that no failure is
                    // blamed on the manager, too little for a second pipeline in flight.
                    self.top_up(m, frozen_reserve + reserve * 3 / 2)?;
                    let metrics = self.measure(|| mgr::metrics(m))?;
                    self.seen.low.low_liquid_cycles = Some(metrics.liquid_cycles);
                    self.low = LowState::Low {
                        until: now + self.seen.low.low_secs * SECOND_NS,
                        balance,
                    };
                }
            }
            LowState::Low { until, balance } if now >= until => {
                self.top_up(m, balance)?;
                self.low = LowState::Done;
            }
            _ => {}
        }
        Ok(())
    }

    /// The manager's upgrade: drained two thirds into the rollout, once the cycles fault is
    /// over.
    fn upgrade_step(&mut self, m: &Manager, s: &RolloutStatus, now: u64) -> Result<(), CliError> {
        let c = &s.counts;
        let cycles_fault_over = matches!(self.low, LowState::Off | LowState::Done);
        match self.upgrade {
            UpgradeState::Armed
                if s.phase == Phase::Running
                    && cycles_fault_over
                    && c.finished() * 3 >= c.total() * 2 =>
            {
                self.seen.upgrade.at_secs = Some(self.since_start());
                self.measure(|| mgr::drain(m))?;
                self.upgrade = UpgradeState::Draining { since: now };
                self.drain_step(m, now)
            }
            UpgradeState::Draining { .. } => self.drain_step(m, now),
            _ => Ok(()),
        }
    }

    /// Waits for the drain to get ready, as `drain` defines it, read from the manager's
    /// metrics (a query: an update would run rounds of its own), and then upgrades the manager
    /// to the same module and ends the drain, as an operator would.
    fn drain_step(&mut self, m: &Manager, now: u64) -> Result<(), CliError> {
        let UpgradeState::Draining { since } = self.upgrade else {
            return Ok(());
        };
        self.seen.upgrade.drain_secs = (now - since) / SECOND_NS;
        let metrics = self.measure(|| mgr::metrics(m))?;
        let pipelines = metrics.rollout.as_ref().map_or(0, |r| r.counts.in_flight);
        if !(metrics.draining && metrics.calls_in_flight == 0 && pipelines == 0) {
            if self.seen.upgrade.drain_secs >= MAX_DRAIN_SECS {
                self.measure(|| mgr::end_drain(m))?;
                self.seen.upgrade.note = Some(format!(
                    "not upgraded: the drain was not ready after {MAX_DRAIN_SECS} s \
                     ({pipelines} pipelines, {} calls in flight)",
                    metrics.calls_in_flight
                ));
                self.upgrade = UpgradeState::Done;
            }
            return Ok(());
        }
        let (sim, manager, admin) = (Rc::clone(&self.sim), self.manager, self.admin);
        let wasm = self.manager_wasm.clone();
        let arg = encode_args(()).map_err(|e| CliError::Io(e.to_string()))?;
        let upgraded = self.measure(|| {
            sim.stop_canister(manager, Some(admin))
                .and_then(|()| sim.upgrade_canister(manager, wasm, arg, Some(admin)))
                .and_then(|()| sim.start_canister(manager, Some(admin)))
        });
        upgraded.map_err(|e| {
            CliError::Refused(format!(
                "upgrading the drained manager: {}",
                e.reject_message
            ))
        })?;
        self.measure(|| mgr::end_drain(m))?;
        self.seen.upgrade.upgraded = true;
        self.upgrade = UpgradeState::Done;
        Ok(())
    }

    /// The earliest time a fault changes by itself: a bake time is not skipped past it.
    pub(super) fn next_event_at(&self) -> Option<u64> {
        let lifts = self
            .busy
            .values()
            .chain(self.frozen.values().map(|(_, at)| at))
            .flatten()
            .copied();
        let low = match self.low {
            LowState::Dry { until, .. } | LowState::Low { until, .. } => Some(until),
            _ => None,
        };
        // A drain is timed by the operator's patience: no time is skipped while it lasts.
        let draining = matches!(self.upgrade, UpgradeState::Draining { .. }).then_some(0);
        lifts.chain(low).chain(draining).min()
    }

    /// The rollout came to rest: every fault still on is lifted (the manager topped up, the
    /// canisters' owners fix theirs), and faults never triggered are reported as such.
    pub(super) fn finish(&mut self, m: &Manager) -> Result<(), CliError> {
        self.lift_canister_faults(true);
        match std::mem::replace(&mut self.low, LowState::Done) {
            LowState::Dry { balance, .. } | LowState::Low { balance, .. } => {
                self.top_up(m, balance)?;
                self.seen.low.note =
                    Some("the rollout came to rest before the manager was topped up".into());
            }
            LowState::Armed => {
                self.seen.low.note = Some(
                    "not injected: no pipeline was in flight after a third of the rollout".into(),
                )
            }
            LowState::Off | LowState::Done => {}
        }
        match std::mem::replace(&mut self.upgrade, UpgradeState::Done) {
            UpgradeState::Draining { .. } => {
                self.measure(|| mgr::end_drain(m))?;
                self.seen.upgrade.note =
                    Some("not upgraded: the rollout came to rest during the drain".into());
            }
            UpgradeState::Armed => {
                self.seen.upgrade.note = Some(
                    "not injected: the rollout came to rest before two thirds of it had finished \
                     after the cycles fault"
                        .into(),
                )
            }
            UpgradeState::Off | UpgradeState::Done => {}
        }
        Ok(())
    }
}
