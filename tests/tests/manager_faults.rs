//! The manager's own faults, on ic_sim with the real wasm: a drain is not a rollout phase (ending
//! it never lifts a halt), a manager that ran out of cycles re-arms its lost timer and leaves no
//! canister stopped, it never starts a pipeline its cycles could not finish, its own failures
//! are not booked against the release, and a busy canister costs the stop deadline, not the IC's
//! five minutes. Asserted from outside: rollout status and results, the registry, module hashes,
//! canister status, controllers and user data.

use candid::Principal;
use fleet_api::endpoint::Endpoint;
use fleet_api::manager::method::{AdoptCanister, GetUserCanister};
use fleet_api::manager::*;
use fleet_api::rollout::method::{AbortRollout, Drain, EndDrain, PauseRollout, ResumeRollout};
use fleet_api::rollout::*;
use fleet_tests::rollout::*;
use fleet_tests::{sha256, user_wasm, Fleet};

const NOTES: u32 = 2;

fn fleet_of(n: u32) -> (Fleet, Vec<(u32, Principal)>) {
    let fleet = fleet_for(n + 1);
    fleet.publish_default("1.0.0", &user_wasm(false));
    let canisters = fleet.provision_with_notes(n, NOTES);
    (fleet, canisters)
}

fn plan(version: &str, in_flight: u32) -> RolloutPlanArg {
    let mut plan = one_wave_plan(version, in_flight);
    if let Some(l) = plan.limits.as_mut() {
        l.starts_per_minute = 600;
    }
    plan
}

/// Starts (`Drain`) or ends (`EndDrain`) a drain as the controller.
fn drain<E: Endpoint<Args = (), Reply = DrainReply>>(fleet: &Fleet) -> DrainStatus {
    let r = fleet.ask::<E>(fleet.controller, ());
    r.into_result().expect(E::NAME)
}

fn record(fleet: &Fleet, id: Principal) -> UserCanister {
    let r = fleet.ask::<GetUserCanister>(fleet.controller, (id,));
    r.into_result().expect("get_user_canister")
}

/// Every canister runs, keeps its controllers and its notes, and runs `module`.
fn assert_all_intact(fleet: &Fleet, canisters: &[(u32, Principal)], module: &[u8]) {
    for &(n, id) in canisters {
        assert!(fleet.is_running(id), "{id} left stopped");
        assert_eq!(fleet.sim.module_hash(id).unwrap().to_vec(), module, "{id}");
        let mut expected = vec![fleet.manager, recovery(n)];
        expected.sort();
        assert_eq!(fleet.controllers_sorted(id), expected, "{id}");
        fleet.assert_notes(n, id, NOTES);
    }
}

