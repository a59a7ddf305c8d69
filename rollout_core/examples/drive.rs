//! Plans and drives a rollout of N fake canisters (default 100k) on the fake IC of the tests and
//! prints where the time goes: `cargo run --release -p rollout_core --example drive [N]`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use rollout_core::*;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let fleet = fleet(n);
    let mut plan = RolloutPlan::new(release(NEW));
    plan.from_release = Some(hash(OLD));
    plan.canary = Canary::Count(100);
    plan.bake_ns = MINUTE;
    plan.snapshot.keep_ns = Some(10 * MINUTE);
    plan.limits = Limits {
        max_in_flight: 2_000,
        starts_per_minute: 60_000,
        burst: 1_000,
        max_starts_per_tick: 1_000,
        per_subnet: None,
    };

    let t = Instant::now();
    let cohort = select(&plan, &fleet).expect("plan");
    let select_time = t.elapsed();
    let t = Instant::now();
    let t0 = 1_700_000_000 * SECOND;
    let mut rollout = Rollout::start(1, manager(), &plan, cohort, MemStore::new(), t0).unwrap();
    let load_time = t.elapsed();

    let mut ic = FakeIc::new(&fleet);
    let (mut core, mut ticks, mut results, mut max_tick) =
        (Duration::ZERO, 0u64, 0u64, Duration::ZERO);
    let mut now = t0;
    let mut next_tick = t0;
    let wall = Instant::now();
    while rollout.has_work() || ic.outstanding() > 0 {
        match ic.next_time() {
            Some(t) if t < next_tick => {
                let (t, c, r) = ic.pop().unwrap();
                now = t;
                let s = Instant::now();
                let next = rollout.on_result(c, r, now).unwrap();
                core += s.elapsed();
                results += 1;
                if let Some(a) = next {
                    ic.submit(a, now);
                }
            }
            _ => {
                now = next_tick;
                next_tick += SECOND;
                let s = Instant::now();
                let actions = rollout.tick(now);
                let e = s.elapsed();
                core += e;
                max_tick = max_tick.max(e);
                ticks += 1;
                for a in actions {
                    ic.submit(a, now);
                }
            }
        }
    }
    let status = rollout.status(now);
    println!("canisters:           {n}");
    println!(
        "outcome:             {:?}, done {}",
        status.phase, status.counts.done
    );
    println!("select cohort:       {select_time:?}");
    println!("load records+queues: {load_time:?}");
    println!(
        "drive (core only):   {core:?} for {ticks} ticks and {results} results ({:?} per result)",
        core / results.max(1) as u32
    );
    println!("slowest tick:        {max_tick:?} (up to 1000 starts)");
    println!("drive (with fake IC): {:?}", wall.elapsed());
    println!(
        "simulated time:      {:.1} min",
        (now - t0) as f64 / MINUTE as f64
    );
}
