//! The management canister as an admin reaches it through a manager: every call to
//! `aaaaa-aa` becomes the manager's `manage_canister`, which makes it as the canister's
//! controller and returns the reply as it came. Commands written for a controller (backup and
//! restore) therefore run unchanged for an operator who holds no controller key.

use candid::Principal;
use fleet_api::manager::method::ManageCanister;
use fleet_api::manager::{ManageCanisterArg, ManageCanisterError};

use super::{CallError, Endpoints, Ic};

/// CANISTER_REJECT: how a refusal by the manager itself reaches the command.
const CANISTER_REJECT: u32 = 4;

pub struct ThroughManager<'a> {
    inner: &'a dyn Ic,
    manager: Principal,
}

impl<'a> ThroughManager<'a> {
    pub fn new(inner: &'a dyn Ic, manager: Principal) -> Self {
        ThroughManager { inner, manager }
    }

    fn forward(&self, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        let arg = ManageCanisterArg {
            method: method.to_string(),
            arg,
        };
        match self
            .inner
            .call::<ManageCanister>(self.manager, (arg,))?
            .into_result()
        {
            Ok(reply) => Ok(reply.into_vec()),
            Err(ManageCanisterError::Rejected(e)) => {
                Err(CallError::reject(e.reject_code, e.message, None))
            }
            Err(refused) => Err(CallError::reject(
                CANISTER_REJECT,
                format!("manager {} refused {method}: {refused:?}", self.manager),
                None,
            )),
        }
    }
}

impl Ic for ThroughManager<'_> {
    fn update(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        if canister == Principal::management_canister() {
            self.forward(method, arg)
        } else {
            self.inner.update(canister, method, arg)
        }
    }

    fn query(&self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        if canister == Principal::management_canister() {
            self.forward(method, arg)
        } else {
            self.inner.query(canister, method, arg)
        }
    }

    fn sender(&self) -> Principal {
        self.inner.sender()
    }

    fn idle(&self, duration: std::time::Duration) {
        self.inner.idle(duration)
    }
}
