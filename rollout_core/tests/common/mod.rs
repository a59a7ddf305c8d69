//! A deterministic fake IC that executes rollout actions on fake canisters, with fault
//! injection, and a simulation loop that drives a rollout while checking its invariants.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use rollout_core::*;

pub const OLD: u8 = 1;
pub const NEW: u8 = 2;

pub fn hash(v: u8) -> Vec<u8> {
    vec![v; 32]
}

pub fn release(v: u8) -> Release {
    Release {
        module_hash: hash(v),
        version: format!("1.{v}.0"),
    }
}

pub fn pid(i: u64) -> Principal {
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&i.to_be_bytes());
    b[8] = 0xAB;
    b[9] = 1;
    Principal::from_slice(&b)
}

pub fn recovery_of(i: u64) -> Principal {
    let mut b = [0u8; 29];
    b[..8].copy_from_slice(&i.to_be_bytes());
    b[28] = 2;
    Principal::from_slice(&b)
}

pub fn manager() -> Principal {
    Principal::from_slice(&[9, 9, 9, 9, 9, 9, 9, 9, 1, 1])
}

pub fn fleet(n: u64) -> Vec<FleetCanister> {
    (0..n)
        .map(|i| FleetCanister {
            id: pid(i),
            policy: UpgradePolicy::Auto,
            module_hash: Some(hash(OLD)),
            recovery: recovery_of(i),
            snapshot: None,
            subnet: None,
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Running,
    Stopped,
}

#[derive(Clone, Debug)]
pub struct FakeCanister {
    pub state: RunState,
    pub module: Vec<u8>,
    pub cycles: u128,
    pub controllers: Vec<Principal>,
    /// Snapshot id → module hash captured.
    pub snapshots: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Faults injected per canister.
#[derive(Default, Clone, Debug)]
pub struct Faults {
    pub install_fails: HashSet<Principal>,
    /// The new release is unhealthy on these canisters.
    pub unhealthy: HashSet<Principal>,
    /// Number of stop attempts that time out before one succeeds.
    pub stop_timeouts: HashMap<Principal, u32>,
    /// Number of start attempts that fail before one succeeds.
    pub start_failures: HashMap<Principal, u32>,
    /// Every snapshot call fails unsent, as when the manager cannot pay for it.
    pub snapshot_not_sent: bool,
}

pub struct FakeIc {
    pub canisters: HashMap<Principal, FakeCanister>,
    pub faults: Faults,
    pub versions: HashMap<Vec<u8>, String>,
    busy: HashSet<Principal>,
    completions: BinaryHeap<Reverse<(Nanos, u64, Principal)>>,
    results: HashMap<u64, ActionResult>,
    seq: u64,
    rng: u64,
    next_snapshot: u64,
    pub ops: u64,
}

impl FakeIc {
    pub fn new(fleet: &[FleetCanister]) -> Self {
        let canisters = fleet
            .iter()
            .map(|c| {
                (
                    c.id,
                    FakeCanister {
                        state: RunState::Running,
                        module: c.module_hash.clone().unwrap_or_default(),
                        cycles: 2_000_000_000_000,
                        controllers: vec![manager(), c.recovery],
                        snapshots: Vec::new(),
                    },
                )
            })
            .collect();
        let versions = [OLD, NEW]
            .into_iter()
            .map(|v| (hash(v), release(v).version))
            .collect();
        FakeIc {
            canisters,
            faults: Faults::default(),
            versions,
            busy: HashSet::new(),
            completions: BinaryHeap::new(),
            results: HashMap::new(),
            seq: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            next_snapshot: 0,
            ops: 0,
        }
    }

    fn jitter(&mut self, max: Nanos) -> Nanos {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % max.max(1)
    }

    pub fn outstanding(&self) -> usize {
        self.busy.len()
    }

    /// Executes an action; its result is delivered after a latency.
    pub fn submit(&mut self, action: Action, now: Nanos) {
        let c = action.canister;
        assert!(
            self.busy.insert(c),
            "two operations at once on {c}: {:?}",
            action.op
        );
        self.ops += 1;
        let (result, latency) = self.execute(c, action.op);
        let latency = latency + self.jitter(SECOND);
        self.seq += 1;
        self.results.insert(self.seq, result);
        self.completions.push(Reverse((now + latency, self.seq, c)));
    }

    pub fn next_time(&self) -> Option<Nanos> {
        self.completions.peek().map(|Reverse((t, _, _))| *t)
    }

    pub fn pop(&mut self) -> Option<(Nanos, Principal, ActionResult)> {
        let Reverse((t, seq, c)) = self.completions.pop()?;
        self.busy.remove(&c);
        Some((t, c, self.results.remove(&seq).unwrap()))
    }

    fn execute(&mut self, c: Principal, op: Op) -> (ActionResult, Nanos) {
        let err = |m: &str| CallError {
            reject_code: 5,
            message: m.to_string(),
        };
        let faults = &mut self.faults;
        let k = self.canisters.get_mut(&c).expect("unknown canister");
        match op {
            Op::CanisterStatus => (
                ActionResult::Status {
                    controllers: k.controllers.clone(),
                    module_hash: Some(k.module.clone()),
                    cycles: k.cycles,
                },
                SECOND,
            ),
            Op::TopUp { cycles } => {
                k.cycles += cycles;
                (ActionResult::ToppedUp, SECOND)
            }
            Op::Stop => match faults.stop_timeouts.get_mut(&c) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    (ActionResult::StopTimedOut, 5 * MINUTE)
                }
                _ => {
                    k.state = RunState::Stopped;
                    (ActionResult::Stopped, 2 * SECOND)
                }
            },
            Op::Start => match faults.start_failures.get_mut(&c) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    (ActionResult::CallFailed(err("start failed")), SECOND)
                }
                _ => {
                    k.state = RunState::Running;
                    (ActionResult::Started, SECOND)
                }
            },
            Op::TakeSnapshot { replace } => {
                assert_eq!(k.state, RunState::Stopped, "snapshot of a running canister");
                if self.faults.snapshot_not_sent {
                    let e = CallError {
                        reject_code: rollout_core::NOT_SENT,
                        message: "insufficient liquid cycles".into(),
                    };
                    return (ActionResult::CallFailed(e), SECOND);
                }
                if let Some(r) = replace {
                    let before = k.snapshots.len();
                    k.snapshots.retain(|(id, _)| *id != r);
                    if before == k.snapshots.len() {
                        return (ActionResult::CallFailed(err("no such snapshot")), SECOND);
                    }
                }
                assert!(k.snapshots.len() < 10, "snapshot limit");
                self.next_snapshot += 1;
                let id = self.next_snapshot.to_be_bytes().to_vec();
                k.snapshots.push((id.clone(), k.module.clone()));
                (ActionResult::SnapshotTaken { snapshot: id }, 2 * SECOND)
            }
            Op::InstallChunked { module_hash } => {
                assert_eq!(k.state, RunState::Stopped, "install on a running canister");
                if faults.install_fails.contains(&c) {
                    (
                        ActionResult::InstallFailed(err("post_upgrade trapped")),
                        5 * SECOND,
                    )
                } else {
                    k.module = module_hash;
                    (ActionResult::Installed, 5 * SECOND)
                }
            }
            Op::HealthCheck => {
                if k.state != RunState::Running {
                    return (ActionResult::CallFailed(err("canister stopped")), SECOND);
                }
                let version = self.versions.get(&k.module).cloned().unwrap_or_default();
                let ok = !(k.module == hash(NEW) && faults.unhealthy.contains(&c));
                (
                    ActionResult::Health {
                        ok,
                        version,
                        message: (!ok).then(|| "data unreadable".to_string()),
                    },
                    SECOND,
                )
            }
            Op::LoadSnapshot { snapshot } => {
                assert_eq!(k.state, RunState::Stopped, "load on a running canister");
                match k.snapshots.iter().find(|(id, _)| *id == snapshot) {
                    Some((_, module)) => {
                        k.module = module.clone();
                        (ActionResult::SnapshotLoaded, 3 * SECOND)
                    }
                    None => (ActionResult::CallFailed(err("no such snapshot")), SECOND),
                }
            }
            Op::DeleteSnapshot { snapshot } => {
                k.snapshots.retain(|(id, _)| *id != snapshot);
                (ActionResult::SnapshotDeleted, SECOND)
            }
        }
    }
}

