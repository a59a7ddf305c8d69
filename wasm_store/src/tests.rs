//! Unit tests on `VectorMemory`: every upload rule, and that refused requests change nothing.

use std::io::Write;

use candid::Principal;
use ic_stable_structures::VectorMemory;
use sha2::{Digest, Sha256};

use crate::*;

const MIB: usize = 1024 * 1024;

fn uploader() -> Principal {
    Principal::from_slice(&[7; 29])
}

/// Five memories kept by the test, so the store can be reopened (as after an upgrade) and its
/// raw bytes compared before and after a refused request.
#[derive(Clone)]
struct Mems([VectorMemory; 5]);

impl Mems {
    fn new() -> Self {
        Mems(std::array::from_fn(|_| VectorMemory::default()))
    }

    fn open(&self, limits: StoreLimits) -> WasmStore<VectorMemory> {
        let [releases, uploads, chunks, by_sha256, interfaces] = self.0.clone();
        WasmStore::init(
            StoreMemories {
                releases,
                uploads,
                chunks,
                by_sha256,
                interfaces,
            },
            limits,
        )
    }

    fn bytes(&self) -> Vec<Vec<u8>> {
        self.0.iter().map(|m| m.borrow().clone()).collect()
    }
}

fn new_store() -> (Mems, WasmStore<VectorMemory>) {
    let mems = Mems::new();
    let store = mems.open(StoreLimits::default());
    (mems, store)
}

