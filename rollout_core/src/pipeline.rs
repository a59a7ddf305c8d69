//! The upgrade pipeline of one canister as a state machine.
//!
//! Every step is a persisted [`Step`]; each result of a call moves the record to the next step
//! and names the one call to make next, so a canister never has two operations at once and a
//! manager that restarts mid-way resumes from the record. Whatever fails after the canister was
//! stopped, the next call is `start_canister`: a stopped canister is always started again.
//!
//! The manager is not the only shell: an end user's recovery (`fleet recovery upgrade` and
//! `rollback`) drives one record of its own as a controller of the canister. The caller then
//! is both [`Ctx::manager`] and the record's recovery principal, so the precheck's controller
//! rule reads "the caller is a controller", and its retry policy allows one attempt.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

use crate::plan::{CyclesPolicy, Release, RetryPolicy};
use crate::store::QueueKey;
use crate::{Nanos, SnapshotId};

/// A call the shell makes on behalf of the rollout.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub canister: Principal,
    pub op: Op,
    /// The canister's subnet as the rollout groups it (`None`: the manager's own): the shell
    /// installs from that subnet's store without looking the canister up.
    pub subnet: Option<Principal>,
}

/// The calls of the pipeline, all to the management canister except `HealthCheck`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `canister_status`; answer with [`ActionResult::Status`].
    CanisterStatus,
    /// `deposit_cycles` from the manager's balance; answer with [`ActionResult::ToppedUp`].
    TopUp { cycles: u128 },
    /// `stop_canister`, under the rollout's stop deadline (the shell makes it a bounded-wait
    /// call); answer `Stopped` or `StopTimedOut`.
    Stop,
    /// `start_canister`; answer `Started`.
    Start,
    /// `take_canister_snapshot` with `replace_snapshot`; answer `SnapshotTaken`.
    TakeSnapshot { replace: Option<SnapshotId> },
    /// `install_chunked_code` in upgrade mode from the manager's chunk store, with the release
    /// whose module hash this is; answer `Installed` or `InstallFailed`.
    InstallChunked { module_hash: Vec<u8> },
    /// The user canister's `fleet_health` query; answer `Health`.
    HealthCheck,
    /// `load_canister_snapshot`; answer `SnapshotLoaded`.
    LoadSnapshot { snapshot: SnapshotId },
    /// `delete_canister_snapshot` once the snapshot's retention is over; answer `SnapshotDeleted`.
    DeleteSnapshot { snapshot: SnapshotId },
}

impl Op {
    pub fn kind(&self) -> OpKind {
        match self {
            Op::CanisterStatus => OpKind::CanisterStatus,
            Op::TopUp { .. } => OpKind::TopUp,
            Op::Stop => OpKind::Stop,
            Op::Start => OpKind::Start,
            Op::TakeSnapshot { .. } => OpKind::TakeSnapshot,
            Op::InstallChunked { .. } => OpKind::InstallChunked,
            Op::HealthCheck => OpKind::HealthCheck,
            Op::LoadSnapshot { .. } => OpKind::LoadSnapshot,
            Op::DeleteSnapshot { .. } => OpKind::DeleteSnapshot,
        }
    }
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    CanisterStatus,
    TopUp,
    Stop,
    Start,
    TakeSnapshot,
    InstallChunked,
    HealthCheck,
    LoadSnapshot,
    DeleteSnapshot,
}

/// A rejected call, as the IC reports it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub reject_code: u32,
    pub message: String,
}

/// The outcome of an [`Op`], fed back by the shell.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ActionResult {
    Status {
        controllers: Vec<Principal>,
        module_hash: Option<Vec<u8>>,
        cycles: u128,
    },
    ToppedUp,
    Stopped,
    /// The canister did not reach `stopped` before the deadline (or the IC's own timeout).
    StopTimedOut,
    SnapshotTaken {
        snapshot: SnapshotId,
    },
    Installed,
    /// The IC refused or trapped the upgrade; it kept the old module.
    InstallFailed(CallError),
    Started,
    Health {
        ok: bool,
        version: String,
        message: Option<String>,
    },
    SnapshotLoaded,
    SnapshotDeleted,
    /// Any other reject of the call.
    CallFailed(CallError),
}

