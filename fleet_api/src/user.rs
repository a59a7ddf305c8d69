//! The user canister's interface as the manager and the CLI see it.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

/// Argument of the user canister's `init` and `post_upgrade`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum UserCanisterArg {
    /// First install: who owns the canister and who may recover it.
    Init(UserInitArg),
    /// Upgrade: what release is being installed (the canister cannot read its own module hash).
    Upgrade(UserUpgradeArg),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UserInitArg {
    /// The end user; the only principal allowed to write the canister's data.
    pub owner: Principal,
    /// Second controller, derived from the owner's recovery phrase.
    pub recovery_principal: Principal,
    /// The fleet manager that provisioned the canister.
    pub manager: Principal,
    /// sha256 of the release being installed, as published in the manager.
    #[serde(with = "serde_bytes")]
    pub release_sha256: Vec<u8>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UserUpgradeArg {
    /// sha256 of the release being installed, as published in the manager.
    #[serde(with = "serde_bytes")]
    pub release_sha256: Vec<u8>,
}

/// Reply of `fleet_health`, checked by the manager after every upgrade.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FleetHealth {
    /// True when the canister considers itself able to serve its owner.
    pub ok: bool,
    /// The app version compiled into the running module (semver).
    pub version: String,
    /// Version of the stable-memory schema after migrations.
    pub schema_version: u32,
    /// Number of records stored.
    pub records: u64,
    /// sha256 over all records in key order: equal before and after a data-preserving upgrade.
    #[serde(with = "serde_bytes")]
    pub checksum: Vec<u8>,
    /// Why `ok` is false, when it is.
    pub message: Option<String>,
}
