//! The rollout engine's plan, status, events and per-canister results as the manager's
//! interface shows them. These are wire types: the engine (`rollout_core`) keeps its own, and the
//! manager maps one to the other field by field, so a change inside the engine never changes this
//! interface by accident (the mapping stops compiling instead). Times are nanoseconds since the
//! epoch.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterStart {
    HealthCheck,
    /// Deferred: wait for a retry (or end `Outcome::Deferred` after the last attempt).
    Busy,
    Fail,
    RolledBack,
    Cancel,
    /// The restore's stop timed out; try the restore again after a backoff.
    RetryRestore,
}

/// A rejected call, as the IC reports it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub reject_code: u32,
    pub message: String,
}

/// How the first stage is chosen.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Canary {
    /// No canary stage: the first percentage wave comes first.
    None,
    /// The first N selected canisters in id order.
    Count(u32),
    /// Exactly these canisters; each must be eligible, or the plan is refused.
    List(Vec<Principal>),
}

/// What selection did with the fleet, so the operator sees why canisters were left out.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CohortSummary {
    pub offered: u64,
    pub selected: u64,
    pub excluded: u64,
    pub not_included: u64,
    pub manual: u64,
    pub pinned: u64,
    pub already_on_target: u64,
    pub other_release: u64,
}

/// Cycles a canister needs before it is upgraded, and what the manager may spend topping up.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CyclesPolicy {
    /// Below this balance a canister is topped up (or skipped when the budget is spent).
    pub min_cycles: u128,
    /// A top-up brings the balance to this amount.
    pub top_up_to: u128,
    /// Total cycles the rollout may send in top-ups.
    pub budget: u128,
}

/// Deferrals (a canister left for a later retry, or left on its release at the end) by cause.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DeferralCounts {
    pub environment: u64,
    pub manager: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at: u64,
    pub kind: EventKind,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Started {
        canisters: u64,
    },
    WaveOpened {
        wave: u32,
        label: WaveLabel,
        size: u64,
    },
    WaveCompleted {
        wave: u32,
        failures: u64,
    },
    Paused,
    Resumed,
    Halted(HaltReason),
    /// No pipeline starts until the hold is lifted.
    Held(Hold),
    HoldLifted,
    AbortRequested,
    Aborted,
    Completed,
    /// A canister ended other than done (failed, rolled back, skipped, cancelled by abort
    /// after it had started).
    CanisterFinished {
        canister: Principal,
        outcome: Outcome,
        failure: Option<Failure>,
    },
    /// Starting a stopped canister failed; it is retried until it runs.
    StartRetrying {
        canister: Principal,
        error: CallError,
    },
    Requested {
        canister: Principal,
        ticket: u64,
    },
    SnapshotDeleteFailed {
        canister: Principal,
        error: CallError,
    },
    /// Under `HaltScope::Subnet`: the subnet starts nothing new; the others go on.
    SubnetHalted {
        subnet: Option<Principal>,
        reason: HaltReason,
    },
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
    /// A call failed for a reason of the manager or its subnet (its cycles, its queues, the subnet).
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

/// When a rollout halts itself. Halting stops new starts; in-flight pipelines finish.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Halt when failed (or rolled back) canisters of a wave exceed this percentage of the wave.
    pub max_failed_percent: u8,
    /// Halt after this many failures in a row (in completion order); 0 disables the check.
    pub max_consecutive_failures: u32,
    /// Whether the checks count over the fleet or per subnet; `None`: `Fleet`.
    pub halt_scope: Option<HaltScope>,
}

