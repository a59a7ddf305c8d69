//! Snapshot download and upload (interface spec, "IC method read_canister_snapshot_metadata",
//! "IC method read_canister_snapshot_data", "IC method upload_canister_snapshot_metadata",
//! "IC method upload_canister_snapshot_data", "IC method load_canister_snapshot"): a snapshot
//! read out in slices and uploaded again, to another canister or the same one, loads into the
//! state it was taken from.

use candid::{encode_args, encode_one, Principal};
use ic_sim::management_canister::{
    ReadCanisterSnapshotDataArgs, ReadCanisterSnapshotMetadataArgs,
    ReadCanisterSnapshotMetadataResult, SnapshotDataKind, SnapshotDataOffset,
    SnapshotMetadataGlobal, SnapshotSource, UploadCanisterSnapshotDataArgs,
    UploadCanisterSnapshotMetadataArgs,
};
use ic_sim::{query_candid, update_candid, ErrorCode, IcSim, MAX_SNAPSHOT_SLICE};

fn probe(features: &[&str]) -> Vec<u8> {
    wasm_build::wasm("sim_probe", features)
}

/// A slice size that does not divide the sizes, so that reads and writes cross page borders.
const SLICE: u64 = 300_001;

/// Everything a canister's queries reveal about its state.
#[derive(Debug, PartialEq)]
struct Observed {
    version: String,
    counter: u64,
    ballast: (u64, u64),
    digest: u64,
    heap_bytes: u64,
    stable: Vec<u8>,
    module_hash: Option<[u8; 32]>,
}

fn observe(pic: &IcSim, id: Principal) -> Observed {
    let (version,): (String,) = query_candid(pic, id, "version", ()).unwrap();
    let (counter,): (u64,) = query_candid(pic, id, "get", ()).unwrap();
    let ballast: (u64, u64) = query_candid(pic, id, "ballast_sum", ()).unwrap();
    let (digest,): (u64,) = query_candid(pic, id, "memory_digest", ()).unwrap();
    let (heap_bytes,): (u64,) = query_candid(pic, id, "heap_bytes", ()).unwrap();
    let (stable,): (Vec<u8>,) = query_candid(pic, id, "stable_get", (0u64, 196_608u64)).unwrap();
    Observed {
        version,
        counter,
        ballast,
        digest,
        heap_bytes,
        stable,
        module_hash: pic.module_hash(id),
    }
}

/// A canister with a counter, 700 KiB of heap ballast, 3 pages of stable memory and a chunk.
fn populated(pic: &IcSim) -> Principal {
    let id = pic.create_canister();
    pic.install_canister(id, probe(&[]), encode_one(Some(40u64)).unwrap(), None);
    for _ in 0..3 {
        let (_,): (u64,) = update_candid(pic, id, "inc", ()).unwrap();
    }
    let (_,): (u64,) = update_candid(pic, id, "ballast", (700u64,)).unwrap();
    let data: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8 + 2).collect();
    let () = update_candid(pic, id, "stable_put", (20_000u64, data)).unwrap();
    pic.upload_chunk(id, None, vec![9u8; 5_000]).unwrap();
    id
}

/// The byte-addressed parts of a snapshot, in this order: how to name a slice to read and a
/// position to write.
type Part = (
    fn(u64, u64) -> SnapshotDataKind,
    fn(u64) -> SnapshotDataOffset,
);
const WASM: usize = 0;
const HEAP: usize = 1;
const STABLE: usize = 2;
const PARTS: [Part; 3] = [
    (
        |offset, size| SnapshotDataKind::WasmModule { offset, size },
        |offset| SnapshotDataOffset::WasmModule { offset },
    ),
    (
        |offset, size| SnapshotDataKind::WasmMemory { offset, size },
        |offset| SnapshotDataOffset::WasmMemory { offset },
    ),
    (
        |offset, size| SnapshotDataKind::StableMemory { offset, size },
        |offset| SnapshotDataOffset::StableMemory { offset },
    ),
];

