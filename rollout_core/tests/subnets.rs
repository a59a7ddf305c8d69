//! Rollouts across subnets: limits per subnet on top of the overall ones, subnets that
//! progress in parallel and take turns at the per-tick cap, halts per subnet, status by subnet,
//! and the stored shapes of records and state with subnets.

mod common;

use std::collections::{HashMap, HashSet};

use common::*;
use rollout_core::*;

const T0: Nanos = 1_700_000_000 * SECOND;

/// One wave over the whole cohort, no canary, generous overall limits.
fn plan() -> RolloutPlan {
    let mut p = RolloutPlan::new(release(NEW));
    p.from_release = Some(hash(OLD));
    p.canary = Canary::None;
    p.waves_percent = vec![100];
    p.bake_ns = 0;
    p.limits = Limits {
        max_in_flight: 100,
        starts_per_minute: 60_000,
        burst: 1_000,
        max_starts_per_tick: 100,
        per_subnet: None,
    };
    p.failure = FailurePolicy {
        max_failed_percent: 100,
        max_consecutive_failures: 0,
        halt_scope: HaltScope::Fleet,
    };
    p.snapshot.keep_ns = None;
    p
}

fn subnet_limits(max_in_flight: u32, starts_per_minute: u32, burst: u32) -> Option<SubnetLimits> {
    Some(SubnetLimits {
        max_in_flight,
        starts_per_minute,
        burst,
    })
}

/// The pipeline starts among `actions`, by subnet.
fn starts_by_subnet<S: RolloutStore>(
    r: &Rollout<S>,
    actions: &[Action],
) -> HashMap<Option<Principal>, usize> {
    let mut by = HashMap::new();
    for a in actions.iter().filter(|a| a.op == Op::CanisterStatus) {
        *by.entry(subnet_of(r, &a.canister)).or_default() += 1;
    }
    by
}

fn progress(s: &RolloutStatus, subnet: u8) -> SubnetProgress {
    s.subnets
        .iter()
        .find(|p| p.subnet == Some(subnet_id(subnet)))
        .expect("the subnet's progress")
        .clone()
}

/// Drives a rollout on the fake IC tick by tick; calls of `withheld` canisters are never
/// answered (they stay in flight).
struct Drive {
    r: Rollout<MemStore>,
    ic: FakeIc,
    now: Nanos,
    withheld: HashSet<Principal>,
    /// (time, subnet) of every pipeline start.
    starts: Vec<(Nanos, Option<Principal>)>,
}

impl Drive {
    fn new(fleet: &[FleetCanister], plan: &RolloutPlan) -> Self {
        let cohort = select(plan, fleet).expect("plan");
        Drive {
            r: Rollout::start(1, manager(), plan, cohort, MemStore::new(), T0).unwrap(),
            ic: FakeIc::new(fleet),
            now: T0,
            withheld: HashSet::new(),
            starts: Vec::new(),
        }
    }

    fn submit(&mut self, a: Action) {
        if !self.withheld.contains(&a.canister) {
            self.ic.submit(a, self.now);
        }
    }

    fn tick(&mut self) -> Vec<Action> {
        let actions = self.r.tick(self.now);
        for a in actions.iter().filter(|a| a.op == Op::CanisterStatus) {
            self.starts
                .push((self.now, subnet_of(&self.r, &a.canister)));
        }
        for a in actions.clone() {
            self.submit(a);
        }
        self.check();
        actions
    }

    /// Per-subnet in-flight limit, and the subnets' counts add up to the rollout's.
    fn check(&self) {
        let s = self.r.status(self.now);
        if let Some(l) = &s.limits.as_ref().unwrap().per_subnet {
            for p in &s.subnets {
                assert!(p.in_flight <= l.max_in_flight as u64, "{p:?}");
            }
        }
        let limits = s.limits.as_ref().unwrap();
        assert!(s.counts.in_flight <= limits.max_in_flight as u64);
        let total: u64 = s.subnets.iter().map(|p| p.total).sum();
        assert_eq!(total, s.counts.total());
    }