/// What kind of work a record does.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Precheck, stop, snapshot, install, start, health check.
    Upgrade,
    /// Precheck (controllers), stop, load the fleet snapshot, start.
    Restore,
}

/// Where a canister is in its pipeline. Steps named after a call mean that call is the
/// current one (outstanding, or waiting to be issued again after a backoff).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Queued; nothing done yet.
    Pending,
    Precheck,
    ToppingUp {
        cycles: u128,
    },
    Stopping,
    Snapshotting,
    Installing,
    /// Starting the canister again; `then` says where the pipeline goes once it runs.
    Starting {
        then: AfterStart,
    },
    HealthCheck,
    /// Health check failed: stopping to restore the snapshot.
    RestoringStop,
    RestoringLoad,
    /// Deferred (would not stop, or a call failed for its environment or the manager): it runs
    /// its old release and the pipeline restarts after a backoff.
    Busy,
    Finished(Outcome),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterStart {
    HealthCheck,
    /// Deferred: wait for a retry (or end [`Outcome::Deferred`] after the last attempt).
    Busy,
    Fail,
    RolledBack,
    Cancel,
    /// The restore's stop timed out; try the restore again after a backoff.
    RetryRestore,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Upgraded and healthy.
    Done,
    /// A restore job loaded the snapshot.
    Restored,
    /// Unhealthy after upgrade; the snapshot was restored.
    RolledBack,
    Failed,
    /// Left untouched: precheck found a reason not to upgrade.
    Skipped,
    /// Dropped by an abort before anything changed (or after it was undone).
    Cancelled,
    /// Left on its release, running, because of its environment (busy, frozen, controllers
    /// changed) or of the manager (its cycles, its queues, the subnet), after every retry the
    /// rollout allows. Never counted against the release.
    Deferred,
}

impl Outcome {
    /// Counts toward the failure thresholds.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::RolledBack)
    }
}

/// Who a failure is attributed to. Only [`Cause::Release`] counts toward the failure
/// thresholds and halts a wave; the others defer the canister and retry it later.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The new module: install or `post_upgrade` trapped, the health check failed.
    Release,
    /// The canister: busy (would not stop), frozen or low on cycles, controllers changed, gone.
    Environment,
    /// The manager or its subnet: its own cycles or queues, `SYS_TRANSIENT`, lost responses.
    Manager,
}

/// Reject code the shell reports when a call was never sent (`ic0.call_perform` failed: the
/// manager cannot pay for it or its output queue is full).
pub const NOT_SENT: u32 = 0;

/// Attributes a rejected call by its reject code (interface spec, "Reject codes") and the call
/// it answers, never by its message text. `manager_low` is set when the manager's own liquid
/// balance was below what finishing one pipeline needs when the reject arrived: then any
/// reject is the manager's.
pub fn classify(op: OpKind, e: &CallError, manager_low: bool) -> Cause {
    if manager_low {
        return Cause::Manager;
    }
    match (e.reject_code, op) {
        // Not sent, SYS_FATAL: the manager's side.
        (NOT_SENT, _) | (1, _) => Cause::Manager,
        // The IC's own stop timeout (IC0206) and the manager's deadline: the canister is busy.
        (2 | 6, OpKind::Stop) => Cause::Environment,
        // SYS_TRANSIENT (queues full, out of cycles in flight) and SYS_UNKNOWN (a lost or late
        // response): the subnet or the manager, worth retrying.
        (2 | 6, _) => Cause::Manager,
        // DESTINATION_INVALID: the canister is gone.
        (3, _) => Cause::Environment,
        // The IC refused the module (CANISTER_REJECT) or it trapped in pre/post_upgrade
        // (CANISTER_ERROR); `fleet_health` rejected or trapped.
        (4 | 5, OpKind::InstallChunked | OpKind::HealthCheck) => Cause::Release,
        // Any other refusal of a management call: the canister's settings or state.
        _ => Cause::Environment,
    }
}

