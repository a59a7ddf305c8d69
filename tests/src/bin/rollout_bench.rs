//! Rollout benchmark on ic_sim: a v1 → v2 rollout over fleets of 1,000 and 10,000 canisters,
//! beside an OpenChat-like baseline on a fleet of the same size.
//!
//! `cargo run --release -p fleet_tests --bin rollout_bench [-- SIZES...]` prints, per size:
//! rounds to finish against the lower bound, the in-flight limit's utilisation during waves,
//! manager instructions per upgraded canister and per driver tick, and bytes sent per upgrade;
//! then the same figures for the baseline.
//!
//! *Ours*: canary of 50, waves of 10%, 50% and 100%, 50 upgrades in flight, a snapshot before
//! each upgrade and a health check after it. *Baseline*: the manager itself with the plan
//! closest to OpenChat's upgrade loop: one wave, 10 upgrades in flight, no snapshot; each
//! upgrade stops the canister, installs the module from the manager's chunk store
//! (`install_chunked_code`) and starts it. The plan cannot drop the manager's `canister_status`
//! precheck nor its `fleet_health` check after the start, so the baseline makes two calls more
//! per upgrade than OpenChat does (which calls `install_code` with the module itself).
//!
//! The lower bound is [`SubnetModel::wave_bound`] summed over the waves: the management
//! budget of ic_sim's round bounds the snapshots and installations a round can run, the
//! pipeline depth and the in-flight limit bound the rest. Utilisation: over every round of a
//! wave, pipelines in flight divided by what the limit allows while that many canisters of the
//! wave remain.

use candid::Encode;
use fleet_api::rollout::*;
use fleet_api::user::{UserCanisterArg, UserUpgradeArg};
use fleet_tests::rollout::*;
use fleet_tests::{sha256, user_wasm, Fleet};
use ic_sim::SimLimits;
use std::time::Instant;

/// Upgrades in flight in our rollout.
const IN_FLIGHT: u32 = 50;
/// Upgrades in flight in the baseline (OpenChat upgrades 10 canisters at a time).
const BASELINE_IN_FLIGHT: u32 = 10;
const SECOND: u64 = 1_000_000_000;

/// What the subnet model of ic_sim lets a round do with management messages.
///
/// ic_sim gives management messages `round_instructions / subnet_messages_fraction`
/// instructions per round (7B / 16 = 437.5M by default). Installations and snapshots count
/// against it, and such a message starts only while the budget is positive; the last one may
/// overshoot it. Hence per round:
///
/// - at most `ceil(budget / snapshot)` snapshots, where `snapshot` is the baseline
///   `snapshot_instructions` (2B; the snapshot's bytes come on top, so this undercounts): one,
///   as a snapshot alone spends the budget;
/// - at most `ceil(budget / install)` installations, `install` being the instructions one
///   installation of the release executes (measured);
/// - when a snapshot spends the budget on its own, it is the round's last counted message, so
///   the installations before it and the snapshot together are at most `ceil(budget /
///   install)`: snapshots and installations share those slots.
///
/// A wave of `n` canisters therefore needs at least `management_rounds(n)` rounds in which its
/// snapshots and installations run. `depth` is the rounds of one pipeline alone on the subnet
/// ([`lone_depth`]): no pipeline of a busier subnet is faster before its snapshot, or after
/// it, than that one. So the wave's first snapshot comes no earlier than the lone pipeline's,
/// and its last canister finishes no earlier than the lone pipeline's remaining steps after
/// the wave's last snapshot: `depth - 1` rounds besides the `management_rounds(n)` (without
/// snapshots, the same holds of the installations). Independently, at most `in_flight`
/// pipelines of at least `depth` rounds run at once. So a wave takes at least
///
/// `max(depth × ceil(n / in_flight), management_rounds(n) + depth − 1)`
///
/// rounds, and a rollout (waves one after another, no bake) the sum over its waves.
#[derive(Clone, Copy, Debug)]
struct SubnetModel {
    /// Management instructions per round.
    budget: u64,
    /// Instructions a snapshot counts at least.
    snapshot: u64,
    /// Instructions one installation counts.
    install: u64,
}

impl SubnetModel {
    fn new(limits: &SimLimits, install: u64) -> Self {
        SubnetModel {
            budget: limits.round_instructions / limits.subnet_messages_fraction,
            snapshot: limits.snapshot_instructions,
            install: install.max(1),
        }
    }

    /// Messages costing `cost` each that can start in one round.
    fn per_round(&self, cost: u64) -> u64 {
        self.budget.div_ceil(cost.max(1)).max(1)
    }

