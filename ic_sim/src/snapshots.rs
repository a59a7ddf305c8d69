//! Canister snapshots (interface spec, "IC method take_canister_snapshot" through "IC method
//! upload_canister_snapshot_data"): take, load, list, delete, and the download and upload of a
//! snapshot's metadata and data, on which backups and rehearsals on real state are built.
//!
//! A taken snapshot shares the canister's pages (heap, stable memory) and compiled module. An
//! uploaded snapshot keeps the bytes it was given (module, heap content, stable memory) and is
//! turned into a heap for its module when it is loaded: until then the module is not known to
//! be valid, so checks that need it (the module compiles, the heap is at least the module's
//! initial memory, the globals match the module's mutable globals) happen at load time.

use std::collections::BTreeMap;
use std::sync::Arc;

use candid::{CandidType, Nat, Principal};
use ic_management_canister_types as mgmt;
use mgmt::{ChangeDetails, SnapshotDataKind, SnapshotDataOffset, SnapshotMetadataGlobal};
use serde::Deserialize;
use wasmi::Val;

use crate::costs::{self, SNAPSHOT_DATA_BASELINE_INSTRUCTIONS};
use crate::errors::{ErrorCode, RejectResponse};
use crate::exec::Heap;
use crate::management::{decode, encode, hex, rejected, Reply, MAX_CHUNKS, MAX_CHUNK_SIZE};
use crate::memory::{PageMap, StableMemory, MAX_STABLE_BYTES};
use crate::module::{self, sha256, CanisterModule, MAX_WASM_SIZE, WASM_PAGE_SIZE};
use crate::sim::{empty_reply, Sim};

/// Snapshots per canister (IC configuration: 10).
pub const MAX_SNAPSHOTS: usize = 10;
/// Largest slice one `read_canister_snapshot_data` returns or one
/// `upload_canister_snapshot_data` writes (the replica's `MAX_SLICE_SIZE_BYTES`, 2 MB: a reply
/// or request must fit in a message).
pub const MAX_SNAPSHOT_SLICE: u64 = 2_000_000;
/// Largest wasm heap: 32-bit memories hold at most 4 GiB.
const MAX_WASM_MEMORY: u64 = 4 << 30;
/// Largest certified data (interface spec, "Certified data": at most 32 bytes).
const MAX_CERTIFIED_DATA: usize = 32;

#[derive(Clone)]
pub(crate) struct SnapshotData {
    pub id: Vec<u8>,
    pub taken_at: u64,
    pub canister_version: u64,
    pub module: Option<Arc<CanisterModule>>,
    pub heap: Heap,
    pub stable: Arc<PageMap>,
    pub stable_pages: u64,
    pub certified_data: Vec<u8>,
    /// The global timer (0: inactive); `None` only for an upload that did not set it, whose
    /// load then keeps the canister's timer (spec, "IC method upload_canister_snapshot_metadata").
    pub global_timer: Option<u64>,
    pub chunks: BTreeMap<[u8; 32], Vec<u8>>,
    pub size: u64,
    /// Set for snapshots created by metadata upload: the bytes uploaded so far.
    pub upload: Option<Box<Uploaded>>,
}

/// `upload_canister_snapshot_data`'s argument, wire-identical to
/// [`mgmt::UploadCanisterSnapshotDataArgs`] with the chunk decoded as one blob (the upstream
/// type declares it a plain `Vec<u8>`, which candid decodes one element at a time).
#[derive(CandidType, Deserialize)]
struct UploadDataArgs {
    canister_id: Principal,
    #[serde(with = "serde_bytes")]
    snapshot_id: Vec<u8>,
    kind: SnapshotDataOffset,
    #[serde(with = "serde_bytes")]
    chunk: Vec<u8>,
}

/// The state of a snapshot created by `upload_canister_snapshot_metadata`.
#[derive(Clone)]
pub(crate) struct Uploaded {
    wasm: Vec<u8>,
    /// Heap content, zeros where nothing was uploaded, `heap_pages` wasm pages long.
    heap: Arc<PageMap>,
    heap_pages: u64,
    globals: Vec<SnapshotMetadataGlobal>,
}

