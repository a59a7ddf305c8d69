//! Who may get a canister (admission and the provisioning budget), and how code reaches every
//! user canister (the release policy: approvals by a quorum of operators, and a notice period
//! before a rollout to a new release).
//!
//! Both close doors an attacker would use: without admission, any principal (they are free to
//! make) makes the manager spend the creation fee and a new canister's cycles; without a
//! release policy, one operator key can publish a module and roll it out to every user.

use crate::manager::{Operator, Role};
use crate::rollout::RolloutPlanArg;
use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

// ---------------------------------------------------------------------------------------------
// Admission
// ---------------------------------------------------------------------------------------------

/// Who may have the manager create a canister for them (`create_user_canister`).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AdmissionMode {
    /// Any principal but the anonymous one, within the budget.
    Open,
    /// Principals on the allowlist, and callers who present an unused invite code.
    Allowlist,
    /// The app's own canister decides: the manager calls its `fleet_admit : (principal) ->
    /// (bool)` as a bounded-wait call; anything but `true` in time refuses.
    Approver(Principal),
    /// The caller is a canister and attaches at least the creation's cost in cycles: the
    /// creation fee plus `user_canister_cycles`. They are accepted once the canister is
    /// created; a refused or failed creation accepts nothing, so the IC refunds them.
    Paid,
}

/// A ceiling on the cycles the manager spends on creating canisters: at most
/// `cycles_per_window` in each window of `window_secs` seconds (windows are aligned to the
/// epoch). Creations paid by their caller (`Paid`) spend only what the payment did not cover.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProvisioningBudget {
    pub cycles_per_window: u128,
    pub window_secs: u64,
}

/// Default budget: 150T cycles a day, about 100 canisters at the default 1T cycles each plus
/// a 13-node subnet's 500B creation fee (interface spec, "Cycles cost"; IC docs, "Cycle
/// costs"). A fleet that grows faster raises it.
pub const DEFAULT_PROVISIONING_BUDGET: ProvisioningBudget = ProvisioningBudget {
    cycles_per_window: 150_000_000_000_000,
    window_secs: 86_400,
};

/// Longest budget window: 30 days.
pub const MAX_BUDGET_WINDOW_SECS: u64 = 30 * 86_400;

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Admission {
    pub mode: AdmissionMode,
    pub budget: ProvisioningBudget,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            mode: AdmissionMode::Open,
            budget: DEFAULT_PROVISIONING_BUDGET,
        }
    }
}

/// The admission policy and where the budget stands.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AdmissionStatus {
    pub admission: Admission,
    /// Start of the current budget window (nanoseconds since the epoch).
    pub window_start_ns: u64,
    /// Cycles spent on creations in the current window, including those in progress.
    pub spent_in_window: u128,
    /// Creations refused because they would have gone over the budget, ever.
    pub refused_over_budget: u64,
    /// Creations refused by the admission mode (not allowlisted, bad invite, approver said no
    /// or failed, payment missing), ever.
    pub refused_not_admitted: u64,
    pub allowlisted: u64,
    /// Invite codes issued and not used yet.
    pub invites: u64,
}

/// Changes to the allowlist. Invite codes are given by their sha256: the manager never holds a
/// code that works, so reading its state yields none. A code is used up by the creation it
/// admits.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct AllowlistUpdate {
    pub add: Vec<Principal>,
    pub remove: Vec<Principal>,
    pub add_invites: Vec<ByteBuf>,
    pub revoke_invites: Vec<ByteBuf>,
}

/// Most entries one `update_allowlist` call may add or remove.
pub const MAX_ALLOWLIST_UPDATE: usize = 1_000;

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AdmissionError {
    NotAuthorized,
    /// A budget needs a window of 1 second to [`MAX_BUDGET_WINDOW_SECS`].
    InvalidBudget,
    /// The approver is anonymous, the management canister or this manager.
    InvalidApprover,
    /// An invite is given by its 32-byte sha256.
    InvalidInviteHash,
    /// The anonymous principal cannot be allowlisted.
    AnonymousPrincipal,
    /// More than [`MAX_ALLOWLIST_UPDATE`] entries in one call.
    TooManyEntries {
        max: u32,
    },
}

// ---------------------------------------------------------------------------------------------
// Release policy and requests
// ---------------------------------------------------------------------------------------------

/// How code reaches the fleet.
///
/// With `quorum` above 1, publishing a release, starting a rollout to a release no rollout has
/// used yet, changing operators and changing this policy are requests, executed once `quorum`
/// distinct principals holding the role approve (the proposer is the first). With
/// `notice_secs`, a rollout to a release no rollout has used yet (or making it the default
/// release) cannot start before that long
/// after the release was published, so users see it coming (`pending_releases`, and the user
/// canister's own `pending_releases`) and can pin their canister or detach it.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReleasePolicy {
    pub quorum: u32,
    pub notice_secs: u64,
}

impl Default for ReleasePolicy {
    fn default() -> Self {
        ReleasePolicy {
            quorum: 1,
            notice_secs: 0,
        }
    }
}

/// Longest quorum and notice the manager accepts: a policy that can never be met would lock
/// the fleet (only the manager's controllers could undo it, by reinstalling).
pub const MAX_QUORUM: u32 = 20;
pub const MAX_NOTICE_SECS: u64 = 90 * 86_400;

