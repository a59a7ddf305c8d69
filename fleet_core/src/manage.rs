//! Management calls an admin makes on a managed canister through the manager, its controller:
//! how operators back up and restore any canister of the fleet (`fleet canisters backup` and
//! `restore`) with the snapshot methods, holding no controller key of their own. The manager
//! forwards the call as it came and returns the management canister's reply as it came, after
//! checking that the method is one of [`MANAGE_CANISTER_METHODS`] and that the canister is one
//! it manages and no pipeline is working on.

use candid::{Decode, Principal};
use fleet_api::manager::{
    ManageCanisterArg, ManageCanisterError as E, Role, MANAGE_CANISTER_METHODS,
};
use fleet_api::wire::Wire;

use crate::access::Caller;
use crate::runtime::Runtime;
use crate::state;
use crate::stored::CanisterStatus;

/// What every forwarded argument has: the canister it is about (candid skips the other fields).
#[derive(candid::CandidType, serde::Deserialize)]
struct About {
    canister_id: Principal,
}

/// Forwards `arg` to the management canister for `caller`, an admin.
pub async fn manage<R: Runtime>(
    rt: &R,
    caller: Caller,
    arg: ManageCanisterArg,
) -> Result<Vec<u8>, E> {
    if !state::with(|s| s.operators.has_role(caller, Role::Admin)) {
        return Err(E::NotAuthorized);
    }
    let method = *MANAGE_CANISTER_METHODS
        .iter()
        .find(|m| **m == arg.method)
        .ok_or(E::MethodNotAllowed { method: arg.method })?;
    let canister = Decode!(&arg.arg, About)
        .map_err(|e| E::BadArgument {
            reason: e.to_string(),
        })?
        .canister_id;
    let managed = state::with(|s| s.registry.get(&canister))
        .is_some_and(|r| r.status != CanisterStatus::Detached);
    if !managed {
        return Err(E::NotManaged { canister });
    }
    if crate::rollouts::upgrading(&canister) {
        return Err(E::InFlight { canister });
    }
    rt.management(method, &arg.arg, 0, None)
        .await
        .map_err(|e| E::Rejected(e.wire()))
}
