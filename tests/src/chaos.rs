//! Deterministic simulation testing of the fleet manager: one seed fixes a fleet, a rollout
//! plan, a schedule of faults and of operator actions; ic_sim runs the real wasm round by round
//! and the invariants are checked as it goes. A failing seed replays exactly
//! (`cargo run -p fleet_tests --bin chaos -- --seed N --trace`).
//!
//! Faults: release faults on chosen canisters (a trapping `post_upgrade`, a failing or trapping
//! health check: the user canister's test-only `fault_switch`), busy canisters whose stop hangs,
//! frozen canisters, late management responses, lost health-check responses, management calls
//! and calls to a user canister rejected with each reject code, the manager out of cycles, the manager drained and
//! upgraded mid-rollout. Operator actions: pause, resume, abort, rollback, a second rollout,
//! owner requests, policy changes.
//!
//! Invariants, checked after every round unless noted:
//! 1. never more pipelines in flight than the plan's limit;
//! 2. no canister stopped unless its pipeline is in flight (and the manager is not frozen or
//!    being upgraded, which the pipeline waits out);
//! 3. the recovery principal is always a controller, and the manager too;
//! 4. the registry agrees with the outside view: a canister not in flight runs the module of
//!    the release the registry names;
//! 5. the status counts add up to the rollout's records, and by wave;
//! 6. the manager never traps (timer, callbacks, updates);
//! 7. once faults stop, the rollout comes to rest (completed, halted, paused or aborted, nothing
//!    in flight) within a bounded number of rounds;
//! 8. at the end, every canister's notes read back as written (checked once, at rest: a query
//!    per note is the costliest check).
//!
//! Invariants 2 and 4 need the rollout's per-canister results (one query); they are checked
//! every round in which a canister is stopped or the registry could have changed, and at rest.

use crate::rollout::*;
use crate::{padded, try_call_on, Fleet};
use candid::{encode_one, Principal};
use fleet_api::endpoint::Endpoint;
use fleet_api::manager::method::{ListUserCanisters, SetUpgradePolicy, UpdateSettings};
use fleet_api::manager::*;
use fleet_api::rollout::method::{
    AbortRollout, Drain, EndDrain, GetRolloutStatus, PauseRollout, RequestUpgrade, ResumeRollout,
    Rollback, RolloutResults, StartRollout,
};
use fleet_api::rollout::*;
use fleet_api::user::method::Get;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A small deterministic generator (SplitMix64): the whole run follows from the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn draw(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.draw() % (hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.draw() % 100 < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.draw() as usize % items.len()]
    }
}

/// The size of one seed's world.
#[derive(Clone, Debug)]
pub struct Options {
    pub min_canisters: u32,
    pub max_canisters: u32,
    /// Faults and operator actions happen before this round; afterwards the run must settle.
    pub fault_rounds: u64,
    /// Rounds the rollout may take to come to rest once faults stopped (invariant 7).
    pub settle_rounds: u64,
    /// Print every event and a status line as the run goes.
    pub trace: bool,
    /// Positions in the seed's schedule of events to leave out (shrinking a failure).
    pub skip: BTreeSet<usize>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_canisters: 20,
            max_canisters: 60,
            fault_rounds: 150,
            settle_rounds: 4_000,
            trace: false,
            skip: BTreeSet::new(),
        }
    }
}

/// One injected fault or operator action.
#[derive(Clone, Debug)]
pub enum Event {
    TrapPostUpgrade(usize),
    FailHealth(usize),
    TrapHealth(usize),
    Busy {
        canister: usize,
        rounds: u64,
    },
    Freeze {
        canister: usize,
        rounds: u64,
    },
    RejectCalls {
        canister: usize,
        n: u32,
        code: u32,
    },
    /// Management calls about the canister (stop, snapshot, install, start...) rejected.
    RejectManagement {
        canister: usize,
        n: u32,
        code: u32,
    },
    DropHealthReplies {
        canister: usize,
        n: u32,
    },
    DelayManagement {
        n: u32,
        rounds: u64,
    },
    ManagerDry {
        rounds: u64,
    },
    ManagerUpgrade,
    Pause,
    Resume,
    Abort,
    Rollback,
    /// Another rollout (refused while one runs), its plan drawn with the schedule.
    SecondRollout(Box<RolloutPlanArg>),
    Request(usize),
    Policy {
        canister: usize,
        manual: bool,
    },
}

