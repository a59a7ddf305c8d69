//! What a rollout will cost before it starts (`fleet rollout plan`, `rollout start --dry-run`):
//! the cohort per wave as the manager would start it (`plan_rollout`), the time the limits
//! allow, and the cycles it will burn, counted from the IC's published costs ([`IC_COSTS`], the
//! one table of prices) and this project's measured figures ([`Assumed`]).
//!
//! Each canister of the cohort costs the manager its pipeline's calls (precheck
//! `canister_status`, stop, snapshot, `install_chunked_code`, start, `fleet_health`), the
//! execution of each reply and its own instructions, and itself the snapshot, the install's
//! execution and the health check's. The manager's timer ticks every second while the rollout
//! has work, and sleeps through bake times. Top-ups move cycles from the manager to user canisters: they are counted apart,
//! as moved, not burned.

use candid::Principal;
use clap::Args;
use fleet_api::rollout::{RolloutPlanArg, RolloutPreview, WaveProgress};
use serde::Serialize;

/// The IC's cycles prices on a 13-node application subnet, and the replica's instruction counts
/// for snapshots: the only prices the estimate uses.
///
/// IC developer docs, "Cycles cost formulas" and "Fee breakdown"
/// (<https://internetcomputer.org/docs/building-apps/essentials/gas-cost>): an update message's
/// execution costs 5M plus 0.4 cycles per instruction; an inter-canister call 260K plus 1K per
/// byte of method name and argument, paid by the caller; an ingress message 1.2M plus 2K per
/// byte, paid by the receiver; storage 127K per GiB and second. Snapshots: dfinity/ic
/// `rs/config/src/subnet_config.rs`, `canister_snapshot_baseline_instructions` (2B), counted
/// with one instruction per byte of the snapshot and charged to the snapshot's canister as an
/// execution, for taking and for loading one.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct CostTable {
    pub update_message: u128,
    pub ten_instructions: u128,
    pub xnet_call: u128,
    pub xnet_byte: u128,
    pub ingress_message: u128,
    pub ingress_byte: u128,
    pub gib_second: u128,
    pub snapshot_baseline_instructions: u64,
}

pub const IC_COSTS: CostTable = CostTable {
    update_message: 5_000_000,
    ten_instructions: 4,
    xnet_call: 260_000,
    xnet_byte: 1_000,
    ingress_message: 1_200_000,
    ingress_byte: 2_000,
    gib_second: 127_000,
    snapshot_baseline_instructions: 2_000_000_000,
};

impl CostTable {
    /// A message execution of `instructions`.
    pub fn execution(&self, instructions: u64) -> u128 {
        self.update_message + self.instructions(instructions)
    }

    /// `instructions` executed, without the message's base fee.
    pub fn instructions(&self, instructions: u64) -> u128 {
        u128::from(instructions) * self.ten_instructions / 10
    }

    /// An inter-canister call carrying `bytes` of method name and argument.
    pub fn call(&self, bytes: u64) -> u128 {
        self.xnet_call + self.xnet_byte * u128::from(bytes)
    }

    /// An ingress message of `bytes` of method name and argument.
    pub fn ingress(&self, bytes: u64) -> u128 {
        self.ingress_message + self.ingress_byte * u128::from(bytes)
    }

    /// Keeping `bytes` for `secs` seconds.
    pub fn storage(&self, bytes: u64, secs: u64) -> u128 {
        u128::from(bytes) * u128::from(secs) * self.gib_second / (1 << 30)
    }

    /// Taking (or loading) a snapshot of `bytes`, charged to its canister.
    pub fn snapshot(&self, bytes: u64) -> u128 {
        self.execution(self.snapshot_baseline_instructions.saturating_add(bytes))
    }
}

/// What only a rehearsal or a measurement knows, with this project's figures as defaults.
#[derive(Args, Debug, Clone, Serialize)]
pub struct Assumed {
    /// Instructions of one canister's upgrade (`pre_upgrade` and `post_upgrade`), charged to
    /// the canister; a rehearsal of your release knows its figure (the default is about the
    /// bundled user canister's, v1 to v2 with a few notes).
    #[arg(long, value_name = "N", default_value_t = 4_000_000)]
    pub upgrade_instructions: u64,
    /// Bytes of one canister's snapshot: heap, stable memory, module and chunk store (each
    /// memory of ic-stable-structures' memory manager takes 8 MiB at least; the default is
    /// about the bundled user canister's, 27.8 MB).
    #[arg(long, value_name = "BYTES", default_value_t = 27_000_000)]
    pub snapshot_bytes: u64,
    /// Instructions of one `fleet_health` check on a user canister.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub health_instructions: u64,
}

