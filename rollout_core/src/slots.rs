//! The records of the pipelines in flight, each in a slot of its own.
//!
//! A pipeline's record is rewritten on every one of its call results, so this is the most
//! written structure of a rollout. Rewriting an entry of a B-tree loads and stores whole nodes
//! (about 100k instructions in the manager, measured on ic_sim); rewriting a slot is one write
//! of the record's bytes. The slots are a `StableVec` of bounded entries: which canister holds
//! which slot, and which slots are free, is kept in the heap and rebuilt from the slots when
//! the store is opened (a few dozen reads: there are never more slots than pipelines were in
//! flight at once). A record too large for a slot (a long reject or health message) goes to
//! an overflow B-tree instead, which is also where layout version 2 kept every record in
//! flight, so those are found without a migration.

use std::borrow::Cow;
use std::collections::BTreeMap as HeapMap;

use candid::Principal;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{BTreeMap, Memory, StableVec, Storable};

use crate::pipeline::CanisterRecord;
use crate::stable::Encoded;

/// Largest stored slot: a marker, the principal's length and bytes, the record's bytes.
pub const SLOT_BYTES: u32 = 512;

/// One slot's content (also an entry of [`crate::StableStore`]'s stage).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    Free,
    Held(Principal, Vec<u8>),
}

const FREE: u8 = 0;
const HELD: u8 = 1;

impl Storable for Slot {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(match self {
            Slot::Free => vec![FREE],
            Slot::Held(id, record) => {
                let id = id.as_slice();
                let mut b = Vec::with_capacity(2 + id.len() + record.len());
                b.push(HELD);
                b.push(id.len() as u8);
                b.extend_from_slice(id);
                b.extend_from_slice(record);
                b
            }
        })
    }

    fn into_bytes(self) -> Vec<u8> {
        self.to_bytes().into_owned()
    }

    /// Only bytes [`Slot::into_bytes`] wrote are read.
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        match bytes.split_first() {
            Some((&HELD, rest)) => {
                let (len, rest) = rest.split_first().expect("slot: principal length");
                let (id, record) = rest.split_at(*len as usize);
                Slot::Held(Principal::from_slice(id), record.to_vec())
            }
            Some((&FREE, _)) => Slot::Free,
            _ => panic!("slot: unknown marker"),
        }
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: SLOT_BYTES,
        is_fixed_size: false,
    };
}

/// Where a record in flight is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Slot(u64),
    Overflow,
}

/// The records in flight: slots, an overflow tree, and the heap's index of both.
pub struct InFlight<M: Memory> {
    slots: StableVec<Slot, M>,
    overflow: BTreeMap<Principal, Encoded<CanisterRecord>, M>,
    index: HeapMap<Principal, Place>,
    free: Vec<u64>,
}

impl<M: Memory> InFlight<M> {
    /// Opens the slots and the overflow tree, keeping what they hold, and indexes both.
    pub fn init(slots: M, overflow: M) -> Self {
        let slots = StableVec::init(slots);
        let overflow: BTreeMap<Principal, Encoded<CanisterRecord>, M> = BTreeMap::init(overflow);
        let mut index = HeapMap::new();
        let mut free = Vec::new();
        for (i, slot) in slots.iter().enumerate() {
            match slot {
                Slot::Held(id, _) => {
                    index.insert(id, Place::Slot(i as u64));
                }
                Slot::Free => free.push(i as u64),
            }
        }
        for id in overflow.keys() {
            index.insert(id, Place::Overflow);
        }
        InFlight {
            slots,
            overflow,
            index,
            free,
        }
    }

    pub fn contains(&self, id: &Principal) -> bool {
        self.index.contains_key(id)
    }

    pub fn get(&self, id: &Principal) -> Option<CanisterRecord> {
        match self.index.get(id)? {
            Place::Slot(i) => match self.slots.get(*i)? {
                Slot::Held(held, bytes) if held == *id => {
                    Some(Encoded::<CanisterRecord>::from_bytes(Cow::Owned(bytes)).decode())
                }
                _ => panic!("in-flight slot {i} does not hold {id}"),
            },
            Place::Overflow => self.overflow.get(id).map(|e| e.decode()),
        }
    }

