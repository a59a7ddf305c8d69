//! A staged rollout of v2 over a fleet of 200 v1 canisters holding user data: canary and
//! percentage waves with bake times, pause and resume mid-wave, limits checked from the
//! manager's own pipeline log; then an aborted rollout and a rollout that survives an upgrade
//! of the manager itself. Everything is asserted from outside: module hashes, controllers,
//! canister status, user data, and the manager's queries.

use candid::{encode_args, Principal};
use fleet_api::manager::method::{GetUserCanister, ListUserCanisters};
use fleet_api::manager::*;
use fleet_api::rollout::method::{
    AbortRollout, Drain, EndDrain, PauseRollout, RequestUpgrade, ResumeRollout, StartRollout,
};
use fleet_api::rollout::*;
use fleet_tests::rollout::*;
use fleet_tests::{padded, sha256, user_wasm, Fleet};
use std::time::Duration;

const CANISTERS: u32 = 200;
const NOTES: u32 = 2;

struct Setup {
    fleet: Fleet,
    /// (owner number, canister id)
    canisters: Vec<(u32, Principal)>,
}

fn setup() -> Setup {
    let fleet = fleet_for(CANISTERS);
    fleet.publish_default("1.0.0", &user_wasm(false));
    let canisters = fleet.provision_with_notes(CANISTERS, NOTES);
    Setup { fleet, canisters }
}

fn limits(in_flight: u32, per_minute: u32, burst: u32, per_tick: u32) -> Limits {
    Limits {
        max_in_flight: in_flight,
        starts_per_minute: per_minute,
        burst,
        max_starts_per_tick: per_tick,
        per_subnet: None,
    }
}

/// The most pipeline starts the manager's log shows between two timer ticks of its driver.
fn max_starts_between_ticks(log: &[PipelineLogEntry]) -> u64 {
    let mut per_tick = std::collections::BTreeMap::<u64, u64>::new();
    for e in log.iter().filter(|e| e.kind == PipelineLogKind::Started) {
        let tick = e.tick.expect("log entries carry their tick");
        *per_tick.entry(tick).or_default() += 1;
    }
    per_tick.values().copied().max().unwrap_or(0)
}

fn assert_fleet_on(s: &Setup, module: &[u8]) {
    for (n, id) in &s.canisters {
        let hash = s.fleet.sim.module_hash(*id).expect("a module");
        assert_eq!(hash.to_vec(), module, "module of {id}");
        assert!(s.fleet.is_running(*id), "{id} runs");
        let mut expected = vec![s.fleet.manager, recovery(*n)];
        expected.sort();
        assert_eq!(
            s.fleet.controllers_sorted(*id),
            expected,
            "controllers of {id}"
        );
        s.fleet.assert_notes(*n, *id, NOTES);
    }
}

fn list_page(
    fleet: &Fleet,
    filter: CanisterFilter,
    start_after: Option<Principal>,
    limit: u32,
) -> Result<UserCanisterPage, ListUserCanistersError> {
    let arg = ListUserCanistersArg {
        filter,
        start_after,
        limit: Some(limit),
    };
    fleet
        .ask::<ListUserCanisters>(fleet.controller, (arg,))
        .into_result()
}