#[test]
fn ending_a_drain_never_lifts_a_halt_or_a_pause() {
    let (fleet, canisters) = fleet_of(20);
    let trap = wasm_build::wasm("user_canister", &["v2", "fault_post_upgrade_trap"]);
    fleet.publish(fleet.controller, "2.0.0+trap", &trap);
    let mut p = plan("2.0.0+trap", 2);
    p.failure = Some(FailurePolicy {
        max_failed_percent: 100,
        max_consecutive_failures: 2,
        halt_scope: None,
    });
    fleet.start_rollout(p).expect("start");
    fleet.run_to_rest(500);
    let halted = fleet.rollout_status();
    assert!(
        matches!(halted.phase, Phase::Halted(_)),
        "{:?}",
        halted.phase
    );

    // Drain during the halt, then end the drain: still halted, nothing starts.
    let d = drain::<Drain>(&fleet);
    assert!(d.draining && d.ready, "{d:?}");
    assert_eq!(fleet.rollout_status().hold, Some(Hold::Draining));
    let d = drain::<EndDrain>(&fleet);
    assert!(!d.draining);
    for _ in 0..30 {
        fleet.step();
    }
    let after = fleet.rollout_status();
    assert_eq!(after.phase, halted.phase, "ending a drain lifted the halt");
    assert_eq!(after.hold, None);
    assert_eq!(
        after.counts, halted.counts,
        "pipelines started after end_drain"
    );

    // Resume is the operator's decision, separate from the drain; a drain of a running
    // rollout holds starts without pausing it, and resume does not end the drain.
    fleet.control::<AbortRollout>().expect("abort");
    fleet.run_to_rest(500);
    fleet.publish(fleet.controller, "2.0.0", &user_wasm(true));
    fleet.start_rollout(plan("2.0.0", 2)).expect("start v2");
    fleet.step();
    drain::<Drain>(&fleet);
    let held_at = fleet.rollout_status();
    assert_eq!(held_at.phase, Phase::Running);
    assert_eq!(held_at.hold, Some(Hold::Draining));
    assert!(matches!(
        fleet.control::<ResumeRollout>(),
        Err(RolloutControlError::InvalidPhase {
            phase: Phase::Running
        })
    ));
    assert!(drain::<Drain>(&fleet).draining, "resume ended the drain");
    for _ in 0..60 {
        fleet.step();
    }
    let still = fleet.rollout_status();
    assert_eq!(
        still.counts.pending, held_at.counts.pending,
        "started while draining"
    );
    assert_eq!(still.counts.in_flight, 0);
    // A pause taken during the drain outlives its end.
    fleet.control::<PauseRollout>().expect("pause");
    drain::<EndDrain>(&fleet);
    for _ in 0..10 {
        fleet.step();
    }
    assert_eq!(fleet.rollout_status().phase, Phase::Paused);
    assert_eq!(fleet.rollout_status().counts.pending, still.counts.pending);
    fleet.control::<ResumeRollout>().expect("resume");
    fleet.run_to_rest(3_000);
    let done = fleet.rollout_status();
    assert_eq!(done.phase, Phase::Completed);
    assert_all_intact(&fleet, &canisters, &sha256(&user_wasm(true)));
}

#[test]
fn a_manager_that_ran_out_of_cycles_re_arms_its_timer_and_blames_nobody() {
    let (fleet, canisters) = fleet_of(20);
    let v2 = user_wasm(true);
    fleet.publish(fleet.controller, "2.0.0", &v2);
    fleet.start_rollout(plan("2.0.0", 5)).expect("start");
    fleet.run_until(200, |s| s.counts.in_flight >= 5 && s.counts.done >= 2);

    // The manager runs dry mid-rollout: its timer is deactivated while it is frozen.
    let balance = fleet.sim.cycle_balance(fleet.manager);
    fleet.sim.fault_drain_cycles(fleet.manager);
    for _ in 0..300 {
        fleet.step();
    }
    // Topped up again; nothing moves by itself (the IC does not re-arm the timer)...
    fleet.sim.add_cycles(fleet.manager, balance);
    for _ in 0..30 {
        fleet.step();
    }
    // ...until the first update call reaches the manager: here an operator's resume, which is
    // refused (the rollout runs) but wakes the manager on its way in.
    let _ = fleet.control::<ResumeRollout>();
    fleet.run_to_rest(5_000);

    let st = fleet.rollout_status();
    assert_eq!(st.phase, Phase::Completed, "{st:?}");
    assert_eq!(
        st.counts.failed, 0,
        "the manager's failures booked as the release's"
    );
    assert_eq!(st.counts.rolled_back, 0);
    assert_eq!(
        st.counts.done + st.counts.deferred(),
        canisters.len() as u64
    );
    assert!(
        st.deferrals.manager > 0,
        "the frozen manager's failed calls are attributed to it: {:?}",
        st.deferrals
    );
    for r in fleet.rollout_results() {
        let rec = record(&fleet, r.canister_id);
        assert_ne!(rec.status, CanisterStatus::Failed, "{r:?}");
        assert_ne!(rec.status, CanisterStatus::Upgrading, "{r:?}");
    }
    // Deferred ones are still on v1, and running; a second rollout takes them.
    if st.counts.deferred() > 0 {
        let mut again = plan("2.0.0", 5);
        again.from_version = Some("1.0.0".into());
        fleet.start_rollout(again).expect("second rollout");
        fleet.run_to_rest(3_000);
    }
    assert_all_intact(&fleet, &canisters, &sha256(&v2));
    assert!(fleet.metrics().timer_silent_secs <= 2);
}

