//! Scale: canisters running one module share its compiled form and keep only their own pages.

use candid::encode_one;
use ic_sim::update_candid;
use std::time::Instant;

#[test]
fn idle_canisters_hold_far_less_than_their_heap() {
    let wasm = wasm_build::wasm("sim_probe", &[]);
    let pic = ic_sim::IcSimBuilder::new().with_logs(false).build();
    let n = 300;
    let start = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..n {
        let id = pic.create_canister();
        pic.install_canister(id, wasm.clone(), encode_one(None::<u64>).unwrap(), None);
        ids.push(id);
    }
    let elapsed = start.elapsed();
    let (_,): (u64,) = update_candid(&pic, ids[0], "inc", ()).unwrap();
    let private: usize = ids.iter().map(|id| pic.private_memory_bytes(*id)).sum();
    let heap = pic
        .canister_status(ids[0], None)
        .unwrap()
        .memory_metrics
        .wasm_memory_size;
    let heap: u64 = heap.0.try_into().unwrap();
    let per = private / n;
    eprintln!(
        "{n} installs in {elapsed:?} ({:.0}/s); private memory {per} bytes per canister (heap {heap} bytes); {:.0} canisters per GiB",
        n as f64 / elapsed.as_secs_f64(),
        (1u64 << 30) as f64 / per.max(1) as f64
    );
    assert!(
        (per as u64) * 4 < heap,
        "an idle canister keeps only its touched pages: {per} vs {heap}"
    );
    assert_eq!(pic.canister_count(), n);
}