/// Why a canister was skipped, failed, rolled back or deferred.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    ManagerNotController,
    RecoveryControllerMissing,
    ModuleHashMismatch {
        expected: Option<Vec<u8>>,
        found: Option<Vec<u8>>,
    },
    AlreadyOnTarget,
    /// Below the minimum and the rollout's top-up budget cannot cover it.
    LowCycles {
        balance: u128,
        needed: u128,
    },
    CallFailed {
        op: OpKind,
        error: CallError,
    },
    StopTimedOut {
        attempts: u32,
    },
    /// A call failed for a reason of the manager or its subnet ([`Cause::Manager`]).
    ManagerCall {
        op: OpKind,
        error: CallError,
    },
    InstallFailed(CallError),
    Unhealthy {
        version: Option<String>,
        message: Option<String>,
    },
    /// Unhealthy, and no snapshot of this pipeline exists to restore.
    UnhealthyNoSnapshot {
        version: Option<String>,
        message: Option<String>,
    },
    RestoreFailed {
        op: OpKind,
        error: Option<CallError>,
    },
}

impl Failure {
    /// Whom the failure is attributed to.
    pub fn cause(&self) -> Cause {
        match self {
            Failure::ManagerCall { .. } => Cause::Manager,
            Failure::InstallFailed(_)
            | Failure::Unhealthy { .. }
            | Failure::UnhealthyNoSnapshot { .. }
            | Failure::RestoreFailed { .. } => Cause::Release,
            Failure::ManagerNotController
            | Failure::RecoveryControllerMissing
            | Failure::ModuleHashMismatch { .. }
            | Failure::AlreadyOnTarget
            | Failure::LowCycles { .. }
            | Failure::CallFailed { .. }
            | Failure::StopTimedOut { .. } => Cause::Environment,
        }
    }

    /// The failure of a call that is not the release's fault, by its cause.
    fn deferred(op: OpKind, error: CallError, cause: Cause) -> Failure {
        match cause {
            Cause::Manager => Failure::ManagerCall { op, error },
            _ => Failure::CallFailed { op, error },
        }
    }
}

/// The persisted state of one canister in a rollout.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CanisterRecord {
    pub job: Job,
    /// Index of the wave, or [`crate::rollout::REQUEST_WAVE`] for owner requests.
    pub wave: u32,
    pub step: Step,
    /// A call was issued and its result has not come back: its entry in the outstanding
    /// index, keyed by the time it was issued.
    pub outstanding: Option<QueueKey>,
    pub recovery: Principal,
    pub expected_module_hash: Option<Vec<u8>>,
    /// The fleet snapshot of this canister (replaced by this pipeline's snapshot).
    pub snapshot: Option<SnapshotId>,
    /// A snapshot was taken by this pipeline, so restoring it loses no data.
    pub snapshot_fresh: bool,
    /// Attempts that ended deferred (busy, environment or manager); the pipeline gives up
    /// with [`Outcome::Deferred`] at [`RetryPolicy::stop_attempts`].
    pub stop_attempts: u32,
    /// Failures of the current retried call (a start, a health check), reset on success.
    pub start_failures: u32,
    pub topped_up: u128,
    pub failure: Option<Failure>,
    /// The most recent rejected call, including retried ones.
    pub last_error: Option<CallError>,
    pub started_at: Option<Nanos>,
    pub finished_at: Option<Nanos>,
    pub ticket: Option<u64>,
    /// The queue entry that refers to this record, so it can be removed without a scan.
    pub queued: Option<QueueKey>,
    /// Index of the canister's subnet in [`crate::RolloutState::subnets`]: one byte instead of
    /// a principal in every record.
    pub subnet: u8,
}

