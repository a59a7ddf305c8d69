//! End-user recovery of one user canister, as one of its controllers and without the
//! manager's help: status, upgrade from a wasm file, rollback to the latest snapshot, and
//! detaching from the manager.
//!
//! The upgrade takes the steps of the manager's pipeline (`rollout_core::pipeline`): stop →
//! snapshot → install_chunked_code → start → health check, loading the snapshot if the health
//! check fails. A stopped canister is always started again, whatever failed.

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
    progress.step("uploading");
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

#[cfg(test)]
mod tests {
    //! The pipeline's ordering and failure handling, against an in-memory model of the
    //! management canister. End-to-end runs on ic_sim with the real user canister belong in
    //! integration tests.
    use super::*;
    use candid::{encode_one, Nat};
    use std::cell::RefCell;
    use std::collections::HashMap;

    use crate::backend::mgmt::{
        CanisterIdRecord, LoadSnapshotArgs, StatusSettings, TakeSnapshotArgs, UpdateSettingsArgs,
        UploadChunkArgs,
    };

    const OLD: [u8; 32] = [1; 32];

    struct Model {
        controllers: Vec<Principal>,
        running: bool,
        module: Vec<u8>,
        snapshots: Vec<(Vec<u8>, Vec<u8>)>,
        store: HashMap<Vec<u8>, Vec<u8>>,
        healthy: HashMap<Vec<u8>, bool>,
        fail_install: bool,
        log: Vec<String>,
    }

    struct Fake {
        me: Principal,
        m: RefCell<Model>,
    }

    fn denied() -> CallError {
        CallError::Reject {
            code: 5,
            message: "Only controllers can call".into(),
            error_code: Some("IC0512".into()),
        }
    }

    impl Ic for Fake {
        fn update(&self, _c: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
            let mut m = self.m.borrow_mut();
            if !m.controllers.contains(&self.me) {
                return Err(denied());
            }
            m.log.push(method.to_string());
            let unit = || Ok(candid::encode_args(()).unwrap());
            match method {
                "canister_status" => {
                    let _: CanisterIdRecord = candid::decode_one(&arg).unwrap();
                    Ok(encode_one(CanisterStatus {
                        status: if m.running {
                            RunStatus::Running
                        } else {
                            RunStatus::Stopped
                        },
                        settings: StatusSettings {
                            controllers: m.controllers.clone(),
                        },
                        module_hash: Some(ByteBuf::from(m.module.clone())),
                        cycles: Nat::from(5u32),
                    })
                    .unwrap())
                }
                "upload_chunk" => {
                    let a: UploadChunkArgs = candid::decode_one(&arg).unwrap();
                    let h = Sha256::digest(&a.chunk).to_vec();
                    m.store.insert(h.clone(), a.chunk.into_vec());
                    Ok(encode_one(ChunkHash {
                        hash: ByteBuf::from(h),
                    })
                    .unwrap())
                }
                "clear_chunk_store" => {
                    m.store.clear();
                    unit()
                }
                "stop_canister" => {
                    m.running = false;
                    unit()
                }
                "start_canister" => {
                    m.running = true;
                    unit()
                }
                "take_canister_snapshot" => {
                    let _: TakeSnapshotArgs = candid::decode_one(&arg).unwrap();
                    let id = vec![m.snapshots.len() as u8];
                    let module = m.module.clone();
                    m.snapshots.push((id.clone(), module));
                    let ts = m.snapshots.len() as u64;
                    Ok(encode_one(Snapshot {
                        id: ByteBuf::from(id),
                        taken_at_timestamp: ts,
                        total_size: 1,
                    })
                    .unwrap())
                }
                "list_canister_snapshots" => Ok(encode_one(
                    m.snapshots
                        .iter()
                        .enumerate()
                        .map(|(i, (id, _))| Snapshot {
                            id: ByteBuf::from(id.clone()),
                            taken_at_timestamp: i as u64 + 1,
                            total_size: 1,
                        })
                        .collect::<Vec<_>>(),
                )
                .unwrap()),
                "load_canister_snapshot" => {
                    let a: LoadSnapshotArgs = candid::decode_one(&arg).unwrap();
                    assert!(!m.running, "snapshots load only into a stopped canister");
                    let module = m
                        .snapshots
                        .iter()
                        .find(|(id, _)| id[..] == a.snapshot_id[..])
                        .unwrap()
                        .1
                        .clone();
                    m.module = module;
                    unit()
                }
                "install_chunked_code" => {
                    let a: InstallChunkedCodeArgs = candid::decode_one(&arg).unwrap();
                    assert!(!m.running, "installs happen on a stopped canister");
                    if m.fail_install {
                        return Err(CallError::Reject {
                            code: 5,
                            message: "post_upgrade trapped".into(),
                            error_code: Some("IC0503".into()),
                        });
                    }
                    let mut wasm = Vec::new();
                    for h in &a.chunk_hashes_list {
                        wasm.extend_from_slice(&m.store[&h.hash.to_vec()]);
                    }
                    assert_eq!(Sha256::digest(&wasm).to_vec(), a.wasm_module_hash.to_vec());
                    let decoded: UserCanisterArg = candid::decode_one(&a.arg).unwrap();
                    assert_eq!(
                        decoded,
                        UserCanisterArg::Upgrade(UserUpgradeArg {
                            release_sha256: a.wasm_module_hash.to_vec()
                        })
                    );
                    m.module = a.wasm_module_hash.into_vec();
                    unit()
                }
                "update_settings" => {
                    let a: UpdateSettingsArgs = candid::decode_one(&arg).unwrap();
                    m.controllers = a.settings.controllers.unwrap();
                    unit()
                }
                other => panic!("unexpected {other}"),
            }
        }

