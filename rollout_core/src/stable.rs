//! [`RolloutStore`] over ic-stable-structures, so that the manager keeps rollout state in
//! stable memory and nothing is serialised in `pre_upgrade`. Give it six memories from the
//! manager's `MemoryManager` (records, queues, events, in-flight overflow, in-flight slots,
//! stage) that no other structure uses.

use std::borrow::Cow;

use candid::Principal;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{BTreeMap, Memory, StableVec, Storable};

use crate::codec;
use crate::pipeline::CanisterRecord;
use crate::rollout::Event;
use crate::slots::{InFlight, Slot, SLOT_BYTES};
use crate::store::{QueueKey, QueueKind, RolloutStore};

const KEY_LEN: usize = 17;

/// A stored value kept as its encoded bytes ([`crate::codec`]): the same bytes as the value
/// itself stores, but reading it from a map decodes nothing until [`Encoded::decode`]. A map's
/// `insert` returns the value it replaces, which would otherwise be decoded on every write
/// only to be dropped.
pub struct Encoded<T> {
    bytes: Vec<u8>,
    value: std::marker::PhantomData<T>,
}

impl<T: codec::Shape> Encoded<T> {
    pub fn new(value: &T) -> Self {
        Encoded {
            bytes: codec::encode_shape(value),
            value: std::marker::PhantomData,
        }
    }

    pub fn decode(&self) -> T {
        codec::decode_shape(&self.bytes)
    }

    /// The encoding of a value of `T` from `view`, a value that serializes as `T` does (the
    /// same fields in the same order, borrowed), so that a large value is stored without being
    /// copied first.
    pub fn encode_as<V: serde::Serialize>(view: &V) -> Self {
        Encoded {
            bytes: codec::encode_shape_as::<T, V>(view),
            value: std::marker::PhantomData,
        }
    }
}

impl<T> Storable for Encoded<T> {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }

    fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Encoded {
            bytes: bytes.into_owned(),
            value: std::marker::PhantomData,
        }
    }

    const BOUND: Bound = Bound::Unbounded;
}

impl Storable for QueueKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        // Big-endian, so byte order is key order.
        let mut b = Vec::with_capacity(KEY_LEN);
        b.push(self.queue.tag());
        b.extend_from_slice(&self.a.to_be_bytes());
        b.extend_from_slice(&self.b.to_be_bytes());
        b
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let b = bytes.as_ref();
        let word = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        QueueKey {
            queue: QueueKind::from_tag(b[0]).expect("queue tag written by into_bytes"),
            a: word(1),
            b: word(9),
        }
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: KEY_LEN as u32,
        is_fixed_size: true,
    };
}

/// Records and events in the compact stored encoding ([`crate::codec`]).
impl Storable for CanisterRecord {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(codec::encode_shape(self))
    }

    fn into_bytes(self) -> Vec<u8> {
        codec::encode_shape(&self)
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        codec::decode_shape(bytes.as_ref())
    }

    const BOUND: Bound = Bound::Unbounded;
}

impl Storable for Event {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(codec::encode_shape(self))
    }

    fn into_bytes(self) -> Vec<u8> {
        codec::encode_shape(&self)
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        codec::decode_shape(bytes.as_ref())
    }

    const BOUND: Bound = Bound::Unbounded;
}

/// Records kept in the heap copy of the most recently written records.
const RECENT_CAPACITY: usize = 1_024;

/// The first entry of one queue, as far as the heap knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Head {
    /// Not known: look it up in the tree.
    Unknown,
    Empty,
    At(QueueKey, Principal),
}

/// Number of [`QueueKind`]s.
const QUEUE_KINDS: usize = 6;

/// The heap's knowledge of the first entry of each queue. A driver step asks each queue for
/// its first (due) entry, and most queues are empty or not due most of the time: answering
/// from the heap spares a range lookup in the tree for each of them. It starts unknown (after
/// an upgrade too) and stays exact: an enqueue can only lower a known head, and dequeuing the
/// head makes it unknown again.
#[derive(Clone, Debug)]
struct Heads([Head; QUEUE_KINDS]);

impl Heads {
    fn unknown() -> Self {
        Heads([Head::Unknown; QUEUE_KINDS])
    }