impl CanisterRecord {
    pub fn new(job: Job, wave: u32, recovery: Principal) -> Self {
        CanisterRecord {
            job,
            wave,
            step: Step::Pending,
            outstanding: None,
            recovery,
            expected_module_hash: None,
            snapshot: None,
            snapshot_fresh: false,
            stop_attempts: 0,
            start_failures: 0,
            topped_up: 0,
            failure: None,
            last_error: None,
            started_at: None,
            finished_at: None,
            ticket: None,
            queued: None,
            subnet: 0,
        }
    }

    pub fn outcome(&self) -> Option<Outcome> {
        match self.step {
            Step::Finished(o) => Some(o),
            _ => None,
        }
    }

    /// Holds an in-flight slot: started, not finished, not waiting as busy.
    pub fn in_flight(&self) -> bool {
        !matches!(self.step, Step::Pending | Step::Busy | Step::Finished(_))
    }
}

/// What the pipeline needs from the rollout to take a step.
#[derive(Clone, Copy, Debug)]
pub struct Ctx<'a> {
    pub manager: Principal,
    pub target: &'a Release,
    pub take_snapshot: bool,
    pub cycles: &'a CyclesPolicy,
    /// Cycles still available for top-ups.
    pub budget_left: u128,
    pub retry: &'a RetryPolicy,
    /// The rollout is being aborted: stop at the next point where nothing is left changed.
    pub aborting: bool,
    /// The manager's liquid balance is below what finishing one pipeline needs: every reject
    /// is attributed to the manager.
    pub manager_low: bool,
}

/// What to do after a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Make this call now.
    Call(Op),
    /// Make the current step's call again at this time; the canister stays in flight.
    CallAt(Nanos),
    /// Busy: restart the pipeline at this time, when the limits allow.
    RetryAt(Nanos),
    /// The record reached [`Step::Finished`].
    Finished,
}

/// A result that does not belong to the record's step; the record is left unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch;

/// Begins (or restarts after busy) the pipeline: the first call is always `canister_status`.
pub fn begin(rec: &mut CanisterRecord, now: Nanos) -> Op {
    rec.step = Step::Precheck;
    if rec.started_at.is_none() {
        rec.started_at = Some(now);
    }
    Op::CanisterStatus
}

/// The call that the record's step stands for, if any.
pub fn current_op(rec: &CanisterRecord, target: &Release) -> Option<Op> {
    Some(match &rec.step {
        Step::Pending | Step::Busy | Step::Finished(_) => return None,
        Step::Precheck => Op::CanisterStatus,
        Step::ToppingUp { cycles } => Op::TopUp { cycles: *cycles },
        Step::Stopping | Step::RestoringStop => Op::Stop,
        Step::Snapshotting => Op::TakeSnapshot {
            replace: rec.snapshot.clone(),
        },
        Step::Installing => Op::InstallChunked {
            module_hash: target.module_hash.clone(),
        },
        Step::Starting { .. } => Op::Start,
        Step::HealthCheck => Op::HealthCheck,
        Step::RestoringLoad => Op::LoadSnapshot {
            snapshot: rec.snapshot.clone()?,
        },
    })
}

