//! `rollout_core`'s [`RolloutStore`] over stable B-tree maps, so that a rollout's per-canister
//! records, queues and event log survive upgrades of the manager and cost the driver only the
//! entries it touches (O(log n) each), never a scan.

use crate::memory::Candid;
use candid::Principal;
use ic_stable_structures::{Memory, StableBTreeMap};
use rollout_core::{CanisterRecord, Event, QueueKey, QueueKind, RolloutStore};
use std::ops::Bound::{Excluded, Unbounded};

/// A queue key as 17 big-endian bytes (kind tag, `a`, `b`): byte order equals key order.
pub type QueueBytes = [u8; 17];

pub fn queue_bytes(key: &QueueKey) -> QueueBytes {
    let mut out = [0u8; 17];
    out[0] = key.queue.tag();
    out[1..9].copy_from_slice(&key.a.to_be_bytes());
    out[9..17].copy_from_slice(&key.b.to_be_bytes());
    out
}

pub fn queue_key(bytes: &QueueBytes) -> QueueKey {
    let queue = QueueKind::from_tag(bytes[0]).expect("queue keys are written by queue_bytes");
    let a = u64::from_be_bytes(bytes[1..9].try_into().expect("8 bytes"));
    let b = u64::from_be_bytes(bytes[9..17].try_into().expect("8 bytes"));
    QueueKey::new(queue, a, b)
}

pub struct StableStore<M: Memory> {
    records: StableBTreeMap<Principal, Candid<CanisterRecord>, M>,
    queues: StableBTreeMap<QueueBytes, Principal, M>,
    events: StableBTreeMap<u64, Candid<Event>, M>,
}

impl<M: Memory> StableStore<M> {
    pub fn init(records: M, queues: M, events: M) -> Self {
        StableStore {
            records: StableBTreeMap::init(records),
            queues: StableBTreeMap::init(queues),
            events: StableBTreeMap::init(events),
        }
    }

    /// Entries in all queues (for drain and diagnostics).
    pub fn queue_entries(&self) -> u64 {
        self.queues.len()
    }
}

impl<M: Memory> RolloutStore for StableStore<M> {
    fn get(&self, id: &Principal) -> Option<CanisterRecord> {
        self.records.get(id).map(|c| c.0)
    }

    fn put(&mut self, id: Principal, record: CanisterRecord) {
        self.records.insert(id, Candid(record));
    }

    fn len(&self) -> u64 {
        self.records.len()
    }

    fn page(&self, after: Option<Principal>, limit: usize) -> Vec<(Principal, CanisterRecord)> {
        let lower = after.map_or(Unbounded, Excluded);
        self.records
            .range((lower, Unbounded))
            .take(limit)
            .map(|e| (*e.key(), e.value().0))
            .collect()
    }

    fn enqueue(&mut self, key: QueueKey, id: Principal) {
        self.queues.insert(queue_bytes(&key), id);
    }

    fn dequeue(&mut self, key: &QueueKey) -> Option<Principal> {
        self.queues.remove(&queue_bytes(key))
    }

    fn first_in(&self, from: QueueKey, to: QueueKey) -> Option<(QueueKey, Principal)> {
        self.queues
            .range(queue_bytes(&from)..queue_bytes(&to))
            .next()
            .map(|e| (queue_key(e.key()), e.value()))
    }

    fn push_event(&mut self, seq: u64, event: Event) {
        self.events.insert(seq, Candid(event));
    }

    fn drop_event(&mut self, seq: u64) {
        self.events.remove(&seq);
    }

    fn events(&self, from: u64, limit: usize) -> Vec<(u64, Event)> {
        self.events
            .range(from..)
            .take(limit)
            .map(|e| (*e.key(), e.value().0))
            .collect()
    }

