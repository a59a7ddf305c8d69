//! Public types: requests, release metadata, upload status, limits and errors.
//!
//! Everything here derives `CandidType` so that the fleet manager returns it unchanged from its
//! candid API.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Size of every chunk but the last, and the largest chunk accepted: the IC chunk store takes
/// chunks of at most 1 MiB (interface spec, "IC method `upload_chunk`").
pub const CHUNK_SIZE: u64 = 1024 * 1024;
/// Most chunks per module: the IC chunk store of a canister holds at most 100 chunks, and the
/// manager mirrors each release into its own chunk store before installing it.
pub const MAX_CHUNKS: u32 = 100;
/// Largest module accepted, compressed or not: 100 chunks of 1 MiB, which is also the IC's limit
/// on an uncompressed wasm module (100 MiB).
pub const MAX_MODULE_SIZE: u64 = CHUNK_SIZE * MAX_CHUNKS as u64;
/// Largest uncompressed size of a gzipped module (the IC's wasm limit).
pub const MAX_UNCOMPRESSED_SIZE: u64 = 100 * 1024 * 1024;
/// Longest version string; it is a key of the stable release map, so it has to be bounded.
pub const MAX_VERSION_LEN: usize = 64;
/// Longest release notes, in bytes.
pub const MAX_NOTES_LEN: usize = 4096;
/// Longest Candid service description kept with a release, in bytes: the largest app
/// interfaces are tens of KiB, and the begin request carrying it must stay far below the IC's
/// 2 MiB ingress limit.
pub const MAX_SERVICE_LEN: usize = 128 * 1024;
/// Longest reason recorded for publishing a release that breaks its predecessor's interface.
pub const MAX_REASON_LEN: usize = 1024;
/// Most releases returned by one `list` call.
pub const MAX_PAGE: u32 = 100;

/// Memory bounds of a store. They are constructor parameters rather than stored values, so a
/// canister upgrade may change them; lowering them below the current usage keeps every stored
/// release and only refuses new uploads.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Most releases kept, finalized releases and uploads in progress together.
    pub max_releases: u32,
    /// Most module bytes kept, counting finalized releases and the declared size of uploads in
    /// progress (the space is reserved when an upload begins).
    pub max_total_bytes: u64,
}

impl Default for StoreLimits {
    /// 64 releases and 1 GiB: ten times the largest module, and far below the 500 GiB of stable
    /// memory a canister may use, so that the rest of the manager's state always has room.
    fn default() -> Self {
        StoreLimits {
            max_releases: 64,
            max_total_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// Request to start uploading a release.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BeginUpload {
    /// Semantic version (semver 2.0), at most [`MAX_VERSION_LEN`] bytes, e.g. `1.4.0-rc.1`.
    pub version: String,
    /// Size in bytes of the module as uploaded (gzipped or raw).
    pub total_size: u64,
    /// sha256 of the module as uploaded (32 bytes). It is also the `wasm_module_hash` the manager
    /// passes to `install_chunked_code`, which hashes the concatenated chunks.
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
    /// Free-form release notes, at most [`MAX_NOTES_LEN`] bytes.
    pub notes: String,
    /// The module's interface as its publisher read it; absent for clients that predate it.
    pub interface: Option<ReleaseInterface>,
}

/// The Candid interface of a release, kept so that the next release can be checked against
/// it: the service text of the module's `candid:service` metadata, and why the release was
/// published although that interface breaks the one of the release it replaces. The publisher
/// supplies both; the store keeps them as given.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ReleaseInterface {
    /// At most [`MAX_SERVICE_LEN`] bytes.
    pub service: Option<String>,
    /// At most [`MAX_REASON_LEN`] bytes.
    pub breaking_change: Option<String>,
}

/// A finalized, immutable release.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReleaseMeta {
    /// Semantic version, in canonical form.
    pub version: String,
    /// sha256 of the module as stored (gzipped or raw).
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
    /// Size of the module as stored.
    pub size: u64,
    /// Size of the wasm after decompression (equal to `size` when not gzipped).
    pub uncompressed_size: u64,
    /// Number of chunks: `ceil(size / CHUNK_SIZE)`.
    pub chunk_count: u32,
    /// sha256 of every chunk, in order: the hashes the IC chunk store returns for them.
    pub chunk_hashes: Vec<ByteBuf>,
    /// When the release was finalized (nanoseconds since the epoch).
    pub uploaded_at: u64,
    /// Who began the upload.
    pub uploader: Principal,
    pub notes: String,
    /// True when the module is gzip-compressed (detected from its magic bytes).
    pub gzipped: bool,
}

