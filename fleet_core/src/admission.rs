//! Who may have the manager create a canister, and how much creating may cost per window.
//!
//! A creation spends the creation fee plus the new canister's cycles, and principals cost an
//! attacker nothing to make: the admission mode decides who is served, and the provisioning
//! budget caps what any mix of callers can make the manager spend in one window.

use crate::memory::{Stored, StoredShape};
use crate::runtime::Runtime;
use crate::state;
use candid::{CandidType, Principal};
use fleet_api::governance::{
    Admission, AdmissionError, AdmissionMode, AdmissionStatus, AllowlistUpdate,
    MAX_ALLOWLIST_UPDATE, MAX_BUDGET_WINDOW_SECS,
};
use fleet_api::manager::CreateUserCanisterError;
use ic_stable_structures::{Memory, StableBTreeMap};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The approver's method: `fleet_admit : (principal) -> (bool)`.
pub const APPROVER_METHOD: &str = "fleet_admit";
/// Timeout of the bounded-wait call to the approver: a slow or silent approver refuses, it
/// does not hold the caller (interface spec, "Bounded-wait calls").
pub const APPROVER_TIMEOUT_SECS: u32 = 10;

/// The admission policy and the budget's counters (one stable cell).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct AdmissionState {
    pub admission: Admission,
    pub window_start_ns: u64,
    pub spent: u128,
    pub refused_over_budget: u64,
    pub refused_not_admitted: u64,
}

impl StoredShape for AdmissionState {
    const TAG: u8 = rollout_core::codec::COMPACT_V1;
}

/// Cycles held back from the budget for one creation, given back if it fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub cycles: u128,
    window_start_ns: u64,
}

impl AdmissionState {
    fn window_ns(&self) -> u64 {
        self.admission
            .budget
            .window_secs
            .saturating_mul(1_000_000_000)
    }

    /// Starts a new window when `now` is past the current one.
    fn roll(&mut self, now_ns: u64) {
        let window = self.window_ns().max(1);
        let start = now_ns - now_ns % window;
        if start != self.window_start_ns {
            self.window_start_ns = start;
            self.spent = 0;
        }
    }

    /// Holds `cycles` of this window's budget, or says in how many seconds the next window
    /// opens.
    pub fn reserve(&mut self, cycles: u128, now_ns: u64) -> Result<Reservation, u64> {
        self.roll(now_ns);
        let spent = self.spent.saturating_add(cycles);
        if spent > self.admission.budget.cycles_per_window {
            self.refused_over_budget += 1;
            let end = self.window_start_ns.saturating_add(self.window_ns());
            return Err(end.saturating_sub(now_ns).div_ceil(1_000_000_000));
        }
        self.spent = spent;
        Ok(Reservation {
            cycles,
            window_start_ns: self.window_start_ns,
        })
    }

    /// Gives a reservation back, unless its window has ended.
    pub fn release(&mut self, reservation: Reservation) {
        if reservation.window_start_ns == self.window_start_ns {
            self.spent = self.spent.saturating_sub(reservation.cycles);
        }
    }
}

/// Principals on the allowlist and the sha256 of unused invite codes.
pub struct Allowlist<M: Memory> {
    principals: StableBTreeMap<Principal, u8, M>,
    invites: StableBTreeMap<[u8; 32], u8, M>,
}

impl<M: Memory> Allowlist<M> {
    pub fn init(principals: M, invites: M) -> Self {
        Allowlist {
            principals: StableBTreeMap::init(principals),
            invites: StableBTreeMap::init(invites),
        }
    }

    pub fn contains(&self, principal: &Principal) -> bool {
        self.principals.contains_key(principal)
    }

    /// Uses up the invite whose code is `code`; false when there is none.
    pub fn take_invite(&mut self, code: &str) -> Option<[u8; 32]> {
        let hash = invite_hash(code);
        self.invites.remove(&hash).map(|_| hash)
    }

    /// Puts back an invite taken by a creation that then failed.
    pub fn restore_invite(&mut self, hash: [u8; 32]) {
        self.invites.insert(hash, 0);
    }

    pub fn counts(&self) -> (u64, u64) {
        (self.principals.len(), self.invites.len())
    }
}