/// A module that starts with the wasm header and whose bytes differ per `seed` and position.
fn wasm_module(len: usize, seed: u8) -> Vec<u8> {
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    let mut x = seed as u32 * 2 + 1;
    while module.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        module.push((x >> 16) as u8);
    }
    module.truncate(len);
    module
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn sha(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

fn begin(version: &str, module: &[u8]) -> BeginUpload {
    BeginUpload {
        version: version.to_string(),
        total_size: module.len() as u64,
        sha256: sha(module),
        notes: format!("release {version}"),
        interface: None,
    }
}

fn put_all(store: &mut WasmStore<VectorMemory>, version: &str, module: &[u8]) {
    for (i, chunk) in module.chunks(MIB).enumerate() {
        store.put_chunk(version, i as u32, chunk.to_vec()).unwrap();
    }
}

fn publish(store: &mut WasmStore<VectorMemory>, version: &str, module: &[u8]) -> ReleaseMeta {
    store
        .begin_upload(begin(version, module), uploader(), 1)
        .unwrap();
    put_all(store, version, module);
    store.finalize(version, 2).unwrap()
}

/// Runs a request that must be refused with `expected` and checks that no byte of the store's
/// memories changed.
fn refused<T: std::fmt::Debug>(
    mems: &Mems,
    expected: StoreError,
    request: impl FnOnce() -> Result<T, StoreError>,
) {
    let before = mems.bytes();
    assert_eq!(request().unwrap_err(), expected);
    assert!(mems.bytes() == before, "refused request changed the store");
}

#[test]
fn multi_chunk_upload_in_any_order_round_trips() {
    let (_, mut store) = new_store();
    let module = wasm_module(2 * MIB + MIB / 2, 1);
    store
        .begin_upload(begin("1.0.0", &module), uploader(), 10)
        .unwrap();
    let chunks: Vec<&[u8]> = module.chunks(MIB).collect();
    for i in [2usize, 0, 1] {
        store
            .put_chunk("1.0.0", i as u32, chunks[i].to_vec())
            .unwrap();
    }
    let meta = store.finalize("1.0.0", 20).unwrap();
    assert_eq!(meta.version, "1.0.0");
    assert_eq!(meta.size, module.len() as u64);
    assert_eq!(meta.uncompressed_size, module.len() as u64);
    assert_eq!(meta.chunk_count, 3);
    assert_eq!(meta.sha256, sha(&module));
    let hashes: Vec<Vec<u8>> = chunks.iter().map(|c| sha(c)).collect();
    assert_eq!(
        meta.chunk_hashes
            .iter()
            .map(|h| h.to_vec())
            .collect::<Vec<_>>(),
        hashes
    );
    assert_eq!(meta.uploaded_at, 20);
    assert_eq!(meta.uploader, uploader());
    assert_eq!(meta.notes, "release 1.0.0");
    assert!(!meta.gzipped);
    assert_eq!(store.get("1.0.0"), Some(meta.clone()));
    assert_eq!(store.get_by_sha256(&sha(&module)), Some(meta));
    assert_eq!(store.module("1.0.0").unwrap(), module);
    assert_eq!(store.chunk("1.0.0", 2).unwrap(), chunks[2]);
    assert_eq!(store.usage().bytes, module.len() as u64);
}

#[test]
fn resending_a_chunk_is_idempotent_and_conflicting_bytes_are_refused() {
    let (mems, mut store) = new_store();
    let module = wasm_module(MIB + 10, 2);
    store
        .begin_upload(begin("1.0.0", &module), uploader(), 1)
        .unwrap();
    store.put_chunk("1.0.0", 1, module[MIB..].to_vec()).unwrap();
    let before = mems.bytes();
    store.put_chunk("1.0.0", 1, module[MIB..].to_vec()).unwrap();
    assert!(mems.bytes() == before);
    let mut other = module[MIB..].to_vec();
    other[0] ^= 1;
    refused(&mems, StoreError::ChunkConflict { index: 1 }, || {
        store.put_chunk("1.0.0", 1, other)
    });
}

#[test]
fn malformed_chunks_are_refused() {
    let (mems, mut store) = new_store();
    let module = wasm_module(MIB + 10, 3);
    store
        .begin_upload(begin("1.0.0", &module), uploader(), 1)
        .unwrap();
    refused(
        &mems,
        StoreError::ChunkTooLarge {
            len: MIB as u64 + 1,
            max: MIB as u64,
        },
        || store.put_chunk("1.0.0", 0, vec![0; MIB + 1]),
    );
    refused(
        &mems,
        StoreError::ChunkIndexOutOfRange {
            index: 2,
            chunk_count: 2,
        },
        || store.put_chunk("1.0.0", 2, vec![0; 10]),
    );
    refused(
        &mems,
        StoreError::ChunkSizeMismatch {
            index: 0,
            expected: MIB as u64,
            actual: 10,
        },
        || store.put_chunk("1.0.0", 0, vec![0; 10]),
    );
    refused(
        &mems,
        StoreError::ChunkSizeMismatch {
            index: 1,
            expected: 10,
            actual: 11,
        },
        || store.put_chunk("1.0.0", 1, vec![0; 11]),
    );
}

#[test]
fn finalize_refuses_gaps_and_reports_them_in_upload_status() {
    let (mems, mut store) = new_store();
    let module = wasm_module(3 * MIB, 4);
    store
        .begin_upload(begin("1.0.0", &module), uploader(), 5)
        .unwrap();
    store
        .put_chunk("1.0.0", 1, module[MIB..2 * MIB].to_vec())
        .unwrap();
    let status = store.upload_status("1.0.0").unwrap();
    assert_eq!(status.missing, vec![0, 2]);
    assert_eq!(status.received_bytes, MIB as u64);
    assert_eq!(status.chunk_count, 3);
    assert_eq!(status.started_at, 5);
    assert_eq!(store.uploads(), vec![status]);
    refused(
        &mems,
        StoreError::MissingChunks {
            missing: vec![0, 2],
        },
        || store.finalize("1.0.0", 6),
    );
    put_all(&mut store, "1.0.0", &module);
    assert!(store.upload_status("1.0.0").unwrap().missing.is_empty());
    store.finalize("1.0.0", 7).unwrap();
    assert!(store.uploads().is_empty());
}

#[test]
fn finalize_refuses_a_hash_mismatch_and_keeps_the_upload() {
    let (mems, mut store) = new_store();
    let module = wasm_module(1000, 5);
    let mut req = begin("1.0.0", &module);
    req.sha256 = sha(b"something else");
    store.begin_upload(req, uploader(), 1).unwrap();
    put_all(&mut store, "1.0.0", &module);
    refused(
        &mems,
        StoreError::HashMismatch {
            expected: sha(b"something else"),
            actual: sha(&module),
        },
        || store.finalize("1.0.0", 2),
    );
    assert!(store.upload_status("1.0.0").is_ok());
    assert_eq!(store.get("1.0.0"), None);
}

#[test]
fn finalize_refuses_modules_that_are_not_wasm() {
    let (mems, mut store) = new_store();
    let not_wasm = b"#!/bin/sh\necho hello\n".to_vec();
    store
        .begin_upload(begin("1.0.0", &not_wasm), uploader(), 1)
        .unwrap();
    put_all(&mut store, "1.0.0", &not_wasm);
    let before = mems.bytes();
    assert!(matches!(
        store.finalize("1.0.0", 2),
        Err(StoreError::NotWasm { .. })
    ));
    assert!(mems.bytes() == before);

    let gz_not_wasm = gzip(&not_wasm);
    store
        .begin_upload(begin("1.0.1", &gz_not_wasm), uploader(), 1)
        .unwrap();
    put_all(&mut store, "1.0.1", &gz_not_wasm);
    let err = store.finalize("1.0.1", 2).unwrap_err();
    assert!(
        matches!(&err, StoreError::NotWasm { reason } if reason.contains("after gunzip")),
        "{err:?}"
    );

    let mut truncated = gzip(&wasm_module(5000, 6));
    truncated.truncate(truncated.len() - 12);
    store
        .begin_upload(begin("1.0.2", &truncated), uploader(), 1)
        .unwrap();
    put_all(&mut store, "1.0.2", &truncated);
    let err = store.finalize("1.0.2", 2).unwrap_err();
    assert!(
        matches!(&err, StoreError::NotWasm { reason } if reason.contains("gzip")),
        "{err:?}"
    );
    assert_eq!(store.list(None, 10).unwrap(), vec![]);
}

#[test]
fn gzipped_wasm_is_accepted_and_flagged() {
    let (_, mut store) = new_store();
    let raw = wasm_module(3 * MIB, 8);
    let mut compressible = raw.clone();
    compressible[8..].iter_mut().step_by(2).for_each(|b| *b = 0);
    let gz = gzip(&compressible);
    let meta = publish(&mut store, "2.0.0", &gz);
    assert!(meta.gzipped);
    assert_eq!(meta.size, gz.len() as u64);
    assert_eq!(meta.uncompressed_size, compressible.len() as u64);
    assert_eq!(store.module("2.0.0").unwrap(), gz);
}

#[test]
fn gzip_bomb_beyond_the_uncompressed_limit_is_refused() {
    let (mems, mut store) = new_store();
    let mut huge = b"\0asm\x01\0\0\0".to_vec();
    huge.resize(MAX_UNCOMPRESSED_SIZE as usize + 1, 0);
    let gz = gzip(&huge);
    store
        .begin_upload(begin("1.0.0", &gz), uploader(), 1)
        .unwrap();
    put_all(&mut store, "1.0.0", &gz);
    let before = mems.bytes();
    match store.finalize("1.0.0", 2) {
        Err(StoreError::ModuleTooLarge { size, max }) => {
            assert_eq!(max, MAX_UNCOMPRESSED_SIZE);
            assert!(size > MAX_UNCOMPRESSED_SIZE);
        }
        other => panic!("expected ModuleTooLarge, got {other:?}"),
    }
    assert!(mems.bytes() == before);
}

#[test]
fn invalid_upload_requests_are_refused() {
    let (mems, mut store) = new_store();
    let module = wasm_module(100, 9);
    let with = |f: &dyn Fn(&mut BeginUpload)| {
        let mut req = begin("1.0.0", &module);
        f(&mut req);
        req
    };
    for bad in ["1.0", "v1.0.0", "01.0.0", "", "1.0.0-"] {
        let before = mems.bytes();
        let err = store
            .begin_upload(with(&|r| r.version = bad.into()), uploader(), 1)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidVersion { .. }),
            "{bad}: {err:?}"
        );
        assert!(mems.bytes() == before);
    }
    let long = format!("1.0.0-{}", "a".repeat(MAX_VERSION_LEN));
    let err = store
        .begin_upload(with(&|r| r.version = long.clone()), uploader(), 1)
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidVersion { .. }));
    refused(&mems, StoreError::InvalidSha256 { len: 31 }, || {
        store.begin_upload(with(&|r| r.sha256.truncate(31)), uploader(), 1)
    });
    refused(&mems, StoreError::EmptyModule, || {
        store.begin_upload(with(&|r| r.total_size = 0), uploader(), 1)
    });
    refused(
        &mems,
        StoreError::TooManyChunks {
            chunks: 101,
            max: 100,
        },
        || store.begin_upload(with(&|r| r.total_size = MAX_MODULE_SIZE + 1), uploader(), 1),
    );
    refused(
        &mems,
        StoreError::NotesTooLong {
            len: 4097,
            max: 4096,
        },
        || store.begin_upload(with(&|r| r.notes = "n".repeat(4097)), uploader(), 1),
    );
    // The largest module fits in exactly 100 chunks.
    store
        .begin_upload(with(&|r| r.total_size = MAX_MODULE_SIZE), uploader(), 1)
        .unwrap();
    assert_eq!(
        store.upload_status("1.0.0").unwrap().chunk_count,
        MAX_CHUNKS
    );
}