fn list(fleet: &Fleet, filter: CanisterFilter, limit: u32) -> Vec<UserCanister> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = list_page(fleet, filter.clone(), after, limit);
        let page = page.expect("list_user_canisters");
        out.extend(page.canisters);
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// The canisters whose pipeline is in flight answer as `Upgrading` everywhere: by status,
/// in every other listing, one by one, and in the metrics; no other does.
fn assert_upgrading_is_in_flight(fleet: &Fleet) {
    let mut in_flight: Vec<Principal> = fleet
        .rollout_results()
        .into_iter()
        .filter(|r| !matches!(r.step, Step::Pending | Step::Busy | Step::Finished(_)))
        .map(|r| r.canister_id)
        .collect();
    in_flight.sort();
    assert!(!in_flight.is_empty());
    // Pages smaller than the set, so that paging goes through it.
    let upgrading: Vec<Principal> =
        list(fleet, CanisterFilter::Status(CanisterStatus::Upgrading), 3)
            .into_iter()
            .map(|c| {
                assert_eq!(c.status, CanisterStatus::Upgrading);
                c.canister_id
            })
            .collect();
    assert_eq!(upgrading, in_flight);
    let active = list(fleet, CanisterFilter::Status(CanisterStatus::Active), 7);
    assert!(active.iter().all(|c| c.status == CanisterStatus::Active));
    assert!(active
        .iter()
        .all(|c| in_flight.binary_search(&c.canister_id).is_err()));
    assert_eq!(active.len() + in_flight.len(), CANISTERS as usize);
    let all = list(fleet, CanisterFilter::All, 50);
    assert_eq!(all.len(), CANISTERS as usize);
    for c in &all {
        let upgrading = in_flight.binary_search(&c.canister_id).is_ok();
        assert_eq!(c.status == CanisterStatus::Upgrading, upgrading, "{c:?}");
    }
    let one = fleet.ask::<GetUserCanister>(fleet.controller, (in_flight[0],));
    assert_eq!(one.into_result().unwrap().status, CanisterStatus::Upgrading);
    let m = fleet.metrics();
    let count = |status| {
        m.by_status
            .iter()
            .find(|s| s.status == status)
            .map_or(0, |s| s.canisters)
    };
    assert_eq!(count(CanisterStatus::Upgrading), in_flight.len() as u64);
    assert_eq!(count(CanisterStatus::Active), active.len() as u64);
}