/// The manager's own instructions per upgraded canister, all its callbacks included: 1.93M to
/// 2.52M on ic_sim's meter (README, Benchmarks: `manager_cost` and the rollout benchmark).
const MANAGER_INSTRUCTIONS_PER_UPGRADE: u64 = 2_500_000;
/// Instructions of a timer tick of the manager's driver (the rollout benchmark's mean is 28k to
/// 42k; a tick opening a wave of 100 costs 33M).
const TICK_INSTRUCTIONS: u64 = 100_000;
/// ic-cdk-timers runs a due timer in a call of the canister to itself
/// (`<ic-cdk internal> timer_executor`, `ic-cdk-timers` 1.0 `global_timer.rs`), so each tick is
/// three executions (the global timer, the executor, its reply) and one call of this many
/// bytes (the method name and a timer id).
const TICK_CALL_BYTES: u64 = 48;
/// Method names and arguments one pipeline sends (the rollout benchmark: 490 bytes with a
/// snapshot, 434 without; `install_chunked_code` carries chunk hashes, not the module).
const PIPELINE_BYTES: [u64; 2] = [434, 490];
/// A `deposit_cycles` call of a top-up: its method name and argument.
const TOP_UP_BYTES: u64 = 60;
/// Subnet rounds one pipeline takes (about a second each on mainnet): 10 with a snapshot, 8
/// without (ic_sim's round model, README: Benchmarks).
const PIPELINE_SECS: [u64; 2] = [8, 10];

/// One item of the cost.
#[derive(Debug, Serialize)]
pub struct Line {
    pub what: &'static str,
    /// `manager` or `user canisters`.
    pub payer: &'static str,
    pub count: u64,
    pub cycles: u128,
}

/// The manager's cycles against what the rollout needs of them.
#[derive(Debug, Serialize)]
pub struct Funds {
    pub cycles_balance: u128,
    pub liquid_cycles: u128,
    pub pipeline_cycles_reserve: u128,
    /// Held liquid while pipelines run: the reserve times the pipelines in flight at once.
    pub reserve_held: u128,
    /// The manager's burn, the top-ups at most, and the reserve held.
    pub needed: u128,
    pub covered: bool,
}

/// A stage of the rollout and its canisters.
#[derive(Debug, Serialize)]
pub struct Stage {
    pub stage: String,
    pub size: u64,
}

#[derive(Debug, Serialize)]
pub struct Estimate {
    pub target_version: String,
    pub rollout_id: u64,
    pub canisters: u64,
    pub waves: Vec<Stage>,
    pub take_snapshot: bool,
    pub eta_secs: u64,
    pub eta_assumes: String,
    pub lines: Vec<Line>,
    pub burned_by_manager: u128,
    pub burned_by_user_canisters: u128,
    pub burned: u128,
    /// Top-ups: at most this many canisters, at most these cycles moved to them (not burned),
    /// and their calls (burned by the manager, not in `burned`).
    pub top_ups_at_most: u64,
    pub moved_at_most: u128,
    pub top_up_calls_at_most: u128,
    /// Storage of the snapshots while kept (charged by the IC over time, not in `burned`).
    pub snapshot_storage: u128,
    pub funds: Funds,
    pub assumed: Assumed,
    pub costs: CostTable,
}

/// How long the rollout takes when nothing fails: seconds of work, seconds of bake time, and
/// the assumption behind them. Per wave, its canisters at the lowest of the rates the limits
/// allow (the start rate, the in-flight limit over a pipeline's duration, one snapshot per
/// subnet round), plus one pipeline's duration; and the bake time between waves.
fn eta(p: &RolloutPreview) -> (u64, u64, String) {
    let secs = PIPELINE_SECS[usize::from(p.take_snapshot)];
    let l = &p.limits;
    let mut per_sec = [
        f64::from(l.starts_per_minute) / 60.0,
        f64::from(l.max_in_flight) / secs as f64,
    ]
    .into_iter()
    .fold(f64::INFINITY, f64::min);
    if p.take_snapshot {
        per_sec = per_sec.min(1.0);
    }
    let waves = &p.rollout.waves;
    let run: f64 = waves
        .iter()
        .map(|w| w.size as f64 / per_sec + secs as f64)
        .sum();
    let bakes = p.bake_secs * (waves.len() as u64).saturating_sub(1);
    let assumes = format!(
        "one subnet round a second, a pipeline takes {secs} rounds, {per_sec:.2} starts a \
         second (the lowest of {} a minute, {} in flight over {secs} s{}), {} s of bake \
         between waves; no failures, retries or holds",
        l.starts_per_minute,
        l.max_in_flight,
        if p.take_snapshot {
            ", one snapshot a round"
        } else {
            ""
        },
        p.bake_secs
    );
    (run.ceil() as u64, bakes, assumes)
}

