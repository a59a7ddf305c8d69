//! Pure rollout logic of the fleet manager: planning, the per-canister upgrade pipeline and the
//! rate-limited driver.
//!
//! Nothing here performs a call or reads a clock. The manager canister (the shell) feeds in the
//! time as nanoseconds and the results of the calls it made, and gets back [`Action`]s: calls to
//! make next. This keeps every decision testable natively on fleets of 100k fake canisters, and
//! keeps the canister's code a thin layer over ic-cdk and stable memory.
//!
//! * [`plan`]: validate a [`RolloutPlan`] and select and order the cohort into waves.
//! * [`pipeline`]: the state machine of one canister (precheck → stop → snapshot → install →
//!   start → health check, with the failure paths that always start a stopped canister again).
//! * [`rollout`]: the driver that starts pipelines under the in-flight limit, the token bucket
//!   and the per-tick cap (overall and per subnet, the subnets taking turns), halts on
//!   failures (of the fleet or of one subnet), and answers status queries.
//! * [`store`]: the storage the driver needs (records, ordered queues, event log), with an
//!   in-memory implementation and one over ic-stable-structures.
//!
//! # Protocol for the shell
//!
//! 1. Build a [`Cohort`] with [`CohortBuilder`] from the registry, then [`Rollout::start`]. It
//!    writes the first [`rollout::LOAD_PER_STEP`] canisters' records and stages the others,
//!    which the first ticks write ([`Rollout::is_loading`]) before the first wave opens.
//! 2. On every timer tick call [`Rollout::tick`] and perform each returned [`Action`].
//! 3. When a call returns, call [`Rollout::on_result`] with its [`ActionResult`]; if it returns
//!    an action, perform it (it is the same canister's next step).
//! 4. Persist [`Rollout::state`] after every mutating call (the store persists itself).
//! 5. After a manager upgrade, calls that were in flight lost their callbacks: call
//!    [`Rollout::current_action`] for each in-flight canister and perform it again; every
//!    operation of the pipeline is safe to repeat.

pub mod codec;
pub mod limiter;
pub mod pipeline;
pub mod plan;
pub mod rollout;
pub mod slots;
pub mod stable;
pub mod store;

pub use candid::Principal;
pub use pipeline::{
    classify, Action, ActionResult, AfterStart, CallError, CanisterRecord, Cause, Failure, Job, Op,
    OpKind, Outcome, Step, NOT_SENT,
};
pub use plan::{
    select, Canary, Cohort, CohortBuilder, CohortMember, CohortSummary, CyclesPolicy,
    FailurePolicy, FleetCanister, HaltScope, Ineligible, Limits, PlanError, Release, RetryPolicy,
    RolloutPlan, SnapshotPolicy, SubnetLimits, UpgradePolicy, WaveLabel, WavePlan, MAX_SUBNETS,
};
pub use rollout::{
    ControlError, DeferralCounts, Event, EventKind, HaltReason, Hold, ManagerView, Phase,
    RequestError, RestorePlan, ResultError, Rollout, RolloutState, RolloutStatus, StateCounts,
    SubnetProgress, SubnetState, SubnetWave, Ticket, WaveProgress, MANAGER_FAULTS_TO_HOLD,
    REQUEST_WAVE,
};
pub use stable::StableStore;
pub use store::{MemStore, QueueKey, QueueKind, RolloutStore};

/// Nanoseconds since the Unix epoch, as `ic_cdk::api::time()` returns them.
pub type Nanos = u64;

/// Identifier of a canister snapshot, as returned by `take_canister_snapshot`.
pub type SnapshotId = Vec<u8>;

/// One second in nanoseconds.
pub const SECOND: Nanos = 1_000_000_000;
/// One minute in nanoseconds.
pub const MINUTE: Nanos = 60 * SECOND;
