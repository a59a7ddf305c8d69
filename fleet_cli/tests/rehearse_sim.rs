//! `fleet rehearse` end to end: a small fleet is provisioned on the embedded simulator, rolled
//! to v2 in stages and checked from outside; with injected faults the manager rolls canisters
//! back and its failure policy halts the rollout; with every fault class on, each class ends
//! where the manager's attribution says it should, as the report and the checks from outside
//! show.

mod common;

use common::World;
use fleet_cli::rehearse::{assign, FaultClass, FaultSpec};
use serde_json::Value;

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
    // The operator gave a failure policy: the rehearsal keeps it.
    assert_eq!(r["faults"]["failure_policy"], Value::Null, "{r:#}");
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

/// `--subnets 3`: the fleet is spread evenly over three subnets (as the simulator places each
/// canister, read from outside), and a rollout with a per-subnet in-flight limit and halts by
/// subnet upgrades every canister from its own subnet's store.
#[test]
fn a_rehearsal_on_three_subnets_spreads_the_fleet_and_upgrades_it_on_each() {
    let r = rehearse(&[
        "--users",
        "12",
        "--subnets",
        "3",
        "--bake-secs",
        "0",
        "--subnet-max-in-flight",
        "2",
        "--halt-scope",
        "subnet",
    ]);
    assert_eq!(r["phase"], "completed", "{r:#}");
    assert_eq!(r["outcomes"]["upgraded"], 12);
    let v = &r["verified"];
    assert_eq!(v["failed_checks"], 0, "{v:#}");
    let subnets = v["subnets"].as_array().unwrap();
    assert_eq!(subnets.len(), 3);
    for s in subnets {
        assert_eq!(s["canisters"], 4, "{s}");
        assert_eq!(s["on_target"], 4, "{s}");
    }
}

#[test]
fn bad_rehearsal_arguments_are_refused_before_anything_runs() {
    let w = World::new();
    for (args, wanted) in [
        (&["rehearse", "--users", "0"][..], "--users"),
        (&["rehearse", "--subnets", "9"], "--subnets"),
        (&["rehearse", "--subnets", "0"], "--subnets"),
        (&["rehearse", "--faults", "1.5"], "--faults"),
        (&["rehearse", "--faults", "bogus"], "unknown fault kind"),
        (&["rehearse", "--faults", "busy=2"], "busy=2"),
        (&["rehearse", "--faults", "trap=-0.1"], "fraction"),
        (&["rehearse", "--faults", "frozen=NaN"], "fraction"),
        (&["rehearse", "--faults", "all,"], "empty item"),
        (&["rehearse", "--faults", "manager-low=soon"], "seconds"),
        (
            &["rehearse", "--faults", "manager-upgrade=1"],
            "takes no value",
        ),
        (&["rehearse", "--faults", "all=0.5"], "takes no value"),
        (
            &["rehearse", "--users", "3", "--faults", "all"],
            "the fleet has 3",
        ),
        (
            &[
                "rehearse",
                "--faults",
                "trap",
                "--to",
                "/nonexistent/v2.wasm",
            ],
            "bundled",
        ),
        (&["rehearse", "--waves", "50,20,100"], "increase"),
        (&["rehearse", "--max-in-flight", "0"], "limit"),
        (&["rehearse", "--from", "/nonexistent/v1.wasm"], "v1.wasm"),
    ] {
        let (code, e) = w.fleet_err(args);
        assert_eq!(code, 2, "{args:?}: {e}");
        assert!(e.to_string().contains(wanted), "{args:?}: {e}");
    }
}

/// The JSON report of one class of canisters.
fn class<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["faults"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == name)
        .unwrap_or_else(|| panic!("no class {name}: {r:#}"))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn every_fault_class_ends_where_its_cause_says() {
    let users = 36;
    let r = rehearse(&[
        "--users",
        "36",
        "--faults",
        "all",
        "--canary",
        "4",
        "--waves",
        "50,100",
        "--bake-secs",
        "30",
        "--max-in-flight",
        "4",
        "--max-rounds",
        "3000",
    ]);
    let f = &r["faults"];
    // Release faults are on and no policy was given: halts are off, and the report says so.
    assert!(
        f["failure_policy"].as_str().unwrap().contains("halts off"),
        "{r:#}"
    );
    assert_eq!(r["phase"], "completed", "{r:#}");
    assert_eq!(r["halted"], false);
    assert_eq!(r["faults_injected"], 4, "one canister of each kind: {r:#}");

    // Release faults: failed (the install trapped) or rolled back (health), on v1 with their
    // data; nothing else failed, so every failure is the release's.
    let trap = class(&r, "trap");
    let health = class(&r, "health");
    assert_eq!(n(&trap["canisters"]), 1);
    assert_eq!(trap["outcomes"]["failed"], trap["canisters"], "{r:#}");
    assert_eq!(trap["on_source"], trap["canisters"]);
    assert_eq!(n(&health["canisters"]), 1);
    assert_eq!(
        health["outcomes"]["rolled_back"], health["canisters"],
        "{r:#}"
    );
    assert_eq!(health["on_source"], health["canisters"]);
    let o = &r["outcomes"];
    assert_eq!(
        o["failed"], trap["canisters"],
        "only release faults fail: {r:#}"
    );
    assert_eq!(o["rolled_back"], health["canisters"], "{r:#}");

    // Busy, frozen and unfaulted canisters all end on v2: the environment's faults were
    // deferred and retried, not failed.
    let mut upgraded = 0;
    for name in ["busy", "frozen", "none"] {
        let c = class(&r, name);
        assert!(n(&c["canisters"]) > 0, "{name}");
        assert_eq!(c["outcomes"]["upgraded"], c["canisters"], "{name}: {r:#}");
        assert_eq!(c["on_target"], c["canisters"], "{name}: {r:#}");
        assert_eq!(c["with_problems"], 0, "{name}");
        upgraded += n(&c["canisters"]);
    }
    assert_eq!(n(&o["upgraded"]), upgraded);
    assert_eq!(f["deferred"], 0, "no canister outlasted its retries: {r:#}");
    assert_eq!(f["follow_up"], Value::Null);

    // The manager's own view: deferrals by cause, and the holds seen while polling.
    let d = &f["deferrals"];
    assert!(
        n(&d["environment"]) >= 2,
        "busy and frozen canisters deferred for their environment: {r:#}"
    );
    assert!(n(&d["manager"]) > 0, "the manager out of cycles: {r:#}");
    assert!(n(&f["holds"]["manager_low_cycles"]) > 0, "{r:#}");
    assert!(n(&f["holds"]["draining"]) > 0, "{r:#}");
    let low = &f["manager_low"];
    assert_eq!(low["injected"], true, "{r:#}");
    assert!(
        low["low_liquid_cycles"].as_f64().unwrap()
            < 2.0 * low["pipeline_cycles_reserve"].as_f64().unwrap()
    );
    assert_eq!(f["manager_upgrade"]["upgraded"], true, "{r:#}");

    // From outside: nobody left stopped, no controller or record lost.
    let v = &r["verified"];
    assert_eq!(v["failed_checks"], 0, "{r:#}");
    for k in [
        "not_running",
        "wrong_controllers",
        "data_changed",
        "wrong_module",
        "wrong_outcome",
    ] {
        assert_eq!(v[k], 0, "{k}: {r:#}");
    }
    assert_eq!(n(&v["checksums_equal"]), users);
    assert_eq!(n(&v["on_target"]), upgraded);
    assert_eq!(n(&v["on_source"]), 2);
}