/// Applies the result of the record's current call. On [`Mismatch`] the record is unchanged.
pub fn on_result(
    rec: &mut CanisterRecord,
    result: ActionResult,
    ctx: &Ctx,
    now: Nanos,
) -> Result<Next, Mismatch> {
    use ActionResult as R;
    let mut r = rec.clone();
    let next = match (&rec.step, result) {
        (
            Step::Precheck,
            R::Status {
                controllers,
                module_hash,
                cycles,
            },
        ) => precheck(&mut r, ctx, &controllers, module_hash, cycles, now),
        (Step::Precheck, R::CallFailed(e)) => {
            call_deferred(&mut r, ctx, OpKind::CanisterStatus, e, false, now)
        }
        (Step::ToppingUp { cycles }, R::ToppedUp) => {
            r.topped_up += cycles;
            after_precheck(&mut r, ctx)
        }
        (Step::ToppingUp { .. }, R::CallFailed(e)) => {
            call_deferred(&mut r, ctx, OpKind::TopUp, e, false, now)
        }
        (Step::Stopping, R::Stopped) => {
            if ctx.aborting {
                restart(&mut r, AfterStart::Cancel)
            } else if r.job == Job::Restore {
                r.step = Step::RestoringLoad;
                load(&r)
            } else if ctx.take_snapshot {
                r.step = Step::Snapshotting;
                Next::Call(Op::TakeSnapshot {
                    replace: r.snapshot.clone(),
                })
            } else {
                install(&mut r, ctx)
            }
        }
        (Step::Stopping, R::StopTimedOut) => {
            r.stop_attempts += 1;
            r.failure = Some(Failure::StopTimedOut {
                attempts: r.stop_attempts,
            });
            restart(&mut r, AfterStart::Busy)
        }
        // The stop may be pending still: starting the canister cancels it.
        (Step::Stopping, R::CallFailed(e)) => {
            call_deferred(&mut r, ctx, OpKind::Stop, e, true, now)
        }
        (Step::Snapshotting, R::SnapshotTaken { snapshot }) => {
            r.snapshot = Some(snapshot);
            r.snapshot_fresh = true;
            if ctx.aborting {
                restart(&mut r, AfterStart::Cancel)
            } else {
                install(&mut r, ctx)
            }
        }
        (Step::Snapshotting, R::CallFailed(e)) => {
            call_deferred(&mut r, ctx, OpKind::TakeSnapshot, e, true, now)
        }
        (Step::Installing, R::Installed) => restart(&mut r, AfterStart::HealthCheck),
        (Step::Installing, R::InstallFailed(e) | R::CallFailed(e)) => {
            if classify(OpKind::InstallChunked, &e, ctx.manager_low) == Cause::Release {
                // The IC kept the old module (interface spec, "IC method `install_code`").
                r.failure = Some(Failure::InstallFailed(e.clone()));
                r.last_error = Some(e);
                restart(&mut r, AfterStart::Fail)
            } else {
                call_deferred(&mut r, ctx, OpKind::InstallChunked, e, true, now)
            }
        }
        (Step::Starting { then }, R::Started) => {
            r.start_failures = 0;
            started(&mut r, *then, ctx, now)
        }
        (Step::Starting { .. }, R::CallFailed(e)) => {
            // Never give up on starting a canister the rollout stopped.
            r.start_failures += 1;
            r.last_error = Some(e);
            Next::CallAt(now.saturating_add(ctx.retry.backoff(r.start_failures)))
        }
        (
            Step::HealthCheck,
            R::Health {
                ok,
                version,
                message,
            },
        ) => {
            let healthy = ok && version == ctx.target.version;
            if healthy {
                let outcome = match r.job {
                    Job::Upgrade => Outcome::Done,
                    Job::Restore => Outcome::Restored,
                };
                finish(&mut r, outcome)
            } else {
                let message = match (ok, message) {
                    (false, m) => m,
                    (true, m) => m.or_else(|| Some("unexpected version".to_string())),
                };
                unhealthy(&mut r, Some(version), message)
            }
        }
        (Step::HealthCheck, R::CallFailed(e)) => {
            let cause = classify(OpKind::HealthCheck, &e, ctx.manager_low);
            if cause != Cause::Manager {
                r.start_failures += 1;
            }
            if cause == Cause::Release || r.start_failures >= ctx.retry.stop_attempts {
                // Rejected or trapped, or no answer after every retry: the new module is
                // not known to work.
                let message = Some(e.message.clone());
                r.last_error = Some(e);
                unhealthy(&mut r, None, message)
            } else {
                // Late or lost answer, or the manager's own trouble: ask again later; the
                // canister runs meanwhile.
                r.last_error = Some(e);
                Next::CallAt(now.saturating_add(ctx.retry.backoff(r.start_failures.max(1))))
            }
        }
        (Step::RestoringStop, R::Stopped) => {
            r.step = Step::RestoringLoad;
            load(&r)
        }
        (Step::RestoringStop, R::StopTimedOut) => {
            r.stop_attempts += 1;
            restart(&mut r, AfterStart::RetryRestore)
        }
        (Step::RestoringStop, R::CallFailed(e))
            if classify(OpKind::Stop, &e, ctx.manager_low) == Cause::Manager =>
        {
            retry_later(&mut r, ctx, e, now)
        }
        (Step::RestoringStop, R::CallFailed(e)) => restore_failed(&mut r, OpKind::Stop, e),
        (Step::RestoringLoad, R::SnapshotLoaded) => {
            let then = match r.job {
                Job::Restore => AfterStart::HealthCheck,
                Job::Upgrade => AfterStart::RolledBack,
            };
            restart(&mut r, then)
        }
        (Step::RestoringLoad, R::CallFailed(e))
            if classify(OpKind::LoadSnapshot, &e, ctx.manager_low) == Cause::Manager =>
        {
            retry_later(&mut r, ctx, e, now)
        }
        (Step::RestoringLoad, R::CallFailed(e)) => restore_failed(&mut r, OpKind::LoadSnapshot, e),
        _ => return Err(Mismatch),
    };
    if matches!(next, Next::Finished) {
        r.finished_at = Some(now);
    }
    *rec = r;
    Ok(next)
}