impl SnapshotData {
    fn wasm(&self) -> &[u8] {
        match (&self.upload, &self.module) {
            (Some(up), _) => &up.wasm,
            (None, Some(m)) => &m.installed,
            (None, None) => &[],
        }
    }

    fn heap_bytes(&self) -> u64 {
        match &self.upload {
            Some(up) => up.heap_pages * WASM_PAGE_SIZE,
            None => self.heap.size_bytes as u64,
        }
    }

    fn source(&self) -> mgmt::SnapshotSource {
        match self.upload {
            Some(_) => mgmt::SnapshotSource::MetadataUpload(candid::Reserved),
            None => mgmt::SnapshotSource::TakenFromCanister(candid::Reserved),
        }
    }

    fn globals(&self) -> Vec<Option<SnapshotMetadataGlobal>> {
        match &self.upload {
            Some(up) => up.globals.iter().cloned().map(Some).collect(),
            None => self.heap.globals.iter().map(global_of).collect(),
        }
    }

    fn metadata(&self) -> mgmt::ReadCanisterSnapshotMetadataResult {
        mgmt::ReadCanisterSnapshotMetadataResult {
            source: Some(self.source()),
            taken_at_timestamp: self.taken_at,
            wasm_module_size: self.wasm().len() as u64,
            globals: self.globals(),
            wasm_memory_size: self.heap_bytes(),
            stable_memory_size: self.stable_pages * WASM_PAGE_SIZE,
            wasm_chunk_store: self
                .chunks
                .keys()
                .map(|h| mgmt::ChunkHash { hash: h.to_vec() })
                .collect(),
            canister_version: self.canister_version,
            certified_data: self.certified_data.clone(),
            global_timer: self.global_timer.map(|t| match t {
                0 => mgmt::CanisterTimer::Inactive,
                at => mgmt::CanisterTimer::Active(at),
            }),
            // The simulator does not run the on-low-wasm-memory hook, so it has no status.
            on_low_wasm_memory_hook_status: None,
        }
    }

    fn total_size(&self) -> u64 {
        let chunks: usize = self.chunks.values().map(Vec::len).sum();
        self.wasm().len() as u64
            + self.heap_bytes()
            + self.stable_pages * WASM_PAGE_SIZE
            + chunks as u64
    }
}

/// A global as the snapshot metadata carries it; reference-typed globals have no candid form.
fn global_of(v: &Val) -> Option<SnapshotMetadataGlobal> {
    Some(match v {
        Val::I32(x) => SnapshotMetadataGlobal::I32(*x),
        Val::I64(x) => SnapshotMetadataGlobal::I64(*x),
        Val::F32(x) => SnapshotMetadataGlobal::F32(f32::from_bits(x.to_bits())),
        Val::F64(x) => SnapshotMetadataGlobal::F64(f64::from_bits(x.to_bits())),
        Val::V128(x) => SnapshotMetadataGlobal::V128(Nat::from(x.as_u128())),
        Val::FuncRef(_) | Val::ExternRef(_) => return None,
    })
}

/// The value of an uploaded global for a module global whose current value is `like` (which
/// gives the type), or why it does not fit.
fn val_of(g: &SnapshotMetadataGlobal, like: &Val) -> Result<Val, String> {
    Ok(match (g, like) {
        (SnapshotMetadataGlobal::I32(x), Val::I32(_)) => Val::I32(*x),
        (SnapshotMetadataGlobal::I64(x), Val::I64(_)) => Val::I64(*x),
        (SnapshotMetadataGlobal::F32(x), Val::F32(_)) => {
            Val::F32(wasmi::F32::from_bits(x.to_bits()))
        }
        (SnapshotMetadataGlobal::F64(x), Val::F64(_)) => {
            Val::F64(wasmi::F64::from_bits(x.to_bits()))
        }
        (SnapshotMetadataGlobal::V128(n), Val::V128(_)) => {
            let v = u128::try_from(&n.0).map_err(|_| "a v128 global exceeds 128 bits")?;
            Val::V128(v.into())
        }
        (g, like) => {
            return Err(format!(
                "global {g:?} does not match the module's global of type {:?}",
                like.ty()
            ))
        }
    })
}