#[test]
fn canisters_left_deferred_are_upgraded_by_a_follow_up_rollout() {
    // One attempt per canister: the busy and the frozen canister are still faulty when the
    // manager tries them, and end deferred; the follow-up rollout takes them once their
    // faults are over.
    let r = rehearse(&[
        "--users",
        "12",
        "--faults",
        "busy=0.1,frozen=0.1",
        "--canary",
        "0",
        "--waves",
        "100",
        "--bake-secs",
        "0",
        "--stop-attempts",
        "1",
        "--max-rounds",
        "2000",
    ]);
    let f = &r["faults"];
    assert_eq!(f["failure_policy"], Value::Null, "no release fault: {r:#}");
    assert_eq!(r["faults_injected"], 2);
    assert_eq!(r["outcomes"]["deferred"], 2, "{r:#}");
    assert_eq!(r["outcomes"]["upgraded"], 10);
    assert_eq!(f["deferrals"]["environment"], 2);
    assert_eq!(f["deferrals"]["manager"], 0);
    let fu = &f["follow_up"];
    assert_eq!(fu["canisters"], 2, "{r:#}");
    assert_eq!(fu["phase"], "completed");
    assert_eq!(fu["outcomes"]["upgraded"], 2, "{r:#}");
    for name in ["busy", "frozen"] {
        let c = class(&r, name);
        assert_eq!(c["outcomes"]["upgraded"], 1, "{name}: {r:#}");
        assert_eq!(c["on_target"], 1, "{name}");
    }
    let v = &r["verified"];
    assert_eq!(v["failed_checks"], 0, "{r:#}");
    assert_eq!(v["on_target"], 12);
    assert_eq!(v["checksums_equal"], 12);
}

#[test]
fn fault_shares_are_spread_over_the_fleet_one_fault_per_canister() {
    let all = FaultSpec::parse(&["all".to_string()]).unwrap();
    assert!(all.release() && all.manager_upgrade && all.manager_low_secs == 120);
    let classes = assign(1000, &all).unwrap();
    let count = |c: FaultClass| classes.iter().filter(|x| **x == c).count();
    assert_eq!(count(FaultClass::Trap), 30);
    assert_eq!(count(FaultClass::Health), 20);
    assert_eq!(count(FaultClass::Busy), 20);
    assert_eq!(count(FaultClass::Frozen), 20);
    assert_eq!(count(FaultClass::None), 910);
    // Every tenth of the fleet (a stage) holds its share of each kind, give or take one.
    for block in classes.chunks(100) {
        let in_block = |c: FaultClass| block.iter().filter(|x| **x == c).count();
        assert!((2..=4).contains(&in_block(FaultClass::Trap)), "{block:?}");
        for c in [FaultClass::Health, FaultClass::Busy, FaultClass::Frozen] {
            assert!((1..=3).contains(&in_block(c)), "{c:?}: {block:?}");
        }
    }
    // The first spelling is a health-check share; later items override earlier ones; a
    // kind asked for reaches at least one canister.
    let legacy = FaultSpec::parse(&["0.25".to_string()]).unwrap();
    assert_eq!(legacy.health, 0.25);
    assert!(!legacy.manager_upgrade && legacy.trap == 0.0);
    let some = FaultSpec::parse(&["all".into(), "busy=0".into(), "manager-low=0".into()]).unwrap();
    assert_eq!((some.busy, some.manager_low_secs), (0.0, 0));
    let tiny = assign(10, &FaultSpec::parse(&["frozen=0.01".into()]).unwrap()).unwrap();
    assert_eq!(tiny.iter().filter(|c| **c == FaultClass::Frozen).count(), 1);
}