/// An invariant that did not hold, with the events that led there.
#[derive(Debug)]
pub struct Violation {
    pub seed: u64,
    pub round: u64,
    pub invariant: String,
    pub trace: Vec<(u64, Event)>,
    /// Positions in the schedule of the events in `trace`.
    pub applied: Vec<usize>,
    /// Events of the schedule left out (after shrinking).
    pub skipped: BTreeSet<usize>,
}

impl Violation {
    /// "invariant N", to tell whether a shrunk run fails the same way.
    fn kind(&self) -> &str {
        self.invariant.split(':').next().unwrap_or("")
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} violated an invariant at round {}: {}",
            self.seed, self.round, self.invariant
        )?;
        writeln!(f, "events up to there (round: event):")?;
        for (round, e) in &self.trace {
            writeln!(f, "  {round:>5}: {e:?}")?;
        }
        let skip: Vec<String> = self.skipped.iter().map(|i| i.to_string()).collect();
        write!(
            f,
            "replay: cargo run -p fleet_tests --bin chaos -- --seed {} --trace{}",
            self.seed,
            if skip.is_empty() {
                String::new()
            } else {
                format!(" --skip {}", skip.join(","))
            }
        )
    }
}

/// What one seed did.
#[derive(Debug, Default, Clone)]
pub struct SeedReport {
    pub canisters: u32,
    pub rounds: u64,
    pub events: usize,
    pub rollouts: u64,
    pub done: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub deferred: u64,
    pub deferrals_environment: u64,
    pub deferrals_manager: u64,
}

const NOTES: u32 = 2;

/// The releases every seed publishes: v1 and v2 with the test-only per-canister fault switch,
/// and a rebuild of v1 (another module hash, the same app version).
struct Releases {
    v1: Vec<u8>,
    v2: Vec<u8>,
    v1b: Vec<u8>,
}

fn releases() -> Releases {
    let v1 = wasm_build::wasm("user_canister", &["fault_switch"]);
    let v2 = wasm_build::wasm("user_canister", &["v2", "fault_switch"]);
    let v1b = padded(&v1, 64);
    Releases { v1, v2, v1b }
}

struct World {
    seed: u64,
    fleet: Fleet,
    ids: Vec<Principal>,
    limit: u32,
    trace: Vec<(u64, Event)>,
    applied: Vec<usize>,
    skipped: BTreeSet<usize>,
    round: u64,
    /// Rounds until which a fault stays on: busy and frozen canisters, a dry manager.
    busy_until: BTreeMap<usize, u64>,
    frozen_until: BTreeMap<usize, (u64, u128)>,
    manager_dry_until: Option<(u64, u128)>,
    verbose: bool,
    rollouts: u64,
}

impl World {
    fn violation(&self, invariant: String) -> Violation {
        Violation {
            seed: self.seed,
            round: self.round,
            invariant,
            trace: self.trace.clone(),
            applied: self.applied.clone(),
            skipped: self.skipped.clone(),
        }
    }

    fn manager_usable(&self) -> bool {
        self.manager_dry_until.is_none()
    }

    fn status(&self) -> Option<RolloutStatus> {
        let s = self
            .fleet
            .ask::<GetRolloutStatus>(self.fleet.controller, ());
        s.into_result().ok().flatten()
    }

    fn results(&self) -> Vec<RolloutCanisterResult> {
        let arg = RolloutResultsArg {
            start_after: None,
            limit: Some(MAX_ROLLOUT_PAGE),
        };
        let page = self
            .fleet
            .ask::<RolloutResults>(self.fleet.controller, (arg,));
        let page = page.into_result().ok().flatten();
        page.map(|p| p.results).unwrap_or_default()
    }