#[test]
fn versions_and_contents_are_unique() {
    let (mems, mut store) = new_store();
    let a = wasm_module(100, 10);
    let b = wasm_module(100, 11);
    store
        .begin_upload(begin("1.0.0", &a), uploader(), 1)
        .unwrap();
    // Same request again while unfinished: resumes, changes nothing.
    let before = mems.bytes();
    store
        .begin_upload(begin("1.0.0", &a), uploader(), 99)
        .unwrap();
    assert!(mems.bytes() == before);
    refused(
        &mems,
        StoreError::VersionExists {
            version: "1.0.0".into(),
            sha256: sha(&a),
        },
        || store.begin_upload(begin("1.0.0", &b), uploader(), 1),
    );
    refused(
        &mems,
        StoreError::ContentExists {
            version: "1.0.0".into(),
        },
        || store.begin_upload(begin("1.0.1", &a), uploader(), 1),
    );
    put_all(&mut store, "1.0.0", &a);
    let meta = store.finalize("1.0.0", 2).unwrap();
    // A retried finalize returns the same release.
    assert_eq!(store.finalize("1.0.0", 3).unwrap(), meta);
    refused(
        &mems,
        StoreError::AlreadyExists {
            version: "1.0.0".into(),
        },
        || store.begin_upload(begin("1.0.0", &a), uploader(), 1),
    );
    refused(
        &mems,
        StoreError::VersionExists {
            version: "1.0.0".into(),
            sha256: sha(&a),
        },
        || store.begin_upload(begin("1.0.0", &b), uploader(), 1),
    );
    refused(
        &mems,
        StoreError::ContentExists {
            version: "1.0.0".into(),
        },
        || store.begin_upload(begin("2.0.0", &a), uploader(), 1),
    );
    refused(
        &mems,
        StoreError::Finalized {
            version: "1.0.0".into(),
        },
        || store.put_chunk("1.0.0", 0, a.clone()),
    );
    refused(
        &mems,
        StoreError::Finalized {
            version: "1.0.0".into(),
        },
        || store.abort_upload("1.0.0"),
    );
    refused(
        &mems,
        StoreError::Finalized {
            version: "1.0.0".into(),
        },
        || store.upload_status("1.0.0"),
    );
}

