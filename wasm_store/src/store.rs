//! The store itself: five stable B-tree maps and the upload rules.

use std::io::Write;

use candid::Principal;
use ic_stable_structures::{BTreeMap, Memory};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::stored::{ChunkKey, PendingUpload, VersionKey};
use crate::types::*;

/// The stable memories a store lives in. Each must be its own virtual memory (for example a
/// distinct `MemoryId` of the canister's `MemoryManager`) and must be passed again, in the same
/// roles, after every upgrade.
pub struct StoreMemories<M: Memory> {
    /// Finalized releases: version → [`ReleaseMeta`].
    pub releases: M,
    /// Uploads in progress: version → pending upload.
    pub uploads: M,
    /// Module chunks of releases and uploads: (sha256, index) → bytes.
    pub chunks: M,
    /// Content index: sha256 → version, for releases and uploads alike.
    pub by_sha256: M,
    /// Interfaces: sha256 → [`ReleaseInterface`], for releases and uploads that declared one.
    /// Apart from the release metadata, so that listing releases and looking one up during a
    /// rollout never decode service texts.
    pub interfaces: M,
}

/// Versioned, content-addressed wasm modules in stable memory. See the crate documentation.
pub struct WasmStore<M: Memory> {
    releases: BTreeMap<VersionKey, ReleaseMeta, M>,
    uploads: BTreeMap<VersionKey, PendingUpload, M>,
    chunks: BTreeMap<ChunkKey, Vec<u8>, M>,
    by_sha256: BTreeMap<[u8; 32], VersionKey, M>,
    interfaces: BTreeMap<[u8; 32], ReleaseInterface, M>,
    limits: StoreLimits,
}

fn sha_array(sha256: &[u8]) -> Result<[u8; 32], StoreError> {
    sha256.try_into().map_err(|_| StoreError::InvalidSha256 {
        len: sha256.len() as u64,
    })
}

/// Expected length of chunk `index` of a module of `total_size` bytes: every chunk is
/// [`CHUNK_SIZE`] long except the last, which holds the rest.
fn expected_chunk_len(total_size: u64, index: u32) -> u64 {
    let start = index as u64 * CHUNK_SIZE;
    (total_size - start).min(CHUNK_SIZE)
}

fn check_interface(interface: &ReleaseInterface) -> Result<(), StoreError> {
    let fields = [
        ("service", &interface.service, MAX_SERVICE_LEN),
        (
            "breaking_change",
            &interface.breaking_change,
            MAX_REASON_LEN,
        ),
    ];
    for (field, text, max) in fields {
        let len = text.as_ref().map_or(0, String::len);
        if len > max {
            return Err(StoreError::InterfaceTooLong {
                field: field.to_string(),
                len: len as u64,
                max: max as u64,
            });
        }
    }
    Ok(())
}

