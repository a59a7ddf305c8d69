//! Registry of user canisters: one primary map keyed by canister id plus index maps, so that a
//! lookup by owner and a page by release or status read only the entries they return, whatever
//! the size of the fleet (designed for 100k records).

use crate::memory;
use crate::stored::{CanisterStatus, RegistryRecord, ReleaseRef, UpgradeEvent};
use candid::Principal;
use fleet_api::manager::{MAX_HISTORY, MAX_PAGE_SIZE};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableBTreeMap, StableCell, Storable};
use rollout_core::stable::Encoded;
use std::borrow::Cow;
use std::ops::Bound::{Excluded, Included, Unbounded};

pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Which index a page is read from; a release is named by its sha256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    All,
    Owner(Principal),
    Release([u8; 32]),
    Status(CanisterStatus),
}

/// The number of records a page holds when the caller asks for `limit`.
pub fn page_limit(limit: Option<u32>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, MAX_PAGE_SIZE) as usize
}

fn status_key(status: CanisterStatus) -> u8 {
    match status {
        CanisterStatus::Provisioning => 0,
        CanisterStatus::Active => 1,
        CanisterStatus::Upgrading => 2,
        CanisterStatus::Failed => 3,
        CanisterStatus::RolledBack => 4,
        CanisterStatus::Detached => 5,
    }
}

/// The index key of a release: its sha256. Releases come from the wasm store, whose hashes are
/// always 32 bytes.
pub fn release_key(release: &ReleaseRef) -> Option<[u8; 32]> {
    release.sha256.as_slice().try_into().ok()
}

/// Appends an event, dropping the oldest beyond [`MAX_HISTORY`].
pub fn push_history(record: &mut RegistryRecord, event: UpgradeEvent) {
    record.history.push(event);
    let excess = record.history.len().saturating_sub(MAX_HISTORY);
    record.history.drain(..excess);
}

/// One page of records; the endpoint turns it into the interface's `UserCanisterPage`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordPage {
    pub canisters: Vec<RegistryRecord>,
    pub next: Option<Principal>,
}

pub struct Registry<M: Memory> {
    /// The same bytes as `Stored<RegistryRecord>` (`memory::encode_stored`), kept undecoded
    /// in the map so that a write does not decode the record it replaces.
    records: StableBTreeMap<Principal, Encoded<RegistryRecord>, M>,
    by_owner: StableBTreeMap<Principal, Principal, M>,
    by_status: StableBTreeMap<(u8, Principal), (), M>,
    /// Records per release and per status, kept with every `put` so that metrics read a
    /// handful of entries instead of the fleet.
    counts: StableCell<Counts, M>,
    /// Records a page by release reads at most (see [`Registry::page_where`]).
    release_scan: usize,
}

/// Records one page by release reads at most. There is no index by release: keeping one
/// costs two B-tree writes on every upgrade (about 430k instructions at 10,000 canisters, an
/// eighth of an upgrade's cost), while listing by release is a rare operator query, which
/// may as well read the registry.
pub const RELEASE_SCAN: usize = 10_000;

/// Records per count key (a release, no release, or a status), sorted by key, zeros left out.
/// A handful of entries, all in one cell: a finished upgrade moves a record from one release
/// to another, and writing this cell once costs far less than reading and writing four
/// entries of a B-tree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts(Vec<([u8; 33], u64)>);

/// Format tag of [`Counts`]'s bytes: the tag, then each entry as its key and a little-endian
/// `u64`.
const COUNTS_TAG: u8 = 0xC1;
const COUNT_ENTRY: usize = 33 + 8;

impl Counts {
    fn get(&self, key: &[u8; 33]) -> u64 {
        self.0
            .binary_search_by(|(k, _)| k.cmp(key))
            .map_or(0, |i| self.0[i].1)
    }