#[test]
fn unknown_versions_are_refused() {
    let (mems, mut store) = new_store();
    let unknown = || StoreError::UnknownUpload {
        version: "3.0.0".into(),
    };
    refused(&mems, unknown(), || store.put_chunk("3.0.0", 0, vec![1]));
    refused(&mems, unknown(), || store.finalize("3.0.0", 1));
    refused(&mems, unknown(), || store.abort_upload("3.0.0"));
    refused(&mems, unknown(), || store.upload_status("3.0.0"));
    let not_found = || StoreError::NotFound {
        version: "3.0.0".into(),
    };
    refused(&mems, not_found(), || store.delete("3.0.0", false));
    refused(&mems, not_found(), || store.chunk("3.0.0", 0));
    refused(&mems, not_found(), || store.module("3.0.0"));
    assert!(matches!(
        store.put_chunk("x", 0, vec![]),
        Err(StoreError::InvalidVersion { .. })
    ));
    assert_eq!(store.get("3.0.0"), None);
    assert_eq!(store.get("not a version"), None);
    assert_eq!(store.get_by_sha256(&[0; 32]), None);
    assert_eq!(store.get_by_sha256(&[0; 3]), None);
}

#[test]
fn unfinished_uploads_are_not_releases() {
    let (mems, mut store) = new_store();
    let module = wasm_module(100, 12);
    store
        .begin_upload(begin("1.0.0", &module), uploader(), 1)
        .unwrap();
    put_all(&mut store, "1.0.0", &module);
    let pending = || StoreError::UploadInProgress {
        version: "1.0.0".into(),
    };
    refused(&mems, pending(), || store.chunk("1.0.0", 0));
    refused(&mems, pending(), || store.module("1.0.0"));
    refused(&mems, pending(), || store.delete("1.0.0", false));
    assert_eq!(store.get("1.0.0"), None);
    assert_eq!(store.get_by_sha256(&sha(&module)), None);
    assert_eq!(store.list(None, 10).unwrap(), vec![]);
}

