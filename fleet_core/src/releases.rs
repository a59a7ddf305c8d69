//! Releases of the user canister's wasm: the wasm store plus what the manager adds around it
//! (mirroring after finalize, the default release, refusing to delete releases in use).

use crate::chunk_store::ensure_mirrored;
use crate::registry::release_key;
use crate::runtime::Runtime;
use crate::state::{self, MirrorGuard};
use crate::stored::ReleaseRef;
use candid::Principal;
use fleet_api::manager::{
    BeginUpload, DeleteReleaseError, FinalizeReleaseError, FinalizedRelease, ReleaseMeta,
    SetDefaultReleaseError, Settings, StoreError, UploadStatus,
};
use fleet_api::wire::Wire;

pub fn begin(
    req: BeginUpload,
    uploader: Principal,
    now_ns: u64,
) -> Result<UploadStatus, StoreError> {
    let version = req.version.clone();
    state::with_mut(|s| {
        s.store.begin_upload(req.wire(), uploader, now_ns)?;
        s.store.upload_status(&version)
    })
    .map(Wire::wire)
    .map_err(Wire::wire)
}

/// Finalizes the upload, then mirrors the release into the chunk store. A mirroring failure
/// does not undo the finalize: the release is valid, and it is mirrored again when needed.
pub async fn finalize<R: Runtime>(
    rt: &R,
    version: &str,
) -> Result<FinalizedRelease, FinalizeReleaseError> {
    let now = rt.now_ns();
    let release = state::with_mut(|s| s.store.finalize(version, now))
        .map_err(|e| FinalizeReleaseError::Store(e.wire()))?;
    let mirror_error = ensure_mirrored(rt, &release.version).await.err();
    Ok(FinalizedRelease {
        release: release.wire(),
        mirror_error,
    })
}

/// Deletes a release unless it is the default release or installed on a user canister.
pub fn delete(version: &str) -> Result<ReleaseMeta, DeleteReleaseError> {
    if MirrorGuard::busy() {
        return Err(DeleteReleaseError::Busy);
    }
    state::with_mut(|s| {
        let meta = s.store.get(version).ok_or_else(|| {
            DeleteReleaseError::Store(StoreError::NotFound {
                version: version.to_string(),
            })
        })?;
        let release = ReleaseRef {
            version: meta.version.clone(),
            sha256: meta.sha256.clone(),
        };
        let is_default = s.settings().default_release.as_ref() == Some(&release);
        let deployed = release_key(&release).is_some_and(|k| s.registry.has_canister_on_release(k));
        let deleted = s
            .store
            .delete(version, is_default || deployed)
            .map_err(|e| DeleteReleaseError::Store(e.wire()))?;
        // Its chunks stay in the IC store until the next clear; forget that it is installable.
        let mut mirror = s.mirror_state();
        mirror
            .releases
            .retain(|r| r.release.sha256 != deleted.sha256);
        s.set_mirror_state(mirror);
        Ok(deleted.wire())
    })
}

/// Makes `version` the release new user canisters get, once it is in the chunk store. It then
/// counts as used: new canisters run it.
pub async fn set_default<R: Runtime>(
    rt: &R,
    version: &str,
) -> Result<Settings, SetDefaultReleaseError> {
    let meta =
        state::with(|s| s.store.get(version)).ok_or(SetDefaultReleaseError::UnknownRelease)?;
    ensure_mirrored(rt, &meta.version)
        .await
        .map_err(SetDefaultReleaseError::Mirror)?;
    Ok(state::with_mut(|s| {
        s.governance.mark_used(&meta.sha256);
        let mut settings = s.settings();
        settings.default_release = Some(ReleaseRef {
            version: meta.version,
            sha256: meta.sha256,
        });
        s.set_settings(settings.clone());
        settings.into()
    }))
}

/// Whether making `version` the default needs the release policy's approval (no rollout has
/// used it, and it is not the default yet), after refusing it while its notice runs.
pub fn default_needs_approval(version: &str, now_ns: u64) -> Result<bool, SetDefaultReleaseError> {
    let meta =
        state::with(|s| s.store.get(version)).ok_or(SetDefaultReleaseError::UnknownRelease)?;
    if state::with(|s| s.governance.is_used(&meta.sha256)) {
        return Ok(false);
    }
    if let Some(may_start_at_ns) =
        crate::governance::notice_until(&meta.sha256, meta.uploaded_at, now_ns)
    {
        return Err(SetDefaultReleaseError::NoticePeriod { may_start_at_ns });
    }
    Ok(true)
}