    fn add(&mut self, key: [u8; 33], up: bool) {
        match self.0.binary_search_by(|(k, _)| k.cmp(&key)) {
            Ok(i) if up => self.0[i].1 += 1,
            Ok(i) if self.0[i].1 <= 1 => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 -= 1,
            Err(i) if up => self.0.insert(i, (key, 1)),
            Err(_) => {}
        }
    }
}

impl Storable for Counts {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        let mut bytes = Vec::with_capacity(1 + self.0.len() * COUNT_ENTRY);
        bytes.push(COUNTS_TAG);
        for (key, n) in &self.0 {
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(&n.to_le_bytes());
        }
        Cow::Owned(bytes)
    }

    fn into_bytes(self) -> Vec<u8> {
        self.to_bytes().into_owned()
    }

    /// Only bytes this canister wrote are read: anything else means a broken layout, and
    /// trapping keeps the previous state.
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let Some((&COUNTS_TAG, entries)) = bytes.split_first() else {
            panic!("registry counts: unknown format");
        };
        assert!(
            entries.len() % COUNT_ENTRY == 0,
            "registry counts: truncated"
        );
        Counts(
            entries
                .chunks_exact(COUNT_ENTRY)
                .map(|e| {
                    let (key, n) = e.split_at(33);
                    (
                        key.try_into().expect("33 bytes"),
                        u64::from_le_bytes(n.try_into().expect("8 bytes")),
                    )
                })
                .collect(),
        )
    }

    const BOUND: Bound = Bound::Unbounded;
}

const COUNT_RELEASE: u8 = 0;
const COUNT_NO_RELEASE: u8 = 1;
const COUNT_STATUS: u8 = 2;

fn release_count_key(release: Option<&ReleaseRef>) -> [u8; 33] {
    match release.and_then(release_key) {
        Some(sha) => sha_count_key(&sha),
        None => {
            let mut key = [0u8; 33];
            key[0] = COUNT_NO_RELEASE;
            key
        }
    }
}

fn sha_count_key(sha: &[u8; 32]) -> [u8; 33] {
    let mut key = [COUNT_RELEASE; 33];
    key[1..].copy_from_slice(sha);
    key
}

fn status_count_key(status: CanisterStatus) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = COUNT_STATUS;
    key[1] = status_key(status);
    key
}

impl<M: Memory> Registry<M> {
    pub fn init(records: M, by_owner: M, by_status: M, counts: M) -> Self {
        Registry {
            records: StableBTreeMap::init(records),
            by_owner: StableBTreeMap::init(by_owner),
            by_status: StableBTreeMap::init(by_status),
            counts: StableCell::init(counts, Counts::default()),
            release_scan: RELEASE_SCAN,
        }
    }

    /// Layout version 2 kept the counts in a B-tree (`StableBTreeMap<[u8; 33], u64>`) on
    /// `legacy`: they move into the cell. The B-tree's memory is not used again.
    pub fn migrate_counts(&mut self, legacy: M) {
        let old: StableBTreeMap<[u8; 33], u64, M> = StableBTreeMap::init(legacy);
        self.counts
            .set(Counts(old.iter().map(|e| (*e.key(), e.value())).collect()));
    }

    /// Records per release sha256 (`None`: no release installed yet).
    pub fn release_counts(&self) -> Vec<(Option<[u8; 32]>, u64)> {
        let mut end = [0u8; 33];
        end[0] = COUNT_STATUS;
        self.counts
            .get()
            .0
            .iter()
            .take_while(|(key, _)| *key < end)
            .map(|(key, n)| {
                let sha = (key[0] == COUNT_RELEASE).then(|| key[1..].try_into().expect("32 bytes"));
                (sha, *n)
            })
            .collect()
    }

    /// Records per status, in [`CanisterStatus::ALL`] order.
    pub fn status_counts(&self) -> Vec<(CanisterStatus, u64)> {
        CanisterStatus::ALL
            .into_iter()
            .map(|s| (s, self.counts.get().get(&status_count_key(s))))
            .collect()
    }

