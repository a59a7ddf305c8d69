//! [`Ic`] on the embedded simulator (`ic_sim`): the same commands, run against real canister
//! wasm in process. Integration tests and `fleet rehearse` use it.
//!
//! Calls are ingress messages (`update_call`), so the management canister is reached exactly
//! as from a real agent: the simulator takes the effective canister id from the argument and
//! checks that the sender controls it.

use std::rc::Rc;

use candid::Principal;
use ic_sim::{IcSim, RejectResponse};

use super::{CallError, Ic};

/// One sender on a shared simulator. Cloning the `Rc` lets several identities (manager,
/// owner, recovery principal) act on the same simulated IC.
#[derive(Clone)]
pub struct SimIc {
    sim: Rc<IcSim>,
    sender: Principal,
}

impl SimIc {
    pub fn new(sim: Rc<IcSim>, sender: Principal) -> Self {
        Self { sim, sender }
    }

    /// The same simulator, as another sender.
    pub fn as_sender(&self, sender: Principal) -> Self {
        Self {
            sim: Rc::clone(&self.sim),
            sender,
        }
    }

    pub fn sim(&self) -> &Rc<IcSim> {
        &self.sim
    }
}

fn convert(r: RejectResponse) -> CallError {
    CallError::reject(
        r.reject_code as u32,
        r.reject_message,
        Some(r.error_code.to_string()),
    )
}

impl Ic for SimIc {
    fn update(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        self.sim
            .update_call(canister, self.sender, method, arg)
            .map_err(convert)
    }

    fn query(&self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.sim
            .query_call(canister, self.sender, method, arg)
            .map_err(convert)
    }

    fn sender(&self) -> Principal {
        self.sender
    }

    /// Runs one round per simulated second of `duration` (at least one).
    fn idle(&self, duration: std::time::Duration) {
        for _ in 0..duration.as_secs().max(1) {
            self.sim.advance_time(std::time::Duration::from_secs(1));
            self.sim.tick();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Management;

    #[test]
    fn management_calls_reach_the_simulator_and_keep_its_error_codes() {
        let sim = Rc::new(IcSim::new());
        let owner = Principal::from_slice(&[3; 29]);
        let canister = sim.create_canister_with_settings(Some(owner), None);
        let ic = SimIc::new(Rc::clone(&sim), owner);
        let st = ic.canister_status(canister).unwrap();
        assert_eq!(st.settings.controllers, vec![owner]);
        assert_eq!(st.module_hash, None);

        let stranger = ic.as_sender(Principal::from_slice(&[4; 29]));
        let err = stranger.canister_status(canister).unwrap_err();
        assert!(err.is_not_authorized(), "{err}");
        assert!(matches!(&err, CallError::Reject { error_code: Some(c), .. } if c == "IC0512"));
    }
}
