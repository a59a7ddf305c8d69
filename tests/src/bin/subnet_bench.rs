//! Rollouts across subnets on ic_sim: the same fleet and the same plan on 1 subnet and on K.
//!
//! `cargo run --release -p fleet_tests --bin subnet_bench [-- CANISTERS [SUBNETS]]` (default
//! 10,000 canisters, 4 subnets) provisions v1 canisters through the manager, spread evenly over
//! the subnets (`set_store_module`, then `add_subnet` for each subnet but the manager's,
//! placement `Spread`), rolls v2 out with the same per-subnet limits in both runs, checks every
//! canister's module hash and subnet from outside, and prints the rounds, their ratio, the
//! manager's instructions per upgrade (once the cohort's records are written: `start_rollout`
//! and the ticks that write what it staged are printed apart) and the process's peak resident
//! memory, and after each
//! run what the simulator holds by category ([`ic_sim::MemoryReport`]). With `--only` it makes
//! the run on SUBNETS subnets alone (for fleets too large to run twice). With
//! `--rollout-max N` the fleet is upgraded by one rollout per N canisters (in id order, named
//! in the plan's `include`). Each rollout prints, once its first wave opens, what
//! `start_rollout` cost and how many rounds the ticks took to write the records it staged.
//!
//! The plan: canary 50, waves 10%, 50%, 100%, a snapshot and a health check per upgrade, no
//! bake, 50 pipelines in flight per subnet within 50 × SUBNETS overall. ic_sim's round admits
//! one snapshot per subnet (see `rollout_bench`), so one subnet takes at least one round per
//! canister, and K subnets, each with its own round, about 1/K of that, plus the extra rounds
//! of calls between the manager's subnet and the others (one each way).

use fleet_api::engine::SubnetLimits;
use fleet_api::manager::method::{AddSubnet, SetPlacement, SetStoreModule};
use fleet_api::manager::{AddSubnetArg, Placement};
use fleet_api::rollout::*;
use fleet_tests::rollout::*;
use fleet_tests::{sha256, store_wasm, user_wasm, Fleet};
use ic_sim::IcSimBuilder;
use serde_bytes::ByteBuf;
use std::time::Instant;

const PER_SUBNET_IN_FLIGHT: u32 = 50;
const CONCURRENT_CREATIONS: u32 = 200;
const STORE_CYCLES: u128 = 1_000_000_000_000;

struct Run {
    subnets: usize,
    rounds: u64,
    instr_per_upgrade: u64,
    /// `start_rollout`'s instructions: the one message whose cost grows with the fleet.
    start_instr: u64,
    per_subnet: Vec<u64>,
    provision_secs: f64,
    rollout_secs: f64,
    /// Read before the memory report, whose own tables would count otherwise.
    peak_rss: String,
    memory: ic_sim::MemoryReport,
}

fn plan(max_subnets: usize) -> RolloutPlanArg {
    let overall = PER_SUBNET_IN_FLIGHT * max_subnets as u32;
    let mut plan = one_wave_plan("2.0.0", overall);
    plan.canary = Some(Canary::Count(PER_SUBNET_IN_FLIGHT));
    plan.waves_percent = Some(vec![10, 50, 100]);
    plan.keep_snapshot_secs = Some(0);
    if let Some(l) = plan.limits.as_mut() {
        l.per_subnet = Some(SubnetLimits {
            max_in_flight: PER_SUBNET_IN_FLIGHT,
            starts_per_minute: l.starts_per_minute,
            burst: PER_SUBNET_IN_FLIGHT,
        });
    }
    plan
}