struct Download {
    meta: ReadCanisterSnapshotMetadataResult,
    /// Module, heap and stable memory (see [`PARTS`]).
    parts: [Vec<u8>; 3],
    chunks: Vec<Vec<u8>>,
}

fn read_all(
    pic: &IcSim,
    id: Principal,
    snapshot_id: &[u8],
    total: u64,
    kind: fn(u64, u64) -> SnapshotDataKind,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < total {
        let size = SLICE.min(total - offset);
        let args = ReadCanisterSnapshotDataArgs {
            canister_id: id,
            snapshot_id: snapshot_id.to_vec(),
            kind: kind(offset, size),
        };
        let chunk = pic.read_canister_snapshot_data(None, &args).unwrap();
        assert_eq!(chunk.len() as u64, size);
        out.extend_from_slice(&chunk);
        offset += size;
    }
    out
}

fn download(pic: &IcSim, id: Principal, snapshot_id: &[u8]) -> Download {
    let meta = pic
        .read_canister_snapshot_metadata(
            None,
            &ReadCanisterSnapshotMetadataArgs {
                canister_id: id,
                snapshot_id: snapshot_id.to_vec(),
            },
        )
        .unwrap();
    let sizes = [
        meta.wasm_module_size,
        meta.wasm_memory_size,
        meta.stable_memory_size,
    ];
    let parts = std::array::from_fn(|i| read_all(pic, id, snapshot_id, sizes[i], PARTS[i].0));
    let chunks = meta
        .wasm_chunk_store
        .iter()
        .map(|h| {
            let args = ReadCanisterSnapshotDataArgs {
                canister_id: id,
                snapshot_id: snapshot_id.to_vec(),
                kind: SnapshotDataKind::WasmChunk {
                    hash: h.hash.clone(),
                },
            };
            pic.read_canister_snapshot_data(None, &args).unwrap()
        })
        .collect();
    Download {
        meta,
        parts,
        chunks,
    }
}

fn write_all(
    pic: &IcSim,
    id: Principal,
    snapshot_id: &[u8],
    data: &[u8],
    kind: fn(u64) -> SnapshotDataOffset,
) {
    for (i, chunk) in data.chunks(SLICE as usize).enumerate() {
        let args = UploadCanisterSnapshotDataArgs {
            canister_id: id,
            snapshot_id: snapshot_id.to_vec(),
            kind: kind(i as u64 * SLICE),
            chunk: chunk.to_vec(),
        };
        pic.upload_canister_snapshot_data(None, &args).unwrap();
    }
}

/// Uploads the module, heap and stable memory of `d` into the uploaded snapshot.
fn write_parts(pic: &IcSim, id: Principal, snapshot_id: &[u8], d: &Download) {
    for (part, data) in PARTS.iter().zip(&d.parts) {
        write_all(pic, id, snapshot_id, data, part.1);
    }
}

fn metadata_args(d: &Download, id: Principal) -> UploadCanisterSnapshotMetadataArgs {
    UploadCanisterSnapshotMetadataArgs {
        canister_id: id,
        replace_snapshot: None,
        wasm_module_size: d.meta.wasm_module_size,
        globals: d.meta.globals.iter().map(|g| g.clone().unwrap()).collect(),
        wasm_memory_size: d.meta.wasm_memory_size,
        stable_memory_size: d.meta.stable_memory_size,
        certified_data: d.meta.certified_data.clone(),
        global_timer: d.meta.global_timer.clone(),
        on_low_wasm_memory_hook_status: None,
    }
}

fn upload(pic: &IcSim, id: Principal, d: &Download) -> Vec<u8> {
    let snapshot_id = pic
        .upload_canister_snapshot_metadata(None, &metadata_args(d, id))
        .unwrap();
    write_parts(pic, id, &snapshot_id, d);
    for chunk in &d.chunks {
        let args = UploadCanisterSnapshotDataArgs {
            canister_id: id,
            snapshot_id: snapshot_id.clone(),
            kind: SnapshotDataOffset::WasmChunk,
            chunk: chunk.clone(),
        };
        pic.upload_canister_snapshot_data(None, &args).unwrap();
    }
    snapshot_id
}

