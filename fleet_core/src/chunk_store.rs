//! Mirror of releases into IC chunk stores: the manager's own, and one store canister per
//! other subnet the fleet uses.
//!
//! Installing with `install_chunked_code` and a `store_canister` sends 32-byte hashes instead
//! of the module (interface spec, "IC method `install_chunked_code`"), so each release is
//! uploaded into a store once (`upload_chunk`) and reused for every install and upgrade. The
//! IC takes chunks only from a store on the target's subnet, so a canister on another subnet
//! installs from that subnet's store canister ([`crate::subnets`]), which the manager fills
//! the same way, as its controller. Each store has its own [`MirrorState`].
//!
//! Policy, as the store holds at most 100 chunks of 1 MiB (interface spec, "IC method
//! `upload_chunk`"):
//! 1. A release already mirrored needs nothing.
//! 2. If its chunks fit next to what is stored, only the chunks not stored yet are uploaded
//!    (the store deduplicates by hash, so equal chunks are shared between releases).
//! 3. Otherwise the store is cleared and refilled with the releases still needed (the default
//!    release and, once rollouts exist, their targets) plus the requested one; every other
//!    release is evicted and mirrored again when it is needed.
//! 4. If even those do not fit, the request is refused with `DoesNotFit` and nothing changes.
//!
//! Each confirmed upload is recorded at once, so that a failure halfway leaves a record of what
//! the store really holds.
//!
//! A store canister's own record (its `releases` query, for anyone to audit) follows: once a
//! release's chunks are all in its chunk store, the manager calls its `record_release`, and
//! only then counts the release as mirrored there, so a failed record is retried by the next
//! mirror of that release; before clearing its chunk store, the manager calls `forget_release`
//! for every release it held, so the store never lists a release its chunk store lacks. A
//! failure of either is a [`MirrorError::CallFailed`] naming the method. A store created
//! before stores ran code gets the store module at its first record.

use crate::runtime::{CallError, Runtime};
use crate::state::{self, MirrorGuard};
use crate::stored::{MirroredRelease, ReleaseRef};
use crate::subnets::{self, StoreRef};
use candid::CandidType;
use fleet_api::endpoint::{Endpoint, Reply};
use fleet_api::manager::{ChunkStoreStatus, MirrorError, CHUNK_STORE_CAPACITY};
use fleet_api::store_canister::method::{ForgetRelease, RecordRelease};
use fleet_api::store_canister::StoredRelease;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use wasm_store::ReleaseMeta;

/// What the manager's IC chunk store holds.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorState {
    /// Hashes of every chunk confirmed by `upload_chunk` since the last clear.
    pub stored: Vec<Vec<u8>>,
    /// Releases all of whose chunks are stored.
    pub releases: Vec<MirroredRelease>,
}

impl MirrorState {
    pub fn get(&self, sha256: &[u8]) -> Option<&MirroredRelease> {
        self.releases.iter().find(|r| r.release.sha256 == sha256)
    }

    pub fn status(&self, busy: bool) -> ChunkStoreStatus {
        ChunkStoreStatus {
            capacity: CHUNK_STORE_CAPACITY,
            used: self.stored.len() as u32,
            releases: self.releases.iter().cloned().map(Into::into).collect(),
            busy,
        }
    }
}

/// A release and its chunk hashes, as the wasm store describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub release: ReleaseRef,
    pub chunk_hashes: Vec<Vec<u8>>,
    /// Size of the module as stored.
    pub size: u64,
}

