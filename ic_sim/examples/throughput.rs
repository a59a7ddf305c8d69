//! Message throughput of the simulator on a canister with a 1-2 MiB heap of real data.
//!
//! `cargo run --release -p ic_sim --example throughput [-- <canisters> <messages> <live instances> <passes>]`
//! (a live-instance bound of 0 re-instantiates the module for every message; `passes` rounds
//! over the other canisters, default 3)
//!
//! Reports messages per second for a small update (`inc`) sent one at a time to one canister,
//! for a small query, and for a round of updates spread over many canisters (as a rollout
//! touches many user canisters in turn).

use std::time::Instant;

use candid::{encode_args, encode_one, Principal};
use ic_sim::{IcSim, IcSimBuilder};

fn main() {
    let mut args = std::env::args().skip(1);
    let canisters: usize = args.next().map_or(500, |a| a.parse().expect("canisters"));
    let messages: usize = args.next().map_or(2_000, |a| a.parse().expect("messages"));
    let live: usize = args
        .next()
        .map_or(128, |a| a.parse().expect("live instances"));
    let passes: usize = args.next().map_or(3, |a| a.parse().expect("passes"));
    let wasm = wasm_build::wasm("sim_probe", &[]);
    let pic = IcSimBuilder::new()
        .with_logs(false)
        .with_instance_cache(live, 512 << 20)
        .build();

    let install = |pic: &IcSim| {
        let id = pic.create_canister();
        pic.install_canister(id, wasm.clone(), encode_one(None::<u64>).unwrap(), None);
        let reply = pic
            .update_call(
                id,
                Principal::anonymous(),
                "ballast",
                encode_one(512u64).unwrap(),
            )
            .expect("ballast");
        let heap: u64 = candid::decode_one(&reply).unwrap();
        (id, heap)
    };

    let (hot, heap) = install(&pic);
    let private = pic.private_memory_bytes(hot);
    println!("canister heap {heap} bytes, {private} private bytes");

    let inc = encode_args(()).unwrap();
    let start = Instant::now();
    for _ in 0..messages {
        pic.update_call(hot, Principal::anonymous(), "inc", inc.clone())
            .expect("inc");
    }
    let t = start.elapsed();
    println!(
        "one canister, update `inc` one at a time: {messages} in {t:.2?} = {:.0} messages/s",
        messages as f64 / t.as_secs_f64()
    );

    let start = Instant::now();
    for _ in 0..messages {
        pic.query_call(hot, Principal::anonymous(), "get", inc.clone())
            .expect("get");
    }
    let t = start.elapsed();
    println!(
        "one canister, query `get`: {messages} in {t:.2?} = {:.0} queries/s",
        messages as f64 / t.as_secs_f64()
    );

    let start = Instant::now();
    let ids: Vec<Principal> = (1..canisters).map(|_| install(&pic).0).collect();
    let t = start.elapsed();
    println!(
        "{} more canisters created, installed and given 512 KiB ballast in {t:.2?}",
        ids.len()
    );
    for pass in 0..passes {
        let start = Instant::now();
        let pending: Vec<_> = ids
            .iter()
            .map(|id| {
                pic.submit_call(*id, Principal::anonymous(), "inc", inc.clone())
                    .expect("submit")
            })
            .collect();
        pic.tick();
        for p in pending {
            pic.await_call(p).expect("inc");
        }
        let t = start.elapsed();
        println!(
            "round of `inc` over {} canisters (pass {pass}): {t:.2?} = {:.0} messages/s",
            ids.len(),
            ids.len() as f64 / t.as_secs_f64()
        );
    }
}
