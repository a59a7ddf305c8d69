//! The release store's requests, records and errors as the manager's interface shows them.
//! The store (`wasm_store`) keeps its own types; the manager maps them field by field.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Request to start uploading a release.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BeginUpload {
    /// Semantic version (semver 2.0), at most 64 bytes, e.g. `1.4.0-rc.1`.
    pub version: String,
    /// Size in bytes of the module as uploaded (gzipped or raw).
    pub total_size: u64,
    /// sha256 of the module as uploaded (32 bytes). It is also the `wasm_module_hash` the manager
    /// passes to `install_chunked_code`, which hashes the concatenated chunks.
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
    /// Free-form release notes, at most 4,096 bytes.
    pub notes: String,
    /// The module's Candid interface and, for a release that breaks the interface of the one
    /// it replaces, why it was published anyway. Kept with the release for the next
    /// release's compatibility check (`fleet release check`).
    pub interface: Option<ReleaseInterface>,
}

/// The Candid interface a release was published with. The publisher reads `service` from the
/// module's `candid:service` metadata (interface spec, "Canister module format": custom
/// sections `icp:public`/`icp:private`); the manager keeps both fields as given.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ReleaseInterface {
    /// The service description, at most 128 KiB.
    pub service: Option<String>,
    /// Why a release breaking its predecessor's interface was published, at most 1 KiB.
    pub breaking_change: Option<String>,
}

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

/// Why a store operation was refused. A refused operation changes nothing.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    InvalidVersion {
        version: String,
        reason: String,
    },
    InvalidSha256 {
        len: u64,
    },
    EmptyModule,
    TooManyChunks {
        chunks: u64,
        max: u32,
    },
    ModuleTooLarge {
        size: u64,
        max: u64,
    },
    NotesTooLong {
        len: u64,
        max: u64,
    },
    InterfaceTooLong {
        field: String,
        len: u64,
        max: u64,
    },
    VersionExists {
        version: String,
        #[serde(with = "serde_bytes")]
        sha256: Vec<u8>,
    },
    AlreadyExists {
        version: String,
    },
    ContentExists {
        version: String,
    },
    StoreFull {
        releases: u32,
        max_releases: u32,
        bytes: u64,
        requested: u64,
        max_bytes: u64,
    },
    UnknownUpload {
        version: String,
    },
    NotFound {
        version: String,
    },
    Finalized {
        version: String,
    },
    UploadInProgress {
        version: String,
    },
    ChunkIndexOutOfRange {
        index: u32,
        chunk_count: u32,
    },
    ChunkTooLarge {
        len: u64,
        max: u64,
    },
    ChunkSizeMismatch {
        index: u32,
        expected: u64,
        actual: u64,
    },
    ChunkConflict {
        index: u32,
    },
    MissingChunks {
        missing: Vec<u32>,
    },
    /// The upload is kept as it is (bad input changes nothing); `abort_upload` frees its
    /// reservation.
    HashMismatch {
        #[serde(with = "serde_bytes")]
        expected: Vec<u8>,
        #[serde(with = "serde_bytes")]
        actual: Vec<u8>,
    },
    NotWasm {
        reason: String,
    },
    InUse {
        version: String,
    },
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
