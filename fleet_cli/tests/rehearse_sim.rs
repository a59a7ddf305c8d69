//! `fleet rehearse` end to end: a small fleet is provisioned on the embedded simulator, rolled
//! to v2 in stages and checked from outside; with injected faults the manager rolls canisters
//! back and its failure policy halts the rollout.

mod common;

use common::World;

fn rehearse(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "rehearse"];
    all.extend_from_slice(args);
    World::new()
        .fleet(&all)
        .unwrap_or_else(|e| panic!("fleet {all:?}: {e}"))
        .json
}

#[test]
fn a_clean_rehearsal_upgrades_every_canister_and_reports_measured_figures() {
    let r = rehearse(&["--users", "20", "--bake-secs", "60"]);
    // Counts: every canister upgraded, nothing else.
    assert_eq!(r["users"], 20);
    assert_eq!(r["phase"], "completed");
    assert_eq!(r["halted"], false);
    let o = &r["outcomes"];
    assert_eq!(o["upgraded"], 20, "{r:#}");
    for k in [
        "failed",
        "rolled_back",
        "skipped",
        "cancelled",
        "not_started",
    ] {
        assert_eq!(o[k], 0, "{k}: {r:#}");
    }
    // Verified from outside: hashes, versions, data and controllers.
    let v = &r["verified"];
    assert_eq!(v["canisters"], 20);
    assert_eq!(v["on_target"], 20);
    assert_eq!(v["checksums_equal"], 20);
    assert_eq!(v["failed_checks"], 0);
    assert_eq!(v["problems"], serde_json::json!([]));
    // Stages: a canary then the percentage waves, sizes adding up to the fleet.
    let stages = r["stages"].as_array().unwrap();
    assert_eq!(stages[0]["stage"], "canary");
    assert_eq!(stages.last().unwrap()["stage"], "100%");
    let sizes: u64 = stages.iter().map(|s| s["size"].as_u64().unwrap()).sum();
    assert_eq!(sizes, 20);
    // The figures are measured: rounds ran, simulated time covers the bake times, the
    // manager executed instructions, the hashes are hex.
    let rounds = r["rounds"].as_u64().unwrap();
    assert!(rounds > 0);
    let bakes = (stages.len() as f64 - 1.0) * 60.0;
    assert!(r["simulated_secs"].as_f64().unwrap() >= bakes, "{r:#}");
    assert!(r["manager_instructions_per_upgrade"].as_u64().unwrap() > 0);
    assert!(r["upgrades_per_round"].as_f64().unwrap() > 0.0);
    assert_eq!(r["to_sha256"].as_str().unwrap().len(), 64);
    assert_ne!(r["to_sha256"], r["from_sha256"]);
    assert_eq!(r["notes_per_user"], 3);
    assert!(r["wall"]["total_secs"].as_f64().unwrap() > 0.0);
}

#[test]
fn injected_faults_are_rolled_back_and_halt_the_rollout() {
    // 25% of the canisters reject the health check; the policy halts a stage past 10%.
    let r = rehearse(&[
        "--users",
        "20",
        "--faults",
        "0.25",
        "--canary",
        "0",
        "--waves",
        "50,100",
        "--bake-secs",
        "0",
        "--max-failed-percent",
        "10",
        "--max-consecutive-failures",
        "0",
    ]);
    assert_eq!(r["faults_injected"], 5);
    assert_eq!(r["halted"], true, "{r:#}");
    assert!(r["phase"].as_str().unwrap().starts_with("halted"));
    let o = &r["outcomes"];
    let rolled_back = o["rolled_back"].as_u64().unwrap();
    assert!(rolled_back > 0, "{r:#}");
    assert_eq!(o["failed"], 0);
    assert!(
        o["not_started"].as_u64().unwrap() > 0,
        "the halt left canisters alone"
    );
    // Rolled back and untouched canisters run v1 with their data; the rest run v2.
    let v = &r["verified"];
    assert_eq!(v["failed_checks"], 0, "{r:#}");
    assert_eq!(v["checksums_equal"], 20);
    assert_eq!(v["on_target"], o["upgraded"]);
    assert_eq!(
        v["on_source"].as_u64().unwrap(),
        20 - o["upgraded"].as_u64().unwrap()
    );
}

#[test]
fn bad_rehearsal_arguments_are_refused_before_anything_runs() {
    let w = World::new();
    for (args, wanted) in [
        (&["rehearse", "--users", "0"][..], "--users"),
        (&["rehearse", "--faults", "1.5"], "--faults"),
        (&["rehearse", "--waves", "50,20,100"], "increase"),
        (&["rehearse", "--max-in-flight", "0"], "limit"),
        (&["rehearse", "--from", "/nonexistent/v1.wasm"], "v1.wasm"),
    ] {
        let (code, e) = w.fleet_err(args);
        assert_eq!(code, 2, "{args:?}: {e}");
        assert!(e.to_string().contains(wanted), "{args:?}: {e}");
    }
}
