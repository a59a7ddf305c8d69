//! Rollouts driven end to end on a fake IC, with invariants checked after every event:
//! in-flight limit, per-tick cap, token bucket, one operation per canister, none left stopped.

mod common;

use std::time::Instant;

use common::*;
use rollout_core::rollout::LOAD_PER_STEP;
use rollout_core::*;

const T0: Nanos = 1_700_000_000 * SECOND;

fn fast_plan() -> RolloutPlan {
    let mut p = RolloutPlan::new(release(NEW));
    p.from_release = Some(hash(OLD));
    p.canary = Canary::Count(100);
    p.bake_ns = MINUTE;
    p.limits = Limits {
        max_in_flight: 2_000,
        starts_per_minute: 60_000,
        burst: 1_000,
        max_starts_per_tick: 1_000,
        per_subnet: None,
    };
    p.failure = FailurePolicy {
        max_failed_percent: 5,
        max_consecutive_failures: 0,
        halt_scope: HaltScope::Fleet,
    };
    p.snapshot.keep_ns = Some(10 * MINUTE);
    p.retry.backoff_base_ns = 10 * SECOND;
    p
}

#[test]
fn upgrades_100k_canisters_within_limits() {
    let n = 100_000;
    let fleet = fleet(n);
    let plan = fast_plan();
    let t = Instant::now();
    let mut sim = Sim::new(&fleet, &plan, T0);
    let planned = t.elapsed();
    sim.run(T0 + 24 * 60 * MINUTE);
    let total = t.elapsed();

    let status = sim.rollout.status(sim.now);
    assert_eq!(status.phase, Phase::Completed);
    assert_eq!(status.counts.done, n);
    assert_eq!(status.waves.len(), 5, "canary + 4 waves");
    assert!(sim
        .ic
        .canisters
        .values()
        .all(|k| k.module == hash(NEW) && k.snapshots.is_empty()));
    sim.assert_none_stopped();
    sim.assert_rate_respected();
    assert_eq!(sim.max_in_flight_seen, plan.limits.max_in_flight as u64);
    // Each wave opened only after the previous one completed and baked.
    for w in status.waves.windows(2) {
        assert!(w[1].opened_at.unwrap() >= w[0].completed_at.unwrap() + plan.bake_ns);
    }
    println!(
        "100k rollout: plan+load {planned:?}, drive {:?} ({} ticks, {} results, {} calls), \
         simulated {:.1} min",
        total - planned,
        sim.ticks,
        sim.results,
        sim.ic.ops,
        (sim.now - T0) as f64 / MINUTE as f64
    );
}

/// A start writes the records and queue entries of [`LOAD_PER_STEP`] members and stages the
/// others; the ticks that follow write them, then open the first wave. Meanwhile status counts
/// the whole cohort, nothing starts and requests are refused as such.
#[test]
fn a_large_cohort_is_written_over_several_ticks_before_its_first_wave_opens() {
    let n = 2 * LOAD_PER_STEP as u64 + 123;
    let fleet = fleet(n);
    let plan = fast_plan();
    let cohort = select(&plan, &fleet).unwrap();
    let mut r = Rollout::start(1, manager(), &plan, cohort, MemStore::new(), T0).unwrap();
    assert!(r.is_loading());
    assert_eq!(r.store().len(), LOAD_PER_STEP as u64);
    assert_eq!(r.store().staged_len(), n - LOAD_PER_STEP as u64);
    let status = r.status(T0);
    assert_eq!(status.counts.pending, n);
    assert_eq!(status.waves.iter().map(|w| w.size).sum::<u64>(), n);
    assert_eq!(status.waves[0].opened_at, None);
    assert_eq!(
        r.idle_until(),
        None,
        "the driver keeps ticking while it loads"
    );
    let last = pid(n - 1);
    assert_eq!(
        r.request(last, None, T0),
        Err(RequestError::Loading {
            left: n - LOAD_PER_STEP as u64
        })
    );

    assert!(
        r.tick(T0 + SECOND).is_empty(),
        "nothing starts while loading"
    );
    assert!(r.is_loading());
    assert_eq!(r.store().staged_len(), 123);

    assert!(r.tick(T0 + 2 * SECOND).is_empty());
    assert!(!r.is_loading());
    assert_eq!(r.store().len(), n);
    assert_eq!(r.status(T0).waves[0].opened_at, Some(T0 + 2 * SECOND));
    assert_eq!(
        r.tick(T0 + 3 * SECOND).len(),
        100,
        "the canary starts at the next tick"
    );
    for c in &fleet {
        let rec = r.record(&c.id).expect("every member has its record");
        assert_eq!(rec.recovery, c.recovery);
    }
    assert!(r.request(last, None, T0 + 2 * SECOND).is_ok());
}