    fn slot(&mut self, kind: QueueKind) -> &mut Head {
        &mut self.0[kind.tag() as usize]
    }

    fn enqueued(&mut self, key: QueueKey, id: Principal) {
        let head = self.slot(key.queue);
        match *head {
            Head::Unknown => {}
            Head::Empty => *head = Head::At(key, id),
            Head::At(first, _) if key <= first => *head = Head::At(key, id),
            Head::At(..) => {}
        }
    }

    fn dequeued(&mut self, key: &QueueKey) {
        let head = self.slot(key.queue);
        if matches!(*head, Head::At(first, _) if first == *key) {
            *head = Head::Unknown;
        }
    }
}

/// Rollout storage in four stable B-trees.
///
/// Every write goes to stable memory. The record of a canister in flight is kept in a map of
/// its own, which holds the pipelines in flight alone (a few dozen, whatever the size of the
/// fleet): each call result rewrites the record there, in a small tree, and the map of all
/// records is written when the pipeline leaves flight. Its entry in the map of all records
/// is then the one written before the pipeline started, and is not read while it is in
/// flight. The records written last are also kept in the heap, so
/// that reading a pipeline's record on each of its call results (the most frequent read) costs
/// no B-tree lookup and no decoding. The copy holds exactly what was written (a trap rolls the
/// heap back with stable memory), and starts empty after an upgrade.
pub struct StableStore<M: Memory> {
    records: BTreeMap<Principal, Encoded<CanisterRecord>, M>,
    queues: BTreeMap<QueueKey, Principal, M>,
    events: BTreeMap<u64, Event, M>,
    in_flight: InFlight<M>,
    /// Records staged by a rollout's start and not yet written in place: bounded entries
    /// appended to a `StableVec` and taken from its end.
    staged: StableVec<Slot, M>,
    recent: std::collections::BTreeMap<Principal, CanisterRecord>,
    heads: std::cell::RefCell<Heads>,
}

impl<M: Memory> StableStore<M> {
    /// Opens the maps, keeping what the memories already hold (after an upgrade).
    pub fn init(records: M, queues: M, events: M, in_flight: M, slots: M, staged: M) -> Self {
        StableStore {
            records: BTreeMap::init(records),
            queues: BTreeMap::init(queues),
            events: BTreeMap::init(events),
            in_flight: InFlight::init(slots, in_flight),
            staged: StableVec::init(staged),
            recent: std::collections::BTreeMap::new(),
            heads: std::cell::RefCell::new(Heads::unknown()),
        }
    }

    /// Checks, after every write in debug and test builds, that the heap agrees with stable
    /// memory: each known queue head is the tree's first entry, the in-flight index describes
    /// the slots and overflow, each record in flight says so and also has its entry among all
    /// records, and the heap copy of `written` (the record just written) is what is stored.
    /// Costs O(in flight), never O(fleet).
    pub fn check_invariants(&self, written: Option<&Principal>) {
        for (tag, head) in self.heads.borrow().0.iter().enumerate() {
            let kind = QueueKind::from_tag(tag as u8).expect("one head per queue kind");
            let whole = QueueKey::new(kind, 0, 0)..=QueueKey::new(kind, u64::MAX, u64::MAX);
            let first = self.queues.range(whole).next().map(|e| e.into_pair());
            match head {
                Head::Unknown => {}
                Head::Empty => assert_eq!(first, None, "queue {kind:?} is not empty"),
                Head::At(key, id) => assert_eq!(first, Some((*key, *id)), "head of {kind:?}"),
            }
        }
        self.in_flight.check_invariants();
        for id in self.in_flight.page(None, usize::MAX) {
            let record = self.in_flight.get(&id).expect("indexed");
            assert!(
                record.in_flight(),
                "{id} is in the in-flight set but not in flight"
            );
            assert!(
                self.records.contains_key(&id),
                "{id} in flight has no record"
            );
        }
        if let Some(id) = written {
            let stored = self
                .in_flight
                .get(id)
                .or_else(|| self.records.get(id).map(|e| e.decode()));
            assert_eq!(self.recent.get(id), stored.as_ref(), "heap copy of {id}");
        }
    }