/// One timer tick of the manager's driver.
fn tick(c: &CostTable) -> u128 {
    3 * c.update_message + c.instructions(TICK_INSTRUCTIONS) + c.call(TICK_CALL_BYTES)
}

/// The estimate of `plan` (as sent) from the manager's preview of it.
pub fn estimate(plan: &RolloutPlanArg, p: &RolloutPreview, assumed: &Assumed) -> Estimate {
    let c = &IC_COSTS;
    let n = p.rollout.canisters;
    let snap = p.take_snapshot;
    let calls = 5 + u64::from(snap);
    let (work_secs, bake_secs, eta_assumes) = eta(p);
    let eta_secs = work_secs + bake_secs;
    // The driver sleeps through bake times and wakes once at each one's end.
    let bakes = if bake_secs > 0 {
        (p.rollout.waves.len() as u64).saturating_sub(1)
    } else {
        0
    };
    let run_ticks = work_secs + bakes;
    let keep_secs = plan.keep_snapshot_secs.unwrap_or(7 * 24 * 3600);
    let arg_bytes = candid::encode_one(plan).map_or(0, |b| b.len() as u64);
    let mut lines = vec![
        Line {
            what: "start_rollout ingress message",
            payer: "manager",
            count: 1,
            cycles: c.ingress("start_rollout".len() as u64 + arg_bytes),
        },
        Line {
            what: "pipeline calls (status, stop, snapshot, install, start, health)",
            payer: "manager",
            count: n * calls,
            cycles: u128::from(n)
                * (u128::from(calls) * c.xnet_call
                    + c.xnet_byte * u128::from(PIPELINE_BYTES[usize::from(snap)])),
        },
        Line {
            what: "reply executions and the manager's instructions",
            payer: "manager",
            count: n * calls,
            cycles: u128::from(n)
                * (u128::from(calls) * c.update_message
                    + c.instructions(MANAGER_INSTRUCTIONS_PER_UPGRADE)),
        },
        Line {
            what: "timer ticks while the rollout works (one a second; none while baking)",
            payer: "manager",
            count: run_ticks,
            cycles: u128::from(run_ticks) * tick(c),
        },
    ];
    if snap && plan.keep_snapshot_secs != Some(0) {
        // The driver sleeps through the keep time and wakes when the first deletion is due;
        // deletions come due in the order canisters finished, so it then ticks for about as
        // long as the rollout ran, at most twice per canister (a tick to issue, one to see
        // the result), and once more to stop.
        let ticks = work_secs.min(2 * n) + 1;
        lines.push(Line {
            what: "snapshot deletions, and timer ticks while they come due",
            payer: "manager",
            count: n,
            cycles: u128::from(n) * (c.call(60) + c.update_message) + u128::from(ticks) * tick(c),
        });
    }
    if snap {
        lines.push(Line {
            what: "snapshots (2B instructions plus their bytes)",
            payer: "user canisters",
            count: n,
            cycles: u128::from(n) * c.snapshot(assumed.snapshot_bytes),
        });
    }
    lines.push(Line {
        what: "installs (the upgrade's execution)",
        payer: "user canisters",
        count: n,
        cycles: u128::from(n) * c.execution(assumed.upgrade_instructions),
    });
    lines.push(Line {
        what: "health checks",
        payer: "user canisters",
        count: n,
        cycles: u128::from(n) * c.execution(assumed.health_instructions),
    });
    let sum = |payer: &str| -> u128 {
        lines
            .iter()
            .filter(|l| l.payer == payer)
            .map(|l| l.cycles)
            .sum()
    };
    let burned_by_manager = sum("manager");
    let burned_by_user_canisters = sum("user canisters");
    // The registry keeps no balances: a top-up reaches a canister below `min_cycles`, brings
    // it to `top_up_to`, and all of them together stay within the budget.
    let cy = &p.cycles;
    let top_ups_at_most = if cy.budget == 0 {
        0
    } else {
        let least = cy.top_up_to.saturating_sub(cy.min_cycles).max(1);
        u64::try_from(cy.budget / least).map_or(n, |k| k.min(n))
    };
    let moved_at_most = cy.budget.min(u128::from(top_ups_at_most) * cy.top_up_to);
    let top_up_calls_at_most =
        u128::from(top_ups_at_most) * (c.call(TOP_UP_BYTES) + c.update_message);
    let in_flight = u64::from(p.limits.max_in_flight).min(n);
    let reserve_held = p.pipeline_cycles_reserve * u128::from(in_flight);
    let needed = burned_by_manager + moved_at_most + top_up_calls_at_most + reserve_held;
    Estimate {
        target_version: plan.target_version.clone(),
        rollout_id: p.rollout.id,
        canisters: n,
        waves: p
            .rollout
            .waves
            .iter()
            .map(|w: &WaveProgress| Stage {
                stage: crate::manager::wave_name(&w.label),
                size: w.size,
            })
            .collect(),
        take_snapshot: snap,
        eta_secs,
        eta_assumes,
        burned: burned_by_manager + burned_by_user_canisters,
        burned_by_manager,
        burned_by_user_canisters,
        lines,
        top_ups_at_most,
        moved_at_most,
        top_up_calls_at_most,
        snapshot_storage: if snap {
            u128::from(n) * c.storage(assumed.snapshot_bytes, keep_secs)
        } else {
            0
        },
        funds: Funds {
            cycles_balance: p.cycles_balance,
            liquid_cycles: p.liquid_cycles,
            pipeline_cycles_reserve: p.pipeline_cycles_reserve,
            reserve_held,
            needed,
            covered: p.liquid_cycles >= needed,
        },
        assumed: assumed.clone(),
        costs: *c,
    }
}

