//! The rollout engine's calls: performs one [`Action`] through the [`Runtime`] and reports its
//! [`ActionResult`]. The shell's driver spawns one task per call and feeds the result back.
//!
//! Each call's arguments are encoded here, so the engine counts the bytes it sends. Calls to
//! the management canister wait without bound (their effects must not be left unknown); the
//! health check is a bounded-wait call, so an unresponsive user canister cannot keep the
//! manager from stopping (interface spec, "Bounded-wait calls").

use crate::chunk_store::ensure_mirrored_in;
use crate::rollouts;
use crate::runtime::{bad_reply, CallResult, Runtime};
use crate::state;
use crate::subnets;
use crate::wire::{self, InstallMode};
use candid::{Encode, Principal};
use fleet_api::user::{UserCanisterArg, UserUpgradeArg};
use rollout_core::{Action, ActionResult, CallError, Op};
use std::cell::RefCell;

/// Bounded-wait timeout of the health check.
const HEALTH_TIMEOUT_SECS: u32 = 60;

/// Calls the management canister with `args`, counting their bytes.
async fn mgmt<R: Runtime>(
    rt: &R,
    method: &'static str,
    args: &[u8],
    cycles: u128,
    timeout_secs: Option<u32>,
) -> CallResult<Vec<u8>> {
    rollouts::add_bytes_sent(args.len() as u64);
    rt.management(method, args, cycles, timeout_secs).await
}

/// Whether a rejected `stop_canister` means "did not stop in time", by reject code alone: the
/// IC rejects it with `SYS_TRANSIENT` after its own timeout (IC0206; interface spec, "IC method
/// `stop_canister`"), and the bounded wait ends with `SYS_UNKNOWN` at the manager's deadline
/// (interface spec, "Bounded-wait calls"). Either way the stop may still be pending: the
/// pipeline's next call, `start_canister`, cancels it.
fn stop_timed_out(e: &CallError) -> bool {
    matches!(e.reject_code, 2 | 6)
}

/// Performs `action` and reports its outcome; never panics on the IC's answer.
pub async fn perform<R: Runtime>(rt: &R, action: &Action) -> ActionResult {
    let canister = action.canister;
    let id = wire::canister_id(&canister);
    let failed = ActionResult::CallFailed;
    let unit = |r: CallResult<Vec<u8>>, ok: ActionResult| match r {
        Ok(_) => ok,
        Err(e) => failed(e),
    };
    match &action.op {
        Op::CanisterStatus => match mgmt(rt, "canister_status", &id, 0, None).await {
            Ok(reply) => match wire::canister_status(&reply) {
                Ok(s) => ActionResult::Status {
                    controllers: s.controllers,
                    module_hash: s.module_hash,
                    cycles: s.cycles,
                },
                Err(e) => failed(bad_reply("canister_status", e)),
            },
            Err(e) => failed(e),
        },
        Op::TopUp { cycles } => unit(
            mgmt(rt, "deposit_cycles", &id, *cycles, None).await,
            ActionResult::ToppedUp,
        ),
        // Under the rollout's stop deadline, as a bounded-wait call; without a deadline it
        // waits for the IC's own timeout.
        Op::Stop => {
            let deadline = rollouts::stop_deadline_secs();
            match mgmt(rt, "stop_canister", &id, 0, deadline).await {
                Ok(_) => ActionResult::Stopped,
                Err(e) if stop_timed_out(&e) => ActionResult::StopTimedOut,
                Err(e) => failed(e),
            }
        }
        Op::Start => unit(
            mgmt(rt, "start_canister", &id, 0, None).await,
            ActionResult::Started,
        ),
        Op::TakeSnapshot { replace } => {
            const METHOD: &str = "take_canister_snapshot";
            let take = |replace: Option<&[u8]>| wire::take_snapshot(&canister, replace);
            let mut reply = mgmt(rt, METHOD, &take(replace.as_deref()), 0, None).await;
            if reply.is_err() && replace.is_some() {
                // The snapshot to replace may be gone (its owner deleted it): take a new one.
                reply = mgmt(rt, METHOD, &take(None), 0, None).await;
            }
            match reply {
                Ok(r) => match wire::blob_field(&r, wire::field("id")) {
                    Ok(snapshot) => ActionResult::SnapshotTaken { snapshot },
                    Err(e) => failed(bad_reply(METHOD, e)),
                },
                Err(e) => failed(e),
            }
        }
        Op::InstallChunked { module_hash } => {
            install(rt, canister, action.subnet, module_hash).await
        }
        Op::HealthCheck => {
            const METHOD: &str = "fleet_health";
            rollouts::add_bytes_sent(wire::NO_ARGS.len() as u64);
            let timeout = Some(HEALTH_TIMEOUT_SECS);
            match rt.call(canister, METHOD, wire::NO_ARGS, 0, timeout).await {
                Ok(r) => match wire::health(&r) {
                    Ok(h) => ActionResult::Health {
                        ok: h.ok,
                        version: h.version,
                        message: h.message,
                    },
                    Err(e) => failed(bad_reply(METHOD, e)),
                },
                Err(e) => failed(e),
            }
        }
        Op::LoadSnapshot { snapshot } => {
            let args = wire::load_snapshot(&canister, snapshot, rt.canister_version());
            unit(
                mgmt(rt, "load_canister_snapshot", &args, 0, None).await,
                ActionResult::SnapshotLoaded,
            )
        }
        Op::DeleteSnapshot { snapshot } => {
            let args = wire::delete_snapshot(&canister, snapshot);
            unit(
                mgmt(rt, "delete_canister_snapshot", &args, 0, None).await,
                ActionResult::SnapshotDeleted,
            )
        }
    }
}