    /// The first entry of `kind`'s queue, from the heap when known.
    fn head(&self, kind: QueueKind) -> Head {
        let mut heads = self.heads.borrow_mut();
        let head = heads.slot(kind);
        if *head == Head::Unknown {
            let whole = QueueKey::new(kind, 0, 0)..=QueueKey::new(kind, u64::MAX, u64::MAX);
            *head = match self.queues.range(whole).next() {
                Some(e) => {
                    let (key, id) = e.into_pair();
                    Head::At(key, id)
                }
                None => Head::Empty,
            };
        }
        *head
    }
}

impl<M: Memory> RolloutStore for StableStore<M> {
    fn get(&self, id: &Principal) -> Option<CanisterRecord> {
        match self.recent.get(id) {
            Some(r) => Some(r.clone()),
            None => self
                .in_flight
                .get(id)
                .or_else(|| self.records.get(id).map(|e| e.decode())),
        }
    }

    fn put(&mut self, id: Principal, record: CanisterRecord) {
        if record.in_flight() {
            self.in_flight.put(id, &record);
        } else {
            // Leaving flight, or never in it: the slot is freed (the heap knows which).
            self.in_flight.remove(&id);
            self.records.insert(id, Encoded::new(&record));
        }
        if self.recent.insert(id, record).is_none() && self.recent.len() > RECENT_CAPACITY {
            // Make room: the entry with the smallest id, unless it is this one.
            let evict = self
                .recent
                .keys()
                .find(|k| **k != id)
                .copied()
                .expect("more than one entry");
            self.recent.remove(&evict);
        }
        #[cfg(debug_assertions)]
        self.check_invariants(Some(&id));
    }

    fn len(&self) -> u64 {
        self.records.len()
    }

    fn page(&self, after: Option<Principal>, limit: usize) -> Vec<(Principal, CanisterRecord)> {
        self.records
            .range(crate::store::after(after))
            .take(limit)
            .map(|e| {
                let (id, record) = e.into_pair();
                let record = self.in_flight.get(&id).unwrap_or_else(|| record.decode());
                (id, record)
            })
            .collect()
    }

    fn enqueue(&mut self, key: QueueKey, id: Principal) {
        self.queues.insert(key, id);
        self.heads.get_mut().enqueued(key, id);
        #[cfg(debug_assertions)]
        self.check_invariants(None);
    }

    fn dequeue(&mut self, key: &QueueKey) -> Option<Principal> {
        self.heads.get_mut().dequeued(key);
        let id = self.queues.remove(key);
        #[cfg(debug_assertions)]
        self.check_invariants(None);
        id
    }

    fn first_in(&self, from: QueueKey, to: QueueKey) -> Option<(QueueKey, Principal)> {
        // Within one queue the heap's head answers, unless the range begins after it.
        let same_queue = from.queue == to.queue
            || (QueueKind::from_tag(from.queue.tag() + 1) == Some(to.queue)
                && to.a == 0
                && to.b == 0);
        if same_queue {
            match self.head(from.queue) {
                Head::Empty => return None,
                Head::At(key, _) if key >= to => return None,
                Head::At(key, id) if key >= from => return Some((key, id)),
                Head::At(..) | Head::Unknown => {}
            }
        }
        self.queues.range(from..to).next().map(|e| e.into_pair())
    }

    fn is_in_flight(&self, id: &Principal) -> bool {
        self.in_flight.contains(id)
    }

    fn in_flight_len(&self) -> u64 {
        self.in_flight.len()
    }

    fn in_flight_page(&self, after: Option<Principal>, limit: usize) -> Vec<Principal> {
        self.in_flight.page(after, limit)
    }

    fn push_event(&mut self, seq: u64, event: Event) {
        self.events.insert(seq, event);
    }

    fn drop_event(&mut self, seq: u64) {
        self.events.remove(&seq);
    }

    fn events(&self, from: u64, limit: usize) -> Vec<(u64, Event)> {
        self.events
            .range(from..)
            .take(limit)
            .map(|e| e.into_pair())
            .collect()
    }