#[test]
fn staged_rollout_with_pause_and_resume_then_abort_then_manager_upgrade() {
    let s = setup();
    let fleet = &s.fleet;
    let v2 = user_wasm(true);
    fleet.publish(fleet.controller, "2.0.0", &v2);

    // ---- A staged rollout v1 → v2 -------------------------------------------------------
    let lim = limits(20, 300, 20, 10);
    let mut plan = RolloutPlanArg::to("2.0.0");
    plan.from_version = Some("1.0.0".into());
    plan.canary = Some(Canary::Count(5));
    plan.waves_percent = Some(vec![10, 50, 100]);
    plan.bake_secs = Some(30);
    plan.limits = Some(lim.clone());
    let started = fleet.start_rollout(plan.clone()).expect("start_rollout");
    assert_eq!(started.canisters, CANISTERS as u64);
    let sizes: Vec<u64> = started.waves.iter().map(|w| w.size).collect();
    assert_eq!(sizes, vec![5, 20, 78, 97]);
    assert_eq!(started.summary.selected, CANISTERS as u64);

    // A second rollout is refused while this one runs.
    assert!(matches!(
        fleet.start_rollout(plan.clone()),
        Err(StartRolloutError::RolloutActive { id, .. }) if id == started.id
    ));
    // Only deployers start rollouts.
    fleet.refused_at_ingress::<StartRollout>(owner(1), (plan.clone(),));

    // Pause in the middle of the 50% wave: in-flight pipelines finish, nothing new starts.
    fleet.run_until(5_000, |st| {
        st.current_wave == 2 && st.waves[2].started >= 10
    });
    assert_upgrading_is_in_flight(fleet);
    let paused = fleet.control::<PauseRollout>().expect("pause");
    assert_eq!(paused.phase, Phase::Paused);
    fleet.run_until(1_000, |st| st.counts.in_flight == 0);
    let at_rest = fleet.rollout_status();
    for _ in 0..120 {
        fleet.step();
    }
    let still = fleet.rollout_status();
    assert_eq!(still.counts, at_rest.counts, "nothing starts while paused");
    assert!(still.counts.pending > 0);
    // Pausing twice is refused with the phase.
    assert_eq!(
        fleet.control::<PauseRollout>(),
        Err(RolloutControlError::InvalidPhase {
            phase: Phase::Paused
        })
    );
    fleet.control::<ResumeRollout>().expect("resume");
    fleet.run_to_rest(20_000);

    let status = fleet.rollout_status();
    assert_eq!(status.phase, Phase::Completed);
    assert_eq!(status.counts.done, CANISTERS as u64);
    assert!(status.waves.iter().all(|w| w.completed_at.is_some()));
    // Bake times were kept between stages.
    for pair in status.waves.windows(2) {
        let done = pair[0].completed_at.unwrap();
        let opened = pair[1].opened_at.unwrap();
        assert!(
            opened >= done + 30_000_000_000,
            "stage opened before its bake time"
        );
    }
    assert_fleet_on(&s, &sha256(&v2));

    // The registry follows, and so do the metrics.
    let on_v2 = list_page(fleet, CanisterFilter::Release("2.0.0".into()), None, 500);
    assert_eq!(on_v2.unwrap().canisters.len(), CANISTERS as usize);
    let m = fleet.metrics();
    assert_eq!(m.counters.upgraded, CANISTERS as u64);
    assert!(m.by_release.contains(&ReleaseCount {
        version: Some("2.0.0".into()),
        canisters: CANISTERS as u64
    }));
    let text = fleet.metrics_text();
    assert!(text.contains(&format!(
        "fleet_user_canisters_by_release{{release=\"2.0.0\"}} {CANISTERS}\n"
    )));
    assert!(text.contains(&format!(
        "fleet_pipeline_outcomes_total{{outcome=\"upgraded\"}} {CANISTERS}\n"
    )));

    // The limits held, as the manager's own log shows.
    let log = fleet.pipeline_log(started.id);
    let figures = replay(&log);
    assert_eq!(figures.starts, CANISTERS as u64);
    assert!(
        figures.max_in_flight <= lim.max_in_flight as u64,
        "{figures:?}"
    );
    assert!(
        figures.max_starts_per_minute <= (lim.starts_per_minute + lim.burst) as u64,
        "{:?}",
        figures.max_starts_per_minute
    );
    // Starts between two timer ticks, slot refills included, stay within the per-tick cap.
    let per_tick = max_starts_between_ticks(&log);
    assert!(
        per_tick <= lim.max_starts_per_tick as u64,
        "{per_tick} starts between two ticks"
    );
    // ... and were used: the in-flight limit was reached.
    assert_eq!(figures.max_in_flight, lim.max_in_flight as u64);
    let events = fleet.rollout_events();
    assert!(events.iter().any(|e| e.kind == EventKind::Paused));
    assert!(events.iter().any(|e| e.kind == EventKind::Resumed));
    assert!(matches!(events.last().unwrap().kind, EventKind::Completed));

    // ---- Abort mid-wave: pending ones dropped, none left stopped ------------------------
    let v2b = padded(&v2, 16);
    fleet.publish(fleet.controller, "2.0.0+b", &v2b);
    let mut plan = RolloutPlanArg::to("2.0.0+b");
    plan.canary = Some(Canary::None);
    plan.waves_percent = Some(vec![100]);
    plan.limits = Some(limits(15, 600, 15, 15));
    let aborted = fleet.start_rollout(plan).expect("start second rollout");
    fleet.run_until(1_000, |st| st.counts.done >= 20 && st.counts.in_flight > 0);
    let st = fleet.control::<AbortRollout>().expect("abort");
    assert_eq!(st.phase, Phase::Aborting);
    fleet.run_to_rest(2_000);
    let st = fleet.rollout_status();
    assert_eq!(st.phase, Phase::Aborted);
    assert!(st.counts.cancelled > 0, "{:?}", st.counts);
    assert_eq!(st.counts.done + st.counts.cancelled, CANISTERS as u64);
    let results = fleet.rollout_results();
    assert_eq!(results.len(), CANISTERS as usize);
    for r in &results {
        assert!(
            fleet.is_running(r.canister_id),
            "{} left stopped",
            r.canister_id
        );
        let hash = fleet.sim.module_hash(r.canister_id).unwrap().to_vec();
        match r.outcome {
            Some(Outcome::Done) => assert_eq!(hash, sha256(&v2b)),
            Some(Outcome::Cancelled) => assert_eq!(hash, sha256(&v2)),
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let log = fleet.pipeline_log(aborted.id);
    let figures = replay(&log);
    assert!(figures.max_in_flight <= 15);
    assert!(max_starts_between_ticks(&log) <= 15);

    // ---- Drain, upgrade the manager mid-rollout, finish ---------------------------------
    let mut plan = RolloutPlanArg::to("2.0.0+b");
    plan.canary = Some(Canary::None);
    plan.waves_percent = Some(vec![100]);
    plan.limits = Some(limits(10, 600, 10, 10));
    let resumed = fleet.start_rollout(plan).expect("start third rollout");
    fleet.run_until(1_000, |st| st.counts.done >= 10 && st.counts.in_flight > 0);
    let drain = |fleet: &Fleet| {
        let d = fleet.ask::<Drain>(fleet.controller, ());
        d.into_result().expect("drain")
    };
    // Upgrading while calls are in flight is refused by pre_upgrade.
    let manager_wasm = wasm_build::wasm("fleet_manager", &[]);
    let first = drain(fleet);
    assert!(first.draining);
    if first.calls_in_flight > 0 {
        let refused = fleet.sim.upgrade_canister(
            fleet.manager,
            manager_wasm.clone(),
            encode_args(()).unwrap(),
            Some(fleet.controller),
        );
        assert!(
            refused.is_err(),
            "upgrade with calls in flight must be refused"
        );
    }
    let mut rounds = 0;
    while !drain(fleet).ready {
        fleet.step();
        rounds += 1;
        assert!(rounds < 2_000, "drain never became ready");
    }
    let before = fleet.rollout_status();
    // A drain holds starts; the rollout's phase is the operator's and stays Running.
    assert_eq!(before.phase, Phase::Running);
    assert_eq!(before.hold, Some(Hold::Draining));
    assert!(before.counts.pending > 0);
    // A request while drained is refused.
    let req = fleet.ask::<RequestUpgrade>(owner(0), (RequestUpgradeArg::default(),));
    assert_eq!(req.into_result(), Err(RequestUpgradeError::Draining));
    fleet
        .sim
        .stop_canister(fleet.manager, Some(fleet.controller))
        .expect("stop manager");
    fleet
        .sim
        .upgrade_canister(
            fleet.manager,
            manager_wasm,
            encode_args(()).unwrap(),
            Some(fleet.controller),
        )
        .expect("upgrade manager");
    fleet
        .sim
        .start_canister(fleet.manager, Some(fleet.controller))
        .expect("start manager");
    let after = fleet.rollout_status();
    assert_eq!(after.id, before.id);
    assert_eq!(after.counts, before.counts, "state survives the upgrade");
    assert_eq!(
        after.hold,
        Some(Hold::Draining),
        "the drain survives it too"
    );
    let ended = fleet.ask::<EndDrain>(fleet.controller, ());
    assert!(!ended.into_result().expect("end_drain").draining);
    fleet.sim.advance_time(Duration::from_secs(1));
    fleet.run_to_rest(5_000);
    let done = fleet.rollout_status();
    assert_eq!(done.phase, Phase::Completed);
    assert_eq!(done.counts.done + done.counts.skipped, done.counts.total());
    assert_fleet_on(&s, &sha256(&v2b));
    let log = fleet.pipeline_log(resumed.id);
    assert!(replay(&log).max_in_flight <= 10);
    assert!(max_starts_between_ticks(&log) <= 10);
}