#[test]
fn a_downloaded_snapshot_uploaded_to_another_canister_loads_the_same_state() {
    let pic = IcSim::new();
    let a = populated(&pic);
    let original = observe(&pic, a);
    assert_eq!(original.counter, 43);
    pic.stop_canister(a, None).unwrap();
    let snap = pic.take_canister_snapshot(a, None, None).unwrap();
    pic.start_canister(a, None).unwrap();

    let d = download(&pic, a, &snap.id);
    assert_eq!(
        d.meta.source,
        Some(SnapshotSource::TakenFromCanister(candid::Reserved))
    );
    assert_eq!(d.parts[WASM], probe(&[]), "the module as installed");
    assert_eq!(d.meta.wasm_memory_size, original.heap_bytes);
    assert_eq!(d.parts[HEAP].len() as u64, original.heap_bytes);
    assert_eq!(d.meta.stable_memory_size, 3 * 65536);
    assert_eq!(
        d.parts[STABLE][20_000..20_010],
        [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    );
    assert_eq!(d.chunks, vec![vec![9u8; 5_000]]);
    assert!(!d.meta.globals.is_empty(), "the stack pointer at least");
    assert!(d
        .meta
        .globals
        .iter()
        .all(|g| matches!(g, Some(SnapshotMetadataGlobal::I32(_)))));

    let b = pic.create_canister();
    let uploaded = upload(&pic, b, &d);
    let listed = pic.list_canister_snapshots(b, None).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, uploaded);
    pic.load_canister_snapshot(b, None, uploaded.clone())
        .unwrap();
    assert_eq!(observe(&pic, b), original, "heap, stable memory and module");
    assert_eq!(
        pic.stored_chunks(b, None).unwrap(),
        pic.stored_chunks(a, None).unwrap()
    );
    let (n,): (u64,) = update_candid(&pic, b, "inc", ()).unwrap();
    assert_eq!(n, 44, "the loaded canister runs on");

    // The uploaded snapshot downloads as what was uploaded, marked as an upload.
    let again = download(&pic, b, &uploaded);
    assert_eq!(
        again.meta.source,
        Some(SnapshotSource::MetadataUpload(candid::Reserved))
    );
    assert_eq!(again.parts, d.parts);
}

#[test]
fn a_snapshot_uploaded_to_its_own_canister_restores_it() {
    let pic = IcSim::new();
    let a = populated(&pic);
    let original = observe(&pic, a);
    let snap = pic.take_canister_snapshot(a, None, None).unwrap();
    let d = download(&pic, a, &snap.id);
    // Replace the snapshot it came from: the limit of 10 snapshots is not reached.
    let mut args = metadata_args(&d, a);
    args.replace_snapshot = Some(snap.id.clone());
    let uploaded = pic.upload_canister_snapshot_metadata(None, &args).unwrap();
    let ids: Vec<Vec<u8>> = pic
        .list_canister_snapshots(a, None)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec![uploaded.clone()], "the replaced snapshot is gone");
    write_parts(&pic, a, &uploaded, &d);

    for _ in 0..5 {
        let (_,): (u64,) = update_candid(&pic, a, "inc", ()).unwrap();
    }
    let () = update_candid(&pic, a, "stable_put", (20_000u64, vec![0u8; 100])).unwrap();
    pic.upgrade_canister(a, probe(&["v2"]), encode_args(()).unwrap(), None)
        .unwrap();
    assert_ne!(observe(&pic, a), original);

    pic.load_canister_snapshot(a, None, uploaded).unwrap();
    assert_eq!(observe(&pic, a), original);
}