fn run(size: u32, subnets: usize, max_subnets: usize, rollout_max: Option<u32>) -> Run {
    let sim = (0..subnets).fold(IcSimBuilder::new(), |b, _| b.with_application_subnet());
    let fleet = Fleet::on(sim.build(), Some(fleet_tests::e2e::init_for(size)));
    fleet.sim.add_cycles(
        fleet.manager,
        size as u128 * 2 * USER_CYCLES + subnets as u128 * 2 * STORE_CYCLES,
    );
    fleet.publish_default("1.0.0", &user_wasm(false));
    let app = fleet.sim.get_app_subnets();
    let own = fleet
        .sim
        .get_subnet(fleet.manager)
        .expect("the manager's subnet");
    if subnets > 1 {
        fleet
            .ask::<SetStoreModule>(fleet.controller, (ByteBuf::from(store_wasm()),))
            .into_result()
            .expect("set_store_module");
    }
    for subnet in app.iter().filter(|s| **s != own) {
        let arg = AddSubnetArg {
            subnet: *subnet,
            store_cycles: STORE_CYCLES,
        };
        fleet
            .ask::<AddSubnet>(fleet.controller, (arg,))
            .into_result()
            .expect("add_subnet");
    }
    fleet
        .ask::<SetPlacement>(fleet.controller, (Placement::Spread,))
        .into_result()
        .expect("set_placement");
    let t0 = Instant::now();
    let mut canisters = Vec::new();
    let mut first = 0;
    while first < size {
        let n = (size - first).min(CONCURRENT_CREATIONS);
        canisters.extend(fleet.provision(first, n).into_iter().map(|c| c.canister_id));
        first += n;
    }
    let provision_secs = t0.elapsed().as_secs_f64();
    fleet.publish(fleet.controller, "2.0.0", &user_wasm(true));

    let t1 = Instant::now();
    let before = fleet.metrics();
    // One rollout, or (`--rollout-max N`) one per N canisters in id order, each naming its
    // canisters in `include`.
    let mut parts: Vec<Vec<candid::Principal>> = match rollout_max {
        Some(n) if (n as usize) < canisters.len() => {
            let mut ids = canisters.clone();
            ids.sort();
            ids.chunks(n as usize).map(<[_]>::to_vec).collect()
        }
        _ => vec![Vec::new()],
    };
    let (mut rounds, mut instr, mut start_instr, mut done) = (0, 0, 0, 0);
    for part in parts.drain(..) {
        let mut p = plan(max_subnets);
        if !part.is_empty() {
            p.include = Some(part);
        }
        let rolled = fleet.roll(p);
        eprintln!(
            "{subnets} subnet(s): rollout {} of {} canisters, start_rollout took {} instructions",
            rolled.id, rolled.status.counts.done, rolled.start_instructions
        );
        rounds += rolled.rounds;
        instr += rolled.instructions;
        start_instr = start_instr.max(rolled.start_instructions);
        done += rolled.status.counts.done;
    }
    let rollout_secs = t1.elapsed().as_secs_f64();
    assert_eq!(done, size as u64);
    let upgraded = fleet.metrics().counters.upgraded - before.counters.upgraded;

    // From outside: every canister runs v2, and the fleet is spread evenly.
    let v2 = sha256(&user_wasm(true));
    let mut per_subnet = vec![0u64; app.len()];
    for id in &canisters {
        assert_eq!(
            fleet.sim.module_hash(*id).map(|h| h.to_vec()),
            Some(v2.clone()),
            "{id} runs v2"
        );
        let on = fleet.sim.get_subnet(*id).expect("a canister's subnet");
        per_subnet[app.iter().position(|s| *s == on).expect("an app subnet")] += 1;
    }
    let (lo, hi) = (per_subnet.iter().min(), per_subnet.iter().max());
    assert!(
        hi.zip(lo).is_some_and(|(h, l)| h - l <= 1),
        "{per_subnet:?}"
    );
    Run {
        subnets,
        rounds,
        instr_per_upgrade: instr / upgraded.max(1),
        start_instr,
        per_subnet,
        provision_secs,
        rollout_secs,
        peak_rss: peak_rss(),
        memory: fleet.sim.memory_report(),
    }
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_default()
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    if std::env::var_os("BENCH_LOGS").is_none() {
        std::env::set_var("IC_SIM_QUIET", "1");
    }
    let only = std::env::args().any(|a| a == "--only");
    let all: Vec<String> = std::env::args().skip(1).collect();
    let rollout_max: Option<u32> = all.iter().position(|a| a == "--rollout-max").map(|i| {
        all.get(i + 1)
            .and_then(|n| n.parse().ok())
            .expect("--rollout-max N")
    });
    let mut args = all
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            *a != "--only" && *a != "--rollout-max" && (*i == 0 || all[i - 1] != "--rollout-max")
        })
        .map(|(_, a)| a.clone());
    let size: u32 = args
        .next()
        .map_or(10_000, |a| a.parse().expect("a fleet size"));
    let subnets: usize = args
        .next()
        .map_or(4, |a| a.parse().expect("a number of subnets"));
    println!(
        "{size} canisters; plan: canary {PER_SUBNET_IN_FLIGHT}, 10%, 50%, 100%, snapshot and health \
         check, no bake, {PER_SUBNET_IN_FLIGHT} in flight per subnet within {} overall; 1 s per round",
        PER_SUBNET_IN_FLIGHT * subnets as u32
    );
    println!("| subnets | rounds | manager instr/upgrade | canisters per subnet | wall (provision + rollout) | load | peak RSS |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut runs = Vec::new();
    let ks = if only {
        vec![subnets]
    } else {
        vec![1, subnets]
    };
    let mut reports = Vec::new();
    for k in ks {
        let r = run(size, k, subnets, rollout_max);
        println!(
            "| {} | {} | {:.2}M | {:?} | {:.0} s + {:.0} s | {} | {} |",
            r.subnets,
            r.rounds,
            r.instr_per_upgrade as f64 / 1e6,
            r.per_subnet,
            r.provision_secs,
            r.rollout_secs,
            load(),
            r.peak_rss
        );
        reports.push(format!(
            "on {} subnets: start_rollout {:.2}B instructions at most (limit 40B per message); {}",
            r.subnets,
            r.start_instr as f64 / 1e9,
            r.memory
        ));
        runs.push(r);
    }
    for report in reports {
        println!("{report}");
    }
    let [one, many] = &runs[..] else {
        return;
    };
    println!(
        "rounds on {} subnets / on 1: {:.3} (target at most 0.3); instructions per upgrade {:+.1}%",
        many.subnets,
        many.rounds as f64 / one.rounds.max(1) as f64,
        (many.instr_per_upgrade as f64 / one.instr_per_upgrade.max(1) as f64 - 1.0) * 100.0
    );
}