#[test]
fn limits_on_releases_and_bytes_are_enforced() {
    let mems = Mems::new();
    let limits = StoreLimits {
        max_releases: 2,
        max_total_bytes: 3 * MIB as u64,
    };
    let mut store = mems.open(limits);
    publish(&mut store, "1.0.0", &wasm_module(MIB, 13));
    let big = wasm_module(2 * MIB + 1, 14);
    refused(
        &mems,
        StoreError::StoreFull {
            releases: 1,
            max_releases: 2,
            bytes: MIB as u64,
            requested: 2 * MIB as u64 + 1,
            max_bytes: 3 * MIB as u64,
        },
        || store.begin_upload(begin("2.0.0", &big), uploader(), 1),
    );
    // An unfinished upload holds its slot and its declared size.
    store
        .begin_upload(begin("2.0.0", &wasm_module(100, 15)), uploader(), 1)
        .unwrap();
    refused(
        &mems,
        StoreError::StoreFull {
            releases: 2,
            max_releases: 2,
            bytes: MIB as u64 + 100,
            requested: 100,
            max_bytes: 3 * MIB as u64,
        },
        || store.begin_upload(begin("3.0.0", &wasm_module(100, 16)), uploader(), 1),
    );
    store.abort_upload("2.0.0").unwrap();
    store
        .begin_upload(begin("3.0.0", &wasm_module(100, 16)), uploader(), 1)
        .unwrap();
    assert_eq!(
        store.usage(),
        StoreUsage {
            releases: 1,
            uploads: 1,
            bytes: MIB as u64 + 100,
            limits,
        }
    );
}

#[test]
fn abort_drops_the_upload_and_its_chunks() {
    let (_, mut store) = new_store();
    let module = wasm_module(2 * MIB, 17);
    store
        .begin_upload(begin("1.0.0", &module), uploader(), 1)
        .unwrap();
    put_all(&mut store, "1.0.0", &module);
    store.abort_upload("1.0.0").unwrap();
    assert_eq!(store.uploads(), vec![]);
    assert_eq!(store.usage().bytes, 0);
    assert!(matches!(
        store.upload_status("1.0.0"),
        Err(StoreError::UnknownUpload { .. })
    ));
    // The same content can start again, from scratch: no chunk survived the abort.
    store
        .begin_upload(begin("1.0.1", &module), uploader(), 1)
        .unwrap();
    assert_eq!(store.upload_status("1.0.1").unwrap().missing, vec![0, 1]);
}