/// An abort while the cohort's records are still being written: the ticks finish writing
/// them, then cancel every one; nothing starts.
#[test]
fn an_abort_while_loading_cancels_the_whole_cohort() {
    let n = LOAD_PER_STEP as u64 + 10;
    let plan = fast_plan();
    let cohort = select(&plan, &fleet(n)).unwrap();
    let mut r = Rollout::start(1, manager(), &plan, cohort, MemStore::new(), T0).unwrap();
    assert!(r.is_loading());
    r.abort(T0).unwrap();
    let mut now = T0;
    while !r.state().phase.is_finished() {
        now += SECOND;
        assert!(now < T0 + MINUTE, "{:?}", r.status(now));
        assert!(r.tick(now).is_empty(), "nothing starts");
    }
    let s = r.status(now);
    assert_eq!(s.phase, Phase::Aborted);
    assert_eq!((s.counts.cancelled, s.counts.pending), (n, 0));
}

#[test]
fn faults_on_100k_end_in_the_right_states() {
    let n = 100_000u64;
    let fleet = fleet(n);
    let mut plan = fast_plan();
    plan.failure.max_failed_percent = 50;
    let mut sim = Sim::new(&fleet, &plan, T0);
    // Spread faults over the id space; the canary (first 100 ids) stays clean.
    let pick = |k: u64| (1..n / 1000).map(move |i| pid(i * 1000 + k));
    sim.ic.faults.install_fails.extend(pick(1));
    sim.ic.faults.unhealthy.extend(pick(2));
    sim.ic.faults.stop_timeouts.extend(pick(3).map(|c| (c, 2)));
    sim.ic
        .faults
        .stop_timeouts
        .extend(pick(4).map(|c| (c, 100)));
    sim.ic.faults.start_failures.extend(pick(5).map(|c| (c, 3)));
    sim.run(T0 + 24 * 60 * MINUTE);

    let faulty = n / 1000 - 1;
    let status = sim.rollout.status(sim.now);
    assert_eq!(status.phase, Phase::Completed);
    assert_eq!(status.counts.rolled_back, faulty);
    // Only the release's failures count as failed; the canisters that never stopped are
    // deferred (their environment), left running their old release.
    assert_eq!(status.counts.failed, faulty);
    assert_eq!(status.counts.deferred(), faulty);
    assert_eq!(status.counts.done, n - 3 * faulty);
    assert_eq!(
        status.deferrals.environment,
        faulty * plan.retry.stop_attempts as u64 + 2 * faulty,
        "every busy attempt is a deferral"
    );
    assert_eq!(status.deferrals.manager, 0);
    sim.assert_none_stopped();
    sim.assert_rate_respected();

    let rec = |c| sim.rollout.record(&c).unwrap();
    for c in pick(1) {
        let r = rec(c);
        assert_eq!(r.outcome(), Some(Outcome::Failed));
        assert!(matches!(r.failure, Some(Failure::InstallFailed(_))));
        assert_eq!(
            sim.ic.canisters[&c].module,
            hash(OLD),
            "IC kept the old code"
        );
    }
    for c in pick(2) {
        let r = rec(c);
        assert_eq!(r.outcome(), Some(Outcome::RolledBack));
        assert!(matches!(r.failure, Some(Failure::Unhealthy { .. })));
        assert_eq!(sim.ic.canisters[&c].module, hash(OLD), "snapshot restored");
    }
    for c in pick(3) {
        let r = rec(c);
        assert_eq!(
            r.outcome(),
            Some(Outcome::Done),
            "done after two busy retries"
        );
        assert_eq!(r.stop_attempts, 2);
    }
    for c in pick(4) {
        let r = rec(c);
        assert_eq!(r.outcome(), Some(Outcome::Deferred));
        assert_eq!(sim.ic.canisters[&c].module, hash(OLD));
        assert_eq!(
            r.failure,
            Some(Failure::StopTimedOut {
                attempts: plan.retry.stop_attempts
            })
        );
    }
    for c in pick(5) {
        assert_eq!(
            rec(c).outcome(),
            Some(Outcome::Done),
            "start retried until it ran"
        );
    }
}

