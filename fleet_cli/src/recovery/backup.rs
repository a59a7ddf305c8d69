//! A user canister's whole state in a file, outliving the IC's few on-chain snapshots: a snapshot
//! taken and downloaded through the management canister's snapshot data methods, and uploaded
//! and loaded back (interface spec, "IC method `read_canister_snapshot_metadata`",
//! "`read_canister_snapshot_data`", "`upload_canister_snapshot_metadata`",
//! "`upload_canister_snapshot_data`").
//!
//! The file: [`MAGIC`], the header's length (u32, little endian) and the header (JSON: the
//! canister, its module hash and release, the snapshot's metadata as candid), then the wasm
//! module, the heap, the stable memory and each chunk of the canister's chunk store, and last
//! the sha256 of everything before it, so a damaged or truncated file is refused before
//! anything is uploaded.
//!
//! A download is written to `<file>.partial` and renamed when complete. When a call fails on
//! the way, the partial file and the snapshot stay: the same command again continues from the
//! last byte written (the header names the snapshot, and `read_canister_snapshot_data` reads
//! from any offset), and deletes the snapshot once the file is complete.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use candid::Principal;
use ic_management_canister_types as mc;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::backend::{CallError, Ic};
use crate::error::CliError;

pub const MAGIC: &[u8; 8] = b"FLEETBK1";

/// Bytes read or written per call: the replica's largest snapshot data slice is 2 MB.
const SLICE: u64 = 2_000_000;

/// What the file says about the state it holds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct BackupHeader {
    pub canister: String,
    /// sha256 of the installed module, hex.
    pub module_hash: Option<String>,
    /// The canister's `version`, when it answered.
    pub version: Option<String>,
    /// The release sha256 the canister reports, hex.
    pub release_sha256: Option<String>,
    pub taken_at_ns: u64,
    /// `read_canister_snapshot_metadata`'s reply, candid-encoded, hex.
    pub metadata: String,
    pub wasm_module_size: u64,
    pub wasm_memory_size: u64,
    pub stable_memory_size: u64,
    /// The chunk store's chunks: (sha256 hex, length), in file order.
    pub chunks: Vec<(String, u64)>,
    /// The snapshot the state was downloaded from, hex: what an interrupted download resumes.
    #[serde(default)]
    pub snapshot_id: Option<String>,
}

/// What `backup` and `restore` report.
#[derive(Serialize, Debug, Clone)]
pub struct BackupReport {
    pub header: BackupHeader,
    pub file: String,
    pub bytes: u64,
    /// True when an interrupted download of the same snapshot was continued.
    pub resumed: bool,
}

fn call(step: &'static str) -> impl Fn(CallError) -> CliError {
    move |source| CliError::Call {
        step: step.to_string(),
        source,
    }
}

