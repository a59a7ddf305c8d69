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
pub const LAYOUT_VERSION: u32 = 2;

/// `StableCell<u32>`: the layout version (0 before the first `init`).
pub const HEADER: MemoryId = MemoryId::new(0);
/// `StableCell<Stored<Settings>>`.
pub const SETTINGS: MemoryId = MemoryId::new(1);
/// `StableBTreeMap<Principal, u8>`: operator → role bit set.
pub const OPERATORS: MemoryId = MemoryId::new(2);
/// `StableCell<CreationLimiter>`: state of the creation rate limit (8 bytes).
pub const CREATION_BUCKET: MemoryId = MemoryId::new(3);
/// `StableBTreeMap<Principal, Stored<UserCanister>>`: registry records by canister id.
pub const REGISTRY: MemoryId = MemoryId::new(4);
/// `StableBTreeMap<Principal, Principal>`: owner → canister id.
pub const BY_OWNER: MemoryId = MemoryId::new(5);
/// `StableBTreeMap<([u8; 32], Principal), ()>`: (release sha256, canister id).
pub const BY_RELEASE: MemoryId = MemoryId::new(6);
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
/// `PipelineLog`: pipeline starts and ends, a ring of 128-byte slots (entry `seq` in slot
/// `seq % 50,000`), bounded by the rollout header's `log_first` and `log_next`.
pub const PIPELINE_LOG: MemoryId = MemoryId::new(13);
/// `StableBTreeMap<Principal, Stored<FleetSnapshot>>`: the snapshot taken before each
/// canister's last upgrade, and the release it holds.
pub const SNAPSHOTS: MemoryId = MemoryId::new(14);
/// `StableBTreeMap<[u8; 33], u64>`: registry counts per release and per status.
pub const FLEET_COUNTS: MemoryId = MemoryId::new(15);
/// First of the memories handed to `wasm_store` (it takes consecutive ids from here: 16-19).
pub const WASM_STORE_BASE: u8 = 16;
/// `StableBTreeMap<Principal, CanisterRecord>` (compact): the current rollout's canisters whose
/// pipeline is in flight, with their current record (the fourth memory of
/// `rollout_core::StableStore`).
pub const ROLLOUT_IN_FLIGHT: MemoryId = MemoryId::new(20);

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
}

pub fn get(id: MemoryId) -> Memory {
    MEMORY_MANAGER.with(|m| m.borrow().get(id))
}

/// A value in stable memory, in the compact stored encoding (`rollout_core::codec`): a format
/// tag, then postcard. Values an earlier layout wrote in candid are still read. A stored type
/// that changes shape takes the next tag and a conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored<T>(pub T);

impl<T: CandidType + Serialize + DeserializeOwned> Storable for Stored<T> {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(rollout_core::codec::encode(&self.0))
    }

    fn into_bytes(self) -> Vec<u8> {
        rollout_core::codec::encode(&self.0)
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Stored(rollout_core::codec::decode(bytes.as_ref()))
    }

    const BOUND: Bound = Bound::Unbounded;
}