    fn registry(&self) -> Vec<UserCanister> {
        let arg = ListUserCanistersArg {
            filter: CanisterFilter::All,
            start_after: None,
            limit: Some(MAX_PAGE_SIZE),
        };
        let page = self
            .fleet
            .ask::<ListUserCanisters>(self.fleet.controller, (arg,));
        page.into_result().map(|p| p.canisters).unwrap_or_default()
    }

    /// An update as the operator; rejects (the manager is frozen) and refusals are tolerated,
    /// traps are caught by invariant 6.
    fn operator<E: Endpoint>(&self, args: E::Args) {
        let _ = self.fleet.try_ask::<E>(self.fleet.controller, args);
    }

    /// Starts (`Drain`) or ends (`EndDrain`) a drain as the operator; `None` when the manager
    /// rejects the call or refuses.
    fn drain<E: Endpoint<Args = (), Reply = DrainReply>>(&self) -> Option<DrainStatus> {
        let reply = self.fleet.try_ask::<E>(self.fleet.controller, ()).ok()?;
        reply.into_result().ok()
    }

    fn second_rollout(&self, rng: &mut Rng) -> Event {
        let target = rng.pick(&["2.0.0", "1.0.0+b2", "1.0.0"]);
        Event::SecondRollout(Box::new(self.plan(rng, target, None)))
    }

    fn plan(&self, rng: &mut Rng, target: &str, from: Option<&str>) -> RolloutPlanArg {
        let mut p = RolloutPlanArg::to(target);
        p.from_version = from.map(str::to_string);
        p.canary = Some(match rng.range(0, 2) {
            0 => Canary::None,
            _ => Canary::Count(rng.range(1, 3) as u32),
        });
        p.waves_percent = Some(if rng.chance(50) {
            vec![100]
        } else {
            vec![rng.range(10, 60) as u8, 100]
        });
        p.bake_secs = Some(rng.range(0, 30));
        p.limits = Some(Limits {
            max_in_flight: self.limit,
            starts_per_minute: rng.range(30, 600) as u32,
            burst: rng.range(1, 10) as u32,
            max_starts_per_tick: rng.range(1, 8) as u32,
            per_subnet: None,
        });
        p.failure = Some(FailurePolicy {
            max_failed_percent: rng.range(20, 100) as u8,
            max_consecutive_failures: rng.range(0, 4) as u32,
            halt_scope: None,
        });
        p.retry = Some(RetryPolicy {
            stop_attempts: rng.range(1, 4) as u32,
            backoff_base_ns: rng.range(2, 20) * 1_000_000_000,
            backoff_max_ns: 60_000_000_000,
        });
        p.stop_deadline_secs = Some(rng.range(5, 60));
        p.take_snapshot = Some(rng.chance(90));
        p.keep_snapshot_secs = Some(0);
        p
    }

    fn draw_event(&self, rng: &mut Rng) -> Event {
        let n = self.ids.len() as u64;
        let c = |rng: &mut Rng| rng.range(0, n - 1) as usize;
        match rng.range(0, 99) {
            0..=11 => Event::TrapPostUpgrade(c(rng)),
            12..=17 => Event::FailHealth(c(rng)),
            18..=20 => Event::TrapHealth(c(rng)),
            21..=32 => Event::Busy {
                canister: c(rng),
                rounds: rng.range(10, 200),
            },
            33..=40 => Event::Freeze {
                canister: c(rng),
                rounds: rng.range(10, 200),
            },
            41..=43 => Event::RejectCalls {
                canister: c(rng),
                n: rng.range(1, 3) as u32,
                code: rng.pick(&[1, 2, 3, 4, 5]),
            },
            44..=46 => Event::RejectManagement {
                canister: c(rng),
                n: rng.range(1, 4) as u32,
                code: rng.pick(&[1, 2, 3, 4, 5, 6]),
            },
            47..=51 => Event::DropHealthReplies {
                canister: c(rng),
                n: rng.range(1, 2) as u32,
            },
            52..=57 => Event::DelayManagement {
                n: rng.range(1, 10) as u32,
                rounds: rng.range(1, 20),
            },
            58..=61 => Event::ManagerDry {
                rounds: rng.range(5, 60),
            },
            62..=65 => Event::ManagerUpgrade,
            66..=71 => Event::Pause,
            72..=79 => Event::Resume,
            80..=82 => Event::Abort,
            83..=85 => Event::Rollback,
            86..=89 => self.second_rollout(rng),
            90..=95 => Event::Request(c(rng)),
            _ => Event::Policy {
                canister: c(rng),
                manual: rng.chance(50),
            },
        }
    }

