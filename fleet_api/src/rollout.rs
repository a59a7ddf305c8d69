//! The manager's rollout interface: plans, operations, status, results, logs and metrics.
//!
//! The engine's plan, status and event types are the wire types of [`crate::engine`]
//! (re-exported here); this module adds the operator-facing arguments (releases named by
//! version, times in seconds) and one error enum per endpoint.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

pub use crate::engine::*;

/// Most entries one page of rollout results or logs returns.
pub const MAX_ROLLOUT_PAGE: u32 = 500;

/// A rollout as an operator with the `Deployer` role defines it. Releases are named by their
/// version in the manager's store; `None` fields take the manager's defaults: a canary of 10,
/// waves at 1, 10, 50 and 100%, 10 minutes of bake time, at most 20 in flight, 60 starts per
/// minute (burst 10, 10 per tick), halt above 5% failed or after 5 failures in a row, snapshots
/// kept 7 days, no top-up budget, 5 stop attempts with 1 to 30 minutes of backoff.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutPlanArg {
    pub target_version: String,
    /// Only canisters on this release are selected, and precheck requires it.
    pub from_version: Option<String>,
    /// When set, only these canisters are candidates (a `Manual` canister named here is
    /// selected; a `Pinned` one only when pinned to the target).
    pub include: Option<Vec<Principal>>,
    pub exclude: Option<Vec<Principal>>,
    pub canary: Option<Canary>,
    /// Cumulative percentages after the canary, strictly increasing, ending at 100.
    pub waves_percent: Option<Vec<u8>>,
    /// Wait between a completed stage and the next one.
    pub bake_secs: Option<u64>,
    pub limits: Option<Limits>,
    pub failure: Option<FailurePolicy>,
    /// Snapshot before upgrade (default: yes).
    pub take_snapshot: Option<bool>,
    /// Delete a successful upgrade's snapshot this long after it (default 7 days; `0` keeps it
    /// until the next upgrade replaces it).
    pub keep_snapshot_secs: Option<u64>,
    pub cycles: Option<CyclesPolicy>,
    pub retry: Option<RetryPolicy>,
    /// Seconds a canister gets to stop before the manager starts it again and defers it
    /// (default 60; `0` waits for the IC's own 5-minute timeout).
    pub stop_deadline_secs: Option<u64>,
}

impl RolloutPlanArg {
    /// A plan with every default, to `target_version`.
    pub fn to(target_version: &str) -> Self {
        RolloutPlanArg {
            target_version: target_version.to_string(),
            from_version: None,
            include: None,
            exclude: None,
            canary: None,
            waves_percent: None,
            bake_secs: None,
            limits: None,
            failure: None,
            take_snapshot: None,
            keep_snapshot_secs: None,
            cycles: None,
            retry: None,
            stop_deadline_secs: None,
        }
    }
}

/// What `start_rollout` and `rollback` return: the rollout's id and what selection did.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutStarted {
    pub id: u64,
    pub canisters: u64,
    pub waves: Vec<WaveProgress>,
    pub summary: CohortSummary,
}

/// What `plan_rollout` returns: what `start_rollout` with the same plan would start now (the
/// id it would take, its waves and what selection did), the plan as it would run (the
/// manager's defaults filled in), and the manager's cycles, which no one but the manager can
/// read. A cost estimate needs all of them; the registry keeps no balances of user canisters,
/// so how many of them a top-up would reach is not known before their precheck.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutPreview {
    pub rollout: RolloutStarted,
    pub limits: Limits,
    pub bake_secs: u64,
    pub take_snapshot: bool,
    pub cycles: CyclesPolicy,
    /// The manager's balance (`ic0.canister_cycle_balance128`).
    pub cycles_balance: u128,
    /// What the manager can spend without freezing (`ic0.canister_liquid_cycle_balance128`).
    pub liquid_cycles: u128,
    /// Cycles a pipeline in flight keeps liquid (`Settings::pipeline_cycles_reserve`).
    pub pipeline_cycles_reserve: u128,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum StartRolloutError {
    NotAuthorized,
    UnknownRelease {
        version: String,
    },
    /// One rollout at a time: this one has not finished (abort it, or wait).
    RolloutActive {
        id: u64,
        phase: Phase,
    },
    /// The manager is drained for its own upgrade; `resume_rollout` ends the drain.
    Draining,
    Plan(PlanError),
    /// The target could not be put into the manager's chunk store.
    Mirror(crate::manager::MirrorError),
    /// No rollout has used the target yet and its notice runs until `may_start_at_ns`.
    NoticePeriod {
        version: String,
        may_start_at_ns: u64,
    },
    /// Under a release policy's quorum, a rollout to a release no rollout has used yet is a
    /// request; it starts once approved.
    ApprovalRequired(Box<crate::governance::Request>),
}

