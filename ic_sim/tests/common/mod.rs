//! Helpers shared by the test files (each file uses a part of them).
#![allow(dead_code)]

use candid::{decode_one, encode_one, Principal};
use ic_sim::management_canister::{CanisterInfoArgs, CanisterInfoResult};
use ic_sim::{update_candid, IcSim};

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