fn snapshot_not_found(canister: &Principal, id: &[u8]) -> RejectResponse {
    RejectResponse::new(
        ErrorCode::CanisterSnapshotNotFound,
        format!(
            "Could not find the snapshot ID {} for canister {canister}",
            hex(id)
        ),
    )
}

fn invalid(message: impl Into<String>) -> RejectResponse {
    RejectResponse::new(ErrorCode::InvalidManagementPayload, message)
}

/// Checks that `[offset, offset + size)` lies within `len` bytes (the replica's message for a
/// slice outside the data).
fn check_slice(offset: u64, size: u64, len: u64) -> Result<(), RejectResponse> {
    match offset.checked_add(size) {
        Some(end) if end <= len => Ok(()),
        _ => Err(invalid(format!(
            "Invalid subslice into wasm module / main memory / stable memory: offset: {offset}, size: {size}"
        ))),
    }
}

fn check_slice_size(size: u64) -> Result<(), RejectResponse> {
    if size > MAX_SNAPSHOT_SLICE {
        return Err(invalid(format!(
            "Requested slice too large: {size} > {MAX_SNAPSHOT_SLICE}"
        )));
    }
    Ok(())
}

/// A memory size that must be whole wasm pages within `max` bytes; returns the pages.
fn memory_pages(what: &str, bytes: u64, max: u64) -> Result<u64, RejectResponse> {
    if !bytes.is_multiple_of(WASM_PAGE_SIZE) || bytes > max {
        return Err(invalid(format!(
            "Invalid snapshot metadata: {what} of {bytes} bytes must be a multiple of the wasm page size ({WASM_PAGE_SIZE}) and at most {max}"
        )));
    }
    Ok(bytes / WASM_PAGE_SIZE)
}

/// Writes `data` at `offset` into a zero-based page map of `pages` wasm pages.
fn write_pages(map: &mut Arc<PageMap>, pages: u64, offset: u64, data: &[u8]) {
    let mut mem = StableMemory::new(map.clone(), pages);
    mem.write(offset, data)
        .expect("bounds checked by the caller");
    mem.commit(map);
}

impl Sim {
    /// The snapshot methods of the management canister.
    pub(crate) fn snapshot_method(&mut self, method: &str, sender: Principal, arg: &[u8]) -> Reply {
        match method {
            "take_canister_snapshot" => {
                let args: mgmt::TakeCanisterSnapshotArgs = decode(arg)?;
                let snap = self.take_snapshot(sender, &args)?;
                Ok(Some(encode(&snap)))
            }
            "load_canister_snapshot" => {
                let args: mgmt::LoadCanisterSnapshotArgs = decode(arg)?;
                self.load_snapshot(sender, args.canister_id, &args.snapshot_id)?;
                Ok(Some(empty_reply()))
            }
            "list_canister_snapshots" => {
                let args: mgmt::CanisterIdRecord = decode(arg)?;
                let c = self.controlled(&args.canister_id, &sender)?;
                let list: Vec<mgmt::Snapshot> = c.snapshots.iter().map(snapshot_info).collect();
                Ok(Some(encode(&list)))
            }
            "delete_canister_snapshot" => {
                let args: mgmt::DeleteCanisterSnapshotArgs = decode(arg)?;
                self.controlled(&args.canister_id, &sender)?;
                let c = self.canisters.get_mut(&args.canister_id).expect("checked");
                let before = c.snapshots.len();
                c.snapshots.retain(|s| s.id != args.snapshot_id);
                if c.snapshots.len() == before {
                    return Err(snapshot_not_found(&args.canister_id, &args.snapshot_id));
                }
                Ok(Some(empty_reply()))
            }
            "read_canister_snapshot_metadata" => {
                let args: mgmt::ReadCanisterSnapshotMetadataArgs = decode(arg)?;
                let snap = self.snapshot(sender, &args.canister_id, &args.snapshot_id)?;
                Ok(Some(encode(&snap.metadata())))
            }
            "read_canister_snapshot_data" => {
                let args: mgmt::ReadCanisterSnapshotDataArgs = decode(arg)?;
                let snap = self.snapshot(sender, &args.canister_id, &args.snapshot_id)?;
                let chunk = read_data(snap, &args.kind)?;
                self.charge_snapshot(
                    &args.canister_id,
                    SNAPSHOT_DATA_BASELINE_INSTRUCTIONS + chunk.len() as u64,
                )?;
                Ok(Some(encode(&mgmt::ReadCanisterSnapshotDataResult {
                    chunk,
                })))
            }
            "upload_canister_snapshot_metadata" => {
                let args: mgmt::UploadCanisterSnapshotMetadataArgs = decode(arg)?;
                let snapshot_id = self.upload_metadata(sender, args)?;
                Ok(Some(encode(&mgmt::UploadCanisterSnapshotMetadataResult {
                    snapshot_id,
                })))
            }
            "upload_canister_snapshot_data" => {
                let args: UploadDataArgs = decode(arg)?;
                self.upload_data(sender, args)?;
                Ok(Some(empty_reply()))
            }
            other => Err(RejectResponse::new(
                ErrorCode::CanisterMethodNotFound,
                format!("Management canister has no snapshot method '{other}'"),
            )),
        }
    }

