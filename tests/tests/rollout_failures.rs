//! Rollouts that go wrong, on a fleet of 200 v1 canisters holding user data: a release whose
//! post_upgrade traps halts its first wave by itself and leaves the failed canisters on v1 and
//! running; a release that fails its health check is rolled back to the snapshot; a canister
//! that cannot stop is retried and never left stopped; a chosen set is restored from its
//! snapshots. Asserted from outside: module hashes, canister status, controllers, user data,
//! the registry and the manager's rollout queries.

use candid::Principal;
use fleet_api::manager::method::{GetUserCanister, SetDefaultRelease};
use fleet_api::manager::*;
use fleet_api::rollout::method::{AbortRollout, Rollback};
use fleet_api::rollout::*;
use fleet_tests::rollout::*;
use fleet_tests::{sha256, user_wasm, Fleet};
use std::time::Duration;

const CANISTERS: u32 = 200;
const NOTES: u32 = 2;

fn plan(version: &str, include: Option<Vec<Principal>>, canary: Canary) -> RolloutPlanArg {
    let mut plan = RolloutPlanArg::to(version);
    plan.include = include;
    plan.canary = Some(canary);
    plan.waves_percent = Some(vec![100]);
    plan.bake_secs = Some(0);
    plan.limits = Some(Limits {
        max_in_flight: 5,
        starts_per_minute: 600,
        burst: 5,
        max_starts_per_tick: 5,
        per_subnet: None,
    });
    plan
}

fn record(fleet: &Fleet, id: Principal) -> UserCanister {
    let r = fleet.ask::<GetUserCanister>(fleet.controller, (id,));
    r.into_result().expect("get_user_canister")
}

fn assert_intact(fleet: &Fleet, n: u32, id: Principal, module: &[u8]) {
    assert_eq!(fleet.sim.module_hash(id).unwrap().to_vec(), module, "{id}");
    assert!(fleet.is_running(id), "{id} left stopped");
    let mut expected = vec![fleet.manager, recovery(n)];
    expected.sort();
    assert_eq!(fleet.controllers_sorted(id), expected);
    fleet.assert_notes(n, id, NOTES);
}