    pub fn len(&self) -> u64 {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn get(&self, canister_id: &Principal) -> Option<RegistryRecord> {
        self.records
            .get(canister_id)
            .map(|c| memory::decode_stored(&c.to_bytes()))
    }

    pub fn by_owner(&self, owner: &Principal) -> Option<RegistryRecord> {
        self.by_owner.get(owner).and_then(|id| self.get(&id))
    }

    pub fn has_canister_on_release(&self, sha256: [u8; 32]) -> bool {
        self.counts.get().get(&sha_count_key(&sha256)) > 0
    }

    /// sha256 of every release at least one canister runs, from the counts.
    pub fn deployed_releases(&self) -> Vec<[u8; 32]> {
        self.counts
            .get()
            .0
            .iter()
            .filter(|(key, n)| key[0] == COUNT_RELEASE && *n > 0)
            .filter_map(|(key, _)| key[1..].try_into().ok())
            .collect()
    }

    /// Inserts or replaces a record and moves its index entries. The caller guarantees that an
    /// owner has one canister: the owner index would otherwise point at the newest only.
    /// Only the indexes and counts whose key changed are written: a status change (the
    /// most frequent, twice per upgrade) touches the status index and counts alone.
    pub fn put(&mut self, record: RegistryRecord) {
        let old = self.get(&record.canister_id);
        self.write(old, record);
    }

    /// Changes the record of `canister_id` with `f`, reading it once; false if there is none.
    pub fn update(&mut self, canister_id: &Principal, f: impl FnOnce(&mut RegistryRecord)) -> bool {
        let Some(old) = self.get(canister_id) else {
            return false;
        };
        let mut record = old.clone();
        f(&mut record);
        self.write(Some(old), record);
        true
    }

    /// Writes `record` over `old`, the record [`Registry::get`] returned for its id, without
    /// reading it again.
    pub fn replace(&mut self, old: RegistryRecord, record: RegistryRecord) {
        self.write(Some(old), record);
    }

    /// Writes `record` over `old`, the record stored under its id.
    fn write(&mut self, old: Option<RegistryRecord>, record: RegistryRecord) {
        let id = record.canister_id;
        let mut counts: Option<Counts> = None;
        let mut count = |key, up| {
            counts
                .get_or_insert_with(|| self.counts.get().clone())
                .add(key, up)
        };
        let old_release = old.as_ref().map(|o| o.current_release.as_ref());
        if old_release != Some(record.current_release.as_ref()) {
            if let Some(o) = &old {
                count(release_count_key(o.current_release.as_ref()), false);
            }
            count(release_count_key(record.current_release.as_ref()), true);
        }
        let old_status = old.as_ref().map(|o| o.status);
        if old_status != Some(record.status) {
            if let Some(status) = old_status {
                count(status_count_key(status), false);
                self.by_status.remove(&(status_key(status), id));
            }
            count(status_count_key(record.status), true);
            self.by_status.insert((status_key(record.status), id), ());
        }
        if let Some(counts) = counts {
            self.counts.set(counts);
        }
        let old_owner = old.as_ref().map(|o| o.owner);
        if old_owner != Some(record.owner) {
            if let Some(owner) = old_owner {
                self.by_owner.remove(&owner);
            }
            self.by_owner.insert(record.owner, id);
        }
        self.records.insert(id, memory::encoded(&record));
        #[cfg(test)]
        self.check_invariants();
    }

    /// Checks that the indexes and counts say exactly what the records say: each record is
    /// indexed by its release and its status and counted once under each, its owner points at
    /// a record of that owner, and no index entry or count is left without its record. Run
    /// after every write in test builds, where registries are small, so that a write that
    /// leaves an index behind (for example [`Registry::replace`] given a stale `old`) fails
    /// the test that made it.
    #[cfg(test)]
    pub fn check_invariants(&self) {
        use std::collections::{BTreeMap, BTreeSet};
        let mut by_status = BTreeSet::new();
        let mut counts: BTreeMap<[u8; 33], u64> = BTreeMap::new();
        for entry in self.records.iter() {
            let (id, record) = (*entry.key(), self.get(entry.key()).expect("listed"));
            assert_eq!(record.canister_id, id, "record stored under another id");
            by_status.insert((status_key(record.status), id));
            *counts
                .entry(release_count_key(record.current_release.as_ref()))
                .or_default() += 1;
            *counts.entry(status_count_key(record.status)).or_default() += 1;
            let indexed = self.by_owner.get(&record.owner).and_then(|c| self.get(&c));
            assert!(
                indexed.is_some_and(|c| c.owner == record.owner),
                "the owner index of {id} does not lead to a canister of its owner"
            );
        }
        let actual: BTreeSet<_> = self.by_status.iter().map(|e| *e.key()).collect();
        assert_eq!(actual, by_status, "status index");
        let actual: BTreeMap<_, _> = self.counts.get().0.iter().copied().collect();
        assert_eq!(actual, counts, "counts per release and status");
        for entry in self.by_owner.iter() {
            let record = self.get(&entry.value());
            assert!(
                record.is_some_and(|r| r.owner == *entry.key()),
                "owner index entry without its record"
            );
        }
    }

    /// One page of records matching `filter`, in canister-id order (by bytes), after
    /// `start_after`.
    pub fn page(
        &self,
        filter: &Filter,
        start_after: Option<Principal>,
        limit: Option<u32>,
    ) -> RecordPage {
        self.page_where(filter, start_after, limit, |_| true)
    }

    /// Like [`Registry::page`], keeping only the ids for which `keep` holds.
    pub fn page_where(
        &self,
        filter: &Filter,
        start_after: Option<Principal>,
        limit: Option<u32>,
        keep: impl Fn(&Principal) -> bool,
    ) -> RecordPage {
        let limit = page_limit(limit);
        // One more than the page, to know whether there is a next one.
        let ids: Vec<Principal> = match filter {
            Filter::All => {
                let lower = start_after.map_or(Unbounded, Excluded);
                self.records
                    .keys_range((lower, Unbounded))
                    .filter(|id| keep(id))
                    .take(limit + 1)
                    .collect()
            }
            Filter::Owner(owner) => self
                .by_owner
                .get(owner)
                .filter(|id| start_after.is_none_or(|after| after.as_slice() < id.as_slice()))
                .filter(|id| keep(id))
                .into_iter()
                .collect(),
            Filter::Release(sha) => return self.release_page(sha, start_after, limit, keep),
            Filter::Status(status) => {
                let s = status_key(*status);
                let lower = match start_after {
                    Some(after) => Excluded((s, after)),
                    None => Included((s, Principal::management_canister())),
                };
                self.by_status
                    .keys_range((lower, Unbounded))
                    .take_while(|(key, _)| *key == s)
                    .map(|(_, id)| id)
                    .filter(|id| keep(id))
                    .take(limit + 1)
                    .collect()
            }
        };
        self.page_of(ids, limit)
    }

    /// Records on the release `sha`, read from the registry in id order after `start_after`:
    /// at most [`RELEASE_SCAN`] records per page, so a page may hold fewer than `limit`
    /// records, or none, and still have a `next` (the last record it read).
    fn release_page(
        &self,
        sha: &[u8; 32],
        start_after: Option<Principal>,
        limit: usize,
        keep: impl Fn(&Principal) -> bool,
    ) -> RecordPage {
        let lower = start_after.map_or(Unbounded, Excluded);
        let mut canisters = Vec::new();
        let mut last = None;
        for (scanned, entry) in self.records.range((lower, Unbounded)).enumerate() {
            if canisters.len() == limit || scanned == self.release_scan {
                return RecordPage {
                    next: last,
                    canisters,
                };
            }
            let id = *entry.key();
            last = Some(id);
            let record: RegistryRecord = memory::decode_stored(&entry.value().to_bytes());
            let on_release = record
                .current_release
                .as_ref()
                .and_then(release_key)
                .is_some_and(|k| k == *sha);
            if on_release && keep(&id) {
                canisters.push(record);
            }
        }
        RecordPage {
            canisters,
            next: None,
        }
    }

    /// The records of `ids` (in order, up to `limit + 1` of them), as a page of `limit`: one id
    /// more than the page says there is a next one.
    pub fn page_of(&self, ids: Vec<Principal>, limit: usize) -> RecordPage {
        let more = ids.len() > limit;
        let canisters: Vec<RegistryRecord> = ids
            .into_iter()
            .take(limit)
            .filter_map(|id| self.get(&id))
            .collect();
        let next = if more {
            canisters.last().map(|c| c.canister_id)
        } else {
            None
        };
        RecordPage { canisters, next }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored::{UpgradeOutcome, UpgradePolicy};
    use ic_stable_structures::VectorMemory;

    fn registry() -> Registry<VectorMemory> {
        Registry::init(
            VectorMemory::default(),
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

    fn owner(n: u32) -> Principal {
        let mut bytes = [7u8; 29];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        Principal::from_slice(&bytes)
    }

    fn release(n: u8) -> ReleaseRef {
        ReleaseRef {
            version: format!("1.0.{n}"),
            sha256: vec![n; 32],
        }
    }

    fn record(n: u32, status: CanisterStatus, rel: Option<u8>) -> RegistryRecord {
        RegistryRecord {
            snapshot: None,
            canister_id: id(n),
            owner: owner(n),
            recovery_principal: owner(n + 1_000_000),
            current_release: rel.map(release),
            policy: UpgradePolicy::Auto,
            status,
            last_error: None,
            history: vec![],
            subnet: None,
            created_at_ns: 1,
            updated_at_ns: 1,
        }
    }

    fn ids(page: &RecordPage) -> Vec<Principal> {
        page.canisters.iter().map(|c| c.canister_id).collect()
    }

    /// The invariants are checked after every write: a `replace` given a stale `old` (the
    /// record as it was before another write) leaves the counts wrong, and the write fails.
    #[test]
    #[should_panic(expected = "counts per release and status")]
    fn a_write_from_a_stale_record_breaks_the_invariants_and_is_caught() {
        let mut r = registry();
        let stale = record(1, CanisterStatus::Failed, Some(1));
        r.put(stale.clone());
        r.put(record(1, CanisterStatus::Active, Some(1)));
        r.replace(stale, record(1, CanisterStatus::Active, Some(1)));
    }

    /// The counts keep their bytes across a reopening of the cell, and layout version 2's
    /// B-tree of counts migrates into the cell with the same numbers.
    #[test]
    fn counts_survive_reopening_and_migrate_from_the_b_tree() {
        let memories: Vec<VectorMemory> = (0..4).map(|_| VectorMemory::default()).collect();
        let open = || {
            let m = |i: usize| memories[i].clone();
            Registry::init(m(0), m(1), m(2), m(3))
        };
        let mut r = open();
        r.put(record(1, CanisterStatus::Active, Some(1)));
        r.put(record(2, CanisterStatus::Active, Some(2)));
        r.put(record(3, CanisterStatus::Failed, Some(2)));
        r.put(record(4, CanisterStatus::Provisioning, None));
        let releases = vec![(Some([1; 32]), 1), (Some([2; 32]), 2), (None, 1)];
        assert_eq!(r.release_counts(), releases);
        let statuses = r.status_counts();
        assert_eq!(open().release_counts(), releases);
        assert_eq!(open().status_counts(), statuses);

        let legacy = VectorMemory::default();
        let mut old: StableBTreeMap<[u8; 33], u64, _> = StableBTreeMap::init(legacy.clone());
        for (key, n) in r.counts.get().0.iter() {
            old.insert(*key, *n);
        }
        let mut fresh = Registry::init(
            memories[0].clone(),
            memories[1].clone(),
            memories[2].clone(),
            VectorMemory::default(),
        );
        assert_eq!(fresh.release_counts(), vec![]);
        fresh.migrate_counts(legacy);
        assert_eq!(fresh.release_counts(), releases);
        assert_eq!(fresh.status_counts(), statuses);
        fresh.check_invariants();
    }

    #[test]
    fn lookups_by_id_and_owner() {
        let mut r = registry();
        r.put(record(1, CanisterStatus::Active, Some(1)));
        r.put(record(2, CanisterStatus::Provisioning, None));
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(&id(2)).unwrap().owner, owner(2));
        assert_eq!(r.by_owner(&owner(1)).unwrap().canister_id, id(1));
        assert!(r.by_owner(&owner(3)).is_none());
        let page = r.page(&Filter::Owner(owner(2)), None, None);
        assert_eq!(ids(&page), vec![id(2)]);
        assert_eq!(
            r.page(&Filter::Owner(owner(2)), Some(id(2)), None)
                .canisters,
            vec![]
        );
    }

    #[test]
    fn updating_a_record_moves_its_index_entries() {
        let mut r = registry();
        r.put(record(1, CanisterStatus::Provisioning, None));
        let mut rec = r.get(&id(1)).unwrap();
        rec.status = CanisterStatus::Active;
        rec.current_release = Some(release(5));
        r.put(rec);
        assert_eq!(r.release_counts(), vec![(Some([5; 32]), 1)]);
        let status = |s| ids(&r.page(&Filter::Status(s), None, None));
        assert_eq!(status(CanisterStatus::Provisioning), vec![]);
        assert_eq!(status(CanisterStatus::Active), vec![id(1)]);
        assert!(r.has_canister_on_release([5; 32]));
        let mut rec = r.get(&id(1)).unwrap();
        rec.current_release = Some(release(6));
        r.put(rec);
        assert!(!r.has_canister_on_release([5; 32]));
        assert_eq!(
            ids(&r.page(&Filter::Release([6; 32]), None, None)),
            vec![id(1)]
        );
        r.put(record(2, CanisterStatus::Provisioning, None));
        assert_eq!(r.release_counts(), vec![(Some([6; 32]), 1), (None, 1)]);
        let counts = r.status_counts();
        assert_eq!(counts[0], (CanisterStatus::Provisioning, 1));
        assert_eq!(counts[1], (CanisterStatus::Active, 1));
        assert_eq!(counts.iter().map(|c| c.1).sum::<u64>(), 2);
        // Writing a record unchanged leaves every count and index as it was; an owner change
        // moves the owner index alone.
        let rec = r.get(&id(1)).unwrap();
        r.put(rec.clone());
        assert_eq!(r.status_counts(), counts);
        assert_eq!(r.release_counts(), vec![(Some([6; 32]), 1), (None, 1)]);
        let old_owner = rec.owner;
        let mut moved = rec;
        moved.owner = Principal::from_slice(&[99; 29]);
        r.put(moved.clone());
        assert_eq!(r.by_owner(&old_owner), None);
        assert_eq!(r.by_owner(&moved.owner), Some(moved));
        assert_eq!(r.status_counts(), counts);
    }

    #[test]
    fn an_update_moves_the_indexes_like_a_put() {
        let mut r = registry();
        r.put(record(1, CanisterStatus::Active, Some(1)));
        assert!(r.update(&id(1), |c| {
            c.status = CanisterStatus::Failed;
            c.current_release = Some(release(2));
        }));
        assert!(!r.update(&id(2), |_| panic!("no record")));
        assert_eq!(r.get(&id(1)).unwrap().status, CanisterStatus::Failed);
        assert_eq!(r.release_counts(), vec![(Some([2; 32]), 1)]);
        let status = |s| ids(&r.page(&Filter::Status(s), None, None));
        assert_eq!(status(CanisterStatus::Active), vec![]);
        assert_eq!(status(CanisterStatus::Failed), vec![id(1)]);
        assert!(!r.has_canister_on_release([1; 32]));
    }

    #[test]
    fn pages_by_status_and_release_return_only_matches_and_resume_after_cursor() {
        let mut r = registry();
        for n in 0..250u32 {
            let status = if n % 2 == 0 {
                CanisterStatus::Active
            } else {
                CanisterStatus::Failed
            };
            r.put(record(n, status, Some((n % 3) as u8)));
        }
        for (filter, expected) in [
            (Filter::All, 250),
            (Filter::Status(CanisterStatus::Active), 125),
            (Filter::Status(CanisterStatus::Failed), 125),
            (Filter::Status(CanisterStatus::Detached), 0),
            (Filter::Release([1; 32]), 83),
            (Filter::Release([9; 32]), 0),
        ] {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let page = r.page(&filter, cursor, Some(40));
                assert!(page.canisters.len() <= 40);
                for c in &page.canisters {
                    match &filter {
                        Filter::Status(s) => assert_eq!(c.status, *s),
                        Filter::Release(sha) => {
                            assert_eq!(c.current_release.as_ref().unwrap().sha256, sha.to_vec())
                        }
                        _ => {}
                    }
                }
                seen.extend(ids(&page));
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let mut dedup = seen.clone();
            dedup.sort();
            dedup.dedup();
            assert_eq!(dedup.len(), seen.len(), "{filter:?} repeated a record");
            assert_eq!(seen.len(), expected, "{filter:?}");
        }
    }

    /// A page by release reads at most its scan budget of records: pages may come back short
    /// or empty with a `next`, and following `next` still yields every match exactly once.
    #[test]
    fn pages_by_release_read_a_bounded_number_of_records() {
        let mut r = registry();
        r.release_scan = 7;
        for n in 0..60u32 {
            let rel = if n % 10 == 0 { 1 } else { 2 };
            r.put(record(n, CanisterStatus::Active, Some(rel)));
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        let mut pages = 0;
        let mut empty_with_next = 0;
        loop {
            let page = r.page(&Filter::Release([1; 32]), cursor, Some(4));
            pages += 1;
            assert!(page.canisters.len() <= 4);
            if page.canisters.is_empty() && page.next.is_some() {
                empty_with_next += 1;
            }
            seen.extend(ids(&page));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let mut expected: Vec<Principal> = (0..60).filter(|n| n % 10 == 0).map(id).collect();
        expected.sort();
        assert_eq!(seen, expected);
        assert!(
            pages >= 60 / 7,
            "{pages} pages for 60 records at 7 per page"
        );
        assert!(
            empty_with_next > 0,
            "some stretch of 7 records holds no match"
        );
    }

    #[test]
    fn page_size_is_clamped() {
        let mut r = registry();
        for n in 0..(MAX_PAGE_SIZE + 5) {
            r.put(record(n, CanisterStatus::Active, None));
        }
        let page = r.page(&Filter::All, None, Some(u32::MAX));
        assert_eq!(page.canisters.len(), MAX_PAGE_SIZE as usize);
        assert!(page.next.is_some());
        assert_eq!(r.page(&Filter::All, None, Some(0)).canisters.len(), 1);
    }

    #[test]
    fn history_is_bounded_and_keeps_the_newest() {
        let mut rec = record(1, CanisterStatus::Active, Some(1));
        for n in 0..(MAX_HISTORY as u64 + 3) {
            push_history(
                &mut rec,
                UpgradeEvent {
                    at_ns: n,
                    from: None,
                    to: release(1),
                    outcome: UpgradeOutcome::Upgraded,
                },
            );
        }
        assert_eq!(rec.history.len(), MAX_HISTORY);
        assert_eq!(rec.history.first().unwrap().at_ns, 3);
        assert_eq!(rec.history.last().unwrap().at_ns, MAX_HISTORY as u64 + 2);
    }
}