    /// A snapshot of a canister the sender controls (the simulator has no
    /// `snapshot_visibility` setting: reading is for controllers, the spec's default).
    fn snapshot(
        &self,
        sender: Principal,
        canister: &Principal,
        snapshot_id: &[u8],
    ) -> Result<&SnapshotData, RejectResponse> {
        let c = self.controlled(canister, &sender)?;
        c.snapshots
            .iter()
            .find(|s| s.id == snapshot_id)
            .ok_or_else(|| snapshot_not_found(canister, snapshot_id))
    }

    /// A fresh snapshot id (a counter, then the canister's id) and room for one more snapshot
    /// (spec, "IC method take_canister_snapshot": `replace_snapshot` must name an existing one;
    /// without it the canister must be below the limit).
    fn new_snapshot_id(
        &mut self,
        canister: &Principal,
        sender: Principal,
        replace: Option<&Vec<u8>>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let c = self.controlled(canister, &sender)?;
        if let Some(old) = replace {
            if !c.snapshots.iter().any(|s| &s.id == old) {
                return Err(snapshot_not_found(canister, old));
            }
        } else if c.snapshots.len() >= MAX_SNAPSHOTS {
            return Err(rejected(format!(
                "Canister {canister} has reached the maximum number of snapshots allowed: {MAX_SNAPSHOTS}."
            )));
        }
        let local = self.next_snapshot;
        self.next_snapshot += 1;
        let mut id = local.to_be_bytes().to_vec();
        id.extend_from_slice(canister.as_slice());
        Ok(id)
    }

    /// Stores `snap` on `canister`, removing the snapshot it replaces.
    fn store_snapshot(&mut self, canister: &Principal, snap: SnapshotData, replace: Option<&[u8]>) {
        let c = self.canisters.get_mut(canister).expect("checked");
        if let Some(old) = replace {
            c.snapshots.retain(|s| s.id != old);
        }
        c.snapshots.push(snap);
    }

    fn take_snapshot(
        &mut self,
        sender: Principal,
        args: &mgmt::TakeCanisterSnapshotArgs,
    ) -> Result<mgmt::Snapshot, RejectResponse> {
        let id = self.new_snapshot_id(&args.canister_id, sender, args.replace_snapshot.as_ref())?;
        let c = &self.canisters[&args.canister_id];
        let mut snap = SnapshotData {
            id,
            taken_at: self.time,
            canister_version: c.version,
            module: c.module.clone(),
            heap: c.heap.clone(),
            stable: c.stable.clone(),
            stable_pages: c.stable_pages,
            certified_data: c.certified_data.clone(),
            global_timer: Some(c.global_timer),
            chunks: c.chunks.clone(),
            size: 0,
            upload: None,
        };
        snap.size = snap.total_size();
        // Counts against the round's budget for subnet messages (replica: the snapshot
        // baseline plus its bytes; see the scheduler), and is charged to the canister.
        let instructions = self.limits.snapshot_instructions + snap.size;
        self.charge_snapshot(&args.canister_id, instructions)?;
        self.mgmt_instructions += instructions;
        let info = snapshot_info(&snap);
        self.store_snapshot(&args.canister_id, snap, args.replace_snapshot.as_deref());
        if args.uninstall_code == Some(true) {
            self.uninstall(sender, args.canister_id);
        }
        Ok(info)
    }