impl From<&ReleaseMeta> for Wanted {
    fn from(meta: &ReleaseMeta) -> Self {
        Wanted {
            release: ReleaseRef {
                version: meta.version.clone(),
                sha256: meta.sha256.clone(),
            },
            chunk_hashes: meta.chunk_hashes.iter().map(|h| h.to_vec()).collect(),
            size: meta.size,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    Ready,
    /// Upload the target's missing chunks next to what is stored.
    Upload,
    /// Clear the store, then mirror these releases (the ones still needed, target last).
    ClearAndMirror(Vec<Wanted>),
}

fn distinct<'a>(hashes: impl IntoIterator<Item = &'a Vec<u8>>) -> usize {
    hashes.into_iter().collect::<BTreeSet<_>>().len()
}

/// Decides how to get `target` into the store; `keep` are the releases still needed.
pub fn plan(
    state: &MirrorState,
    target: &Wanted,
    keep: &[Wanted],
    capacity: u32,
) -> Result<Plan, MirrorError> {
    if state.get(&target.release.sha256).is_some() {
        return Ok(Plan::Ready);
    }
    if distinct(state.stored.iter().chain(&target.chunk_hashes)) <= capacity as usize {
        return Ok(Plan::Upload);
    }
    let mut releases: Vec<Wanted> = Vec::new();
    for w in keep.iter().chain(std::iter::once(target)) {
        if !releases
            .iter()
            .any(|r| r.release.sha256 == w.release.sha256)
        {
            releases.push(w.clone());
        }
    }
    let needed = distinct(releases.iter().flat_map(|w| &w.chunk_hashes));
    if needed > capacity as usize {
        return Err(MirrorError::DoesNotFit {
            needed: needed as u32,
            capacity,
        });
    }
    Ok(Plan::ClearAndMirror(releases))
}

/// Releases that must stay in the store: the default release and the target of a rollout that
/// has not finished.
fn releases_to_keep() -> Vec<Wanted> {
    state::with(|s| {
        let default = s
            .settings()
            .default_release
            .and_then(|r| s.store.get(&r.version));
        let target = s
            .rollout_meta()
            .current
            .filter(|r| !r.phase.is_finished())
            .and_then(|r| s.store.get_by_sha256(&r.target.module_hash));
        default
            .into_iter()
            .chain(target)
            .map(|meta| Wanted::from(&meta))
            .collect()
    })
}

fn call_failed(method: &str) -> impl FnOnce(CallError) -> MirrorError + '_ {
    move |e| MirrorError::CallFailed {
        method: method.to_string(),
        message: e.message,
    }
}

/// Mirrors the finalized release `version` into the manager's own chunk store according to
/// the policy above and returns its chunk hashes.
pub async fn ensure_mirrored<R: Runtime>(
    rt: &R,
    version: &str,
) -> Result<MirroredRelease, MirrorError> {
    ensure_mirrored_in(rt, version, &subnets::own_store(rt)).await
}

/// [`ensure_mirrored`] into `store`'s chunk store.
pub async fn ensure_mirrored_in<R: Runtime>(
    rt: &R,
    version: &str,
    store: &StoreRef,
) -> Result<MirroredRelease, MirrorError> {
    let target = state::with(|s| s.store.get(version))
        .map(|meta| Wanted::from(&meta))
        .ok_or(MirrorError::UnknownRelease)?;
    if let Some(done) = subnets::mirror_of(store)
        .get(&target.release.sha256)
        .cloned()
    {
        return Ok(done);
    }
    let _guard = MirrorGuard::acquire().ok_or(MirrorError::Busy)?;
    let keep = releases_to_keep();
    let current = subnets::mirror_of(store);
    match plan(&current, &target, &keep, CHUNK_STORE_CAPACITY)? {
        Plan::Ready => {}
        Plan::Upload => upload_release(rt, store, &target).await?,
        Plan::ClearAndMirror(releases) => {
            for held in &current.releases {
                forget_in_store(rt, store, &held.release.version).await?;
            }
            rt.clear_chunk_store(store.canister)
                .await
                .map_err(call_failed("clear_chunk_store"))?;
            subnets::set_mirror_of(store, MirrorState::default());
            for wanted in &releases {
                upload_release(rt, store, wanted).await?;
            }
        }
    }
    subnets::mirror_of(store)
        .get(&target.release.sha256)
        .cloned()
        .ok_or(MirrorError::UnknownRelease)
}

