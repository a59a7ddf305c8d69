//! Helpers shared by the test files (each file uses a part of them).
#![allow(dead_code)]

use candid::{decode_one, encode_one, Principal};
use ic_sim::management_canister::{CanisterInfoArgs, CanisterInfoResult};
use ic_sim::{update_candid, IcSim, SimLimits};

/// What `sim_probe`'s `call_raw` returns: the reply, or the reject code and message.
pub type CallResult = Result<Vec<u8>, (u32, String)>;

pub fn probe(features: &[&str]) -> Vec<u8> {
    wasm_build::wasm("sim_probe", features)
}

/// A `sim_probe` canister (v1) with its counter at 0.
pub fn install(pic: &IcSim) -> Principal {
    let id = pic.create_canister();
    pic.install_canister(id, probe(&[]), encode_one(None::<u64>).unwrap(), None);
    id
}

/// `from` calls `method` of `to` through `sim_probe`'s `call_raw`, with attached cycles.
pub fn call_raw(
    pic: &IcSim,
    from: Principal,
    to: Principal,
    method: &str,
    arg: Vec<u8>,
    cycles: u128,
) -> CallResult {
    let (r,): (CallResult,) =
        update_candid(pic, from, "call_raw", (to, method.to_string(), arg, cycles)).unwrap();
    r
}

/// `asker` reads `target`'s canister info (a method only canisters may call).
pub fn canister_info(
    pic: &IcSim,
    asker: Principal,
    target: Principal,
    changes: u64,
) -> CanisterInfoResult {
    let arg = encode_one(CanisterInfoArgs {
        canister_id: target,
        num_requested_changes: Some(changes),
    })
    .unwrap();
    let reply = call_raw(
        pic,
        asker,
        Principal::management_canister(),
        "canister_info",
        arg,
        0,
    )
    .expect("canister_info");
    decode_one(&reply).unwrap()
}

/// Round accounting that is easy to follow: each execution counts 1B instructions of overhead,
/// and a core starts the round with `round - max(slice, query) + 1` = 3B + 1 instructions, so
/// it runs three executions per round.
pub fn counted_limits(cores: usize) -> SimLimits {
    SimLimits {
        round_instructions: 4_000_000_000,
        slice_instructions: 1_000_000_000,
        query_instructions: 1_000_000_000,
        overhead_per_execution: 1_000_000_000,
        overhead_per_canister: 0,
        overhead_per_canister_for_finalization: 0,
        scheduler_cores: cores,
        ..SimLimits::default()
    }
}