    /// Writes the record of a pipeline in flight.
    pub fn put(&mut self, id: Principal, record: &CanisterRecord) {
        let bytes = Encoded::new(record).into_bytes();
        let fits = 2 + id.as_slice().len() + bytes.len() <= SLOT_BYTES as usize;
        let place = self.index.get(&id).copied();
        match (fits, place) {
            (true, Some(Place::Slot(i))) => self.slots.set(i, &Slot::Held(id, bytes)),
            (true, _) => {
                if place == Some(Place::Overflow) {
                    self.overflow.remove(&id);
                }
                let slot = Slot::Held(id, bytes);
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slots.set(i, &slot);
                        i
                    }
                    None => {
                        self.slots.push(&slot);
                        self.slots.len() - 1
                    }
                };
                self.index.insert(id, Place::Slot(i));
            }
            (false, _) => {
                if let Some(Place::Slot(i)) = place {
                    self.release(i);
                }
                self.overflow
                    .insert(id, Encoded::from_bytes(Cow::Owned(bytes)));
                self.index.insert(id, Place::Overflow);
            }
        }
    }

    /// The pipeline left flight: its slot is free again.
    pub fn remove(&mut self, id: &Principal) {
        match self.index.remove(id) {
            Some(Place::Slot(i)) => self.release(i),
            Some(Place::Overflow) => {
                self.overflow.remove(id);
            }
            None => {}
        }
    }

    fn release(&mut self, i: u64) {
        self.slots.set(i, &Slot::Free);
        self.free.push(i);
    }

    /// Up to `limit` canisters in flight in id order, after `after`.
    pub fn page(&self, after: Option<Principal>, limit: usize) -> Vec<Principal> {
        self.index
            .range(crate::store::after(after))
            .take(limit)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn len(&self) -> u64 {
        self.index.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Checks that the heap's index and free list describe the slots and the overflow tree
    /// exactly: each held slot is indexed at its place, each free slot is listed once, and the
    /// overflow tree holds exactly the records indexed there. Reads every slot.
    pub fn check_invariants(&self) {
        let mut free: Vec<u64> = self.free.clone();
        free.sort_unstable();
        let listed = free.len();
        free.dedup();
        assert_eq!(free.len(), listed, "a slot is listed free twice");
        let mut held = 0;
        for (i, slot) in self.slots.iter().enumerate() {
            let i = i as u64;
            match slot {
                Slot::Held(id, _) => {
                    held += 1;
                    assert_eq!(self.index.get(&id), Some(&Place::Slot(i)), "slot {i}");
                    assert!(free.binary_search(&i).is_err(), "held slot {i} listed free");
                }
                Slot::Free => assert!(free.binary_search(&i).is_ok(), "free slot {i} unlisted"),
            }
        }
        let overflow: Vec<Principal> = self.overflow.keys().collect();
        for id in &overflow {
            assert_eq!(self.index.get(id), Some(&Place::Overflow), "overflow {id}");
        }
        assert_eq!(
            self.index.len(),
            held + overflow.len(),
            "the index names a record no slot nor the overflow holds"
        );
    }

    /// Empties both; the slots stay allocated, free, for the next rollout.
    pub fn clear(&mut self) {
        for (_, place) in std::mem::take(&mut self.index) {
            if let Place::Slot(i) = place {
                self.slots.set(i, &Slot::Free);
            }
        }
        self.free = (0..self.slots.len()).rev().collect();
        self.overflow.clear_new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{CallError, Failure, Job};
    use ic_stable_structures::DefaultMemoryImpl;

    fn p(i: u8) -> Principal {
        Principal::from_slice(&[i; 29])
    }

    fn record(message_len: usize) -> CanisterRecord {
        let mut r = CanisterRecord::new(Job::Upgrade, 0, p(200));
        r.last_error = Some(CallError {
            reject_code: 5,
            message: "x".repeat(message_len),
        });
        r
    }

    /// Records move between slots and the overflow tree as their size changes, free slots
    /// are reused, and a store opened again on the same memories finds every record.
    #[test]
    fn records_stay_found_across_slots_overflow_and_reopening() {
        let (slots, overflow) = (DefaultMemoryImpl::default(), DefaultMemoryImpl::default());
        let open = || InFlight::init(slots.clone(), overflow.clone());
        let mut f = open();
        f.put(p(1), &record(10));
        f.put(p(2), &record(2_000));
        f.put(p(3), &record(10));
        assert_eq!(f.slots.len(), 2, "the large record is not in a slot");
        assert_eq!(f.overflow.len(), 1);
        f.put(p(2), &record(20));
        assert_eq!(f.overflow.len(), 0, "it moved into a slot when it fit");
        assert_eq!(f.slots.len(), 3);
        f.put(p(1), &record(3_000));
        assert_eq!(f.overflow.len(), 1);
        f.remove(&p(3));
        f.put(p(4), &record(30));
        assert_eq!(f.slots.len(), 3, "a freed slot is reused");
        let reopened = open();
        for (id, len) in [(1, 3_000), (2, 20), (4, 30)] {
            assert_eq!(f.get(&p(id)), Some(record(len)));
            assert_eq!(reopened.get(&p(id)), Some(record(len)));
        }
        assert_eq!(reopened.get(&p(3)), None);
        assert_eq!(reopened.page(None, 10), vec![p(1), p(2), p(4)]);
        assert_eq!(reopened.page(Some(p(1)), 1), vec![p(2)]);
        let mut f = reopened;
        f.clear();
        assert!(!f.contains(&p(1)) && !f.contains(&p(2)));
        let reopened = open();
        assert_eq!(reopened.page(None, 10), Vec::<Principal>::new());
        assert_eq!(reopened.free.len(), 3);
    }

    /// Layout version 2 kept every record in flight in the tree that is now the overflow:
    /// they are found, and move into slots at their next write.
    #[test]
    fn records_of_the_earlier_layout_are_read_from_the_tree() {
        let (slots, overflow) = (DefaultMemoryImpl::default(), DefaultMemoryImpl::default());
        let mut tree: BTreeMap<Principal, Encoded<CanisterRecord>, _> =
            BTreeMap::init(overflow.clone());
        let mut rec = record(5);
        rec.failure = Some(Failure::AlreadyOnTarget);
        tree.insert(p(9), Encoded::new(&rec));
        let mut f = InFlight::init(slots, overflow);
        assert!(f.contains(&p(9)));
        assert_eq!(f.get(&p(9)), Some(rec.clone()));
        f.put(p(9), &rec);
        assert_eq!(f.overflow.len(), 0);
        assert_eq!(f.get(&p(9)), Some(rec));
    }
}