    fn stage(&mut self, id: Principal, record: CanisterRecord) {
        let bytes = Encoded::new(&record).into_bytes();
        if 2 + id.as_slice().len() + bytes.len() > SLOT_BYTES as usize {
            let key = record.queued.expect("a staged record is queued");
            self.put(id, record);
            self.enqueue(key, id);
            return;
        }
        self.staged.push(&Slot::Held(id, bytes));
    }

    fn staged_len(&self) -> u64 {
        self.staged.len()
    }

    fn take_staged(&mut self, limit: usize) -> Vec<(Principal, CanisterRecord)> {
        let mut taken = Vec::new();
        while taken.len() < limit {
            match self.staged.pop() {
                Some(Slot::Held(id, bytes)) => taken.push((
                    id,
                    Encoded::<CanisterRecord>::from_bytes(bytes.into()).decode(),
                )),
                Some(Slot::Free) => unreachable!("only held entries are staged"),
                None => break,
            }
        }
        taken
    }

    fn clear(&mut self) {
        while self.staged.pop().is_some() {}
        self.recent.clear();
        *self.heads.get_mut() = Heads([Head::Empty; QUEUE_KINDS]);
        self.records.clear_new();
        self.queues.clear_new();
        self.events.clear_new();
        self.in_flight.clear();
        #[cfg(debug_assertions)]
        self.check_invariants(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;
    use ic_stable_structures::DefaultMemoryImpl;

    fn p(i: u32) -> Principal {
        let mut b = [1u8; 10];
        b[..4].copy_from_slice(&i.to_be_bytes());
        Principal::from_slice(&b)
    }

    /// Answers every call with success at once.
    fn answer(op: &Op, version: &str) -> ActionResult {
        match op {
            Op::CanisterStatus => ActionResult::Status {
                controllers: vec![p(u32::MAX), p(u32::MAX - 1)],
                module_hash: Some(vec![1; 32]),
                cycles: u128::MAX,
            },
            Op::TopUp { .. } => ActionResult::ToppedUp,
            Op::Stop => ActionResult::Stopped,
            Op::Start => ActionResult::Started,
            Op::TakeSnapshot { .. } => ActionResult::SnapshotTaken { snapshot: vec![7] },
            Op::InstallChunked { .. } => ActionResult::Installed,
            Op::HealthCheck => ActionResult::Health {
                ok: true,
                version: version.into(),
                message: None,
            },
            Op::LoadSnapshot { .. } => ActionResult::SnapshotLoaded,
            Op::DeleteSnapshot { .. } => ActionResult::SnapshotDeleted,
        }
    }

    type Driven = (
        RolloutStatus,
        Vec<(u64, Event)>,
        Vec<(Principal, CanisterRecord)>,
    );

    fn plan_to_v2() -> RolloutPlan {
        RolloutPlan::new(Release {
            module_hash: vec![2; 32],
            version: "2.0.0".into(),
        })
    }

    /// A rollout of `plan` over `n` canisters on v1.
    fn start<S: RolloutStore>(plan: &RolloutPlan, n: u32, store: S) -> Rollout<S> {
        let fleet: Vec<FleetCanister> = (0..n)
            .map(|i| FleetCanister {
                id: p(i),
                policy: UpgradePolicy::Auto,
                module_hash: Some(vec![1; 32]),
                recovery: p(u32::MAX - 1),
                snapshot: None,
                subnet: None,
            })
            .collect();
        let cohort = plan::select(plan, &fleet).unwrap();
        Rollout::start(1, p(u32::MAX), plan, cohort, store, 0).unwrap()
    }

    fn drive<S: RolloutStore>(store: S) -> Driven {
        let mut plan = plan_to_v2();
        plan.snapshot.keep_ns = Some(MINUTE);
        let mut r = start(&plan, 500, store);
        let mut now = 0;
        while r.has_work() {
            now += SECOND;
            let mut queue = r.tick(now);
            while let Some(a) = queue.pop() {
                if let Some(next) = r
                    .on_result(a.canister, answer(&a.op, "2.0.0"), now)
                    .unwrap()
                {
                    queue.push(next);
                }
            }
        }
        (r.status(now), r.events(0, 10_000), r.records(None, 10_000))
    }

    /// The heap's queue heads answer `first_in` exactly as the tree does: random enqueues and
    /// dequeues over every queue, with ranges that start before, at and after each head, and
    /// a store reopened on the same memories (heads unknown) in between.
    #[test]
    fn queue_heads_answer_first_in_as_the_tree_does() {
        let memories: Vec<DefaultMemoryImpl> =
            (0..6).map(|_| DefaultMemoryImpl::default()).collect();
        let open = || {
            let m = |i: usize| memories[i].clone();
            StableStore::init(m(0), m(1), m(2), m(3), m(4), m(5))
        };
        let mut stable = open();
        let mut mem = MemStore::new();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let kinds = [
            QueueKind::Request,
            QueueKind::Pending,
            QueueKind::Retry,
            QueueKind::Wake,
            QueueKind::Cleanup,
            QueueKind::Outstanding,
        ];
        let mut keys: Vec<QueueKey> = Vec::new();
        for step in 0..4_000u32 {
            if step % 997 == 0 {
                stable = open();
            }
            let kind = kinds[next(6) as usize];
            if next(3) > 0 || keys.is_empty() {
                let key = QueueKey::new(kind, next(8), next(8));
                stable.enqueue(key, p(step));
                mem.enqueue(key, p(step));
                keys.push(key);
            } else {
                let key = keys.swap_remove(next(keys.len() as u64) as usize);
                assert_eq!(stable.dequeue(&key), mem.dequeue(&key));
            }
            for (from, to) in [
                (
                    QueueKey::new(kind, 0, 0),
                    QueueKey::new(kind, u64::MAX, u64::MAX),
                ),
                (
                    QueueKey::new(kind, 0, 0),
                    QueueKey::new(kind, next(8), u64::MAX),
                ),
                (QueueKey::new(kind, next(8), 0), QueueKey::new(kind, 8, 0)),
                (
                    QueueKey::new(kind, next(8), next(8)),
                    QueueKey::new(kind, u64::MAX, 0),
                ),
            ] {
                assert_eq!(
                    stable.first_in(from, to),
                    mem.first_in(from, to),
                    "{from:?}..{to:?}"
                );
            }
            if let Some(after) = kinds.iter().find(|k| k.tag() == kind.tag() + 1) {
                let (from, to) = (QueueKey::new(kind, next(8), 0), QueueKey::new(*after, 0, 0));
                assert_eq!(
                    stable.first_in(from, to),
                    mem.first_in(from, to),
                    "{from:?}..{to:?}"
                );
            }
        }
    }

    #[test]
    fn stable_store_behaves_like_the_memory_store() {
        let m = || DefaultMemoryImpl::default();
        let stable = drive(StableStore::init(m(), m(), m(), m(), m(), m()));
        let mem = drive(MemStore::new());
        assert_eq!(stable.0.counts.done, 500);
        assert_eq!(stable.0.phase, Phase::Completed);
        assert_eq!(stable.1, mem.1);
        assert_eq!(stable.2, mem.2);
    }

    #[test]
    fn pipelines_are_in_the_in_flight_set_and_their_calls_are_not_queued() {
        let m = || DefaultMemoryImpl::default();
        let mut plan = plan_to_v2();
        plan.limits.max_in_flight = 20;
        plan.limits.max_starts_per_tick = 20;
        plan.limits.burst = 20;
        let memories = [m(), m(), m(), m(), m(), m()];
        let [a, b, c, d, e, f] = memories.clone();
        let mut r = start(&plan, 50, StableStore::init(a, b, c, d, e, f));
        let started = r.tick(SECOND);
        assert!(started.len() > 2, "{}", started.len());
        // Half of them answer once; their next calls are lost with their callbacks.
        for a in started.iter().step_by(2) {
            let next = r
                .on_result(a.canister, answer(&a.op, "2.0.0"), 2 * SECOND)
                .unwrap();
            assert!(next.is_some());
        }
        let in_flight: Vec<Principal> = r
            .records(None, 1_000)
            .into_iter()
            .filter(|(_, rec)| rec.in_flight())
            .map(|(id, _)| id)
            .collect();
        assert_eq!(in_flight.len(), started.len());
        assert_eq!(r.in_flight_page(None, 1_000), in_flight);
        assert!(in_flight.iter().all(|id| r.is_in_flight(id)));
        assert!(!r.is_in_flight(&p(49)));
        let outstanding = (
            QueueKey::new(QueueKind::Outstanding, 0, 0),
            QueueKey::new(QueueKind::Outstanding, u64::MAX, u64::MAX),
        );
        assert_eq!(r.store().first_in(outstanding.0, outstanding.1), None);
        // Stable memory alone (after an upgrade, without the heap copy) reads the same.
        let [a, b, c, d, e, f] = memories;
        let reopened = StableStore::init(a, b, c, d, e, f);
        for (id, record) in r.records(None, 1_000) {
            assert_eq!(reopened.get(&id), Some(record));
            assert_eq!(reopened.is_in_flight(&id), r.is_in_flight(&id));
        }
        assert_eq!(reopened.page(None, 1_000), r.records(None, 1_000));
        // After an upgrade, every lost call is issued again exactly once, a few per call.
        let mut again = Vec::new();
        loop {
            let batch = r.reissue_outstanding(3 * SECOND, 3 * SECOND, 3);
            assert!(batch.len() <= 3);
            if batch.is_empty() {
                break;
            }
            again.extend(batch.into_iter().map(|a| a.canister));
        }
        again.sort();
        assert_eq!(again, in_flight);
        // The calls issued again answer; one that ends its pipeline leaves the set.
        let c = in_flight[0];
        let action = r.current_action(&c).unwrap();
        r.on_result(c, answer(&action.op, "2.0.0"), 4 * SECOND)
            .unwrap();
        let mut now = 4 * SECOND;
        let mut next = r.current_action(&c);
        while let Some(a) = next {
            now += SECOND;
            next = r.on_result(c, answer(&a.op, "2.0.0"), now).unwrap();
        }
        assert!(r.record(&c).unwrap().outcome().is_some());
        assert!(!r.is_in_flight(&c));
        assert_eq!(r.in_flight_page(None, 1_000).len(), in_flight.len() - 1);
    }

    #[test]
    fn an_encoded_record_is_stored_as_the_record_itself() {
        let mut r = CanisterRecord::new(Job::Upgrade, 3, p(9));
        r.started_at = Some(5);
        r.snapshot = Some(vec![1, 2, 3]);
        let e = Encoded::new(&r);
        assert_eq!(e.to_bytes(), r.to_bytes());
        assert_eq!(
            Encoded::<CanisterRecord>::from_bytes(r.to_bytes()).decode(),
            r
        );
    }

    #[test]
    fn records_read_the_same_from_the_heap_copy_and_from_stable_memory() {
        let m = || DefaultMemoryImpl::default();
        let (records, queues, events, in_flight) = (m(), m(), m(), m());
        let (slots, staged) = (m(), m());
        let mut store = StableStore::init(
            records.clone(),
            queues.clone(),
            events.clone(),
            in_flight.clone(),
            slots.clone(),
            staged.clone(),
        );
        let n = RECENT_CAPACITY as u32 + 10;
        for i in 0..n {
            let mut r = CanisterRecord::new(Job::Upgrade, 0, p(u32::MAX));
            r.started_at = Some(u64::from(i));
            store.put(p(i), r);
        }
        assert_eq!(store.recent.len(), RECENT_CAPACITY);
        let mut r = store.get(&p(3)).unwrap();
        r.started_at = Some(99);
        store.put(p(3), r);
        let reopened = StableStore::init(records, queues, events, in_flight, slots, staged);
        assert!(reopened.recent.is_empty());
        for i in 0..n {
            assert_eq!(store.get(&p(i)), reopened.get(&p(i)), "{i}");
        }
        assert_eq!(reopened.get(&p(3)).unwrap().started_at, Some(99));
        store.clear();
        assert!(store.get(&p(3)).is_none());
    }

    /// Staged records survive a reopening of the store (a manager upgrade while a start's
    /// cohort is being written) and come back as they went in; one too large for a stage
    /// entry is written in place at once, with its queue entry.
    #[test]
    fn staged_records_are_read_back_after_reopening_and_large_ones_are_written_at_once() {
        let memories: [DefaultMemoryImpl; 6] = Default::default();
        let open = || {
            let [a, b, c, d, e, f] = memories.clone();
            StableStore::init(a, b, c, d, e, f)
        };
        let mut store = open();
        let record = |i: u32| {
            let mut r = CanisterRecord::new(Job::Upgrade, 1, p(u32::MAX - i));
            r.expected_module_hash = Some(vec![7; 32]);
            r.queued = Some(QueueKey::new(QueueKind::Pending, 1, u64::from(i)));
            r
        };
        let mut staged = Vec::new();
        for i in 0..300 {
            store.stage(p(i), record(i));
            staged.push((p(i), record(i)));
        }
        let mut large = record(300);
        large.last_error = Some(CallError {
            reject_code: 5,
            message: "x".repeat(SLOT_BYTES as usize),
        });
        store.stage(p(300), large.clone());
        assert_eq!(store.staged_len(), 300);
        assert_eq!(store.get(&p(300)), Some(large.clone()));
        let queued = large.queued.unwrap();
        assert_eq!(
            store.first_in(queued, QueueKey::new(QueueKind::Pending, 2, 0)),
            Some((queued, p(300)))
        );

        let mut reopened = open();
        assert_eq!(reopened.staged_len(), 300);
        let mut taken = reopened.take_staged(200);
        assert_eq!(taken.len(), 200);
        assert_eq!(reopened.staged_len(), 100);
        taken.extend(reopened.take_staged(1_000));
        assert_eq!(reopened.staged_len(), 0);
        taken.sort_by_key(|(id, _)| *id);
        staged.sort_by_key(|(id, _)| *id);
        assert_eq!(taken, staged);
        // Taking writes nothing in place: the rollout does.
        assert_eq!(reopened.get(&p(0)), None);
    }

    fn fresh_store() -> StableStore<DefaultMemoryImpl> {
        let m = DefaultMemoryImpl::default;
        StableStore::init(m(), m(), m(), m(), m(), m())
    }

    /// The check sees a heap queue head that no longer matches the tree (a write that went
    /// around the store).
    #[test]
    #[should_panic(expected = "head of Pending")]
    fn the_invariant_check_catches_a_stale_queue_head() {
        let mut store = fresh_store();
        let key = QueueKey::new(QueueKind::Pending, 0, 1);
        store.enqueue(key, p(1));
        assert_eq!(
            store.first_in(key, QueueKey::new(QueueKind::Retry, 0, 0)),
            Some((key, p(1)))
        );
        store.queues.remove(&key);
        store.check_invariants(None);
    }

    /// The check sees a heap copy that differs from what stable memory holds.
    #[test]
    #[should_panic(expected = "heap copy of")]
    fn the_invariant_check_catches_a_stale_heap_copy() {
        let mut store = fresh_store();
        store.put(p(1), CanisterRecord::new(Job::Upgrade, 0, p(9)));
        store.recent.get_mut(&p(1)).unwrap().started_at = Some(7);
        store.check_invariants(Some(&p(1)));
    }

    /// The check sees a record in flight whose entry among all records is missing.
    #[test]
    #[should_panic(expected = "in flight has no record")]
    fn the_invariant_check_catches_a_record_in_flight_only() {
        let mut store = fresh_store();
        let mut r = CanisterRecord::new(Job::Upgrade, 0, p(9));
        r.step = Step::Stopping;
        assert!(r.in_flight());
        store.in_flight.put(p(1), &r);
        store.check_invariants(None);
    }

    #[test]
    fn queue_keys_sort_as_bytes_in_key_order() {
        let keys = [
            QueueKey::new(QueueKind::Request, 5, 0),
            QueueKey::new(QueueKind::Pending, 0, u64::MAX),
            QueueKey::new(QueueKind::Pending, 1, 0),
            QueueKey::new(QueueKind::Retry, 256, 1),
            QueueKey::new(QueueKind::Outstanding, 0, 0),
        ];
        for w in keys.windows(2) {
            assert!(w[0] < w[1]);
            assert!(w[0].into_bytes() < w[1].into_bytes());
        }
        for k in keys {
            assert_eq!(QueueKey::from_bytes(Cow::Owned(k.into_bytes())), k);
        }
    }
}