const WASM_HEADER: [u8; 8] = *b"\0asm\x01\0\0\0";
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl<M: Memory> WasmStore<M> {
    /// Opens the store in `memories`, creating it when they are empty and loading it otherwise
    /// (after a canister upgrade).
    pub fn init(memories: StoreMemories<M>, limits: StoreLimits) -> Self {
        WasmStore {
            releases: BTreeMap::init(memories.releases),
            uploads: BTreeMap::init(memories.uploads),
            chunks: BTreeMap::init(memories.chunks),
            by_sha256: BTreeMap::init(memories.by_sha256),
            interfaces: BTreeMap::init(memories.interfaces),
            limits,
        }
    }

    /// The limits this store was opened with.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// Releases, uploads and bytes currently held.
    pub fn usage(&self) -> StoreUsage {
        let released: u64 = self.releases.values().map(|m| m.size).sum();
        let reserved: u64 = self.uploads.values().map(|u| u.total_size).sum();
        StoreUsage {
            releases: self.releases.len() as u32,
            uploads: self.uploads.len() as u32,
            bytes: released + reserved,
            limits: self.limits,
        }
    }

    /// Starts an upload, reserving its declared size. Calling it again with the same request
    /// while the upload is unfinished succeeds and changes nothing, so a client can resume; for a
    /// finalized release with the same content it returns [`StoreError::AlreadyExists`], which
    /// clients treat as "already published".
    pub fn begin_upload(
        &mut self,
        req: BeginUpload,
        uploader: Principal,
        now_ns: u64,
    ) -> Result<(), StoreError> {
        let key = VersionKey::parse(&req.version)?;
        let sha = sha_array(&req.sha256)?;
        if req.total_size == 0 {
            return Err(StoreError::EmptyModule);
        }
        let chunks = req.total_size.div_ceil(CHUNK_SIZE);
        if chunks > MAX_CHUNKS as u64 {
            return Err(StoreError::TooManyChunks {
                chunks,
                max: MAX_CHUNKS,
            });
        }
        if req.notes.len() > MAX_NOTES_LEN {
            return Err(StoreError::NotesTooLong {
                len: req.notes.len() as u64,
                max: MAX_NOTES_LEN as u64,
            });
        }
        if let Some(interface) = &req.interface {
            check_interface(interface)?;
        }
        let version = key.to_string();
        if let Some(meta) = self.releases.get(&key) {
            return Err(if meta.sha256 == sha && meta.size == req.total_size {
                StoreError::AlreadyExists { version }
            } else {
                StoreError::VersionExists {
                    version,
                    sha256: meta.sha256,
                }
            });
        }
        if let Some(pending) = self.uploads.get(&key) {
            return if pending.sha256 == sha
                && pending.total_size == req.total_size
                && pending.notes == req.notes
                && self.interfaces.get(&sha) == req.interface
            {
                Ok(())
            } else {
                Err(StoreError::VersionExists {
                    version,
                    sha256: pending.sha256,
                })
            };
        }
        if let Some(other) = self.by_sha256.get(&sha) {
            return Err(StoreError::ContentExists {
                version: other.to_string(),
            });
        }
        let usage = self.usage();
        let held = usage.releases + usage.uploads;
        if held >= self.limits.max_releases
            || usage.bytes.saturating_add(req.total_size) > self.limits.max_total_bytes
        {
            return Err(StoreError::StoreFull {
                releases: held,
                max_releases: self.limits.max_releases,
                bytes: usage.bytes,
                requested: req.total_size,
                max_bytes: self.limits.max_total_bytes,
            });
        }
        self.by_sha256.insert(sha, key.clone());
        if let Some(interface) = req.interface {
            self.interfaces.insert(sha, interface);
        }
        self.uploads.insert(
            key,
            PendingUpload {
                version,
                sha256: sha.to_vec(),
                total_size: req.total_size,
                chunk_count: chunks as u32,
                notes: req.notes,
                uploader,
                started_at: now_ns,
            },
        );
        Ok(())
    }

    /// The unfinished upload of `version`, or why there is none.
    fn pending(&self, version: &str) -> Result<(VersionKey, PendingUpload), StoreError> {
        let key = VersionKey::parse(version)?;
        match self.uploads.get(&key) {
            Some(pending) => Ok((key, pending)),
            None if self.releases.contains_key(&key) => Err(StoreError::Finalized {
                version: key.to_string(),
            }),
            None => Err(StoreError::UnknownUpload {
                version: key.to_string(),
            }),
        }
    }

    /// The finalized release `version`, or why there is none.
    fn release(&self, version: &str) -> Result<ReleaseMeta, StoreError> {
        let key = VersionKey::parse(version)?;
        match self.releases.get(&key) {
            Some(meta) => Ok(meta),
            None if self.uploads.contains_key(&key) => Err(StoreError::UploadInProgress {
                version: key.to_string(),
            }),
            None => Err(StoreError::NotFound {
                version: key.to_string(),
            }),
        }
    }

    /// Stores chunk `index` of an unfinished upload. Chunk `i` holds bytes
    /// `[i * CHUNK_SIZE, min((i + 1) * CHUNK_SIZE, total_size))` of the module, so its length is
    /// known in advance and chunks may arrive in any order. Sending a chunk again with the same
    /// bytes succeeds; with other bytes it is refused.
    pub fn put_chunk(
        &mut self,
        version: &str,
        index: u32,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let (_, pending) = self.pending(version)?;
        if bytes.len() as u64 > CHUNK_SIZE {
            return Err(StoreError::ChunkTooLarge {
                len: bytes.len() as u64,
                max: CHUNK_SIZE,
            });
        }
        if index >= pending.chunk_count {
            return Err(StoreError::ChunkIndexOutOfRange {
                index,
                chunk_count: pending.chunk_count,
            });
        }
        let expected = expected_chunk_len(pending.total_size, index);
        if bytes.len() as u64 != expected {
            return Err(StoreError::ChunkSizeMismatch {
                index,
                expected,
                actual: bytes.len() as u64,
            });
        }
        let key = (sha_array(&pending.sha256)?, index);
        match self.chunks.get(&key) {
            Some(existing) if existing == bytes => Ok(()),
            Some(_) => Err(StoreError::ChunkConflict { index }),
            None => {
                self.chunks.insert(key, bytes);
                Ok(())
            }
        }
    }

    /// Progress of the unfinished upload of `version`.
    pub fn upload_status(&self, version: &str) -> Result<UploadStatus, StoreError> {
        let (_, pending) = self.pending(version)?;
        Ok(self.status_of(pending))
    }

    /// Every unfinished upload, in version order (at most `max_releases`).
    pub fn uploads(&self) -> Vec<UploadStatus> {
        self.uploads.values().map(|p| self.status_of(p)).collect()
    }

    fn status_of(&self, pending: PendingUpload) -> UploadStatus {
        let sha: [u8; 32] = sha_array(&pending.sha256).expect("stored sha256 has 32 bytes");
        let present: Vec<u32> = self
            .chunks
            .keys_range((sha, 0)..=(sha, u32::MAX))
            .map(|(_, index)| index)
            .collect();
        let missing = (0..pending.chunk_count)
            .filter(|i| present.binary_search(i).is_err())
            .collect();
        let received_bytes = present
            .iter()
            .map(|&i| expected_chunk_len(pending.total_size, i))
            .sum();
        UploadStatus {
            version: pending.version,
            sha256: pending.sha256,
            total_size: pending.total_size,
            chunk_count: pending.chunk_count,
            missing,
            received_bytes,
            uploader: pending.uploader,
            notes: pending.notes,
            started_at: pending.started_at,
        }
    }

    /// Checks the complete upload and turns it into an immutable release: every chunk present,
    /// sha256 equal to the declared one, and the module a wasm binary (`\0asm` version 1), raw or
    /// gzipped; a gzipped module is decompressed in full to check its magic bytes, its integrity
    /// and the 100 MiB uncompressed limit. A refused finalize leaves the upload as it was.
    /// Finalizing a finalized release returns its metadata, so a client may retry after a lost
    /// reply.
    ///
    /// Cost: one pass over the module (sha256, and inflate when gzipped). For the largest module
    /// (100 MiB) this stays well within the 40B instructions of an update message.
    pub fn finalize(&mut self, version: &str, now_ns: u64) -> Result<ReleaseMeta, StoreError> {
        let (key, pending) = match self.pending(version) {
            Ok(found) => found,
            Err(StoreError::Finalized { .. }) => return self.release(version),
            Err(e) => return Err(e),
        };
        let status = self.status_of(pending.clone());
        if !status.missing.is_empty() {
            return Err(StoreError::MissingChunks {
                missing: status.missing,
            });
        }
        let sha = sha_array(&pending.sha256)?;
        let mut whole = Sha256::new();
        let mut chunk_hashes = Vec::with_capacity(pending.chunk_count as usize);
        let mut header = Vec::with_capacity(WASM_HEADER.len());
        let mut inflater: Option<flate2::write::GzDecoder<WasmSink>> = None;
        let mut inflate_error: Option<String> = None;
        for entry in self.chunks.range((sha, 0)..=(sha, u32::MAX)) {
            let bytes = entry.value();
            whole.update(&bytes);
            chunk_hashes.push(ByteBuf::from(Sha256::digest(&bytes).to_vec()));
            if entry.key().1 == 0 {
                if bytes.starts_with(&GZIP_MAGIC) {
                    inflater = Some(flate2::write::GzDecoder::new(WasmSink::default()));
                } else {
                    header.extend(bytes.iter().take(WASM_HEADER.len()));
                }
            }
            if let (Some(decoder), None) = (inflater.as_mut(), &inflate_error) {
                if let Err(e) = decoder.write_all(&bytes) {
                    inflate_error = Some(e.to_string());
                }
            }
        }
        let actual: [u8; 32] = whole.finalize().into();
        if actual != sha {
            return Err(StoreError::HashMismatch {
                expected: sha.to_vec(),
                actual: actual.to_vec(),
            });
        }
        let (gzipped, uncompressed_size) = match inflater {
            None => (false, pending.total_size),
            Some(mut decoder) => {
                let finished = match inflate_error {
                    Some(reason) => Err(reason),
                    None => decoder.try_finish().map_err(|e| e.to_string()),
                };
                if let Err(reason) = finished {
                    let inflated = decoder.get_ref().len;
                    return Err(if inflated > MAX_UNCOMPRESSED_SIZE {
                        StoreError::ModuleTooLarge {
                            size: inflated,
                            max: MAX_UNCOMPRESSED_SIZE,
                        }
                    } else {
                        inflate_refusal(reason)
                    });
                }
                let sink = decoder
                    .finish()
                    .map_err(|e| inflate_refusal(e.to_string()))?;
                header = sink.header;
                (true, sink.len)
            }
        };
        if header != WASM_HEADER {
            return Err(StoreError::NotWasm {
                reason: format!(
                    "starts with {:02x?}{}, expected \\0asm version 1",
                    header,
                    if gzipped { " after gunzip" } else { "" }
                ),
            });
        }
        let meta = ReleaseMeta {
            version: pending.version,
            sha256: pending.sha256,
            size: pending.total_size,
            uncompressed_size,
            chunk_count: pending.chunk_count,
            chunk_hashes,
            uploaded_at: now_ns,
            uploader: pending.uploader,
            notes: pending.notes,
            gzipped,
        };
        self.uploads.remove(&key);
        self.releases.insert(key, meta.clone());
        Ok(meta)
    }

    /// Drops an unfinished upload and its chunks, freeing its reservation.
    pub fn abort_upload(&mut self, version: &str) -> Result<(), StoreError> {
        let (key, pending) = self.pending(version)?;
        let sha = sha_array(&pending.sha256)?;
        self.remove_chunks(sha);
        self.by_sha256.remove(&sha);
        self.interfaces.remove(&sha);
        self.uploads.remove(&key);
        Ok(())
    }

    /// Deletes a finalized release. `in_use` is the caller's knowledge of the fleet: true when a
    /// canister runs this release or a rollout targets it, in which case nothing is deleted.
    pub fn delete(&mut self, version: &str, in_use: bool) -> Result<ReleaseMeta, StoreError> {
        let meta = self.release(version)?;
        if in_use {
            return Err(StoreError::InUse {
                version: meta.version,
            });
        }
        let key = VersionKey::parse(&meta.version)?;
        let sha = sha_array(&meta.sha256)?;
        self.remove_chunks(sha);
        self.by_sha256.remove(&sha);
        self.interfaces.remove(&sha);
        self.releases.remove(&key);
        Ok(meta)
    }

    fn remove_chunks(&mut self, sha: [u8; 32]) {
        let keys: Vec<ChunkKey> = self.chunks.keys_range((sha, 0)..=(sha, u32::MAX)).collect();
        for key in keys {
            self.chunks.remove(&key);
        }
    }

    /// Metadata of the finalized release `version` (none for an invalid version or an unfinished
    /// upload).
    pub fn get(&self, version: &str) -> Option<ReleaseMeta> {
        self.release(version).ok()
    }

    /// The interface the finalized release `version` was published with, if it declared one.
    pub fn interface(&self, version: &str) -> Option<ReleaseInterface> {
        let meta = self.release(version).ok()?;
        self.interfaces.get(&sha_array(&meta.sha256).ok()?)
    }

    /// The finalized release whose module has this sha256.
    pub fn get_by_sha256(&self, sha256: &[u8]) -> Option<ReleaseMeta> {
        let sha = sha_array(sha256).ok()?;
        let key = self.by_sha256.get(&sha)?;
        self.releases.get(&key)
    }

    /// Finalized releases in semver order, starting after `start_after` (exclusive; it need not
    /// exist), at most `min(limit, MAX_PAGE)` of them.
    pub fn list(
        &self,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ReleaseMeta>, StoreError> {
        let limit = limit.min(MAX_PAGE) as usize;
        let page = match start_after {
            None => self.releases.values().take(limit).collect(),
            Some(after) => {
                let after = VersionKey::parse(after)?;
                self.releases
                    .range((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                    .take(limit)
                    .map(|entry| entry.value())
                    .collect()
            }
        };
        Ok(page)
    }

    /// Chunk `index` of the finalized release `version`.
    pub fn chunk(&self, version: &str, index: u32) -> Result<Vec<u8>, StoreError> {
        let meta = self.release(version)?;
        if index >= meta.chunk_count {
            return Err(StoreError::ChunkIndexOutOfRange {
                index,
                chunk_count: meta.chunk_count,
            });
        }
        let sha = sha_array(&meta.sha256)?;
        Ok(self
            .chunks
            .get(&(sha, index))
            .expect("a finalized release has all its chunks"))
    }

    /// The whole module of the finalized release `version` (up to 100 MiB: meant for tests and
    /// tools, not for replies, which are limited to 2 MiB).
    pub fn module(&self, version: &str) -> Result<Vec<u8>, StoreError> {
        let meta = self.release(version)?;
        let sha = sha_array(&meta.sha256)?;
        let mut module = Vec::with_capacity(meta.size as usize);
        for chunk in self.chunks.values_range((sha, 0)..=(sha, u32::MAX)) {
            module.extend_from_slice(&chunk);
        }
        Ok(module)
    }
}

fn inflate_refusal(reason: String) -> StoreError {
    StoreError::NotWasm {
        reason: format!("gzip stream: {reason}"),
    }
}

/// Receives the inflated module: keeps its first bytes and its length, and stops the inflater
/// once the module exceeds the IC's uncompressed limit, so a gzip bomb costs at most 100 MiB of
/// inflation and no memory. `len` then counts the bytes seen, past the limit.
#[derive(Default)]
struct WasmSink {
    header: Vec<u8>,
    len: u64,
}

impl Write for WasmSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = WASM_HEADER.len().saturating_sub(self.header.len());
        self.header.extend(buf.iter().take(room));
        self.len += buf.len() as u64;
        if self.len > MAX_UNCOMPRESSED_SIZE {
            return Err(std::io::Error::other(format!(
                "more than {MAX_UNCOMPRESSED_SIZE} bytes uncompressed"
            )));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