/// A number with thousands separators (cycles, instructions).
pub fn group(n: impl Into<u128>) -> String {
    let s = n.into().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The estimate as the operator reads it.
pub fn text(e: &Estimate, manager: &Principal) -> String {
    let mut out = format!(
        "dry run: rollout {} to {} would upgrade {} canisters in {} stages: {}\n",
        e.rollout_id,
        e.target_version,
        e.canisters,
        e.waves.len(),
        e.waves
            .iter()
            .map(|w| format!("{} {}", w.stage, w.size))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out += &format!(
        "eta: {} s ({:.1} min), assuming {}\n",
        e.eta_secs,
        e.eta_secs as f64 / 60.0,
        e.eta_assumes
    );
    out += "cycles burned (IC cost table, 13-node subnet):\n";
    for l in &e.lines {
        out += &format!(
            "  {:>22}  {:<14} {:>7} x  {}\n",
            group(l.cycles),
            l.payer,
            l.count,
            l.what
        );
    }
    out += &format!(
        "  {:>22}  total: manager {}, user canisters {}\n",
        group(e.burned),
        group(e.burned_by_manager),
        group(e.burned_by_user_canisters)
    );
    if e.top_ups_at_most > 0 {
        out += &format!(
            "top-ups: at most {} canisters, at most {} cycles moved to them (not burned), {} burned by their calls\n",
            e.top_ups_at_most,
            group(e.moved_at_most),
            group(e.top_up_calls_at_most)
        );
    }
    if e.snapshot_storage > 0 {
        out += &format!(
            "snapshot storage while kept: {} (charged to the user canisters over time)\n",
            group(e.snapshot_storage)
        );
    }
    let f = &e.funds;
    out += &format!(
        "manager {manager}: balance {}, liquid {}; needs {} liquid (its burn, top-ups at most, \
         and {} per pipeline in flight held while it runs: {}): {}",
        group(f.cycles_balance),
        group(f.liquid_cycles),
        group(f.needed),
        group(f.pipeline_cycles_reserve),
        group(f.reserve_held),
        if f.covered {
            "covered".to_string()
        } else {
            format!("short by {}", group(f.needed - f.liquid_cycles))
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_follow_the_published_formulas() {
        let c = &IC_COSTS;
        assert_eq!(c.execution(1_000), 5_000_400);
        assert_eq!(c.call(10), 270_000);
        assert_eq!(c.ingress(10), 1_220_000);
        assert_eq!(c.snapshot(0), 805_000_000);
        assert_eq!(c.storage(1 << 30, 86_400), 127_000 * 86_400);
        assert_eq!(group(1_234_567u64), "1,234,567");
        assert_eq!(group(999u64), "999");
    }
}
