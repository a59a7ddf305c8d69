//! The store canister's interface: the canister the manager creates on each subnet the fleet
//! uses besides its own, whose IC chunk store holds the releases installed there.
//!
//! `install_chunked_code` takes chunks only from a store canister on the target's subnet, and
//! only when the caller controls that store (interface spec, "IC method
//! `install_chunked_code`"), so the manager is the store's only controller and the only one
//! that fills its chunk store (`upload_chunk`). The store's own code keeps the list of releases
//! its chunk store holds, which the manager records after each mirror (`record_release`) and
//! forgets when it clears the chunk store (`forget_release`), so that anyone can audit what a
//! subnet's store holds (`releases`, `status`) without asking the manager. (A canister cannot
//! list its own chunk store: `stored_chunks` is for controllers only.)

use candid::{CandidType, Nat, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Most releases a store records: its chunk store holds at most 100 chunks (interface spec,
/// "IC method `upload_chunk`"), and every release takes at least one.
pub const MAX_STORED_RELEASES: u32 = 100;
/// Most chunks of one release (the chunk store's capacity).
pub const MAX_RELEASE_CHUNKS: u32 = 100;
/// Size of a chunk of a release: every chunk but the last is exactly this long.
pub const RELEASE_CHUNK_SIZE: u64 = 1024 * 1024;
/// Longest version, in bytes (as the manager's release store).
pub const MAX_STORED_VERSION_LEN: usize = 64;

/// Argument of the store canister's `init`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoreInit {
    /// The fleet manager: the only principal allowed to change what the store records.
    pub manager: Principal,
}

/// A release whose chunks the store's chunk store holds.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoredRelease {
    /// Semantic version (semver 2.0), at most 64 bytes.
    pub version: String,
    /// sha256 of the module as installed (32 bytes): `install_chunked_code`'s
    /// `wasm_module_hash`.
    #[serde(with = "serde_bytes")]
    pub module_hash: Vec<u8>,
    /// sha256 of each chunk, in order (32 bytes each, 1 to 100): the chunk store's keys.
    pub chunk_hashes: Vec<ByteBuf>,
    /// Length of the module as stored (gzipped or raw): fixes the number of chunks,
    /// `ceil(wasm_len / 1 MiB)`.
    pub wasm_len: u64,
}

/// What a store holds, for anyone to audit.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoreStatus {
    pub manager: Principal,
    /// Releases recorded.
    pub releases: u32,
    /// Distinct chunk hashes the recorded releases name (shared chunks counted once).
    pub chunks: u32,
    /// The store canister's cycle balance.
    pub cycles: Nat,
    /// Version of the store's stable memory layout.
    pub layout_version: u32,
}

/// Why the store refused a change. A refused call changes nothing.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum StoreCanisterError {
    /// Only the manager records and forgets releases.
    NotAuthorized {
        caller: Principal,
    },
    InvalidVersion {
        version: String,
        reason: String,
    },
    /// A hash is not 32 bytes long (`field`: `module_hash`, or `chunk_hashes[i]`).
    InvalidHash {
        field: String,
        len: u32,
    },
    /// No chunk, or more than the chunk store holds.
    InvalidChunkCount {
        count: u32,
        max: u32,
    },
    /// `wasm_len` does not match the number of chunks.
    InvalidLength {
        wasm_len: u64,
        chunks: u32,
        chunk_size: u64,
    },
    /// The store records at most this many releases.
    TooManyReleases {
        max: u32,
    },
}

crate::endpoint::reply! {
    RecordReleaseReply((), StoreCanisterError);
    /// `true` when the release was recorded.
    ForgetReleaseReply(bool, StoreCanisterError);
}

/// The store canister's methods.
pub mod method {
    use super::*;

    crate::endpoint::endpoints! {
        /// Manager only: the store's chunk store holds this release (replaces a record of the
        /// same version).
        update RecordRelease = "record_release" (StoredRelease) -> RecordReleaseReply;
        /// Manager only: the store's chunk store no longer holds this release.
        update ForgetRelease = "forget_release" (String) -> ForgetReleaseReply;
        /// The releases recorded, in version order.
        query Releases = "releases" () -> Vec<StoredRelease>;
        query Status = "status" () -> StoreStatus;
    }
}