#[test]
fn failing_releases_halt_roll_back_and_never_leave_a_canister_stopped() {
    let fleet = fleet_for(CANISTERS + 1);
    let v1 = user_wasm(false);
    fleet.publish_default("1.0.0", &v1);
    let canisters = fleet.provision_with_notes(CANISTERS, NOTES);
    let v1_hash = sha256(&v1);

    // ---- post_upgrade traps: the canary wave halts the rollout by itself ---------------
    let trap = wasm_build::wasm("user_canister", &["v2", "fault_post_upgrade_trap"]);
    fleet.publish(fleet.controller, "2.0.0+trap", &trap);
    let mut p = plan("2.0.0+trap", None, Canary::Count(10));
    p.from_version = Some("1.0.0".into());
    p.failure = Some(FailurePolicy {
        max_failed_percent: 20,
        max_consecutive_failures: 0,
        halt_scope: None,
    });
    let started = fleet.start_rollout(p).expect("start trap rollout");
    assert_eq!(started.canisters, CANISTERS as u64);
    fleet.run_to_rest(3_000);
    let st = fleet.rollout_status();
    match &st.phase {
        Phase::Halted(HaltReason::WaveFailureThreshold { wave, failed, size }) => {
            assert_eq!((*wave, *size), (0, 10));
            assert!(*failed * 100 > 20 * 10);
        }
        other => panic!("expected a halt, got {other:?}"),
    }
    assert_eq!(st.counts.done, 0);
    assert!(
        st.counts.failed >= 3 && st.counts.failed <= 10,
        "{:?}",
        st.counts
    );
    assert_eq!(st.counts.pending + st.counts.failed, CANISTERS as u64);
    // Nothing happens while halted.
    for _ in 0..30 {
        fleet.step();
    }
    assert_eq!(fleet.rollout_status().counts, st.counts);
    let failed: Vec<RolloutCanisterResult> = fleet
        .rollout_results()
        .into_iter()
        .filter(|r| r.outcome == Some(Outcome::Failed))
        .collect();
    assert_eq!(failed.len() as u64, st.counts.failed);
    for r in &failed {
        assert!(
            matches!(r.failure, Some(Failure::InstallFailed(_))),
            "{r:?}"
        );
        let n = canisters.iter().find(|c| c.1 == r.canister_id).unwrap().0;
        assert_intact(&fleet, n, r.canister_id, &v1_hash);
        let rec = record(&fleet, r.canister_id);
        assert_eq!(rec.status, CanisterStatus::Failed);
        assert_eq!(rec.current_release.unwrap().version, "1.0.0");
        assert!(rec.last_error.is_some());
    }
    let events = fleet.rollout_events();
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, EventKind::Halted(_))));
    // The operator aborts: pending canisters are dropped, nothing was left stopped.
    fleet.control::<AbortRollout>().expect("abort");
    fleet.run_to_rest(500);
    let st = fleet.rollout_status();
    assert_eq!(st.phase, Phase::Aborted);
    assert_eq!(st.counts.cancelled, CANISTERS as u64 - st.counts.failed);

    // ---- health check fails: the snapshot is restored ----------------------------------
    let unhealthy = wasm_build::wasm("user_canister", &["v2", "fault_health"]);
    fleet.publish(fleet.controller, "2.0.0+health", &unhealthy);
    let chosen: Vec<(u32, Principal)> = canisters[100..105].to_vec();
    let mut p = plan(
        "2.0.0+health",
        Some(chosen.iter().map(|c| c.1).collect()),
        Canary::None,
    );
    p.failure = Some(FailurePolicy {
        max_failed_percent: 100,
        max_consecutive_failures: 0,
        halt_scope: None,
    });
    fleet.start_rollout(p).expect("start unhealthy rollout");
    fleet.run_to_rest(2_000);
    let st = fleet.rollout_status();
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.counts.rolled_back, chosen.len() as u64);
    for r in fleet.rollout_results() {
        assert_eq!(r.outcome, Some(Outcome::RolledBack));
        assert!(
            matches!(r.failure, Some(Failure::Unhealthy { .. })),
            "{r:?}"
        );
        assert!(r.snapshot.is_some());
    }
    for (n, id) in &chosen {
        assert_intact(&fleet, *n, *id, &v1_hash);
        let rec = record(&fleet, *id);
        assert_eq!(rec.status, CanisterStatus::RolledBack);
        assert!(matches!(
            rec.history.last().unwrap().outcome,
            UpgradeOutcome::RolledBack(_)
        ));
    }

    // ---- a canister that cannot stop: retried with backoff, never left stopped ---------
    let stall = wasm_build::wasm("user_canister", &["fault_stall"]);
    fleet.publish(fleet.controller, "1.0.0+stall", &stall);
    let set_default = |version: &str| {
        fleet
            .ask::<SetDefaultRelease>(fleet.controller, (version.to_string(),))
            .into_result()
            .unwrap()
    };
    set_default("1.0.0+stall");
    let stuck = fleet.provision(CANISTERS, 1)[0].canister_id;
    set_default("1.0.0");
    // The owner starts a call that never returns: the canister cannot stop. `stall` exists
    // only in `fault_stall` builds, so no endpoint type declares it.
    fleet
        .sim
        .submit_call(
            stuck,
            owner(CANISTERS),
            "stall",
            candid::encode_args(()).unwrap(),
        )
        .unwrap();
    fleet.step();
    let v2 = user_wasm(true);
    fleet.publish(fleet.controller, "2.0.0", &v2);
    let healthy: Vec<(u32, Principal)> = canisters[150..154].to_vec();
    let mut ids: Vec<Principal> = healthy.iter().map(|c| c.1).collect();
    ids.push(stuck);
    let mut p = plan("2.0.0", Some(ids), Canary::None);
    p.retry = Some(RetryPolicy {
        stop_attempts: 2,
        backoff_base_ns: 30_000_000_000,
        backoff_max_ns: 60_000_000_000,
    });
    p.failure = Some(FailurePolicy {
        max_failed_percent: 100,
        max_consecutive_failures: 0,
        halt_scope: None,
    });
    let started = fleet
        .start_rollout(p)
        .expect("start rollout with a stuck canister");
    // Larger steps: the IC gives up on a stop after 5 minutes.
    let mut rounds = 0;
    loop {
        let st = fleet.rollout_status();
        if st.phase.is_finished() {
            break;
        }
        // While its stop is pending the canister is stopping, never stopped.
        assert!(!matches!(
            fleet
                .sim
                .canister_status(stuck, Some(fleet.manager))
                .unwrap()
                .status,
            ic_sim::management_canister::CanisterStatusType::Stopped
        ));
        fleet.sim.advance_time(Duration::from_secs(10));
        fleet.sim.tick();
        rounds += 1;
        assert!(rounds < 2_000, "{st:?}");
    }
    let results = fleet.rollout_results();
    let r = results.iter().find(|r| r.canister_id == stuck).unwrap();
    // Busy is the canister's environment, not the release: deferred, never failed.
    assert_eq!(r.outcome, Some(Outcome::Deferred));
    assert_eq!(r.failure, Some(Failure::StopTimedOut { attempts: 2 }));
    assert_eq!(r.stop_attempts, 2);
    assert!(
        fleet.is_running(stuck),
        "the stuck canister was left stopped"
    );
    assert_eq!(
        fleet.sim.module_hash(stuck).unwrap().to_vec(),
        sha256(&stall)
    );
    let log = fleet.pipeline_log(started.id);
    let starts = log
        .iter()
        .filter(|e| e.canister_id == stuck && e.kind == PipelineLogKind::Started)
        .count();
    assert_eq!(starts, 2, "the stuck canister was tried twice");
    let busy_left = log
        .iter()
        .filter(|e| e.canister_id == stuck && e.kind == PipelineLogKind::Left { outcome: None })
        .count();
    assert_eq!(busy_left, 1, "it waited as busy between its attempts");
    for (n, id) in &healthy {
        assert_intact(&fleet, *n, *id, &sha256(&v2));
    }

    // ---- restore a chosen set from the snapshots taken before their upgrade ------------
    let restore: Vec<Principal> = healthy.iter().map(|c| c.1).collect();
    let restore_snapshots = |sender: Principal, canisters: Vec<Principal>| {
        let arg = RollbackArg::RestoreSnapshots {
            canisters,
            limits: None,
        };
        fleet.ask::<Rollback>(sender, (arg,)).into_result()
    };
    let arg = RollbackArg::RestoreSnapshots {
        canisters: restore.clone(),
        limits: None,
    };
    fleet.refused_at_ingress::<Rollback>(owner(1), (arg,));
    let no_snapshot = restore_snapshots(fleet.controller, vec![stuck]);
    // It never got as far as a snapshot.
    assert_eq!(
        no_snapshot,
        Err(RollbackError::UnknownSnapshotRelease { canister: stuck })
    );
    let restored = restore_snapshots(fleet.controller, restore.clone());
    assert_eq!(restored.expect("restore").canisters, restore.len() as u64);
    fleet.run_to_rest(1_000);
    let st = fleet.rollout_status();
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.counts.restored, restore.len() as u64);
    for (n, id) in &healthy {
        assert_intact(&fleet, *n, *id, &v1_hash);
        let rec = record(&fleet, *id);
        assert_eq!(rec.current_release.unwrap().version, "1.0.0");
        assert_eq!(
            rec.history.last().unwrap().outcome,
            UpgradeOutcome::Restored
        );
    }
}