#[test]
fn no_pipeline_starts_that_the_managers_cycles_could_not_finish() {
    let (fleet, canisters) = fleet_of(12);
    let v2 = user_wasm(true);
    fleet.publish(fleet.controller, "2.0.0", &v2);
    // Leave the manager its freezing reserve plus cycles for three and a half pipelines.
    let m = fleet.metrics();
    let frozen = m.cycles_balance - m.liquid_cycles;
    let reserve = m.pipeline_cycles_reserve;
    assert_eq!(reserve, DEFAULT_PIPELINE_CYCLES_RESERVE);
    fleet.sim.fault_drain_cycles(fleet.manager);
    fleet
        .sim
        .add_cycles(fleet.manager, frozen + reserve * 7 / 2);

    let started = fleet.start_rollout(plan("2.0.0", 10)).expect("start");
    let mut held = None;
    for _ in 0..200 {
        fleet.step();
        let s = fleet.rollout_status();
        if let Some(h @ Hold::ManagerLowCycles { .. }) = &s.hold {
            if held.is_none() {
                // Shown in the metrics too, with the reason.
                let text = fleet.metrics_text();
                assert!(
                    text.contains("fleet_rollout_hold{reason=\"manager_low_cycles\"} 1"),
                    "{text}"
                );
            }
            held = Some(h.clone());
        }
    }
    assert!(held.is_some(), "the low balance is shown as the reason");
    let figures = replay(&fleet.pipeline_log(started.id));
    assert!(
        (1..=3).contains(&figures.max_in_flight),
        "{} in flight with cycles for 3",
        figures.max_in_flight
    );

    // A top-up lifts the hold by itself; no operator action.
    fleet.sim.add_cycles(fleet.manager, 100_000_000_000_000);
    fleet.run_to_rest(3_000);
    let st = fleet.rollout_status();
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.hold, None);
    assert_eq!(st.counts.done, canisters.len() as u64);
    assert_all_intact(&fleet, &canisters, &sha256(&v2));
    let kinds: Vec<EventKind> = fleet.rollout_events().into_iter().map(|e| e.kind).collect();
    assert!(kinds.iter().any(|k| matches!(k, EventKind::Held(_))));
    assert!(kinds.contains(&EventKind::HoldLifted));
}

#[test]
fn a_busy_canister_costs_the_stop_deadline_and_ends_deferred() {
    let (fleet, canisters) = fleet_of(6);
    let v2 = user_wasm(true);
    fleet.publish(fleet.controller, "2.0.0", &v2);
    let busy = canisters[3].1;
    fleet.sim.fault_hold_call_context(busy, true);
    let mut p = plan("2.0.0", 2);
    p.stop_deadline_secs = Some(10);
    p.retry = Some(RetryPolicy {
        stop_attempts: 3,
        backoff_base_ns: 5_000_000_000,
        backoff_max_ns: 20_000_000_000,
    });
    p.failure = Some(FailurePolicy {
        max_failed_percent: 0,
        max_consecutive_failures: 1,
        halt_scope: None,
    });
    let started = fleet.start_rollout(p).expect("start");
    let rounds = fleet.run_to_rest(2_000);

    let st = fleet.rollout_status();
    // Not halted although the policy halts on the first failure: busy is not a failure.
    assert_eq!(st.phase, Phase::Completed, "{st:?}");
    assert_eq!(st.counts.done, 5);
    assert_eq!(st.counts.deferred(), 1);
    assert_eq!(st.counts.failed, 0);
    assert_eq!(st.deferrals.environment, 3);
    let r = fleet
        .rollout_results()
        .into_iter()
        .find(|r| r.canister_id == busy)
        .unwrap();
    assert_eq!(r.outcome, Some(Outcome::Deferred));
    assert_eq!(r.failure, Some(Failure::StopTimedOut { attempts: 3 }));
    // Each attempt gave up at the manager's deadline, far below the IC's 5-minute timeout.
    let log = fleet.pipeline_log(started.id);
    let spans: Vec<(u64, u64)> = {
        let mut open = None;
        let mut spans = Vec::new();
        for e in log.iter().filter(|e| e.canister_id == busy) {
            match e.kind {
                PipelineLogKind::Started => open = Some(e.at),
                PipelineLogKind::Left { .. } => spans.push((open.take().unwrap(), e.at)),
                PipelineLogKind::Reissued { .. } => {}
            }
        }
        spans
    };
    assert_eq!(spans.len(), 3);
    for (from, to) in spans {
        let secs = (to - from) / 1_000_000_000;
        assert!((10..=20).contains(&secs), "an attempt took {secs} s");
    }
    assert!(rounds < 200, "{rounds} rounds");
    let rec = record(&fleet, busy);
    assert_eq!(rec.status, CanisterStatus::Active);
    assert_eq!(rec.current_release.unwrap().version, "1.0.0");
    assert!(rec.last_error.is_some());
    fleet.sim.fault_hold_call_context(busy, false);
    assert_all_intact(&fleet, &canisters[..3], &sha256(&v2));
    assert_all_intact(&fleet, &canisters[3..4], &sha256(&user_wasm(false)));
    assert_all_intact(&fleet, &canisters[4..], &sha256(&v2));
}