        fn query(&self, _c: Principal, method: &str, _arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
            let m = self.m.borrow();
            let ok = *m.healthy.get(&m.module).unwrap_or(&true);
            let version = if m.module == OLD { "1.0.0" } else { "2.0.0" }.to_string();
            match method {
                "version" => Ok(encode_one(version).unwrap()),
                "fleet_health" => Ok(encode_one(FleetHealth {
                    ok,
                    version,
                    schema_version: 1,
                    records: 3,
                    checksum: vec![],
                    message: None,
                })
                .unwrap()),
                other => panic!("unexpected {other}"),
            }
        }

        fn sender(&self) -> Principal {
            self.me
        }
    }

    fn me() -> Principal {
        Principal::from_slice(&[7; 29])
    }
    fn manager() -> Principal {
        Principal::from_text("rrkah-fqaaa-aaaaa-aaaaq-cai").unwrap()
    }
    fn canister() -> Principal {
        Principal::from_text("ryjl3-tyaaa-aaaaa-aaaba-cai").unwrap()
    }

    fn fake() -> Fake {
        Fake {
            me: me(),
            m: RefCell::new(Model {
                controllers: vec![manager(), me()],
                running: true,
                module: OLD.to_vec(),
                snapshots: vec![],
                store: HashMap::new(),
                healthy: HashMap::new(),
                fail_install: false,
                log: vec![],
            }),
        }
    }

    fn v2() -> WasmModule {
        let mut bytes = b"\0asm\x01\0\0\0".to_vec();
        bytes.resize(crate::backend::mgmt::MAX_CHUNK_SIZE + 10, 9);
        WasmModule::from_bytes(bytes, "v2.wasm", None).unwrap()
    }

    #[test]
    fn upgrade_uploads_then_stops_snapshots_installs_starts_and_checks_health() {
        let ic = fake();
        let r = upgrade(&ic, canister(), &v2(), Some("2.0.0"), &mut Silent).unwrap();
        assert_eq!(r.chunks, 2);
        let m = ic.m.borrow();
        assert_eq!(m.module, v2().sha256.to_vec());
        assert!(m.running);
        assert!(m.store.is_empty(), "chunk store cleared after install");
        let order: Vec<&str> = m
            .log
            .iter()
            .map(String::as_str)
            .filter(|s| *s != "canister_status")
            .collect();
        assert_eq!(
            order,
            [
                "upload_chunk",
                "upload_chunk",
                "stop_canister",
                "take_canister_snapshot",
                "install_chunked_code",
                "clear_chunk_store",
                "start_canister"
            ]
        );
    }

