//! One canister's run of the manager's pipeline (`rollout_core::pipeline`), with the CLI as
//! the shell: each [`Op`] is performed through the backend as the caller, a controller of the
//! canister, and its result fed back, until the record is finished. The steps, the failure
//! handling (a stopped canister is always started again, rejects classified by code) and the
//! snapshot rules are therefore the manager's own; what differs is set here:
//!
//! - The caller stands in for both the manager and the recovery principal, so the precheck's
//!   controller rule reads "the caller is a controller".
//! - Any module the canister runs may be upgraded from (the precheck's expected module hash is
//!   the one it reports); only the target itself is skipped, as already installed.
//! - The canister's own chunk store holds the module: it is uploaded right before the first
//!   stop, while the canister still runs, so the canister is stopped only for the install.
//! - One attempt: whatever the manager would defer and retry later ends the run with an
//!   error (the user runs the command again); no top-ups. A call the pipeline makes again
//!   (starting the canister, a health check whose answer was lost) is made again a few times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use candid::Principal;
use fleet_api::user::method::GetFleetHealth;
use fleet_api::wire::Wire;
use rollout_core::pipeline::{self, ActionResult, CanisterRecord, Ctx, Next, Op, OpKind, Step};
use rollout_core::{CyclesPolicy, Failure, Nanos, Outcome, Release, RetryPolicy, SECOND};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::backend::mgmt::{ChunkHash, InstallChunkedCodeArgs, InstallMode, Snapshot};
use crate::backend::{CallError, Endpoints, Ic, Management};
use crate::error::CliError;
use crate::progress::Progress;
use crate::wasm::WasmModule;

/// Deferrals end the run at once; calls made again wait 1, 2, 4 s.
const RETRY: RetryPolicy = RetryPolicy {
    stop_attempts: 1,
    backoff_base_ns: SECOND,
    backoff_max_ns: 4 * SECOND,
};

/// The user's own canister is never topped up by a recovery.
const NO_TOP_UP: CyclesPolicy = CyclesPolicy {
    min_cycles: 0,
    top_up_to: 0,
    budget: 0,
};

/// How many times in a row a call the pipeline asks for again is made before giving up.
const CALLS_AGAIN: u32 = 3;

/// A module to stage in the canister's chunk store before it is stopped.
pub struct Stage<'w> {
    pub wasm: &'w WasmModule,
    /// The candid argument of `post_upgrade`.
    pub arg: Vec<u8>,
}

/// What a finished run knows beyond its record.
pub struct Finished {
    pub rec: CanisterRecord,
    /// The version the canister reported in its last health check.
    pub version: Option<String>,
    /// Why the upgraded canister was found unhealthy, if it was.
    pub unhealthy: Option<String>,
    /// The backend's errors, each with the call it answered (the pipeline keeps only the
    /// reject; these keep transport failures and the IC's error codes for the report).
    errors: Vec<(OpKind, CallError)>,
}

impl Finished {
    pub fn outcome(&self) -> Outcome {
        // With one attempt allowed, a pipeline that would wait for a retry ends deferred.
        self.rec.outcome().unwrap_or(Outcome::Deferred)
    }

    /// The backend error behind a failed `op`.
    pub fn source(&self, op: OpKind, reject: &rollout_core::CallError) -> CallError {
        self.errors
            .iter()
            .rev()
            .find(|(k, _)| *k == op)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| CallError::reject(reject.reject_code, &reject.message, None))
    }
}

/// The name of the management call (or query) an op stands for, as errors report it.
pub fn op_name(op: OpKind) -> &'static str {
    crate::manager::op_name(op.wire())
}

/// Runs `rec` (a new upgrade or restore record of the caller) on `canister` to its end.
/// `expected_version`: the version the health check requires; `None` accepts any.
/// Errors are the runs that end before the pipeline does: staging the module failed (nothing
/// changed), or a call asked for again kept failing.
pub fn run(
    ic: &dyn Ic,
    canister: Principal,
    rec: CanisterRecord,
    target: Release,
    expected_version: Option<String>,
    stage: Option<Stage>,
    progress: &mut dyn Progress,
) -> Result<Finished, CliError> {
    let mut shell = Shell {
        ic,
        canister,
        target,
        expected_version,
        stage,
        staged: None,
        loaded: false,
        done: Finished {
            rec,
            version: None,
            unhealthy: None,
            errors: Vec::new(),
        },
        progress,
    };
    let result = shell.drive();
    // The chunks serve this install only; clearing them changes nothing else. A loaded
    // snapshot brings back the chunk store it was taken with (IC interface spec,
    // "ic_take_canister_snapshot": a snapshot includes the wasm chunk store), which holds the
    // chunks staged before it was taken.
    if shell.staged.is_some() || shell.loaded {
        let _ = ic.clear_chunk_store(canister);
    }
    result.map(|()| shell.done)
}