    fn set_switch(&self, i: usize, trap_post_upgrade: bool, fail: bool, trap: bool) {
        #[derive(candid::CandidType)]
        struct FaultSwitch {
            trap_post_upgrade: bool,
            fail_health: bool,
            trap_health: bool,
        }
        // The recovery principal is a controller, which the switch requires. `set_faults`
        // exists only in `fault_switch` builds, so no endpoint type declares it.
        let _ = self.fleet.sim.update_call(
            self.ids[i],
            recovery(i as u32),
            "set_faults",
            encode_one(FaultSwitch {
                trap_post_upgrade,
                fail_health: fail,
                trap_health: trap,
            })
            .unwrap(),
        );
    }

    fn apply(&mut self, e: &Event) {
        let sim = &self.fleet.sim;
        match *e {
            Event::TrapPostUpgrade(i) => self.set_switch(i, true, false, false),
            Event::FailHealth(i) => self.set_switch(i, false, true, false),
            Event::TrapHealth(i) => self.set_switch(i, false, false, true),
            Event::Busy { canister, rounds } => {
                sim.fault_hold_call_context(self.ids[canister], true);
                self.busy_until.insert(canister, self.round + rounds);
            }
            Event::Freeze { canister, rounds } => {
                if !self.frozen_until.contains_key(&canister) {
                    let balance = sim.cycle_balance(self.ids[canister]);
                    sim.fault_drain_cycles(self.ids[canister]);
                    self.frozen_until
                        .insert(canister, (self.round + rounds, balance));
                }
            }
            Event::RejectCalls { canister, n, code } => {
                let code = ic_sim::RejectCode::from_u32(code).expect("a reject code");
                sim.fault_reject_next_calls(self.ids[canister], n, code);
            }
            Event::RejectManagement { canister, n, code } => {
                let code = ic_sim::RejectCode::from_u32(code).expect("a reject code");
                sim.fault_reject_management_calls(self.ids[canister], n, code);
            }
            Event::DropHealthReplies { canister, n } => {
                sim.fault_drop_responses(self.ids[canister], n);
            }
            Event::DelayManagement { n, rounds } => {
                sim.fault_delay_responses(Principal::management_canister(), n, rounds);
            }
            Event::ManagerDry { rounds } => {
                if self.manager_dry_until.is_none() {
                    let balance = sim.cycle_balance(self.fleet.manager);
                    sim.fault_drain_cycles(self.fleet.manager);
                    self.manager_dry_until = Some((self.round + rounds, balance));
                }
            }
            Event::ManagerUpgrade => {
                if self.manager_usable() {
                    self.upgrade_manager();
                }
            }
            Event::Pause => self.operator::<PauseRollout>(()),
            Event::Resume => self.operator::<ResumeRollout>(()),
            Event::Abort => self.operator::<AbortRollout>(()),
            Event::Rollback => self.operator::<Rollback>((RollbackArg::ToRelease {
                to_version: "1.0.0".into(),
                limits: None,
            },)),
            Event::SecondRollout(ref plan) => {
                self.rollouts += 1;
                self.operator::<StartRollout>((plan.as_ref().clone(),));
            }
            Event::Request(i) => {
                let arg = RequestUpgradeArg {
                    canister_id: Some(self.ids[i]),
                    target_version: None,
                };
                let _ = self
                    .fleet
                    .try_ask::<RequestUpgrade>(owner(i as u32), (arg,));
            }
            Event::Policy { canister, manual } => {
                let policy = if manual {
                    UpgradePolicy::Manual
                } else {
                    UpgradePolicy::Auto
                };
                let arg = SetUpgradePolicyArg {
                    canister_id: self.ids[canister],
                    policy,
                };
                let _ = self
                    .fleet
                    .try_ask::<SetUpgradePolicy>(owner(canister as u32), (arg,));
            }
        }
    }

