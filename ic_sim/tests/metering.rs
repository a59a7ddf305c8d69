//! System API metering: every `ic0` call costs the replica's fixed overhead on entry and calls
//! that move bytes pay per byte (the replica's system API complexity table; interface spec,
//! "Cycles": instructions of system calls count), so instruction figures are close to the
//! replica's.

use candid::{encode_one, Principal};
use ic_sim::{update_candid, IcSim};

fn probe(pic: &IcSim) -> Principal {
    let id = pic.create_canister();
    let wasm = wasm_build::wasm("sim_probe", &[]);
    pic.install_canister(id, wasm, encode_one(None::<u64>).unwrap(), None);
    id
}

#[test]
fn each_system_call_costs_its_overhead() {
    let pic = IcSim::new();
    let id = probe(&pic);
    // `ic0.time` costs 500 instructions; the loop itself a few per round, and the second
    // `ic0.performance_counter` 200. The first message warms the canister up.
    let (_,): (u64,) = update_candid(&pic, id, "time_calls", (0u64,)).unwrap();
    let (none,): (u64,) = update_candid(&pic, id, "time_calls", (0u64,)).unwrap();
    let (thousand,): (u64,) = update_candid(&pic, id, "time_calls", (1_000u64,)).unwrap();
    let per_call = (thousand - none) / 1_000;
    assert!((500..520).contains(&per_call), "{per_call} per ic0.time");
    assert!(none >= 200, "the counter read itself is charged: {none}");
}

#[test]
fn payload_bytes_cost_fifty_instructions_each() {
    let pic = IcSim::new();
    let id = probe(&pic);
    let spent = |n: u64| {
        let before = pic.instructions_total(id);
        let reply = pic
            .update_call(
                id,
                Principal::anonymous(),
                "reply_bytes",
                encode_one(n).unwrap(),
            )
            .unwrap();
        assert_eq!(reply.len() as u64, n);
        pic.instructions_total(id) - before
    };
    // The first message runs the canister's one-time initialisation: warm it up.
    spent(0);
    let small = spent(0);
    let large = spent(100_000);
    let per_byte = (large - small) / 100_000;
    assert_eq!(per_byte, 50, "{small} for 0 bytes, {large} for 100 000");
}