    /// Answers calls and ticks every second until `until` or `done`.
    fn run(&mut self, until: Nanos, mut done: impl FnMut(&Rollout<MemStore>) -> bool) {
        while self.now < until && !done(&self.r) {
            let next_tick = self.now + SECOND;
            while self.ic.next_time().is_some_and(|t| t < next_tick) {
                let (t, c, result) = self.ic.pop().unwrap();
                self.now = t;
                if let Some(a) = self.r.on_result(c, result, t).expect("result accepted") {
                    self.submit(a);
                }
                self.check();
            }
            self.now = next_tick;
            self.tick();
        }
    }
}

#[test]
fn per_subnet_in_flight_caps_each_subnet_and_the_overall_limit_still_caps() {
    let fleet = fleet_on_subnets(10, 3);
    let mut p = plan();
    p.limits.per_subnet = subnet_limits(2, 60_000, 1_000);
    let mut d = Drive::new(&fleet, &p);
    let first = d.tick();
    let by = starts_by_subnet(&d.r, &first);
    assert_eq!(first.len(), 6);
    for k in 0..3 {
        assert_eq!(by[&Some(subnet_id(k))], 2, "{by:?}");
    }
    d.run(T0 + 60 * MINUTE, |r| r.state().phase.is_finished());
    let s = d.r.status(d.now);
    assert_eq!(s.phase, Phase::Completed);
    assert_eq!(s.counts.done, 30);

    // An overall limit below the sum of the subnets' caps.
    p.limits.max_in_flight = 4;
    let mut d = Drive::new(&fleet, &p);
    let first = d.tick();
    assert_eq!(first.len(), 4);
    assert!(starts_by_subnet(&d.r, &first).values().all(|&n| n <= 2));
    d.run(T0 + 60 * MINUTE, |r| r.state().phase.is_finished());
    assert_eq!(d.r.status(d.now).counts.done, 30);
}

#[test]
fn the_tick_cap_is_shared_round_robin_over_subnets() {
    let fleet = fleet_on_subnets(10, 3);
    let mut p = plan();
    p.limits.max_starts_per_tick = 2;
    let mut d = Drive::new(&fleet, &p);
    d.withheld = fleet.iter().map(|c| c.id).collect();
    let mut by: HashMap<Option<Principal>, usize> = HashMap::new();
    for _ in 0..3 {
        let actions = d.tick();
        assert_eq!(actions.len(), 2);
        for (s, n) in starts_by_subnet(&d.r, &actions) {
            *by.entry(s).or_default() += n;
        }
        d.now += SECOND;
    }
    for k in 0..3 {
        assert_eq!(by[&Some(subnet_id(k))], 2, "{by:?}");
    }
}

#[test]
fn a_subnet_whose_canisters_never_finish_does_not_stop_the_others() {
    let fleet = fleet_on_subnets(10, 3);
    let mut p = plan();
    p.limits.per_subnet = subnet_limits(2, 60_000, 1_000);
    let mut d = Drive::new(&fleet, &p);
    // Subnet 0 never answers.
    d.withheld = fleet
        .iter()
        .filter(|c| c.subnet == Some(subnet_id(0)))
        .map(|c| c.id)
        .collect();
    d.run(T0 + 30 * MINUTE, |r| {
        let s = r.status(0);
        s.counts.done == 20
    });
    let s = d.r.status(d.now);
    assert_eq!(s.counts.done, 20, "{s:?}");
    for k in 1..3 {
        assert_eq!(progress(&s, k).done, 10);
    }
    let stuck = progress(&s, 0);
    assert_eq!((stuck.in_flight, stuck.pending, stuck.done), (2, 8, 0));
    assert_eq!(s.phase, Phase::Running);
    assert_eq!(s.waves[0].completed_at, None);
}

#[test]
fn each_subnet_starts_at_its_own_rate() {
    let fleet = fleet_on_subnets(40, 2);
    let mut p = plan();
    p.limits.per_subnet = subnet_limits(100, 6, 2);
    let mut d = Drive::new(&fleet, &p);
    let first = d.tick();
    assert_eq!(first.len(), 4, "each subnet's burst");
    d.run(T0 + 60 * MINUTE, |r| r.state().phase.is_finished());
    assert_eq!(d.r.status(d.now).counts.done, 80);
    for k in 0..2 {
        let times: Vec<Nanos> = d
            .starts
            .iter()
            .filter(|(_, s)| *s == Some(subnet_id(k)))
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(times.len(), 40);
        // The bucket's window bound: at most burst + rate starts in any minute.
        for (i, &t) in times.iter().enumerate() {
            let in_window = times[i..].iter().take_while(|&&x| x < t + MINUTE).count();
            assert!(in_window <= 2 + 6, "{in_window} starts within a minute");
        }
        // And the rate is reached: one start every 10 s after the burst.
        let span = times[39] - times[0];
        assert!(span >= 38 * 10 * SECOND, "span {span}");
        assert!(span <= 38 * 10 * SECOND + 40 * SECOND, "span {span}");
    }
}