struct Shell<'a, 'w> {
    ic: &'a dyn Ic,
    canister: Principal,
    target: Release,
    expected_version: Option<String>,
    stage: Option<Stage<'w>>,
    /// The chunk hashes in the canister's store, once uploaded.
    staged: Option<Vec<ChunkHash>>,
    /// Whether a snapshot was loaded (its chunk store with it).
    loaded: bool,
    done: Finished,
    progress: &'a mut dyn Progress,
}

fn now() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as Nanos)
}

impl Shell<'_, '_> {
    fn drive(&mut self) -> Result<(), CliError> {
        let mut op = pipeline::begin(&mut self.done.rec, now());
        let mut again = 0;
        loop {
            self.announce(&op);
            let first_stop = op == Op::Stop && self.done.rec.step == Step::Stopping;
            if first_stop && self.stage.is_some() && self.staged.is_none() {
                self.upload()?;
            }
            let result = self.perform(&op)?;
            let me = self.ic.sender();
            let ctx = Ctx {
                manager: me,
                target: &self.target,
                take_snapshot: true,
                cycles: &NO_TOP_UP,
                budget_left: 0,
                retry: &RETRY,
                aborting: false,
                manager_low: false,
            };
            let step = self.done.rec.step.clone();
            let next =
                pipeline::on_result(&mut self.done.rec, result, &ctx, now()).map_err(|_| {
                    CliError::Refused(format!(
                        "the result of {} does not belong to the step {step:?}",
                        op_name(op.kind())
                    ))
                })?;
            match next {
                Next::Call(next) => {
                    op = next;
                    again = 0;
                }
                Next::CallAt(at) => {
                    again += 1;
                    if again > CALLS_AGAIN {
                        return Err(self.gave_up(&op));
                    }
                    self.ic
                        .idle(Duration::from_nanos(at.saturating_sub(now()).max(SECOND)));
                }
                Next::RetryAt(_) | Next::Finished => return Ok(()),
            }
        }
    }

    fn announce(&mut self, op: &Op) {
        let restoring = matches!(
            self.done.rec.step,
            Step::RestoringStop | Step::RestoringLoad
        );
        let message = match op {
            Op::CanisterStatus => "checking the canister",
            Op::Stop if restoring => "health check failed: stopping to restore the snapshot",
            Op::Stop => "stopping",
            Op::TakeSnapshot { .. } => "taking a snapshot",
            Op::InstallChunked { .. } => "installing",
            Op::Start => "starting",
            Op::HealthCheck => "checking health",
            Op::LoadSnapshot { .. } => "loading the snapshot",
            Op::TopUp { .. } | Op::DeleteSnapshot { .. } => "",
        };
        self.progress.step(message);
    }

    /// Uploads the staged module into the canister's own chunk store.
    fn upload(&mut self) -> Result<(), CliError> {
        let Some(stage) = &self.stage else {
            return Ok(());
        };
        let total = stage.wasm.chunk_count();
        self.progress.step("uploading");
        let mut hashes = Vec::with_capacity(total);
        // Cleared by `run` whatever happens from here on.
        self.staged = Some(Vec::new());
        for (i, chunk) in stage.wasm.chunks().enumerate() {
            let step = || format!("upload_chunk {}/{total}", i + 1);
            let hash = self
                .ic
                .upload_chunk(self.canister, chunk.to_vec())
                .map_err(|source| CliError::Call {
                    step: step(),
                    source,
                })?;
            if hash[..] != Sha256::digest(chunk)[..] {
                return Err(CliError::Call {
                    step: step(),
                    source: CallError::Decode {
                        method: "upload_chunk".into(),
                        message: "returned a hash that is not the chunk's sha256".into(),
                    },
                });
            }
            hashes.push(ChunkHash {
                hash: ByteBuf::from(hash),
            });
            self.progress.chunk_uploaded(i + 1, total);
        }
        self.staged = Some(hashes);
        Ok(())
    }

    fn failed(&mut self, op: OpKind, e: CallError) -> ActionResult {
        let reject = e.to_pipeline();
        self.done.errors.push((op, e));
        ActionResult::CallFailed(reject)
    }

    fn unit(&mut self, op: OpKind, r: Result<(), CallError>, ok: ActionResult) -> ActionResult {
        match r {
            Ok(()) => ok,
            Err(e) => self.failed(op, e),
        }
    }