#[test]
fn busy_canister_is_retried_after_backoff() {
    let fleet = fleet(3);
    let mut plan = fast_plan();
    plan.canary = Canary::None;
    plan.snapshot.keep_ns = None;
    let mut sim = Sim::new(&fleet, &plan, T0);
    let c = pid(1);
    sim.ic.faults.stop_timeouts.insert(c, 2);
    sim.run_until(
        |s| s.rollout.record(&c).unwrap().step == Step::Busy,
        T0 + MINUTE * 60,
    );
    let first_busy = sim.now;
    assert!(
        sim.ic.canisters[&c].state == RunState::Running,
        "started again"
    );
    assert_eq!(sim.rollout.status(sim.now).counts.busy, 1);
    // Not restarted before the backoff.
    sim.run_until(
        |s| s.rollout.record(&c).unwrap().step != Step::Busy,
        T0 + MINUTE * 60,
    );
    assert!(sim.now >= first_busy + plan.retry.backoff(1));
    sim.run_until(
        |s| {
            s.rollout.record(&c).unwrap().step == Step::Busy
                && s.rollout.record(&c).unwrap().stop_attempts == 2
        },
        T0 + MINUTE * 60,
    );
    let second_busy = sim.now;
    sim.run_until(
        |s| s.rollout.record(&c).unwrap().step != Step::Busy,
        T0 + MINUTE * 60,
    );
    assert!(
        sim.now >= second_busy + plan.retry.backoff(2),
        "backoff doubles"
    );
    sim.run(T0 + MINUTE * 60);
    assert_eq!(
        sim.rollout.record(&c).unwrap().outcome(),
        Some(Outcome::Done)
    );
}

fn slow_plan() -> RolloutPlan {
    let mut p = fast_plan();
    p.limits = Limits {
        max_in_flight: 20,
        starts_per_minute: 600,
        burst: 10,
        max_starts_per_tick: 10,
        per_subnet: None,
    };
    p
}

#[test]
fn rate_and_tick_caps_bound_starts() {
    let fleet = fleet(5_000);
    let mut plan = slow_plan();
    plan.limits.max_in_flight = 1_000;
    plan.canary = Canary::None;
    plan.waves_percent = vec![100];
    let mut sim = Sim::new(&fleet, &plan, T0);
    sim.run(T0 + 24 * 60 * MINUTE);
    sim.assert_rate_respected();
    assert_eq!(sim.max_starts_per_tick_seen, 10);
    // The bucket is the binding limit: 5000 starts at 600/min take at least 8 minutes.
    let span = sim.starts.last().unwrap() - sim.starts[0];
    assert!(span >= (5_000 - 10) * MINUTE / 600, "span {span}");
}

#[test]
fn refills_between_ticks_share_the_tick_cap() {
    // Slots free up many times between two ticks; each refill may only use what is left of
    // the tick's cap, so the starts between two ticks never exceed it.
    let fleet = fleet(100);
    let mut plan = fast_plan();
    plan.canary = Canary::None;
    plan.waves_percent = vec![100];
    plan.limits = Limits {
        max_in_flight: 3,
        starts_per_minute: 100_000,
        burst: 100_000,
        max_starts_per_tick: 5,
        per_subnet: None,
    };
    let mut sim = Sim::new(&fleet, &plan, T0);
    sim.refill_on_free = true;
    sim.tick_every = 30 * SECOND;
    sim.run(T0 + 24 * 60 * MINUTE);
    assert_eq!(sim.rollout.state().counts.done, 100);
    assert_eq!(sim.max_starts_between_ticks_seen, 5);
    // Refills did start pipelines (a tick starts at most 3, the in-flight limit).
    assert!(sim
        .starts
        .iter()
        .any(|t| !(t - T0).is_multiple_of(30 * SECOND)));
}