    /// Rounds in which `n` installations, each after a snapshot if `snapshots`, can run.
    fn management_rounds(&self, n: u64, snapshots: bool) -> u64 {
        let installs = self.per_round(self.install);
        let mut rounds = n.div_ceil(installs);
        if snapshots {
            rounds = rounds.max(n.div_ceil(self.per_round(self.snapshot)));
            if self.snapshot >= self.budget {
                rounds = rounds.max((2 * n).div_ceil(installs));
            }
        }
        rounds
    }

    /// Lower bound on the rounds of a wave of `n` canisters (see the type's documentation).
    fn wave_bound(&self, n: u64, depth: u64, in_flight: u64, snapshots: bool) -> u64 {
        if n == 0 {
            return 0;
        }
        let pipelines = depth * n.div_ceil(in_flight);
        let subnet = self.management_rounds(n, snapshots) + depth - 1;
        pipelines.max(subnet)
    }
}

struct Figures {
    size: u32,
    in_flight: u32,
    rounds: u64,
    /// Σ over waves of depth × ceil(size / in-flight): the in-flight limit alone.
    pipeline_bound: u64,
    lower_bound: u64,
    /// Rounds of one pipeline alone on the subnet.
    depth: u64,
    /// The shortest pipeline of the rollout.
    shortest: u64,
    install_instructions: u64,
    utilisation: f64,
    instr_per_canister: u64,
    tick_mean: u64,
    tick_max: u64,
    ticks: u64,
    bytes_per_upgrade: u64,
    provision_secs: f64,
    rollout_secs: f64,
}

/// A manager with `size` v1 canisters, provisioned in batches as owners would arrive (at most
/// [`CONCURRENT_CREATIONS`] at once, what the manager takes before it answers `Busy`), and v2
/// published; the first canister's id.
const CONCURRENT_CREATIONS: u32 = 200;

fn provisioned(size: u32) -> (Fleet, candid::Principal) {
    let fleet = fleet_for(size);
    fleet.publish_default("1.0.0", &user_wasm(false));
    let mut first = 0;
    let mut canister = None;
    while first < size {
        let n = (size - first).min(CONCURRENT_CREATIONS);
        let made = fleet.provision(first, n);
        canister = canister.or(made.first().map(|c| c.canister_id));
        first += n;
    }
    assert_eq!(fleet.user_canister_count(), size as u64);
    fleet.publish(fleet.controller, "2.0.0", &user_wasm(true));
    (fleet, canister.expect("a canister"))
}

/// Instructions one v2 installation executes on `canister` (owner 0's): its recovery
/// controller upgrades it once more, with the argument the manager passes.
fn install_instructions(fleet: &Fleet, canister: candid::Principal) -> u64 {
    let wasm = user_wasm(true);
    let arg = Encode!(&UserCanisterArg::Upgrade(UserUpgradeArg {
        release_sha256: sha256(&wasm),
    }))
    .expect("encoding the upgrade argument");
    let before = fleet.sim.instructions_total(canister);
    fleet
        .sim
        .upgrade_canister(canister, wasm, arg, Some(recovery(0)))
        .expect("upgrading again");
    fleet.sim.instructions_total(canister) - before
}

/// Starts `plan` and runs rounds until it finishes; returns the rollout's id, its final
/// status, the rounds run and the manager's instructions meanwhile, the status polls left out.
fn roll(fleet: &Fleet, plan: RolloutPlanArg) -> (u64, RolloutStatus, u64, u64) {
    let r = fleet.roll(plan);
    (r.id, r.status, r.rounds, r.instructions)
}

/// Rounds of one pipeline alone on the subnet: a rollout of `plan` to a fleet of one canister.
/// No step of it waits for a busy subnet, so every pipeline of a larger rollout spends at least
/// as many rounds before its snapshot (or installation), and after it.
fn lone_depth(plan: RolloutPlanArg) -> u64 {
    let (fleet, _) = provisioned(1);
    let (id, _, _, _) = roll(&fleet, plan);
    let spans = replay(&fleet.pipeline_log(id)).spans;
    assert_eq!(spans.len(), 1);
    (spans[0].1 - spans[0].0) / SECOND
}