/// Subnet 0's installs all fail; one pipeline at a time per subnet.
fn failing_subnet(scope: HaltScope) -> Drive {
    let fleet = fleet_on_subnets(10, 3);
    let mut p = plan();
    p.limits.per_subnet = subnet_limits(1, 60_000, 1_000);
    p.failure = FailurePolicy {
        max_failed_percent: 5,
        max_consecutive_failures: 0,
        halt_scope: scope,
    };
    let mut d = Drive::new(&fleet, &p);
    for c in fleet.iter().filter(|c| c.subnet == Some(subnet_id(0))) {
        d.ic.faults.install_fails.insert(c.id);
    }
    d
}

fn halted(r: &Rollout<MemStore>) -> bool {
    matches!(r.state().phase, Phase::Halted(_)) && r.state().counts.in_flight == 0
}

#[test]
fn halt_scope_subnet_halts_only_the_failing_subnet() {
    let mut d = failing_subnet(HaltScope::Subnet);
    d.run(T0 + 60 * MINUTE, halted);
    let s = d.r.status(d.now);
    let bad = progress(&s, 0);
    assert_eq!(bad.failed + bad.rolled_back, 1, "{bad:?}");
    assert_eq!(bad.pending, 9);
    assert_eq!(
        bad.halted,
        Some(HaltReason::WaveFailureThreshold {
            wave: 0,
            failed: 1,
            size: 10
        })
    );
    for k in 1..3 {
        let p = progress(&s, k);
        assert_eq!((p.done, p.halted.clone()), (10, None), "{p:?}");
    }
    assert_eq!(
        s.phase,
        Phase::Halted(HaltReason::SubnetWaveFailureThreshold {
            subnet: Some(subnet_id(0)),
            wave: 0,
            failed: 1,
            size: 10
        })
    );
    let events: Vec<EventKind> = d.r.events(0, 1_000).into_iter().map(|e| e.1.kind).collect();
    assert!(events.contains(&EventKind::SubnetHalted {
        subnet: Some(subnet_id(0)),
        reason: bad.halted.clone().unwrap(),
    }));
    // Resuming clears the subnet's halt: it starts again, and halts again on its next failure.
    d.r.resume(d.now).unwrap();
    assert_eq!(d.r.state().phase, Phase::Running);
    assert!(d.r.state().subnets.iter().all(|s| s.halted.is_none()));
    d.run(T0 + 120 * MINUTE, halted);
    let bad = progress(&d.r.status(d.now), 0);
    assert_eq!(bad.failed + bad.rolled_back, 2, "{bad:?}");
    // An abort ends it.
    d.r.abort(d.now).unwrap();
    d.run(T0 + 180 * MINUTE, |r| r.state().phase.is_finished());
    assert_eq!(d.r.state().phase, Phase::Aborted);
}

#[test]
fn halt_scope_fleet_halts_the_whole_rollout() {
    let mut d = failing_subnet(HaltScope::Fleet);
    d.run(T0 + 60 * MINUTE, halted);
    let s = d.r.status(d.now);
    // Two failures of 30 exceed 5% of the wave: the rollout halts with the others unfinished.
    assert_eq!(
        s.phase,
        Phase::Halted(HaltReason::WaveFailureThreshold {
            wave: 0,
            failed: 2,
            size: 30
        })
    );
    assert!(s.counts.done < 20, "{:?}", s.counts);
    assert!(s.subnets.iter().all(|p| p.halted.is_none()));
}

