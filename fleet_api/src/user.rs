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

/// Longest note key, in bytes. Keys are stable B-tree keys and must be bounded.
pub const MAX_KEY_LEN: usize = 128;
/// Longest note text, in bytes.
pub const MAX_TEXT_LEN: usize = 4096;
/// Most notes per canister. It bounds the stable memory a user holds (about 4.2 MiB of content)
/// and the work of a schema migration in `post_upgrade` and of the `fleet_health` checksum.
pub const MAX_NOTES: u64 = 10_000;
/// Most notes returned by one `list` call.
pub const MAX_NOTES_PAGE: u32 = 100;

/// A stored note.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    /// When the note was created (ns since the epoch); `None` where the running schema does not
    /// record it (schema 1). Notes migrated to schema 2 carry the time of the migration.
    pub created_at: Option<u64>,
    /// When the note was last written (ns since the epoch), as for `created_at`.
    pub updated_at: Option<u64>,
}

/// Argument of `put`: creates or replaces the note at `key`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PutNoteArg {
    pub key: String,
    pub text: String,
}

/// Argument of `list`: notes in key order after `start_after`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ListNotesArg {
    pub start_after: Option<String>,
    /// At most [`MAX_NOTES_PAGE`]; larger values are clamped to it.
    pub limit: u32,
}

/// One item of `list`.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NoteEntry {
    pub key: String,
    pub note: Note,
}

/// Why a notes request was refused; a refused request changes nothing.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum NoteError {
    /// Only the owner reads and writes notes (the anonymous principal never owns a canister).
    NotOwner {
        caller: Principal,
    },
    EmptyKey,
    KeyTooLong {
        len: u64,
        max: u64,
    },
    TextTooLong {
        len: u64,
        max: u64,
    },
    /// The canister holds [`MAX_NOTES`] notes already.
    TooManyNotes {
        max: u64,
    },
    NotFound {
        key: String,
    },
}

/// Reply of `info`: who owns, recovers and manages the canister, and what runs in it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UserCanisterInfo {
    pub owner: Principal,
    pub recovery_principal: Principal,
    pub manager: Principal,
    /// As given by the last install or upgrade argument; empty when an upgrade gave none.
    #[serde(with = "serde_bytes")]
    pub release_sha256: Vec<u8>,
    pub version: String,
    pub schema_version: u32,
    pub installed_at: u64,
    pub upgraded_at: Option<u64>,
}

/// The manager's acceptance of an upgrade request: it will upgrade the canister from a timer.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpgradeTicket {
    pub ticket: u64,
    pub canister_id: Principal,
    pub target_version: String,
}

/// Why the user canister's `request_upgrade` failed.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RequestUpgradeViaManagerError {
    /// Only the owner may ask for an upgrade.
    NotOwner { caller: Principal },
    /// The call to the manager failed or was rejected (interface spec, "Responses and reject
    /// codes").
    CallFailed { reject_code: u32, message: String },
    /// The manager refused the request with its own typed error.
    Refused {
        error: crate::rollout::RequestUpgradeError,
    },
    /// The manager's reply did not decode as `variant { Ok: UpgradeTicket; Err: _ }`.
    BadReply { message: String },
}

/// Why the user canister's `pending_releases` has no answer.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PendingReleasesError {
    /// The composite query to the manager failed (it is on another subnet, stopped, or
    /// rejected): ask the manager directly.
    ManagerUnreachable { reject_code: u32, message: String },
}

crate::endpoint::reply! {
    PendingReleasesReply(Vec<crate::governance::PendingRelease>, PendingReleasesError);
    /// Reply of `put` and `delete`.
    NoteWriteReply((), NoteError);
    GetNoteReply(Option<Note>, NoteError);
    ListNotesReply(Vec<NoteEntry>, NoteError);
    RequestUpgradeViaManagerReply(UpgradeTicket, RequestUpgradeViaManagerError);
}

/// The user canister's methods.
pub mod method {
    use super::*;

    crate::endpoint::endpoints! {
        update Put = "put" (PutNoteArg) -> NoteWriteReply;
        update Delete = "delete" (String) -> NoteWriteReply;
        query Get = "get" (String) -> GetNoteReply;
        query List = "list" (ListNotesArg) -> ListNotesReply;
        query Version = "version" () -> String;
        query ReleaseSha256 = "release_sha256" () -> serde_bytes::ByteBuf;
        query Owner = "owner" () -> Principal;
        query Info = "info" () -> UserCanisterInfo;
        query GetFleetHealth = "fleet_health" () -> FleetHealth;
        update RequestUpgrade = "request_upgrade" (Option<String>)
            -> RequestUpgradeViaManagerReply;
        /// A composite query to the manager: the releases that may reach this canister, and
        /// from when.
        query PendingReleases = "pending_releases" () -> PendingReleasesReply;
    }
}