/// Drives a rollout on a fake IC, checking invariants after every step.
pub struct Sim {
    pub ic: FakeIc,
    pub rollout: Rollout<MemStore>,
    pub now: Nanos,
    pub tick_every: Nanos,
    next_tick: Nanos,
    /// Time of every pipeline start.
    pub starts: Vec<Nanos>,
    pub max_in_flight_seen: u64,
    pub max_starts_per_tick_seen: usize,
    /// Like the manager's driver: when a pipeline gives its slot back, refill at once
    /// ([`Rollout::refill`]) instead of waiting for the next tick.
    pub refill_on_free: bool,
    /// Pipeline starts since the last tick, and the most seen between two ticks.
    starts_since_tick: usize,
    pub max_starts_between_ticks_seen: usize,
    pub ticks: u64,
    pub results: u64,
}

impl Sim {
    pub fn new(fleet: &[FleetCanister], plan: &RolloutPlan, now: Nanos) -> Self {
        let cohort = select(plan, fleet).expect("plan");
        let rollout = Rollout::start(1, manager(), plan, cohort, MemStore::new(), now).unwrap();
        Sim {
            ic: FakeIc::new(fleet),
            rollout,
            now,
            tick_every: SECOND,
            next_tick: now,
            starts: Vec::new(),
            max_in_flight_seen: 0,
            max_starts_per_tick_seen: 0,
            refill_on_free: false,
            starts_since_tick: 0,
            max_starts_between_ticks_seen: 0,
            ticks: 0,
            results: 0,
        }
    }

