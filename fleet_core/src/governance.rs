//! The release policy: no single operator key pushes code to every user canister.
//!
//! Under a quorum, the changes that decide what code reaches the fleet (publishing a release,
//! the first rollout to it, who the operators are, the policy itself) become requests that run
//! once enough distinct holders of the role approve. Under a notice, the first rollout to a
//! release waits a delay after its publication, during which users see the release coming.
//! Anchors: Orbit's approval policies, the SNS's proposals, OpenZeppelin's timelock.

use crate::access::Caller;
use crate::memory::{Stored, StoredShape};
use crate::runtime::Runtime;
use crate::state;
use candid::{CandidType, Principal};
use fleet_api::governance::{
    ApproveRequestError, CancelRequestError, ListRequestsArg, PendingRelease, ReleasePolicy,
    Request, RequestAction, RequestState, MAX_NOTICE_SECS, MAX_QUORUM, REQUEST_LIFETIME_SECS,
};
use fleet_api::manager::Role;
use ic_stable_structures::{Memory, StableBTreeMap, StableCell};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

const NS: u64 = 1_000_000_000;

/// The policy and what it needs to remember (one stable cell).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct GovernanceState {
    pub policy: ReleasePolicy,
    pub next_request_id: u64,
    /// sha256 of every release a rollout has targeted or that became the default release: a
    /// rollout to one of them (a rollback to a known release, say) needs neither approval nor
    /// notice.
    pub used_releases: Vec<ByteBuf>,
    /// Notices shortened by an admin quorum: (sha256, notice in seconds).
    pub notice_overrides: Vec<(ByteBuf, u64)>,
}

impl StoredShape for GovernanceState {
    const TAG: u8 = rollout_core::codec::COMPACT_V1;
}

impl StoredShape for Request {
    const TAG: u8 = rollout_core::codec::COMPACT_V1;
}

/// The policy and the requests, each in its own stable memory.
pub struct Governance<M: Memory> {
    cell: StableCell<Stored<GovernanceState>, M>,
    requests: StableBTreeMap<u64, Stored<Request>, M>,
}

impl<M: Memory> Governance<M> {
    pub fn init(cell: M, requests: M) -> Self {
        Governance {
            cell: StableCell::init(cell, Stored(GovernanceState::default())),
            requests: StableBTreeMap::init(requests),
        }
    }

    pub fn get(&self) -> GovernanceState {
        self.cell.get().0.clone()
    }

    pub fn set(&mut self, state: GovernanceState) {
        self.cell.set(Stored(state));
    }

    pub fn policy(&self) -> ReleasePolicy {
        self.cell.get().0.policy
    }

    pub fn is_used(&self, sha256: &[u8]) -> bool {
        self.cell
            .get()
            .0
            .used_releases
            .iter()
            .any(|r| r.as_slice() == sha256)
    }

    pub fn mark_used(&mut self, sha256: &[u8]) {
        if !self.is_used(sha256) {
            let mut g = self.get();
            g.used_releases.push(ByteBuf::from(sha256.to_vec()));
            self.set(g);
        }
    }

    /// The notice of the release with this sha256, in seconds.
    pub fn notice_secs(&self, sha256: &[u8]) -> u64 {
        let g = self.cell.get();
        g.0.notice_overrides
            .iter()
            .find(|(h, _)| h.as_slice() == sha256)
            .map_or(g.0.policy.notice_secs, |(_, secs)| *secs)
    }

    pub fn request(&self, id: u64) -> Option<Request> {
        self.requests.get(&id).map(|r| r.0)
    }

    fn put(&mut self, request: &Request) {
        self.requests.insert(request.id, Stored(request.clone()));
    }
}

/// The role an approver of `action` must hold.
pub fn role_of(action: &RequestAction) -> Role {
    match action {
        RequestAction::PublishRelease(_) => Role::Releaser,
        RequestAction::StartRollout(_) => Role::Deployer,
        RequestAction::SetDefaultRelease(_)
        | RequestAction::SetReleasePolicy(_)
        | RequestAction::SetOperator(_)
        | RequestAction::RemoveOperator(_)
        | RequestAction::ShortenNotice { .. } => Role::Admin,
    }
}

pub fn policy() -> ReleasePolicy {
    state::with(|s| s.governance.policy())
}