    fn clear(&mut self) {
        self.records.clear_new();
        self.queues.clear_new();
        self.events.clear_new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;
    use rollout_core::{
        select, ActionResult, FleetCanister, MemStore, Op, Release, Rollout, RolloutPlan,
        UpgradePolicy, SECOND,
    };

    fn store() -> StableStore<VectorMemory> {
        StableStore::init(
            VectorMemory::default(),
            VectorMemory::default(),
            VectorMemory::default(),
        )
    }

    fn id(n: u32) -> Principal {
        let mut bytes = [0u8; 10];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        bytes[9] = 1;
        Principal::from_slice(&bytes)
    }

    #[test]
    fn queue_bytes_preserve_order_and_round_trip() {
        let keys = [
            QueueKey::new(QueueKind::Request, 5, 0),
            QueueKey::new(QueueKind::Pending, 0, u64::MAX),
            QueueKey::new(QueueKind::Pending, 1, 0),
            QueueKey::new(QueueKind::Retry, 256, 1),
            QueueKey::new(QueueKind::Outstanding, u64::MAX, u64::MAX),
        ];
        for w in keys.windows(2) {
            assert!(w[0] < w[1]);
            assert!(queue_bytes(&w[0]) < queue_bytes(&w[1]));
        }
        for k in keys {
            assert_eq!(queue_key(&queue_bytes(&k)), k);
        }
    }

    /// The stable store and the in-memory reference store lead the same rollout to the same
    /// state: same actions, same records, same events.
    #[test]
    fn behaves_like_the_reference_store() {
        let target = Release {
            module_hash: vec![2; 32],
            version: "2.0.0".into(),
        };
        let mut plan = RolloutPlan::new(target);
        plan.bake_ns = 0;
        plan.limits.max_in_flight = 7;
        plan.limits.starts_per_minute = 6_000;
        plan.limits.burst = 100;
        let fleet: Vec<FleetCanister> = (0..60)
            .map(|n| FleetCanister {
                id: id(n),
                policy: UpgradePolicy::Auto,
                module_hash: Some(vec![1; 32]),
                recovery: id(1_000 + n),
                snapshot: None,
            })
            .collect();
        let manager = id(9_999);
        let cohort = select(&plan, &fleet).unwrap();
        let mut a = Rollout::start(1, manager, &plan, cohort.clone(), MemStore::new(), 0).unwrap();
        let mut b = Rollout::start(1, manager, &plan, cohort, store(), 0).unwrap();
        let mut now = SECOND;
        for _ in 0..200 {
            let (xa, xb) = (a.tick(now), b.tick(now));
            assert_eq!(xa, xb);
            let mut queue = xa;
            while let Some(action) = queue.pop() {
                let result = match &action.op {
                    Op::CanisterStatus => ActionResult::Status {
                        controllers: vec![
                            manager,
                            id(1_000 + u32::from(action.canister.as_slice()[3])),
                        ],
                        module_hash: Some(vec![1; 32]),
                        cycles: 10u128.pow(13),
                    },
                    Op::Stop => ActionResult::Stopped,
                    Op::TakeSnapshot { .. } => ActionResult::SnapshotTaken {
                        snapshot: action.canister.as_slice().to_vec(),
                    },
                    Op::InstallChunked { .. } => ActionResult::Installed,
                    Op::Start => ActionResult::Started,
                    Op::HealthCheck => ActionResult::Health {
                        ok: true,
                        version: "2.0.0".into(),
                        message: None,
                    },
                    Op::DeleteSnapshot { .. } => ActionResult::SnapshotDeleted,
                    other => panic!("unexpected {other:?}"),
                };
                let ra = a.on_result(action.canister, result.clone(), now).unwrap();
                let rb = b.on_result(action.canister, result, now).unwrap();
                assert_eq!(ra, rb);
                queue.extend(ra);
            }
            now += SECOND;
            if a.state().phase.is_finished() {
                break;
            }
        }
        assert_eq!(a.state(), b.state());
        assert!(a.state().phase.is_finished());
        assert_eq!(a.state().counts.done, 60);
        assert_eq!(a.records(None, 100), b.records(None, 100));
        assert_eq!(a.events(0, 1_000), b.events(0, 1_000));
        assert_eq!(
            b.records(Some(id(10)), 5)
                .iter()
                .map(|(p, _)| *p)
                .collect::<Vec<_>>(),
            (11..16).map(id).collect::<Vec<_>>()
        );
        let (_, mut s) = b.into_parts();
        s.clear();
        assert_eq!(s.len(), 0);
        assert_eq!(s.queue_entries(), 0);
        assert!(s.events(0, 10).is_empty());
    }
}
