//! Stable memory layout of the manager.
//!
//! Every structure that must survive an upgrade lives in its own virtual memory of one
//! `MemoryManager`. A `MemoryId` is never reused for something else, even after the structure
//! that held it is gone: an old layout would be read as a new one. The header cell records the
//! layout version so that a future version can migrate, and an older module refuses a newer
//! layout instead of misreading it.

use candid::CandidType;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{DefaultMemoryImpl, Storable};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::borrow::Cow;
use std::cell::RefCell;

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// Version of the layout below; bump it with a migration when the meaning of a memory changes.
/// Version 2: the registry no longer stores the transient `Upgrading` status (the rollout's
/// in-flight set, memory 20, answers it), a pipeline's calls are no longer entries of the
/// rollout queues (memory 11), and the pipeline log is a ring of slots instead of a B-tree
/// (memory 13). A version 1 layout is refused, not migrated: none was deployed.
/// Version 3: the registry's counts per release and status moved from a B-tree (memory 15)
/// into one cell (memory 21), the index by release (memory 6) is gone, and the records of
/// pipelines in flight are in slots (memory 22; memory 20 keeps those too large for a slot).
/// `post_upgrade` migrates a version 2 layout.
/// Version 4: admission and the release policy (memories 23-27). A version 3 layout gets their
/// defaults, and the releases its canisters run count as used by a rollout, so that the
/// policy asks no approval to go back to them; version 3 modules refuse version 4, so a
/// downgrade cannot silently drop the policy.
pub const LAYOUT_VERSION: u32 = 4;

/// `StableCell<u32>`: the layout version (0 before the first `init`).
pub const HEADER: MemoryId = MemoryId::new(0);
/// `StableCell<Stored<stored::Settings>>`.
pub const SETTINGS: MemoryId = MemoryId::new(1);
/// `StableBTreeMap<Principal, u8>`: operator → role bit set.
pub const OPERATORS: MemoryId = MemoryId::new(2);
/// `StableCell<CreationLimiter>`: state of the creation rate limit (8 bytes).
pub const CREATION_BUCKET: MemoryId = MemoryId::new(3);
/// `StableBTreeMap<Principal, Stored<RegistryRecord>>`: registry records by canister id.
pub const REGISTRY: MemoryId = MemoryId::new(4);
/// `StableBTreeMap<Principal, Principal>`: owner → canister id.
pub const BY_OWNER: MemoryId = MemoryId::new(5);
/// Layout version 2's index (release sha256, canister id); not read nor written since
/// version 3, which pages by release by reading the registry.
pub const BY_RELEASE_V2: MemoryId = MemoryId::new(6);
/// `StableBTreeMap<(u8, Principal), ()>`: (status, canister id).
pub const BY_STATUS: MemoryId = MemoryId::new(7);
/// `StableCell<Stored<MirrorState>>`: what the IC chunk store holds.
pub const CHUNK_MIRROR: MemoryId = MemoryId::new(8);
/// `StableCell<Stored<RolloutMeta>>`: the current rollout's header, the drain flag, lifetime
/// counters and the pipeline log's bounds.
pub const ROLLOUT_META: MemoryId = MemoryId::new(9);
/// `StableBTreeMap<Principal, CanisterRecord>` (candid-encoded): the current rollout's canisters.
/// Memories 10-12 and 20 are `rollout_core::StableStore`.
pub const ROLLOUT_RECORDS: MemoryId = MemoryId::new(10);
/// `StableBTreeMap<QueueKey, Principal>`: the current rollout's queues, keys as 17 big-endian
/// bytes (kind, a, b). A pipeline's outstanding call is not an entry (its record holds it);
/// snapshot deletions are.
pub const ROLLOUT_QUEUES: MemoryId = MemoryId::new(11);
/// `StableBTreeMap<u64, Event>` (candid-encoded): the current rollout's event log (bounded).
pub const ROLLOUT_EVENTS: MemoryId = MemoryId::new(12);
/// `PipelineLog`: pipeline starts and ends (`stored::PipelineLogEntry`), a ring of 128-byte
/// slots (entry `seq` in slot `seq % 50,000`), bounded by the rollout header's `log_first` and
/// `log_next`.
pub const PIPELINE_LOG: MemoryId = MemoryId::new(13);
/// `StableBTreeMap<Principal, Stored<FleetSnapshot>>`: layout version 2's fleet snapshots (the
/// snapshot taken before each canister's last upgrade, and the release it holds). Since
/// version 3 the registry record holds its canister's; this map is only read for a record
/// that holds none yet, and loses each entry when its record takes one.
pub const SNAPSHOTS_V2: MemoryId = MemoryId::new(14);
/// Layout version 2's `StableBTreeMap<[u8; 33], u64>` of registry counts; read once by the
/// migration to version 3, never written again.
pub const FLEET_COUNTS_V2: MemoryId = MemoryId::new(15);
/// First of the memories handed to `wasm_store` (it takes consecutive ids from here: 16-19).
pub const WASM_STORE_BASE: u8 = 16;
/// `StableBTreeMap<Principal, CanisterRecord>` (compact): the current records of the pipelines
/// in flight that do not fit a slot of memory 22 (the fourth memory of
/// `rollout_core::StableStore`; layout version 2 kept every record in flight here, and they
/// are still read from here).
pub const ROLLOUT_IN_FLIGHT: MemoryId = MemoryId::new(20);
/// `StableCell<registry::Counts>`: registry counts per release and per status, sorted by key
/// (the key's kind byte, then a release's sha256 or a status).
pub const FLEET_COUNTS: MemoryId = MemoryId::new(21);
/// `StableVec` of 512-byte slots (`rollout_core::slots`): the current records of the pipelines
/// in flight, one slot each, reused once free (the fifth memory of `rollout_core::StableStore`).
pub const ROLLOUT_SLOTS: MemoryId = MemoryId::new(22);