/// Whether `policy` can be met: a quorum of 1 to [`MAX_QUORUM`], reachable by the operators
/// holding each governed role, and a notice of at most [`MAX_NOTICE_SECS`].
pub fn validate(
    policy: &ReleasePolicy,
) -> Result<(), fleet_api::governance::SetReleasePolicyError> {
    use fleet_api::governance::SetReleasePolicyError as E;
    if policy.quorum == 0 || policy.quorum > MAX_QUORUM || policy.notice_secs > MAX_NOTICE_SECS {
        return Err(E::InvalidPolicy);
    }
    if policy.quorum > 1 {
        let operators = state::with(|s| s.operators.list());
        for role in [Role::Admin, Role::Releaser, Role::Deployer] {
            let holders = operators.iter().filter(|o| o.roles.contains(&role)).count() as u32;
            if holders < policy.quorum {
                return Err(E::QuorumUnreachable { role, holders });
            }
        }
    }
    Ok(())
}

/// Under a quorum, makes `action` a request proposed (and approved) by `proposer` and returns
/// it as the refusal; without one, lets the caller go on.
pub fn gate(proposer: Principal, action: RequestAction, now_ns: u64) -> Result<(), Box<Request>> {
    let quorum = policy().quorum;
    if quorum <= 1 {
        return Ok(());
    }
    Err(Box::new(propose(proposer, action, quorum, now_ns)))
}

/// Records a pending request approved by its proposer.
pub fn propose(proposer: Principal, action: RequestAction, quorum: u32, now_ns: u64) -> Request {
    state::with_mut(|s| {
        let mut g = s.governance.get();
        let id = g.next_request_id;
        g.next_request_id += 1;
        s.governance.set(g);
        let request = Request {
            id,
            role: role_of(&action),
            action,
            proposer,
            approvals: vec![proposer],
            quorum,
            created_at_ns: now_ns,
            expires_at_ns: now_ns.saturating_add(REQUEST_LIFETIME_SECS * NS),
            state: RequestState::Pending,
        };
        s.governance.put(&request);
        request
    })
}

/// Adds `caller`'s approval. Returns the request, and whether it is now approved: then its
/// state is `Executing` and the caller runs the action ([`execute`]) and records the outcome
/// ([`finish`]). Approvals count only while their principal still holds the role.
pub fn approve<R: Runtime>(
    rt: &R,
    caller: Caller,
    id: u64,
) -> Result<(Request, bool), ApproveRequestError> {
    use ApproveRequestError as E;
    let now = rt.now_ns();
    let mut request = state::with(|s| s.governance.request(id)).ok_or(E::NotFound)?;
    if request.state == RequestState::Pending && now >= request.expires_at_ns {
        request.state = RequestState::Expired;
        state::with_mut(|s| s.governance.put(&request));
    }
    if request.state != RequestState::Pending {
        return Err(E::NotPending {
            state: request.state,
        });
    }
    let holds = |p: Principal, is_controller: bool| {
        state::with(|s| {
            s.operators.has_role(
                Caller {
                    principal: p,
                    is_controller,
                },
                request.role,
            )
        })
    };
    if !holds(caller.principal, caller.is_controller) {
        return Err(E::NotAuthorized);
    }
    if request.approvals.contains(&caller.principal) {
        return Err(E::AlreadyApproved);
    }
    request.approvals.push(caller.principal);
    let valid = request
        .approvals
        .iter()
        .filter(|p| holds(**p, rt.is_controller(p)))
        .count() as u32;
    let approved = valid >= request.quorum;
    if approved {
        request.state = RequestState::Executing;
    }
    state::with_mut(|s| s.governance.put(&request));
    Ok((request, approved))
}

/// Records how an approved request's action went.
pub fn finish(id: u64, outcome: Result<(), String>, now_ns: u64) -> Option<Request> {
    state::with_mut(|s| {
        let mut request = s.governance.request(id)?;
        request.state = match outcome {
            Ok(()) => RequestState::Executed { at_ns: now_ns },
            Err(message) => RequestState::Failed {
                at_ns: now_ns,
                message,
            },
        };
        s.governance.put(&request);
        Some(request)
    })
}