    #[test]
    fn failed_health_check_restores_the_snapshot_and_starts_again() {
        let ic = fake();
        ic.m.borrow_mut()
            .healthy
            .insert(v2().sha256.to_vec(), false);
        let err = upgrade(&ic, canister(), &v2(), None, &mut Silent).unwrap_err();
        assert!(matches!(err, CliError::RolledBack { .. }), "{err}");
        assert_eq!(err.exit_code(), 6);
        let m = ic.m.borrow();
        assert_eq!(m.module, OLD.to_vec());
        assert!(m.running);
    }

    #[test]
    fn unexpected_version_counts_as_unhealthy() {
        let ic = fake();
        let err = upgrade(&ic, canister(), &v2(), Some("3.0.0"), &mut Silent).unwrap_err();
        assert!(matches!(err, CliError::RolledBack { .. }), "{err}");
        assert_eq!(ic.m.borrow().module, OLD.to_vec());
    }

    #[test]
    fn refused_install_keeps_the_old_module_and_starts_again() {
        let ic = fake();
        ic.m.borrow_mut().fail_install = true;
        let err = upgrade(&ic, canister(), &v2(), None, &mut Silent).unwrap_err();
        assert!(matches!(err, CliError::InstallFailed { .. }), "{err}");
        let m = ic.m.borrow();
        assert_eq!(m.module, OLD.to_vec());
        assert!(m.running);
        assert!(m.store.is_empty());
    }

    #[test]
    fn a_caller_that_is_not_a_controller_changes_nothing() {
        let ic = fake();
        ic.m.borrow_mut().controllers = vec![manager()];
        let err = upgrade(&ic, canister(), &v2(), None, &mut Silent).unwrap_err();
        assert!(matches!(err, CliError::NotController { .. }), "{err}");
        assert_eq!(err.exit_code(), 3);
        let m = ic.m.borrow();
        assert!(m.log.is_empty() && m.running && m.module == OLD.to_vec());
    }

    #[test]
    fn rollback_loads_the_latest_snapshot() {
        let ic = fake();
        upgrade(&ic, canister(), &v2(), None, &mut Silent).unwrap();
        let r = rollback(&ic, canister(), &mut Silent).unwrap();
        assert_eq!(r.module_hash, Some(hex::encode(OLD)));
        assert_eq!(r.version.as_deref(), Some("1.0.0"));
        assert!(ic.m.borrow().running);
        let empty = fake();
        assert!(matches!(
            rollback(&empty, canister(), &mut Silent).unwrap_err(),
            CliError::NoSnapshot { .. }
        ));
    }

    #[test]
    fn detach_removes_the_manager_and_keeps_the_recovery_principal() {
        let ic = fake();
        let plan = plan_detach(&ic, canister(), Some(manager())).unwrap();
        assert_eq!(plan.controllers_after, vec![me()]);
        assert_eq!(apply_detach(&ic, &plan).unwrap(), vec![me()]);
        // Nothing left to remove now.
        assert!(matches!(
            plan_detach(&ic, canister(), None).unwrap_err(),
            CliError::Refused(_)
        ));
        // Naming the recovery principal as the manager is refused before anything is written.
        let ic = fake();
        assert!(matches!(
            plan_detach(&ic, canister(), Some(me())).unwrap_err(),
            CliError::Refused(_)
        ));
        assert_eq!(ic.m.borrow().controllers, vec![manager(), me()]);
        // A plan without the caller is never written.
        let bad = DetachPlan {
            canister: canister(),
            controllers_before: vec![manager(), me()],
            controllers_after: vec![manager()],
        };
        assert!(matches!(
            apply_detach(&ic, &bad).unwrap_err(),
            CliError::Refused(_)
        ));
        assert_eq!(ic.m.borrow().controllers, vec![manager(), me()]);
    }
}