/// Mirrors the releases still needed (the default release, a running rollout's target) into
/// a store that has just been added.
pub async fn mirror_needed<R: Runtime>(rt: &R, store: &StoreRef) -> Result<(), MirrorError> {
    for wanted in releases_to_keep() {
        ensure_mirrored_in(rt, &wanted.release.version, store).await?;
    }
    Ok(())
}

async fn upload_release<R: Runtime>(
    rt: &R,
    store: &StoreRef,
    wanted: &Wanted,
) -> Result<(), MirrorError> {
    for (index, hash) in wanted.chunk_hashes.iter().enumerate() {
        if subnets::mirror_of(store).stored.contains(hash) {
            continue;
        }
        let bytes = state::with(|s| s.store.chunk(&wanted.release.version, index as u32))
            .map_err(|_| MirrorError::UnknownRelease)?;
        let returned = rt
            .upload_chunk(store.canister, bytes)
            .await
            .map_err(call_failed("upload_chunk"))?;
        if &returned != hash {
            return Err(MirrorError::CallFailed {
                method: "upload_chunk".to_string(),
                message: format!(
                    "chunk {index} of {} stored under hash {}, expected {}",
                    wanted.release.version,
                    hex::encode(&returned),
                    hex::encode(hash)
                ),
            });
        }
        let mut m = subnets::mirror_of(store);
        if !m.stored.contains(&returned) {
            m.stored.push(returned);
        }
        subnets::set_mirror_of(store, m);
    }
    if subnets::mirror_of(store)
        .get(&wanted.release.sha256)
        .is_some()
    {
        return Ok(());
    }
    record_in_store(rt, store, wanted).await?;
    let mut m = subnets::mirror_of(store);
    if m.get(&wanted.release.sha256).is_none() {
        m.releases.push(MirroredRelease {
            release: wanted.release.clone(),
            chunk_hashes: wanted.chunk_hashes.clone(),
        });
    }
    subnets::set_mirror_of(store, m);
    Ok(())
}

/// A store canister's `record_release` of `wanted`, all of whose chunks its chunk store now
/// holds (nothing for the manager's own store, which is the manager).
async fn record_in_store<R: Runtime>(
    rt: &R,
    store: &StoreRef,
    wanted: &Wanted,
) -> Result<(), MirrorError> {
    let release = StoredRelease {
        version: wanted.release.version.clone(),
        module_hash: wanted.release.sha256.clone(),
        chunk_hashes: wanted
            .chunk_hashes
            .iter()
            .map(|h| serde_bytes::ByteBuf::from(h.clone()))
            .collect(),
        wasm_len: wanted.size,
    };
    store_update::<RecordRelease, R>(rt, store, (release,)).await
}

/// A store canister's `forget_release` of `version`, before its chunk store is cleared.
async fn forget_in_store<R: Runtime>(
    rt: &R,
    store: &StoreRef,
    version: &str,
) -> Result<(), MirrorError> {
    store_update::<ForgetRelease, R>(rt, store, (version.to_string(),)).await
}

/// Calls endpoint `E` of a store canister (none for the manager's own store); a reject, a
/// refusal or a reply that does not decode is a [`MirrorError`] naming the method.
async fn store_update<E, R>(rt: &R, store: &StoreRef, args: E::Args) -> Result<(), MirrorError>
where
    E: Endpoint,
    E::Reply: Reply,
    <E::Reply as Reply>::Err: std::fmt::Debug,
    R: Runtime,
{
    if store.own {
        return Ok(());
    }
    let args = candid::encode_args(args).expect("encoding a store canister's argument");
    let reply = call_store(rt, store, E::NAME, &args)
        .await
        .map_err(call_failed(E::NAME))?;
    match candid::decode_one::<E::Reply>(&reply) {
        Ok(reply) => reply
            .into_result()
            .map(drop)
            .map_err(|e| refused(E::NAME, e)),
        Err(e) => Err(refused(E::NAME, e)),
    }
}