    /// Charges a snapshot operation's `instructions` to `canister` as an execution, as the
    /// replica's `consume_cycles_for_instructions` does: a canister that would fall below its
    /// freezing threshold is refused with `CanisterOutOfCycles` and charged nothing
    /// (`CanisterSnapshotNotEnoughCycles` in dfinity/ic
    /// `rs/execution_environment/src/canister_manager/types.rs`).
    fn charge_snapshot(
        &mut self,
        canister: &Principal,
        instructions: u64,
    ) -> Result<(), RejectResponse> {
        let fee = costs::execution_fee(instructions);
        let c = self.canisters.get_mut(canister).expect("checked");
        let needed = c.freezing_reserve() + fee;
        if c.cycles < needed {
            return Err(RejectResponse::new(
                ErrorCode::CanisterOutOfCycles,
                format!(
                    "Canister snapshotting failed with: `Canister {canister} is out of cycles: please top up the canister with at least {} additional cycles`",
                    needed - c.cycles
                ),
            ));
        }
        c.cycles -= fee;
        Ok(())
    }

    /// Creates an empty uploaded snapshot of the given sizes (spec, "IC method
    /// upload_canister_snapshot_metadata").
    fn upload_metadata(
        &mut self,
        sender: Principal,
        args: mgmt::UploadCanisterSnapshotMetadataArgs,
    ) -> Result<Vec<u8>, RejectResponse> {
        self.controlled(&args.canister_id, &sender)?;
        if args.wasm_module_size > MAX_WASM_SIZE {
            return Err(invalid(format!(
                "Invalid snapshot metadata: wasm module size {} exceeds {MAX_WASM_SIZE}",
                args.wasm_module_size
            )));
        }
        let heap_pages = memory_pages("wasm memory", args.wasm_memory_size, MAX_WASM_MEMORY)?;
        let stable_pages =
            memory_pages("stable memory", args.stable_memory_size, MAX_STABLE_BYTES)?;
        if args.certified_data.len() > MAX_CERTIFIED_DATA {
            return Err(invalid(format!(
                "Invalid snapshot metadata: certified data of {} bytes exceeds {MAX_CERTIFIED_DATA}",
                args.certified_data.len()
            )));
        }
        if let Some(status) = &args.on_low_wasm_memory_hook_status {
            if !matches!(
                status,
                mgmt::OnLowWasmMemoryHookStatus::ConditionNotSatisfied
            ) {
                return Err(invalid(format!(
                    "Snapshot metadata with on_low_wasm_memory hook status {status:?} is not supported by ic_sim: it does not run the on_low_wasm_memory hook"
                )));
            }
        }
        let id = self.new_snapshot_id(&args.canister_id, sender, args.replace_snapshot.as_ref())?;
        let c = &self.canisters[&args.canister_id];
        let mut snap = SnapshotData {
            id: id.clone(),
            taken_at: self.time,
            canister_version: c.version,
            module: None,
            heap: Heap::default(),
            stable: Arc::new(PageMap::default()),
            stable_pages,
            certified_data: args.certified_data,
            global_timer: args.global_timer.map(|t| match t {
                mgmt::CanisterTimer::Inactive => 0,
                mgmt::CanisterTimer::Active(at) => at,
            }),
            chunks: BTreeMap::new(),
            size: 0,
            upload: Some(Box::new(Uploaded {
                wasm: vec![0; args.wasm_module_size as usize],
                heap: Arc::new(PageMap::default()),
                heap_pages,
                globals: args.globals,
            })),
        };
        snap.size = snap.total_size();
        self.store_snapshot(&args.canister_id, snap, args.replace_snapshot.as_deref());
        Ok(id)
    }