#[test]
fn halts_when_wave_failure_threshold_is_passed() {
    let fleet = fleet(2_000);
    let mut plan = slow_plan();
    plan.canary = Canary::Count(20);
    plan.failure.max_failed_percent = 10;
    let mut sim = Sim::new(&fleet, &plan, T0);
    // 3 of 20 canaries unhealthy: 15% > 10%.
    for i in [2, 7, 11] {
        sim.ic.faults.unhealthy.insert(pid(i));
    }
    sim.run_until(
        |s| matches!(s.rollout.state().phase, Phase::Halted(_)),
        T0 + 60 * MINUTE,
    );
    assert_eq!(
        sim.rollout.state().phase,
        Phase::Halted(HaltReason::WaveFailureThreshold {
            wave: 0,
            failed: 3,
            size: 20
        })
    );
    // In-flight pipelines finish, nothing new starts, wave 1 never opens.
    let starts = sim.starts.len();
    let deadline = sim.now + 30 * MINUTE;
    while sim.now < deadline {
        sim.step();
    }
    assert_eq!(sim.starts.len(), starts);
    let status = sim.rollout.status(sim.now);
    assert_eq!(status.counts.in_flight, 0);
    assert_eq!(status.waves[1].started, 0);
    sim.assert_none_stopped();
    // The operator resumes: the rollout completes.
    sim.rollout.resume(sim.now).unwrap();
    sim.run(T0 + 24 * 60 * MINUTE);
    assert_eq!(sim.rollout.state().phase, Phase::Completed);
}

#[test]
fn halts_after_consecutive_failures() {
    let fleet = fleet(500);
    let mut plan = slow_plan();
    plan.canary = Canary::None;
    plan.failure = FailurePolicy {
        max_failed_percent: 100,
        max_consecutive_failures: 4,
        halt_scope: HaltScope::Fleet,
    };
    plan.limits.max_in_flight = 1;
    let mut sim = Sim::new(&fleet, &plan, T0);
    for i in 0..500 {
        sim.ic.faults.install_fails.insert(pid(i));
    }
    sim.run_until(
        |s| matches!(s.rollout.state().phase, Phase::Halted(_)),
        T0 + 60 * MINUTE,
    );
    assert_eq!(
        sim.rollout.state().phase,
        Phase::Halted(HaltReason::ConsecutiveFailures { count: 4 })
    );
    assert_eq!(sim.rollout.status(sim.now).counts.failed, 4);
    sim.assert_none_stopped();
}

#[test]
fn pause_lets_in_flight_finish_and_resume_continues() {
    let fleet = fleet(1_000);
    let mut plan = slow_plan();
    plan.canary = Canary::None;
    plan.waves_percent = vec![100];
    let mut sim = Sim::new(&fleet, &plan, T0);
    sim.run_until(|s| s.rollout.state().counts.in_flight == 20, T0 + MINUTE);
    sim.rollout.pause(sim.now).unwrap();
    assert!(sim.rollout.pause(sim.now).is_err(), "already paused");
    let starts = sim.starts.len();
    let until = sim.now + 10 * MINUTE;
    while sim.now < until {
        sim.step();
    }
    assert_eq!(sim.starts.len(), starts, "no new starts while paused");
    let c = sim.rollout.status(sim.now).counts;
    assert_eq!(
        (c.in_flight, c.done),
        (0, starts as u64),
        "in-flight ones finished"
    );
    sim.rollout.resume(sim.now).unwrap();
    sim.run(T0 + 24 * 60 * MINUTE);
    assert_eq!(sim.rollout.state().phase, Phase::Completed);
    assert_eq!(sim.rollout.status(sim.now).counts.done, 1_000);
}

#[test]
fn abort_drops_pending_and_leaves_none_stopped() {
    let fleet = fleet(10_000);
    let mut plan = slow_plan();
    plan.canary = Canary::None;
    plan.limits.max_in_flight = 200;
    plan.limits.burst = 200;
    plan.limits.max_starts_per_tick = 200;
    let mut sim = Sim::new(&fleet, &plan, T0);
    // Abort while canisters are stopped or being snapshotted.
    sim.run_until(
        |s| {
            s.ic.canisters
                .values()
                .filter(|k| k.state == RunState::Stopped)
                .count()
                > 50
        },
        T0 + MINUTE,
    );
    let was_stopped: Vec<Principal> = sim
        .ic
        .canisters
        .iter()
        .filter(|(_, k)| k.state == RunState::Stopped)
        .map(|(c, _)| *c)
        .collect();
    sim.rollout.abort(sim.now).unwrap();
    assert!(sim.rollout.abort(sim.now).is_err());
    sim.run(T0 + 24 * 60 * MINUTE);
    let status = sim.rollout.status(sim.now);
    assert_eq!(status.phase, Phase::Aborted);
    sim.assert_none_stopped();
    let c = &status.counts;
    assert_eq!((c.pending, c.in_flight, c.busy), (0, 0, 0));
    assert!(c.cancelled > 9_000, "pending dropped: {c:?}");
    assert_eq!(c.done + c.cancelled, 10_000);
    for id in was_stopped {
        let r = sim.rollout.record(&id).unwrap();
        // Stopped before install: started again and cancelled; installed ones finish.
        match r.outcome() {
            Some(Outcome::Cancelled) => assert_eq!(sim.ic.canisters[&id].module, hash(OLD)),
            Some(Outcome::Done) => assert_eq!(sim.ic.canisters[&id].module, hash(NEW)),
            o => panic!("unexpected {o:?}"),
        }
    }
}