#[test]
fn status_by_subnet_matches_the_records() {
    let fleet = fleet_on_subnets(10, 3);
    let mut p = plan();
    p.limits.per_subnet = subnet_limits(2, 60_000, 1_000);
    let mut d = Drive::new(&fleet, &p);
    d.ic.faults.install_fails.insert(fleet[1].id);
    d.ic.faults.stop_timeouts.insert(fleet[2].id, 1);
    d.withheld.insert(fleet[5].id);
    // An owner's request from a subnet the cohort does not have.
    let outsider = FleetCanister {
        id: pid(1_000),
        subnet: Some(subnet_id(7)),
        ..fleet[0].clone()
    };
    d.ic.canisters
        .insert(outsider.id, d.ic.canisters[&fleet[0].id].clone());
    let member = CohortMember {
        id: outsider.id,
        recovery: recovery_of(0),
        expected_module_hash: Some(hash(OLD)),
        snapshot: None,
        subnet: outsider.subnet,
    };
    d.r.request(outsider.id, Some(member), d.now).unwrap();
    let mut checks = 0;
    while d.now < T0 + 30 * MINUTE && d.r.status(d.now).counts.done < 29 {
        d.run(d.now + 20 * SECOND, |_| false);
        let s = d.r.status(d.now);
        let mut expected: HashMap<Option<Principal>, SubnetProgress> = HashMap::new();
        for (id, rec) in d.r.records(None, 1_000) {
            let subnet = d.r.state().subnets[rec.subnet as usize].subnet;
            let e = expected.entry(subnet).or_insert(SubnetProgress {
                subnet,
                total: 0,
                done: 0,
                failed: 0,
                rolled_back: 0,
                deferred: 0,
                in_flight: 0,
                pending: 0,
                busy: 0,
                halted: None,
            });
            e.total += 1;
            match rec.step {
                Step::Pending => e.pending += 1,
                Step::Busy => e.busy += 1,
                Step::Finished(Outcome::Done) => e.done += 1,
                Step::Finished(Outcome::Failed) => e.failed += 1,
                Step::Finished(Outcome::RolledBack) => e.rolled_back += 1,
                Step::Finished(Outcome::Deferred) => e.deferred += 1,
                Step::Finished(_) => {}
                _ => e.in_flight += 1,
            }
            assert_eq!(subnet_of(&d.r, &id), subnet);
        }
        assert_eq!(s.subnets.len(), 4);
        for p in &s.subnets {
            assert_eq!(Some(p), expected.get(&p.subnet), "at {}", d.now - T0);
        }
        checks += 1;
    }
    assert!(checks > 3);
    let s = d.r.status(d.now);
    assert_eq!(s.counts.done, 29, "{s:?}");
    assert_eq!(progress(&s, 7).done, 1);
}

#[test]
fn plans_with_bad_subnet_limits_or_too_many_subnets_are_refused() {
    let mut p = plan();
    p.limits.per_subnet = subnet_limits(0, 1, 1);
    assert_eq!(
        p.validate(),
        Err(PlanError::ZeroLimit {
            limit: plan::LimitName::SubnetMaxInFlight
        })
    );
    p.limits.per_subnet = subnet_limits(1, 1, 0);
    assert_eq!(
        p.validate(),
        Err(PlanError::ZeroLimit {
            limit: plan::LimitName::SubnetBurst
        })
    );
    p.limits.per_subnet = subnet_limits(101, 1, 1);
    assert_eq!(
        p.validate(),
        Err(PlanError::SubnetLimitAboveOverall {
            limit: plan::LimitName::SubnetMaxInFlight
        })
    );
    p.limits.per_subnet = subnet_limits(10, 60_001, 1);
    assert_eq!(
        p.validate(),
        Err(PlanError::SubnetLimitAboveOverall {
            limit: plan::LimitName::SubnetStartsPerMinute
        })
    );
    p.limits.per_subnet = subnet_limits(10, 60, 10);
    assert_eq!(p.validate(), Ok(()));
    // Eight subnets and `None` are fine; a ninth subnet is not.
    let mut fleet = fleet_on_subnets(2, 8);
    fleet[0].subnet = None;
    let cohort = select(&p, &fleet).unwrap();
    assert!(Rollout::start(1, manager(), &p, cohort, MemStore::new(), T0).is_ok());
    let fleet = fleet_on_subnets(2, 9);
    let cohort = select(&p, &fleet).unwrap();
    assert_eq!(
        Rollout::start(1, manager(), &p, cohort, MemStore::new(), T0).err(),
        Some(PlanError::TooManySubnets { count: 9, max: 8 })
    );
}

