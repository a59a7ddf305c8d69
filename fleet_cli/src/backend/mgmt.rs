//! Typed calls to the management canister `aaaaa-aa` (IC interface spec, "The IC management
//! canister"), built on [`Ic`].
//!
//! The reply types name only the fields the CLI reads: candid record subtyping lets a reply
//! with more fields (newer replicas add some) decode into them, so the CLI keeps working as
//! the interface grows.

use candid::{CandidType, Deserialize, Nat, Principal};
use serde::Serialize;
use serde_bytes::ByteBuf;

use super::{CallError, Ic};

/// Largest chunk `upload_chunk` accepts (IC interface spec, "ic_upload_chunk": 1 MiB).
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024;

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct CanisterIdRecord {
    pub canister_id: Principal,
}

#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum RunStatus {
    #[serde(rename = "running")]
    Running,
    #[serde(rename = "stopping")]
    Stopping,
    #[serde(rename = "stopped")]
    Stopped,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct StatusSettings {
    pub controllers: Vec<Principal>,
}

/// The part of `canister_status`'s reply the CLI uses.
#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct CanisterStatus {
    pub status: RunStatus,
    pub settings: StatusSettings,
    pub module_hash: Option<ByteBuf>,
    pub cycles: Nat,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct UploadChunkArgs {
    pub canister_id: Principal,
    pub chunk: ByteBuf,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChunkHash {
    pub hash: ByteBuf,
}

#[derive(CandidType, Deserialize, Clone, Debug, Default)]
pub struct UpgradeFlags {
    pub skip_pre_upgrade: Option<bool>,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub enum InstallMode {
    #[serde(rename = "install")]
    Install,
    #[serde(rename = "reinstall")]
    Reinstall,
    #[serde(rename = "upgrade")]
    Upgrade(Option<UpgradeFlags>),
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct InstallChunkedCodeArgs {
    pub mode: InstallMode,
    pub target_canister: Principal,
    pub store_canister: Option<Principal>,
    pub chunk_hashes_list: Vec<ChunkHash>,
    pub wasm_module_hash: ByteBuf,
    pub arg: ByteBuf,
    pub sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct TakeSnapshotArgs {
    pub canister_id: Principal,
    pub replace_snapshot: Option<ByteBuf>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub id: ByteBuf,
    pub taken_at_timestamp: u64,
    pub total_size: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct LoadSnapshotArgs {
    pub canister_id: Principal,
    pub snapshot_id: ByteBuf,
    pub sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, Default)]
pub struct SettingsUpdate {
    pub controllers: Option<Vec<Principal>>,
}

#[derive(CandidType, Deserialize, Clone, Debug)]
pub struct UpdateSettingsArgs {
    pub canister_id: Principal,
    pub settings: SettingsUpdate,
}

/// Effective canister id of a management-canister call (IC interface spec, "Effective
/// canister id"): the `canister_id` (or, for `install_chunked_code`, `target_canister`) field
/// of the candid argument record.
pub fn effective_canister_id(arg: &[u8]) -> Option<Principal> {
    /// The one field of `install_chunked_code`'s argument that names the canister.
    #[derive(Deserialize, CandidType)]
    struct WithTarget {
        target_canister: Principal,
    }
    if let Ok(r) = candid::decode_one::<CanisterIdRecord>(arg) {
        return Some(r.canister_id);
    }
    candid::decode_one::<WithTarget>(arg)
        .ok()
        .map(|r| r.target_canister)
}

/// Encodes `arg`, makes an update call to the management canister and decodes the single
/// reply value.
fn update_typed<A, R>(ic: &(impl Ic + ?Sized), method: &str, arg: &A) -> Result<R, CallError>
where
    A: CandidType,
    R: CandidType + for<'de> Deserialize<'de>,
{
    let bytes = candid::encode_one(arg).map_err(|e| decode_error(method, e))?;
    let reply = ic.update(Principal::management_canister(), method, bytes)?;
    candid::decode_one(&reply).map_err(|e| decode_error(method, e))
}

fn decode_error(method: &str, e: candid::Error) -> CallError {
    CallError::Decode {
        method: method.to_string(),
        message: e.to_string(),
    }
}

fn unit(method: &str, reply: Vec<u8>) -> Result<(), CallError> {
    candid::decode_args::<()>(&reply).map_err(|e| decode_error(method, e))
}

/// Management-canister calls, available on every [`Ic`].
pub trait Management: Ic {
    fn canister_status(&self, canister: Principal) -> Result<CanisterStatus, CallError> {
        update_typed(
            self,
            "canister_status",
            &CanisterIdRecord {
                canister_id: canister,
            },
        )
    }

    /// Stops the canister; the call returns once it is stopped (IC interface spec, "ic_stop_canister").
    fn stop_canister(&self, canister: Principal) -> Result<(), CallError> {
        let arg = candid::encode_one(CanisterIdRecord {
            canister_id: canister,
        })
        .map_err(|e| decode_error("stop_canister", e))?;
        unit(
            "stop_canister",
            self.update(Principal::management_canister(), "stop_canister", arg)?,
        )
    }

    fn start_canister(&self, canister: Principal) -> Result<(), CallError> {
        let arg = candid::encode_one(CanisterIdRecord {
            canister_id: canister,
        })
        .map_err(|e| decode_error("start_canister", e))?;
        unit(
            "start_canister",
            self.update(Principal::management_canister(), "start_canister", arg)?,
        )
    }

    fn take_canister_snapshot(
        &self,
        canister: Principal,
        replace: Option<Vec<u8>>,
    ) -> Result<Snapshot, CallError> {
        update_typed(
            self,
            "take_canister_snapshot",
            &TakeSnapshotArgs {
                canister_id: canister,
                replace_snapshot: replace.map(ByteBuf::from),
            },
        )
    }

    fn load_canister_snapshot(
        &self,
        canister: Principal,
        snapshot_id: Vec<u8>,
    ) -> Result<(), CallError> {
        let arg = candid::encode_one(LoadSnapshotArgs {
            canister_id: canister,
            snapshot_id: ByteBuf::from(snapshot_id),
            sender_canister_version: None,
        })
        .map_err(|e| decode_error("load_canister_snapshot", e))?;
        unit(
            "load_canister_snapshot",
            self.update(
                Principal::management_canister(),
                "load_canister_snapshot",
                arg,
            )?,
        )
    }

    fn list_canister_snapshots(&self, canister: Principal) -> Result<Vec<Snapshot>, CallError> {
        update_typed(
            self,
            "list_canister_snapshots",
            &CanisterIdRecord {
                canister_id: canister,
            },
        )
    }

    /// Uploads one chunk (≤ [`MAX_CHUNK_SIZE`]) into `store`'s chunk store; returns its sha256.
    fn upload_chunk(&self, store: Principal, chunk: Vec<u8>) -> Result<Vec<u8>, CallError> {
        let reply: ChunkHash = update_typed(
            self,
            "upload_chunk",
            &UploadChunkArgs {
                canister_id: store,
                chunk: ByteBuf::from(chunk),
            },
        )?;
        Ok(reply.hash.into_vec())
    }

    fn clear_chunk_store(&self, store: Principal) -> Result<(), CallError> {
        let arg = candid::encode_one(CanisterIdRecord { canister_id: store })
            .map_err(|e| decode_error("clear_chunk_store", e))?;
        unit(
            "clear_chunk_store",
            self.update(Principal::management_canister(), "clear_chunk_store", arg)?,
        )
    }

    fn install_chunked_code(&self, args: InstallChunkedCodeArgs) -> Result<(), CallError> {
        let arg = candid::encode_one(args).map_err(|e| decode_error("install_chunked_code", e))?;
        unit(
            "install_chunked_code",
            self.update(
                Principal::management_canister(),
                "install_chunked_code",
                arg,
            )?,
        )
    }

    fn update_settings(
        &self,
        canister: Principal,
        settings: SettingsUpdate,
    ) -> Result<(), CallError> {
        let arg = candid::encode_one(UpdateSettingsArgs {
            canister_id: canister,
            settings,
        })
        .map_err(|e| decode_error("update_settings", e))?;
        unit(
            "update_settings",
            self.update(Principal::management_canister(), "update_settings", arg)?,
        )
    }
}

impl<T: Ic + ?Sized> Management for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_canister_id_is_read_from_the_argument() {
        let c = Principal::from_text("rrkah-fqaaa-aaaaa-aaaaq-cai").unwrap();
        let status = candid::encode_one(CanisterIdRecord { canister_id: c }).unwrap();
        assert_eq!(effective_canister_id(&status), Some(c));
        let install = candid::encode_one(InstallChunkedCodeArgs {
            mode: InstallMode::Upgrade(None),
            target_canister: c,
            store_canister: Some(c),
            chunk_hashes_list: vec![],
            wasm_module_hash: serde_bytes::ByteBuf::from(vec![0; 32]),
            arg: serde_bytes::ByteBuf::new(),
            sender_canister_version: None,
        })
        .unwrap();
        assert_eq!(effective_canister_id(&install), Some(c));
        assert_eq!(
            effective_canister_id(&candid::encode_one(7u8).unwrap()),
            None
        );
    }
}
