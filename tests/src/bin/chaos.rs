//! The fleet manager's deterministic simulation tester (see `fleet_tests::chaos`).
//!
//! ```text
//! cargo run -p fleet_tests --bin chaos -- --seeds 1..200          # a range of seeds
//! cargo run -p fleet_tests --bin chaos -- --seed 17 --trace       # replay one, narrated
//! cargo run -p fleet_tests --bin chaos -- --seeds 1..50 --canisters 10..20
//! cargo run -p fleet_tests --bin chaos -- --seed 17 --skip 2,5 # without events 2 and 5
//! ```
//!
//! Prints one line per seed and a total; exits with 1 at the first seed that breaks an
//! invariant, after printing the seed, the invariant and the events that led there, then the
//! shortest trace that still breaks it (events left out one at a time; `--no-shrink` skips it).

use fleet_tests::chaos::{run_seed, shrink, Options};
use std::ops::Range;
use std::process::ExitCode;
use std::time::Instant;

fn range(text: &str) -> Option<Range<u64>> {
    let (a, b) = text.split_once("..")?;
    let (a, b) = (a.parse().ok()?, b.parse().ok()?);
    (a < b).then_some(a..b)
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: chaos [--seeds A..B | --seed N] [--trace] [--canisters MIN..MAX] \
         [--fault-rounds R] [--skip I,J,..] [--no-shrink]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut seeds = 1..21;
    let mut opts = Options::default();
    let mut shrink_failures = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seeds" => match args.next().as_deref().and_then(range) {
                Some(r) => seeds = r,
                None => return usage(),
            },
            "--seed" => match args.next().and_then(|s| s.parse::<u64>().ok()) {
                Some(n) => seeds = n..n + 1,
                None => return usage(),
            },
            "--trace" => opts.trace = true,
            "--canisters" => match args.next().as_deref().and_then(range) {
                Some(r) => {
                    opts.min_canisters = r.start as u32;
                    opts.max_canisters = r.end as u32;
                }
                None => return usage(),
            },
            "--no-shrink" => shrink_failures = false,
            "--skip" => match args.next() {
                Some(list) => {
                    for n in list.split(',') {
                        match n.parse() {
                            Ok(n) => {
                                opts.skip.insert(n);
                            }
                            Err(_) => return usage(),
                        }
                    }
                }
                None => return usage(),
            },
            "--fault-rounds" => match args.next().and_then(|s| s.parse().ok()) {
                Some(r) => opts.fault_rounds = r,
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let t0 = Instant::now();
    let mut ran = 0;
    for seed in seeds {
        let t = Instant::now();
        match run_seed(seed, &opts) {
            Ok(r) => {
                ran += 1;
                println!(
                    "seed {seed:>5}: ok  {:>2} canisters, {:>4} rounds, {:>2} events, {} rollouts; \
                     last: done {}, failed {}, rolled back {}, deferred {} (deferrals: \
                     environment {}, manager {}); {:.1} s",
                    r.canisters,
                    r.rounds,
                    r.events,
                    r.rollouts,
                    r.done,
                    r.failed,
                    r.rolled_back,
                    r.deferred,
                    r.deferrals_environment,
                    r.deferrals_manager,
                    t.elapsed().as_secs_f64()
                );
            }
            Err(v) => {
                eprintln!("{v}");
                if shrink_failures && v.applied.len() > 1 {
                    eprintln!("shrinking: leaving out one event at a time...");
                    eprintln!("shortest failing trace found:\n{}", shrink(&opts, v));
                }
                return ExitCode::from(1);
            }
        }
    }
    println!(
        "{ran} seeds passed every invariant in {:.0} s",
        t0.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
