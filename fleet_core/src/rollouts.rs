//! The rollout engine's synchronous half: plans in, `rollout_core` driving, state persisted,
//! registry and logs kept in step. Nothing here awaits; the shell's driver performs the calls
//! that `rollout_core` asks for ([`crate::calls::perform`]) and feeds the results back through
//! [`on_result`].
//!
//! The current rollout lives in stable memory (its header in a stable cell, its records,
//! queues and events in stable maps) and in a heap cache rebuilt from it after an upgrade.
//! Every change is written through before the message ends, so a trap or an upgrade loses
//! nothing that was committed.

use crate::memory::{self, Memory};
use crate::registry::push_history;
use crate::runtime::Runtime;
use crate::state::{self, FleetSnapshot, RolloutMeta, SavedSubnets};
use crate::stored::{
    CanisterStatus, PipelineLogEntry, PipelineLogKind, RegistryRecord, ReleaseRef, UpgradeEvent,
    UpgradeOutcome, UpgradePolicy as RecordPolicy,
};
use candid::Principal;
use fleet_api::rollout::RolloutStatus as WireStatus;
use fleet_api::rollout::{
    LogPageArg, PipelineLogPage, RequestUpgradeError, RollbackError, RolloutCanisterResult,
    RolloutControlError, RolloutCounters, RolloutEventsPage, RolloutPlanArg, RolloutPreview,
    RolloutResultsArg, RolloutResultsPage, RolloutStarted, StartRolloutError, MAX_ROLLOUT_PAGE,
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
    /// The rollout's subnets as stored apart from the header.
    saved: SavedSubnets,
}

impl Engine {
    /// Opens the next rollout: `make` gets its id and the rollout store (emptied of the last
    /// rollout). The one way a rollout is created (operator's plan, restore, owner's request);
    /// a plan `make` refuses leaves the last rollout's store as it was.
    fn open(
        &mut self,
        make: impl FnOnce(u64, Store) -> Result<Rollout<Store>, rollout_core::PlanError>,
    ) -> Result<&mut Rollout<Store>, rollout_core::PlanError> {
        let id = self.meta.next_id + 1;
        let store = self.take_store();
        match make(id, store) {
            Ok(mut rollout) => {
                rollout.set_event_capacity(EVENT_CAPACITY);
                self.meta.next_id = id;
                self.meta.counters.rollouts_started += 1;
                Ok(self.rollout.insert(rollout))
            }
            Err(err) => {
                reload(self);
                Err(err)
            }
        }
    }
}

/// What a started rollout reports to the operator.
fn started(rollout: &Rollout<Store>, summary: rollout_core::CohortSummary) -> RolloutStarted {
    RolloutStarted {
        id: rollout.state().id,
        canisters: rollout.state().counts.pending,
        waves: rollout.state().waves.clone().wire(),
        summary: summary.wire(),
    }
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

/// What the shell reads from the IC for the engine at the start of each step: the time, the
/// manager's own id and its cycles above the freezing threshold. The engine reads nothing from
/// the IC itself, so its policy runs natively in unit tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Env {
    pub now: u64,
    pub manager: Principal,
    pub liquid_cycles: u128,
}

impl Env {
    /// The runtime's view at this message.
    pub fn of<R: Runtime>(rt: &R) -> Self {
        Env {
            now: rt.now_ns(),
            manager: rt.self_id(),
            liquid_cycles: rt.liquid_cycles_balance(),
        }
    }
}

/// The manager's own condition, for the driver's holds and for attributing failures.
fn manager_view(draining: bool, env: Env) -> ManagerView {
    ManagerView {
        draining,
        liquid_cycles: env.liquid_cycles,
        reserve_per_pipeline: pipeline_reserve(),
    }
}

fn open_store() -> Store {
    StableStore::init(
        memory::get(memory::ROLLOUT_RECORDS),
        memory::get(memory::ROLLOUT_QUEUES),
        memory::get(memory::ROLLOUT_EVENTS),
        memory::get(memory::ROLLOUT_IN_FLIGHT),
        memory::get(memory::ROLLOUT_SLOTS),
        memory::get(memory::ROLLOUT_STAGED),
    )
}

fn with_engine<R>(f: impl FnOnce(&mut Engine) -> R) -> R {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let engine = slot.get_or_insert_with(|| {
            let mut meta = state::with(|s| s.rollout_meta());
            let saved = saved_subnets(meta.current.as_ref());
            let rollout = meta
                .current
                .take()
                .map(|st| Rollout::from_parts(st, open_store()));
            Engine {
                rollout,
                meta,
                saved,
            }
        });
        f(engine)
    })
}

/// What the subnets' store holds for `current`: nothing when its header held them inline.
fn saved_subnets(current: Option<&rollout_core::RolloutState>) -> SavedSubnets {
    SavedSubnets {
        rollout: current.map(|c| c.id),
        states: current.map_or_else(Vec::new, |c| state::with(|s| s.rollout_subnets(c.id))),
    }
}

