//! End-user recovery of one user canister, as one of its controllers and without the
//! manager's help: status, upgrade from a wasm file, rollback to the latest snapshot, and
//! detaching from the manager.
//!
//! The upgrade follows the fleet's pipeline (DESIGN.md): stop → snapshot → install_chunked_code
//! → start → health check, loading the snapshot if the health check fails. A stopped canister
//! is always started again, whatever failed.

use candid::Principal;
use fleet_api::user::{FleetHealth, UserCanisterArg, UserUpgradeArg};
use serde::Serialize;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::backend::mgmt::{
    self, CanisterStatus, ChunkHash, InstallChunkedCodeArgs, InstallMode, RunStatus,
    SettingsUpdate, Snapshot,
};
use crate::backend::{CallError, Ic, Management};
use crate::error::CliError;
use crate::wasm::{WasmModule, MAX_CHUNKS};

/// Receives progress of long operations (the CLI draws it with indicatif).
pub trait Progress {
    fn step(&mut self, message: &str);
    fn chunk_uploaded(&mut self, done: usize, total: usize);
}

/// Progress that is not shown.
pub struct Silent;
impl Progress for Silent {
    fn step(&mut self, _: &str) {}
    fn chunk_uploaded(&mut self, _: usize, _: usize) {}
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotView {
    pub id: String,
    pub taken_at_timestamp_nanos: u64,
    pub total_size: u64,
}

impl From<&Snapshot> for SnapshotView {
    fn from(s: &Snapshot) -> Self {
        Self {
            id: hex::encode(&s.id),
            taken_at_timestamp_nanos: s.taken_at_timestamp,
            total_size: s.total_size,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub canister: Principal,
    pub status: RunStatus,
    pub controllers: Vec<Principal>,
    pub caller_is_controller: bool,
    pub module_hash: Option<String>,
    pub cycles: String,
    /// Reply of the canister's `version` query, or why there is none.
    pub version: Result<String, String>,
    pub snapshots: Vec<SnapshotView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeOutcome {
    Upgraded,
    AlreadyInstalled,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpgradeReport {
    pub canister: Principal,
    pub outcome: UpgradeOutcome,
    pub module_hash_before: Option<String>,
    pub module_hash: String,
    pub snapshot: Option<String>,
    pub version: Option<String>,
    pub chunks: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    pub canister: Principal,
    pub snapshot: SnapshotView,
    pub module_hash: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DetachPlan {
    pub canister: Principal,
    pub controllers_before: Vec<Principal>,
    pub controllers_after: Vec<Principal>,
}

fn call(step: &str) -> impl FnOnce(CallError) -> CliError + '_ {
    move |source| CliError::Call {
        step: step.to_string(),
        source,
    }
}

/// `canister_status`, telling "not a controller" apart from other failures.
pub fn status_of(ic: &dyn Ic, canister: Principal) -> Result<CanisterStatus, CliError> {
    ic.canister_status(canister).map_err(|source| {
        if source.is_not_authorized() {
            CliError::NotController {
                canister,
                sender: ic.sender(),
                source,
            }
        } else {
            CliError::Call {
                step: "canister_status".into(),
                source,
            }
        }
    })
}

fn hash_hex(h: &Option<ByteBuf>) -> Option<String> {
    h.as_ref().map(hex::encode)
}

fn query_version(ic: &dyn Ic, canister: Principal) -> Result<String, String> {
    mgmt::query_no_arg::<String>(ic, canister, "version").map_err(|e| e.to_string())
}

pub fn status(ic: &dyn Ic, canister: Principal) -> Result<StatusReport, CliError> {
    let st = status_of(ic, canister)?;
    let snapshots = ic
        .list_canister_snapshots(canister)
        .map_err(call("list_canister_snapshots"))?;
    Ok(StatusReport {
        canister,
        status: st.status,
        caller_is_controller: st.settings.controllers.contains(&ic.sender()),
        controllers: st.settings.controllers,
        module_hash: hash_hex(&st.module_hash),
        cycles: st.cycles.0.to_string(),
        version: query_version(ic, canister),
        snapshots: snapshots.iter().map(SnapshotView::from).collect(),
    })
}

/// Starts the canister again; reports a failure without hiding the error that led here.
fn start_again(ic: &dyn Ic, canister: Principal) -> Result<(), String> {
    ic.start_canister(canister)
        .map_err(|e| format!("starting the canister again failed: {e}"))
}

fn clear_store(ic: &dyn Ic, canister: Principal) {
    // The chunks are only needed for this install; a failure here changes nothing else.
    let _ = ic.clear_chunk_store(canister);
}

/// Why the upgraded canister is not healthy, if it is not.
fn health_problem(
    ic: &dyn Ic,
    canister: Principal,
    wasm: &WasmModule,
    expected_version: Option<&str>,
) -> Result<String, String> {
    let st = ic
        .canister_status(canister)
        .map_err(|e| format!("canister_status: {e}"))?;
    if st.module_hash.as_ref().map(|h| h.as_slice()) != Some(&wasm.sha256[..]) {
        return Err(format!(
            "module hash is {:?}, not the uploaded {}",
            hash_hex(&st.module_hash),
            hex::encode(wasm.sha256)
        ));
    }
    if st.status != RunStatus::Running {
        return Err(format!("canister is {:?}, not running", st.status));
    }
    let health: FleetHealth = mgmt::query_no_arg(ic, canister, "fleet_health")
        .map_err(|e| format!("fleet_health: {e}"))?;
    if !health.ok {
        return Err(format!(
            "fleet_health reports not ok: {}",
            health.message.unwrap_or_default()
        ));
    }
    if let Some(v) = expected_version {
        if health.version != v {
            return Err(format!("version is {}, expected {v}", health.version));
        }
    }
    Ok(health.version)
}

/// Loads `snapshot` (stop, load, start; start even when loading fails).
fn restore(ic: &dyn Ic, canister: Principal, snapshot: &[u8]) -> Result<(), String> {
    let stopped = ic
        .stop_canister(canister)
        .map_err(|e| format!("stop_canister: {e}"));
    let loaded = stopped.and_then(|()| {
        ic.load_canister_snapshot(canister, snapshot.to_vec())
            .map_err(|e| format!("load_canister_snapshot: {e}"))
    });
    let started = start_again(ic, canister);
    loaded.and(started)
}

/// Takes a snapshot; when the canister is at its snapshot limit, replaces the oldest one.
fn take_snapshot(ic: &dyn Ic, canister: Principal) -> Result<Snapshot, CallError> {
    match ic.take_canister_snapshot(canister, None) {
        Ok(s) => Ok(s),
        Err(first) => {
            let existing = ic.list_canister_snapshots(canister).unwrap_or_default();
            match existing.iter().min_by_key(|s| s.taken_at_timestamp) {
                Some(oldest) => ic.take_canister_snapshot(canister, Some(oldest.id.to_vec())),
                None => Err(first),
            }
        }
    }
}

/// Upgrades `canister` to `wasm` as a controller, through the canister's own chunk store.
pub fn upgrade(
    ic: &dyn Ic,
    canister: Principal,
    wasm: &WasmModule,
    expected_version: Option<&str>,
    progress: &mut dyn Progress,
) -> Result<UpgradeReport, CliError> {
    progress.step("checking the canister");
    let before = status_of(ic, canister)?;
    let module_hash = hex::encode(wasm.sha256);
    if before.module_hash.as_ref().map(|h| h.as_slice()) == Some(&wasm.sha256[..]) {
        return Ok(UpgradeReport {
            canister,
            outcome: UpgradeOutcome::AlreadyInstalled,
            module_hash_before: hash_hex(&before.module_hash),
            module_hash,
            snapshot: None,
            version: query_version(ic, canister).ok(),
            chunks: 0,
        });
    }
    let total = wasm.chunk_count();
    if total > MAX_CHUNKS {
        return Err(CliError::Usage(format!(
            "the module needs {total} chunks; a chunk store holds {MAX_CHUNKS}"
        )));
    }
    let arg = candid::encode_one(UserCanisterArg::Upgrade(UserUpgradeArg {
        release_sha256: wasm.sha256.to_vec(),
    }))
    .map_err(|e| CliError::Io(format!("encoding the upgrade argument: {e}")))?;

    // Upload while the canister still runs, to keep it stopped for as short as possible.
    progress.step("uploading chunks");
    let mut hashes = Vec::with_capacity(total);
    for (i, chunk) in wasm.chunks().enumerate() {
        let expected: [u8; 32] = Sha256::digest(chunk).into();
        let hash = ic
            .upload_chunk(canister, chunk.to_vec())
            .map_err(|source| {
                clear_store(ic, canister);
                CliError::Call {
                    step: format!("upload_chunk {}/{total}", i + 1),
                    source,
                }
            })?;
        if hash != expected {
            clear_store(ic, canister);
            return Err(CliError::Call {
                step: format!("upload_chunk {}/{total}", i + 1),
                source: CallError::Decode {
                    method: "upload_chunk".into(),
                    message: "returned a hash that is not the chunk's sha256".into(),
                },
            });
        }
        hashes.push(ChunkHash {
            hash: ByteBuf::from(hash),
        });
        progress.chunk_uploaded(i + 1, total);
    }

    progress.step("stopping");
    if let Err(source) = ic.stop_canister(canister) {
        let _ = start_again(ic, canister);
        clear_store(ic, canister);
        return Err(CliError::Call {
            step: "stop_canister".into(),
            source,
        });
    }
    progress.step("taking a snapshot");
    let snapshot = match take_snapshot(ic, canister) {
        Ok(s) => s,
        Err(source) => {
            let restarted = start_again(ic, canister);
            clear_store(ic, canister);
            return Err(match restarted {
                Ok(()) => CliError::Call {
                    step: "take_canister_snapshot".into(),
                    source,
                },
                Err(e) => CliError::RollbackFailed {
                    what: format!("take_canister_snapshot failed: {source}"),
                    rollback_error: e,
                },
            });
        }
    };
    progress.step("installing");
    let installed = ic.install_chunked_code(InstallChunkedCodeArgs {
        mode: InstallMode::Upgrade(None),
        target_canister: canister,
        store_canister: Some(canister),
        chunk_hashes_list: hashes,
        wasm_module_hash: ByteBuf::from(wasm.sha256.to_vec()),
        arg: ByteBuf::from(arg),
        sender_canister_version: None,
    });
    clear_store(ic, canister);
    if let Err(source) = installed {
        // A failed install leaves the previous module and state in place (IC interface spec,
        // "ic_install_code": the call is atomic).
        return Err(match start_again(ic, canister) {
            Ok(()) => CliError::InstallFailed { source },
            Err(e) => CliError::RollbackFailed {
                what: format!("install failed: {source}"),
                rollback_error: e,
            },
        });
    }
    progress.step("starting");
    let started = start_again(ic, canister);
    progress.step("checking health");
    let health = started.and_then(|()| health_problem(ic, canister, wasm, expected_version));
    match health {
        Ok(version) => Ok(UpgradeReport {
            canister,
            outcome: UpgradeOutcome::Upgraded,
            module_hash_before: hash_hex(&before.module_hash),
            module_hash,
            snapshot: Some(hex::encode(&snapshot.id)),
            version: Some(version),
            chunks: total,
        }),
        Err(reason) => {
            progress.step("health check failed: restoring the snapshot");
            match restore(ic, canister, &snapshot.id) {
                Ok(()) => Err(CliError::RolledBack { reason }),
                Err(e) => Err(CliError::RollbackFailed {
                    what: format!("health check failed: {reason}"),
                    rollback_error: e,
                }),
            }
        }
    }
}

/// Loads the latest snapshot (stop, load, start).
pub fn rollback(
    ic: &dyn Ic,
    canister: Principal,
    progress: &mut dyn Progress,
) -> Result<RollbackReport, CliError> {
    progress.step("checking the canister");
    status_of(ic, canister)?;
    let snapshots = ic
        .list_canister_snapshots(canister)
        .map_err(call("list_canister_snapshots"))?;
    let latest = snapshots
        .iter()
        .max_by_key(|s| s.taken_at_timestamp)
        .ok_or(CliError::NoSnapshot { canister })?;
    progress.step("restoring the latest snapshot");
    restore(ic, canister, &latest.id).map_err(|e| CliError::RollbackFailed {
        what: "rollback".into(),
        rollback_error: e,
    })?;
    let after = status_of(ic, canister)?;
    Ok(RollbackReport {
        canister,
        snapshot: latest.into(),
        module_hash: hash_hex(&after.module_hash),
        version: query_version(ic, canister).ok(),
    })
}

/// The controller list after removing `manager` (or, without it, every controller but the
/// caller). Refuses any list that does not keep the caller, the recovery principal.
pub fn plan_detach(
    ic: &dyn Ic,
    canister: Principal,
    manager: Option<Principal>,
) -> Result<DetachPlan, CliError> {
    let st = status_of(ic, canister)?;
    let me = ic.sender();
    let before = st.settings.controllers;
    if !before.contains(&me) {
        return Err(CliError::Refused(format!(
            "{me} is not among the controllers of {canister}"
        )));
    }
    if let Some(m) = manager {
        if m == me {
            return Err(CliError::Refused(
                "the manager given is the recovery principal itself".into(),
            ));
        }
        if !before.contains(&m) {
            return Err(CliError::Refused(format!(
                "{m} is not a controller of {canister}"
            )));
        }
    }
    let after: Vec<Principal> = before
        .iter()
        .copied()
        .filter(|c| *c == me || manager.is_some_and(|m| *c != m))
        .collect();
    if !after.contains(&me) {
        return Err(CliError::Refused(
            "the new controller list would not contain the recovery principal".into(),
        ));
    }
    if after.len() == before.len() {
        return Err(CliError::Refused(format!(
            "{canister} has no other controller to remove"
        )));
    }
    Ok(DetachPlan {
        canister,
        controllers_before: before,
        controllers_after: after,
    })
}

/// Writes the planned controller list and checks it took effect.
pub fn apply_detach(ic: &dyn Ic, plan: &DetachPlan) -> Result<Vec<Principal>, CliError> {
    if !plan.controllers_after.contains(&ic.sender()) {
        return Err(CliError::Refused(
            "the new controller list would not contain the recovery principal".into(),
        ));
    }
    ic.update_settings(
        plan.canister,
        SettingsUpdate {
            controllers: Some(plan.controllers_after.clone()),
        },
    )
    .map_err(call("update_settings"))?;
    Ok(status_of(ic, plan.canister)?.settings.controllers)
}
