//! Scale: thousands of installed canisters in one simulator.
//!
//! `cargo run --release -p ic_sim --example scale [-- <canisters>]` (default 3,000)
//!
//! Reports create+install per second, the private bytes an idle canister holds (heap pages that
//! differ from its module's image plus stable pages), the process's resident memory (VmRSS)
//! before and after, and the canisters per GiB that follows from the RSS growth.

use std::time::Instant;

use candid::{encode_args, encode_one, Principal};
use ic_sim::IcSimBuilder;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(3_000, |a| a.parse().expect("canister count"));
    let wasm = wasm_build::wasm("sim_probe", &[]);
    let pic = IcSimBuilder::new().with_logs(false).build();
    // Compile the module and warm the allocator before the baseline.
    let first = pic.create_canister();
    pic.install_canister(first, wasm.clone(), encode_one(None::<u64>).unwrap(), None);
    let rss_before = rss_bytes();

    let start = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let id = pic.create_canister();
        pic.install_canister(id, wasm.clone(), encode_one(None::<u64>).unwrap(), None);
        ids.push(id);
    }
    let installed = start.elapsed();
    let start = Instant::now();
    for id in &ids {
        pic.update_call(*id, Principal::anonymous(), "inc", encode_args(()).unwrap())
            .expect("inc");
    }
    let updated = start.elapsed();
    let rss_after = rss_bytes();

    let private: usize = ids.iter().map(|id| pic.private_memory_bytes(*id)).sum();
    let heap: u64 = pic
        .canister_status(ids[0], None)
        .unwrap()
        .memory_metrics
        .wasm_memory_size
        .0
        .try_into()
        .unwrap();
    let per_rss = (rss_after.saturating_sub(rss_before)) / n as u64;
    println!(
        "{n} canisters: create+install {installed:.2?} = {:.0}/s; one update each {updated:.2?} = {:.0}/s",
        n as f64 / installed.as_secs_f64(),
        n as f64 / updated.as_secs_f64()
    );
    println!(
        "heap {heap} bytes per canister; private pages {} bytes per canister",
        private / n
    );
    println!(
        "VmRSS {:.1} MiB before, {:.1} MiB after ({} live instances): {per_rss} bytes per canister, {:.0} canisters per GiB",
        rss_before as f64 / (1 << 20) as f64,
        rss_after as f64 / (1 << 20) as f64,
        pic.live_instances(),
        (1u64 << 30) as f64 / per_rss.max(1) as f64
    );
}