/// The user canister's upgrade argument for a release, encoded once per release.
fn upgrade_arg(module_hash: &[u8]) -> Vec<u8> {
    thread_local! {
        static LAST: RefCell<Option<(Vec<u8>, Vec<u8>)>> = const { RefCell::new(None) };
    }
    LAST.with(|l| {
        let mut l = l.borrow_mut();
        if let Some((hash, arg)) = l.as_ref() {
            if hash == module_hash {
                return arg.clone();
            }
        }
        let arg = UserCanisterArg::Upgrade(UserUpgradeArg {
            release_sha256: module_hash.to_vec(),
        });
        let arg = Encode!(&arg).expect("encoding the upgrade argument");
        *l = Some((module_hash.to_vec(), arg.clone()));
        arg
    })
}

/// `install_chunked_code` in upgrade mode from the chunk store of the canister's subnet.
async fn install<R: Runtime>(
    rt: &R,
    canister: Principal,
    subnet: Option<Principal>,
    module_hash: &[u8],
) -> ActionResult {
    let failed = |message: String| {
        ActionResult::InstallFailed(CallError {
            reject_code: 0,
            message,
        })
    };
    let Some(store) = subnets::store_of(rt, subnet) else {
        return failed("the canister's subnet is not one the manager uses".into());
    };
    let mirrored = match subnets::mirrored_in(&store, module_hash) {
        Some(m) => m,
        // Evicted from the chunk store since the rollout started: put it back first.
        None => {
            let Some(meta) = state::with(|s| s.store.get_by_sha256(module_hash)) else {
                return failed("the target release is no longer in the manager's store".into());
            };
            match ensure_mirrored_in(rt, &meta.version, &store).await {
                Ok(m) => m,
                Err(e) => return failed(format!("mirroring {}: {e:?}", meta.version)),
            }
        }
    };
    // Encoded here rather than through `Runtime::install_chunked` so that the engine counts the
    // bytes it sends.
    let args = rt.install_chunked_args(
        InstallMode::Upgrade,
        store.canister,
        canister,
        &mirrored.chunk_hashes,
        module_hash,
        &upgrade_arg(module_hash),
    );
    match mgmt(rt, "install_chunked_code", &args, 0, None).await {
        Ok(_) => ActionResult::Installed,
        Err(e) => ActionResult::InstallFailed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::NOT_SENT;

    #[test]
    fn stop_timeouts_are_told_apart_from_other_rejects() {
        let e = |reject_code, message: &str| CallError {
            reject_code,
            message: message.into(),
        };
        assert!(stop_timed_out(&e(2, "Stop canister request timed out")));
        assert!(stop_timed_out(&e(6, "Request timed out.")));
        assert!(!stop_timed_out(&e(5, "request timed out")), "never by text");
        assert!(!stop_timed_out(&e(5, "only controllers may stop")));
        assert!(!stop_timed_out(&e(3, "canister not found")));
        assert!(!stop_timed_out(&e(NOT_SENT, "Request timed out.")));
    }
}
