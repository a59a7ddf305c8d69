//! The IC runtime: [`fleet_core::runtime::Runtime`] over ic-cdk, the only place the manager
//! reads the system API for the core and makes calls.

use candid::Principal;
use fleet_core::runtime::{CallError, CallResult, Runtime, NOT_SENT};
use ic_cdk::call::{Call, CallFailed};

/// The real IC.
pub struct Ic;

impl Runtime for Ic {
    fn now_ns(&self) -> u64 {
        ic_cdk::api::time()
    }

    fn self_id(&self) -> Principal {
        ic_cdk::api::canister_self()
    }

    fn subnet_self(&self) -> Principal {
        ic_cdk::api::subnet_self()
    }

    fn canister_version(&self) -> u64 {
        ic_cdk::api::canister_version()
    }

    fn cycles_balance(&self) -> u128 {
        ic_cdk::api::canister_cycle_balance()
    }

    fn liquid_cycles_balance(&self) -> u128 {
        ic_cdk::api::canister_liquid_cycle_balance()
    }

    fn create_canister_fee(&self) -> u128 {
        ic_cdk::api::cost_create_canister()
    }

    fn log(&self, line: &str) {
        ic_cdk::println!("{line}");
    }

    fn is_controller(&self, principal: &Principal) -> bool {
        ic_cdk::api::is_controller(principal)
    }

    fn msg_cycles_available(&self) -> u128 {
        ic_cdk::api::msg_cycles_available()
    }

    fn msg_cycles_accept(&self, max: u128) -> u128 {
        ic_cdk::api::msg_cycles_accept(max)
    }

    async fn call(
        &self,
        callee: Principal,
        method: &'static str,
        args: &[u8],
        cycles: u128,
        timeout_secs: Option<u32>,
    ) -> CallResult<Vec<u8>> {
        let call = match timeout_secs {
            Some(secs) => Call::bounded_wait(callee, method).change_timeout(secs),
            None => Call::unbounded_wait(callee, method),
        };
        let mut call = call.with_raw_args(args);
        if cycles > 0 {
            call = call.with_cycles(cycles);
        }
        match call.await {
            Ok(reply) => Ok(reply.into_bytes()),
            Err(CallFailed::CallRejected(r)) => Err(CallError {
                reject_code: r.raw_reject_code(),
                message: r.reject_message().to_string(),
            }),
            // `ic0.call_perform` failed: the call never left the manager.
            Err(other) => Err(CallError {
                reject_code: NOT_SENT,
                message: other.to_string(),
            }),
        }
    }
}
