//! Publishing releases through the manager: chunked upload by ingress, finalize, listing,
//! chunk download, mirroring into the IC chunk store, and refusals that change nothing.

use candid::Principal;
use fleet_api::manager::*;
use fleet_tests::{padded, sha256, user, user_wasm, Fleet, CHUNK};

/// The smallest valid module (magic and version, no sections): publishing checks only that a
/// release is wasm, and these tests need a module that fits in one chunk, whatever the size of
/// the user canister's build.
fn one_chunk_module() -> Vec<u8> {
    b"\0asm\x01\0\0\0".to_vec()
}

type Releases = Result<Vec<ReleaseMeta>, StoreError>;

fn releases(fleet: &Fleet) -> Vec<ReleaseMeta> {
    let r: Releases = fleet.read(
        Principal::anonymous(),
        "list_releases",
        ListReleasesArg::default(),
    );
    r.expect("list_releases")
}

#[test]
fn a_multi_chunk_release_is_published_listed_downloadable_and_mirrored() {
    let fleet = Fleet::new();
    let releaser = user(1);
    let set: Result<(), OperatorError> = fleet.call(
        fleet.controller,
        "set_operator",
        Operator {
            principal: releaser,
            roles: vec![Role::Releaser],
        },
    );
    set.unwrap();

    // 2.5 MiB: three chunks, each sent in its own ingress message (< 2 MiB).
    let wasm = padded(&one_chunk_module(), 2 * CHUNK + CHUNK / 2);
    let meta = fleet.publish(releaser, "1.0.0", &wasm);
    assert_eq!(meta.version, "1.0.0");
    assert_eq!(meta.sha256, sha256(&wasm));
    assert_eq!(meta.size, wasm.len() as u64);
    assert_eq!(meta.chunk_count, 3);
    assert_eq!(meta.uploader, releaser);

    assert_eq!(releases(&fleet), vec![meta.clone()]);
    let got: Option<ReleaseMeta> = fleet.read(Principal::anonymous(), "get_release", "1.0.0");
    assert_eq!(got, Some(meta.clone()));

    // Anyone (an end user recovering alone) can download the module chunk by chunk.
    let mut downloaded = Vec::new();
    for index in 0..meta.chunk_count {
        let chunk: Result<Vec<u8>, StoreError> = fleet.read(
            Principal::anonymous(),
            "release_chunk",
            ReleaseChunkArg {
                version: "1.0.0".into(),
                index,
            },
        );
        downloaded.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(downloaded, wasm);

    // Finalize mirrored the chunks into the manager's IC chunk store.
    let status: ChunkStoreStatus = fleet.read(Principal::anonymous(), "chunk_store_status", ());
    assert_eq!(status.used, 3);
    assert_eq!(status.releases.len(), 1);
    let expected: Vec<Vec<u8>> = wasm.chunks(CHUNK).map(sha256).collect();
    assert_eq!(status.releases[0].chunk_hashes, expected);
}

#[test]
fn release_uploads_by_anyone_but_releasers_are_refused_and_change_nothing() {
    let fleet = Fleet::new();
    let wasm = one_chunk_module();
    let begin = BeginUpload {
        version: "1.0.0".into(),
        total_size: wasm.len() as u64,
        sha256: sha256(&wasm),
        notes: String::new(),
    };
    for sender in [Principal::anonymous(), user(9)] {
        let r: Result<UploadStatus, BeginReleaseError> =
            fleet.call(sender, "begin_release", begin.clone());
        assert_eq!(r, Err(BeginReleaseError::NotAuthorized));
    }
    let status: Result<UploadStatus, StoreError> =
        fleet.read(Principal::anonymous(), "release_upload_status", "1.0.0");
    assert!(status.is_err(), "no upload was started");

    // A releaser starts the upload; others still cannot add chunks or finalize it.
    let ok: Result<UploadStatus, BeginReleaseError> =
        fleet.call(fleet.controller, "begin_release", begin.clone());
    ok.unwrap();
    let put: Result<(), UploadReleaseChunkError> = fleet.call(
        user(9),
        "upload_release_chunk",
        UploadReleaseChunkArg {
            version: "1.0.0".into(),
            index: 0,
            bytes: wasm.clone(),
        },
    );
    assert_eq!(put, Err(UploadReleaseChunkError::NotAuthorized));
    let fin: Result<FinalizedRelease, FinalizeReleaseError> = fleet.call(
        Principal::anonymous(),
        "finalize_release",
        "1.0.0".to_string(),
    );
    assert_eq!(fin, Err(FinalizeReleaseError::NotAuthorized));
    let status: Result<UploadStatus, StoreError> =
        fleet.read(Principal::anonymous(), "release_upload_status", "1.0.0");
    assert_eq!(status.unwrap().missing, vec![0]);
    assert!(releases(&fleet).is_empty());
}

#[test]
fn bad_release_input_gets_typed_errors_and_publishes_nothing() {
    let fleet = Fleet::new();
    let wasm = one_chunk_module();
    let c = fleet.controller;

    // Not semver.
    let r: Result<UploadStatus, BeginReleaseError> = fleet.call(
        c,
        "begin_release",
        BeginUpload {
            version: "latest".into(),
            total_size: wasm.len() as u64,
            sha256: sha256(&wasm),
            notes: String::new(),
        },
    );
    assert!(matches!(
        r,
        Err(BeginReleaseError::Store(StoreError::InvalidVersion { .. }))
    ));

    // Declared hash differs from the uploaded bytes: finalize refuses.
    let r: Result<UploadStatus, BeginReleaseError> = fleet.call(
        c,
        "begin_release",
        BeginUpload {
            version: "1.0.0".into(),
            total_size: wasm.len() as u64,
            sha256: vec![0; 32],
            notes: String::new(),
        },
    );
    r.unwrap();
    let put: Result<(), UploadReleaseChunkError> = fleet.call(
        c,
        "upload_release_chunk",
        UploadReleaseChunkArg {
            version: "1.0.0".into(),
            index: 1,
            bytes: wasm.clone(),
        },
    );
    assert!(matches!(
        put,
        Err(UploadReleaseChunkError::Store(
            StoreError::ChunkIndexOutOfRange { .. }
        ))
    ));
    let put: Result<(), UploadReleaseChunkError> = fleet.call(
        c,
        "upload_release_chunk",
        UploadReleaseChunkArg {
            version: "1.0.0".into(),
            index: 0,
            bytes: wasm.clone(),
        },
    );
    put.unwrap();
    let fin: Result<FinalizedRelease, FinalizeReleaseError> =
        fleet.call(c, "finalize_release", "1.0.0".to_string());
    assert!(matches!(
        fin,
        Err(FinalizeReleaseError::Store(StoreError::HashMismatch { .. }))
    ));
    assert!(releases(&fleet).is_empty());
    let status: ChunkStoreStatus = fleet.read(Principal::anonymous(), "chunk_store_status", ());
    assert_eq!(status.used, 0);

    // Unknown releases cannot be downloaded, made default or mirrored.
    let chunk: Result<Vec<u8>, StoreError> = fleet.read(
        Principal::anonymous(),
        "release_chunk",
        ReleaseChunkArg {
            version: "9.9.9".into(),
            index: 0,
        },
    );
    assert!(matches!(chunk, Err(StoreError::NotFound { .. })));
    let def: Result<Settings, SetDefaultReleaseError> =
        fleet.call(c, "set_default_release", "9.9.9".to_string());
    assert_eq!(def, Err(SetDefaultReleaseError::UnknownRelease));
    let settings: Settings = fleet.read(Principal::anonymous(), "get_settings", ());
    assert_eq!(settings.default_release, None);
}

#[test]
fn the_default_release_cannot_be_deleted_and_only_admins_set_it() {
    let fleet = Fleet::new();
    let meta = fleet.publish(fleet.controller, "1.0.0", &user_wasm(false));
    let releaser = user(3);
    let set: Result<(), OperatorError> = fleet.call(
        fleet.controller,
        "set_operator",
        Operator {
            principal: releaser,
            roles: vec![Role::Releaser],
        },
    );
    set.unwrap();
    let def: Result<Settings, SetDefaultReleaseError> =
        fleet.call(releaser, "set_default_release", "1.0.0".to_string());
    assert_eq!(def, Err(SetDefaultReleaseError::NotAuthorized));
    let def: Result<Settings, SetDefaultReleaseError> =
        fleet.call(fleet.controller, "set_default_release", "1.0.0".to_string());
    assert_eq!(
        def.unwrap().default_release,
        Some(ReleaseRef {
            version: "1.0.0".into(),
            sha256: meta.sha256.clone()
        })
    );
    let del: Result<ReleaseMeta, DeleteReleaseError> =
        fleet.call(releaser, "delete_release", "1.0.0".to_string());
    assert!(matches!(
        del,
        Err(DeleteReleaseError::Store(StoreError::InUse { .. }))
    ));
    assert_eq!(releases(&fleet), vec![meta]);
}
