//! Chunked, versioned, content-addressed wasm modules in stable memory.
//!
//! The fleet manager keeps every release of the user canister here. An operator uploads a module
//! in chunks of at most 1 MiB (an ingress message carries at most 2 MiB), the store checks it and
//! freezes it, and the manager later mirrors the chunks into its IC chunk store to install them
//! with `install_chunked_code` (interface spec, "IC method `install_chunked_code`").
//!
//! # Life of a release
//!
//! 1. [`WasmStore::begin_upload`]: semver version, total size and sha256 of the module as it will
//!    be installed (raw or gzipped). The size fixes the number of chunks, `ceil(size / 1 MiB)`,
//!    at most 100 (the IC chunk store's capacity), and is reserved against the store's limits.
//! 2. [`WasmStore::put_chunk`] by index, in any order; chunk `i` is bytes
//!    `[i MiB, (i + 1) MiB)` of the module. Re-sending a chunk with the same bytes is a no-op.
//!    [`WasmStore::upload_status`] lists the chunks still missing, so an interrupted upload
//!    resumes where it stopped.
//! 3. [`WasmStore::finalize`] checks completeness, sha256 and the wasm magic bytes (after
//!    gunzip when the module starts with the gzip magic), and computes per-chunk sha256 hashes;
//!    the release is then immutable. [`WasmStore::abort_upload`] drops an unfinished upload.
//! 4. [`WasmStore::delete`] removes a release unless the caller says it is in use.
//!
//! Every refused request returns a [`StoreError`] and leaves the store unchanged.
//!
//! Content addressing: each module sha256 belongs to exactly one version, so
//! [`WasmStore::get_by_sha256`] maps a canister's module hash (from `canister_status`) back to
//! its release. Uploading the same module under a second version is refused with
//! [`StoreError::ContentExists`]. Beginning the upload of a finalized version with the same
//! content returns [`StoreError::AlreadyExists`] (a client treats it as done); with other content,
//! [`StoreError::VersionExists`].
//!
//! # Memory bounds
//!
//! The store takes five stable memories ([`StoreMemories`]), in practice five `MemoryId`s of the
//! canister's `MemoryManager`. [`StoreLimits`] bound what it holds: by default at most 64 releases
//! (finalized ones and uploads in progress together) and 1 GiB of module bytes (finalized sizes
//! plus the declared size of unfinished uploads). A single module is at most 100 MiB as stored
//! and 100 MiB uncompressed. Stable memory used is the module bytes plus B-tree overhead (a few
//! percent) plus about 4 KiB of metadata per release. The limits are constructor parameters, not
//! stored, so an upgrade may change them.
//!
//! The store's layout is versioned by the owning canister's stable header; this crate has no
//! header of its own.

mod store;
mod stored;
mod types;

pub use store::{StoreMemories, WasmStore};
/// Semver versions ordered by precedence: the key of the releases map, also the store
/// canister's.
pub use stored::VersionKey;
pub use types::*;

#[cfg(test)]
mod tests;