/// Calls `method` of the store canister. A store added before stores ran code rejects it as
/// a canister without a module (IC0537, a canister error): it gets the store module, as
/// `add_subnet` gives a new store, and the call is sent again.
async fn call_store<R: Runtime>(
    rt: &R,
    store: &StoreRef,
    method: &'static str,
    args: &[u8],
) -> Result<Vec<u8>, CallError> {
    let reply = rt.call(store.canister, method, args, 0, None).await;
    if matches!(&reply, Err(e) if e.reject_code == CANISTER_ERROR)
        && subnets::install_missing_store_module(rt, store.canister).await
    {
        return rt.call(store.canister, method, args, 0, None).await;
    }
    reply
}

/// Reject code `CANISTER_ERROR` (interface spec, "Reject codes").
const CANISTER_ERROR: u32 = 5;

fn refused(method: &str, e: impl std::fmt::Debug) -> MirrorError {
    MirrorError::CallFailed {
        method: method.to_string(),
        message: format!("{e:?}"),
    }
}

pub fn status() -> ChunkStoreStatus {
    state::with(|s| s.mirror_state().status(MirrorGuard::busy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(n: u8, chunks: &[u8]) -> Wanted {
        Wanted {
            release: ReleaseRef {
                version: format!("1.0.{n}"),
                sha256: vec![n; 32],
            },
            chunk_hashes: chunks.iter().map(|c| vec![*c; 32]).collect(),
            size: chunks.len() as u64,
        }
    }

    fn mirrored(w: &Wanted) -> MirrorState {
        MirrorState {
            stored: w.chunk_hashes.clone(),
            releases: vec![MirroredRelease {
                release: w.release.clone(),
                chunk_hashes: w.chunk_hashes.clone(),
            }],
        }
    }

    #[test]
    fn a_mirrored_release_needs_nothing() {
        let a = wanted(1, &[1, 2]);
        assert_eq!(plan(&mirrored(&a), &a, &[], 3), Ok(Plan::Ready));
    }

    #[test]
    fn a_release_that_fits_beside_the_stored_ones_is_uploaded_and_shared_chunks_count_once() {
        let a = wanted(1, &[1, 2]);
        let b = wanted(2, &[2, 3]);
        assert_eq!(
            plan(&mirrored(&a), &b, std::slice::from_ref(&a), 3),
            Ok(Plan::Upload)
        );
    }

    #[test]
    fn when_full_the_store_is_cleared_and_only_needed_releases_come_back() {
        let default = wanted(1, &[1, 2]);
        let old = wanted(2, &[3, 4]);
        let mut state = mirrored(&default);
        state.stored.extend(old.chunk_hashes.clone());
        let new = wanted(3, &[5, 6]);
        assert_eq!(
            plan(&state, &new, std::slice::from_ref(&default), 4),
            Ok(Plan::ClearAndMirror(vec![default, new]))
        );
    }

    #[test]
    fn refuses_when_needed_releases_and_target_exceed_capacity() {
        let default = wanted(1, &[1, 2, 3]);
        let new = wanted(3, &[5, 6]);
        assert_eq!(
            plan(&mirrored(&default), &new, std::slice::from_ref(&default), 4),
            Err(MirrorError::DoesNotFit {
                needed: 5,
                capacity: 4
            })
        );
    }

    #[test]
    fn the_target_is_not_mirrored_twice_when_it_is_also_needed() {
        let default = wanted(1, &[1, 2, 3]);
        let other = wanted(2, &[4, 5]);
        assert_eq!(
            plan(
                &mirrored(&other),
                &default,
                std::slice::from_ref(&default),
                4
            ),
            Ok(Plan::ClearAndMirror(vec![default]))
        );
    }
}