/// How to undo a rollout.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RollbackArg {
    /// A new rollout back to `to_version` over every canister that runs the last rollout's
    /// target release (selected like any rollout from that release: upgrade policies apply),
    /// under these limits (default: the last rollout's).
    ToRelease {
        to_version: String,
        limits: Option<Limits>,
    },
    /// Stop each canister, load the snapshot taken before its last upgrade, start it, and
    /// health-check it against the release the snapshot holds.
    RestoreSnapshots {
        canisters: Vec<Principal>,
        limits: Option<Limits>,
    },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RollbackError {
    NotAuthorized,
    /// No rollout has run yet, so there is nothing to roll back.
    NoRollout,
    UnknownRelease {
        version: String,
    },
    UnknownCanister {
        canister: Principal,
    },
    /// The canister's registry record does not say which release its snapshot holds.
    UnknownSnapshotRelease {
        canister: Principal,
    },
    /// Restores must all go back to one release.
    MixedReleases,
    RolloutActive {
        id: u64,
        phase: Phase,
    },
    Draining,
    Plan(PlanError),
    Mirror(crate::manager::MirrorError),
    /// No rollout has used this release yet and the release policy holds it (a quorum, or its
    /// notice still runs): going to it is a rollout under the policy (`start_rollout`, which
    /// makes the request), not a rollback.
    NewRelease {
        version: String,
    },
}

/// Errors of `pause_rollout`, `resume_rollout` and `abort_rollout`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RolloutControlError {
    NotAuthorized,
    NoRollout,
    /// The operation does not apply in this phase.
    InvalidPhase {
        phase: Phase,
    },
}

/// Reply of `drain` and `end_drain`: the manager may be stopped and upgraded once `ready`.
/// A drain holds new pipeline starts (the rollout's `hold`), never changes its phase.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DrainStatus {
    pub draining: bool,
    /// Calls to other canisters the rollout engine awaits.
    pub calls_in_flight: u64,
    /// Canisters between the first and the last step of their pipeline.
    pub pipelines_in_flight: u64,
    /// Nothing is in flight: stopping the manager now leaves every user canister running.
    pub ready: bool,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum DrainError {
    NotAuthorized,
}

/// Argument of the manager's `request_upgrade`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct RequestUpgradeArg {
    /// The canister to upgrade; `None`: the caller's own (the caller is the user canister, or
    /// owns one).
    pub canister_id: Option<Principal>,
    /// `None`: the running rollout's target, else the default release.
    pub target_version: Option<String>,
}

/// Why `request_upgrade` was refused; a refused request changes nothing.
///
/// The user canister passes this refusal on to its owner, so it holds only self-contained
/// values: no rollout-engine type reaches the user canister's interface.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RequestUpgradeError {
    /// Only the canister itself and its owner may ask.
    NotAuthorized,
    /// No registry record for this canister (or the caller owns none).
    UnknownCanister,
    UnknownRelease {
        version: String,
    },
    /// No version was named and no default release is set.
    NoTarget,
    /// The owner pinned the canister to another release.
    Pinned {
        version: String,
    },
    AlreadyOnTarget {
        version: String,
    },
    /// The canister is not in a state the manager upgrades (its registry status, e.g.
    /// `Provisioning`, `Detached`).
    NotUpgradable {
        status: String,
    },
    /// A rollout to another release is running; requests join only a rollout to its target.
    OtherRolloutActive {
        id: u64,
        target_version: String,
    },
    /// The running rollout does not take this request.
    NotAccepted {
        reason: RequestRefusal,
    },
    /// The target release is not in the manager's chunk store; an operator mirrors it first.
    NotMirrored {
        version: String,
    },
    Draining,
    /// The single-canister rollout the request needs was refused by the planner.
    Ineligible {
        reason: String,
    },
}

