//! The rollout engine's synchronous half: plans in, `rollout_core` driving, state persisted,
//! registry and logs kept in step. Nothing here awaits; `driver.rs` performs the calls that
//! `rollout_core` asks for and feeds the results back through [`on_result`].
//!
//! The current rollout lives in stable memory (its header in a stable cell, its records,
//! queues and events in stable maps) and in a heap cache rebuilt from it after an upgrade.
//! Every change is written through before the message ends, so a trap or an upgrade loses
//! nothing that was committed.

use crate::memory::{self, Memory, Stored};
use crate::registry::push_history;
use crate::state::{self, FleetSnapshot, RolloutMeta};
use candid::Principal;
use fleet_api::manager::{
    CanisterStatus, ReleaseRef, UpgradeEvent, UpgradeOutcome, UpgradePolicy as ApiPolicy,
    UserCanister,
};
use fleet_api::rollout::RolloutStatus as WireStatus;
use fleet_api::rollout::{
    LogPageArg, PipelineLogEntry, PipelineLogKind, PipelineLogPage, RequestUpgradeError,
    RollbackError, RolloutCanisterResult, RolloutControlError, RolloutCounters, RolloutEventsPage,
    RolloutPlanArg, RolloutResultsArg, RolloutResultsPage, RolloutStarted, StartRolloutError,
    MAX_ROLLOUT_PAGE,
};
use fleet_api::wire::Wire;
use rollout_core::StableStore;
use rollout_core::{
    Action, ActionResult, Cohort, CohortBuilder, CohortMember, FleetCanister, Limits, ManagerView,
    Op, Phase, Release, RestorePlan, Rollout, RolloutPlan, UpgradePolicy, WaveLabel, WavePlan,
    SECOND,
};
use std::cell::{Cell, RefCell};

pub type Store = StableStore<Memory>;

/// Events kept in a rollout's log.
pub const EVENT_CAPACITY: u32 = 2_000;
/// Entries kept in the pipeline log (two per pipeline: start and end).
pub const PIPELINE_LOG_CAPACITY: u64 = 50_000;

struct Engine {
    rollout: Option<Rollout<Store>>,
    /// The persisted header without `current`, which is the rollout's own state.
    meta: RolloutMeta,
}

thread_local! {
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
    /// The settings' cycles reserve per pipeline, cached: read before every driver step.
    static RESERVE: Cell<Option<u128>> = const { Cell::new(None) };
}

/// Cycles kept per pipeline in flight.
pub fn pipeline_reserve() -> u128 {
    RESERVE.with(|r| match r.get() {
        Some(v) => v,
        None => {
            let v = state::with(|s| s.settings().pipeline_cycles_reserve)
                .unwrap_or(fleet_api::manager::DEFAULT_PIPELINE_CYCLES_RESERVE);
            r.set(Some(v));
            v
        }
    })
}

/// Forgets the cached reserve after the settings changed.
pub fn settings_changed() {
    RESERVE.with(|r| r.set(None));
}

/// The manager's own condition, for the driver's holds and for attributing failures.
fn manager_view(draining: bool) -> ManagerView {
    ManagerView {
        draining,
        liquid_cycles: ic_cdk::api::canister_liquid_cycle_balance(),
        reserve_per_pipeline: pipeline_reserve(),
    }
}

fn open_store() -> Store {
    StableStore::init(
        memory::get(memory::ROLLOUT_RECORDS),
        memory::get(memory::ROLLOUT_QUEUES),
        memory::get(memory::ROLLOUT_EVENTS),
        memory::get(memory::ROLLOUT_IN_FLIGHT),
    )
}

fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let engine = slot.get_or_insert_with(|| {
            let mut meta = state::with(|s| s.rollout_meta());
            let rollout = meta
                .current
                .take()
                .map(|st| Rollout::from_parts(st, open_store()));
            Engine { rollout, meta }
        });
        f(engine)
    })
}

impl Engine {
    fn save(&self) {
        let current = self.rollout.as_ref().map(|r| r.state());
        state::with_mut(|s| s.save_rollout_meta(&self.meta, current));
    }

    fn active(&self) -> Option<&Rollout<Store>> {
        self.rollout
            .as_ref()
            .filter(|r| !r.state().phase.is_finished())
    }