    /// The operator's upgrade of the manager: drain until ready (bounded), stop, upgrade to
    /// the same module, start, end the drain. Gives up (ending the drain) when it does not get
    /// ready in time, as an operator would.
    fn upgrade_manager(&mut self) {
        let f = &self.fleet;
        let mut ready = false;
        for _ in 0..600 {
            match self.drain::<Drain>() {
                Some(d) if d.ready => {
                    ready = true;
                    break;
                }
                Some(_) => f.step(),
                None => return,
            }
        }
        if ready {
            f.sim
                .stop_canister(f.manager, Some(f.controller))
                .expect("stopping the drained manager");
            f.sim
                .upgrade_canister(
                    f.manager,
                    wasm_build::wasm("fleet_manager", &[]),
                    candid::encode_args(()).unwrap(),
                    Some(f.controller),
                )
                .expect("upgrading the drained manager");
            f.sim
                .start_canister(f.manager, Some(f.controller))
                .expect("starting the manager");
        }
        self.drain::<EndDrain>();
    }

    /// Lifts faults whose time is over.
    fn expire_faults(&mut self) {
        let sim = &self.fleet.sim;
        let round = self.round;
        self.busy_until.retain(|&i, until| {
            if *until <= round {
                sim.fault_hold_call_context(self.ids[i], false);
                false
            } else {
                true
            }
        });
        self.frozen_until.retain(|&i, (until, balance)| {
            if *until <= round {
                sim.add_cycles(self.ids[i], *balance);
                false
            } else {
                true
            }
        });
        if let Some((until, balance)) = self.manager_dry_until {
            if until <= round {
                sim.add_cycles(self.fleet.manager, balance);
                self.manager_dry_until = None;
                // The first update call after the top-up wakes the manager's lost timer; an
                // operator's no-op settings update stands for any call.
                self.operator::<UpdateSettings>((SettingsUpdate::default(),));
            }
        }
    }

    fn lift_all_faults(&mut self) {
        for (_, until) in self.busy_until.iter_mut() {
            *until = 0;
        }
        for (_, (until, _)) in self.frozen_until.iter_mut() {
            *until = 0;
        }
        if let Some((until, _)) = self.manager_dry_until.as_mut() {
            *until = 0;
        }
        self.expire_faults();
        let sim = &self.fleet.sim;
        sim.fault_delay_responses(Principal::management_canister(), 0, 0);
        for &id in &self.ids {
            sim.fault_reject_next_calls(id, 0, ic_sim::RejectCode::SysTransient);
            sim.fault_reject_management_calls(id, 0, ic_sim::RejectCode::SysTransient);
            sim.fault_drop_responses(id, 0);
        }
        for i in 0..self.ids.len() {
            self.set_switch(i, false, false, false);
        }
    }

