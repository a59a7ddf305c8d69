//! Rollout benchmark on ic_sim: a v1 → v2 rollout over fleets of 1,000 and 10,000 canisters.
//!
//! `cargo run --release -p fleet_tests --bin rollout_bench [-- SIZES...]` prints, per size:
//! rounds to finish against the lower bound, the in-flight limit's utilisation during waves,
//! manager instructions per upgraded canister and per driver tick, and bytes sent per upgrade.
//!
//! Lower bound: each wave needs at least `ceil(wave size / in-flight limit)` pipeline
//! generations, each as long as the shortest pipeline observed (`depth` rounds), so
//! `Σ_waves depth × ceil(size / limit)`. Utilisation: over every round of a wave, pipelines in
//! flight divided by what the limit allows while that many canisters of the wave remain.

use fleet_api::rollout::*;
use fleet_tests::rollout::*;
use fleet_tests::user_wasm;
use std::time::Instant;

const IN_FLIGHT: u32 = 50;

struct Figures {
    size: u32,
    rounds: u64,
    lower_bound: u64,
    depth: u64,
    utilisation: f64,
    instr_per_canister: u64,
    tick_mean: u64,
    tick_max: u64,
    ticks: u64,
    bytes_per_upgrade: u64,
    provision_secs: f64,
    rollout_secs: f64,
}

fn run(size: u32) -> Figures {
    let t0 = Instant::now();
    let fleet = fleet_for(size);
    fleet.publish_default("1.0.0", &user_wasm(false));
    // Provision in batches, as owners would arrive.
    let mut first = 0;
    while first < size {
        let n = (size - first).min(500);
        fleet.provision(first, n);
        first += n;
    }
    assert_eq!(fleet.user_canister_count(), size as u64);
    fleet.publish(fleet.controller, "2.0.0", &user_wasm(true));
    let provision_secs = t0.elapsed().as_secs_f64();

    let mut plan = RolloutPlanArg::to("2.0.0");
    plan.canary = Some(Canary::Count(IN_FLIGHT));
    plan.waves_percent = Some(vec![10, 50, 100]);
    plan.bake_secs = Some(0);
    plan.limits = Some(Limits {
        max_in_flight: IN_FLIGHT,
        starts_per_minute: 1_000_000,
        burst: IN_FLIGHT,
        max_starts_per_tick: IN_FLIGHT,
    });
    // Keep snapshots: deleting them would add calls after the rollout ends.
    plan.keep_snapshot_secs = Some(0);
    let t1 = Instant::now();
    let started = fleet.start_rollout(plan).expect("start_rollout");
    let before = fleet.metrics();
    let instr0 = fleet.sim.instructions_total(fleet.manager);
    // The status polled every round runs on the manager too: its cost is left out.
    let mut polls = 0;
    let mut rounds = 0;
    let status = loop {
        let polled = fleet.sim.instructions_total(fleet.manager);
        let status = fleet.rollout_status();
        polls += fleet.sim.instructions_total(fleet.manager) - polled;
        if status.phase.is_finished() {
            break status;
        }
        fleet.step();
        rounds += 1;
    };
    let instr = fleet.sim.instructions_total(fleet.manager) - instr0 - polls;
    let rollout_secs = t1.elapsed().as_secs_f64();
    assert_eq!(status.phase, Phase::Completed, "{status:?}");
    assert_eq!(status.counts.done, size as u64);
    let after = fleet.metrics();
    let upgraded = after.counters.upgraded - before.counters.upgraded;
    let bytes = after.counters.bytes_sent - before.counters.bytes_sent;

    let log = fleet.pipeline_log(started.id);
    let figures = replay(&log);
    assert!(figures.max_in_flight <= IN_FLIGHT as u64);
    let second = 1_000_000_000u64;
    let depth = figures
        .spans
        .iter()
        .map(|(s, e)| (e - s) / second)
        .min()
        .unwrap_or(1)
        .max(1);
    let lower_bound: u64 = status
        .waves
        .iter()
        .map(|w| depth * w.size.div_ceil(IN_FLIGHT as u64))
        .sum();

    // Utilisation: per wave and round, pipelines in flight over min(limit, remaining).
    let mut busy = 0u64;
    let mut cap = 0u64;
    for w in &status.waves {
        let (open, done) = (w.opened_at.unwrap(), w.completed_at.unwrap());
        let spans: Vec<(u64, u64)> = figures
            .spans
            .iter()
            .copied()
            .filter(|(s, _)| *s >= open && *s <= done)
            .collect();
        let mut t = open;
        while t < done {
            let in_flight = spans.iter().filter(|(s, e)| *s <= t && t < *e).count() as u64;
            let finished = spans.iter().filter(|(_, e)| *e <= t).count() as u64;
            busy += in_flight;
            cap += (IN_FLIGHT as u64).min(w.size - finished);
            t += second;
        }
    }
    Figures {
        size,
        rounds,
        lower_bound,
        depth,
        utilisation: busy as f64 / cap.max(1) as f64,
        instr_per_canister: instr / upgraded.max(1),
        tick_mean: after.tick_instructions_mean,
        tick_max: after.tick_instructions_max,
        ticks: after.ticks_measured,
        bytes_per_upgrade: bytes / upgraded.max(1),
        provision_secs,
        rollout_secs,
    }
}

fn main() {
    // Canister logs stay quiet unless asked for.
    if std::env::var_os("BENCH_LOGS").is_none() {
        std::env::set_var("IC_SIM_QUIET", "1");
    }
    let sizes: Vec<u32> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("fleet sizes are numbers"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000]
    } else {
        sizes
    };
    println!(
        "in-flight limit {IN_FLIGHT}; waves canary {IN_FLIGHT}, 10%, 50%, 100%; no bake; 1 s per round"
    );
    println!(
        "| canisters | rounds | lower bound | pipeline depth | utilisation | instr/canister | instr/tick mean (max, ticks) | bytes/upgrade | wall (provision + rollout) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut results = Vec::new();
    for size in sizes {
        let f = run(size);
        println!(
            "| {} | {} | {} | {} | {:.1}% | {} | {} ({}, {}) | {} | {:.0} s + {:.0} s |",
            f.size,
            f.rounds,
            f.lower_bound,
            f.depth,
            f.utilisation * 100.0,
            f.instr_per_canister,
            f.tick_mean,
            f.tick_max,
            f.ticks,
            f.bytes_per_upgrade,
            f.provision_secs,
            f.rollout_secs
        );
        results.push(f);
    }
    if let (Some(small), Some(large)) = (results.first(), results.last()) {
        if large.size > small.size {
            println!(
                "per-tick instructions at {} vs {}: {:+.1}%",
                large.size,
                small.size,
                (large.tick_mean as f64 / small.tick_mean.max(1) as f64 - 1.0) * 100.0
            );
        }
    }
}
