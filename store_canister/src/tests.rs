//! Native tests: the checked-in candid interface, and the store's checks on `VectorMemory`.

use candid::Principal;
use fleet_api::store_canister::*;
use ic_stable_structures::VectorMemory;
use serde_bytes::ByteBuf;

use crate::state::{validate, Store};

/// The interface this crate exports must be exactly `store_canister.did`; regenerate it with
/// `UPDATE_DID=1 cargo test -p store_canister did` after a deliberate change.
#[test]
fn candid_interface_matches_the_checked_in_did() {
    let exported = super::__export_service();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("store_canister.did");
    if std::env::var_os("UPDATE_DID").is_some() {
        std::fs::write(&path, &exported).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap();
    assert!(
        exported == checked_in,
        "the exported interface differs from store_canister.did:\n{exported}"
    );
}

/// Every method the store exports is declared in `fleet_api::store_canister::method` with the
/// same name and kind, and nothing is declared that it does not export.
#[test]
fn every_exported_method_is_declared_in_fleet_api() {
    let mut declared: Vec<_> = fleet_api::store_canister::method::METHODS
        .iter()
        .map(|(name, kind)| (name.to_string(), *kind))
        .collect();
    declared.sort();
    assert_eq!(
        declared,
        fleet_api::endpoint::service_methods(&super::__export_service())
    );
}

fn manager() -> Principal {
    Principal::from_slice(&[1; 10])
}

fn store() -> Store<VectorMemory> {
    let mut s = Store::open(VectorMemory::default(), VectorMemory::default());
    s.initialize(manager()).unwrap();
    s
}

fn release(version: &str, chunks: u8) -> StoredRelease {
    StoredRelease {
        version: version.into(),
        module_hash: vec![0xAB; 32],
        chunk_hashes: (0..chunks).map(|i| ByteBuf::from(vec![i; 32])).collect(),
        wasm_len: (chunks as u64 - 1) * RELEASE_CHUNK_SIZE + 10,
    }
}

#[test]
fn the_manager_records_and_forgets_releases_in_version_order() {
    let mut s = store();
    s.record(manager(), release("1.10.0", 2)).unwrap();
    s.record(manager(), release("1.9.0", 1)).unwrap();
    let versions: Vec<_> = s.releases().into_iter().map(|r| r.version).collect();
    assert_eq!(versions, ["1.9.0", "1.10.0"]);
    assert_eq!(s.chunk_count(), 2, "shared chunk hashes count once");
    assert_eq!(s.forget(manager(), "1.9.0"), Ok(true));
    assert_eq!(s.forget(manager(), "1.9.0"), Ok(false));
    assert_eq!(s.release_count(), 1);
}

#[test]
fn recording_a_version_again_replaces_it() {
    let mut s = store();
    s.record(manager(), release("1.0.0", 1)).unwrap();
    let mut other = release("1.0.0", 3);
    other.module_hash = vec![7; 32];
    s.record(manager(), other.clone()).unwrap();
    assert_eq!(s.releases(), vec![other]);
}

#[test]
fn anyone_but_the_manager_is_refused_and_changes_nothing() {
    let mut s = store();
    s.record(manager(), release("1.0.0", 1)).unwrap();
    let before = s.releases();
    for caller in [Principal::anonymous(), Principal::from_slice(&[2; 10])] {
        assert_eq!(
            s.record(caller, release("2.0.0", 1)),
            Err(StoreCanisterError::NotAuthorized { caller })
        );
        assert_eq!(
            s.forget(caller, "1.0.0"),
            Err(StoreCanisterError::NotAuthorized { caller })
        );
    }
    assert_eq!(s.releases(), before);
}

#[test]
fn the_anonymous_principal_cannot_be_the_manager() {
    let mut s = Store::open(VectorMemory::default(), VectorMemory::default());
    assert!(s.initialize(Principal::anonymous()).is_err());
    assert!(!s.is_manager(Principal::anonymous()));
}

#[test]
fn bad_releases_are_refused_with_typed_errors_and_change_nothing() {
    let mut s = store();
    let too_many = release("1.0.0", 101);
    type Expected = fn(&StoreCanisterError) -> bool;
    let cases: Vec<(StoredRelease, Expected)> = vec![
        (release("", 1), |e| {
            matches!(e, StoreCanisterError::InvalidVersion { .. })
        }),
        (release("one", 1), |e| {
            matches!(e, StoreCanisterError::InvalidVersion { .. })
        }),
        (release(&format!("1.0.0-{}", "a".repeat(64)), 1), |e| {
            matches!(e, StoreCanisterError::InvalidVersion { .. })
        }),
        (
            StoredRelease {
                module_hash: vec![1; 31],
                ..release("1.0.0", 1)
            },
            |e| matches!(e, StoreCanisterError::InvalidHash { field, len: 31 } if field == "module_hash"),
        ),
        (
            StoredRelease {
                chunk_hashes: vec![ByteBuf::from(vec![1; 32]), ByteBuf::from(vec![1; 33])],
                ..release("1.0.0", 2)
            },
            |e| matches!(e, StoreCanisterError::InvalidHash { field, len: 33 } if field == "chunk_hashes[1]"),
        ),
        (
            StoredRelease {
                chunk_hashes: vec![],
                ..release("1.0.0", 1)
            },
            |e| {
                matches!(
                    e,
                    StoreCanisterError::InvalidChunkCount { count: 0, max: 100 }
                )
            },
        ),
        (too_many, |e| {
            matches!(e, StoreCanisterError::InvalidChunkCount { count: 101, .. })
        }),
        (
            StoredRelease {
                wasm_len: 0,
                ..release("1.0.0", 1)
            },
            |e| matches!(e, StoreCanisterError::InvalidLength { .. }),
        ),
        (
            StoredRelease {
                wasm_len: RELEASE_CHUNK_SIZE + 1,
                ..release("1.0.0", 1)
            },
            |e| matches!(e, StoreCanisterError::InvalidLength { chunks: 1, .. }),
        ),
    ];
    for (bad, expected) in cases {
        let e = s.record(manager(), bad.clone()).unwrap_err();
        assert!(expected(&e), "{bad:?} gave {e:?}");
        assert!(validate(bad).is_err());
    }
    assert!(s.releases().is_empty());
    assert!(matches!(
        s.forget(manager(), "not a version"),
        Err(StoreCanisterError::InvalidVersion { .. })
    ));
}

#[test]
fn a_length_of_exactly_n_chunks_is_valid_and_versions_are_kept_canonical() {
    let mut r = release("1.2.3+build.5", 2);
    r.wasm_len = 2 * RELEASE_CHUNK_SIZE;
    let (_, r) = validate(r).unwrap();
    assert_eq!(r.version, "1.2.3+build.5");
}

#[test]
fn at_most_max_releases_are_recorded_but_a_recorded_one_may_be_replaced() {
    let mut s = store();
    for i in 0..MAX_STORED_RELEASES {
        s.record(manager(), release(&format!("1.0.{i}"), 1))
            .unwrap();
    }
    assert_eq!(
        s.record(manager(), release("9.0.0", 1)),
        Err(StoreCanisterError::TooManyReleases {
            max: MAX_STORED_RELEASES
        })
    );
    s.record(manager(), release("1.0.0", 2)).unwrap();
    assert_eq!(s.release_count(), MAX_STORED_RELEASES);
}

#[test]
fn the_state_survives_reopening_its_memories() {
    let (config, releases) = (VectorMemory::default(), VectorMemory::default());
    let mut s = Store::open(config.clone(), releases.clone());
    s.initialize(manager()).unwrap();
    s.record(manager(), release("1.0.0", 1)).unwrap();
    let reopened = Store::open(config, releases);
    reopened.check_layout().unwrap();
    assert!(reopened.is_manager(manager()));
    assert_eq!(reopened.releases(), vec![release("1.0.0", 1)]);
    let fresh = Store::open(VectorMemory::default(), VectorMemory::default());
    assert!(fresh.check_layout().is_err());
}