#[test]
fn delete_refuses_releases_in_use_and_removes_the_rest() {
    let (mems, mut store) = new_store();
    let module = wasm_module(MIB + 1, 18);
    let meta = publish(&mut store, "1.0.0", &module);
    refused(
        &mems,
        StoreError::InUse {
            version: "1.0.0".into(),
        },
        || store.delete("1.0.0", true),
    );
    assert_eq!(store.delete("1.0.0", false).unwrap(), meta);
    assert_eq!(store.get("1.0.0"), None);
    assert_eq!(store.get_by_sha256(&sha(&module)), None);
    assert_eq!(store.usage().bytes, 0);
    assert!(matches!(
        store.chunk("1.0.0", 0),
        Err(StoreError::NotFound { .. })
    ));
    // Its content may be published again, and its chunks are not left behind.
    store
        .begin_upload(begin("1.0.0", &module), uploader(), 1)
        .unwrap();
    assert_eq!(store.upload_status("1.0.0").unwrap().missing, vec![0, 1]);
}

#[test]
fn list_is_in_semver_order_and_paginated() {
    let (mems, mut store) = new_store();
    let versions = [
        "1.10.0",
        "1.9.0",
        "2.0.0",
        "2.0.0-rc.1",
        "1.9.0+build.5",
        "0.1.0",
    ];
    for (i, v) in versions.iter().enumerate() {
        publish(&mut store, v, &wasm_module(50, 20 + i as u8));
    }
    store
        .begin_upload(begin("9.0.0", &wasm_module(50, 99)), uploader(), 1)
        .unwrap();
    let names = |page: Vec<ReleaseMeta>| page.into_iter().map(|m| m.version).collect::<Vec<_>>();
    assert_eq!(
        names(store.list(None, 100).unwrap()),
        [
            "0.1.0",
            "1.9.0",
            "1.9.0+build.5",
            "1.10.0",
            "2.0.0-rc.1",
            "2.0.0"
        ]
    );
    assert_eq!(names(store.list(None, 2).unwrap()), ["0.1.0", "1.9.0"]);
    assert_eq!(
        names(store.list(Some("1.9.0"), 2).unwrap()),
        ["1.9.0+build.5", "1.10.0"]
    );
    // The cursor need not exist.
    assert_eq!(
        names(store.list(Some("1.11.0"), 5).unwrap()),
        ["2.0.0-rc.1", "2.0.0"]
    );
    assert_eq!(
        names(store.list(Some("2.0.0"), 5).unwrap()),
        Vec::<String>::new()
    );
    refused(
        &mems,
        StoreError::InvalidVersion {
            version: "latest".into(),
            reason: "unexpected character 'l' while parsing major version number".into(),
        },
        || store.list(Some("latest"), 5),
    );
}