/// What an invite is known by: the sha256 of its code's UTF-8 bytes.
pub fn invite_hash(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

/// Opaque ids (class 0x01) are canister ids (interface spec, "Principals").
fn is_canister(principal: &Principal) -> bool {
    principal.as_slice().last() == Some(&0x01)
}

pub fn status() -> AdmissionStatus {
    state::with(|s| {
        let a = s.admission.get().0.clone();
        let (allowlisted, invites) = s.allowlist.counts();
        AdmissionStatus {
            admission: a.admission,
            window_start_ns: a.window_start_ns,
            spent_in_window: a.spent,
            refused_over_budget: a.refused_over_budget,
            refused_not_admitted: a.refused_not_admitted,
            allowlisted,
            invites,
        }
    })
}

pub fn validate(admission: &Admission, manager: Principal) -> Result<(), AdmissionError> {
    let window = admission.budget.window_secs;
    if window == 0 || window > MAX_BUDGET_WINDOW_SECS {
        return Err(AdmissionError::InvalidBudget);
    }
    if let AdmissionMode::Approver(approver) = admission.mode {
        if approver == Principal::anonymous()
            || approver == Principal::management_canister()
            || approver == manager
        {
            return Err(AdmissionError::InvalidApprover);
        }
    }
    Ok(())
}

/// Sets the policy. The spending of the current window is kept: a new budget applies to it.
pub fn set(admission: Admission, manager: Principal) -> Result<AdmissionStatus, AdmissionError> {
    validate(&admission, manager)?;
    state::with_mut(|s| {
        let mut a = s.admission.get().0.clone();
        let same_window = a.admission.budget.window_secs == admission.budget.window_secs;
        a.admission = admission;
        if !same_window {
            a.window_start_ns = 0;
            a.spent = 0;
        }
        s.admission.set(Stored(a));
    });
    Ok(status())
}

pub fn update_allowlist(update: AllowlistUpdate) -> Result<AdmissionStatus, AdmissionError> {
    let entries = update.add.len()
        + update.remove.len()
        + update.add_invites.len()
        + update.revoke_invites.len();
    if entries > MAX_ALLOWLIST_UPDATE {
        return Err(AdmissionError::TooManyEntries {
            max: MAX_ALLOWLIST_UPDATE as u32,
        });
    }
    if update.add.contains(&Principal::anonymous()) {
        return Err(AdmissionError::AnonymousPrincipal);
    }
    let hash = |b: &serde_bytes::ByteBuf| <[u8; 32]>::try_from(b.as_slice());
    let add_invites = update
        .add_invites
        .iter()
        .map(hash)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| AdmissionError::InvalidInviteHash)?;
    let revoke_invites = update
        .revoke_invites
        .iter()
        .map(hash)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| AdmissionError::InvalidInviteHash)?;
    state::with_mut(|s| {
        let list = &mut s.allowlist;
        for p in update.add {
            list.principals.insert(p, 0);
        }
        for p in &update.remove {
            list.principals.remove(p);
        }
        for h in add_invites {
            list.invites.insert(h, 0);
        }
        for h in &revoke_invites {
            list.invites.remove(h);
        }
    });
    Ok(status())
}

/// Whether an ingress `create_user_canister` from `caller` could be admitted: checked by the
/// manager's `canister_inspect_message`, so that callers the mode refuses cost it nothing.
/// Ingress attaches no cycles, so under `Paid` none is; under `Allowlist`, only a listed
/// principal or one presenting an unused invite. The approver is asked by the handler (an
/// inspection cannot make calls).
pub fn ingress_admits(caller: &Principal, invite: Option<&str>) -> bool {
    state::with(|s| match s.admission.get().0.admission.mode {
        AdmissionMode::Open | AdmissionMode::Approver(_) => true,
        AdmissionMode::Paid => false,
        AdmissionMode::Allowlist => {
            s.allowlist.contains(caller)
                || invite.is_some_and(|code| s.allowlist.invites.contains_key(&invite_hash(code)))
        }
    })
}

/// How a caller was admitted, and what to undo if the creation fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admitted {
    /// Admitted by the mode; the manager pays.
    Free,
    /// An invite was used up (put back if the creation fails).
    Invite([u8; 32]),
    /// The caller pays `cost` from the cycles it attached, accepted once the canister exists.
    Paid { cost: u128 },
}

impl Admitted {
    /// What the creation costs the manager itself.
    pub fn manager_cost(&self, cost: u128) -> u128 {
        match self {
            Admitted::Paid { cost: paid } => cost.saturating_sub(*paid),
            _ => cost,
        }
    }

    /// Puts back what admission used, after a creation that did not happen.
    pub fn undo(&self) {
        if let Admitted::Invite(hash) = self {
            state::with_mut(|s| s.allowlist.restore_invite(*hash));
        }
    }
}

fn refused(error: CreateUserCanisterError) -> CreateUserCanisterError {
    state::with_mut(|s| {
        let mut a = s.admission.get().0.clone();
        a.refused_not_admitted += 1;
        s.admission.set(Stored(a));
    });
    error
}