#[test]
fn owner_request_jumps_the_queue() {
    let fleet = fleet(1_000);
    let mut plan = slow_plan();
    plan.canary = Canary::Count(10);
    let mut sim = Sim::new(&fleet, &plan, T0);
    let late = pid(999); // last wave
    let ticket = sim.rollout.request(late, None, sim.now).unwrap();
    assert_eq!(ticket.rollout, 1);
    // Same ticket when asked again.
    assert_eq!(sim.rollout.request(late, None, sim.now).unwrap(), ticket);
    sim.step(); // first tick
    assert!(
        sim.rollout.record(&late).unwrap().in_flight(),
        "started on the first tick"
    );
    // A canister outside the cohort joins with its registry entry.
    let outsider = FleetCanister {
        id: pid(5_000),
        ..fleet[0].clone()
    };
    sim.ic
        .canisters
        .insert(outsider.id, sim.ic.canisters[&fleet[0].id].clone());
    let member = CohortMember {
        id: outsider.id,
        recovery: recovery_of(0),
        expected_module_hash: Some(hash(OLD)),
        snapshot: None,
        subnet: None,
    };
    assert_eq!(
        sim.rollout.request(outsider.id, None, sim.now),
        Err(RequestError::NotInCohort)
    );
    sim.rollout
        .request(outsider.id, Some(member), sim.now)
        .unwrap();
    sim.run(T0 + 24 * 60 * MINUTE);
    let s = sim.rollout.status(sim.now);
    assert_eq!(s.counts.done, 1_001);
    assert_eq!(s.requests.outcomes.done, 1);
    assert!(matches!(
        sim.rollout.request(late, None, sim.now),
        Err(RequestError::NotAccepting { .. })
    ));
}

#[test]
fn restore_rollout_loads_the_fleet_snapshots() {
    // Upgrade 50 canisters with snapshots kept, then restore 10 of them.
    let fleet = fleet(50);
    let mut plan = slow_plan();
    plan.canary = Canary::None;
    plan.snapshot.keep_ns = None;
    let mut sim = Sim::new(&fleet, &plan, T0);
    sim.run(T0 + 60 * MINUTE);
    let chosen: Vec<CohortMember> = (0..10)
        .map(|i| {
            let r = sim.rollout.record(&pid(i)).unwrap();
            CohortMember {
                id: pid(i),
                recovery: r.recovery,
                expected_module_hash: Some(hash(NEW)),
                snapshot: r.snapshot,
                subnet: None,
            }
        })
        .collect();
    let restore = rollout::RestorePlan {
        release: release(OLD),
        canisters: chosen,
        limits: plan.limits.clone(),
        failure: plan.failure.clone(),
        retry: plan.retry.clone(),
    };
    sim.rollout = Rollout::start_restore(2, manager(), restore, MemStore::new(), sim.now).unwrap();
    sim.run(sim.now + 60 * MINUTE);
    let s = sim.rollout.status(sim.now);
    assert_eq!((s.phase, s.counts.restored), (Phase::Completed, 10));
    for i in 0..50 {
        let want = if i < 10 { OLD } else { NEW };
        assert_eq!(sim.ic.canisters[&pid(i)].module, hash(want));
    }
    sim.assert_none_stopped();
}

/// Counts store operations, to show that a tick's cost does not grow with the fleet.
struct Counting {
    inner: MemStore,
    ops: std::rc::Rc<std::cell::Cell<u64>>,
}

impl Counting {
    fn bump(&self) {
        self.ops.set(self.ops.get() + 1);
    }
}

