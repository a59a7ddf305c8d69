//! The deterministic simulation tester's fixed budget in CI: every seed builds a fleet on
//! ic_sim, draws a plan, faults and operator actions from the seed, and checks the invariants
//! of `fleet_tests::chaos` after every round. A failure prints the seed, the invariant and the
//! events that led there; `cargo run -p fleet_tests --bin chaos -- --seed N --trace` replays it.
//!
//! Two tests, so that the seeds run on both cores.

use fleet_tests::chaos::{run_seed, Options};

/// Seeds run in CI, split over the two tests below.
const SEEDS: u64 = 64;

fn run(seeds: impl Iterator<Item = u64>) {
    let opts = Options {
        min_canisters: 20,
        max_canisters: 30,
        ..Options::default()
    };
    for seed in seeds {
        match run_seed(seed, &opts) {
            Ok(r) => println!("seed {seed}: ok, {r:?}"),
            Err(v) => panic!("{v}"),
        }
    }
}

#[test]
fn chaos_seeds_odd() {
    run((1..=SEEDS).filter(|s| !s.is_multiple_of(2)));
}

#[test]
fn chaos_seeds_even() {
    run((1..=SEEDS).filter(|s| s.is_multiple_of(2)));
}