    fn log(&mut self, at: u64, canister_id: Principal, kind: PipelineLogKind) {
        let seq = self.meta.log_next;
        self.meta.log_next += 1;
        let rollout_id = self.rollout.as_ref().map_or(0, |r| r.state().id);
        let entry = PipelineLogEntry {
            at,
            rollout_id,
            canister_id,
            kind,
            tick: self.meta.timer_ticks,
        };
        state::with_mut(|s| s.pipeline_log.put(seq, &entry));
        // The ring overwrote the oldest entry beyond the capacity.
        self.meta.log_first = self
            .meta
            .log_first
            .max(self.meta.log_next.saturating_sub(PIPELINE_LOG_CAPACITY));
    }

    /// Takes the store of the previous rollout (one instance per memory) or opens it.
    fn take_store(&mut self) -> Store {
        match self.rollout.take() {
            Some(r) => r.into_parts().1,
            None => open_store(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plans and cohorts
// ---------------------------------------------------------------------------------------------

/// The version a release's module reports in `fleet_health`: its semver without build
/// metadata, which names a build of the same version (semver 2.0.0, item 10).
pub fn health_version(version: &str) -> String {
    version.split('+').next().unwrap_or(version).to_string()
}

fn release_of(meta: &wasm_store::ReleaseMeta) -> Release {
    Release {
        module_hash: meta.sha256.clone(),
        version: health_version(&meta.version),
    }
}

fn lookup(version: &str) -> Option<wasm_store::ReleaseMeta> {
    state::with(|s| s.store.get(version))
}

/// Turns the operator's plan into `rollout_core`'s, naming releases by module hash.
pub fn to_plan(arg: &RolloutPlanArg) -> Result<RolloutPlan, StartRolloutError> {
    let unknown = |v: &str| StartRolloutError::UnknownRelease {
        version: v.to_string(),
    };
    let target = lookup(&arg.target_version).ok_or_else(|| unknown(&arg.target_version))?;
    let mut plan = RolloutPlan::new(release_of(&target));
    if let Some(from) = &arg.from_version {
        plan.from_release = Some(lookup(from).ok_or_else(|| unknown(from))?.sha256);
    }
    fleet_api::wire::apply_plan_options(arg, &mut plan);
    plan.validate()
        .map_err(|e| StartRolloutError::Plan(e.wire()))?;
    Ok(plan)
}

/// Canisters a rollout may touch: running a known release, not being provisioned, not
/// detached, not already upgrading.
fn upgradable(status: CanisterStatus) -> bool {
    matches!(
        status,
        CanisterStatus::Active | CanisterStatus::Failed | CanisterStatus::RolledBack
    )
}

fn fleet_canister(s: &state::State, c: &UserCanister) -> Option<FleetCanister> {
    if !upgradable(c.status) {
        return None;
    }
    let release = c.current_release.as_ref()?;
    let policy = match &c.policy {
        ApiPolicy::Auto => UpgradePolicy::Auto,
        ApiPolicy::Manual => UpgradePolicy::Manual,
        ApiPolicy::Pinned(version) => {
            UpgradePolicy::Pinned(s.store.get(version).map(|m| m.sha256).unwrap_or_default())
        }
    };
    Some(FleetCanister {
        id: c.canister_id,
        policy,
        module_hash: Some(release.sha256.clone()),
        recovery: c.recovery_principal,
        snapshot: s.snapshots.get(&c.canister_id).map(|f| f.0.id),
    })
}

/// Selects the cohort by streaming the registry through the builder: one pass, no copy of
/// the registry. The only O(fleet) step of a rollout, done once when it starts.
pub fn select_cohort(plan: &RolloutPlan) -> Result<Cohort, rollout_core::PlanError> {
    let mut builder = CohortBuilder::new(plan)?;
    state::with(|s| {
        let mut after = None;
        loop {
            let page = s
                .registry
                .page(&crate::registry::Filter::All, after, Some(500));
            for c in &page.canisters {
                match fleet_canister(s, c) {
                    Some(f) => builder.offer(&f),
                    None => {
                        // Still offered, so the summary counts it; a canister without a
                        // release is never eligible.
                        builder.offer(&FleetCanister {
                            id: c.canister_id,
                            policy: UpgradePolicy::Pinned(Vec::new()),
                            module_hash: None,
                            recovery: c.recovery_principal,
                            snapshot: None,
                        })
                    }
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
    });
    builder.finish()
}

// ---------------------------------------------------------------------------------------------
// Starting rollouts
// ---------------------------------------------------------------------------------------------

/// Why a rollout cannot start now.
pub enum Busy {
    Active { id: u64, phase: Phase },
    Draining,
}

pub fn check_idle() -> Result<(), Busy> {
    with_engine(|e| {
        if e.meta.draining {
            return Err(Busy::Draining);
        }
        match e.active() {
            Some(r) => Err(Busy::Active {
                id: r.state().id,
                phase: r.state().phase.clone(),
            }),
            None => Ok(()),
        }
    })
}

/// Starts an upgrade rollout over `cohort`. The caller checked [`check_idle`] after its last
/// await.
pub fn start(plan: &RolloutPlan, cohort: Cohort, now: u64) -> RolloutStarted {
    let summary = cohort.summary.clone();
    with_engine(|e| {
        let id = e.meta.next_id + 1;
        let store = e.take_store();
        let manager = ic_cdk::api::canister_self();
        let mut rollout = Rollout::start(id, manager, plan, cohort, store, now)
            .expect("plan and cohort were validated by the builder");
        rollout.set_event_capacity(EVENT_CAPACITY);
        e.meta.next_id = id;
        e.meta.counters.rollouts_started += 1;
        let started = RolloutStarted {
            id,
            canisters: rollout.state().counts.pending,
            waves: rollout.state().waves.clone().wire(),
            summary: summary.wire(),
        };
        e.rollout = Some(rollout);
        e.save();
        started
    })
}

/// Starts a restore rollout (snapshot load and health check) over `canisters`.
pub fn start_restore(plan: RestorePlan, now: u64) -> Result<RolloutStarted, PlanErrorOrBusy> {
    with_engine(|e| {
        if e.meta.draining {
            return Err(PlanErrorOrBusy::Busy(Busy::Draining));
        }
        if let Some(r) = e.active() {
            return Err(PlanErrorOrBusy::Busy(Busy::Active {
                id: r.state().id,
                phase: r.state().phase.clone(),
            }));
        }
        let id = e.meta.next_id + 1;
        let manager = ic_cdk::api::canister_self();
        let store = e.take_store();
        // A refused plan leaves the previous rollout's store untouched; reopen it then.
        let mut rollout = match Rollout::start_restore(id, manager, plan, store, now) {
            Ok(r) => r,
            Err(err) => {
                reload(e);
                return Err(PlanErrorOrBusy::Plan(err));
            }
        };
        rollout.set_event_capacity(EVENT_CAPACITY);
        e.meta.next_id = id;
        e.meta.counters.rollouts_started += 1;
        let started = RolloutStarted {
            id,
            canisters: rollout.state().counts.pending,
            waves: rollout.state().waves.clone().wire(),
            summary: Default::default(),
        };
        e.rollout = Some(rollout);
        e.save();
        Ok(started)
    })
}

fn reload(e: &mut Engine) {
    e.rollout = state::with(|s| s.rollout_meta())
        .current
        .map(|st| Rollout::from_parts(st, open_store()));
}

pub enum PlanErrorOrBusy {
    Plan(rollout_core::PlanError),
    Busy(Busy),
}

/// The restore plan for `canisters`: each needs a fleet snapshot, and all snapshots must hold
/// the same release (the health check after the restore expects it).
pub fn restore_plan(
    canisters: &[Principal],
    limits: Option<fleet_api::rollout::Limits>,
) -> Result<RestorePlan, RollbackError> {
    let defaults = RolloutPlan::new(Release {
        module_hash: vec![0; 32],
        version: "0".into(),
    });
    state::with(|s| {
        let mut release: Option<ReleaseRef> = None;
        let mut members = Vec::new();
        for id in canisters {
            let record = s
                .registry
                .get(id)
                .ok_or(RollbackError::UnknownCanister { canister: *id })?;
            let snapshot = s.snapshots.get(id).map(|f| f.0);
            let held = snapshot
                .as_ref()
                .and_then(|f| f.release.clone())
                .ok_or(RollbackError::UnknownSnapshotRelease { canister: *id })?;
            match &release {
                None => release = Some(held),
                Some(r) if *r != held => return Err(RollbackError::MixedReleases),
                Some(_) => {}
            }
            members.push(CohortMember {
                id: *id,
                recovery: record.recovery_principal,
                expected_module_hash: record.current_release.map(|r| r.sha256),
                snapshot: snapshot.map(|f| f.id),
            });
        }
        let release = release.ok_or(RollbackError::Plan(
            fleet_api::rollout::PlanError::EmptyCohort,
        ))?;
        Ok(RestorePlan {
            release: Release {
                module_hash: release.sha256.clone(),
                version: health_version(&release.version),
            },
            canisters: members,
            limits: limits.map_or(defaults.limits, Wire::wire),
            failure: defaults.failure,
            retry: defaults.retry,
        })
    })
}

/// The last rollout's target, for a rollback to the release before it.
pub fn last_target() -> Option<(Release, Limits)> {
    with_engine(|e| {
        e.rollout
            .as_ref()
            .map(|r| (r.state().target.clone(), r.state().limits.clone()))
    })
}

// ---------------------------------------------------------------------------------------------
// Operator controls and queries
// ---------------------------------------------------------------------------------------------

fn control(
    f: impl FnOnce(&mut Rollout<Store>, u64) -> Result<(), rollout_core::ControlError>,
) -> Result<WireStatus, RolloutControlError> {
    let now = ic_cdk::api::time();
    with_engine(|e| {
        let r = e.rollout.as_mut().ok_or(RolloutControlError::NoRollout)?;
        f(r, now).map_err(|rollout_core::ControlError::InvalidPhase { phase }| {
            RolloutControlError::InvalidPhase {
                phase: phase.wire(),
            }
        })?;
        let status = r.status(now);
        e.save();
        Ok(status.wire())
    })
}

pub fn pause() -> Result<WireStatus, RolloutControlError> {
    control(|r, now| r.pause(now))
}

/// Resumes a paused or halted rollout (or lifts a hold for manager faults). A drain is not
/// the rollout's phase: only [`end_drain`] ends it.
pub fn resume() -> Result<WireStatus, RolloutControlError> {
    control(|r, now| r.resume(now))
}

pub fn abort() -> Result<WireStatus, RolloutControlError> {
    control(|r, now| r.abort(now))
}

/// The current rollout's status as the interface shows it.
pub fn status() -> Option<WireStatus> {
    let now = ic_cdk::api::time();
    with_engine(|e| e.rollout.as_ref().map(|r| r.status(now).wire()))
}

pub fn results(arg: RolloutResultsArg) -> Option<RolloutResultsPage> {
    let limit = arg.limit.unwrap_or(100).clamp(1, MAX_ROLLOUT_PAGE) as usize;
    with_engine(|e| {
        let r = e.rollout.as_ref()?;
        let mut page = r.records(arg.start_after, limit + 1);
        let more = page.len() > limit;
        page.truncate(limit);
        let next = if more { page.last().map(|p| p.0) } else { None };
        Some(RolloutResultsPage {
            rollout_id: r.state().id,
            results: page
                .into_iter()
                .map(|(id, rec)| RolloutCanisterResult {
                    canister_id: id,
                    job: rec.job.wire(),
                    wave: rec.wave,
                    outcome: rec.outcome().wire(),
                    step: rec.step.wire(),
                    failure: rec.failure.wire(),
                    last_error: rec.last_error.wire(),
                    stop_attempts: rec.stop_attempts,
                    topped_up: rec.topped_up,
                    snapshot: rec.snapshot,
                    ticket: rec.ticket,
                    started_at: rec.started_at,
                    finished_at: rec.finished_at,
                })
                .collect(),
            next,
        })
    })
}

pub fn events(arg: LogPageArg) -> Option<RolloutEventsPage> {
    let limit = arg.limit.unwrap_or(100).clamp(1, MAX_ROLLOUT_PAGE) as usize;
    with_engine(|e| {
        let r = e.rollout.as_ref()?;
        Some(RolloutEventsPage {
            rollout_id: r.state().id,
            events: r.events(arg.from, limit).wire(),
            first: r.state().events_first,
            next: r.state().events_next,
        })
    })
}

pub fn pipeline_log(arg: LogPageArg) -> PipelineLogPage {
    let limit = arg.limit.unwrap_or(100).clamp(1, MAX_ROLLOUT_PAGE) as usize;
    with_engine(|e| {
        let from = arg.from.max(e.meta.log_first);
        let to = e.meta.log_next.min(from.saturating_add(limit as u64));
        let entries = state::with(|s| {
            (from..to)
                .map(|seq| (seq, s.pipeline_log.get(seq)))
                .collect()
        });
        PipelineLogPage {
            entries,
            first: e.meta.log_first,
            next: e.meta.log_next,
        }
    })
}

pub fn counters() -> RolloutCounters {
    with_engine(|e| e.meta.counters.clone())
}

pub fn draining() -> bool {
    with_engine(|e| e.meta.draining)
}

/// Holds every new pipeline start for the manager's own upgrade (the rollout's phase is left
/// as it is); [`end_drain`] lifts the hold. Returns (draining, pipelines in flight).
pub fn drain() -> (bool, u64) {
    set_draining(true)
}

/// Ends a drain; the rollout goes on in the phase it had (a halted rollout stays halted).
pub fn end_drain() -> (bool, u64) {
    set_draining(false)
}

fn set_draining(draining: bool) -> (bool, u64) {
    let now = ic_cdk::api::time();
    with_engine(|e| {
        e.meta.draining = draining;
        if let Some(r) = e.rollout.as_mut() {
            r.set_manager(manager_view(draining), now);
        }
        e.save();
        let in_flight = e.rollout.as_ref().map_or(0, |r| r.state().counts.in_flight);
        (draining, in_flight)
    })
}

/// The rollout's stop deadline in whole seconds, for the bounded-wait `stop_canister` call.
pub fn stop_deadline_secs() -> Option<u32> {
    with_engine(|e| {
        e.rollout
            .as_ref()?
            .stop_deadline()
            .map(|ns| u32::try_from(ns / SECOND).unwrap_or(u32::MAX).max(1))
    })
}

/// Whether timer ticks still have work.
pub fn has_work() -> bool {
    with_engine(|e| e.rollout.as_ref().is_some_and(|r| r.has_work()))
}

// ---------------------------------------------------------------------------------------------
// Owner requests
// ---------------------------------------------------------------------------------------------

/// An owner's (or the canister's own) request: checked, queued and answered at once.
pub fn request_upgrade(
    caller: Principal,
    canister_id: Option<Principal>,
    version: Option<String>,
    now: u64,
) -> Result<fleet_api::user::UpgradeTicket, RequestUpgradeError> {
    use RequestUpgradeError as E;
    if caller == Principal::anonymous() {
        return Err(E::NotAuthorized);
    }
    let record = state::with(|s| match canister_id {
        Some(id) => {
            let r = s.registry.get(&id).ok_or(E::UnknownCanister)?;
            if caller != id && caller != r.owner {
                return Err(E::NotAuthorized);
            }
            Ok(r)
        }
        None => s
            .registry
            .get(&caller)
            .or_else(|| s.registry.by_owner(&caller))
            .ok_or(E::UnknownCanister),
    })?;
    let record = with_status(record);
    if !upgradable(record.status) {
        return Err(E::NotUpgradable {
            status: format!("{:?}", record.status),
        });
    }
    with_engine(|e| {
        if e.meta.draining {
            return Err(E::Draining);
        }
        let active_target = e
            .active()
            .filter(|r| r.state().job == rollout_core::Job::Upgrade)
            .map(|r| r.state().target.module_hash.clone());
        let meta = match &version {
            Some(v) => lookup(v).ok_or(E::UnknownRelease { version: v.clone() })?,
            None => {
                let by_rollout = active_target
                    .as_ref()
                    .and_then(|h| state::with(|s| s.store.get_by_sha256(h)));
                match by_rollout {
                    Some(m) => m,
                    None => state::with(|s| s.settings().default_release)
                        .and_then(|r| lookup(&r.version))
                        .ok_or(E::NoTarget)?,
                }
            }
        };
        if let ApiPolicy::Pinned(pin) = &record.policy {
            if *pin != meta.version {
                return Err(E::Pinned {
                    version: pin.clone(),
                });
            }
        }
        if record.current_release.as_ref().map(|r| &r.sha256) == Some(&meta.sha256) {
            return Err(E::AlreadyOnTarget {
                version: meta.version.clone(),
            });
        }
        if state::with(|s| s.mirror_state().get(&meta.sha256).is_none()) {
            return Err(E::NotMirrored {
                version: meta.version.clone(),
            });
        }
        let member = CohortMember {
            id: record.canister_id,
            recovery: record.recovery_principal,
            expected_module_hash: record.current_release.as_ref().map(|r| r.sha256.clone()),
            snapshot: state::with(|s| s.snapshots.get(&record.canister_id).map(|f| f.0.id)),
        };
        if let Some(r) = e.active() {
            if active_target.as_ref() != Some(&meta.sha256) {
                let target = &r.state().target;
                return Err(E::OtherRolloutActive {
                    id: r.state().id,
                    target_version: state::with(|s| s.store.get_by_sha256(&target.module_hash))
                        .map_or_else(|| target.version.clone(), |m| m.version),
                });
            }
        } else {
            // No rollout runs: this request gets one of its own, with the default limits.
            let mut plan = RolloutPlan::new(release_of(&meta));
            plan.canary = rollout_core::Canary::None;
            plan.waves_percent = vec![100];
            plan.bake_ns = 0;
            let cohort = Cohort {
                waves: vec![WavePlan {
                    label: WaveLabel::Percent(100),
                    members: vec![member.clone()],
                }],
                summary: Default::default(),
            };
            let id = e.meta.next_id + 1;
            let store = e.take_store();
            let started =
                Rollout::start(id, ic_cdk::api::canister_self(), &plan, cohort, store, now);
            let mut rollout = match started {
                Ok(r) => r,
                Err(err) => {
                    // A refused plan leaves the previous rollout's store as it was.
                    reload(e);
                    return Err(E::Ineligible {
                        reason: format!("{err:?}"),
                    });
                }
            };
            rollout.set_event_capacity(EVENT_CAPACITY);
            e.meta.next_id = id;
            e.meta.counters.rollouts_started += 1;
            e.rollout = Some(rollout);
        }
        let r = e.rollout.as_mut().expect("an active rollout exists here");
        r.request(record.canister_id, Some(member), now)
            .map_err(|refused| E::NotAccepted {
                reason: refusal(&refused),
            })?;
        e.meta.next_ticket += 1;
        e.meta.counters.upgrade_requests += 1;
        let ticket = e.meta.next_ticket;
        e.save();
        Ok(fleet_api::user::UpgradeTicket {
            ticket,
            canister_id: record.canister_id,
            target_version: meta.version,
        })
    })
}

/// The wire form of the engine's refusal of a request (no engine type reaches the user
/// canister's interface).
fn refusal(e: &rollout_core::RequestError) -> fleet_api::rollout::RequestRefusal {
    use fleet_api::rollout::RequestRefusal as R;
    match e {
        rollout_core::RequestError::NotAccepting { .. } => R::NotAccepting,
        rollout_core::RequestError::NotAnUpgrade => R::NotAnUpgrade,
        rollout_core::RequestError::AlreadyFinished { .. } => R::AlreadyFinished,
        rollout_core::RequestError::NotInCohort => R::NotInCohort,
    }
}

// ---------------------------------------------------------------------------------------------
// Driving: ticks and results
// ---------------------------------------------------------------------------------------------

/// A timer tick of the driver: the calls to make now. It opens a new tick for the per-tick
/// cap on pipeline starts, which [`refill`] shares until the next timer tick.
pub fn tick(now: u64) -> Vec<Action> {
    drive(now, true)
}

/// A driver step between timer ticks (a pipeline gave its slot back): like [`tick`], but new
/// pipelines start only within what is left of the current tick's cap.
pub fn refill(now: u64) -> Vec<Action> {
    drive(now, false)
}

fn drive(now: u64, timer: bool) -> Vec<Action> {
    with_engine(|e| {
        if timer {
            e.meta.timer_ticks = Some(e.meta.timer_ticks.unwrap_or(0) + 1);
        }
        let Some(r) = e.rollout.as_mut() else {
            if timer {
                e.save();
            }
            return Vec::new();
        };
        r.set_manager(manager_view(e.meta.draining), now);
        let actions = if timer { r.tick(now) } else { r.refill(now) };
        for a in &actions {
            if a.op == Op::CanisterStatus {
                e.meta.counters.pipelines_started += 1;
                e.log(now, a.canister, PipelineLogKind::Started);
            }
        }
        count_calls(&mut e.meta, &actions);
        e.save();
        actions
    })
}

fn count_calls(meta: &mut RolloutMeta, actions: &[Action]) {
    meta.counters.calls_issued += actions.len() as u64;
}

/// After a manager upgrade: calls whose callbacks were lost, issued again.
pub fn reissue_lost(issued_before: u64, now: u64, limit: usize) -> Vec<Action> {
    with_engine(|e| {
        let Some(r) = e.rollout.as_mut() else {
            return Vec::new();
        };
        let actions = r.reissue_outstanding(issued_before, now, limit);
        for a in &actions {
            e.log(
                now,
                a.canister,
                PipelineLogKind::Reissued {
                    op: a.op.kind().wire(),
                },
            );
        }
        count_calls(&mut e.meta, &actions);
        e.save();
        actions
    })
}

/// The call a canister waits on, to issue it again after its task was lost to a trap.
pub fn current_action(canister: &Principal) -> Option<Action> {
    with_engine(|e| e.rollout.as_ref()?.current_action(canister))
}

/// What the driver learns from feeding a result back.
pub struct Fed {
    pub next: Option<Action>,
    /// The canister gave its in-flight slot back: more pipelines may start.
    pub slot_freed: bool,
}

pub fn on_result(canister: Principal, result: ActionResult, now: u64) -> Fed {
    let failed_call = matches!(result, ActionResult::CallFailed(_));
    let deleted = matches!(result, ActionResult::SnapshotDeleted);
    with_engine(|e| {
        let Some(r) = e.rollout.as_mut() else {
            return Fed {
                next: None,
                slot_freed: false,
            };
        };
        r.set_manager(manager_view(e.meta.draining), now);
        // The in-flight count drops exactly when this canister gave its slot back, which
        // spares decoding its record twice for every result.
        let in_flight_before = r.state().counts.in_flight;
        let next = match r.on_result(canister, result, now) {
            Ok(next) => next,
            Err(err) => {
                ic_cdk::println!("rollout result for {canister} not applied: {err:?}");
                None
            }
        };
        if failed_call {
            e.meta.counters.calls_failed += 1;
        }
        let slot_freed = r.state().counts.in_flight < in_flight_before;
        let job = r.state().job;
        let target = r.state().target.clone();
        let left = if slot_freed {
            r.record(&canister)
        } else {
            None
        };
        if deleted {
            state::with_mut(|s| s.snapshots.remove(&canister));
        }
        if let Some(rec) = left {
            let outcome = rec.outcome();
            e.log(
                now,
                canister,
                PipelineLogKind::Left {
                    outcome: outcome.wire(),
                },
            );
            // Busy ones run their old release until the retry: the registry is unchanged.
            finish_record(&mut e.meta, canister, &rec, job, &target, now);
        }
        if let Some(a) = &next {
            e.meta.counters.calls_issued += 1;
            if let Op::TopUp { cycles } = a.op {
                e.meta.counters.cycles_topped_up += cycles;
            }
        }
        e.save();
        Fed { next, slot_freed }
    })
}

/// Counts bytes the engine sent.
pub fn add_bytes_sent(bytes: u64) {
    with_engine(|e| e.meta.counters.bytes_sent += bytes);
}

/// Whether the canister's pipeline is in flight in the current rollout: the registry answers
/// it as `Upgrading` without storing that transient status.
pub fn upgrading(canister: &Principal) -> bool {
    with_engine(|e| e.rollout.as_ref().is_some_and(|r| r.is_in_flight(canister)))
}

/// Up to `limit` canisters whose pipeline is in flight, in id order, after `after`.
pub fn upgrading_page(after: Option<Principal>, limit: usize) -> Vec<Principal> {
    with_engine(|e| {
        e.rollout
            .as_ref()
            .map_or_else(Vec::new, |r| r.in_flight_page(after, limit))
    })
}

/// The registry's record as the interface answers it: `Upgrading` while its pipeline is in
/// flight.
pub fn with_status(mut record: UserCanister) -> UserCanister {
    if upgrading(&record.canister_id) {
        record.status = CanisterStatus::Upgrading;
    }
    record
}

fn describe(rec: &rollout_core::CanisterRecord) -> String {
    match (&rec.failure, &rec.last_error) {
        (Some(f), _) => format!("{f:?}"),
        (None, Some(e)) => format!("reject {}: {}", e.reject_code, e.message),
        (None, None) => "unknown".to_string(),
    }
}

/// The release with this module hash, by version and hash. Cached: a finalized release never
/// changes, and reading it from the store decodes its whole metadata (chunk hashes included)
/// at every finished pipeline.
fn release_ref(s: &state::State, module_hash: &[u8]) -> Option<ReleaseRef> {
    thread_local! {
        static LAST: RefCell<Option<ReleaseRef>> = const { RefCell::new(None) };
    }
    if let Some(hit) = LAST.with(|l| l.borrow().clone().filter(|r| r.sha256 == module_hash)) {
        return Some(hit);
    }
    let found = s.store.get_by_sha256(module_hash).map(|m| ReleaseRef {
        version: m.version,
        sha256: m.sha256,
    });
    LAST.with(|l| *l.borrow_mut() = found.clone());
    found
}

/// Brings the registry in line with a finished pipeline, and remembers its snapshot.
fn finish_record(
    meta: &mut RolloutMeta,
    canister: Principal,
    rec: &rollout_core::CanisterRecord,
    job: rollout_core::Job,
    target: &Release,
    now: u64,
) {
    use rollout_core::{Failure as F, Outcome as O};
    let Some(outcome) = rec.outcome() else {
        return;
    };
    let c = &mut meta.counters;
    match outcome {
        O::Done => c.upgraded += 1,
        O::Restored => c.restored += 1,
        O::RolledBack => c.rolled_back += 1,
        O::Failed => c.failed += 1,
        O::Skipped => c.skipped += 1,
        O::Cancelled => c.cancelled += 1,
        O::Deferred => *c.deferred.get_or_insert(0) += 1,
    }
    state::with_mut(|s| {
        let target_ref = release_ref(s, &target.module_hash);
        let Some(old) = s.registry.get(&canister) else {
            return;
        };
        let mut record = old.clone();
        let before = record.current_release.clone();
        if rec.snapshot_fresh {
            if let Some(id) = &rec.snapshot {
                s.snapshots.insert(
                    canister,
                    Stored(FleetSnapshot {
                        id: id.clone(),
                        release: before.clone(),
                        taken_at_ns: rec.started_at.unwrap_or(now),
                    }),
                );
            }
        }
        record.updated_at_ns = now;
        let event = |outcome| {
            target_ref.clone().map(|to| UpgradeEvent {
                at_ns: now,
                from: before.clone(),
                to,
                outcome,
            })
        };
        let mut history = None;
        match (job, outcome) {
            (rollout_core::Job::Upgrade, O::Done) => {
                record.status = CanisterStatus::Active;
                record.last_error = None;
                history = event(UpgradeOutcome::Upgraded);
                record.current_release = target_ref.clone();
            }
            (rollout_core::Job::Restore, O::Restored) => {
                record.status = CanisterStatus::Active;
                record.last_error = None;
                history = event(UpgradeOutcome::Restored);
                record.current_release = target_ref.clone();
            }
            (_, O::RolledBack) => {
                let why = describe(rec);
                record.status = CanisterStatus::RolledBack;
                record.last_error = Some(why.clone());
                history = event(UpgradeOutcome::RolledBack(why));
            }
            (_, O::Failed) => {
                let why = describe(rec);
                record.status = CanisterStatus::Failed;
                record.last_error = Some(why.clone());
                history = event(UpgradeOutcome::Failed(why));
                // Unhealthy without a snapshot to go back to: the new module runs.
                if matches!(rec.failure, Some(F::UnhealthyNoSnapshot { .. })) {
                    record.current_release = target_ref.clone();
                }
            }
            (_, O::Skipped) => {
                record.status = match rec.failure {
                    Some(F::ManagerNotController) => CanisterStatus::Detached,
                    _ => CanisterStatus::Active,
                };
                record.last_error = Some(describe(rec));
                if matches!(rec.failure, Some(F::AlreadyOnTarget)) {
                    record.current_release = target_ref.clone();
                    record.last_error = None;
                }
            }
            // Not the release's fault: it stays on its release, running, with the reason.
            (_, O::Deferred) => {
                record.status = match rec.failure {
                    Some(F::ManagerNotController) => CanisterStatus::Detached,
                    _ => CanisterStatus::Active,
                };
                record.last_error = Some(describe(rec));
            }
            (_, O::Cancelled) | (_, O::Done) | (_, O::Restored) => {
                record.status = CanisterStatus::Active;
            }
        }
        if let Some(h) = history {
            push_history(&mut record, h);
        }
        s.registry.replace(old, record);
    });
}

/// Drops the heap cache; the next access reloads from stable memory (after an upgrade).
pub fn reset_cache() {
    ENGINE.with(|cell| *cell.borrow_mut() = None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_version_drops_build_metadata_only() {
        assert_eq!(health_version("2.0.0"), "2.0.0");
        assert_eq!(health_version("2.0.0+trap"), "2.0.0");
        assert_eq!(health_version("2.0.0-rc.1+b7"), "2.0.0-rc.1");
    }

    #[test]
    fn only_running_known_canisters_are_upgradable() {
        assert!(upgradable(CanisterStatus::Active));
        assert!(upgradable(CanisterStatus::Failed));
        assert!(upgradable(CanisterStatus::RolledBack));
        assert!(!upgradable(CanisterStatus::Provisioning));
        assert!(!upgradable(CanisterStatus::Upgrading));
        assert!(!upgradable(CanisterStatus::Detached));
    }
}