    /// Writes one slice into an uploaded snapshot (spec, "IC method
    /// upload_canister_snapshot_data").
    fn upload_data(
        &mut self,
        sender: Principal,
        args: UploadDataArgs,
    ) -> Result<(), RejectResponse> {
        let snap = self.snapshot(sender, &args.canister_id, &args.snapshot_id)?;
        if snap.upload.is_none() {
            return Err(RejectResponse::new(
                ErrorCode::CanisterSnapshotImmutable,
                "Only canister snapshots created by metadata upload can be mutated.",
            ));
        }
        let chunk = args.chunk;
        let len = chunk.len() as u64;
        if matches!(args.kind, SnapshotDataOffset::WasmChunk) {
            if chunk.len() > MAX_CHUNK_SIZE {
                return Err(invalid(format!(
                    "Wasm chunk size {} exceeds the maximum of {MAX_CHUNK_SIZE} bytes",
                    chunk.len()
                )));
            }
            if snap.chunks.len() >= MAX_CHUNKS && !snap.chunks.contains_key(&sha256(&chunk)) {
                return Err(rejected(format!(
                    "Wasm chunk store of the snapshot is full: at most {MAX_CHUNKS} chunks"
                )));
            }
        } else {
            check_slice_size(len)?;
        }
        let stable_bytes = snap.stable_pages * WASM_PAGE_SIZE;
        self.charge_snapshot(&args.canister_id, SNAPSHOT_DATA_BASELINE_INSTRUCTIONS + len)?;
        let c = self.canisters.get_mut(&args.canister_id).expect("checked");
        let snap = c
            .snapshots
            .iter_mut()
            .find(|s| s.id == args.snapshot_id)
            .expect("checked");
        let up = snap.upload.as_mut().expect("checked");
        match args.kind {
            SnapshotDataOffset::WasmModule { offset } => {
                check_slice(offset, len, up.wasm.len() as u64)?;
                up.wasm[offset as usize..(offset + len) as usize].copy_from_slice(&chunk);
            }
            SnapshotDataOffset::WasmMemory { offset } => {
                check_slice(offset, len, up.heap_pages * WASM_PAGE_SIZE)?;
                write_pages(&mut up.heap, up.heap_pages, offset, &chunk);
            }
            SnapshotDataOffset::StableMemory { offset } => {
                check_slice(offset, len, stable_bytes)?;
                write_pages(&mut snap.stable, snap.stable_pages, offset, &chunk);
            }
            SnapshotDataOffset::WasmChunk => {
                snap.chunks.insert(sha256(&chunk), chunk);
                snap.size = snap.total_size();
            }
        }
        Ok(())
    }

    /// Replaces the canister's module, heap, stable memory, chunk store, certified data and
    /// timer with the snapshot's (spec, "IC method load_canister_snapshot"). An uploaded
    /// snapshot's module must compile and its heap and globals must fit that module.
    fn load_snapshot(
        &mut self,
        sender: Principal,
        id: Principal,
        snapshot_id: &[u8],
    ) -> Result<(), RejectResponse> {
        let snap = self.snapshot(sender, &id, snapshot_id)?.clone();
        let instructions = self.limits.snapshot_instructions + snap.size;
        self.charge_snapshot(&id, instructions)?;
        self.mgmt_instructions += instructions;
        let (module, heap) = match &snap.upload {
            None => (snap.module.clone(), snap.heap.clone()),
            Some(up) => {
                let (module, heap) = restore_upload(&id, up)?;
                (Some(module), heap)
            }
        };
        let source = snap.source();
        let now = self.time;
        let sender_version = self.sender_version;
        self.instances.forget(&id);
        let c = self.canisters.get_mut(&id).expect("checked");
        c.module = module;
        c.heap = heap;
        c.stable = snap.stable;
        c.stable_pages = snap.stable_pages;
        c.certified_data = snap.certified_data;
        if let Some(timer) = snap.global_timer {
            c.global_timer = timer;
        }
        c.chunks = snap.chunks;
        c.version += 1;
        let version = c.version;
        c.record_change(
            now,
            sender,
            sender_version,
            ChangeDetails::LoadSnapshot(mgmt::LoadSnapshotRecord {
                from_canister_id: None,
                snapshot_id: snapshot_id.to_vec(),
                canister_version: version,
                taken_at_timestamp: snap.taken_at,
                source,
            }),
        );
        self.may_have_system_tasks(id);
        Ok(())
    }
}

