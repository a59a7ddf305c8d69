//! The store's state, over any stable [`Memory`] (the canister's virtual memories, or
//! `VectorMemory` in the native tests): who the manager is, and the releases recorded.
//! Everything lives in stable structures, so an upgrade keeps it without a `pre_upgrade`.

use std::borrow::Cow;
use std::collections::BTreeSet;

use candid::{CandidType, Decode, Encode, Principal};
use fleet_api::store_canister::{
    StoreCanisterError, StoredRelease, MAX_RELEASE_CHUNKS, MAX_STORED_RELEASES,
    MAX_STORED_VERSION_LEN, RELEASE_CHUNK_SIZE,
};
use ic_stable_structures::storable::{Bound, Storable};
use ic_stable_structures::{Memory, StableBTreeMap, StableCell};
use serde::Deserialize;
use wasm_store::VersionKey;

/// Version of the stable layout this module writes; `post_upgrade` refuses any other.
pub const LAYOUT_VERSION: u32 = 1;

/// Memory 0: the layout version (0 before `init`) and the manager.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub layout_version: u32,
    pub manager: Principal,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            layout_version: 0,
            manager: Principal::anonymous(),
        }
    }
}

/// Memory 1's values: a recorded release (its version canonical, as its key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record(pub StoredRelease);

fn encode<T: CandidType>(value: &T) -> Vec<u8> {
    Encode!(value).expect("candid encoding of a stored value")
}

/// Only values this crate encoded are ever read: a failure is corrupted memory.
fn decode<T: CandidType + for<'de> Deserialize<'de>>(bytes: &[u8]) -> T {
    Decode!(bytes, T).expect("candid decoding of a stored value")
}

impl Storable for Config {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(encode(self))
    }

    fn into_bytes(self) -> Vec<u8> {
        encode(&self)
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        decode(&bytes)
    }

    const BOUND: Bound = Bound::Unbounded;
}

impl Storable for Record {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(encode(&self.0))
    }

    fn into_bytes(self) -> Vec<u8> {
        encode(&self.0)
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Record(decode(&bytes))
    }

    const BOUND: Bound = Bound::Unbounded;
}

pub struct Store<M: Memory> {
    config: StableCell<Config, M>,
    releases: StableBTreeMap<VersionKey, Record, M>,
}

impl<M: Memory> Store<M> {
    pub fn open(config: M, releases: M) -> Self {
        Store {
            config: StableCell::init(config, Config::default()),
            releases: StableBTreeMap::init(releases),
        }
    }

    pub fn config(&self) -> &Config {
        self.config.get()
    }

    /// First install: records the manager. The anonymous principal cannot be one.
    pub fn initialize(&mut self, manager: Principal) -> Result<(), String> {
        if manager == Principal::anonymous() {
            return Err("the manager cannot be the anonymous principal".into());
        }
        self.config.set(Config {
            layout_version: LAYOUT_VERSION,
            manager,
        });
        Ok(())
    }

    /// Upgrade: the memory must be this module's layout.
    pub fn check_layout(&self) -> Result<(), String> {
        match self.config().layout_version {
            LAYOUT_VERSION => Ok(()),
            v => Err(format!(
                "stable layout version {v}, this module reads {LAYOUT_VERSION}"
            )),
        }
    }

    /// Whether `caller` is the manager (never the anonymous principal, which `initialize`
    /// refuses as manager).
    pub fn is_manager(&self, caller: Principal) -> bool {
        caller != Principal::anonymous() && caller == self.config().manager
    }

    fn manager_only(&self, caller: Principal) -> Result<(), StoreCanisterError> {
        if self.is_manager(caller) {
            Ok(())
        } else {
            Err(StoreCanisterError::NotAuthorized { caller })
        }
    }

    /// Records `release` (replacing a record of the same version). Manager only; a refused
    /// call changes nothing.
    pub fn record(
        &mut self,
        caller: Principal,
        release: StoredRelease,
    ) -> Result<(), StoreCanisterError> {
        self.manager_only(caller)?;
        let (key, release) = validate(release)?;
        if !self.releases.contains_key(&key) && self.releases.len() >= MAX_STORED_RELEASES as u64 {
            return Err(StoreCanisterError::TooManyReleases {
                max: MAX_STORED_RELEASES,
            });
        }
        self.releases.insert(key, Record(release));
        Ok(())
    }

    /// Forgets `version`; `true` if it was recorded. Manager only.
    pub fn forget(&mut self, caller: Principal, version: &str) -> Result<bool, StoreCanisterError> {
        self.manager_only(caller)?;
        let key = version_key(version)?;
        Ok(self.releases.remove(&key).is_some())
    }

    /// Every release recorded, in version order.
    pub fn releases(&self) -> Vec<StoredRelease> {
        self.releases.iter().map(|e| e.value().0).collect()
    }

    pub fn release_count(&self) -> u32 {
        self.releases.len() as u32
    }

    /// Distinct chunk hashes the recorded releases name.
    pub fn chunk_count(&self) -> u32 {
        let mut hashes = BTreeSet::new();
        for e in self.releases.iter() {
            hashes.extend(e.value().0.chunk_hashes.into_iter().map(|h| h.into_vec()));
        }
        hashes.len() as u32
    }
}

fn version_key(version: &str) -> Result<VersionKey, StoreCanisterError> {
    let invalid = |reason: String| StoreCanisterError::InvalidVersion {
        version: version.chars().take(MAX_STORED_VERSION_LEN + 8).collect(),
        reason,
    };
    if version.is_empty() {
        return Err(invalid("empty".into()));
    }
    VersionKey::parse(version).map_err(|e| match e {
        wasm_store::StoreError::InvalidVersion { reason, .. } => invalid(reason),
        other => invalid(other.to_string()),
    })
}

/// Checks a release before it is recorded: a semver version, 32-byte hashes, 1 to 100 chunks
/// and a length that makes exactly that many chunks of 1 MiB (the last one shorter). Returns
/// the key and the release with its version in canonical form.
pub fn validate(
    mut release: StoredRelease,
) -> Result<(VersionKey, StoredRelease), StoreCanisterError> {
    let key = version_key(&release.version)?;
    if release.module_hash.len() != 32 {
        return Err(StoreCanisterError::InvalidHash {
            field: "module_hash".into(),
            len: release.module_hash.len() as u32,
        });
    }
    let count = release.chunk_hashes.len();
    if count == 0 || count > MAX_RELEASE_CHUNKS as usize {
        return Err(StoreCanisterError::InvalidChunkCount {
            count: count.min(u32::MAX as usize) as u32,
            max: MAX_RELEASE_CHUNKS,
        });
    }
    if let Some((i, h)) = release
        .chunk_hashes
        .iter()
        .enumerate()
        .find(|(_, h)| h.len() != 32)
    {
        return Err(StoreCanisterError::InvalidHash {
            field: format!("chunk_hashes[{i}]"),
            len: h.len() as u32,
        });
    }
    if release.wasm_len == 0 || release.wasm_len.div_ceil(RELEASE_CHUNK_SIZE) != count as u64 {
        return Err(StoreCanisterError::InvalidLength {
            wasm_len: release.wasm_len,
            chunks: count as u32,
            chunk_size: RELEASE_CHUNK_SIZE,
        });
    }
    release.version = key.to_string();
    Ok((key, release))
}