fn precheck(
    r: &mut CanisterRecord,
    ctx: &Ctx,
    controllers: &[Principal],
    module_hash: Option<Vec<u8>>,
    cycles: u128,
    now: Nanos,
) -> Next {
    if ctx.aborting {
        return finish(r, Outcome::Cancelled);
    }
    if !controllers.contains(&ctx.manager) {
        return defer(r, ctx, Failure::ManagerNotController, now);
    }
    if !controllers.contains(&r.recovery) {
        return defer(r, ctx, Failure::RecoveryControllerMissing, now);
    }
    if r.job == Job::Upgrade {
        if module_hash.as_ref() == Some(&ctx.target.module_hash) {
            return skip(r, Failure::AlreadyOnTarget);
        }
        if module_hash != r.expected_module_hash {
            return skip(
                r,
                Failure::ModuleHashMismatch {
                    expected: r.expected_module_hash.clone(),
                    found: module_hash,
                },
            );
        }
    }
    if cycles < ctx.cycles.min_cycles {
        let needed = ctx.cycles.top_up_to - cycles;
        if needed > ctx.budget_left {
            // Its owner may top it up meanwhile.
            return defer(
                r,
                ctx,
                Failure::LowCycles {
                    balance: cycles,
                    needed,
                },
                now,
            );
        }
        r.step = Step::ToppingUp { cycles: needed };
        return Next::Call(Op::TopUp { cycles: needed });
    }
    after_precheck(r, ctx)
}

fn after_precheck(r: &mut CanisterRecord, ctx: &Ctx) -> Next {
    if ctx.aborting {
        return finish(r, Outcome::Cancelled);
    }
    r.step = Step::Stopping;
    Next::Call(Op::Stop)
}

fn install(r: &mut CanisterRecord, ctx: &Ctx) -> Next {
    r.step = Step::Installing;
    Next::Call(Op::InstallChunked {
        module_hash: ctx.target.module_hash.clone(),
    })
}

fn load(r: &CanisterRecord) -> Next {
    match &r.snapshot {
        Some(s) => Next::Call(Op::LoadSnapshot {
            snapshot: s.clone(),
        }),
        // Restore records are only created with a snapshot, and upgrades only restore a
        // fresh one; keep the canister running if that ever does not hold.
        None => Next::Call(Op::Start),
    }
}