impl RolloutStore for Counting {
    fn get(&self, id: &Principal) -> Option<CanisterRecord> {
        self.bump();
        self.inner.get(id)
    }
    fn put(&mut self, id: Principal, record: CanisterRecord) {
        self.bump();
        self.inner.put(id, record)
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn page(&self, after: Option<Principal>, limit: usize) -> Vec<(Principal, CanisterRecord)> {
        self.inner.page(after, limit)
    }
    fn enqueue(&mut self, key: QueueKey, id: Principal) {
        self.bump();
        self.inner.enqueue(key, id)
    }
    fn dequeue(&mut self, key: &QueueKey) -> Option<Principal> {
        self.bump();
        self.inner.dequeue(key)
    }
    fn first_in(&self, from: QueueKey, to: QueueKey) -> Option<(QueueKey, Principal)> {
        self.bump();
        self.inner.first_in(from, to)
    }
    fn is_in_flight(&self, id: &Principal) -> bool {
        self.bump();
        self.inner.is_in_flight(id)
    }
    fn in_flight_page(&self, after: Option<Principal>, limit: usize) -> Vec<Principal> {
        self.bump();
        self.inner.in_flight_page(after, limit)
    }

    /// Not counted: only the driver's invariant check asks it.
    fn in_flight_len(&self) -> u64 {
        self.inner.in_flight_len()
    }
    fn stage(&mut self, id: Principal, record: CanisterRecord) {
        self.inner.stage(id, record)
    }
    fn staged_len(&self) -> u64 {
        self.inner.staged_len()
    }
    fn take_staged(&mut self, limit: usize) -> Vec<(Principal, CanisterRecord)> {
        self.inner.take_staged(limit)
    }
    fn push_event(&mut self, seq: u64, event: Event) {
        self.inner.push_event(seq, event)
    }
    fn drop_event(&mut self, seq: u64) {
        self.inner.drop_event(seq)
    }
    fn events(&self, from: u64, limit: usize) -> Vec<(u64, Event)> {
        self.inner.events(from, limit)
    }
    fn clear(&mut self) {
        self.inner.clear()
    }
}

#[test]
fn tick_cost_is_independent_of_fleet_size() {
    let mut plan = slow_plan();
    plan.canary = Canary::None;
    plan.waves_percent = vec![100];
    let cost = |n: u64| {
        let ops = std::rc::Rc::new(std::cell::Cell::new(0));
        let store = Counting {
            inner: MemStore::new(),
            ops: ops.clone(),
        };
        let cohort = select(&plan, &fleet(n)).unwrap();
        let mut r = Rollout::start(1, manager(), &plan, cohort, store, T0).unwrap();
        // A large cohort's records are written first, each tick a bounded batch.
        while r.is_loading() {
            assert!(r.tick(T0).is_empty());
        }
        ops.set(0);
        let started = r.tick(T0).len();
        let idle = {
            let before = ops.get();
            r.tick(T0 + 1); // bucket empty: nothing to start
            ops.get() - before
        };
        (started, ops.get(), idle)
    };
    let small = cost(1_000);
    let large = cost(100_000);
    assert_eq!(small.0, 10);
    assert_eq!(small, large, "(starts, store ops, idle tick ops)");
}

#[test]
fn event_log_is_bounded() {
    let fleet = fleet(300);
    let mut plan = slow_plan();
    plan.canary = Canary::None;
    plan.failure.max_failed_percent = 100;
    let mut sim = Sim::new(&fleet, &plan, T0);
    sim.rollout.set_event_capacity(50);
    for i in 0..300 {
        sim.ic.faults.install_fails.insert(pid(i)); // one event per canister
    }
    sim.run(T0 + 24 * 60 * MINUTE);
    let events = sim.rollout.events(0, 1_000);
    assert_eq!(events.len(), 50);
    assert_eq!(events.last().unwrap().1.kind, EventKind::Completed);
    assert!(events.windows(2).all(|w| w[0].0 + 1 == w[1].0));
}

#[test]
fn results_that_do_not_fit_are_refused_without_change() {
    let fleet = fleet(100);
    let mut plan = slow_plan();
    plan.canary = Canary::None;
    plan.waves_percent = vec![100];
    let mut sim = Sim::new(&fleet, &plan, T0);
    let actions = sim.rollout.tick(T0);
    let c = actions[0].canister;
    let before = sim.rollout.record(&c);
    assert_eq!(
        sim.rollout.on_result(c, ActionResult::Installed, T0),
        Err(ResultError::Mismatch {
            step: Step::Precheck
        })
    );
    assert_eq!(
        sim.rollout.on_result(pid(1_000), ActionResult::Started, T0),
        Err(ResultError::UnknownCanister)
    );
    let idle = pid(50);
    assert_eq!(
        sim.rollout.on_result(idle, ActionResult::Started, T0),
        Err(ResultError::NoCallOutstanding)
    );
    assert_eq!(sim.rollout.record(&c), before);
    // After a lost callback, the outstanding call is issued again, once.
    let again = sim.rollout.reissue_outstanding(T0 + 1, T0 + 1, 100);
    assert_eq!(again.len(), actions.len());
    assert!(again.iter().all(|a| a.op == Op::CanisterStatus));
    assert!(sim
        .rollout
        .reissue_outstanding(T0 + 1, T0 + 1, 100)
        .is_empty());
}

/// The manager's own condition holds starts without touching the phase: a drain holds them
/// until it ends, a balance that covers three pipelines keeps at most three in flight, and a
/// top-up lifts the hold by itself.
#[test]
fn manager_holds_keep_the_phase_and_lift_by_themselves() {
    let n = 200u64;
    let fleet = fleet(n);
    let mut plan = fast_plan();
    plan.canary = Canary::None;
    plan.waves_percent = vec![100];
    plan.limits.max_in_flight = 20;
    let mut sim = Sim::new(&fleet, &plan, T0);
    let reserve = 1_000u128;
    let view = |draining, liquid| ManagerView {
        draining,
        liquid_cycles: liquid,
        reserve_per_pipeline: reserve,
    };

    // Draining: nothing starts, the phase stays Running.
    let now = sim.now;
    sim.rollout.set_manager(view(true, u128::MAX), now);
    for _ in 0..20 {
        sim.step();
    }
    let st = sim.rollout.status(sim.now);
    assert_eq!(st.phase, Phase::Running);
    assert_eq!(st.hold, Some(Hold::Draining));
    assert_eq!(st.counts.pending, n);

    // Cycles for three pipelines: never more than three in flight, held with the reason.
    let now = sim.now;
    sim.rollout.set_manager(view(false, 3 * reserve + 10), now);
    let until = sim.now + 5 * MINUTE;
    let mut max_in_flight = 0;
    while sim.now < until {
        sim.step();
        max_in_flight = max_in_flight.max(sim.rollout.state().counts.in_flight);
    }
    assert_eq!(max_in_flight, 3);
    let st = sim.rollout.status(sim.now);
    assert!(st.counts.done > 0, "work goes on within the reserve");
    assert_eq!(st.phase, Phase::Running);

    // Below the reserve for even one pipeline: held, and the reason is shown.
    let now = sim.now;
    sim.rollout.set_manager(view(false, reserve / 2), now);
    sim.run_until(|s| s.rollout.state().counts.in_flight == 0, until + MINUTE);
    sim.step();
    let st = sim.rollout.status(sim.now);
    assert!(
        matches!(st.hold, Some(Hold::ManagerLowCycles { .. })),
        "{:?}",
        st.hold
    );
    let done = st.counts.done;
    for _ in 0..50 {
        sim.step();
    }
    assert_eq!(sim.rollout.status(sim.now).counts.done, done, "held");

    // A top-up lifts it; the rollout completes with no operator action.
    let now = sim.now;
    sim.rollout.set_manager(view(false, u128::MAX), now);
    sim.run(T0 + 24 * 60 * MINUTE);
    let st = sim.rollout.status(sim.now);
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.hold, None);
    assert_eq!(st.counts.done, n);
    sim.assert_none_stopped();
    let events: Vec<_> = sim
        .rollout
        .events(0, 10_000)
        .into_iter()
        .map(|(_, e)| e.kind)
        .collect();
    assert!(events.contains(&EventKind::Held(Hold::Draining)));
    assert!(events.contains(&EventKind::HoldLifted));
}

