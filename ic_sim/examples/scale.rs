//! Scale: thousands of installed canisters in one simulator.
//!
//! `cargo run --release -p ic_sim --example scale [-- <canisters> [<batch>]]` (default 3,000
//! canisters, batch 1)
//!
//! With batch 1 every creation, installation and update is its own call (`create_canister`,
//! `install_canister`, `update_call`), each running the rounds it needs. With a larger batch,
//! that many ingress messages are submitted at once (creations, then installations, then
//! updates) and rounds run until all have answered, as a fleet's canisters would be created by
//! many owners at the same time. Installations go in batches of at most
//! [`INSTALL_BATCH`]: each message carries the whole module (about 1 MB), and larger batches
//! would measure the messages rather than the canisters.
//!
//! Reports create+install per second, one update per canister per second, the private bytes an
//! idle canister holds (heap pages that differ from its module's image plus stable pages), the
//! process's resident memory (VmRSS) before and after, its peak (VmHWM, the whole process), and
//! the canisters per GiB that follow from the RSS growth and from the peak.

use std::time::Instant;

use candid::{decode_one, encode_args, encode_one, Principal};
use ic_sim::management_canister::{
    CanisterIdRecord, CanisterInstallMode, InstallCodeArgs, ProvisionalCreateCanisterWithCyclesArgs,
};
use ic_sim::{IcSim, IcSimBuilder, RawMessageId};

/// A `/proc/self/status` memory field (`VmRSS`, `VmHWM`) in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn rss_bytes() -> u64 {
    status_bytes("VmRSS")
}

/// Installations submitted at once in batched mode.
const INSTALL_BATCH: usize = 25;

/// Submits one ingress message per argument and runs rounds until all have answered.
fn run_batch(
    pic: &IcSim,
    canister: impl Fn(usize) -> Principal,
    method: &str,
    args: Vec<Vec<u8>>,
) -> Vec<Vec<u8>> {
    let ids: Vec<RawMessageId> = args
        .into_iter()
        .enumerate()
        .map(|(i, arg)| {
            pic.submit_call(canister(i), Principal::anonymous(), method, arg)
                .expect("submitting")
        })
        .collect();
    let mut replies: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
    let mut pending = ids.len();
    while pending > 0 {
        pic.tick();
        for (i, id) in ids.iter().enumerate() {
            if replies[i].is_none() {
                if let Some(r) = pic.ingress_status(id) {
                    replies[i] = Some(r.unwrap_or_else(|e| panic!("{method}: {e}")));
                    pending -= 1;
                }
            }
        }
    }
    replies.into_iter().map(Option::unwrap).collect()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(3_000, |a| a.parse().expect("canister count"));
    let batch: usize = std::env::args()
        .nth(2)
        .map_or(1, |a| a.parse().expect("batch size"))
        .max(1);
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at the start: {}", load.trim());
    }
    let wasm = wasm_build::wasm("sim_probe", &[]);
    let pic = IcSimBuilder::new().with_logs(false).build();
    // Compile the module and warm the allocator before the baseline.
    let first = pic.create_canister();
    pic.install_canister(first, wasm.clone(), encode_one(None::<u64>).unwrap(), None);
    let rss_before = rss_bytes();

    let start = Instant::now();
    let mut ids = Vec::with_capacity(n);
    let mgmt = Principal::management_canister();
    while ids.len() < n {
        let k = batch.min(n - ids.len());
        if batch == 1 {
            let id = pic.create_canister();
            pic.install_canister(id, wasm.clone(), encode_one(None::<u64>).unwrap(), None);
            ids.push(id);
            continue;
        }
        let create = ProvisionalCreateCanisterWithCyclesArgs {
            amount: None,
            settings: None,
            specified_id: None,
            sender_canister_version: None,
        };
        let created: Vec<Principal> = run_batch(
            &pic,
            |_| mgmt,
            "provisional_create_canister_with_cycles",
            vec![encode_one(&create).unwrap(); k],
        )
        .iter()
        .map(|r| decode_one::<CanisterIdRecord>(r).unwrap().canister_id)
        .collect();
        for some in created.chunks(INSTALL_BATCH) {
            let installs = some
                .iter()
                .map(|id| {
                    encode_one(InstallCodeArgs {
                        mode: CanisterInstallMode::Install,
                        canister_id: *id,
                        wasm_module: wasm.clone(),
                        arg: encode_one(None::<u64>).unwrap(),
                        sender_canister_version: None,
                    })
                    .unwrap()
                })
                .collect();
            run_batch(&pic, |_| mgmt, "install_code", installs);
        }
        ids.extend(created);
    }
    let installed = start.elapsed();
    let start = Instant::now();
    for chunk in ids.chunks(batch) {
        if batch == 1 {
            pic.update_call(
                chunk[0],
                Principal::anonymous(),
                "inc",
                encode_args(()).unwrap(),
            )
            .expect("inc");
        } else {
            run_batch(
                &pic,
                |i| chunk[i],
                "inc",
                vec![encode_args(()).unwrap(); chunk.len()],
            );
        }
    }
    let updated = start.elapsed();
    let rss_after = rss_bytes();
    let peak = status_bytes("VmHWM");

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
        "{n} canisters, batch {batch}, {} rounds: create+install {installed:.2?} = {:.0}/s; one update each {updated:.2?} = {:.0}/s",
        pic.round(),
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
    let gib = (1u64 << 30) as f64;
    println!(
        "VmHWM {:.2} GiB peak for {n} canisters: {:.0} canisters per GiB of peak resident memory",
        peak as f64 / gib,
        n as f64 * gib / peak.max(1) as f64,
    );
    if n >= 100_000 {
        let met = peak <= 4 << 30;
        println!(
            "goal 100,000 canisters in at most 4 GiB resident: {}",
            if met { "met" } else { "not met" }
        );
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("load average at the end: {}", load.trim());
    }
}