#[test]
fn snapshot_transfer_is_checked() {
    let pic = IcSim::new();
    let a = populated(&pic);
    let snap = pic.take_canister_snapshot(a, None, None).unwrap();
    let read = |sender: Option<Principal>, kind: SnapshotDataKind| {
        pic.read_canister_snapshot_data(
            sender,
            &ReadCanisterSnapshotDataArgs {
                canister_id: a,
                snapshot_id: snap.id.clone(),
                kind,
            },
        )
    };
    // Controllers only.
    let stranger = Principal::from_slice(&[7; 29]);
    let err = read(
        Some(stranger),
        SnapshotDataKind::WasmModule { offset: 0, size: 8 },
    )
    .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterInvalidController);
    let meta_args = ReadCanisterSnapshotMetadataArgs {
        canister_id: a,
        snapshot_id: snap.id.clone(),
    };
    let err = pic
        .read_canister_snapshot_metadata(Some(stranger), &meta_args)
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterInvalidController);
    // Slices: at most 2 MB, within the data.
    let err = read(
        None,
        SnapshotDataKind::WasmMemory {
            offset: 0,
            size: MAX_SNAPSHOT_SLICE + 1,
        },
    )
    .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::InvalidManagementPayload);
    assert!(err.reject_message.contains("too large"), "{err}");
    let err = read(
        None,
        SnapshotDataKind::StableMemory {
            offset: 3 * 65536 - 4,
            size: 8,
        },
    )
    .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::InvalidManagementPayload);
    let err = read(None, SnapshotDataKind::WasmChunk { hash: vec![0; 32] }).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::InvalidManagementPayload);
    let err = pic
        .read_canister_snapshot_metadata(
            None,
            &ReadCanisterSnapshotMetadataArgs {
                canister_id: a,
                snapshot_id: vec![1, 2, 3],
            },
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterSnapshotNotFound);

    // A taken snapshot is immutable.
    let err = pic
        .upload_canister_snapshot_data(
            None,
            &UploadCanisterSnapshotDataArgs {
                canister_id: a,
                snapshot_id: snap.id.clone(),
                kind: SnapshotDataOffset::StableMemory { offset: 0 },
                chunk: vec![1],
            },
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterSnapshotImmutable);

    // Metadata: memory sizes are whole wasm pages; uploads stay within them.
    let d = download(&pic, a, &snap.id);
    let mut bad = metadata_args(&d, a);
    bad.wasm_memory_size += 1;
    let err = pic
        .upload_canister_snapshot_metadata(None, &bad)
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::InvalidManagementPayload);
    let mut wrong_globals = metadata_args(&d, a);
    wrong_globals.globals.push(SnapshotMetadataGlobal::I64(1));
    let uploaded = upload_with(&pic, a, &d, wrong_globals);
    let err = pic
        .upload_canister_snapshot_data(
            None,
            &UploadCanisterSnapshotDataArgs {
                canister_id: a,
                snapshot_id: uploaded.clone(),
                kind: SnapshotDataOffset::StableMemory {
                    offset: d.meta.stable_memory_size - 1,
                },
                chunk: vec![1, 2],
            },
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::InvalidManagementPayload);
    // A snapshot whose globals do not fit its module does not load; the canister is unchanged.
    let before = observe(&pic, a);
    let err = pic.load_canister_snapshot(a, None, uploaded).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::InvalidManagementPayload);
    assert!(err.reject_message.contains("globals"), "{err}");
    assert_eq!(observe(&pic, a), before);
    // An upload whose module was never written does not load.
    let empty = pic
        .upload_canister_snapshot_metadata(None, &metadata_args(&d, a))
        .unwrap();
    let err = pic.load_canister_snapshot(a, None, empty).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterInvalidWasm);
}

fn upload_with(
    pic: &IcSim,
    id: Principal,
    d: &Download,
    args: UploadCanisterSnapshotMetadataArgs,
) -> Vec<u8> {
    let snapshot_id = pic.upload_canister_snapshot_metadata(None, &args).unwrap();
    write_all(pic, id, &snapshot_id, &d.parts[WASM], PARTS[WASM].1);
    snapshot_id
}