/// Manager-caused failures are never booked against the release: three in a row hold the
/// rollout for a backoff, and the canisters end done once the manager recovers.
#[test]
fn manager_faults_defer_and_hold_without_failing_canisters() {
    let n = 50u64;
    let fleet = fleet(n);
    let mut plan = fast_plan();
    plan.canary = Canary::None;
    plan.waves_percent = vec![100];
    plan.limits.max_in_flight = 5;
    let mut sim = Sim::new(&fleet, &plan, T0);
    // Every snapshot fails as if the manager could not pay for the call.
    sim.ic.faults.snapshot_not_sent = true;
    sim.run_until(
        |s| matches!(s.rollout.state().hold, Some(Hold::ManagerFaults { .. })),
        T0 + 10 * MINUTE,
    );
    // Held: the canisters in flight are started again and wait; no new pipeline starts.
    sim.run_until(
        |s| s.rollout.state().counts.in_flight == 0,
        T0 + 20 * MINUTE,
    );
    let st = sim.rollout.status(sim.now);
    assert!(matches!(st.hold, Some(Hold::ManagerFaults { .. })));
    assert_eq!(st.counts.failed, 0);
    assert_eq!(st.counts.rolled_back, 0);
    assert!(st.deferrals.manager >= MANAGER_FAULTS_TO_HOLD as u64);
    assert_eq!(st.deferrals.environment, 0);
    sim.assert_none_stopped();
    assert_eq!(st.phase, Phase::Running);
    sim.ic.faults.snapshot_not_sent = false;
    sim.run(T0 + 24 * 60 * MINUTE);
    let st = sim.rollout.status(sim.now);
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.counts.done, n, "{:?}", st.counts);
    sim.assert_none_stopped();
}