fn update<A, R>(ic: &dyn Ic, method: &'static str, arg: &A) -> Result<R, CliError>
where
    A: candid::CandidType,
    R: candid::CandidType + for<'de> Deserialize<'de>,
{
    let bytes = candid::encode_one(arg).map_err(|e| CliError::Io(e.to_string()))?;
    let reply = ic
        .update(Principal::management_canister(), method, bytes)
        .map_err(call(method))?;
    candid::decode_one(&reply).map_err(|e| {
        call(method)(CallError::Decode {
            method: method.to_string(),
            message: e.to_string(),
        })
    })
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Io(format!("{}: {e}", path.display()))
}

/// A writer that hashes what it writes.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    written: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Takes a snapshot of `canister` (stopping it for the moment the IC takes it), downloads it
/// into `out`, and deletes the snapshot it took: on the canister, nothing else changes.
/// The header records the canister's module hash (`canister_status`), its `version` and the
/// release it reports (`release_sha256`), when it answers them.
pub fn backup(ic: &dyn Ic, canister: Principal, out: &Path) -> Result<BackupReport, CliError> {
    use crate::backend::{Endpoints, Management};
    let st = crate::recovery::status(ic, canister)?;
    let release_sha256 = ic
        .call::<fleet_api::user::method::ReleaseSha256>(canister, ())
        .ok()
        .map(hex::encode);
    let partial = partial_path(out);
    let resumed = resumable(ic, canister, &partial)?;
    let id = match &resumed {
        Some(id) => id.clone(),
        None => {
            ic.stop_canister(canister).map_err(call("stop_canister"))?;
            let taken = ic.take_canister_snapshot(canister, None);
            ic.start_canister(canister)
                .map_err(call("start_canister"))?;
            taken.map_err(call("take_canister_snapshot"))?.id.into_vec()
        }
    };
    let info = (st.module_hash, st.version.ok(), release_sha256);
    let written = download(ic, canister, &id, out, &partial, info);
    if written.is_err() && partial.exists() {
        // Kept for the next run, which resumes from the partial file.
        return written;
    }
    let deleted = delete_snapshot(ic, canister, id);
    let mut report = written?;
    deleted?;
    report.resumed = resumed.is_some();
    Ok(report)
}

/// `<out>.partial`: the download in progress.
fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// The snapshot an interrupted download of `canister` into `partial` can continue from: the
/// one its header names, if the canister still has it. A partial file that cannot be resumed
/// is removed; one of another canister is refused.
fn resumable(
    ic: &dyn Ic,
    canister: Principal,
    partial: &Path,
) -> Result<Option<Vec<u8>>, CliError> {
    use crate::backend::Management;
    if !partial.exists() {
        return Ok(None);
    }
    let header = read_partial_header(partial).ok().map(|(h, _)| h);
    if let Some(h) = &header {
        if h.canister != canister.to_text() {
            return Err(CliError::Usage(format!(
                "{} is a download from {}, not {canister}: remove it or write elsewhere",
                partial.display(),
                h.canister
            )));
        }
    }
    let id = header
        .and_then(|h| h.snapshot_id)
        .and_then(|id| hex::decode(id).ok());
    let listed = ic
        .list_canister_snapshots(canister)
        .map_err(call("list_canister_snapshots"))?;
    match id {
        Some(id) if listed.iter().any(|s| s.id.as_slice() == id.as_slice()) => Ok(Some(id)),
        _ => {
            std::fs::remove_file(partial).map_err(io(partial))?;
            Ok(None)
        }
    }
}

/// The header of a partial download and where its body starts.
fn read_partial_header(path: &Path) -> Result<(BackupHeader, u64), CliError> {
    let mut file = File::open(path).map_err(io(path))?;
    header_at_start(&mut file)
        .map_err(|why| CliError::Usage(format!("{}: not a fleet download: {why}", path.display())))
}

/// [`MAGIC`], the header's length and the header, from the start of `file`; the header and
/// where the body starts.
fn header_at_start(file: &mut File) -> Result<(BackupHeader, u64), String> {
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut magic = [0u8; 8];
    file.read_exact(&mut magic).map_err(|e| e.to_string())?;
    if &magic != MAGIC {
        return Err("wrong magic".into());
    }
    let mut n = [0u8; 4];
    file.read_exact(&mut n).map_err(|e| e.to_string())?;
    let n = u32::from_le_bytes(n) as u64;
    let mut json = vec![0u8; n as usize];
    file.read_exact(&mut json).map_err(|e| e.to_string())?;
    let header = serde_json::from_slice(&json).map_err(|e| format!("header: {e}"))?;
    Ok((header, MAGIC.len() as u64 + 4 + n))
}

/// sha256 of the first `len` bytes of `file`, read a MiB at a time.
fn sha256_prefix(file: &mut File, len: u64) -> std::io::Result<Sha256> {
    file.seek(SeekFrom::Start(0))?;
    let mut hash = Sha256::new();
    let mut reader = BufReader::new(file).take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(hash);
        }
        hash.update(&buf[..n]);
    }
}

fn delete_snapshot(ic: &dyn Ic, canister: Principal, id: Vec<u8>) -> Result<(), CliError> {
    update(
        ic,
        "delete_canister_snapshot",
        &mc::DeleteCanisterSnapshotArgs {
            canister_id: canister,
            snapshot_id: id,
        },
    )
}