#[test]
fn refusals_name_the_real_reason() {
    let (fleet, canisters) = fleet_of(3);
    // Adoption by a caller without the role: not authorized, not "already registered".
    let arg = AdoptCanisterArg {
        canister_id: canisters[0].1,
        owner: None,
        subnet: None,
    };
    let r = fleet.ask::<AdoptCanister>(fleet_tests::user(77), (arg,));
    assert_eq!(r.into_result(), Err(AdoptCanisterError::NotAuthorized));
    // A plan that can never start is refused as such while another rollout runs.
    fleet.publish(fleet.controller, "2.0.0", &user_wasm(true));
    let mut slow = plan("2.0.0", 1);
    slow.limits = Some(Limits {
        max_in_flight: 1,
        starts_per_minute: 1,
        burst: 1,
        max_starts_per_tick: 1,
        per_subnet: None,
    });
    fleet.start_rollout(slow).expect("start");
    assert_eq!(
        fleet.start_rollout(RolloutPlanArg::to("9.9.9")),
        Err(StartRolloutError::UnknownRelease {
            version: "9.9.9".into()
        })
    );
    let mut bad = RolloutPlanArg::to("2.0.0");
    bad.stop_deadline_secs = Some(301);
    assert_eq!(
        fleet.start_rollout(bad),
        Err(StartRolloutError::Plan(PlanError::InvalidStopDeadline))
    );
    assert!(matches!(
        fleet.start_rollout(RolloutPlanArg::to("2.0.0")),
        Err(StartRolloutError::RolloutActive { .. })
    ));
}

/// A manager that is out of cycles for only a few seconds loses its timer all the same; the
/// first update call after the top-up notices it at once (the global timer reads 0), however
/// short the silence was.
#[test]
fn a_brief_dry_spell_is_noticed_by_the_next_call() {
    let (fleet, canisters) = fleet_of(6);
    let v2 = user_wasm(true);
    fleet.publish(fleet.controller, "2.0.0", &v2);
    fleet.start_rollout(plan("2.0.0", 2)).expect("start");
    fleet.run_until(100, |s| s.counts.done >= 1);
    let balance = fleet.sim.cycle_balance(fleet.manager);
    fleet.sim.fault_drain_cycles(fleet.manager);
    for _ in 0..3 {
        fleet.step();
    }
    fleet.sim.add_cycles(fleet.manager, balance);
    let _ = fleet.control::<ResumeRollout>();
    fleet.run_to_rest(500);
    assert_eq!(fleet.rollout_status().phase, Phase::Completed);
    assert_all_intact(&fleet, &canisters, &sha256(&v2));
}