fn restart(r: &mut CanisterRecord, then: AfterStart) -> Next {
    r.step = Step::Starting { then };
    Next::Call(Op::Start)
}

fn started(r: &mut CanisterRecord, then: AfterStart, ctx: &Ctx, now: Nanos) -> Next {
    match then {
        AfterStart::HealthCheck => {
            r.step = Step::HealthCheck;
            Next::Call(Op::HealthCheck)
        }
        AfterStart::Busy => wait_for_retry(r, ctx, now),
        AfterStart::Fail => finish(r, Outcome::Failed),
        AfterStart::RolledBack => finish(r, Outcome::RolledBack),
        AfterStart::Cancel => finish(r, Outcome::Cancelled),
        AfterStart::RetryRestore if r.stop_attempts >= ctx.retry.stop_attempts => {
            r.failure = Some(Failure::RestoreFailed {
                op: OpKind::Stop,
                error: None,
            });
            finish(r, Outcome::Failed)
        }
        AfterStart::RetryRestore => {
            r.step = Step::RestoringStop;
            Next::CallAt(now.saturating_add(ctx.retry.backoff(r.stop_attempts)))
        }
    }
}

fn unhealthy(r: &mut CanisterRecord, version: Option<String>, message: Option<String>) -> Next {
    if r.job == Job::Restore {
        // The restored state itself is unhealthy; there is nothing older to go back to.
        r.failure = Some(Failure::Unhealthy { version, message });
        return finish(r, Outcome::Failed);
    }
    if r.snapshot_fresh && r.snapshot.is_some() {
        r.failure = Some(Failure::Unhealthy { version, message });
        r.stop_attempts = 0;
        r.step = Step::RestoringStop;
        Next::Call(Op::Stop)
    } else {
        r.failure = Some(Failure::UnhealthyNoSnapshot { version, message });
        finish(r, Outcome::Failed)
    }
}

/// A call of the pipeline failed for a reason that is not the release's: attribute it, start
/// the canister again if the pipeline may have stopped it, and defer it.
fn call_deferred(
    r: &mut CanisterRecord,
    ctx: &Ctx,
    op: OpKind,
    e: CallError,
    may_be_stopped: bool,
    now: Nanos,
) -> Next {
    let cause = classify(op, &e, ctx.manager_low);
    r.last_error = Some(e.clone());
    let failure = Failure::deferred(op, e, cause);
    if may_be_stopped {
        r.stop_attempts += 1;
        r.failure = Some(failure);
        restart(r, AfterStart::Busy)
    } else {
        defer(r, ctx, failure, now)
    }
}

/// Defers a running canister: it waits for a retry, or ends deferred after the last attempt.
fn defer(r: &mut CanisterRecord, ctx: &Ctx, why: Failure, now: Nanos) -> Next {
    if ctx.aborting {
        return finish(r, Outcome::Cancelled);
    }
    r.stop_attempts += 1;
    r.failure = Some(why);
    wait_for_retry(r, ctx, now)
}

fn wait_for_retry(r: &mut CanisterRecord, ctx: &Ctx, now: Nanos) -> Next {
    if ctx.aborting {
        return finish(r, Outcome::Cancelled);
    }
    if r.stop_attempts >= ctx.retry.stop_attempts {
        return finish(r, Outcome::Deferred);
    }
    r.step = Step::Busy;
    Next::RetryAt(now.saturating_add(ctx.retry.backoff(r.stop_attempts)))
}

/// The manager could not make a restore call: make it again later, the restore is not lost.
fn retry_later(r: &mut CanisterRecord, ctx: &Ctx, e: CallError, now: Nanos) -> Next {
    r.start_failures += 1;
    r.last_error = Some(e);
    Next::CallAt(now.saturating_add(ctx.retry.backoff(r.start_failures)))
}