// ----- stored shapes -----

use ic_stable_structures::{DefaultMemoryImpl, Storable};
use rollout_core::codec::{self, CanisterRecordV1, RolloutStateV1, COMPACT_V1, COMPACT_V2};

type Memories = [DefaultMemoryImpl; 6];

fn open(m: &Memories) -> StableStore<DefaultMemoryImpl> {
    let [a, b, c, d, e, f] = m.clone();
    StableStore::init(a, b, c, d, e, f)
}

/// Answers every call of `actions` (and the calls they lead to) at once on `ic`.
fn answer_all<S: RolloutStore>(
    r: &mut Rollout<S>,
    ic: &mut FakeIc,
    actions: Vec<Action>,
    now: Nanos,
) {
    let mut queue = actions;
    while let Some(a) = queue.pop() {
        ic.submit(a, now);
        let (_, c, result) = ic.pop().unwrap();
        if let Some(next) = r.on_result(c, result, now).unwrap() {
            queue.push(next);
        }
    }
}

#[test]
fn state_and_records_with_subnets_survive_stable_memory() {
    let fleet = fleet_on_subnets(10, 3);
    let mut p = plan();
    p.limits.per_subnet = subnet_limits(2, 60, 3);
    p.failure.halt_scope = HaltScope::Subnet;
    let memories: Memories = Default::default();
    let cohort = select(&p, &fleet).unwrap();
    let mut r = Rollout::start(1, manager(), &p, cohort, open(&memories), T0).unwrap();
    let mut ic = FakeIc::new(&fleet);
    let first = r.tick(T0);
    assert_eq!(first.len(), 6);
    answer_all(&mut r, &mut ic, first, T0);
    let started = r.tick(T0 + SECOND);
    assert_eq!(started.len(), 6);
    // Stored and read back as the manager does after an upgrade.
    let (state, store) = r.into_parts();
    drop(store);
    let bytes = codec::encode_shape(&state);
    assert_eq!(bytes[0], COMPACT_V2);
    let read: RolloutState = codec::decode_shape(&bytes);
    assert_eq!(read, state);
    let mut r = Rollout::from_parts(read, open(&memories));
    for c in &fleet {
        assert_eq!(subnet_of(&r, &c.id), c.subnet);
    }
    assert_eq!(r.status(T0 + SECOND).subnets.len(), 3);
    for a in &started {
        assert_eq!(r.current_action(&a.canister).as_ref(), Some(a));
    }
    answer_all(&mut r, &mut ic, started, T0 + SECOND);
    let mut now = T0 + SECOND;
    while !r.state().phase.is_finished() {
        now += SECOND;
        let actions = r.tick(now);
        answer_all(&mut r, &mut ic, actions, now);
        assert!(now < T0 + 60 * MINUTE);
    }
    let s = r.status(now);
    assert_eq!(s.counts.done, 30);
    assert!(s.subnets.iter().all(|p| p.done == 10));
}