/// Between stages nothing can start before the bake time ends: `idle_until` names that time
/// (so the manager's driver sleeps instead of ticking every second), ticks before it issue
/// nothing, the tick at it opens the next stage; an owner's request or a pause is work sooner.
#[test]
fn idle_until_is_the_end_of_the_bake_time_and_earlier_ticks_do_nothing() {
    let fleet = fleet(200);
    let mut plan = fast_plan();
    plan.canary = Canary::Count(10);
    plan.waves_percent = vec![100];
    plan.bake_ns = 10 * MINUTE;
    plan.snapshot.keep_ns = Some(24 * 60 * MINUTE);
    let mut sim = Sim::new(&fleet, &plan, T0);
    assert_eq!(sim.rollout.idle_until(), None, "the canary has work");
    sim.run_until(
        |s| {
            s.rollout.status(s.now).waves[0].completed_at.is_some()
                && s.rollout.state().counts.in_flight == 0
                && s.ic.outstanding() == 0
        },
        T0 + 60 * MINUTE,
    );
    let completed = sim.rollout.status(sim.now).waves[0].completed_at.unwrap();
    let wake = sim.rollout.idle_until().expect("idle while baking");
    assert_eq!(wake, completed + plan.bake_ns);

    // A pause is work now (the driver wakes for it); a resume makes it idle again.
    sim.rollout.pause(sim.now).unwrap();
    assert_eq!(sim.rollout.idle_until(), None);
    sim.rollout.resume(sim.now).unwrap();
    assert_eq!(sim.rollout.idle_until(), Some(wake));

    let mut t = sim.now;
    while t + SECOND < wake {
        t += SECOND;
        assert!(sim.rollout.tick(t).is_empty(), "nothing to do at {t}");
    }
    let actions = sim.rollout.tick(wake);
    assert!(
        !actions.is_empty(),
        "the next stage opens when the bake ends"
    );
    assert_eq!(sim.rollout.status(wake).current_wave, 1);
    assert_eq!(sim.rollout.idle_until(), None, "the stage has work");
    sim.now = wake;
    for a in actions {
        sim.ic.submit(a, wake);
    }

    // An owner's request during a bake is work at once.
    let mut sim = Sim::new(&fleet, &plan, T0);
    sim.run_until(
        |s| s.rollout.idle_until().is_some() && s.ic.outstanding() == 0,
        T0 + 60 * MINUTE,
    );
    let late = fleet
        .iter()
        .map(|c| c.id)
        .find(|id| {
            sim.rollout
                .record(id)
                .is_some_and(|r| r.outcome().is_none())
        })
        .unwrap();
    sim.rollout.request(late, None, sim.now).unwrap();
    assert_eq!(sim.rollout.idle_until(), None);
    sim.run_until(
        |s| s.rollout.state().phase == Phase::Completed,
        T0 + 60 * MINUTE,
    );
    assert_eq!(sim.rollout.status(sim.now).counts.done, 200);
    // Then only the kept snapshots wait: idle until the first is due for deletion.
    let first_due = sim.rollout.idle_until().expect("idle after the rollout");
    assert!(first_due >= T0 + plan.snapshot.keep_ns.unwrap());
}