    /// Invariants 1-6 after a round.
    fn check(&self, full: bool) -> Result<Option<RolloutStatus>, Violation> {
        let sim = &self.fleet.sim;
        if sim.trap_count(self.fleet.manager) > 0 {
            return Err(self.violation(format!(
                "invariant 6: the manager trapped {} times",
                sim.trap_count(self.fleet.manager)
            )));
        }
        let mut stopped = Vec::new();
        for (i, id) in self.ids.iter().enumerate() {
            let controllers = sim.get_controllers(*id);
            if !controllers.contains(&recovery(i as u32))
                || !controllers.contains(&self.fleet.manager)
            {
                return Err(
                    self.violation(format!("invariant 3: {id} has controllers {controllers:?}"))
                );
            }
            if sim.is_running(*id) != Some(true) {
                stopped.push(*id);
            }
        }
        if !self.manager_usable() {
            // The frozen manager answers nothing; its pipelines wait for it.
            return Ok(None);
        }
        let Some(status) = self.status() else {
            return Ok(None);
        };
        if status.counts.in_flight > u64::from(self.limit) {
            return Err(self.violation(format!(
                "invariant 1: {} in flight, limit {}",
                status.counts.in_flight, self.limit
            )));
        }
        let c = &status.counts;
        let by_wave: u64 = status.waves.iter().map(|w| w.size).sum::<u64>() + status.requests.size;
        if c.total() != by_wave {
            return Err(self.violation(format!(
                "invariant 5: counts {c:?} add up to {}, waves to {by_wave}",
                c.total()
            )));
        }
        if stopped.is_empty() && !full {
            return Ok(Some(status));
        }
        let results = self.results();
        if results.len() as u64 != c.total() {
            return Err(self.violation(format!(
                "invariant 5: {} records, counts say {}",
                results.len(),
                c.total()
            )));
        }
        let in_flight: BTreeSet<Principal> = results
            .iter()
            .filter(|r| !matches!(r.step, Step::Pending | Step::Busy | Step::Finished(_)))
            .map(|r| r.canister_id)
            .collect();
        for id in &stopped {
            if !in_flight.contains(id) {
                let step = results
                    .iter()
                    .find(|r| r.canister_id == *id)
                    .map(|r| r.step.clone());
                return Err(self.violation(format!(
                    "invariant 2: {id} is stopped but its pipeline is not in flight (step \
                     {step:?}, rollout {})",
                    status.id
                )));
            }
        }
        if full {
            for rec in self.registry() {
                if in_flight.contains(&rec.canister_id) {
                    continue;
                }
                if rec.status == CanisterStatus::Upgrading {
                    return Err(self.violation(format!(
                        "invariant 4: registry says {} is upgrading, no pipeline is in flight",
                        rec.canister_id
                    )));
                }
                let module = sim.module_hash(rec.canister_id).map(|h| h.to_vec());
                let named = rec.current_release.as_ref().map(|r| r.sha256.clone());
                if module != named {
                    let version = rec.current_release.map(|r| r.version);
                    return Err(self.violation(format!(
                        "invariant 4: registry says {} runs {version:?}, it runs {}",
                        rec.canister_id,
                        module.map(hex::encode).unwrap_or_default()
                    )));
                }
            }
        }
        Ok(Some(status))
    }

    fn at_rest(s: &RolloutStatus) -> bool {
        s.counts.in_flight == 0
            && (s.phase.is_finished() || matches!(s.phase, Phase::Paused | Phase::Halted(_)))
    }
}