/// Decides whether `caller` may have a canister created, under the admission mode. `cost` is
/// what the creation costs (creation fee plus the new canister's cycles).
pub async fn admit<R: Runtime>(
    rt: &R,
    caller: Principal,
    invite: Option<&str>,
    cost: u128,
) -> Result<Admitted, CreateUserCanisterError> {
    use CreateUserCanisterError as E;
    let mode = state::with(|s| s.admission.get().0.admission.mode.clone());
    match mode {
        AdmissionMode::Open => Ok(Admitted::Free),
        AdmissionMode::Allowlist => {
            if state::with(|s| s.allowlist.contains(&caller)) {
                return Ok(Admitted::Free);
            }
            let Some(code) = invite else {
                return Err(refused(E::NotAdmitted));
            };
            match state::with_mut(|s| s.allowlist.take_invite(code)) {
                Some(hash) => Ok(Admitted::Invite(hash)),
                None => Err(refused(E::InvalidInvite)),
            }
        }
        AdmissionMode::Approver(approver) => {
            let arg = candid::encode_one(caller).expect("encoding a principal");
            let reply = rt
                .call(
                    approver,
                    APPROVER_METHOD,
                    &arg,
                    0,
                    Some(APPROVER_TIMEOUT_SECS),
                )
                .await;
            match reply.map(|bytes| candid::decode_one::<bool>(&bytes)) {
                Ok(Ok(true)) => Ok(Admitted::Free),
                Ok(Ok(false)) => Err(refused(E::NotAdmitted)),
                Ok(Err(e)) => Err(refused(E::ApproverFailed(format!(
                    "{APPROVER_METHOD} did not reply a bool: {e}"
                )))),
                Err(e) => Err(refused(E::ApproverFailed(e.message))),
            }
        }
        AdmissionMode::Paid => {
            let attached = rt.msg_cycles_available();
            if !is_canister(&caller) || attached < cost {
                return Err(refused(E::PaymentRequired {
                    needed: cost,
                    attached,
                }));
            }
            Ok(Admitted::Paid { cost })
        }
    }
}

/// Holds the manager's share of a creation's cost in the budget.
pub fn reserve(cycles: u128, now_ns: u64) -> Result<Reservation, CreateUserCanisterError> {
    state::with_mut(|s| {
        let mut a = s.admission.get().0.clone();
        let result = a.reserve(cycles, now_ns);
        s.admission.set(Stored(a));
        result.map_err(
            |retry_after_secs| CreateUserCanisterError::BudgetExhausted { retry_after_secs },
        )
    })
}

/// Gives back a reservation whose creation did not happen.
pub fn release(reservation: Reservation) {
    state::with_mut(|s| {
        let mut a = s.admission.get().0.clone();
        a.release(reservation);
        s.admission.set(Stored(a));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::governance::ProvisioningBudget;

    const SEC: u64 = 1_000_000_000;

    fn budget(cycles: u128, secs: u64) -> AdmissionState {
        AdmissionState {
            admission: Admission {
                mode: AdmissionMode::Open,
                budget: ProvisioningBudget {
                    cycles_per_window: cycles,
                    window_secs: secs,
                },
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_budget_refuses_past_its_ceiling_and_refills_with_the_next_window() {
        let mut a = budget(100, 60);
        let now = 1_000 * 60 * SEC + 10 * SEC;
        assert!(a.reserve(60, now).is_ok());
        assert!(a.reserve(40, now).is_ok());
        assert_eq!(a.reserve(1, now + 5 * SEC), Err(45));
        assert_eq!(a.refused_over_budget, 1);
        assert_eq!(a.spent, 100);
        // The next window starts empty.
        assert!(a.reserve(100, now + 50 * SEC).is_ok());
        assert_eq!(a.spent, 100);
    }

    #[test]
    fn a_released_reservation_is_given_back_only_within_its_window() {
        let mut a = budget(100, 60);
        let r = a.reserve(70, 10 * SEC).unwrap();
        a.release(r);
        assert_eq!(a.spent, 0);
        let r = a.reserve(70, 20 * SEC).unwrap();
        a.reserve(10, 70 * SEC).unwrap();
        a.release(r);
        assert_eq!(
            a.spent, 10,
            "a reservation of an ended window gives nothing back"
        );
    }

    #[test]
    fn invalid_policies_are_refused() {
        let manager = Principal::from_slice(&[9; 10]);
        let mut admission = Admission::default();
        admission.budget.window_secs = 0;
        assert_eq!(
            validate(&admission, manager),
            Err(AdmissionError::InvalidBudget)
        );
        admission.budget.window_secs = 60;
        admission.mode = AdmissionMode::Approver(manager);
        assert_eq!(
            validate(&admission, manager),
            Err(AdmissionError::InvalidApprover)
        );
    }
}
