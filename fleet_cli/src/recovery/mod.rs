//! End-user recovery of one user canister, as one of its controllers and without the
//! manager's help: status, upgrade from a wasm file, rollback to the latest snapshot, and
//! detaching from the manager.
//!
//! Upgrade and rollback are runs of the manager's own pipeline (`rollout_core::pipeline`, an
//! upgrade or a restore record) with the CLI as the shell ([`pipeline`]): precheck → stop →
//! snapshot → install_chunked_code from the canister's own chunk store → start → health check,
//! loading the snapshot if the health check fails; a stopped canister is always started again.

pub mod backup;
pub mod pipeline;

use candid::Principal;
use fleet_api::governance::PendingRelease;
use fleet_api::user::method::Version;
use fleet_api::user::{UserCanisterArg, UserUpgradeArg};
use rollout_core::pipeline::{CanisterRecord, Job};
use rollout_core::{Failure, Outcome, Release};
use serde::Serialize;
use serde_bytes::ByteBuf;

use crate::backend::mgmt::{CanisterStatus, RunStatus, SettingsUpdate, Snapshot};
use crate::backend::{CallError, Endpoints, Ic, Management};
use crate::error::CliError;
use crate::progress::Progress;
use crate::wasm::{WasmModule, MAX_CHUNKS};

use pipeline::{failure_text, op_name, Finished, Stage};

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
    /// Releases the manager may roll out to the canister, and from when, as the canister
    /// itself reports them (a composite query to its manager); or why it cannot tell.
    pub pending_releases: Result<Vec<PendingRelease>, String>,
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

/// A failed call as the CLI reports it: "not a controller" apart from other failures.
fn not_controller_or(ic: &dyn Ic, canister: Principal, step: &str, source: CallError) -> CliError {
    if source.is_not_authorized() {
        CliError::NotController {
            canister,
            sender: ic.sender(),
            source,
        }
    } else {
        CliError::Call {
            step: step.into(),
            source,
        }
    }
}

/// `canister_status`, telling "not a controller" apart from other failures.
pub fn status_of(ic: &dyn Ic, canister: Principal) -> Result<CanisterStatus, CliError> {
    ic.canister_status(canister)
        .map_err(|source| not_controller_or(ic, canister, "canister_status", source))
}

fn hash_hex(h: &Option<ByteBuf>) -> Option<String> {
    h.as_ref().map(hex::encode)
}

fn query_version(ic: &dyn Ic, canister: Principal) -> Result<String, String> {
    ic.call::<Version>(canister, ()).map_err(|e| e.to_string())
}

fn query_pending(ic: &dyn Ic, canister: Principal) -> Result<Vec<PendingRelease>, String> {
    match ic
        .call::<fleet_api::user::method::PendingReleases>(canister, ())
        .map_err(|e| e.to_string())?
        .into_result()
    {
        Ok(pending) => Ok(pending),
        Err(e) => Err(format!("{e:?}")),
    }
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
        pending_releases: query_pending(ic, canister),
    })
}

/// The recovery principal as the pipeline's record of `canister`: it stands in for the
/// manager and for the recovery principal alike.
fn record(ic: &dyn Ic, job: Job) -> CanisterRecord {
    CanisterRecord::new(job, 0, ic.sender())
}

/// The error of a run that did not end as asked; `rolling_back` for `fleet recovery rollback`.
fn run_error(ic: &dyn Ic, canister: Principal, run: &Finished, rolling_back: bool) -> CliError {
    let Some(failure) = &run.rec.failure else {
        return CliError::Refused(format!("the pipeline ended {:?}", run.outcome()));
    };
    let reason = || {
        run.unhealthy
            .clone()
            .unwrap_or_else(|| failure_text(failure))
    };
    match failure {
        Failure::CallFailed { op, error } | Failure::ManagerCall { op, error } => {
            let source = run.source(*op, error);
            let after_the_precheck = *op != rollout_core::OpKind::CanisterStatus;
            if rolling_back && after_the_precheck && !source.is_not_authorized() {
                CliError::RollbackFailed {
                    what: "rollback".into(),
                    rollback_error: format!("{} failed: {source}", op_name(*op)),
                }
            } else {
                not_controller_or(ic, canister, op_name(*op), source)
            }
        }
        Failure::ManagerNotController | Failure::RecoveryControllerMissing => CliError::Refused(
            format!("{} is not among the controllers of {canister}", ic.sender()),
        ),
        Failure::InstallFailed(e) => CliError::InstallFailed {
            source: run.source(rollout_core::OpKind::InstallChunked, e),
        },
        Failure::Unhealthy { .. } if run.outcome() == Outcome::RolledBack => {
            CliError::RolledBack { reason: reason() }
        }
        Failure::Unhealthy { .. } if rolling_back => CliError::RollbackFailed {
            what: "rollback".into(),
            rollback_error: format!("the restored canister is not healthy: {}", reason()),
        },
        Failure::Unhealthy { .. } | Failure::UnhealthyNoSnapshot { .. } => {
            CliError::RollbackFailed {
                what: format!("health check failed: {}", reason()),
                rollback_error: "no snapshot of this upgrade to restore".into(),
            }
        }
        Failure::RestoreFailed { .. } => CliError::RollbackFailed {
            what: if rolling_back {
                "rollback".into()
            } else {
                format!(
                    "health check failed: {}",
                    run.unhealthy.clone().unwrap_or_default()
                )
            },
            rollback_error: failure_text(failure),
        },
        other => CliError::Refused(failure_text(other)),
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
    let target = Release {
        module_hash: wasm.sha256.to_vec(),
        version: expected_version.unwrap_or_default().to_string(),
    };
    let run = pipeline::run(
        ic,
        canister,
        record(ic, Job::Upgrade),
        target,
        expected_version.map(str::to_string),
        Some(Stage { wasm, arg }),
        progress,
    )?;
    let report = |outcome, chunks| UpgradeReport {
        canister,
        outcome,
        module_hash_before: run.rec.expected_module_hash.as_ref().map(hex::encode),
        module_hash: hex::encode(wasm.sha256),
        snapshot: run.rec.snapshot.as_ref().map(hex::encode),
        version: run.version.clone(),
        chunks,
    };
    match (run.outcome(), &run.rec.failure) {
        (Outcome::Done, _) => Ok(report(UpgradeOutcome::Upgraded, total)),
        (Outcome::Skipped, Some(Failure::AlreadyOnTarget)) => Ok(UpgradeReport {
            version: query_version(ic, canister).ok(),
            ..report(UpgradeOutcome::AlreadyInstalled, 0)
        }),
        _ => Err(run_error(ic, canister, &run, false)),
    }
}

/// Restores the latest snapshot: a restore run of the pipeline (stop, load, start, health).
pub fn rollback(
    ic: &dyn Ic,
    canister: Principal,
    progress: &mut dyn Progress,
) -> Result<RollbackReport, CliError> {
    progress.step("checking the canister");
    let snapshots = ic
        .list_canister_snapshots(canister)
        .map_err(|source| not_controller_or(ic, canister, "list_canister_snapshots", source))?;
    let latest = snapshots
        .iter()
        .max_by_key(|s| s.taken_at_timestamp)
        .ok_or(CliError::NoSnapshot { canister })?;
    let mut rec = record(ic, Job::Restore);
    rec.snapshot = Some(latest.id.to_vec());
    let target = Release {
        module_hash: Vec::new(),
        version: String::new(),
    };
    let run = pipeline::run(ic, canister, rec, target, None, None, progress)?;
    if run.outcome() != Outcome::Restored {
        return Err(run_error(ic, canister, &run, true));
    }
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
