//! Publishing releases through the manager: chunked upload by ingress, finalize, listing,
//! chunk download, mirroring into the IC chunk store, and refusals that change nothing.

use candid::Principal;
use fleet_api::manager::method::{
    BeginRelease, ChunkStoreStatusQuery, DeleteRelease, FinalizeRelease, GetRelease, GetSettings,
    ListReleases, ReleaseChunk, ReleaseUploadStatus, SetDefaultRelease, SetOperator,
    UploadReleaseChunk,
};
use fleet_api::manager::*;
use fleet_tests::{padded, sha256, user, user_wasm, Fleet, CHUNK};

/// The smallest valid module (magic and version, no sections): publishing checks only that a
/// release is wasm, and these tests need a module that fits in one chunk, whatever the size of
/// the user canister's build.
fn one_chunk_module() -> Vec<u8> {
    b"\0asm\x01\0\0\0".to_vec()
}

fn releases(fleet: &Fleet) -> Vec<ReleaseMeta> {
    fleet
        .ask::<ListReleases>(Principal::anonymous(), (ListReleasesArg::default(),))
        .into_result()
        .expect("list_releases")
}

/// Makes `principal` a releaser, as the controller.
fn add_releaser(fleet: &Fleet, principal: Principal) {
    let operator = Operator {
        principal,
        roles: vec![Role::Releaser],
    };
    fleet
        .ask::<SetOperator>(fleet.controller, (operator,))
        .into_result()
        .unwrap();
}

fn chunk_store_status(fleet: &Fleet) -> ChunkStoreStatus {
    fleet.ask::<ChunkStoreStatusQuery>(Principal::anonymous(), ())
}

fn release_chunk(fleet: &Fleet, version: &str, index: u32) -> Result<Vec<u8>, StoreError> {
    let arg = ReleaseChunkArg {
        version: version.into(),
        index,
    };
    let chunk = fleet.ask::<ReleaseChunk>(Principal::anonymous(), (arg,));
    chunk.into_result().map(|bytes| bytes.into_vec())
}

/// Chunk `index` of release 1.0.0, uploaded by `sender`.
fn upload(
    fleet: &Fleet,
    sender: Principal,
    index: u32,
    bytes: &[u8],
) -> Result<(), UploadReleaseChunkError> {
    let arg = UploadReleaseChunkArg {
        version: "1.0.0".into(),
        index,
        bytes: bytes.to_vec(),
    };
    fleet
        .ask::<UploadReleaseChunk>(sender, (arg,))
        .into_result()
}

#[test]
fn a_multi_chunk_release_is_published_listed_downloadable_and_mirrored() {
    let fleet = Fleet::new();
    let releaser = user(1);
    add_releaser(&fleet, releaser);

    // 2.5 MiB: three chunks, each sent in its own ingress message (< 2 MiB).
    let wasm = padded(&one_chunk_module(), 2 * CHUNK + CHUNK / 2);
    let meta = fleet.publish(releaser, "1.0.0", &wasm);
    assert_eq!(meta.version, "1.0.0");
    assert_eq!(meta.sha256, sha256(&wasm));
    assert_eq!(meta.size, wasm.len() as u64);
    assert_eq!(meta.chunk_count, 3);
    assert_eq!(meta.uploader, releaser);

    assert_eq!(releases(&fleet), vec![meta.clone()]);
    let got = fleet.ask::<GetRelease>(Principal::anonymous(), ("1.0.0".to_string(),));
    assert_eq!(got, Some(meta.clone()));

    // Anyone (an end user recovering alone) can download the module chunk by chunk.
    let mut downloaded = Vec::new();
    for index in 0..meta.chunk_count {
        downloaded.extend_from_slice(&release_chunk(&fleet, "1.0.0", index).unwrap());
    }
    assert_eq!(downloaded, wasm);

    // Finalize mirrored the chunks into the manager's IC chunk store.
    let status = chunk_store_status(&fleet);
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
        interface: None,
    };
    for sender in [Principal::anonymous(), user(9)] {
        fleet.refused_at_ingress::<BeginRelease>(sender, (begin.clone(),));
    }
    let upload_status = || {
        fleet
            .ask::<ReleaseUploadStatus>(Principal::anonymous(), ("1.0.0".to_string(),))
            .into_result()
    };
    assert!(upload_status().is_err(), "no upload was started");

    // A releaser starts the upload; others still cannot add chunks or finalize it.
    let ok = fleet.ask::<BeginRelease>(fleet.controller, (begin.clone(),));
    ok.into_result().unwrap();
    let chunk = UploadReleaseChunkArg {
        version: "1.0.0".into(),
        index: 0,
        bytes: wasm.clone(),
    };
    fleet.refused_at_ingress::<UploadReleaseChunk>(user(9), (chunk,));
    fleet.refused_at_ingress::<FinalizeRelease>(Principal::anonymous(), ("1.0.0".to_string(),));
    assert_eq!(upload_status().unwrap().missing, vec![0]);
    assert!(releases(&fleet).is_empty());
}

