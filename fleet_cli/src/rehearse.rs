//! `fleet rehearse`: a whole release cycle on an embedded IC simulator, with the real canister
//! wasm. A manager is installed, the "from" release is published through the same code as
//! `release publish` and made the default, every user creates their own canister through the
//! manager (each with its own recovery principal) and writes notes into it, the "to" release
//! is published and rolled out in stages under the plan's limits, with bake times passed in
//! simulated time. Then every canister is checked from outside, as its recovery controller and
//! as anyone: module hash, running, controllers, version and data checksum (`fleet_health`).
//!
//! With `--from`/`--to` files the operator's own releases are rehearsed. Such modules must take
//! the user canister's init argument (`UserCanisterArg::Init`) and answer `fleet_health` (the
//! manager's health check needs it); no notes are written into them, and the checks are the
//! module hash, the running status, the controllers, and `fleet_health`'s version and checksum
//! (before and after must be equal) when the canister answers it.
//!
//! `--faults` injects every class of fault the manager tells apart ([`FaultSpec`]): release
//! faults on some canisters (a trapping `post_upgrade`, a failing health check), which must end
//! failed or rolled back on the starting release; environment faults (a stop that hangs for a
//! while, a canister without cycles until its owner tops it up), which must be deferred and
//! upgraded by a later retry; and the manager's own faults (out of cycles for a while, an
//! upgrade of the manager mid-rollout), which must hold or defer work and blame nobody. The
//! report gives, per class, the faults injected and what became of those canisters, with the
//! deferrals by cause and the holds seen, and the checks from outside decide whether the
//! manager did the right thing with each.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use candid::{decode_one, encode_args, encode_one, CandidType, Principal};
use clap::Args;
use fleet_api::manager::{
    CreateUserCanisterArg, CreateUserCanisterError, ManagerInitArg, QueryError, RateLimit,
    SetDefaultReleaseError, Settings, SettingsUpdate, UpdateSettingsError, UserCanister,
};
use fleet_api::rollout::{
    Canary, DeferralCounts, Failure, FailurePolicy, Hold, LogPageArg, Outcome, Phase,
    PipelineLogKind, PipelineLogPage, RolloutCanisterResult, RolloutPlanArg, RolloutStatus,
    MAX_ROLLOUT_PAGE,
};
use fleet_api::user::{FleetHealth, NoteError};
use ic_sim::{IcSim, IcSimBuilder, RawMessageId, RejectCode};
use serde::{Deserialize, Serialize};

use crate::backend::mgmt::{query_typed, RunStatus};
use crate::backend::sim::SimIc;
use crate::backend::Management;
use crate::cli::Bars;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};
use crate::plan::PlanArgs;
use crate::recovery::Progress;
use crate::wasm::WasmModule;
use crate::watch::{at_rest, phase_name, WaveBars};

/// Cycles each user canister receives at creation: above the rollout's default minimum.
const USER_CYCLES: u128 = 1_000_000_000_000;
/// Simulated time per round: the manager's timer interval.
const ROUND: Duration = Duration::from_secs(1);
const SECOND_NS: u64 = 1_000_000_000;
/// Failed checks listed in the report (all are counted).
const MAX_PROBLEMS_SHOWN: usize = 20;

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

#[derive(Args, Debug, Clone)]
pub struct RehearseArgs {
    /// User canisters to create, each by its own owner with its own recovery principal.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub users: u32,
    /// The release the fleet starts on (.wasm or .wasm.gz) [default: the bundled user canister
    /// v1].
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// The release rolled out (.wasm or .wasm.gz) [default: the bundled user canister v2].
    #[arg(long, value_name = "FILE")]
    pub to: Option<PathBuf>,
    /// Version of the starting release, as its `fleet_health` reports it.
    #[arg(long, default_value = "1.0.0", value_name = "SEMVER")]
    pub from_version: String,
    /// Version of the target release, as its `fleet_health` reports it (the manager's health
    /// check compares it).
    #[arg(long, default_value = "2.0.0", value_name = "SEMVER")]
    pub to_version: String,
    /// Notes each owner writes into their canister (bundled starting release only).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub notes: u32,
    /// Faults to inject: `all`, or KIND[=VALUE] items, comma-separated or repeated.
    ///
    /// A SHARE is a fraction of the fleet (at least one canister, spread evenly, one fault per
    /// canister):
    ///   trap[=SHARE]        the target's post_upgrade traps: failed, kept on the start release
    ///                       (rehearses the bundled canister's fault_switch builds)
    ///   health[=SHARE]      the target fails the health check: rolled back to the snapshot
    ///   busy[=SHARE]        the stop hangs for 150 s: deferred, upgraded by a retry
    ///   frozen[=SHARE]      no cycles until the owner tops up, 240 s after the manager first
    ///                       reaches it: deferred, upgraded by a retry
    ///   manager-low[=SECS]  a third into the rollout the manager runs out of cycles for SECS,
    ///                       then has cycles for one pipeline at a time (held) for SECS/2
    ///                       before the full top-up [SECS default: 120]
    ///   manager-upgrade     two thirds into the rollout the manager is drained, stopped,
    ///                       upgraded and started again
    /// `all` = trap=0.03,health=0.02,busy=0.02,frozen=0.02,manager-low=120,manager-upgrade;
    /// later items override earlier ones (`all,busy=0`). A bare FRACTION is health=FRACTION.
    /// Kind defaults: trap 0.03, health 0.02, busy 0.02, frozen 0.02. With release faults on
    /// and no --max-failed-percent/--max-consecutive-failures, the rehearsal turns the halts
    /// off so that every class plays out; give them to rehearse a halt.
    #[arg(long, value_name = "SPEC", value_delimiter = ',', verbatim_doc_comment)]
    pub faults: Vec<String>,
    /// Give up when the rollout has not come to rest after this many rounds.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_rounds: u64,
    /// Print the canisters' debug output on stderr.
    #[arg(long)]
    pub canister_logs: bool,
    #[command(flatten)]
    pub plan: PlanArgs,
}

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