/// Pending requests expire after this long.
pub const REQUEST_LIFETIME_SECS: u64 = 7 * 86_400;

/// What a request does once approved.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RequestAction {
    /// `finalize_release` of an upload (role `Releaser`).
    PublishRelease(String),
    /// `start_rollout` to a release no rollout has used yet (role `Deployer`).
    StartRollout(Box<RolloutPlanArg>),
    /// `set_default_release` to a release no rollout has used yet (role `Admin`): new
    /// canisters get the default, so it is code reaching the fleet like a rollout.
    SetDefaultRelease(String),
    /// `set_release_policy` (role `Admin`).
    SetReleasePolicy(ReleasePolicy),
    /// `set_operator` (role `Admin`): under a quorum, one admin cannot make the principals
    /// that would approve their own requests.
    SetOperator(Operator),
    /// `remove_operator` (role `Admin`).
    RemoveOperator(Principal),
    /// An emergency: the notice of one release ends `notice_secs` after its publication
    /// instead (role `Admin`, always a request under a quorum).
    ShortenNotice { version: String, notice_secs: u64 },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting for approvals.
    Pending,
    /// Approved; the action is running (publishing and starting a rollout await calls).
    Executing,
    /// Approved and done.
    Executed {
        at_ns: u64,
    },
    /// Approved, but the action was refused when it ran (for example a rollout was active).
    Failed {
        at_ns: u64,
        message: String,
    },
    Cancelled {
        at_ns: u64,
        by: Principal,
    },
    /// Not approved within [`REQUEST_LIFETIME_SECS`].
    Expired,
}

/// A request, and the record of who approved it: requests stay listed after they end, the
/// log of every governed change.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub action: RequestAction,
    /// The role an approver must hold.
    pub role: Role,
    pub proposer: Principal,
    /// Distinct approvers, the proposer first.
    pub approvals: Vec<Principal>,
    /// Approvals needed, as the policy said when the request was made.
    pub quorum: u32,
    pub created_at_ns: u64,
    pub expires_at_ns: u64,
    pub state: RequestState,
}

/// A published release no rollout has used yet: users see what may reach their canister, and
/// from when.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PendingRelease {
    pub version: String,
    pub sha256: ByteBuf,
    pub published_at_ns: u64,
    /// Earliest start of a rollout to it (the publication plus the notice).
    pub may_start_at_ns: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ListRequestsArg {
    /// Id of the last request of the previous page; pages go from the newest down.
    pub before: Option<u64>,
    /// At most 100; default 50.
    pub limit: Option<u32>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum SetReleasePolicyError {
    NotAuthorized,
    /// Quorum must be 1 to [`MAX_QUORUM`], notice at most [`MAX_NOTICE_SECS`].
    InvalidPolicy,
    /// Fewer operators hold `role` than the quorum asks for, so nothing could be approved.
    QuorumUnreachable {
        role: Role,
        holders: u32,
    },
    /// Under a quorum the change is a request; it runs once approved.
    ApprovalRequired(Box<Request>),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ApproveRequestError {
    /// The caller does not hold the request's role.
    NotAuthorized,
    NotFound,
    /// The request has ended (executed, failed, cancelled or expired).
    NotPending {
        state: RequestState,
    },
    /// An approver counts once, however often they approve.
    AlreadyApproved,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CancelRequestError {
    /// Only the proposer and admins may cancel.
    NotAuthorized,
    NotFound,
    NotPending {
        state: RequestState,
    },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ShortenNoticeError {
    NotAuthorized,
    UnknownRelease,
    /// A shorter notice only: it may not exceed the policy's.
    InvalidNotice,
    ApprovalRequired(Box<Request>),
}

crate::endpoint::reply! {
    AdmissionReply(AdmissionStatus, AdmissionError);
    SetReleasePolicyReply(ReleasePolicy, SetReleasePolicyError);
    ApproveRequestReply(Request, ApproveRequestError);
    CancelRequestReply(Request, CancelRequestError);
    ShortenNoticeReply(PendingRelease, ShortenNoticeError);
    ListRequestsReply(Vec<Request>, crate::manager::QueryError);
}

/// The manager's admission and release-policy methods.
pub mod method {
    use super::*;

    crate::endpoint::endpoints! {
        query GetAdmission = "get_admission" () -> AdmissionStatus;
        update SetAdmission = "set_admission" (Admission) -> AdmissionReply;
        update UpdateAllowlist = "update_allowlist" (AllowlistUpdate) -> AdmissionReply;
        query GetReleasePolicy = "get_release_policy" () -> ReleasePolicy;
        update SetReleasePolicy = "set_release_policy" (ReleasePolicy) -> SetReleasePolicyReply;
        update ShortenNotice = "shorten_notice" (String, u64) -> ShortenNoticeReply;
        update ApproveRequest = "approve_request" (u64) -> ApproveRequestReply;
        update CancelRequest = "cancel_request" (u64) -> CancelRequestReply;
        query ListRequests = "list_requests" (ListRequestsArg) -> ListRequestsReply;
        query PendingReleases = "pending_releases" () -> Vec<PendingRelease>;
    }
}
