//! The storage a rollout needs, shaped so that every operation maps onto an ordered map: the
//! manager keeps it in stable memory ([`crate::stable::StableStore`]), tests keep it in
//! [`MemStore`]. The driver touches only the entries of the canisters it works on, so a tick
//! costs O(actions · log fleet), never a scan.

use std::collections::{BTreeMap, BTreeSet};

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

use crate::pipeline::CanisterRecord;
use crate::rollout::Event;

/// The queues of a rollout, all in one ordered key space.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum QueueKind {
    /// Owner requests, first come first served within a subnet: `(subnet << 56 | ticket, 0)`;
    /// then busy canisters whose retry is due: `(subnet << 56 | 2^56 - 1, sequence)`.
    Request,
    /// Canisters not started yet: `(wave, subnet << 56 | position)`, so that each subnet's
    /// canisters of a wave are one range, in the wave's order.
    Pending,
    /// Busy canisters waiting to restart their pipeline: `(time, sequence)`.
    Retry,
    /// In-flight canisters waiting to repeat a call after a backoff: `(time, sequence)`.
    Wake,
    /// Done canisters whose snapshot is due for deletion: `(time, sequence)`.
    Cleanup,
    /// Snapshot deletions issued and not answered yet: `(time issued, sequence)`. A pipeline's
    /// calls are not queued: its record is the source of truth, and the canister is in the
    /// store's in-flight set from its start to its end.
    Outstanding,
}

impl QueueKind {
    pub fn tag(self) -> u8 {
        match self {
            QueueKind::Request => 0,
            QueueKind::Pending => 1,
            QueueKind::Retry => 2,
            QueueKind::Wake => 3,
            QueueKind::Cleanup => 4,
            QueueKind::Outstanding => 5,
        }
    }

    pub fn from_tag(tag: u8) -> Option<Self> {
        Some(match tag {
            0 => QueueKind::Request,
            1 => QueueKind::Pending,
            2 => QueueKind::Retry,
            3 => QueueKind::Wake,
            4 => QueueKind::Cleanup,
            5 => QueueKind::Outstanding,
            _ => return None,
        })
    }
}

/// Position in a queue; ordered by queue, then `a`, then `b`.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct QueueKey {
    pub queue: QueueKind,
    pub a: u64,
    pub b: u64,
}

impl QueueKey {
    pub fn new(queue: QueueKind, a: u64, b: u64) -> Self {
        QueueKey { queue, a, b }
    }
}

/// The range of keys after `after` (all keys without it): where a page resumes.
pub fn after(after: Option<Principal>) -> (std::ops::Bound<Principal>, std::ops::Bound<Principal>) {
    use std::ops::Bound;
    (
        after.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    )
}

/// Storage of one rollout's per-canister records, queues and event log.
pub trait RolloutStore {
    fn get(&self, id: &Principal) -> Option<CanisterRecord>;
    /// Writes a record; the canister is in the in-flight set exactly while its last record
    /// written is [`CanisterRecord::in_flight`].
    fn put(&mut self, id: Principal, record: CanisterRecord);
    /// Number of records.
    fn len(&self) -> u64;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Up to `limit` records in id order, starting after `after`.
    fn page(&self, after: Option<Principal>, limit: usize) -> Vec<(Principal, CanisterRecord)>;

    fn enqueue(&mut self, key: QueueKey, id: Principal);
    fn dequeue(&mut self, key: &QueueKey) -> Option<Principal>;
    /// The first entry with `from <= key < to`.
    fn first_in(&self, from: QueueKey, to: QueueKey) -> Option<(QueueKey, Principal)>;

    /// Whether the canister's record is in flight: its pipeline started, and it has not
    /// finished nor waits as busy for a retry.
    fn is_in_flight(&self, id: &Principal) -> bool;
    /// Up to `limit` canisters of the in-flight set in id order, starting after `after`.
    fn in_flight_page(&self, after: Option<Principal>, limit: usize) -> Vec<Principal>;
    /// Size of the in-flight set.
    fn in_flight_len(&self) -> u64;

    /// Keeps a record (with its [`CanisterRecord::queued`] entry) aside until
    /// [`RolloutStore::take_staged`] hands it back to be written in place: an append, far
    /// cheaper than the tree writes of [`RolloutStore::put`] and [`RolloutStore::enqueue`],
    /// so that starting a rollout of any size fits in one message and the rest is written over
    /// the next ticks. A store may write a record in place at once instead (one too large to
    /// stage).
    fn stage(&mut self, id: Principal, record: CanisterRecord);
    /// Records staged and not taken yet.
    fn staged_len(&self) -> u64;
    /// Up to `limit` staged records, removed from the stage, in no particular order.
    fn take_staged(&mut self, limit: usize) -> Vec<(Principal, CanisterRecord)>;

    fn push_event(&mut self, seq: u64, event: Event);
    fn drop_event(&mut self, seq: u64);
    /// Up to `limit` events with sequence number at least `from`, oldest first.
    fn events(&self, from: u64, limit: usize) -> Vec<(u64, Event)>;

    /// Removes everything, to reuse the storage for the next rollout.
    fn clear(&mut self);
}

/// In-memory [`RolloutStore`] over `BTreeMap`s.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    records: BTreeMap<Principal, CanisterRecord>,
    queues: BTreeMap<QueueKey, Principal>,
    events: BTreeMap<u64, Event>,
    in_flight: BTreeSet<Principal>,
    staged: Vec<(Principal, CanisterRecord)>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl RolloutStore for MemStore {
    fn get(&self, id: &Principal) -> Option<CanisterRecord> {
        self.records.get(id).cloned()
    }

    fn put(&mut self, id: Principal, record: CanisterRecord) {
        if record.in_flight() {
            self.in_flight.insert(id);
        } else {
            self.in_flight.remove(&id);
        }
        self.records.insert(id, record);
    }

    fn len(&self) -> u64 {
        self.records.len() as u64
    }

    fn page(&self, after: Option<Principal>, limit: usize) -> Vec<(Principal, CanisterRecord)> {
        self.records
            .range(self::after(after))
            .take(limit)
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    fn enqueue(&mut self, key: QueueKey, id: Principal) {
        self.queues.insert(key, id);
    }

    fn dequeue(&mut self, key: &QueueKey) -> Option<Principal> {
        self.queues.remove(key)
    }

    fn first_in(&self, from: QueueKey, to: QueueKey) -> Option<(QueueKey, Principal)> {
        self.queues.range(from..to).next().map(|(k, v)| (*k, *v))
    }

    fn is_in_flight(&self, id: &Principal) -> bool {
        self.in_flight.contains(id)
    }

    fn in_flight_len(&self) -> u64 {
        self.in_flight.len() as u64
    }

    fn in_flight_page(&self, after: Option<Principal>, limit: usize) -> Vec<Principal> {
        self.in_flight
            .range(self::after(after))
            .take(limit)
            .copied()
            .collect()
    }

    fn stage(&mut self, id: Principal, record: CanisterRecord) {
        self.staged.push((id, record));
    }

    fn staged_len(&self) -> u64 {
        self.staged.len() as u64
    }

    fn take_staged(&mut self, limit: usize) -> Vec<(Principal, CanisterRecord)> {
        let from = self.staged.len().saturating_sub(limit);
        self.staged.split_off(from)
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
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    fn clear(&mut self) {
        self.in_flight.clear();
        self.records.clear();
        self.queues.clear();
        self.events.clear();
        self.staged.clear();
    }
}