/// Downloads snapshot `id` into `partial`, continuing what it already holds, and renames it
/// to `out` once complete.
fn download(
    ic: &dyn Ic,
    canister: Principal,
    id: &[u8],
    out: &Path,
    partial: &Path,
    (module_hash, version, release_sha256): (Option<String>, Option<String>, Option<String>),
) -> Result<BackupReport, CliError> {
    let meta: mc::ReadCanisterSnapshotMetadataResult = update(
        ic,
        "read_canister_snapshot_metadata",
        &mc::ReadCanisterSnapshotMetadataArgs {
            canister_id: canister,
            snapshot_id: id.to_vec(),
        },
    )?;
    let read = |kind: mc::SnapshotDataKind| -> Result<Vec<u8>, CliError> {
        let reply: mc::ReadCanisterSnapshotDataResult = update(
            ic,
            "read_canister_snapshot_data",
            &mc::ReadCanisterSnapshotDataArgs {
                canister_id: canister,
                snapshot_id: id.to_vec(),
                kind,
            },
        )?;
        Ok(reply.chunk)
    };
    let chunks: Vec<Vec<u8>> = meta
        .wasm_chunk_store
        .iter()
        .map(|c| {
            read(mc::SnapshotDataKind::WasmChunk {
                hash: c.hash.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    let (header, mut w, mut skip) = if partial.exists() {
        let (header, body_start) = read_partial_header(partial)?;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(partial)
            .map_err(io(partial))?;
        let existing = file.metadata().map_err(io(partial))?.len();
        let hash = sha256_prefix(&mut file, existing).map_err(io(partial))?;
        let w = Hashing {
            inner: BufWriter::new(file),
            hash,
            written: existing,
        };
        (header, w, existing - body_start)
    } else {
        let header = BackupHeader {
            canister: canister.to_text(),
            module_hash,
            version,
            release_sha256,
            taken_at_ns: meta.taken_at_timestamp,
            metadata: hex::encode(
                candid::encode_one(&meta).map_err(|e| CliError::Io(e.to_string()))?,
            ),
            wasm_module_size: meta.wasm_module_size,
            wasm_memory_size: meta.wasm_memory_size,
            stable_memory_size: meta.stable_memory_size,
            chunks: chunks
                .iter()
                .map(|c| (hex::encode(Sha256::digest(c)), c.len() as u64))
                .collect(),
            snapshot_id: Some(hex::encode(id)),
        };
        let file = File::create(partial).map_err(io(partial))?;
        let mut w = Hashing {
            inner: BufWriter::new(file),
            hash: Sha256::new(),
            written: 0,
        };
        let json = serde_json::to_vec(&header).map_err(|e| CliError::Io(e.to_string()))?;
        w.write_all(MAGIC).map_err(io(partial))?;
        w.write_all(&(json.len() as u32).to_le_bytes())
            .map_err(io(partial))?;
        w.write_all(&json).map_err(io(partial))?;
        (header, w, 0)
    };
    type Slice = fn(u64, u64) -> mc::SnapshotDataKind;
    let sections: [(u64, Slice); 3] = [
        (meta.wasm_module_size, |offset, size| {
            mc::SnapshotDataKind::WasmModule { offset, size }
        }),
        (meta.wasm_memory_size, |offset, size| {
            mc::SnapshotDataKind::WasmMemory { offset, size }
        }),
        (meta.stable_memory_size, |offset, size| {
            mc::SnapshotDataKind::StableMemory { offset, size }
        }),
    ];
    for (len, kind) in sections {
        // What an earlier run wrote of this section is skipped.
        let mut offset = skip.min(len);
        skip -= offset;
        while offset < len {
            let size = SLICE.min(len - offset);
            let bytes = match read(kind(offset, size)) {
                Ok(bytes) => bytes,
                Err(e) => return Err(interrupted(w, partial, e)),
            };
            if bytes.len() as u64 != size {
                return Err(CliError::Io(format!(
                    "read_canister_snapshot_data returned {} bytes, asked for {size}",
                    bytes.len()
                )));
            }
            w.write_all(&bytes).map_err(io(partial))?;
            offset += size;
        }
    }
    for chunk in &chunks {
        let from = (skip as usize).min(chunk.len());
        skip -= from as u64;
        w.write_all(&chunk[from..]).map_err(io(partial))?;
    }
    let digest = w.hash.clone().finalize();
    w.inner.write_all(&digest).map_err(io(partial))?;
    w.inner.flush().map_err(io(partial))?;
    drop(w);
    std::fs::rename(partial, out).map_err(io(out))?;
    let bytes = std::fs::metadata(out).map_err(io(out))?.len();
    Ok(BackupReport {
        header,
        file: out.display().to_string(),
        bytes,
        resumed: false,
    })
}

/// A failed slice: what was written stays in the partial file for the next run.
fn interrupted<W: Write>(mut w: Hashing<W>, partial: &Path, e: CliError) -> CliError {
    let kept = if w.inner.flush().is_ok() {
        "kept"
    } else {
        "may not all be kept"
    };
    let resume = format!(
        "{} bytes {kept} in {}: run the same command again to resume; the snapshot stays until then",
        w.written,
        partial.display()
    );
    match e {
        CliError::Call { step, source } => CliError::Call {
            step: format!("{step} ({resume})"),
            source,
        },
        other => CliError::Io(format!("{other} ({resume})")),
    }
}

/// Reads a backup's header after checking the whole file against its trailing sha256.
pub fn read_header(path: &Path) -> Result<(BackupHeader, u64), CliError> {
    let bad = |why: &str| CliError::Usage(format!("{}: not a fleet backup: {why}", path.display()));
    let mut file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    if len < (MAGIC.len() + 4 + 32) as u64 {
        return Err(bad("too short"));
    }
    let hash = sha256_prefix(&mut file, len - 32).map_err(io(path))?;
    let mut trailer = [0u8; 32];
    file.seek(SeekFrom::Start(len - 32)).map_err(io(path))?;
    file.read_exact(&mut trailer).map_err(io(path))?;
    if hash.finalize().as_slice() != trailer {
        return Err(bad("its sha256 does not match (damaged or truncated)"));
    }
    let (header, body_start) = header_at_start(&mut file).map_err(|why| bad(&why))?;
    let body = header.wasm_module_size
        + header.wasm_memory_size
        + header.stable_memory_size
        + header.chunks.iter().map(|c| c.1).sum::<u64>();
    if body_start + body + 32 != len {
        return Err(bad("its sections do not add up to its length"));
    }
    Ok((header, body_start))
}

/// Uploads the backup in `path` as a snapshot of `canister` and loads it (stop, load, start),
/// then deletes the uploaded snapshot. A backup of another canister is refused unless `force`.
pub fn restore(
    ic: &dyn Ic,
    canister: Principal,
    path: &Path,
    force: bool,
) -> Result<BackupReport, CliError> {
    let (header, body_start) = read_header(path)?;
    if header.canister != canister.to_text() && !force {
        return Err(CliError::Usage(format!(
            "{} is a backup of {}, not of {canister}; pass --force to load it anyway",
            path.display(),
            header.canister
        )));
    }
    let meta_bytes = hex::decode(&header.metadata)
        .map_err(|e| CliError::Usage(format!("backup metadata: {e}")))?;
    let meta: mc::ReadCanisterSnapshotMetadataResult = candid::decode_one(&meta_bytes)
        .map_err(|e| CliError::Usage(format!("backup metadata: {e}")))?;
    let globals = meta
        .globals
        .iter()
        .cloned()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            CliError::Usage("the backup holds a global of a type the IC cannot restore".into())
        })?;
    let uploaded: mc::UploadCanisterSnapshotMetadataResult = update(
        ic,
        "upload_canister_snapshot_metadata",
        &mc::UploadCanisterSnapshotMetadataArgs {
            canister_id: canister,
            replace_snapshot: None,
            wasm_module_size: meta.wasm_module_size,
            globals,
            wasm_memory_size: meta.wasm_memory_size,
            stable_memory_size: meta.stable_memory_size,
            certified_data: meta.certified_data.clone(),
            global_timer: meta.global_timer.clone(),
            on_low_wasm_memory_hook_status: meta.on_low_wasm_memory_hook_status.clone(),
        },
    )?;
    let id = uploaded.snapshot_id;
    let loaded = upload_and_load(ic, canister, &id, path, body_start, &header);
    // The uploaded snapshot served its purpose (or failed): it does not take a slot.
    let deleted = delete_snapshot(ic, canister, id);
    let bytes = loaded?;
    deleted?;
    Ok(BackupReport {
        header,
        file: path.display().to_string(),
        bytes,
        resumed: false,
    })
}

fn upload_and_load(
    ic: &dyn Ic,
    canister: Principal,
    id: &[u8],
    path: &Path,
    body_start: u64,
    header: &BackupHeader,
) -> Result<u64, CliError> {
    use crate::backend::Management;
    let mut file = File::open(path).map_err(io(path))?;
    file.seek(SeekFrom::Start(body_start)).map_err(io(path))?;
    let mut reader = BufReader::new(file);
    let put = |kind: mc::SnapshotDataOffset, chunk: Vec<u8>| -> Result<(), CliError> {
        update::<_, ()>(
            ic,
            "upload_canister_snapshot_data",
            &mc::UploadCanisterSnapshotDataArgs {
                canister_id: canister,
                snapshot_id: id.to_vec(),
                kind,
                chunk,
            },
        )
    };
    type Offset = fn(u64) -> mc::SnapshotDataOffset;
    let sections: [(u64, Offset); 3] = [
        (header.wasm_module_size, |offset| {
            mc::SnapshotDataOffset::WasmModule { offset }
        }),
        (header.wasm_memory_size, |offset| {
            mc::SnapshotDataOffset::WasmMemory { offset }
        }),
        (header.stable_memory_size, |offset| {
            mc::SnapshotDataOffset::StableMemory { offset }
        }),
    ];
    let mut total = 0;
    for (len, kind) in sections {
        let mut offset = 0;
        while offset < len {
            let size = SLICE.min(len - offset);
            let mut buf = vec![0u8; size as usize];
            reader.read_exact(&mut buf).map_err(io(path))?;
            put(kind(offset), buf)?;
            offset += size;
        }
        total += len;
    }
    for (_, len) in &header.chunks {
        let mut buf = vec![0u8; *len as usize];
        reader.read_exact(&mut buf).map_err(io(path))?;
        put(mc::SnapshotDataOffset::WasmChunk, buf)?;
        total += len;
    }
    ic.stop_canister(canister).map_err(call("stop_canister"))?;
    let loaded = ic
        .load_canister_snapshot(canister, id.to_vec())
        .map_err(call("load_canister_snapshot"));
    // Started again whatever the load did: the canister never stays stopped.
    ic.start_canister(canister)
        .map_err(call("start_canister"))?;
    loaded?;
    Ok(total)
}