/// Cancels a pending request: its proposer or an admin.
pub fn cancel(caller: Caller, id: u64, now_ns: u64) -> Result<Request, CancelRequestError> {
    use CancelRequestError as E;
    state::with_mut(|s| {
        let mut request = s.governance.request(id).ok_or(E::NotFound)?;
        if request.proposer != caller.principal && !s.operators.has_role(caller, Role::Admin) {
            return Err(E::NotAuthorized);
        }
        if request.state != RequestState::Pending {
            return Err(E::NotPending {
                state: request.state,
            });
        }
        request.state = RequestState::Cancelled {
            at_ns: now_ns,
            by: caller.principal,
        };
        s.governance.put(&request);
        Ok(request)
    })
}

/// Requests from the newest down.
pub fn list(arg: &ListRequestsArg) -> Vec<Request> {
    let limit = arg.limit.unwrap_or(50).clamp(1, 100) as usize;
    state::with(|s| {
        let end = arg.before.unwrap_or(u64::MAX);
        s.governance
            .requests
            .range(..end)
            .rev()
            .take(limit)
            .map(|e| e.value().0)
            .collect()
    })
}

/// When a rollout to the release with `sha256`, published at `published_at_ns`, may start:
/// `None` when no notice applies (a rollout used it already, or the notice has passed).
pub fn notice_until(sha256: &[u8], published_at_ns: u64, now_ns: u64) -> Option<u64> {
    state::with(|s| {
        if s.governance.is_used(sha256) {
            return None;
        }
        let until = published_at_ns.saturating_add(s.governance.notice_secs(sha256) * NS);
        (now_ns < until).then_some(until)
    })
}

/// Published releases no rollout has used yet, with when a rollout to each may start.
pub fn pending_releases() -> Vec<PendingRelease> {
    state::with(|s| {
        let mut pending = Vec::new();
        let mut after: Option<String> = None;
        while let Ok(page) = s.store.list(after.as_deref(), wasm_store::MAX_PAGE) {
            let Some(last) = page.last() else { break };
            after = Some(last.version.clone());
            for meta in page {
                if s.governance.is_used(&meta.sha256) {
                    continue;
                }
                let notice = s.governance.notice_secs(&meta.sha256);
                pending.push(PendingRelease {
                    version: meta.version.clone(),
                    sha256: ByteBuf::from(meta.sha256.clone()),
                    published_at_ns: meta.uploaded_at,
                    may_start_at_ns: meta.uploaded_at.saturating_add(notice * NS),
                });
            }
        }
        pending
    })
}

/// Applies a policy (directly, or once its request is approved).
pub fn apply_policy(policy: ReleasePolicy) {
    state::with_mut(|s| {
        let mut g = s.governance.get();
        g.policy = policy;
        s.governance.set(g);
    });
}

/// Shortens the notice of the release with `sha256`.
pub fn apply_notice(sha256: &[u8], notice_secs: u64) {
    state::with_mut(|s| {
        let mut g = s.governance.get();
        g.notice_overrides.retain(|(h, _)| h.as_slice() != sha256);
        g.notice_overrides
            .push((ByteBuf::from(sha256.to_vec()), notice_secs));
        s.governance.set(g);
    });
}

/// Runs an approved request's action, with the checks it would have had when called
/// directly (a rollout's notice, the state of the store).
pub async fn execute<R: Runtime>(rt: &R, action: &RequestAction) -> Result<(), String> {
    match action {
        RequestAction::PublishRelease(version) => crate::releases::finalize(rt, version)
            .await
            .map(drop)
            .map_err(|e| format!("{e:?}")),
        RequestAction::StartRollout(plan) => crate::rollouts::start_plan(rt, plan)
            .await
            .map(drop)
            .map_err(|e| format!("{e:?}")),
        RequestAction::SetDefaultRelease(version) => crate::releases::set_default(rt, version)
            .await
            .map(drop)
            .map_err(|e| format!("{e:?}")),
        RequestAction::SetReleasePolicy(policy) => {
            validate(policy).map_err(|e| format!("{e:?}"))?;
            apply_policy(*policy);
            Ok(())
        }
        RequestAction::SetOperator(operator) => {
            state::with_mut(|s| s.operators.set(operator.principal, &operator.roles));
            Ok(())
        }
        RequestAction::RemoveOperator(principal) => {
            if state::with_mut(|s| s.operators.remove(principal)) {
                Ok(())
            } else {
                Err("UnknownOperator".into())
            }
        }
        RequestAction::ShortenNotice {
            version,
            notice_secs,
        } => {
            let meta = state::with(|s| s.store.get(version)).ok_or("UnknownRelease")?;
            apply_notice(&meta.sha256, *notice_secs);
            Ok(())
        }
    }
}