/// Progress of an unfinished upload, so that an interrupted upload can resume.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadStatus {
    pub version: String,
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
    pub total_size: u64,
    pub chunk_count: u32,
    /// Indexes of the chunks still to send, ascending.
    pub missing: Vec<u32>,
    /// Bytes received so far.
    pub received_bytes: u64,
    pub uploader: Principal,
    pub notes: String,
    /// When the upload began (nanoseconds since the epoch).
    pub started_at: u64,
}

/// Space used and allowed.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreUsage {
    pub releases: u32,
    pub uploads: u32,
    /// Module bytes of finalized releases plus the declared size of uploads in progress.
    pub bytes: u64,
    pub limits: StoreLimits,
}

/// Why a store operation was refused. A refused operation changes nothing.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("invalid version {version:?}: {reason}")]
    InvalidVersion { version: String, reason: String },
    #[error("sha256 must be 32 bytes, got {len}")]
    InvalidSha256 { len: u64 },
    #[error("the module is empty")]
    EmptyModule,
    #[error("{chunks} chunks of 1 MiB needed, at most {max} allowed")]
    TooManyChunks { chunks: u64, max: u32 },
    #[error("the module is {size} bytes uncompressed, at most {max} allowed")]
    ModuleTooLarge { size: u64, max: u64 },
    #[error("notes are {len} bytes, at most {max} allowed")]
    NotesTooLong { len: u64, max: u64 },
    #[error("the interface's {field} is {len} bytes, at most {max} allowed")]
    InterfaceTooLong { field: String, len: u64, max: u64 },
    #[error("version {version} already exists with other content")]
    VersionExists {
        version: String,
        #[serde(with = "serde_bytes")]
        sha256: Vec<u8>,
    },
    #[error("version {version} is already finalized with this content")]
    AlreadyExists { version: String },
    #[error("this module is already stored as version {version}")]
    ContentExists { version: String },
    #[error(
        "store full: {releases}/{max_releases} releases, {bytes}+{requested}/{max_bytes} bytes"
    )]
    StoreFull {
        releases: u32,
        max_releases: u32,
        bytes: u64,
        requested: u64,
        max_bytes: u64,
    },
    #[error("no upload in progress for version {version}")]
    UnknownUpload { version: String },
    #[error("no release {version}")]
    NotFound { version: String },
    #[error("release {version} is finalized and immutable")]
    Finalized { version: String },
    #[error("release {version} is still being uploaded")]
    UploadInProgress { version: String },
    #[error("chunk index {index} out of range: the module has {chunk_count} chunks")]
    ChunkIndexOutOfRange { index: u32, chunk_count: u32 },
    #[error("chunk of {len} bytes exceeds the {max} byte limit")]
    ChunkTooLarge { len: u64, max: u64 },
    #[error("chunk {index} must be {expected} bytes, got {actual}")]
    ChunkSizeMismatch {
        index: u32,
        expected: u64,
        actual: u64,
    },
    #[error("chunk {index} was already received with different bytes")]
    ChunkConflict { index: u32 },
    #[error("chunks missing: {missing:?}")]
    MissingChunks { missing: Vec<u32> },
    /// The upload is kept as it is (bad input changes nothing); `abort_upload` frees its
    /// reservation.
    #[error(
        "sha256 mismatch: declared {}, computed {}; the upload stays reserved until it is \
         aborted (abort_release_upload)",
        hex(expected),
        hex(actual)
    )]
    HashMismatch {
        #[serde(with = "serde_bytes")]
        expected: Vec<u8>,
        #[serde(with = "serde_bytes")]
        actual: Vec<u8>,
    },
    #[error("not a wasm module: {reason}")]
    NotWasm { reason: String },
    #[error("release {version} is deployed or targeted by a rollout")]
    InUse { version: String },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