/// `StableCell<Stored<admission::AdmissionState>>`: the admission mode, the provisioning
/// budget and its counters.
pub const ADMISSION: MemoryId = MemoryId::new(23);
/// `StableBTreeMap<Principal, u8>`: principals on the allowlist.
pub const ALLOWLIST: MemoryId = MemoryId::new(24);
/// `StableBTreeMap<[u8; 32], u8>`: sha256 of the unused invite codes.
pub const INVITES: MemoryId = MemoryId::new(25);
/// `StableCell<Stored<governance::GovernanceState>>`: the release policy, the releases
/// rollouts have used, shortened notices, the next request id.
pub const GOVERNANCE: MemoryId = MemoryId::new(26);
/// `StableBTreeMap<u64, Stored<fleet_api::governance::Request>>`: requests by id, kept after
/// they end as the log of governed changes.
pub const REQUESTS: MemoryId = MemoryId::new(27);
/// The release store's interfaces: module sha256 → `ReleaseInterface` (the fifth memory of
/// `wasm_store`; an earlier manager never wrote it, so it starts empty without a migration).
pub const RELEASE_INTERFACES: MemoryId = MemoryId::new(28);
/// `StableCell<Stored<subnets::SubnetsState>>`: the placement and the subnets added besides
/// the manager's own, each with its store canister, canister count and mirror state (new in
/// a manager that had none, so it starts empty without a migration).
pub const SUBNETS: MemoryId = MemoryId::new(29);
/// `subnets::StoreModule`: the module `add_subnet` installs in each new store canister, as
/// raw bytes (its length, its sha256, the module), so that its hash is read without the module
/// (new in a manager that had none, so it starts empty without a migration).
pub const STORE_MODULE: MemoryId = MemoryId::new(30);

/// Raw slots of 8 KiB, one per subnet by its index in the rollout, each a length and a
/// `Stored<state::RolloutSubnet>`: the current rollout's state per subnet, apart from the
/// header (memory 9) so that a step rewrites only the subnets it changed. A header written
/// before it keeps its subnets inline, and is read as it is.
pub const ROLLOUT_SUBNETS: MemoryId = MemoryId::new(31);

/// `StableVec` of bounded entries (principal, record bytes): the records a rollout's start
/// staged, written in place over the next ticks (`rollout_core::RolloutStore::stage`); empty
/// once the cohort is loaded, and in a manager that had none.
pub const ROLLOUT_STAGED: MemoryId = MemoryId::new(32);

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
}

pub fn get(id: MemoryId) -> Memory {
    MEMORY_MANAGER.with(|m| m.borrow().get(id))
}

/// A value in stable memory: its type's format tag ([`StoredShape::TAG`]), then postcard.
/// Values an earlier layout wrote in candid (they begin with `DIDL`) are still read, and
/// stored again compact at their next write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored<T>(pub T);

/// A type stored in [`Stored`]. Its shape is fixed by its tag: a type that gains, loses or
/// reorders a field or a variant takes a new tag, and reads the shapes of its earlier tags in
/// [`StoredShape::from_older`].
pub trait StoredShape: CandidType + Serialize + DeserializeOwned {
    /// Tag of the shape this module writes.
    const TAG: u8;