/// The module and heap of an uploaded snapshot, or why they cannot run.
fn restore_upload(
    canister: &Principal,
    up: &Uploaded,
) -> Result<(Arc<CanisterModule>, Heap), RejectResponse> {
    let inconsistent = |m: String| invalid(format!("Snapshot is inconsistent: {m}"));
    let module = module::load(&up.wasm).map_err(|e| {
        RejectResponse::new(
            ErrorCode::CanisterInvalidWasm,
            format!("Error from Canister {canister}: Canister's Wasm module is not valid: {e}"),
        )
    })?;
    let heap_bytes = up.heap_pages * WASM_PAGE_SIZE;
    if heap_bytes < module.initial_memory.len() as u64 {
        return Err(inconsistent(format!(
            "wasm memory of {heap_bytes} bytes is smaller than the module's initial memory of {} bytes",
            module.initial_memory.len()
        )));
    }
    if up.globals.len() != module.initial_globals.len() {
        return Err(inconsistent(format!(
            "{} globals uploaded, the module has {} mutable globals",
            up.globals.len(),
            module.initial_globals.len()
        )));
    }
    let globals = up
        .globals
        .iter()
        .zip(&module.initial_globals)
        .map(|(g, like)| val_of(g, like))
        .collect::<Result<Vec<_>, _>>()
        .map_err(inconsistent)?;
    let heap = Heap::from_content(&module, &up.heap.pages, heap_bytes as usize, globals);
    Ok((module, heap))
}

/// One slice of a snapshot's data (spec, "IC method read_canister_snapshot_data").
fn read_data(snap: &SnapshotData, kind: &SnapshotDataKind) -> Result<Vec<u8>, RejectResponse> {
    match *kind {
        SnapshotDataKind::WasmModule { offset, size } => {
            check_slice_size(size)?;
            let wasm = snap.wasm();
            check_slice(offset, size, wasm.len() as u64)?;
            Ok(wasm[offset as usize..(offset + size) as usize].to_vec())
        }
        SnapshotDataKind::WasmMemory { offset, size } => {
            check_slice_size(size)?;
            check_slice(offset, size, snap.heap_bytes())?;
            Ok(match (&snap.upload, &snap.module) {
                (Some(up), _) => StableMemory::new(up.heap.clone(), up.heap_pages)
                    .read(offset, size)
                    .expect("bounds checked"),
                (None, Some(m)) => {
                    snap.heap
                        .read(&m.initial_memory, offset as usize, size as usize)
                }
                (None, None) => Vec::new(),
            })
        }
        SnapshotDataKind::StableMemory { offset, size } => {
            check_slice_size(size)?;
            check_slice(offset, size, snap.stable_pages * WASM_PAGE_SIZE)?;
            Ok(StableMemory::new(snap.stable.clone(), snap.stable_pages)
                .read(offset, size)
                .expect("bounds checked"))
        }
        SnapshotDataKind::WasmChunk { ref hash } => {
            let found = <[u8; 32]>::try_from(hash.as_slice())
                .ok()
                .and_then(|h| snap.chunks.get(&h));
            found.cloned().ok_or_else(|| {
                invalid(format!(
                    "The chunk with hash {} is not in the snapshot's wasm chunk store",
                    hex(hash)
                ))
            })
        }
    }
}

pub(crate) fn snapshot_info(s: &SnapshotData) -> mgmt::Snapshot {
    mgmt::Snapshot {
        id: s.id.clone(),
        taken_at_timestamp: s.taken_at,
        total_size: s.size,
    }
}