/// What a failure check halts: the whole rollout, or only the subnet whose failures it
/// counted (the others go on; the rollout ends halted when nothing else is left).
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HaltScope {
    #[default]
    Fleet,
    Subnet,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum HaltReason {
    WaveFailureThreshold {
        wave: u32,
        failed: u64,
        size: u64,
    },
    ConsecutiveFailures {
        count: u32,
    },
    /// A subnet's part of the wave failed beyond the threshold (halt scope `Subnet`).
    SubnetWaveFailureThreshold {
        subnet: Option<Principal>,
        wave: u32,
        failed: u64,
        size: u64,
    },
    /// A subnet's failures in a row (halt scope `Subnet`).
    SubnetConsecutiveFailures {
        subnet: Option<Principal>,
        count: u32,
    },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashField {
    Target,
    From,
}

/// Why no pipeline starts although the rollout runs: the manager's own condition, not the
/// operator's decision. A hold is lifted by itself when its cause is gone and never changes
/// the rollout's `Phase`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The manager is draining for its own upgrade.
    Draining,
    /// The manager's liquid cycles do not cover finishing one more pipeline (`needed` for all
    /// in flight plus one); a top-up lifts it.
    ManagerLowCycles { liquid: u128, needed: u128 },
    /// Calls failed for reasons of the manager or its subnet `count` times in a row; starts
    /// wait until `until` (or an operator's resume).
    ManagerFaults { count: u32, until: u64 },
}

/// Why a canister the operator named explicitly cannot be part of the rollout.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ineligible {
    NotInFleet,
    Pinned,
    AlreadyOnTarget,
    OtherRelease,
}

/// What kind of work a record does.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// Precheck, stop, snapshot, install, start, health check.
    Upgrade,
    /// Precheck (controllers), stop, load the fleet snapshot, start.
    Restore,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitName {
    MaxInFlight,
    StartsPerMinute,
    Burst,
    MaxStartsPerTick,
    SubnetMaxInFlight,
    SubnetStartsPerMinute,
    SubnetBurst,
}

/// Limits that bound the load a rollout puts on the fleet and on the manager.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Canisters whose pipeline is running at once.
    pub max_in_flight: u32,
    /// Long-run rate of pipeline starts (token bucket refill).
    pub starts_per_minute: u32,
    /// Token bucket capacity: starts allowed at once after a quiet period. Any window of
    /// length L sees at most `burst + starts_per_minute * L / 1 min` starts. With ticks every
    /// D, set it to at least `starts_per_minute * D / 1 min` or the rate cannot be reached.
    pub burst: u32,
    /// Pipeline starts per timer tick, which bounds the instructions a tick spends.
    pub max_starts_per_tick: u32,
    /// Limits of each subnet on top of the overall ones; `None`: overall limits only.
    pub per_subnet: Option<SubnetLimits>,
}

/// The load a rollout may put on one subnet, like the overall `Limits`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubnetLimits {
    pub max_in_flight: u32,
    pub starts_per_minute: u32,
    pub burst: u32,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListName {
    Include,
    Exclude,
    Canary,
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

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// By the operator: no new starts; in-flight pipelines finish.
    Paused,
    /// By the failure policy: like paused until the operator resumes or aborts.
    Halted(HaltReason),
    /// Pending canisters are being dropped; in-flight ones are brought back to running.
    Aborting,
    Aborted,
    Completed,
}

/// Why a plan was refused. Nothing is stored when a plan is refused.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    InvalidModuleHash {
        field: HashField,
        len: u32,
    },
    EmptyVersion,
    FromEqualsTarget,
    NoWaves,
    WavePercentOutOfRange {
        index: u32,
        percent: u8,
    },
    WavesNotIncreasing {
        index: u32,
    },
    LastWaveNotFull {
        percent: u8,
    },
    CanaryCountZero,
    EmptyCanaryList,
    DuplicateInList {
        list: ListName,
        canister: Principal,
    },
    ListOverlap {
        canister: Principal,
    },
    ZeroLimit {
        limit: LimitName,
    },
    ThresholdOutOfRange {
        percent: u8,
    },
    TopUpBelowMinimum,
    InvalidRetry,
    /// The stop deadline is below a second or above the IC's own 5-minute timeout.
    InvalidStopDeadline,
    CanaryNotEligible {
        canister: Principal,
        reason: Ineligible,
    },
    DuplicateCanister {
        canister: Principal,
    },
    EmptyCohort,
    /// A restore names a canister without a fleet snapshot.
    NoSnapshot {
        canister: Principal,
    },
    /// The canisters live on more distinct subnets than a rollout tracks.
    TooManySubnets {
        count: u32,
        max: u32,
    },
    /// A per-subnet limit exceeds its overall counterpart.
    SubnetLimitAboveOverall {
        limit: LimitName,
    },
}