#[test]
fn records_and_state_of_the_first_shape_still_decode() {
    // A record as the first shape stored it reads with the first subnet.
    let mut rec = CanisterRecord::new(Job::Upgrade, 2, recovery_of(1));
    rec.step = Step::Stopping;
    rec.snapshot = Some(vec![1, 2]);
    rec.queued = Some(QueueKey::new(QueueKind::Pending, 2, 7));
    let v1 = CanisterRecordV1 {
        job: rec.job,
        wave: rec.wave,
        step: rec.step.clone(),
        outstanding: rec.outstanding,
        recovery: rec.recovery,
        expected_module_hash: rec.expected_module_hash.clone(),
        snapshot: rec.snapshot.clone(),
        snapshot_fresh: rec.snapshot_fresh,
        stop_attempts: rec.stop_attempts,
        start_failures: rec.start_failures,
        topped_up: rec.topped_up,
        failure: rec.failure.clone(),
        last_error: rec.last_error.clone(),
        started_at: rec.started_at,
        finished_at: rec.finished_at,
        ticket: rec.ticket,
        queued: rec.queued,
    };
    let old = codec::encode(&v1);
    assert_eq!(old[0], COMPACT_V1);
    assert_eq!(CanisterRecord::from_bytes(old.into()), rec);
    let candid = candid::encode_one(&v1).unwrap();
    assert_eq!(CanisterRecord::from_bytes(candid.into()), rec);
    let mut with_subnet = rec.clone();
    with_subnet.subnet = 3;
    let new = with_subnet.to_bytes().into_owned();
    assert_eq!(new[0], COMPACT_V2);
    assert_eq!(CanisterRecord::from_bytes(new.into()), with_subnet);

    // A rollout stored before subnets (its header of the first shape, its records and
    // queue keys as they were) goes on to completion.
    let fleet = fleet(30);
    let mut p = plan();
    p.limits.max_in_flight = 5;
    let memories: Memories = Default::default();
    let cohort = select(&p, &fleet).unwrap();
    let mut r = Rollout::start(1, manager(), &p, cohort, open(&memories), T0).unwrap();
    let mut ic = FakeIc::new(&fleet);
    let first = r.tick(T0);
    answer_all(&mut r, &mut ic, first, T0);
    let (state, _) = r.into_parts();
    let old = codec::encode(&RolloutStateV1::from(state.clone()));
    assert_eq!(old[0], COMPACT_V1);
    let read: RolloutState = codec::decode_shape(&old);
    assert_eq!(read, state);
    let candid = candid::encode_one(RolloutStateV1::from(state.clone())).unwrap();
    assert_eq!(codec::decode_shape::<RolloutState>(&candid), state);
    let mut r = Rollout::from_parts(read, open(&memories));
    let mut now = T0;
    while !r.state().phase.is_finished() {
        now += SECOND;
        let actions = r.tick(now);
        answer_all(&mut r, &mut ic, actions, now);
        assert!(now < T0 + 60 * MINUTE);
    }
    assert_eq!(r.status(now).counts.done, 30);
    assert_eq!(r.status(now).subnets[0].done, 30);
}

#[test]
fn restores_reissues_and_idle_waits_work_across_subnets() {
    let fleet = fleet_on_subnets(4, 3);
    let mut p = plan();
    p.limits.per_subnet = subnet_limits(1, 60_000, 1_000);
    p.waves_percent = vec![50, 100];
    p.bake_ns = 10 * MINUTE;
    let mut d = Drive::new(&fleet, &p);
    // While the bake time runs, nothing can happen before it ends.
    d.run(T0 + 30 * MINUTE, |r| {
        r.state().waves[0].completed_at.is_some()
    });
    let done_at = d.r.state().waves[0].completed_at.unwrap();
    assert_eq!(d.r.idle_until(), Some(done_at + 10 * MINUTE));
    d.run(T0 + 60 * MINUTE, |r| r.state().phase.is_finished());
    assert_eq!(d.r.status(d.now).counts.done, 12);

    // A restore of two canisters per subnet, one at a time on each.
    let chosen: Vec<CohortMember> = fleet
        .iter()
        .take(6)
        .map(|c| {
            let r = d.r.record(&c.id).unwrap();
            CohortMember {
                id: c.id,
                recovery: r.recovery,
                expected_module_hash: Some(hash(NEW)),
                snapshot: r.snapshot,
                subnet: c.subnet,
            }
        })
        .collect();
    let restore = RestorePlan {
        release: release(OLD),
        canisters: chosen,
        limits: p.limits.clone(),
        failure: p.failure.clone(),
        retry: p.retry.clone(),
    };
    d.r = Rollout::start_restore(2, manager(), restore, MemStore::new(), d.now).unwrap();
    let first = d.tick();
    assert_eq!(first.len(), 3);
    assert!(starts_by_subnet(&d.r, &first).values().all(|&n| n == 1));
    d.run(d.now + 60 * MINUTE, |r| r.state().phase.is_finished());
    let s = d.r.status(d.now);
    assert_eq!((s.phase, s.counts.restored), (Phase::Completed, 6));
    assert!(s.subnets.iter().all(|p| p.total == 2));
    for c in &fleet[..6] {
        assert_eq!(d.ic.canisters[&c.id].module, hash(OLD));
    }

    // Calls whose callbacks were lost are issued again, each once, whatever the subnet.
    let mut d = Drive::new(&fleet, &p);
    d.withheld = fleet.iter().map(|c| c.id).collect();
    let mut lost = d.tick();
    assert_eq!(lost.len(), 3);
    let mut again = d.r.reissue_outstanding(d.now + 1, d.now + SECOND, 100);
    assert!(d
        .r
        .reissue_outstanding(d.now + 1, d.now + SECOND, 100)
        .is_empty());
    lost.sort_by_key(|a| a.canister);
    again.sort_by_key(|a| a.canister);
    assert_eq!(again, lost);
}