#[test]
fn list_pages_are_capped() {
    let mems = Mems::new();
    let mut store = mems.open(StoreLimits {
        max_releases: MAX_PAGE + 1,
        ..StoreLimits::default()
    });
    for i in 0..(MAX_PAGE + 1) {
        publish(
            &mut store,
            &format!("1.0.{i}"),
            &wasm_module(20, 0)
                .into_iter()
                .chain(i.to_le_bytes())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(store.list(None, u32::MAX).unwrap().len(), MAX_PAGE as usize);
}

#[test]
fn the_store_reloads_from_its_memories() {
    let mems = Mems::new();
    let done = wasm_module(MIB + 5, 30);
    let half = wasm_module(2 * MIB, 31);
    let meta = {
        let mut store = mems.open(StoreLimits::default());
        let meta = publish(&mut store, "1.0.0", &done);
        store
            .begin_upload(begin("1.1.0", &half), uploader(), 3)
            .unwrap();
        store.put_chunk("1.1.0", 0, half[..MIB].to_vec()).unwrap();
        meta
    };
    // Reopened, as after a canister upgrade.
    let mut store = mems.open(StoreLimits::default());
    assert_eq!(store.get("1.0.0"), Some(meta.clone()));
    assert_eq!(store.get_by_sha256(&sha(&done)), Some(meta));
    assert_eq!(store.module("1.0.0").unwrap(), done);
    assert_eq!(store.upload_status("1.1.0").unwrap().missing, vec![1]);
    store.put_chunk("1.1.0", 1, half[MIB..].to_vec()).unwrap();
    let second = store.finalize("1.1.0", 4).unwrap();
    assert_eq!(store.module("1.1.0").unwrap(), half);
    assert_eq!(store.list(None, 10).unwrap()[1], second);
}

#[test]
fn a_hash_mismatch_says_the_upload_stays_reserved() {
    let (_mems, mut store) = new_store();
    let module = wasm_module(100, 1);
    let mut b = begin("1.0.0", &module);
    b.sha256 = sha(b"something else");
    store.begin_upload(b, uploader(), 1).unwrap();
    put_all(&mut store, "1.0.0", &module);
    let e = store.finalize("1.0.0", 2).unwrap_err();
    assert!(e.to_string().contains("abort_release_upload"), "{e}");
    assert_eq!(store.usage().bytes, 100, "still reserved");
    store.abort_upload("1.0.0").unwrap();
    assert_eq!(store.usage().bytes, 0, "aborting frees it");
}

#[test]
fn interfaces_are_kept_per_release_and_dropped_with_it() {
    let (mems, mut store) = new_store();
    let module = wasm_module(1000, 30);
    let interface = ReleaseInterface {
        service: Some("service : { ping : () -> (text) query }".into()),
        breaking_change: Some("drops `pong`".into()),
    };
    let req = BeginUpload {
        interface: Some(interface.clone()),
        ..begin("1.0.0", &module)
    };
    store.begin_upload(req.clone(), uploader(), 1).unwrap();
    // Resuming with the same request is accepted; another interface is another request.
    store.begin_upload(req.clone(), uploader(), 1).unwrap();
    refused(
        &mems,
        StoreError::VersionExists {
            version: "1.0.0".into(),
            sha256: sha(&module),
        },
        || store.begin_upload(begin("1.0.0", &module), uploader(), 1),
    );
    assert_eq!(
        store.interface("1.0.0"),
        None,
        "not a release before finalize"
    );
    put_all(&mut store, "1.0.0", &module);
    store.finalize("1.0.0", 2).unwrap();
    assert_eq!(store.interface("1.0.0"), Some(interface));
    // A release published without one has none.
    publish(&mut store, "1.1.0", &wasm_module(1000, 31));
    assert_eq!(store.interface("1.1.0"), None);
    store.delete("1.0.0", false).unwrap();
    assert_eq!(store.interface("1.0.0"), None);
    // Published again without an interface, the content does not inherit the deleted one.
    publish(&mut store, "1.0.0", &module);
    assert_eq!(store.interface("1.0.0"), None);
}

#[test]
fn oversized_interfaces_are_refused() {
    let (mems, mut store) = new_store();
    let module = wasm_module(1000, 32);
    for (interface, field, len, max) in [
        (
            ReleaseInterface {
                service: Some("s".repeat(MAX_SERVICE_LEN + 1)),
                breaking_change: None,
            },
            "service",
            MAX_SERVICE_LEN + 1,
            MAX_SERVICE_LEN,
        ),
        (
            ReleaseInterface {
                service: None,
                breaking_change: Some("r".repeat(MAX_REASON_LEN + 1)),
            },
            "breaking_change",
            MAX_REASON_LEN + 1,
            MAX_REASON_LEN,
        ),
    ] {
        let req = BeginUpload {
            interface: Some(interface),
            ..begin("1.0.0", &module)
        };
        refused(
            &mems,
            StoreError::InterfaceTooLong {
                field: field.into(),
                len: len as u64,
                max: max as u64,
            },
            || store.begin_upload(req, uploader(), 1),
        );
    }
}