/// Runs one seed; `Err` names the invariant that failed and the events before it.
pub fn run_seed(seed: u64, opts: &Options) -> Result<SeedReport, Violation> {
    let mut rng = Rng::new(seed);
    let n = rng.range(u64::from(opts.min_canisters), u64::from(opts.max_canisters)) as u32;
    let rel = releases();
    let fleet = fleet_for(n + 1);
    fleet.publish_default("1.0.0", &rel.v1);
    fleet.publish(fleet.controller, "2.0.0", &rel.v2);
    fleet.publish(fleet.controller, "1.0.0+b2", &rel.v1b);
    let ids: Vec<Principal> = fleet
        .provision_with_notes(n, NOTES)
        .into_iter()
        .map(|(_, c)| c)
        .collect();

    let limit = rng.range(1, 8) as u32;
    let mut w = World {
        seed,
        fleet,
        ids,
        limit,
        trace: Vec::new(),
        applied: Vec::new(),
        skipped: opts.skip.clone(),
        round: 0,
        busy_until: BTreeMap::new(),
        frozen_until: BTreeMap::new(),
        manager_dry_until: None,
        verbose: opts.trace,
        rollouts: 1,
    };
    // The schedule: every event is drawn now, so the seed alone fixes the run.
    let events = rng.range(6, 20);
    let mut schedule: Vec<(u64, Event)> = (0..events)
        .map(|_| (rng.range(1, opts.fault_rounds), w.draw_event(&mut rng)))
        .collect();
    // Most first rollouts end within the window: another one keeps the faults meeting work.
    let second = w.second_rollout(&mut rng);
    schedule.push((rng.range(opts.fault_rounds / 3, opts.fault_rounds), second));
    schedule.sort_by_key(|(r, _)| *r);
    // Release faults set before the rollout starts apply to its first upgrades.
    for _ in 0..rng.range(0, 3) {
        let i = rng.range(0, u64::from(n) - 1) as usize;
        schedule.insert(0, (0, Event::TrapPostUpgrade(i)));
    }
    let plan = w.plan(&mut rng, "2.0.0", Some("1.0.0"));
    if w.verbose {
        println!("seed {seed}: {n} canisters, in flight {limit}, plan {plan:?}");
    }
    let mut next = 0;
    let mut started = false;
    let end_of_faults = opts.fault_rounds;
    let deadline = end_of_faults + opts.settle_rounds;
    let last_status = loop {
        while next < schedule.len() && schedule[next].0 <= w.round {
            let e = schedule[next].1.clone();
            next += 1;
            if opts.skip.contains(&(next - 1)) {
                continue;
            }
            if w.verbose {
                println!("round {:>5}: {e:?}", w.round);
            }
            w.trace.push((w.round, e.clone()));
            w.applied.push(next - 1);
            w.apply(&e);
        }
        if !started {
            if let Err(e) = w.fleet.start_rollout(plan.clone()) {
                return Err(w.violation(format!("the first rollout was refused: {e:?}")));
            }
            started = true;
        }
        if w.round == end_of_faults {
            w.lift_all_faults();
            if w.verbose {
                println!("round {:>5}: faults lifted", w.round);
            }
        }
        w.fleet.step();
        w.round += 1;
        w.expire_faults();
        let full = w.round.is_multiple_of(25);
        let status = w.check(full)?;
        if let Some(s) = &status {
            if w.verbose && w.round.is_multiple_of(50) {
                println!(
                    "round {:>5}: rollout {} {:?} hold {:?} {:?}",
                    w.round, s.id, s.phase, s.hold, s.counts
                );
            }
            if w.round > end_of_faults && World::at_rest(s) {
                break s.clone();
            }
        }
        if w.round >= deadline {
            let f = &w.fleet;
            let m = f.metrics();
            return Err(w.violation(format!(
                "invariant 7: no rest {} rounds after the faults stopped: {:?}; the manager: \
                 running {:?}, balance {}, liquid {}, draining {}, timer silent {} s, calls in \
                 flight {}, ticks measured {}",
                opts.settle_rounds,
                status,
                f.sim.is_running(f.manager),
                f.sim.cycle_balance(f.manager),
                m.liquid_cycles,
                m.draining,
                m.timer_silent_secs,
                m.calls_in_flight,
                m.ticks_measured
            )));
        }
    };
    // At rest: the full checks, then every note of every canister.
    w.check(true)?;
    for (i, id) in w.ids.iter().enumerate() {
        for k in 0..NOTES {
            let reply = try_call_on::<Get>(&w.fleet.sim, *id, owner(i as u32), (note_key(k),))
                .map(|r| r.into_result())
                .map_err(|e| format!("{e:?}"));
            let text = match reply {
                Ok(Ok(Some(note))) => note.text,
                other => {
                    return Err(w.violation(format!("invariant 8: note {k} of {id}: {other:?}")))
                }
            };
            if text != note_text(i as u32, k) {
                return Err(w.violation(format!("invariant 8: note {k} of {id} reads {text:?}")));
            }
        }
    }
    let s = last_status;
    Ok(SeedReport {
        canisters: n,
        rounds: w.round,
        events: w.trace.len(),
        rollouts: w.rollouts,
        done: s.counts.done,
        failed: s.counts.failed,
        rolled_back: s.counts.rolled_back,
        deferred: s.counts.deferred(),
        deferrals_environment: s.deferrals.environment,
        deferrals_manager: s.deferrals.manager,
    })
}

/// Shrinks a failure to the fewest events that still break the same invariant: leaves out one
/// event at a time and keeps it out when the run still fails that way (each try is a whole
/// run of the seed).
pub fn shrink(opts: &Options, failure: Violation) -> Violation {
    let mut best = failure;
    let mut i = 0;
    while i < best.applied.len() {
        let mut tried = opts.clone();
        tried.trace = false;
        tried.skip = best.skipped.clone();
        tried.skip.insert(best.applied[i]);
        match run_seed(best.seed, &tried) {
            Err(v) if v.kind() == best.kind() => best = v,
            _ => i += 1,
        }
    }
    best
}