#[test]
fn a_halted_subnet_lets_the_others_through_every_wave_and_catches_up_when_resumed() {
    let fleet = fleet_on_subnets(10, 3);
    let mut p = plan();
    p.limits.per_subnet = subnet_limits(1, 60_000, 1_000);
    p.waves_percent = vec![40, 100];
    p.failure = FailurePolicy {
        max_failed_percent: 20,
        max_consecutive_failures: 0,
        halt_scope: HaltScope::Subnet,
    };
    let mut d = Drive::new(&fleet, &p);
    let bad: Vec<Principal> = fleet
        .iter()
        .filter(|c| c.subnet == Some(subnet_id(0)))
        .map(|c| c.id)
        .collect();
    d.ic.faults.install_fails.insert(bad[0]);
    d.run(T0 + 60 * MINUTE, halted);
    let s = d.r.status(d.now);
    // Subnet 0 halted on its first canister, in the first wave; both waves completed for
    // the others.
    assert!(s.waves.iter().all(|w| w.completed_at.is_some()), "{s:?}");
    assert_eq!(progress(&s, 0).pending, 9);
    assert_eq!(progress(&s, 1).done + progress(&s, 2).done, 20);
    assert!(matches!(
        s.phase,
        Phase::Halted(HaltReason::SubnetWaveFailureThreshold { wave: 0, .. })
    ));
    // Resumed, it starts its canisters of the first wave again, then of the second.
    d.r.resume(d.now).unwrap();
    d.run(T0 + 120 * MINUTE, |r| r.state().phase.is_finished());
    let s = d.r.status(d.now);
    assert_eq!(s.phase, Phase::Completed);
    assert_eq!(progress(&s, 0).done, 9);
    assert_eq!(s.counts.done, 29);
}

/// Canister ids come from per-subnet ranges, so a fleet's ids run one subnet after another;
/// the canary and every wave still take each subnet's share (each subnet in id order), so that
/// subnets progress in parallel from the first stage on. One subnet keeps plain id order.
#[test]
fn waves_take_an_even_share_of_every_subnet_whatever_the_id_order() {
    // Subnet k holds canisters 10k..10k+9: contiguous blocks, as the IC allocates them.
    let mut fleet = fleet(30);
    for (i, c) in fleet.iter_mut().enumerate() {
        c.subnet = Some(subnet_id((i / 10) as u8));
    }
    let mut p = plan();
    p.canary = Canary::Count(3);
    p.waves_percent = vec![10, 50, 100];
    let cohort = select(&p, &fleet).unwrap();
    let per_wave: Vec<Vec<usize>> = cohort
        .waves
        .iter()
        .map(|w| {
            (0..3)
                .map(|k| {
                    w.members
                        .iter()
                        .filter(|m| m.subnet == Some(subnet_id(k)))
                        .count()
                })
                .collect()
        })
        .collect();
    // Canary 3, then 27 in waves of 3 (10%), 11 (50%) and 13 (100%).
    assert_eq!(per_wave[0], vec![1, 1, 1], "canary");
    assert_eq!(per_wave[1], vec![1, 1, 1], "10%");
    for w in &per_wave[2..] {
        assert!(
            w.iter().max().unwrap() - w.iter().min().unwrap() <= 1,
            "{per_wave:?}"
        );
    }
    // Within a subnet, id order.
    for k in 0..3 {
        let ids: Vec<Principal> = cohort
            .waves
            .iter()
            .flat_map(|w| &w.members)
            .filter(|m| m.subnet == Some(subnet_id(k)))
            .map(|m| m.id)
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
    // One subnet: plain id order.
    let cohort = select(&p, &common::fleet(30)).unwrap();
    let ids: Vec<Principal> = cohort
        .waves
        .iter()
        .flat_map(|w| &w.members)
        .map(|m| m.id)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
}