fn restore_failed(r: &mut CanisterRecord, op: OpKind, e: CallError) -> Next {
    r.failure = Some(Failure::RestoreFailed {
        op,
        error: Some(e.clone()),
    });
    r.last_error = Some(e);
    restart(r, AfterStart::Fail)
}

fn skip(r: &mut CanisterRecord, why: Failure) -> Next {
    r.failure = Some(why);
    finish(r, Outcome::Skipped)
}

fn finish(r: &mut CanisterRecord, outcome: Outcome) -> Next {
    r.step = Step::Finished(outcome);
    Next::Finished
}

#[cfg(test)]
mod tests {
    //! The configuration a recovery runs the pipeline with (one shell, one canister, one
    //! attempt); the manager's is tested in `tests/pipeline.rs`.
    use super::*;

    fn caller() -> Principal {
        Principal::from_slice(&[7; 29])
    }

    const ONE_ATTEMPT: RetryPolicy = RetryPolicy {
        stop_attempts: 1,
        backoff_base_ns: 1,
        backoff_max_ns: 4,
    };
    const NO_TOP_UP: CyclesPolicy = CyclesPolicy {
        min_cycles: 0,
        top_up_to: 0,
        budget: 0,
    };

    fn ctx(target: &Release) -> Ctx<'_> {
        Ctx {
            manager: caller(),
            target,
            take_snapshot: true,
            cycles: &NO_TOP_UP,
            budget_left: 0,
            retry: &ONE_ATTEMPT,
            aborting: false,
            manager_low: false,
        }
    }

    fn status(controllers: Vec<Principal>) -> ActionResult {
        ActionResult::Status {
            controllers,
            module_hash: Some(vec![1; 32]),
            cycles: 0,
        }
    }

    fn target() -> Release {
        Release {
            module_hash: vec![2; 32],
            version: "2.0.0".into(),
        }
    }

    fn upgrade() -> CanisterRecord {
        let mut r = CanisterRecord::new(Job::Upgrade, 0, caller());
        r.expected_module_hash = Some(vec![1; 32]);
        r
    }

    #[test]
    fn the_caller_as_manager_and_recovery_principal_needs_only_to_be_a_controller() {
        let target = target();
        let cx = ctx(&target);
        let mut r = upgrade();
        begin(&mut r, 0);
        let next = on_result(&mut r, status(vec![caller()]), &cx, 0).unwrap();
        assert_eq!(next, Next::Call(Op::Stop), "no top-up below a zero minimum");

        let mut r = upgrade();
        begin(&mut r, 0);
        let other = Principal::from_slice(&[8; 29]);
        let next = on_result(&mut r, status(vec![other]), &cx, 0).unwrap();
        assert_eq!(next, Next::Finished, "one attempt: deferred at once");
        assert_eq!(r.outcome(), Some(Outcome::Deferred));
        assert_eq!(r.failure, Some(Failure::ManagerNotController));
    }

    #[test]
    fn with_one_attempt_a_failure_after_the_stop_starts_again_and_ends_deferred() {
        let target = target();
        let cx = ctx(&target);
        let mut r = upgrade();
        begin(&mut r, 0);
        on_result(&mut r, status(vec![caller()]), &cx, 0).unwrap();
        let next = on_result(&mut r, ActionResult::Stopped, &cx, 0).unwrap();
        assert_eq!(next, Next::Call(Op::TakeSnapshot { replace: None }));
        let e = CallError {
            reject_code: 5,
            message: "limit".into(),
        };
        let next = on_result(&mut r, ActionResult::CallFailed(e), &cx, 0).unwrap();
        assert_eq!(
            next,
            Next::Call(Op::Start),
            "a stopped canister is started again"
        );
        let next = on_result(&mut r, ActionResult::Started, &cx, 0).unwrap();
        assert_eq!(next, Next::Finished);
        assert_eq!(r.outcome(), Some(Outcome::Deferred));
    }
}