    /// Processes the next event (a tick or a call completion).
    pub fn step(&mut self) {
        let limits = self.rollout.state().limits.clone();
        match self.ic.next_time() {
            Some(t) if t < self.next_tick => {
                let (t, c, result) = self.ic.pop().unwrap();
                self.now = t;
                self.results += 1;
                let in_flight_before = self.rollout.state().counts.in_flight;
                if let Some(a) = self
                    .rollout
                    .on_result(c, result, t)
                    .expect("result accepted")
                {
                    assert_eq!(a.canister, c);
                    self.ic.submit(a, t);
                }
                if self.refill_on_free && self.rollout.state().counts.in_flight < in_flight_before {
                    let actions = self.rollout.refill(t);
                    self.started(&actions, &limits);
                    for a in actions {
                        self.ic.submit(a, t);
                    }
                }
            }
            _ => {
                self.now = self.next_tick;
                self.next_tick += self.tick_every;
                self.ticks += 1;
                let actions = self.rollout.tick(self.now);
                self.starts_since_tick = 0;
                let starts = self.started(&actions, &limits);
                self.max_starts_per_tick_seen = self.max_starts_per_tick_seen.max(starts);
                for a in actions {
                    self.ic.submit(a, self.now);
                }
            }
        }
        let counts = &self.rollout.state().counts;
        assert!(
            counts.in_flight <= limits.max_in_flight as u64,
            "in-flight limit"
        );
        self.max_in_flight_seen = self.max_in_flight_seen.max(counts.in_flight);
        let store = self.rollout.store();
        assert_eq!(
            counts.total(),
            rollout_core::RolloutStore::len(store) + rollout_core::RolloutStore::staged_len(store)
        );
    }

    /// Records the pipeline starts among `actions` and checks the per-tick cap over every
    /// start since the last tick. Returns the number of starts.
    fn started(&mut self, actions: &[Action], limits: &Limits) -> usize {
        let starts = actions
            .iter()
            .filter(|a| a.op == Op::CanisterStatus)
            .count();
        self.starts.extend(std::iter::repeat_n(self.now, starts));
        self.starts_since_tick += starts;
        assert!(
            self.starts_since_tick <= limits.max_starts_per_tick as usize,
            "{} starts since the last tick, cap {}",
            self.starts_since_tick,
            limits.max_starts_per_tick
        );
        self.max_starts_between_ticks_seen = self
            .max_starts_between_ticks_seen
            .max(self.starts_since_tick);
        starts
    }

    /// Runs until the rollout has no work left (or `max_time` passes).
    pub fn run(&mut self, max_time: Nanos) {
        while self.rollout.has_work() || self.ic.outstanding() > 0 {
            assert!(
                self.now < max_time,
                "did not finish: {:?}",
                self.rollout.status(self.now)
            );
            self.step();
        }
    }

    pub fn run_until(&mut self, mut done: impl FnMut(&Sim) -> bool, max_time: Nanos) {
        while !done(self) {
            assert!(self.now < max_time, "condition not reached");
            self.step();
        }
    }

    /// Token-bucket bound: any one-minute window holds at most `rate + burst` starts.
    pub fn assert_rate_respected(&self) {
        let l = &self.rollout.state().limits;
        let bound = (l.starts_per_minute + l.burst) as usize;
        let mut j = 0;
        for i in 0..self.starts.len() {
            while j < self.starts.len() && self.starts[j] < self.starts[i] + MINUTE {
                j += 1;
            }
            assert!(
                j - i <= bound,
                "{} starts within a minute, bound {bound}",
                j - i
            );
        }
    }

    pub fn assert_none_stopped(&self) {
        let stopped = self
            .ic
            .canisters
            .iter()
            .filter(|(_, k)| k.state != RunState::Running)
            .count();
        assert_eq!(stopped, 0, "canisters left stopped");
    }
}

/// The id of test subnet `k`.
pub fn subnet_id(k: u8) -> Principal {
    Principal::from_slice(&[0x5B, k, 0, 0, 0, 0, 0, 0, 0, 2])
}

/// `per_subnet * subnets` canisters, canister `i` on subnet `i % subnets`.
pub fn fleet_on_subnets(per_subnet: u64, subnets: u8) -> Vec<FleetCanister> {
    let mut fleet = fleet(per_subnet * subnets as u64);
    for (i, c) in fleet.iter_mut().enumerate() {
        c.subnet = Some(subnet_id((i % subnets as usize) as u8));
    }
    fleet
}

/// The subnet of a canister of the rollout.
pub fn subnet_of<S: RolloutStore>(r: &Rollout<S>, c: &Principal) -> Option<Principal> {
    let index = r.record(c).expect("a record").subnet;
    r.state().subnets[index as usize].subnet
}