fn run(size: u32, plan: RolloutPlanArg, in_flight: u32) -> Figures {
    let snapshots = plan.take_snapshot != Some(false);
    let depth = lone_depth(plan.clone());
    let t0 = Instant::now();
    let (fleet, first) = provisioned(size);
    let provision_secs = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let before = fleet.metrics();
    let (id, status, rounds, instr) = roll(&fleet, plan);
    let rollout_secs = t1.elapsed().as_secs_f64();
    assert_eq!(status.counts.done, size as u64);
    let after = fleet.metrics();
    let upgraded = after.counters.upgraded - before.counters.upgraded;
    let bytes = after.counters.bytes_sent - before.counters.bytes_sent;

    let log = fleet.pipeline_log(id);
    let figures = replay(&log);
    assert!(figures.max_in_flight <= in_flight as u64);
    let shortest = figures
        .spans
        .iter()
        .map(|(s, e)| (e - s) / SECOND)
        .min()
        .unwrap_or(0);
    let install = install_instructions(&fleet, first);
    // The fleet's simulator runs with the default limits (`IcSim::new`).
    let model = SubnetModel::new(&SimLimits::default(), install);
    let limit = in_flight as u64;
    let pipeline_bound: u64 = status
        .waves
        .iter()
        .map(|w| depth * w.size.div_ceil(limit))
        .sum();
    let lower_bound: u64 = status
        .waves
        .iter()
        .map(|w| model.wave_bound(w.size, depth, limit, snapshots))
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
            cap += limit.min(w.size - finished);
            t += SECOND;
        }
    }
    Figures {
        size,
        in_flight,
        rounds,
        pipeline_bound,
        lower_bound,
        depth,
        shortest,
        install_instructions: install,
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

/// Our plan: canary, three waves, snapshots kept (deleting them would add calls after the
/// rollout ends).
fn ours() -> RolloutPlanArg {
    let mut plan = one_wave_plan("2.0.0", IN_FLIGHT);
    plan.canary = Some(Canary::Count(IN_FLIGHT));
    plan.waves_percent = Some(vec![10, 50, 100]);
    plan.keep_snapshot_secs = Some(0);
    plan
}

/// The baseline's plan: one wave, 10 in flight, no snapshot.
fn baseline() -> RolloutPlanArg {
    let mut plan = one_wave_plan("2.0.0", BASELINE_IN_FLIGHT);
    plan.take_snapshot = Some(false);
    plan
}

fn millions(n: u64) -> String {
    format!("{:.2}M", n as f64 / 1e6)
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
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
    let limits = SimLimits::default();
    println!(
        "ours: in-flight limit {IN_FLIGHT}; waves canary {IN_FLIGHT}, 10%, 50%, 100%; snapshot, health check; \
         baseline: one wave, in-flight limit {BASELINE_IN_FLIGHT}, no snapshot; no bake; 1 s per round"
    );
    println!(
        "subnet model: management budget {} instructions per round (round {} / {}), snapshot ≥ {}",
        limits.round_instructions / limits.subnet_messages_fraction,
        limits.round_instructions,
        limits.subnet_messages_fraction,
        limits.snapshot_instructions
    );
    println!(
        "| canisters | plan | rounds | lower bound (in-flight bound) | depth alone (shortest in rollout) | install instr | utilisation | instr/upgrade | instr/tick mean (max, ticks) | bytes/upgrade | wall (provision + rollout) | load |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut results = Vec::new();
    for size in sizes {
        for (name, plan, in_flight) in [
            ("ours", ours(), IN_FLIGHT),
            ("baseline", baseline(), BASELINE_IN_FLIGHT),
        ] {
            let f = run(size, plan, in_flight);
            println!(
                "| {} | {name} ({} in flight) | {} | {} ({}) | {} ({}) | {} | {:.1}% | {} | {} ({}, {}) | {} | {:.0} s + {:.0} s | {} |",
                f.size,
                f.in_flight,
                f.rounds,
                f.lower_bound,
                f.pipeline_bound,
                f.depth,
                f.shortest,
                millions(f.install_instructions),
                f.utilisation * 100.0,
                millions(f.instr_per_canister),
                f.tick_mean,
                f.tick_max,
                f.ticks,
                f.bytes_per_upgrade,
                f.provision_secs,
                f.rollout_secs,
                load()
            );
            if f.rounds < f.lower_bound {
                println!(
                    "the rollout beat its lower bound ({} < {}): the subnet model no longer describes ic_sim",
                    f.rounds, f.lower_bound
                );
            }
            if name == "ours" {
                results.push(f);
            }
        }
    }
    if let (Some(small), Some(large)) = (results.first(), results.last()) {
        if large.size > small.size {
            println!(
                "ours, per-tick instructions at {} vs {}: {:+.1}%",
                large.size,
                small.size,
                (large.tick_mean as f64 / small.tick_mean.max(1) as f64 - 1.0) * 100.0
            );
        }
    }
}