impl Engine {
    /// Writes the header, without the subnets, and the subnets the step changed: a step
    /// (one call's result, mostly) changes one subnet, so its writes do not grow with the
    /// subnets a rollout spans.
    fn save(&mut self) {
        let Engine {
            rollout,
            meta,
            saved,
        } = self;
        match rollout.as_mut() {
            None => state::with_mut(|s| s.save_rollout_meta(meta, None)),
            Some(r) => r.with_subnets_apart(|current, subnets| {
                state::with_mut(|s| {
                    s.save_rollout_meta(meta, Some(current));
                    s.save_rollout_subnets(current.id, subnets, saved);
                })
            }),
        }
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

    /// Counts and logs the calls a driver step issued, and the pipelines they start.
    fn started(&mut self, actions: &[Action], now: u64) {
        for a in actions {
            if a.op == Op::CanisterStatus {
                self.meta.counters.pipelines_started += 1;
                self.log(now, a.canister, PipelineLogKind::Started);
            }
        }
        count_calls(&mut self.meta, actions);
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

fn fleet_canister(s: &state::State, c: &RegistryRecord) -> Option<FleetCanister> {
    if !upgradable(c.status) {
        return None;
    }
    let release = c.current_release.as_ref()?;
    let policy = match &c.policy {
        RecordPolicy::Auto => UpgradePolicy::Auto,
        RecordPolicy::Manual => UpgradePolicy::Manual,
        RecordPolicy::Pinned(version) => {
            UpgradePolicy::Pinned(s.store.get(version).map(|m| m.sha256).unwrap_or_default())
        }
    };
    Some(FleetCanister {
        id: c.canister_id,
        policy,
        module_hash: Some(release.sha256.clone()),
        recovery: c.recovery_principal,
        snapshot: s.fleet_snapshot(c).map(|f| f.id),
        subnet: crate::subnets::rollout_subnet(c.subnet),
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
                            subnet: crate::subnets::rollout_subnet(c.subnet),
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
/// await. The target counts as used from now on: the release policy asks no approval nor
/// notice for a later rollout to it.
pub fn start(plan: &RolloutPlan, cohort: Cohort, env: Env) -> RolloutStarted {
    let summary = cohort.summary.clone();
    let reply = with_engine(|e| {
        let rollout = e
            .open(|id, store| Rollout::start(id, env.manager, plan, cohort, store, env.now))
            .expect("plan and cohort were validated by the builder");
        let reply = started(rollout, summary);
        e.save();
        reply
    });
    state::with_mut(|s| s.governance.mark_used(&plan.target.module_hash));
    reply
}

fn busy_start(b: Busy) -> StartRolloutError {
    match b {
        Busy::Active { id, phase } => StartRolloutError::RolloutActive {
            id,
            phase: phase.wire(),
        },
        Busy::Draining => StartRolloutError::Draining,
    }
}

/// Refuses a rollout to a release no rollout has used yet while its notice runs.
pub fn check_notice(arg: &RolloutPlanArg, now_ns: u64) -> Result<(), StartRolloutError> {
    let Some(target) = lookup(&arg.target_version) else {
        return Ok(());
    };
    match crate::governance::notice_until(&target.sha256, target.uploaded_at, now_ns) {
        Some(may_start_at_ns) => Err(StartRolloutError::NoticePeriod {
            version: target.version,
            may_start_at_ns,
        }),
        None => Ok(()),
    }
}

/// Whether a rollout to `arg`'s target needs the release policy's approval: no rollout has
/// used the release yet.
pub fn needs_approval(arg: &RolloutPlanArg) -> bool {
    lookup(&arg.target_version).is_some_and(|t| !state::with(|s| s.governance.is_used(&t.sha256)))
}

/// Starts a staged rollout of `arg` once the caller's authority (and the release policy's
/// approval) is settled: the plan is checked, the notice is respected, the target is mirrored
/// into the chunk store, and the cohort is selected from the registry.
pub async fn start_plan<R: Runtime>(
    rt: &R,
    arg: &RolloutPlanArg,
) -> Result<RolloutStarted, StartRolloutError> {
    let plan = startable(arg, rt.now_ns())?;
    // Into every subnet's store, so that no pipeline waits on a mirror.
    for store in crate::subnets::all_stores(rt) {
        crate::chunk_store::ensure_mirrored_in(rt, &arg.target_version, &store)
            .await
            .map_err(StartRolloutError::Mirror)?;
    }
    // The state may have changed while mirroring.
    check_idle().map_err(busy_start)?;
    let cohort = start_cohort(&plan)?;
    Ok(start(&plan, cohort, Env::of(rt)))
}

/// The checks of [`start_plan`] before it awaits anything: a plan that can never start is
/// refused as such, whatever else runs; then the notice, then no rollout running.
fn startable(arg: &RolloutPlanArg, now: u64) -> Result<RolloutPlan, StartRolloutError> {
    let plan = to_plan(arg)?;
    check_notice(arg, now)?;
    check_idle().map_err(busy_start)?;
    Ok(plan)
}

/// The cohort of `plan` from the registry, refused as `start_rollout` refuses it.
fn start_cohort(plan: &RolloutPlan) -> Result<Cohort, StartRolloutError> {
    select_cohort(plan).map_err(|e| StartRolloutError::Plan(e.wire()))
}

/// What [`start_plan`] would start now with `arg`, changing nothing: the same checks and the
/// same cohort selection (deterministic, so the start that follows creates these waves unless
/// the registry changed), without mirroring the target (a start does it first) and without
/// the release policy's approval, which the caller's start would ask for.
pub fn preview<R: Runtime>(
    rt: &R,
    arg: &RolloutPlanArg,
) -> Result<RolloutPreview, StartRolloutError> {
    let plan = startable(arg, rt.now_ns())?;
    let cohort = start_cohort(&plan)?;
    Ok(RolloutPreview {
        rollout: RolloutStarted {
            id: with_engine(|e| e.meta.next_id + 1),
            canisters: cohort.len() as u64,
            waves: cohort.progress().wire(),
            summary: cohort.summary.wire(),
        },
        bake_secs: plan.bake_ns / SECOND,
        take_snapshot: plan.snapshot.take,
        limits: plan.limits.wire(),
        cycles: plan.cycles.wire(),
        cycles_balance: rt.cycles_balance(),
        liquid_cycles: rt.liquid_cycles_balance(),
        pipeline_cycles_reserve: pipeline_reserve(),
    })
}

/// Starts a restore rollout (snapshot load and health check) over `canisters`.
pub fn start_restore(plan: RestorePlan, env: Env) -> Result<RolloutStarted, PlanErrorOrBusy> {
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
        let rollout = e
            .open(|id, store| Rollout::start_restore(id, env.manager, plan, store, env.now))
            .map_err(PlanErrorOrBusy::Plan)?;
        let reply = started(rollout, Default::default());
        e.save();
        Ok(reply)
    })
}

fn reload(e: &mut Engine) {
    let current = state::with(|s| s.rollout_meta()).current;
    e.saved = saved_subnets(current.as_ref());
    e.rollout = current.map(|st| Rollout::from_parts(st, open_store()));
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
            let snapshot = s.fleet_snapshot(&record);
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
                subnet: crate::subnets::rollout_subnet(record.subnet),
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
    now: u64,
    f: impl FnOnce(&mut Rollout<Store>, u64) -> Result<(), rollout_core::ControlError>,
) -> Result<WireStatus, RolloutControlError> {
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

pub fn pause(now: u64) -> Result<WireStatus, RolloutControlError> {
    control(now, |r, now| r.pause(now))
}

/// Resumes a paused or halted rollout (or lifts a hold for manager faults). A drain is not
/// the rollout's phase: only [`end_drain`] ends it.
pub fn resume(now: u64) -> Result<WireStatus, RolloutControlError> {
    control(now, |r, now| r.resume(now))
}

pub fn abort(now: u64) -> Result<WireStatus, RolloutControlError> {
    control(now, |r, now| r.abort(now))
}

/// The current rollout's status as the interface shows it.
pub fn status(now: u64) -> Option<WireStatus> {
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
                .map(|seq| (seq, s.pipeline_log.get(seq).into()))
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
    with_engine(|e| e.meta.counters.clone().into())
}

pub fn draining() -> bool {
    with_engine(|e| e.meta.draining)
}

/// Holds every new pipeline start for the manager's own upgrade (the rollout's phase is left
/// as it is); [`end_drain`] lifts the hold. Returns (draining, pipelines in flight).
pub fn drain(env: Env) -> (bool, u64) {
    set_draining(true, env)
}

/// Ends a drain; the rollout goes on in the phase it had (a halted rollout stays halted).
pub fn end_drain(env: Env) -> (bool, u64) {
    set_draining(false, env)
}

fn set_draining(draining: bool, env: Env) -> (bool, u64) {
    with_engine(|e| {
        e.meta.draining = draining;
        if let Some(r) = e.rollout.as_mut() {
            r.set_manager(manager_view(draining, env), env.now);
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

/// When the driver next has work, if nothing can happen before then (a bake time, kept
/// snapshots waiting for their deletion).
pub fn idle_until() -> Option<u64> {
    with_engine(|e| e.rollout.as_ref().and_then(|r| r.idle_until()))
}

// ---------------------------------------------------------------------------------------------
// Owner requests
// ---------------------------------------------------------------------------------------------

/// An owner's (or the canister's own) request: checked, queued and answered at once.
pub fn request_upgrade(
    caller: Principal,
    canister_id: Option<Principal>,
    version: Option<String>,
    env: Env,
) -> Result<fleet_api::user::UpgradeTicket, RequestUpgradeError> {
    use RequestUpgradeError as E;
    let now = env.now;
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
    // In flight answers as `Upgrading` (not a stored status).
    let status = if upgrading(&record.canister_id) {
        CanisterStatus::Upgrading
    } else {
        record.status
    };
    if !upgradable(status) {
        return Err(E::NotUpgradable {
            status: format!("{status:?}"),
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
        if let RecordPolicy::Pinned(pin) = &record.policy {
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
        if crate::subnets::mirror_for(record.subnet)
            .get(&meta.sha256)
            .is_none()
        {
            return Err(E::NotMirrored {
                version: meta.version.clone(),
            });
        }
        let member = CohortMember {
            id: record.canister_id,
            recovery: record.recovery_principal,
            expected_module_hash: record.current_release.as_ref().map(|r| r.sha256.clone()),
            snapshot: state::with(|s| s.fleet_snapshot(&record).map(|f| f.id)),
            subnet: crate::subnets::rollout_subnet(record.subnet),
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
            e.open(|id, store| Rollout::start(id, env.manager, &plan, cohort, store, env.now))
                .map_err(|err| E::Ineligible {
                    reason: format!("{err:?}"),
                })?;
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
        // The rollout tracks no more subnets: it cannot take this canister now.
        rollout_core::RequestError::TooManySubnets => R::NotAccepting,
        // Ticks finish writing the cohort's records within a few rounds; asking again works.
        rollout_core::RequestError::Loading { .. } => R::NotAccepting,
    }
}

// ---------------------------------------------------------------------------------------------
// Driving: ticks and results
// ---------------------------------------------------------------------------------------------

/// A timer tick of the driver: the calls to make now. It opens a new tick for the per-tick
/// cap on pipeline starts, which the starts made when a pipeline gives its slot back (in
/// [`on_result`]) share until the next timer tick.
///
/// A tick that starts nothing and changes nothing but the manager's condition (which every
/// step reports again before it is used) writes no header: the timer runs every round while
/// a rollout waits on its calls, and encoding the header each time would cost more than the
/// rest of the tick. Only the tick count is then not written, so after an upgrade of the
/// manager the pipeline log's tick numbers may resume from a lower count.
pub fn tick(env: Env) -> Vec<Action> {
    let now = env.now;
    with_engine(|e| {
        e.meta.timer_ticks = Some(e.meta.timer_ticks.unwrap_or(0) + 1);
        let Some(r) = e.rollout.as_mut() else {
            e.save();
            return Vec::new();
        };
        let mut before = r.state().clone();
        r.set_manager(manager_view(e.meta.draining, env), now);
        let actions = r.tick(now);
        // The header before the tick, with the manager's condition as it is now.
        before.manager_view = r.state().manager_view.clone();
        let changed = !actions.is_empty() || before != *r.state();
        e.started(&actions, now);
        if changed {
            e.save();
        }
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
                PipelineLogKind::Reissued { op: a.op.kind() },
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
    /// The same canister's next call.
    pub next: Option<Action>,
    /// The canister gave its in-flight slot back, and these pipelines started in its place
    /// (within what is left of the current tick's start cap), rather than at the next tick.
    pub started: Vec<Action>,
}

pub fn on_result<R: Runtime>(canister: Principal, result: ActionResult, rt: &R) -> Fed {
    let env = Env::of(rt);
    let now = env.now;
    let failed_call = matches!(result, ActionResult::CallFailed(_));
    let deleted = matches!(result, ActionResult::SnapshotDeleted);
    with_engine(|e| {
        let Some(r) = e.rollout.as_mut() else {
            return Fed {
                next: None,
                started: Vec::new(),
            };
        };
        r.set_manager(manager_view(e.meta.draining, env), now);
        // The in-flight count drops exactly when this canister gave its slot back, which
        // spares decoding its record twice for every result.
        let in_flight_before = r.state().counts.in_flight;
        let next = match r.on_result(canister, result, now) {
            Ok(next) => next,
            Err(err) => {
                rt.log(&format!(
                    "rollout result for {canister} not applied: {err:?}"
                ));
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
            state::with_mut(|s| s.forget_fleet_snapshot(&canister));
        }
        if let Some(rec) = left {
            let outcome = rec.outcome();
            e.log(now, canister, PipelineLogKind::Left { outcome });
            // Busy ones run their old release until the retry: the registry is unchanged.
            finish_record(&mut e.meta, canister, &rec, job, &target, now);
        }
        if let Some(a) = &next {
            e.meta.counters.calls_issued += 1;
            if let Op::TopUp { cycles } = a.op {
                e.meta.counters.cycles_topped_up += cycles;
            }
        }
        let started = match e.rollout.as_mut() {
            Some(r) if slot_freed => r.refill(now),
            _ => Vec::new(),
        };
        e.started(&started, now);
        // Once per result, with the refill's changes.
        e.save();
        Fed { next, started }
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
pub fn with_status(record: RegistryRecord) -> fleet_api::manager::UserCanister {
    let mut canister: fleet_api::manager::UserCanister = record.into();
    if upgrading(&canister.canister_id) {
        canister.status = fleet_api::manager::CanisterStatus::Upgrading;
    }
    canister
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
                let snapshot = FleetSnapshot {
                    id: id.clone(),
                    release: before.clone(),
                    taken_at_ns: rec.started_at.unwrap_or(now),
                };
                s.set_fleet_snapshot(&mut record, Some(snapshot));
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

/// A fleet in the heap-backed stable memory (`VectorMemory` off wasm): published releases,
/// their chunk-store mirror and registered canisters, and the [`Env`] the shell would pass.
#[cfg(test)]
mod fixtures {
    use super::*;
    use crate::stored::MirroredRelease;
    use sha2::{Digest, Sha256};

    pub const MANAGER: Principal = Principal::from_slice(&[9; 10]);

    pub fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    pub fn env(now: u64) -> Env {
        Env {
            now,
            manager: MANAGER,
            liquid_cycles: u128::MAX / 2,
        }
    }

    /// Publishes `version` (a distinct minimal module) and, when `mirrored`, records it as in
    /// the chunk store.
    pub fn publish(version: &str, mirrored: bool) -> ReleaseRef {
        let module = [b"\0asm\x01\0\0\0".as_slice(), version.as_bytes()].concat();
        let sha = Sha256::digest(&module).to_vec();
        state::with_mut(|s| {
            s.store
                .begin_upload(
                    wasm_store::BeginUpload {
                        version: version.into(),
                        total_size: module.len() as u64,
                        sha256: sha.clone(),
                        notes: String::new(),
                        interface: None,
                    },
                    p(200),
                    0,
                )
                .unwrap();
            s.store.put_chunk(version, 0, module).unwrap();
            s.store.finalize(version, 0).unwrap();
            let release = ReleaseRef {
                version: version.into(),
                sha256: sha.clone(),
            };
            if mirrored {
                let mut mirror = s.mirror_state();
                mirror.stored.push(sha.clone());
                mirror.releases.push(MirroredRelease {
                    release: release.clone(),
                    chunk_hashes: vec![sha],
                });
                s.set_mirror_state(mirror);
            }
            release
        })
    }

    /// Canister `n`, owned by `p(n + 100)`, running `release`.
    pub fn register(n: u8, release: &ReleaseRef, policy: RecordPolicy) -> Principal {
        let id = Principal::from_slice(&[n, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        state::with_mut(|s| {
            s.registry.put(RegistryRecord {
                snapshot: None,
                canister_id: id,
                owner: p(n + 100),
                recovery_principal: p(n + 150),
                current_release: Some(release.clone()),
                policy,
                status: CanisterStatus::Active,
                last_error: None,
                history: Vec::new(),
                created_at_ns: 0,
                updated_at_ns: 0,
                subnet: None,
            })
        });
        id
    }
}

/// The owner's upgrade request, decided natively: registry, releases, chunk-store mirror and the
/// rollout engine in stable memory (`VectorMemory` off wasm), the IC given as an [`Env`].
#[cfg(test)]
mod request_tests {
    use super::fixtures::*;
    use super::*;

    fn ask(
        caller: Principal,
        id: Option<Principal>,
        version: Option<&str>,
    ) -> Result<u64, RequestUpgradeError> {
        request_upgrade(caller, id, version.map(str::to_string), env(1_000))
            .map(|ticket| ticket.ticket)
    }

    /// No rollout exists, and none was opened by a refused request.
    fn no_rollout() -> bool {
        status(1_000).is_none()
    }

    #[test]
    fn only_the_canister_and_its_owner_may_ask() {
        let v1 = publish("1.0.0", true);
        publish("2.0.0", true);
        let id = register(1, &v1, RecordPolicy::Auto);
        assert_eq!(
            ask(Principal::anonymous(), Some(id), Some("2.0.0")),
            Err(RequestUpgradeError::NotAuthorized)
        );
        assert_eq!(
            ask(p(7), Some(id), Some("2.0.0")),
            Err(RequestUpgradeError::NotAuthorized)
        );
        assert_eq!(
            ask(p(7), None, Some("2.0.0")),
            Err(RequestUpgradeError::UnknownCanister)
        );
        assert_eq!(
            ask(p(101), Some(p(9)), Some("2.0.0")),
            Err(RequestUpgradeError::UnknownCanister)
        );
        assert!(no_rollout());
        // The canister itself is heard, naming no canister (it is the caller).
        assert_eq!(ask(id, None, Some("2.0.0")), Ok(1));
        assert_eq!(status(1_000).map(|s| s.counts.total()), Some(1));
    }

    #[test]
    fn a_request_the_release_or_the_policy_forbids_changes_nothing() {
        let v1 = publish("1.0.0", true);
        publish("2.0.0", false);
        publish("3.0.0", true);
        let pinned = register(1, &v1, RecordPolicy::Pinned("1.0.0".into()));
        let free = register(2, &v1, RecordPolicy::Auto);
        assert_eq!(
            ask(p(102), Some(free), Some("9.9.9")),
            Err(RequestUpgradeError::UnknownRelease {
                version: "9.9.9".into()
            })
        );
        assert_eq!(
            ask(p(102), Some(free), None),
            Err(RequestUpgradeError::NoTarget)
        );
        assert_eq!(
            ask(p(101), Some(pinned), Some("3.0.0")),
            Err(RequestUpgradeError::Pinned {
                version: "1.0.0".into()
            })
        );
        assert_eq!(
            ask(p(102), Some(free), Some("1.0.0")),
            Err(RequestUpgradeError::AlreadyOnTarget {
                version: "1.0.0".into()
            })
        );
        assert_eq!(
            ask(p(102), Some(free), Some("2.0.0")),
            Err(RequestUpgradeError::NotMirrored {
                version: "2.0.0".into()
            })
        );
        assert!(no_rollout());
        assert_eq!(counters().upgrade_requests, 0);
    }

    #[test]
    fn requests_join_the_rollout_to_their_target_and_no_other() {
        let v1 = publish("1.0.0", true);
        publish("2.0.0", true);
        publish("3.0.0", true);
        let a = register(1, &v1, RecordPolicy::Auto);
        let b = register(2, &v1, RecordPolicy::Manual);
        let c = register(3, &v1, RecordPolicy::Auto);
        // The first request opens a rollout of its own, with this canister in it.
        assert_eq!(ask(p(101), Some(a), Some("2.0.0")), Ok(1));
        let first = status(1_000).expect("a rollout was opened");
        assert_eq!(first.id, 1);
        assert_eq!(first.counts.total(), 1);
        // A manual canister's owner may still ask; the request joins the same rollout, also
        // when it names no version (the running rollout's target).
        assert_eq!(ask(p(102), Some(b), None), Ok(2));
        let joined = status(1_000).unwrap();
        assert_eq!(joined.id, 1);
        assert_eq!(joined.counts.total(), 2);
        // A request to another release is refused while that rollout runs.
        assert_eq!(
            ask(p(103), Some(c), Some("3.0.0")),
            Err(RequestUpgradeError::OtherRolloutActive {
                id: 1,
                target_version: "2.0.0".into()
            })
        );
        assert_eq!(status(1_000).unwrap().counts.total(), 2);
        // A paused rollout still takes requests to its target: they wait for the resume.
        pause(1_000).unwrap();
        assert_eq!(ask(p(103), Some(c), Some("2.0.0")), Ok(3));
        let paused = status(1_000).unwrap();
        assert_eq!(paused.phase, fleet_api::rollout::Phase::Paused);
        assert_eq!((paused.counts.total(), paused.counts.in_flight), (3, 0));
        assert_eq!(counters().upgrade_requests, 3);
        assert_eq!(counters().rollouts_started, 1);
    }

    #[test]
    fn a_draining_manager_takes_no_request() {
        let v1 = publish("1.0.0", true);
        publish("2.0.0", true);
        let a = register(1, &v1, RecordPolicy::Auto);
        drain(env(1_000));
        assert_eq!(
            ask(p(101), Some(a), Some("2.0.0")),
            Err(RequestUpgradeError::Draining)
        );
        assert!(no_rollout());
        end_drain(env(1_000));
        assert_eq!(ask(p(101), Some(a), Some("2.0.0")), Ok(1));
    }
}

/// Rollouts driven end to end against a fake IC that answers every call the way the management
/// canister and a user canister would: the rollout policy and the registry's reconciliation,
/// proved natively from the manager's own queries.
#[cfg(test)]
mod rollout_tests {
    use super::fixtures::*;
    use super::*;
    use crate::fake::{block_on, Canister, FakeIc};
    use fleet_api::rollout::{
        Canary, FailurePolicy as WireFailure, HaltReason, Hold, Limits as WireLimits,
        Outcome as WireOutcome, Phase as WirePhase, PipelineLogKind as LogKind,
        RetryPolicy as WireRetry,
    };
    use rollout_core::MINUTE;
    use std::collections::VecDeque;

    /// The shell's driver over the fake IC: issues the calls the engine asks for and answers
    /// them oldest first through [`crate::calls::perform`], feeding each result back the way
    /// `driver::run` does (next action, refill when a slot frees).
    struct Ic {
        fake: FakeIc,
        /// Calls issued, not answered yet.
        pending: VecDeque<Action>,
        answered: Vec<Action>,
    }

    impl Ic {
        /// The IC at `now` with the registered canisters `ids`, running their registered
        /// release, controlled by the manager and their recovery principal; its chunk store
        /// holds what the manager's mirror records, and each module reports its version.
        fn new(ids: &[Principal], now: u64) -> Self {
            let fake = FakeIc::new(MANAGER, now, u128::MAX / 2);
            for id in ids {
                let r = record(*id);
                let module = r.current_release.map(|r| r.sha256);
                fake.add_canister(*id, vec![MANAGER, r.recovery_principal], module);
            }
            state::with(|s| {
                for m in s.mirror_state().releases {
                    for i in 0..m.chunk_hashes.len() {
                        let chunk = s.store.chunk(&m.release.version, i as u32).expect("stored");
                        fake.put_chunk(chunk);
                    }
                    fake.set_version(&m.release.sha256, &health_version(&m.release.version));
                }
            });
            Ic {
                fake,
                pending: VecDeque::new(),
                answered: Vec::new(),
            }
        }

        fn env(&self) -> Env {
            Env::of(&self.fake)
        }

        fn now(&self) -> u64 {
            self.fake.now_ns()
        }

        fn canister(&self, id: Principal) -> Canister {
            self.fake.canister(id).expect("a canister of the fleet")
        }

        /// A timer tick; returns the canisters whose pipeline it started.
        fn tick(&mut self) -> Vec<Principal> {
            let actions = tick(self.env());
            let started = starts(&actions);
            self.pending.extend(actions);
            started
        }

        /// Answers the oldest outstanding call; false when none is left.
        fn answer_one(&mut self) -> bool {
            let Some(action) = self.pending.pop_front() else {
                return false;
            };
            let result = block_on(crate::calls::perform(&self.fake, &action));
            self.answered.push(action.clone());
            self.fake.advance(SECOND);
            let fed = on_result(action.canister, result, &self.fake);
            self.pending.extend(fed.next);
            self.pending.extend(fed.started);
            true
        }

        /// Answers calls until none is outstanding.
        fn settle(&mut self) {
            while self.answer_one() {}
        }

        /// A tick a minute, every call answered, until the rollout ends or `ticks` passed.
        fn run(&mut self, ticks: usize) {
            for _ in 0..ticks {
                self.tick();
                self.settle();
                let phase = status(self.now()).map(|s| s.phase);
                if matches!(phase, Some(WirePhase::Completed | WirePhase::Aborted)) {
                    return;
                }
                self.fake.advance(MINUTE);
            }
        }
    }

    fn starts(actions: &[Action]) -> Vec<Principal> {
        actions
            .iter()
            .filter(|a| a.op == Op::CanisterStatus)
            .map(|a| a.canister)
            .collect()
    }

    /// Releases 1.0.0 and 2.0.0, mirrored, and `n` canisters on 1.0.0.
    fn fleet(n: u8) -> (ReleaseRef, ReleaseRef, Vec<Principal>) {
        let v1 = publish("1.0.0", true);
        let v2 = publish("2.0.0", true);
        let ids = (1..=n)
            .map(|i| register(i, &v1, RecordPolicy::Auto))
            .collect();
        (v1, v2, ids)
    }

    /// One wave of the whole cohort, no canary, no bake time.
    fn plan(target: &str) -> RolloutPlanArg {
        let mut arg = RolloutPlanArg::to(target);
        arg.canary = Some(Canary::None);
        arg.waves_percent = Some(vec![100]);
        arg.bake_secs = Some(0);
        arg
    }

    fn in_flight(max: u32) -> Option<WireLimits> {
        Some(WireLimits {
            max_in_flight: max,
            starts_per_minute: 60,
            burst: 10,
            max_starts_per_tick: 10,
            per_subnet: None,
        })
    }

    /// What the operator's `start_rollout` does once its checks passed.
    fn launch(arg: &RolloutPlanArg, env: Env) -> RolloutStarted {
        let plan = to_plan(arg).unwrap_or_else(|e| panic!("plan refused: {e:?}"));
        assert!(check_idle().is_ok());
        let cohort = select_cohort(&plan).unwrap_or_else(|e| panic!("no cohort: {e:?}"));
        start(&plan, cohort, env)
    }

    fn record(id: Principal) -> RegistryRecord {
        state::with(|s| s.registry.get(&id)).expect("a registered canister")
    }

    fn fleet_snapshot(id: Principal) -> Option<FleetSnapshot> {
        state::with(|s| s.fleet_snapshot(&s.registry.get(&id)?))
    }

    /// The pipeline log's entries for `id`, oldest first.
    fn log_of(id: Principal) -> Vec<LogKind> {
        let page = pipeline_log(LogPageArg {
            from: 0,
            limit: Some(MAX_ROLLOUT_PAGE),
        });
        page.entries
            .into_iter()
            .filter(|(_, e)| e.canister_id == id)
            .map(|(_, e)| e.kind)
            .collect()
    }

    fn left(outcome: Option<WireOutcome>) -> LogKind {
        LogKind::Left { outcome }
    }

    /// The IC runs `release` in `id`, and the registry records it so, with `status`.
    fn runs(
        ic: &Ic,
        id: Principal,
        release: &ReleaseRef,
        status: CanisterStatus,
    ) -> RegistryRecord {
        let c = ic.canister(id);
        assert_eq!(c.module_hash.as_ref(), Some(&release.sha256));
        assert!(c.running);
        let r = record(id);
        assert_eq!(r.status, status);
        assert_eq!(r.current_release.as_ref(), Some(release));
        r
    }

    /// Runs the rollout to its end: completed, every canister of `ids` upgraded to `release`.
    fn completes(ic: &mut Ic, ids: &[Principal], release: &ReleaseRef) {
        ic.run(10);
        let st = status(ic.now()).expect("a rollout");
        assert_eq!(st.phase, WirePhase::Completed);
        let n = ids.len() as u64;
        assert_eq!((st.counts.done, st.counts.total()), (n, n));
        for id in ids {
            runs(ic, *id, release, CanisterStatus::Active);
        }
    }

    /// On `release`, running, never touched by a rollout.
    fn untouched(id: Principal, release: &ReleaseRef, ic: &Ic) {
        let r = runs(ic, id, release, CanisterStatus::Active);
        assert!(r.history.is_empty());
        assert!(log_of(id).is_empty());
        assert_eq!(ic.fake.calls_to(id), 0);
    }

    /// `plan_rollout`'s preview: what the start then creates, the plan as it would run and the
    /// manager's cycles; nothing opened; a running rollout refuses it as it refuses a start.
    #[test]
    fn a_preview_shows_what_the_start_creates_and_changes_nothing() {
        let (_, _, ids) = fleet(5);
        let ic = Ic::new(&ids, 1_000);
        let mut arg = plan("2.0.0");
        arg.canary = Some(Canary::Count(2));
        arg.limits = in_flight(3);
        let preview = preview(&ic.fake, &arg).unwrap();
        assert!(status(1_000).is_none(), "nothing opened");
        assert_eq!(preview.limits, in_flight(3).unwrap());
        assert_eq!(preview.bake_secs, 0);
        assert!(preview.take_snapshot);
        assert_eq!(preview.liquid_cycles, ic.fake.liquid_cycles_balance());
        assert_eq!(preview.pipeline_cycles_reserve, pipeline_reserve());
        let mut started = block_on(start_plan(&ic.fake, &arg)).unwrap();
        // The start opens its first wave; the preview opens none.
        assert_eq!(started.waves[0].opened_at.take(), Some(1_000));
        assert_eq!(preview.rollout, started);
        assert!(matches!(
            super::preview(&ic.fake, &arg),
            Err(StartRolloutError::RolloutActive { id, .. }) if id == started.id
        ));
    }

    #[test]
    fn a_rollout_upgrades_every_canister_and_the_registry_follows() {
        let (v1, v2, ids) = fleet(3);
        let mut ic = Ic::new(&ids, 1_000);
        assert_eq!(launch(&plan("2.0.0"), ic.env()).canisters, 3);
        completes(&mut ic, &ids, &v2);
        for id in &ids {
            let r = record(*id);
            assert_eq!(r.last_error, None);
            assert_eq!(r.history.len(), 1);
            let event = &r.history[0];
            assert_eq!(event.from.as_ref(), Some(&v1));
            assert_eq!(event.to, v2);
            assert_eq!(event.outcome, UpgradeOutcome::Upgraded);
            // The fleet snapshot is the one the IC holds, of the release before.
            let snap = fleet_snapshot(*id).expect("the snapshot is recorded");
            let held = ic.canister(*id).snapshot.map(|s| s.0);
            assert_eq!(Some(snap.id), held);
            assert_eq!(snap.release.as_ref(), Some(&v1));
            assert_eq!(
                log_of(*id),
                vec![LogKind::Started, left(Some(WireOutcome::Done))]
            );
        }
        // A rollback of these canisters would restore 1.0.0.
        let back = restore_plan(&ids, None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(back.release.module_hash, v1.sha256);
        let c = counters();
        assert_eq!(c.rollouts_started, 1);
        assert_eq!(c.pipelines_started, 3);
        assert_eq!(c.upgraded, 3);
        assert_eq!(
            (c.failed, c.rolled_back, c.deferred.unwrap_or(0)),
            (0, 0, 0)
        );
        assert_eq!(c.calls_issued, ic.answered.len() as u64);

        // Once their retention is over the snapshots are deleted, and forgotten.
        assert!(has_work());
        ic.fake.advance(8 * 24 * 60 * MINUTE);
        ic.run(1);
        for id in &ids {
            assert!(ic.canister(*id).snapshot.is_none());
            assert!(fleet_snapshot(*id).is_none());
        }
        assert!(!has_work());
    }

    #[test]
    fn an_unhealthy_release_is_rolled_back_and_halts_the_rollout() {
        let (v1, v2, ids) = fleet(3);
        let mut ic = Ic::new(&ids, 1_000);
        ic.fake.break_module(&v2.sha256);
        let mut arg = plan("2.0.0");
        arg.limits = in_flight(1);
        arg.failure = Some(WireFailure {
            max_failed_percent: 100,
            max_consecutive_failures: 1,
            halt_scope: None,
        });
        launch(&arg, ic.env());
        ic.run(10);

        let first = ic.answered[0].canister;
        // The IC: the snapshot was loaded, the canister runs its old module again.
        assert!(ic
            .answered
            .iter()
            .any(|a| a.canister == first && matches!(a.op, Op::LoadSnapshot { .. })));
        // The registry: rolled back, on the release it runs, with the reason.
        let r = runs(&ic, first, &v1, CanisterStatus::RolledBack);
        assert!(r.last_error.is_some());
        assert_eq!(r.history.len(), 1);
        assert_eq!(r.history[0].to, v2);
        assert!(matches!(
            r.history[0].outcome,
            UpgradeOutcome::RolledBack(_)
        ));
        let snap = fleet_snapshot(first).expect("the snapshot is recorded");
        assert_eq!(snap.release.as_ref(), Some(&v1));
        assert_eq!(
            log_of(first),
            vec![LogKind::Started, left(Some(WireOutcome::RolledBack))]
        );
        // One failure in a row halts the rollout: nothing more started in ten minutes.
        let st = status(ic.now()).expect("a rollout");
        assert_eq!(
            st.phase,
            WirePhase::Halted(HaltReason::ConsecutiveFailures { count: 1 })
        );
        assert_eq!(
            (
                st.counts.rolled_back,
                st.counts.pending,
                st.counts.in_flight
            ),
            (1, 2, 0)
        );
        for id in ids.iter().filter(|id| **id != first) {
            untouched(*id, &v1, &ic);
        }
        let c = counters();
        assert_eq!((c.pipelines_started, c.rolled_back, c.upgraded), (1, 1, 0));
    }

    #[test]
    fn a_busy_canister_is_deferred_not_failed() {
        let (v1, v2, ids) = fleet(3);
        let mut ic = Ic::new(&ids, 1_000);
        let busy = ids[1];
        ic.fake
            .reject("stop_canister", Some(busy), 5, "canister is busy", None);
        let mut arg = plan("2.0.0");
        // The strictest failure policy: any failure would halt the rollout.
        arg.failure = Some(WireFailure {
            max_failed_percent: 0,
            max_consecutive_failures: 1,
            halt_scope: None,
        });
        arg.retry = Some(WireRetry {
            stop_attempts: 2,
            backoff_base_ns: MINUTE,
            backoff_max_ns: MINUTE,
        });
        launch(&arg, ic.env());

        ic.tick();
        ic.settle();
        // Rejected once: started again, waiting for its retry, running its release.
        let st = status(ic.now()).expect("a rollout");
        assert_eq!((st.counts.done, st.counts.busy), (2, 1));
        assert_eq!(st.phase, WirePhase::Running);
        assert_eq!(record(busy).status, CanisterStatus::Active);
        assert!(ic.canister(busy).running);

        ic.run(10);
        let st = status(ic.now()).expect("a rollout");
        assert_eq!(st.phase, WirePhase::Completed);
        assert_eq!(st.counts.done, 2);
        assert_eq!(st.counts.deferred, Some(1));
        assert_eq!((st.counts.failed, st.counts.rolled_back), (0, 0));
        assert_eq!((st.deferrals.environment, st.deferrals.manager), (2, 0));
        // Left on its release, running, not failed; no upgrade in its history.
        let r = runs(&ic, busy, &v1, CanisterStatus::Active);
        assert!(r.history.is_empty());
        let why = r.last_error.expect("the reason is kept");
        assert!(
            why.contains("Stop") && why.contains("reject_code: 5"),
            "{why}"
        );
        assert_eq!(
            log_of(busy),
            vec![
                LogKind::Started,
                left(None),
                LogKind::Started,
                left(Some(WireOutcome::Deferred)),
            ]
        );
        for id in ids.iter().filter(|id| **id != busy) {
            assert_eq!(record(*id).current_release.as_ref(), Some(&v2));
        }
        let c = counters();
        assert_eq!((c.upgraded, c.failed, c.rolled_back), (2, 0, 0));
        assert_eq!(c.deferred, Some(1));
    }

    /// A tick that can start nothing (the in-flight limit is reached) leaves the stored header
    /// as it was, though the manager's cycles moved; the call results that follow write it.
    #[test]
    fn an_idle_tick_writes_no_header() {
        let (_, v2, ids) = fleet(3);
        let mut ic = Ic::new(&ids, 1_000);
        let mut arg = plan("2.0.0");
        arg.limits = in_flight(1);
        launch(&arg, ic.env());
        assert_eq!(ic.tick().len(), 1);
        // The next tick resets the per-tick start count: that is a change, and written.
        ic.fake.advance(SECOND);
        assert!(ic.tick().is_empty());
        use ic_stable_structures::Storable;
        let header = || state::with(|s| s.rollout_meta.get().to_bytes().into_owned());
        let stored = header();
        ic.fake.set_balance(ic.fake.cycles_balance() - 1_000_000);
        ic.fake.advance(SECOND);
        assert!(ic.tick().is_empty());
        assert_eq!(header(), stored, "an idle tick wrote the header");
        ic.settle();
        assert_ne!(header(), stored);
        completes(&mut ic, &ids, &v2);
    }

    /// The header holds no subnet: each subnet's state is stored apart, so the header's size
    /// does not grow with the subnets a rollout spans, and a manager whose heap was lost (an
    /// upgrade) reads the subnets back from their own memory.
    #[test]
    fn a_rollouts_subnets_are_stored_apart_from_its_header_and_read_back() {
        let (_, _, ids) = fleet(4);
        let other = Principal::from_slice(&[9; 29]);
        state::with_mut(|s| {
            let mut st = s.subnets_state();
            st.subnets.push(crate::subnets::SubnetStore {
                subnet: other,
                store: p(77),
                canisters: 2,
                mirror: s.mirror_state(),
            });
            s.set_subnets_state(st);
            for id in &ids[2..] {
                s.registry.update(id, |r| r.subnet = Some(other));
            }
        });
        let mut ic = Ic::new(&ids, 1_000);
        let mut arg = plan("2.0.0");
        arg.limits = in_flight(1);
        launch(&arg, ic.env());
        assert_eq!(ic.tick().len(), 1);
        ic.settle();

        let stored = || state::with(|s| s.rollout_meta.get().decode());
        let header: RolloutMeta = stored();
        let current = header.current.expect("a rollout");
        assert!(current.subnets.is_empty(), "{:?}", current.subnets);
        let apart = state::with(|s| s.rollout_subnets(current.id));
        assert_eq!(
            apart.iter().map(|s| s.subnet).collect::<Vec<_>>(),
            vec![None, Some(other)]
        );
        assert_eq!(apart.iter().map(|s| s.counts.total()).sum::<u64>(), 4);
        assert_eq!(apart.iter().map(|s| s.counts.done).sum::<u64>(), 1);

        let before = status(ic.now()).expect("a rollout");
        reset_cache();
        let after = status(ic.now()).expect("a rollout");
        assert_eq!(after.subnets, before.subnets);
        assert_eq!(after.subnets.map(|s| s.len()), Some(2));
        // The reloaded engine goes on: the next canister, on the other subnet, is started and
        // its end counted there (the fake IC has no store on that subnet: its install fails).
        ic.run(10);
        let end = status(ic.now()).expect("a rollout");
        let by_subnet: Vec<_> = end
            .subnets
            .unwrap_or_default()
            .iter()
            .map(|s| (s.subnet, s.done, s.failed))
            .collect();
        assert_eq!(by_subnet, vec![(None, 1, 0), (Some(other), 0, 1)]);
    }

    #[test]
    fn a_drain_holds_new_starts_while_pipelines_in_flight_finish() {
        let (v1, v2, ids) = fleet(4);
        let mut ic = Ic::new(&ids, 1_000);
        let mut arg = plan("2.0.0");
        arg.limits = in_flight(2);
        launch(&arg, ic.env());

        let first = ic.tick();
        assert_eq!(first.len(), 2);
        assert_eq!(drain(ic.env()), (true, 2));
        // The two in flight finish; the slots they free start nothing.
        ic.settle();
        for id in &first {
            assert_eq!(record(*id).current_release.as_ref(), Some(&v2));
        }
        assert!(ic.tick().is_empty());
        ic.fake.advance(10 * MINUTE);
        assert!(ic.tick().is_empty());
        let st = status(ic.now()).expect("a rollout");
        assert_eq!(st.phase, WirePhase::Running);
        assert_eq!(st.hold, Some(Hold::Draining));
        assert_eq!(
            (st.counts.done, st.counts.pending, st.counts.in_flight),
            (2, 2, 0)
        );
        for id in ids.iter().filter(|id| !first.contains(id)) {
            untouched(*id, &v1, &ic);
        }
        assert_eq!(counters().pipelines_started, 2);

        // The end of the drain lets the rest start.
        assert_eq!(end_drain(ic.env()), (false, 0));
        assert_eq!(status(ic.now()).and_then(|s| s.hold), None);
        completes(&mut ic, &ids, &v2);
    }

    #[test]
    fn a_manager_low_on_cycles_starts_only_what_its_reserve_covers() {
        let (v1, v2, ids) = fleet(4);
        let reserve = pipeline_reserve();
        assert!(reserve > 0);
        let ic = Ic::new(&ids, 1_000);
        ic.fake.set_balance(reserve - 1);
        let mut ic = ic;
        let mut arg = plan("2.0.0");
        arg.limits = in_flight(4);
        launch(&arg, ic.env());

        // Below one pipeline's reserve: nothing starts, and the status says why.
        assert!(ic.tick().is_empty());
        let st = status(ic.now()).expect("a rollout");
        assert_eq!(st.phase, WirePhase::Running);
        assert_eq!(
            st.hold,
            Some(Hold::ManagerLowCycles {
                liquid: reserve - 1,
                needed: reserve
            })
        );
        assert_eq!(st.counts.pending, 4);
        for id in &ids {
            untouched(*id, &v1, &ic);
        }

        // Enough for two pipelines: two start, and the rest wait while they run.
        ic.fake.set_balance(2 * reserve);
        assert_eq!(ic.tick().len(), 2);
        ic.fake.advance(MINUTE);
        assert!(ic.tick().is_empty());
        let st = status(ic.now()).expect("a rollout");
        assert_eq!(
            st.hold,
            Some(Hold::ManagerLowCycles {
                liquid: 2 * reserve,
                needed: 3 * reserve
            })
        );
        assert_eq!((st.counts.in_flight, st.counts.pending), (2, 2));

        // Topped up: the hold is lifted and the others start.
        ic.fake.set_balance(100 * reserve);
        assert_eq!(ic.tick().len(), 2);
        assert_eq!(status(ic.now()).and_then(|s| s.hold), None);
        completes(&mut ic, &ids, &v2);
        assert_eq!(counters().pipelines_started, 4);
    }
}
