//! Types as laid out in stable memory, with their `Storable` encodings.

use std::borrow::Cow;
use std::cmp::Ordering;

use candid::{CandidType, Decode, Encode, Principal};
use ic_stable_structures::storable::{Bound, Storable};
use serde::{Deserialize, Serialize};

use crate::types::{ReleaseInterface, ReleaseMeta, StoreError, MAX_VERSION_LEN};

/// A parsed semantic version, ordered by semver precedence (build metadata breaks ties), so that
/// the release map lists versions in release order: `1.9.0 < 1.10.0`, `2.0.0-rc.1 < 2.0.0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionKey(pub semver::Version);

impl VersionKey {
    pub fn parse(version: &str) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidVersion {
            version: version.chars().take(MAX_VERSION_LEN + 8).collect(),
            reason,
        };
        if version.len() > MAX_VERSION_LEN {
            return Err(invalid(format!("longer than {MAX_VERSION_LEN} bytes")));
        }
        let parsed = semver::Version::parse(version).map_err(|e| invalid(e.to_string()))?;
        Ok(VersionKey(parsed))
    }
}

impl std::fmt::Display for VersionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialOrd for VersionKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VersionKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl Storable for VersionKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.to_string().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        self.0.to_string().into_bytes()
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        // Only versions that parsed are ever written, so a failure here is corrupted memory.
        let text = std::str::from_utf8(&bytes).expect("stored version is utf-8");
        VersionKey(semver::Version::parse(text).expect("stored version is valid semver"))
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: MAX_VERSION_LEN as u32,
        is_fixed_size: false,
    };
}

/// An upload that has begun and is not finalized yet.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PendingUpload {
    pub version: String,
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
    pub total_size: u64,
    pub chunk_count: u32,
    pub notes: String,
    pub uploader: Principal,
    pub started_at: u64,
}

macro_rules! candid_storable {
    ($t:ty) => {
        impl Storable for $t {
            fn to_bytes(&self) -> Cow<'_, [u8]> {
                Cow::Owned(Encode!(self).expect("candid encoding of a stored value"))
            }

            fn into_bytes(self) -> Vec<u8> {
                Encode!(&self).expect("candid encoding of a stored value")
            }

            fn from_bytes(bytes: Cow<[u8]>) -> Self {
                Decode!(&bytes, $t).expect("stored value decodes")
            }

            // Up to 100 chunk hashes and 4 KiB of notes: bounded in practice, but candid's
            // encoding has no fixed maximum, and values need no bound in a BTreeMap.
            const BOUND: Bound = Bound::Unbounded;
        }
    };
}

candid_storable!(PendingUpload);
candid_storable!(ReleaseMeta);
candid_storable!(ReleaseInterface);

/// Key of a chunk: the module's sha256 and the chunk's index. Keying by content, not version,
/// keeps the key fixed-size and makes a module's chunks one contiguous range.
pub type ChunkKey = ([u8; 32], u32);