/// A published user-canister release.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// sha256 of the wasm module as installed; what `canister_status` reports as `module_hash`.
    pub module_hash: Vec<u8>,
    /// The app version the module reports in `fleet_health`; the health check compares it.
    pub version: String,
}

/// Backoff for canisters that would not stop, and for retried starts and restores.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts to stop a canister before it is marked failed.
    pub stop_attempts: u32,
    pub backoff_base_ns: u64,
    pub backoff_max_ns: u64,
}

/// Status for operators; computed from the header alone.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RolloutStatus {
    pub id: u64,
    pub job: Job,
    pub phase: Phase,
    pub target: Release,
    pub counts: StateCounts,
    pub waves: Vec<WaveProgress>,
    pub requests: WaveProgress,
    pub current_wave: u32,
    /// When the next stage may open, if it waits for its bake time.
    pub next_wave_at: Option<u64>,
    /// Canisters finished per minute over the last few minutes.
    pub rate_per_minute: f64,
    /// Estimated time left, including bake times, at the measured rate.
    pub eta_ns: Option<u64>,
    pub top_up_spent: u128,
    pub created_at: u64,
    pub finished_at: Option<u64>,
    /// Why no pipeline starts although the phase is `Running`.
    pub hold: Option<Hold>,
    pub deferrals: DeferralCounts,
    pub stop_deadline_ns: Option<u64>,
    /// The plan's limits (in flight, starts): what `counts.in_flight` is read against.
    /// Optional because replies of earlier releases lack it.
    pub limits: Option<Limits>,
    /// The plan's failure policy, the thresholds a `Halted` phase refers to. Optional like
    /// `limits`.
    pub failure: Option<FailurePolicy>,
    /// Progress per subnet (empty in replies of earlier releases).
    pub subnets: Option<Vec<SubnetProgress>>,
}

/// Progress of the rollout's canisters on one subnet (`None`: unknown, the manager's own).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubnetProgress {
    pub subnet: Option<Principal>,
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub deferred: u64,
    pub in_flight: u64,
    pub pending: u64,
    pub busy: u64,
    /// Why the subnet starts nothing new, if it halted.
    pub halted: Option<HaltReason>,
}

/// Counts of canisters by state; they always add up to the number of records.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub pending: u64,
    pub in_flight: u64,
    pub busy: u64,
    pub done: u64,
    pub restored: u64,
    pub rolled_back: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
    /// Ended `Outcome::Deferred`. Optional because replies of earlier releases lack it.
    pub deferred: Option<u64>,
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

impl StateCounts {
    /// Every canister of the rollout, whatever its state.
    pub fn total(&self) -> u64 {
        self.pending + self.in_flight + self.busy + self.finished()
    }

    /// Canisters whose pipeline ended, with any outcome.
    pub fn finished(&self) -> u64 {
        self.done
            + self.restored
            + self.rolled_back
            + self.failed
            + self.skipped
            + self.cancelled
            + self.deferred()
    }

    pub fn deferred(&self) -> u64 {
        self.deferred.unwrap_or(0)
    }
}

impl Phase {
    /// Completed or aborted: nothing more happens in this rollout.
    pub fn is_finished(&self) -> bool {
        matches!(self, Phase::Aborted | Phase::Completed)
    }
}

/// Name of a stage, for status and events.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaveLabel {
    Canary,
    /// Cumulative percentage of the cohort after the canary.
    Percent(u8),
}

/// Progress of one stage (or of the owner-request lane).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WaveProgress {
    pub label: WaveLabel,
    pub size: u64,
    pub started: u64,
    pub outcomes: StateCounts,
    pub opened_at: Option<u64>,
    pub completed_at: Option<u64>,
}