/// Why the running rollout did not take an upgrade request.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestRefusal {
    /// The rollout is being aborted (a paused or halted rollout still takes requests; they
    /// start when it resumes).
    NotAccepting,
    /// A restore rollout does not take upgrade requests.
    NotAnUpgrade,
    /// The canister already finished in this rollout.
    AlreadyFinished,
    /// The canister is not part of the rollout and no registry entry was given.
    NotInCohort,
}

/// One canister's state in the current rollout.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutCanisterResult {
    pub canister_id: Principal,
    pub job: Job,
    /// Index of the wave (`u32::MAX` for owner requests).
    pub wave: u32,
    pub step: Step,
    pub outcome: Option<Outcome>,
    pub failure: Option<Failure>,
    pub last_error: Option<CallError>,
    pub stop_attempts: u32,
    pub topped_up: u128,
    pub snapshot: Option<Vec<u8>>,
    pub ticket: Option<u64>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutResultsArg {
    pub start_after: Option<Principal>,
    /// At most [`MAX_ROLLOUT_PAGE`]; default 100.
    pub limit: Option<u32>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutResultsPage {
    pub rollout_id: u64,
    pub results: Vec<RolloutCanisterResult>,
    pub next: Option<Principal>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LogPageArg {
    /// First sequence number wanted; older entries may have been dropped.
    pub from: u64,
    /// At most [`MAX_ROLLOUT_PAGE`]; default 100.
    pub limit: Option<u32>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutEventsPage {
    pub rollout_id: u64,
    pub events: Vec<(u64, Event)>,
    /// Sequence number of the oldest entry still kept.
    pub first: u64,
    /// Sequence number the next entry will get.
    pub next: u64,
}

/// What the pipeline log records: when each canister's pipeline took an in-flight slot and
/// when it gave it back, with the limits in force, so that anyone can check the limits from
/// the log alone.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PipelineLogKind {
    /// A pipeline started (or restarted after busy): it holds an in-flight slot and took one
    /// token of the start rate limit.
    Started,
    /// The pipeline gave its slot back: finished with `outcome`, or busy (`None`) until its
    /// retry.
    Left { outcome: Option<Outcome> },
    /// Calls lost by a manager upgrade were issued again.
    Reissued { op: OpKind },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PipelineLogEntry {
    pub at: u64,
    pub rollout_id: u64,
    pub canister_id: Principal,
    pub kind: PipelineLogKind,
    /// The driver's timer tick the entry falls in: entries written after timer tick `n` and
    /// before tick `n + 1` carry `n`, so the starts between two ticks can be counted against
    /// `max_starts_per_tick`. `None` in entries written before ticks were numbered.
    pub tick: Option<u64>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PipelineLogPage {
    pub entries: Vec<(u64, PipelineLogEntry)>,
    pub first: u64,
    pub next: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReleaseCount {
    /// `None`: canisters without a release (provisioning).
    pub version: Option<String>,
    pub canisters: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StatusCount {
    pub status: crate::manager::CanisterStatus,
    pub canisters: u64,
}

/// Counters over the manager's lifetime (they survive its upgrades).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutCounters {
    pub rollouts_started: u64,
    pub pipelines_started: u64,
    pub upgraded: u64,
    pub restored: u64,
    pub rolled_back: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub calls_issued: u64,
    pub calls_failed: u64,
    /// Argument bytes of every call the rollout engine sent.
    pub bytes_sent: u64,
    pub cycles_topped_up: u128,
    pub upgrade_requests: u64,
    /// Canisters that ended a rollout deferred (environment or manager), not failed.
    pub deferred: Option<u64>,
}

/// Operator metrics; `http_request` GET /metrics renders the same in Prometheus text format.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct FleetMetrics {
    pub now: u64,
    pub user_canisters: u64,
    pub by_release: Vec<ReleaseCount>,
    pub by_status: Vec<StatusCount>,
    pub counters: RolloutCounters,
    pub rollout: Option<RolloutStatus>,
    pub calls_in_flight: u64,
    pub draining: bool,
    pub cycles_balance: u128,
    /// Balance above the manager's freezing threshold.
    pub liquid_cycles: u128,
    /// Cycles kept per pipeline in flight (settings, `pipeline_cycles_reserve`).
    pub pipeline_cycles_reserve: u128,
    /// Seconds since the driver's timer last ran while a rollout has work (0 when idle).
    pub timer_silent_secs: u64,
    /// Instructions of the driver's timer ticks (mean and maximum since the manager started
    /// or was upgraded), with the number of ticks measured. Pipelines started when another
    /// gives its slot back are started in that call's result, not in a tick.
    pub ticks_measured: u64,
    pub tick_instructions_mean: u64,
    pub tick_instructions_max: u64,
    /// The admission mode, the provisioning budget and its spending, refusals. Optional, so
    /// that clients still read the metrics of a manager that predates admission.
    pub admission: Option<crate::governance::AdmissionStatus>,
}

/// `http_request` argument (HTTP gateway protocol).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status_code: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// Replies and methods
// ---------------------------------------------------------------------------------------------

crate::endpoint::reply! {
    StartRolloutReply(RolloutStarted, StartRolloutError);
    /// Reply of `plan_rollout`: the errors `start_rollout` would return (but `Mirror` and
    /// `ApprovalRequired`, which only a start meets).
    PlanRolloutReply(RolloutPreview, StartRolloutError);
    /// Reply of `pause_rollout`, `resume_rollout` and `abort_rollout`.
    RolloutControlReply(RolloutStatus, RolloutControlError);
    RollbackReply(RolloutStarted, RollbackError);
    /// Reply of `drain` and `end_drain`.
    DrainReply(DrainStatus, DrainError);
    RolloutStatusReply(Option<RolloutStatus>, crate::manager::QueryError);
    RolloutResultsReply(Option<RolloutResultsPage>, crate::manager::QueryError);
    RolloutEventsReply(Option<RolloutEventsPage>, crate::manager::QueryError);
    PipelineLogReply(PipelineLogPage, crate::manager::QueryError);
    RequestUpgradeReply(crate::user::UpgradeTicket, RequestUpgradeError);
}

/// The manager's rollout, drain, metrics and upgrade-request methods.
pub mod method {
    use super::*;

    crate::endpoint::endpoints! {
        update StartRollout = "start_rollout" (RolloutPlanArg) -> StartRolloutReply;
        query PlanRollout = "plan_rollout" (RolloutPlanArg) -> PlanRolloutReply;
        update PauseRollout = "pause_rollout" () -> RolloutControlReply;
        update ResumeRollout = "resume_rollout" () -> RolloutControlReply;
        update AbortRollout = "abort_rollout" () -> RolloutControlReply;
        update Rollback = "rollback" (RollbackArg) -> RollbackReply;
        update Drain = "drain" () -> DrainReply;
        update EndDrain = "end_drain" () -> DrainReply;
        query GetRolloutStatus = "rollout_status" () -> RolloutStatusReply;
        query RolloutResults = "rollout_results" (RolloutResultsArg) -> RolloutResultsReply;
        query RolloutEvents = "rollout_events" (LogPageArg) -> RolloutEventsReply;
        query PipelineLog = "pipeline_log" (LogPageArg) -> PipelineLogReply;
        query Metrics = "metrics" () -> FleetMetrics;
        query HttpRequestQuery = "http_request" (HttpRequest) -> HttpResponse;
        update RequestUpgrade = "request_upgrade" (RequestUpgradeArg) -> RequestUpgradeReply;
    }
}