    /// The value of bytes written under an earlier `tag` (the bytes after the tag); `None`
    /// for a tag this type never had.
    fn from_older(tag: u8, bytes: &[u8]) -> Option<Self> {
        let _ = (tag, bytes);
        None
    }
}

/// How candid values begin (interface spec, "Candid": the magic number).
const CANDID_MAGIC: &[u8] = b"DIDL";

/// `value`'s stored bytes: its shape's tag, then postcard.
pub fn encode_stored<T: StoredShape>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![T::TAG]).expect("encoding a stored value")
}

/// `value`'s stored bytes (those of `Stored<T>`), held undecoded: a map of them decodes nothing
/// when an insert returns the value it replaces.
pub fn encoded<T: StoredShape>(value: &T) -> rollout_core::stable::Encoded<T> {
    rollout_core::stable::Encoded::from_bytes(Cow::Owned(encode_stored(value)))
}

/// Reads bytes written as `Stored<T>` (or by [`encoded`]), with every earlier shape of `T`.
/// Only bytes this canister wrote are ever decoded: failing here means the layout was broken,
/// and trapping keeps the old state instead of working on garbage.
pub fn decode_stored<T: StoredShape>(bytes: &[u8]) -> T {
    match bytes.split_first() {
        Some((&tag, rest)) if tag == T::TAG => {
            postcard::from_bytes(rest).expect("a stored compact value")
        }
        _ if bytes.starts_with(CANDID_MAGIC) => {
            candid::decode_one(bytes).expect("a stored candid value")
        }
        Some((&tag, rest)) => T::from_older(tag, rest)
            .unwrap_or_else(|| panic!("a stored value in an unknown format (tag {tag:#04x})")),
        None => panic!("an empty stored value"),
    }
}

impl<T: StoredShape> Storable for Stored<T> {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(encode_stored(&self.0))
    }

    fn into_bytes(self) -> Vec<u8> {
        encode_stored(&self.0)
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Stored(decode_stored(bytes.as_ref()))
    }

    const BOUND: Bound = Bound::Unbounded;
}

/// The rollout header: its second shape holds the engine state's second shape (with subnets),
/// and its first shape is read through the engine's conversion of its state. The engine's
/// [`rollout_core::codec::Shape`] is the one that decodes it (the cell holds it as
/// `Encoded`); this one only says the same.
impl rollout_core::codec::Shape for crate::state::RolloutMeta {
    const TAG: u8 = rollout_core::codec::COMPACT_V2;

    fn from_older(tag: u8, bytes: &[u8]) -> Option<Self> {
        rollout_core::codec::from_first_shape::<crate::state::RolloutMetaV1, _>(tag, bytes)
    }

    fn from_candid(bytes: &[u8]) -> Self {
        rollout_core::codec::from_first_shape_candid::<crate::state::RolloutMetaV1, _>(bytes)
    }
}

impl StoredShape for crate::state::RolloutMeta {
    const TAG: u8 = <Self as rollout_core::codec::Shape>::TAG;

    fn from_older(tag: u8, bytes: &[u8]) -> Option<Self> {
        <Self as rollout_core::codec::Shape>::from_older(tag, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A stored type whose second shape added a field to its first.
    #[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
    struct Counter {
        count: u64,
        label: String,
    }

    #[derive(Deserialize)]
    struct CounterV1 {
        count: u64,
    }

    impl StoredShape for Counter {
        const TAG: u8 = 0xC2;

        fn from_older(tag: u8, bytes: &[u8]) -> Option<Self> {
            match tag {
                0xC1 => {
                    let CounterV1 { count } = postcard::from_bytes(bytes).ok()?;
                    Some(Counter {
                        count,
                        label: String::new(),
                    })
                }
                _ => None,
            }
        }
    }

    #[test]
    fn a_value_is_written_with_its_tag_and_an_earlier_shape_is_converted() {
        let c = Counter {
            count: 300,
            label: "x".into(),
        };
        let bytes = Stored(c.clone()).into_bytes();
        assert_eq!(bytes[0], 0xC2);
        assert_eq!(Stored::<Counter>::from_bytes(Cow::Owned(bytes)).0, c);
        let v1 = rollout_core::codec::encode(&300u64);
        assert_eq!(
            Stored::<Counter>::from_bytes(Cow::Owned(v1)).0,
            Counter {
                count: 300,
                label: String::new()
            }
        );
    }

    #[test]
    #[should_panic(expected = "unknown format (tag 0xc3)")]
    fn an_unknown_tag_is_refused() {
        Stored::<Counter>::from_bytes(Cow::Borrowed(&[0xC3, 1]));
    }
}