    fn perform(&mut self, op: &Op) -> Result<ActionResult, CliError> {
        let (ic, c) = (self.ic, self.canister);
        Ok(match op {
            Op::CanisterStatus => match ic.canister_status(c) {
                Ok(st) => {
                    let module_hash = st.module_hash.map(ByteBuf::into_vec);
                    self.done.rec.expected_module_hash = module_hash.clone();
                    ActionResult::Status {
                        controllers: st.settings.controllers,
                        module_hash,
                        cycles: u128::try_from(st.cycles.0).unwrap_or(u128::MAX),
                    }
                }
                Err(e) => self.failed(OpKind::CanisterStatus, e),
            },
            Op::Stop => self.unit(OpKind::Stop, ic.stop_canister(c), ActionResult::Stopped),
            Op::Start => self.unit(OpKind::Start, ic.start_canister(c), ActionResult::Started),
            Op::TakeSnapshot { replace } => match take_snapshot(ic, c, replace.clone()) {
                Ok(s) => ActionResult::SnapshotTaken {
                    snapshot: s.id.into_vec(),
                },
                Err(e) => self.failed(OpKind::TakeSnapshot, e),
            },
            Op::InstallChunked { module_hash } => self.install(module_hash),
            Op::HealthCheck => self.health(),
            Op::LoadSnapshot { snapshot } => {
                let loaded = ic.load_canister_snapshot(c, snapshot.clone());
                self.loaded |= loaded.is_ok();
                self.unit(OpKind::LoadSnapshot, loaded, ActionResult::SnapshotLoaded)
            }
            Op::TopUp { .. } | Op::DeleteSnapshot { .. } => {
                return Err(CliError::Refused(format!(
                    "{} is not a step of a recovery",
                    op_name(op.kind())
                )))
            }
        })
    }

    fn install(&mut self, module_hash: &[u8]) -> ActionResult {
        let (Some(stage), Some(hashes)) = (&self.stage, &self.staged) else {
            return self.failed(
                OpKind::InstallChunked,
                CallError::Decode {
                    method: "install_chunked_code".into(),
                    message: "no module was staged in the canister's chunk store".into(),
                },
            );
        };
        let installed = self.ic.install_chunked_code(InstallChunkedCodeArgs {
            mode: InstallMode::Upgrade(None),
            target_canister: self.canister,
            store_canister: Some(self.canister),
            chunk_hashes_list: hashes.clone(),
            wasm_module_hash: ByteBuf::from(module_hash.to_vec()),
            arg: ByteBuf::from(stage.arg.clone()),
            sender_canister_version: None,
        });
        // A refusal or a trap is classified by its reject code, as the manager's are.
        self.unit(OpKind::InstallChunked, installed, ActionResult::Installed)
    }

    fn health(&mut self) -> ActionResult {
        match self.ic.call::<GetFleetHealth>(self.canister, ()) {
            Ok(h) => {
                let expected = self.expected_version.clone();
                // Without an expected version, the version the module reports is the target's.
                self.target.version = expected.clone().unwrap_or_else(|| h.version.clone());
                self.done.unhealthy = if !h.ok {
                    Some(format!(
                        "fleet_health reports not ok: {}",
                        h.message.clone().unwrap_or_default()
                    ))
                } else {
                    expected
                        .filter(|v| *v != h.version)
                        .map(|v| format!("version is {}, expected {v}", h.version))
                };
                self.done.version = Some(h.version.clone());
                ActionResult::Health {
                    ok: h.ok,
                    version: h.version,
                    message: h.message,
                }
            }
            Err(e) => {
                self.done.unhealthy = Some(format!("fleet_health: {e}"));
                self.failed(OpKind::HealthCheck, e)
            }
        }
    }

    /// A call the pipeline asked for again failed every time.
    fn gave_up(&self, op: &Op) -> CliError {
        let source = self
            .done
            .errors
            .last()
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| CallError::Transport("no answer".into()));
        if *op == Op::Start {
            CliError::RollbackFailed {
                what: self
                    .done
                    .unhealthy
                    .clone()
                    .unwrap_or_else(|| "the canister was stopped".into()),
                rollback_error: format!("starting the canister again failed: {source}"),
            }
        } else {
            CliError::Call {
                step: op_name(op.kind()).into(),
                source,
            }
        }
    }
}

/// Takes a snapshot, replacing `replace` if given; a canister at its snapshot limit has its
/// oldest snapshot replaced.
fn take_snapshot(
    ic: &dyn Ic,
    canister: Principal,
    replace: Option<Vec<u8>>,
) -> Result<Snapshot, CallError> {
    let first = match ic.take_canister_snapshot(canister, replace.clone()) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    if replace.is_some() {
        return Err(first);
    }
    let existing = ic.list_canister_snapshots(canister).unwrap_or_default();
    match existing.iter().min_by_key(|s| s.taken_at_timestamp) {
        Some(oldest) => ic.take_canister_snapshot(canister, Some(oldest.id.to_vec())),
        None => Err(first),
    }
}

/// How a finished run failed, as the CLI reports it.
pub fn failure_text(f: &Failure) -> String {
    crate::manager::failure_text(&f.clone().wire())
}