impl FaultSpec {
    /// Parses the items of `--faults` in order; every mistake is a usage error naming the item.
    pub fn parse(items: &[String]) -> Result<Self, CliError> {
        let mut spec = FaultSpec::default();
        for item in items {
            let item = item.trim();
            let bad = |why: String| CliError::Usage(format!("--faults `{item}`: {why}"));
            if item.is_empty() {
                return Err(bad("an empty item (a stray comma?)".into()));
            }
            let (kind, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let share = |default: f64| -> Result<f64, CliError> {
                let Some(v) = value else {
                    return Ok(default);
                };
                match v.parse::<f64>() {
                    Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
                    _ => Err(bad(format!(
                        "{v} is not a share: give a fraction from 0 to 1"
                    ))),
                }
            };
            match kind {
                "all" if value.is_none() => {
                    spec = FaultSpec {
                        trap: DEFAULT_TRAP,
                        health: DEFAULT_HEALTH,
                        busy: DEFAULT_BUSY,
                        frozen: DEFAULT_FROZEN,
                        manager_low_secs: DEFAULT_MANAGER_LOW_SECS,
                        manager_upgrade: true,
                    }
                }
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
                _ if value.is_none() && kind.parse::<f64>().is_ok() => {
                    // The first spelling: `--faults F`, a share failing the health check.
                    match kind.parse::<f64>() {
                        Ok(x) if (0.0..=1.0).contains(&x) => spec.health = x,
                        _ => {
                            return Err(bad(format!(
                                "{kind} is not a share: give a fraction from 0 to 1"
                            )))
                        }
                    }
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

    fn describe(self) -> &'static str {
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

/// Outcomes of the rollout, as the manager's per-canister results give them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub upgraded: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub skipped: u64,
    pub cancelled: u64,
    /// Left on their release by their environment or the manager, after every retry.
    pub deferred: u64,
    /// Selected but not started (a halted rollout leaves them).
    pub not_started: u64,
}

impl OutcomeCounts {
    fn add(&mut self, outcome: Option<Outcome>) {
        match outcome {
            Some(Outcome::Done) => self.upgraded += 1,
            Some(Outcome::Failed) => self.failed += 1,
            Some(Outcome::RolledBack) => self.rolled_back += 1,
            Some(Outcome::Skipped) => self.skipped += 1,
            Some(Outcome::Cancelled) => self.cancelled += 1,
            Some(Outcome::Deferred) => self.deferred += 1,
            Some(Outcome::Restored) | None => self.not_started += 1,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub stage: String,
    pub size: u64,
    pub upgraded: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub skipped: u64,
    /// Simulated seconds from the stage's opening to its completion.
    pub simulated_secs: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WallTimes {
    pub load_wasm_secs: f64,
    pub setup_secs: f64,
    pub provision_secs: f64,
    pub write_data_secs: f64,
    pub rollout_secs: f64,
    pub verify_secs: f64,
    pub total_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RehearsalReport {
    pub users: u32,
    pub manager: Principal,
    pub from_version: String,
    pub from_sha256: String,
    pub to_version: String,
    pub to_sha256: String,
    /// True when the bundled user canister was used for both releases.
    pub bundled: bool,
    pub notes_per_user: u32,
    /// Canisters given a fault of their own (release, busy or frozen).
    pub faults_injected: u64,
    pub rollout_id: u64,
    pub phase: String,
    pub halted: bool,
    pub rounds: u64,
    pub simulated_secs: f64,
    pub upgrades_per_round: f64,
    /// Outcomes of the first rollout.
    pub outcomes: OutcomeCounts,
    pub stages: Vec<StageReport>,
    /// Instructions the manager executed during the rollout (ic_sim's count), in total and
    /// per canister whose pipeline ran; the rehearsal's own polls and operator calls are left
    /// out. The per-tick figures are the manager's since it was last installed or upgraded.
    pub manager_instructions: u64,
    pub manager_instructions_per_upgrade: u64,
    pub tick_instructions_mean: u64,
    pub tick_instructions_max: u64,
    pub provision_rounds: u64,
    /// What was injected and what became of it; `None` without `--faults`.
    pub faults: Option<FaultReport>,
    pub verified: Verification,
    pub wall: WallTimes,
}

/// `--faults`: what was injected, per class what became of those canisters, and the manager's
/// own view (deferrals by cause, holds).
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    pub spec: FaultSpec,
    pub busy_secs: u64,
    pub frozen_secs: u64,
    /// Why the rehearsal chose the failure policy, when it did.
    pub failure_policy: Option<String>,
    /// Every class of canister, the unfaulted ones included, with final outcomes (after the
    /// follow-up rollout, if one ran) and where the checks from outside found them.
    pub classes: Vec<ClassReport>,
    /// Deferral events of the first rollout by cause, as the manager counts them.
    pub deferrals: DeferralCounts,
    /// Canisters the first rollout ended deferred.
    pub deferred: u64,
    /// Canisters waiting for a retry when the first rollout came to rest (0 when complete).
    pub waiting: u64,
    /// Rounds in which the rollout status showed each hold (first rollout and follow-up).
    pub holds: HoldCounts,
    pub manager_low: Option<ManagerLowReport>,
    pub manager_upgrade: Option<ManagerUpgradeReport>,
    /// The rollout over the canisters the first one left deferred, if any.
    pub follow_up: Option<FollowUpReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    pub class: FaultClass,
    pub canisters: u64,
    pub outcomes: OutcomeCounts,
    pub on_target: u64,
    pub on_source: u64,
    /// Canisters of the class with at least one failed check.
    pub with_problems: u64,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HoldCounts {
    pub draining: u64,
    pub manager_low_cycles: u64,
    pub manager_faults: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ManagerLowReport {
    pub injected: bool,
    /// Simulated seconds into the rollout when the manager ran out of cycles.
    pub at_secs: Option<f64>,
    pub out_of_cycles_secs: u64,
    /// Seconds after the first top-up with cycles for one pipeline at a time.
    pub low_secs: u64,
    /// The manager's liquid cycles during that time, and the per-pipeline reserve.
    pub low_liquid_cycles: Option<u128>,
    pub pipeline_cycles_reserve: Option<u128>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ManagerUpgradeReport {
    pub upgraded: bool,
    /// Simulated seconds into the rollout when the drain began.
    pub at_secs: Option<f64>,
    /// Simulated seconds from the first `drain` to ready.
    pub drain_secs: u64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FollowUpReport {
    pub rollout_id: u64,
    pub canisters: u64,
    pub phase: String,
    pub rounds: u64,
    pub simulated_secs: f64,
    pub outcomes: OutcomeCounts,
    pub deferrals: DeferralCounts,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub canisters: u64,
    pub on_target: u64,
    pub on_source: u64,
    /// Canisters whose `fleet_health` answered before and after with equal checksums.
    pub checksums_equal: u64,
    /// Checks that failed, over all canisters.
    pub failed_checks: u64,
    /// Failed checks by kind.
    pub wrong_module: u64,
    pub not_running: u64,
    pub wrong_controllers: u64,
    pub data_changed: u64,
    /// Outcomes that contradict the injected faults: a release-faulty canister upgraded, a
    /// canister without a release fault failed or rolled back, or (rollout completed) left
    /// off the target.
    pub wrong_outcome: u64,
    /// The first failed checks, for people.
    pub problems: Vec<String>,
}

/// A distinct principal per role and user (self-authenticating shape).
fn principal(tag: u8, n: u32) -> Principal {
    let mut bytes = [tag; 29];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[28] = 0x02;
    Principal::from_slice(&bytes)
}

pub fn owner(n: u32) -> Principal {
    principal(0x11, n)
}

pub fn recovery(n: u32) -> Principal {
    principal(0x22, n)
}

fn operator() -> Principal {
    principal(0x33, 0)
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

fn bundled(features: &[&str]) -> Result<WasmModule, CliError> {
    let bytes = wasm_build::build("user_canister", features)
        .map_err(|e| CliError::Io(format!("building the bundled user canister: {e}")))?;
    Ok(WasmModule::from_bytes(
        bytes,
        &wasm_build::variant_name("user_canister", features),
        None,
    )?)
}

/// The user canister's fault switch (`fault_switch` builds), as `set_faults` takes it.
#[derive(CandidType)]
struct FaultSwitch {
    trap_post_upgrade: bool,
    fail_health: bool,
    trap_health: bool,
}

#[derive(CandidType, Deserialize, Debug)]
enum SetFaultsError {
    NotAController,
}

struct Rehearsal {
    sim: Rc<IcSim>,
    rounds: u64,
}

impl Rehearsal {
    fn step(&mut self) {
        self.sim.advance_time(ROUND);
        self.sim.tick();
        self.rounds += 1;
    }

    fn now(&self) -> u64 {
        self.sim.get_time().as_nanos_since_unix_epoch()
    }

    /// Runs rounds until every message has an answer; calls `done` as answers come.
    fn run_all(
        &mut self,
        messages: &[RawMessageId],
        mut done: impl FnMut(usize),
    ) -> Result<Vec<Vec<u8>>, CliError> {
        let mut replies: Vec<Option<Vec<u8>>> = vec![None; messages.len()];
        let mut answered = 0;
        for _ in 0..100_000 {
            for (i, m) in messages.iter().enumerate() {
                if replies[i].is_none() {
                    match self.sim.ingress_status(m) {
                        Some(Ok(bytes)) => {
                            replies[i] = Some(bytes);
                            answered += 1;
                        }
                        Some(Err(e)) => {
                            return Err(CliError::Refused(format!(
                                "message {i} was rejected: {}",
                                e.reject_message
                            )))
                        }
                        None => {}
                    }
                }
            }
            done(answered);
            if answered == messages.len() {
                return Ok(replies.into_iter().flatten().collect());
            }
            self.step();
        }
        Err(CliError::Refused(format!(
            "{} messages still unanswered after 100000 rounds",
            messages.len() - answered
        )))
    }
}

fn submit(
    sim: &IcSim,
    canister: Principal,
    sender: Principal,
    method: &str,
    arg: Vec<u8>,
) -> Result<RawMessageId, CliError> {
    sim.submit_call(canister, sender, method, arg)
        .map_err(|e| CliError::Refused(format!("{method} on {canister}: {}", e.reject_message)))
}

fn count_bar(enabled: bool, len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    (enabled && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(len);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg:>24} {bar:40} {pos:>6}/{len}")
                .expect("valid template"),
        );
        b.set_message(what.to_string());
        b
    })
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

/// Runs the faults alongside a rollout: lifts the per-canister faults on their schedule,
/// drives the manager's cycles and upgrade, and counts the holds seen. Every call it makes to
/// the manager is measured, so that the rollout's own instructions can be told apart.
struct Injector {
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
    low_report: ManagerLowReport,
    upgrade: UpgradeState,
    upgrade_report: ManagerUpgradeReport,
    holds: HoldCounts,
    /// Manager instructions spent on the rehearsal's own queries and calls.
    overhead: u64,
    /// When the first rollout started, for the report's times.
    start_ns: u64,
}

impl Injector {
    fn measure<T>(&mut self, f: impl FnOnce() -> T) -> T {
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

    fn poll(&mut self, m: &Manager) -> Result<RolloutStatus, CliError> {
        let s = self.measure(|| mgr::rollout_status(m))?.ok_or_else(|| {
            CliError::Refused("the manager reports no rollout after starting one".into())
        })?;
        match &s.hold {
            Some(Hold::Draining) => self.holds.draining += 1,
            Some(Hold::ManagerLowCycles { .. }) => self.holds.manager_low_cycles += 1,
            Some(Hold::ManagerFaults { .. }) => self.holds.manager_faults += 1,
            None => {}
        }
        Ok(s)
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
            let arg = LogPageArg {
                from: self.log_next,
                limit: Some(MAX_ROLLOUT_PAGE),
            };
            let page: PipelineLogPage =
                self.measure(|| m.query_ok::<_, _, QueryError>("pipeline_log", &arg))?;
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

    /// The first update call after a top-up re-arms the manager's timer, which the IC stopped
    /// while it was frozen: an operator's no-op settings update stands for any command.
    fn wake(&mut self, m: &Manager) -> Result<(), CliError> {
        let r = self.measure(|| {
            m.update::<_, Settings, UpdateSettingsError>(
                "update_settings",
                &SettingsUpdate::default(),
            )
        })?;
        r.map(|_| ())
            .map_err(|e| CliError::Refused(format!("update_settings after the top-up: {e:?}")))
    }

    /// One round's worth of fault handling, given the status just polled.
    fn act(&mut self, m: &Manager, s: &RolloutStatus) -> Result<(), CliError> {
        self.read_pipeline_log(m)?;
        self.lift_canister_faults(false);
        let now = self.now();
        let c = &s.counts;
        let running = s.phase == Phase::Running;
        match self.low {
            LowState::Armed if running && c.finished() * 3 >= c.total() && c.in_flight > 0 => {
                let metrics = self.measure(|| mgr::metrics(m))?;
                let balance = self.sim.cycle_balance(self.manager);
                self.sim.fault_drain_cycles(self.manager);
                self.low_report.injected = true;
                self.low_report.at_secs = Some(self.since_start());
                self.low_report.pipeline_cycles_reserve = Some(metrics.pipeline_cycles_reserve);
                self.low = LowState::Dry {
                    until: now + self.low_report.out_of_cycles_secs * SECOND_NS,
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
                if reserve == 0 || self.low_report.low_secs == 0 {
                    self.sim.add_cycles(self.manager, balance);
                    self.wake(m)?;
                    self.low = LowState::Done;
                } else {
                    // One and a half pipelines' reserve: liquid enough that no failure is
                    // blamed on the manager, too little for a second pipeline in flight.
                    self.sim
                        .add_cycles(self.manager, frozen_reserve + reserve * 3 / 2);
                    self.wake(m)?;
                    let metrics = self.measure(|| mgr::metrics(m))?;
                    self.low_report.low_liquid_cycles = Some(metrics.liquid_cycles);
                    self.low = LowState::Low {
                        until: now + self.low_report.low_secs * SECOND_NS,
                        balance,
                    };
                }
            }
            LowState::Low { until, balance } if now >= until => {
                self.sim.add_cycles(self.manager, balance);
                self.wake(m)?;
                self.low = LowState::Done;
            }
            _ => {}
        }
        let cycles_fault_over = matches!(self.low, LowState::Off | LowState::Done);
        match self.upgrade {
            UpgradeState::Armed
                if running && cycles_fault_over && c.finished() * 3 >= c.total() * 2 =>
            {
                self.upgrade_report.at_secs = Some(self.since_start());
                self.measure(|| mgr::drain(m))?;
                self.upgrade = UpgradeState::Draining { since: now };
                self.drain_step(m, now)?;
            }
            UpgradeState::Draining { .. } => self.drain_step(m, now)?,
            _ => {}
        }
        Ok(())
    }

    /// Waits for the drain to get ready, as `drain` defines it, read from the manager's
    /// metrics (a query: an update would run rounds of its own), and then upgrades the manager
    /// to the same module and ends the drain, as an operator would.
    fn drain_step(&mut self, m: &Manager, now: u64) -> Result<(), CliError> {
        let UpgradeState::Draining { since } = self.upgrade else {
            return Ok(());
        };
        self.upgrade_report.drain_secs = (now - since) / SECOND_NS;
        let metrics = self.measure(|| mgr::metrics(m))?;
        let pipelines = metrics.rollout.as_ref().map_or(0, |r| r.counts.in_flight);
        if !(metrics.draining && metrics.calls_in_flight == 0 && pipelines == 0) {
            if self.upgrade_report.drain_secs >= MAX_DRAIN_SECS {
                self.measure(|| mgr::end_drain(m))?;
                self.upgrade_report.note = Some(format!(
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
        self.upgrade_report.upgraded = true;
        self.upgrade = UpgradeState::Done;
        Ok(())
    }

    /// The earliest time a fault changes by itself: a bake time is not skipped past it.
    fn next_event_at(&self) -> Option<u64> {
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
    fn finish(&mut self, m: &Manager) -> Result<(), CliError> {
        self.lift_canister_faults(true);
        match std::mem::replace(&mut self.low, LowState::Done) {
            LowState::Dry { balance, .. } | LowState::Low { balance, .. } => {
                self.sim.add_cycles(self.manager, balance);
                self.wake(m)?;
                self.low_report.note =
                    Some("the rollout came to rest before the manager was topped up".into());
            }
            LowState::Armed => {
                self.low_report.note = Some(
                    "not injected: no pipeline was in flight after a third of the rollout".into(),
                )
            }
            LowState::Off | LowState::Done => {}
        }
        match std::mem::replace(&mut self.upgrade, UpgradeState::Done) {
            UpgradeState::Draining { .. } => {
                self.measure(|| mgr::end_drain(m))?;
                self.upgrade_report.note =
                    Some("not upgraded: the rollout came to rest during the drain".into());
            }
            UpgradeState::Armed => {
                self.upgrade_report.note = Some(
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

/// A rollout driven to rest.
struct Driven {
    status: RolloutStatus,
    rounds: u64,
    simulated_ns: u64,
}

/// Runs rounds until the rollout comes to rest, with the faults alongside. Bake times with
/// nothing in flight pass at once in simulated time, but never past a fault's next change.
fn drive(
    r: &mut Rehearsal,
    m: &Manager,
    inj: &mut Injector,
    max_rounds: u64,
    show_progress: bool,
) -> Result<Driven, CliError> {
    let time_before = r.now();
    let rounds_before = r.rounds;
    let mut waves = WaveBars::new(show_progress);
    let status = loop {
        let s = inj.poll(m)?;
        waves.update(
            &s,
            &format!(
                "round {}, {} s simulated",
                r.rounds - rounds_before,
                (r.now() - time_before) / SECOND_NS
            ),
        );
        if at_rest(&s) {
            break s;
        }
        if r.rounds - rounds_before >= max_rounds {
            return Err(CliError::Refused(format!(
                "the rollout has not come to rest after {max_rounds} rounds: {}",
                mgr::rollout_text(&s)
            )));
        }
        inj.act(m, &s)?;
        if let (Some(at), 0) = (s.next_wave_at, s.counts.in_flight + s.counts.busy) {
            let at = inj.next_event_at().map_or(at, |e| e.min(at));
            let now = r.now();
            let round = ROUND.as_nanos() as u64;
            if at > now + round {
                r.sim.advance_time(Duration::from_nanos(at - now - round));
            }
        }
        r.step();
    };
    waves.finish();
    Ok(Driven {
        status,
        rounds: r.rounds - rounds_before,
        simulated_ns: r.now() - time_before,
    })
}

pub fn run(args: &RehearseArgs, show_progress: bool) -> Result<RehearsalReport, CliError> {
    // ---- Everything that can be refused is checked before anything runs.
    if args.users == 0 {
        return Err(CliError::Usage("--users must be at least 1".into()));
    }
    let spec = FaultSpec::parse(&args.faults)?;
    let classes = assign(args.users, &spec)?;
    let custom = args.from.is_some() || args.to.is_some();
    if spec.trap > 0.0 && custom {
        return Err(CliError::Usage(
            "--faults trap needs the bundled user canister (its fault_switch builds make \
             post_upgrade trap); with --from/--to, use health"
                .into(),
        ));
    }
    if args.from_version == args.to_version {
        return Err(CliError::Usage(
            "--from-version and --to-version must differ".into(),
        ));
    }
    let mut plan = args
        .plan
        .to_plan(&args.to_version, Some(&args.from_version))?;
    // The default policy halts a stage above 5% failures, which release faults reach: the
    // rehearsal would stop before the other classes played out.
    let failure_policy = (spec.release() && plan.failure.is_none()).then(|| {
        plan.failure = Some(FailurePolicy {
            max_failed_percent: 100,
            max_consecutive_failures: 0,
        });
        "halts off (max-failed-percent 100, max-consecutive-failures 0): release faults are \
         injected and no failure policy was given"
            .to_string()
    });
    // Release faults on the bundled canister are set per canister through its fault switch,
    // which the next module reads: both releases are the `fault_switch` builds.
    let switch = spec.release() && !custom;
    let total = Instant::now();
    let mut bars = Bars::new(show_progress);

    bars.step("loading the canisters");
    let from = match &args.from {
        Some(path) => WasmModule::read(path, None)?,
        None if switch => bundled(&["fault_switch"])?,
        None => bundled(&[])?,
    };
    let to = match &args.to {
        Some(path) => WasmModule::read(path, None)?,
        None if switch => bundled(&["v2", "fault_switch"])?,
        None => bundled(&["v2"])?,
    };
    if from.sha256 == to.sha256 {
        return Err(CliError::Usage(
            "the starting and the target release are the same module".into(),
        ));
    }
    let manager_wasm = wasm_build::build("fleet_manager", &[])
        .map_err(|e| CliError::Io(format!("building the fleet manager: {e}")))?;
    let load_wasm = total.elapsed();

    // ---- A simulated IC with the manager.
    let setup_start = Instant::now();
    bars.step("installing the manager");
    let sim = Rc::new(IcSimBuilder::new().with_logs(args.canister_logs).build());
    let admin = operator();
    let manager = sim.create_canister_with_settings(Some(admin), None);
    sim.add_cycles(
        manager,
        u128::from(args.users) * 2 * USER_CYCLES + 100 * USER_CYCLES,
    );
    let init = ManagerInitArg {
        admins: None,
        user_canister_cycles: Some(USER_CYCLES),
        // Every user may create their canister at once: provisioning is not what is rehearsed.
        creation_limit: Some(RateLimit {
            capacity: args.users.max(10),
            refill_period_secs: 1,
        }),
    };
    sim.install_canister(
        manager,
        manager_wasm.clone(),
        encode_one(Some(init)).map_err(|e| CliError::Io(e.to_string()))?,
        Some(admin),
    );
    let ops = SimIc::new(Rc::clone(&sim), admin);
    let m = Manager::new(&ops, manager);
    mgr::publish(
        &m,
        &from,
        &args.from_version,
        "rehearsal: starting release",
        &mut bars,
    )?;
    let set: Result<Settings, SetDefaultReleaseError> =
        m.update("set_default_release", &args.from_version)?;
    set.map_err(|e| CliError::Refused(format!("set_default_release: {e:?}")))?;
    let setup = setup_start.elapsed();
    bars.step("");
    drop(bars);

    let mut r = Rehearsal {
        sim: Rc::clone(&sim),
        rounds: 0,
    };

    // ---- Every owner creates their canister, concurrently.
    let provision_start = Instant::now();
    let messages = (0..args.users)
        .map(|i| {
            let arg = CreateUserCanisterArg {
                recovery_principal: recovery(i),
            };
            submit(
                &sim,
                manager,
                owner(i),
                "create_user_canister",
                encode_one(arg).map_err(|e| CliError::Io(e.to_string()))?,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bar = count_bar(show_progress, args.users as u64, "creating canisters");
    let replies = r.run_all(&messages, |n| {
        if let Some(b) = &bar {
            b.set_position(n as u64)
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut canisters: Vec<Principal> = Vec::with_capacity(replies.len());
    for (i, bytes) in replies.iter().enumerate() {
        let created = decode_one::<Result<UserCanister, CreateUserCanisterError>>(bytes)
            .map_err(|e| CliError::Io(format!("create_user_canister reply: {e}")))?
            .map_err(|e| CliError::Refused(format!("create_user_canister for user {i}: {e:?}")))?;
        canisters.push(created.canister_id);
    }
    let provision_rounds = r.rounds;
    let provision = provision_start.elapsed();

    // ---- Owners write their data.
    let data_start = Instant::now();
    let notes = if args.from.is_none() { args.notes } else { 0 };
    if notes > 0 {
        let mut messages = Vec::new();
        for (i, id) in canisters.iter().enumerate() {
            for k in 0..notes {
                let arg = encode_args((
                    format!("note-{k}"),
                    format!("user {i} wrote note {k} before the upgrade"),
                ))
                .map_err(|e| CliError::Io(e.to_string()))?;
                messages.push(submit(&sim, *id, owner(i as u32), "put", arg)?);
            }
        }
        let bar = count_bar(show_progress, messages.len() as u64, "writing notes");
        let replies = r.run_all(&messages, |n| {
            if let Some(b) = &bar {
                b.set_position(n as u64)
            }
        })?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        for bytes in replies {
            decode_one::<Result<(), NoteError>>(&bytes)
                .map_err(|e| CliError::Io(format!("put reply: {e}")))?
                .map_err(|e| CliError::Refused(format!("put: {e:?}")))?;
        }
    }
    let anyone = SimIc::new(Rc::clone(&sim), Principal::anonymous());
    let health = |id: Principal| -> Option<FleetHealth> {
        query_typed::<_, FleetHealth>(&anyone, id, "fleet_health", &()).ok()
    };
    let before: Vec<Option<FleetHealth>> = canisters.iter().map(|id| health(*id)).collect();
    let write_data = data_start.elapsed();

    // ---- The target release, the faults, and the rollout.
    let rollout_start = Instant::now();
    let mut bars = Bars::new(show_progress);
    mgr::publish(
        &m,
        &to,
        &args.to_version,
        "rehearsal: target release",
        &mut bars,
    )?;
    drop(bars);
    // Release faults through the fault switch, set by each canister's recovery controller.
    let mut switches = Vec::new();
    for (i, class) in classes.iter().enumerate() {
        if !class.is_release() || !switch {
            continue;
        }
        let arg = encode_one(FaultSwitch {
            trap_post_upgrade: *class == FaultClass::Trap,
            fail_health: *class == FaultClass::Health,
            trap_health: false,
        })
        .map_err(|e| CliError::Io(e.to_string()))?;
        switches.push(submit(
            &sim,
            canisters[i],
            recovery(i as u32),
            "set_faults",
            arg,
        )?);
    }
    for bytes in r.run_all(&switches, |_| {})? {
        decode_one::<Result<(), SetFaultsError>>(&bytes)
            .map_err(|e| CliError::Io(format!("set_faults reply: {e}")))?
            .map_err(|e| CliError::Refused(format!("set_faults: {e:?}")))?;
    }
    let mut inj = Injector {
        sim: Rc::clone(&sim),
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
        low_report: ManagerLowReport {
            out_of_cycles_secs: spec.manager_low_secs,
            low_secs: spec.manager_low_secs / 2,
            ..Default::default()
        },
        upgrade: if spec.manager_upgrade {
            UpgradeState::Armed
        } else {
            UpgradeState::Off
        },
        upgrade_report: ManagerUpgradeReport::default(),
        holds: HoldCounts::default(),
        overhead: 0,
        start_ns: 0,
    };
    // Only the entries of this rollout's pipelines matter.
    let log_end = LogPageArg {
        from: u64::MAX,
        limit: Some(1),
    };
    let page: PipelineLogPage =
        inj.measure(|| m.query_ok::<_, _, QueryError>("pipeline_log", &log_end))?;
    inj.log_next = page.next;
    for (i, class) in classes.iter().enumerate() {
        let id = canisters[i];
        match class {
            // Without the switch (foreign releases): the health check is the next call the
            // canister receives after its upgrade.
            FaultClass::Health if !switch => {
                sim.fault_reject_next_calls(id, 1, RejectCode::CanisterReject)
            }
            FaultClass::Busy => {
                sim.fault_hold_call_context(id, true);
                inj.busy.insert(id, None);
            }
            FaultClass::Frozen => {
                inj.frozen.insert(id, (sim.cycle_balance(id), None));
                sim.fault_drain_cycles(id);
            }
            _ => {}
        }
    }
    let faults_injected = classes.iter().filter(|c| **c != FaultClass::None).count() as u64;

    let instructions_before = sim.instructions_total(manager);
    inj.start_ns = r.now();
    let started = inj.measure(|| mgr::start_rollout(&m, &plan))?;
    let first = drive(&mut r, &m, &mut inj, args.max_rounds, show_progress)?;
    inj.finish(&m)?;
    let status = first.status;
    let manager_instructions = sim.instructions_total(manager) - instructions_before - inj.overhead;
    let metrics = mgr::metrics(&m)?;
    let results = mgr::rollout_results(&m)?;

    // ---- Canisters the first rollout left deferred, once their faults are over: a rollout
    // from the starting release over them, as an operator would run.
    let mut last: BTreeMap<Principal, RolloutCanisterResult> = results
        .iter()
        .map(|res| (res.canister_id, res.clone()))
        .collect();
    let leftovers: Vec<Principal> = results
        .iter()
        .filter(|res| res.outcome == Some(Outcome::Deferred))
        .map(|res| res.canister_id)
        .collect();
    let follow_up = if status.phase == Phase::Completed && !leftovers.is_empty() {
        for (i, id) in canisters.iter().enumerate() {
            // Without the switch the health fault is one rejected call, maybe spent on a
            // deferred attempt: armed again, so that the release is as unhealthy as before.
            if classes[i] == FaultClass::Health && !switch && leftovers.contains(id) {
                sim.fault_reject_next_calls(*id, 1, RejectCode::CanisterReject);
            }
        }
        let mut again: RolloutPlanArg = plan.clone();
        again.include = Some(leftovers.clone());
        again.exclude = None;
        again.canary = Some(Canary::None);
        again.waves_percent = Some(vec![100]);
        again.bake_secs = Some(0);
        let started = mgr::start_rollout(&m, &again)?;
        let driven = drive(&mut r, &m, &mut inj, args.max_rounds, show_progress)?;
        let mut outcomes = OutcomeCounts::default();
        for res in mgr::rollout_results(&m)? {
            outcomes.add(res.outcome);
            last.insert(res.canister_id, res);
        }
        Some((started.id, leftovers.len() as u64, driven, outcomes))
    } else {
        None
    };
    let complete = status.phase == Phase::Completed
        && follow_up
            .as_ref()
            .is_none_or(|f| f.2.status.phase == Phase::Completed);
    let rollout = rollout_start.elapsed();

    // ---- Checks from outside.
    let verify_start = Instant::now();
    let mut outcomes = OutcomeCounts::default();
    for res in &results {
        outcomes.add(res.outcome);
    }
    let mut v = Verification {
        canisters: canisters.len() as u64,
        ..Default::default()
    };
    let mut by_class: BTreeMap<FaultClass, ClassReport> = BTreeMap::new();
    for (i, id) in canisters.iter().enumerate() {
        let class = classes[i];
        let rep = by_class.entry(class).or_insert_with(|| ClassReport {
            class,
            canisters: 0,
            outcomes: OutcomeCounts::default(),
            on_target: 0,
            on_source: 0,
            with_problems: 0,
        });
        rep.canisters += 1;
        let res = last.get(id);
        let outcome = res.and_then(|x| x.outcome);
        rep.outcomes.add(outcome);
        let mut wrong_outcome = Vec::new();
        // A failed health check without a snapshot leaves the target installed.
        let left_on_target = matches!(
            res.and_then(|x| x.failure.as_ref()),
            Some(Failure::UnhealthyNoSnapshot { .. })
        );
        let upgraded = outcome == Some(Outcome::Done) || left_on_target;
        if class.is_release() && outcome == Some(Outcome::Done) {
            wrong_outcome.push(format!("{} but upgraded", class.describe()));
        }
        if !class.is_release() && matches!(outcome, Some(Outcome::Failed | Outcome::RolledBack)) {
            wrong_outcome.push(format!(
                "{:?} without a release fault ({}): blamed on the release",
                outcome,
                class.describe()
            ));
        }
        if complete {
            if class.is_release() && !matches!(outcome, Some(Outcome::Failed | Outcome::RolledBack))
            {
                wrong_outcome.push(format!("{} but ended {outcome:?}", class.describe()));
            }
            if !class.is_release() && outcome != Some(Outcome::Done) {
                wrong_outcome.push(format!(
                    "{} and left off the target: {outcome:?}",
                    class.describe()
                ));
            }
        }
        let (expected, expected_version) = if upgraded {
            (to.sha256, &args.to_version)
        } else {
            (from.sha256, &args.from_version)
        };
        let mut wrong_module = Vec::new();
        let mut not_running = Vec::new();
        let mut wrong_controllers = Vec::new();
        let mut data_changed = Vec::new();
        let rec = SimIc::new(Rc::clone(&sim), recovery(i as u32));
        match rec.canister_status(*id) {
            Err(e) => {
                wrong_controllers.push(format!("canister_status as its recovery controller: {e}"))
            }
            Ok(st) => {
                let hash = st.module_hash.as_ref().map(|h| h.to_vec());
                if hash.as_deref() == Some(&to.sha256[..]) {
                    v.on_target += 1;
                    rep.on_target += 1;
                } else if hash.as_deref() == Some(&from.sha256[..]) {
                    v.on_source += 1;
                    rep.on_source += 1;
                }
                if hash.as_deref() != Some(&expected[..]) {
                    wrong_module.push(format!(
                        "module {} where {} was expected",
                        hash.map(hex::encode).unwrap_or_else(|| "(none)".into()),
                        hex::encode(expected)
                    ));
                }
                if st.status != RunStatus::Running {
                    not_running.push(format!("not running ({:?})", st.status));
                }
                let mut controllers = st.settings.controllers.clone();
                controllers.sort();
                let mut wanted = vec![manager, recovery(i as u32)];
                wanted.sort();
                if controllers != wanted {
                    wrong_controllers.push(format!("controllers {controllers:?}"));
                }
            }
        }
        match (&before[i], health(*id)) {
            (Some(b), Some(a)) => {
                if a.version != *expected_version {
                    wrong_module.push(format!(
                        "reports version {} where {expected_version} was expected",
                        a.version
                    ));
                }
                if a.checksum == b.checksum && a.records == b.records {
                    v.checksums_equal += 1;
                } else {
                    data_changed.push(format!(
                        "data changed: {} records (checksum {}) before, {} ({}) after",
                        b.records,
                        hex::encode(&b.checksum),
                        a.records,
                        hex::encode(&a.checksum)
                    ));
                }
            }
            (Some(_), None) => data_changed.push("fleet_health no longer answers".into()),
            (None, _) if args.from.is_none() => {
                data_changed.push("fleet_health did not answer".into())
            }
            (None, _) => {}
        }
        v.wrong_module += wrong_module.len() as u64;
        v.not_running += not_running.len() as u64;
        v.wrong_controllers += wrong_controllers.len() as u64;
        v.data_changed += data_changed.len() as u64;
        v.wrong_outcome += wrong_outcome.len() as u64;
        let texts = [
            wrong_module,
            not_running,
            wrong_controllers,
            data_changed,
            wrong_outcome,
        ]
        .concat();
        if !texts.is_empty() {
            rep.with_problems += 1;
        }
        v.failed_checks += texts.len() as u64;
        for what in texts {
            if v.problems.len() < MAX_PROBLEMS_SHOWN {
                v.problems.push(format!("{id} (user {i}): {what}"));
            }
        }
    }
    let verify = verify_start.elapsed();

    let finished = outcomes.upgraded
        + outcomes.failed
        + outcomes.rolled_back
        + outcomes.skipped
        + outcomes.cancelled;
    let stages = status
        .waves
        .iter()
        .map(|w| StageReport {
            stage: mgr::wave_name(&w.label),
            size: w.size,
            upgraded: w.outcomes.done,
            failed: w.outcomes.failed,
            rolled_back: w.outcomes.rolled_back,
            skipped: w.outcomes.skipped,
            simulated_secs: match (w.opened_at, w.completed_at) {
                (Some(o), Some(c)) => Some(c.saturating_sub(o) as f64 / 1e9),
                _ => None,
            },
        })
        .collect();
    let faults = (!args.faults.is_empty()).then(|| FaultReport {
        spec: spec.clone(),
        busy_secs: BUSY_SECS,
        frozen_secs: FROZEN_SECS,
        failure_policy,
        classes: by_class.into_values().collect(),
        deferrals: status.deferrals.clone(),
        deferred: status.counts.deferred(),
        waiting: status.counts.busy,
        holds: inj.holds.clone(),
        manager_low: (spec.manager_low_secs > 0).then(|| inj.low_report.clone()),
        manager_upgrade: spec.manager_upgrade.then(|| inj.upgrade_report.clone()),
        follow_up: follow_up.map(|(rollout_id, n, driven, outcomes)| FollowUpReport {
            rollout_id,
            canisters: n,
            phase: phase_name(&driven.status.phase),
            rounds: driven.rounds,
            simulated_secs: driven.simulated_ns as f64 / 1e9,
            outcomes,
            deferrals: driven.status.deferrals,
        }),
    });
    let report = RehearsalReport {
        users: args.users,
        manager,
        from_version: args.from_version.clone(),
        from_sha256: hex::encode(from.sha256),
        to_version: args.to_version.clone(),
        to_sha256: hex::encode(to.sha256),
        bundled: !custom,
        notes_per_user: notes,
        faults_injected,
        rollout_id: started.id,
        phase: phase_name(&status.phase),
        halted: matches!(status.phase, Phase::Halted(_)),
        rounds: first.rounds,
        simulated_secs: first.simulated_ns as f64 / 1e9,
        upgrades_per_round: if first.rounds == 0 {
            0.0
        } else {
            (outcomes.upgraded as f64 / first.rounds as f64 * 1000.0).round() / 1000.0
        },
        outcomes,
        stages,
        manager_instructions,
        manager_instructions_per_upgrade: manager_instructions / finished.max(1),
        tick_instructions_mean: metrics.tick_instructions_mean,
        tick_instructions_max: metrics.tick_instructions_max,
        provision_rounds,
        faults,
        verified: v,
        wall: WallTimes {
            load_wasm_secs: secs(load_wasm),
            setup_secs: secs(setup),
            provision_secs: secs(provision),
            write_data_secs: secs(write_data),
            rollout_secs: secs(rollout),
            verify_secs: secs(verify),
            total_secs: secs(total.elapsed()),
        },
    };
    Ok(report)
}

fn group(n: impl Into<u128>) -> String {
    let n: u128 = n.into();
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn outcome_text(o: &OutcomeCounts) -> String {
    let parts: Vec<String> = [
        (o.upgraded, "upgraded"),
        (o.failed, "failed"),
        (o.rolled_back, "rolled back"),
        (o.deferred, "deferred"),
        (o.skipped, "skipped"),
        (o.cancelled, "cancelled"),
        (o.not_started, "not started"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// What was asked for, for people: `30 post_upgrade traps, 20 ...`.
fn injected_text(f: &FaultReport) -> String {
    let count = |class: FaultClass| {
        f.classes
            .iter()
            .find(|c| c.class == class)
            .map_or(0, |c| c.canisters)
    };
    let mut parts = Vec::new();
    for (class, what) in [
        (FaultClass::Trap, "with a trapping post_upgrade".to_string()),
        (FaultClass::Health, "failing the health check".to_string()),
        (
            FaultClass::Busy,
            format!("busy (stop hangs {} s)", f.busy_secs),
        ),
        (
            FaultClass::Frozen,
            format!("frozen (owner tops up after {} s)", f.frozen_secs),
        ),
    ] {
        if count(class) > 0 {
            parts.push(format!("{} {what}", count(class)));
        }
    }
    if f.spec.manager_low_secs > 0 {
        parts.push(format!(
            "manager out of cycles {} s then low {} s",
            f.spec.manager_low_secs,
            f.spec.manager_low_secs / 2
        ));
    }
    if f.spec.manager_upgrade {
        parts.push("manager upgraded mid-rollout".into());
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The report for people.
pub fn report_text(r: &RehearsalReport) -> String {
    let o = &r.outcomes;
    let mut t = format!(
        "rehearsal on ic_sim: {} users, {} -> {}{}\n",
        r.users,
        r.from_version,
        r.to_version,
        if r.bundled {
            " (bundled user canister)"
        } else {
            ""
        }
    );
    t += &format!(
        "  provisioned {} canisters in {} rounds ({:.1} s), {} notes each ({:.1} s)\n",
        r.users,
        r.provision_rounds,
        r.wall.provision_secs,
        r.notes_per_user,
        r.wall.write_data_secs
    );
    if let Some(f) = &r.faults {
        t += &format!("  faults: {}\n", injected_text(f));
        if let Some(p) = &f.failure_policy {
            t += &format!("  failure policy: {p}\n");
        }
    }
    t += &format!("rollout {}: {}\n", r.rollout_id, r.phase);
    t += &format!(
        "  rounds {}, simulated time {:.0} s ({:.1} min), {:.3} upgrades per round\n",
        r.rounds,
        r.simulated_secs,
        r.simulated_secs / 60.0,
        r.upgrades_per_round
    );
    t += &format!(
        "  upgraded {}, failed {}, rolled back {}, skipped {}, cancelled {}, deferred {}, not \
         started {}\n",
        o.upgraded, o.failed, o.rolled_back, o.skipped, o.cancelled, o.deferred, o.not_started
    );
    for s in &r.stages {
        t += &format!(
            "    {:>8}: {:>5} canisters, {:>5} upgraded, {} failed, {} rolled back{}\n",
            s.stage,
            s.size,
            s.upgraded,
            s.failed,
            s.rolled_back,
            s.simulated_secs
                .map(|x| format!(", {x:.0} s simulated"))
                .unwrap_or_default()
        );
    }
    t += &format!(
        "  manager instructions: {} in total, {} per upgrade; per timer tick {} mean, {} max\n",
        group(r.manager_instructions),
        group(r.manager_instructions_per_upgrade),
        group(r.tick_instructions_mean),
        group(r.tick_instructions_max)
    );
    if let Some(f) = &r.faults {
        t += &format!(
            "  deferrals: {} for the environment, {} for the manager; {} ended deferred\n",
            f.deferrals.environment, f.deferrals.manager, f.deferred
        );
        t += &format!(
            "  holds seen (rounds): draining {}, manager low on cycles {}, manager faults {}\n",
            f.holds.draining, f.holds.manager_low_cycles, f.holds.manager_faults
        );
        if let Some(l) = &f.manager_low {
            t += &match (l.injected, l.at_secs) {
                (true, Some(at)) => format!(
                    "  manager out of cycles at {at:.0} s for {} s, then {} s with {} liquid \
                     cycles ({} reserved per pipeline), then topped up{}\n",
                    l.out_of_cycles_secs,
                    l.low_secs,
                    l.low_liquid_cycles.map_or("?".into(), group),
                    l.pipeline_cycles_reserve.map_or("?".into(), group),
                    l.note
                        .as_ref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                ),
                _ => format!(
                    "  manager low on cycles: {}\n",
                    l.note.as_deref().unwrap_or("not injected")
                ),
            };
        }
        if let Some(u) = &f.manager_upgrade {
            t += &match (u.upgraded, u.at_secs) {
                (true, Some(at)) => format!(
                    "  manager drained at {at:.0} s, ready after {} s, stopped, upgraded, started, \
                     drain ended\n",
                    u.drain_secs
                ),
                _ => format!(
                    "  manager upgrade: {}\n",
                    u.note.as_deref().unwrap_or("not injected")
                ),
            };
        }
        if let Some(fu) = &f.follow_up {
            t += &format!(
                "rollout {} (follow-up from {} over the {} deferred): {}, {} rounds, {:.0} s \
                 simulated: {}\n",
                fu.rollout_id,
                r.from_version,
                fu.canisters,
                fu.phase,
                fu.rounds,
                fu.simulated_secs,
                outcome_text(&fu.outcomes)
            );
        }
        t += "by fault (final outcomes; where the checks found them):\n";
        for c in &f.classes {
            t += &format!(
                "  {:>20}: {:>5} canisters: {}; {} on {}, {} on {}{}\n",
                c.class.describe(),
                c.canisters,
                outcome_text(&c.outcomes),
                c.on_target,
                r.to_version,
                c.on_source,
                r.from_version,
                if c.with_problems > 0 {
                    format!("; {} with failed checks", c.with_problems)
                } else {
                    String::new()
                }
            );
        }
    }
    let v = &r.verified;
    t += &format!(
        "verified from outside: {} canisters, {} on {}, {} on {}, {} with unchanged data, {} failed checks\n",
        v.canisters, v.on_target, r.to_version, v.on_source, r.from_version, v.checksums_equal,
        v.failed_checks
    );
    if v.failed_checks > 0 {
        t += &format!(
            "  failed: {} module or version, {} not running, {} controllers, {} data, {} outcome\n",
            v.wrong_module, v.not_running, v.wrong_controllers, v.data_changed, v.wrong_outcome
        );
    }
    for p in &v.problems {
        t += &format!("  {p}\n");
    }
    t += &format!(
        "wall time {:.1} s (load {:.1}, setup {:.1}, provision {:.1}, data {:.1}, rollout {:.1}, verify {:.1})",
        r.wall.total_secs,
        r.wall.load_wasm_secs,
        r.wall.setup_secs,
        r.wall.provision_secs,
        r.wall.write_data_secs,
        r.wall.rollout_secs,
        r.wall.verify_secs
    );
    t
}