#[test]
fn bad_release_input_gets_typed_errors_and_publishes_nothing() {
    let fleet = Fleet::new();
    let wasm = one_chunk_module();
    let c = fleet.controller;

    let begin = |version: &str, sha256: Vec<u8>| {
        let arg = BeginUpload {
            version: version.into(),
            total_size: wasm.len() as u64,
            sha256,
            notes: String::new(),
            interface: None,
        };
        fleet.ask::<BeginRelease>(c, (arg,)).into_result()
    };

    // Not semver.
    let r = begin("latest", sha256(&wasm));
    assert!(matches!(
        r,
        Err(BeginReleaseError::Store(StoreError::InvalidVersion { .. }))
    ));

    // Declared hash differs from the uploaded bytes: finalize refuses.
    begin("1.0.0", vec![0; 32]).unwrap();
    let put = upload(&fleet, c, 1, &wasm);
    assert!(matches!(
        put,
        Err(UploadReleaseChunkError::Store(
            StoreError::ChunkIndexOutOfRange { .. }
        ))
    ));
    upload(&fleet, c, 0, &wasm).unwrap();
    let fin = fleet.ask::<FinalizeRelease>(c, ("1.0.0".to_string(),));
    assert!(matches!(
        fin.into_result(),
        Err(FinalizeReleaseError::Store(StoreError::HashMismatch { .. }))
    ));
    assert!(releases(&fleet).is_empty());
    assert_eq!(chunk_store_status(&fleet).used, 0);

    // Unknown releases cannot be downloaded, made default or mirrored.
    let chunk = release_chunk(&fleet, "9.9.9", 0);
    assert!(matches!(chunk, Err(StoreError::NotFound { .. })));
    let def = fleet.ask::<SetDefaultRelease>(c, ("9.9.9".to_string(),));
    assert_eq!(
        def.into_result(),
        Err(SetDefaultReleaseError::UnknownRelease)
    );
    let settings = fleet.ask::<GetSettings>(Principal::anonymous(), ());
    assert_eq!(settings.default_release, None);
}

#[test]
fn the_default_release_cannot_be_deleted_and_only_admins_set_it() {
    let fleet = Fleet::new();
    let meta = fleet.publish(fleet.controller, "1.0.0", &user_wasm(false));
    let releaser = user(3);
    add_releaser(&fleet, releaser);
    let set_default = |sender: Principal| {
        fleet
            .ask::<SetDefaultRelease>(sender, ("1.0.0".to_string(),))
            .into_result()
    };
    fleet.refused_at_ingress::<SetDefaultRelease>(releaser, ("1.0.0".to_string(),));
    assert_eq!(
        set_default(fleet.controller).unwrap().default_release,
        Some(ReleaseRef {
            version: "1.0.0".into(),
            sha256: meta.sha256.clone()
        })
    );
    let del = fleet.ask::<DeleteRelease>(releaser, ("1.0.0".to_string(),));
    assert!(matches!(
        del.into_result(),
        Err(DeleteReleaseError::Store(StoreError::InUse { .. }))
    ));
    assert_eq!(releases(&fleet), vec![meta]);
}
