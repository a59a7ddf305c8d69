//! The rollout engine's asynchronous half: a timer that ticks the driver, and one task per
//! call that performs it, feeds the result back and goes on with the same canister's next
//! call. Many calls run concurrently; each continues in its own callback.
//!
//! Each call's arguments are encoded here, so the engine counts the bytes it sends. Calls to
//! the management canister wait without bound (their effects must not be left unknown); the
//! health check is a bounded-wait call, so an unresponsive user canister cannot keep the
//! manager from stopping (interface spec, "Bounded-wait calls").

use crate::chunk_store::ensure_mirrored;
use crate::mgmt::{self, wire, CallResult, ErrorCode};
use crate::rollouts::{self, Fed};
use crate::state;
use candid::{Encode, Principal};
use fleet_api::user::{UserCanisterArg, UserUpgradeArg};
use rollout_core::{Action, ActionResult, CallError, Op};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;

/// Interval of the driver's timer while a rollout has work.
pub const TICK: Duration = Duration::from_secs(1);
/// Calls reissued per tick after an upgrade of the manager.
const REISSUE_PER_TICK: usize = 200;
/// Bounded-wait timeout of the health check.
const HEALTH_TIMEOUT_SECS: u32 = 60;

thread_local! {
    static CALLS_IN_FLIGHT: Cell<u64> = const { Cell::new(0) };
    static TIMER: RefCell<Option<ic_cdk_timers::TimerId>> = const { RefCell::new(None) };
    /// Set by post_upgrade: calls issued before this time lost their callbacks.
    static REISSUE_BEFORE: Cell<Option<u64>> = const { Cell::new(None) };
    /// Canisters whose task was cancelled by a trap: their call is issued again.
    static LOST: RefCell<BTreeSet<Principal>> = const { RefCell::new(BTreeSet::new()) };
    static TICK_STATS: Cell<(u64, u64, u64)> = const { Cell::new((0, 0, 0)) };
    /// When the timer last ran, or was (re-)armed.
    static LAST_TICK: Cell<u64> = const { Cell::new(0) };
}

pub fn calls_in_flight() -> u64 {
    CALLS_IN_FLIGHT.with(|c| c.get())
}

/// (ticks measured, mean instructions, max instructions) of driver ticks.
pub fn tick_stats() -> (u64, u64, u64) {
    let (n, sum, max) = TICK_STATS.with(|t| t.get());
    (n, sum.checked_div(n).unwrap_or(0), max)
}

/// Counts a call in flight until dropped. Dropped in the cleanup callback too when a task is
/// cancelled by a trap (ic-cdk runs destructors there; interface spec, `ic0.call_on_cleanup`):
/// then the canister's call is remembered so that the next tick issues it again.
struct InFlight {
    canister: Principal,
    done: bool,
}

impl InFlight {
    fn new(canister: Principal) -> Self {
        CALLS_IN_FLIGHT.with(|c| c.set(c.get() + 1));
        InFlight {
            canister,
            done: false,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        CALLS_IN_FLIGHT.with(|c| c.set(c.get().saturating_sub(1)));
        if !self.done {
            LOST.with(|l| l.borrow_mut().insert(self.canister));
        }
    }
}

/// Keeps the driver's timer running while there is work, and re-arms it when the IC
/// deactivated it (interface spec, "Global timer": a canister that runs out of cycles loses
/// its timer). Cheap: every update call runs it (the `awake` guard), and so does every call
/// result.
pub fn ensure_timer() {
    let now = ic_cdk::api::time();
    TIMER.with(|t| {
        let mut t = t.borrow_mut();
        match *t {
            Some(_) => {
                if global_timer_armed() || !rollouts::has_work() {
                    return;
                }
                // ic-cdk-timers still holds the interval, overdue, and believes the global
                // timer armed (it only ever moves it to an earlier time than the one it last
                // set). Arming the global timer directly wakes its handler, which runs the
                // overdue interval and re-arms from its own list.
                ic_cdk::println!(
                    "driver timer lost (last tick at {}); re-armed",
                    LAST_TICK.with(|l| l.get())
                );
                ic_cdk::api::global_timer_set(now.saturating_add(1));
            }
            None => {
                LAST_TICK.with(|l| l.set(now));
                *t = Some(ic_cdk_timers::set_timer_interval(TICK, || async {
                    timer_tick();
                }));
            }
        }
    });
}

/// Whether the IC's global timer is armed. The system API reads it only by setting it
/// (`ic0.global_timer_set` returns the previous value), so it is set back at once. Outside the
/// timer's own handler, ic-cdk-timers keeps it armed while any timer exists: 0 means lost.
fn global_timer_armed() -> bool {
    let previous = ic_cdk::api::global_timer_set(0);
    if previous != 0 {
        ic_cdk::api::global_timer_set(previous);
    }
    previous != 0
}

/// Runs before every update call (the `awake` guard): a lost timer is re-armed by the first
/// call that reaches the manager after it can pay again (an operator's, an owner's, a user
/// canister's).
pub fn watchdog() {
    let armed = TIMER.with(|t| t.borrow().is_some());
    if armed || rollouts::has_work() {
        ensure_timer();
    }
}

/// Nanoseconds since the timer last ran while it is armed (0 when no timer is needed).
pub fn timer_silence(now: u64) -> u64 {
    let armed = TIMER.with(|t| t.borrow().is_some());
    if armed {
        now.saturating_sub(LAST_TICK.with(|l| l.get()))
    } else {
        0
    }
}

fn stop_timer() {
    TIMER.with(|t| {
        if let Some(id) = t.borrow_mut().take() {
            ic_cdk_timers::clear_timer(id);
        }
    });
}

/// After an upgrade of the manager: every call recorded as outstanding lost its callback.
pub fn after_upgrade(now: u64) {
    REISSUE_BEFORE.with(|r| r.set(Some(now)));
    rollouts::reset_cache();
    ensure_timer();
}

fn timer_tick() {
    let now = ic_cdk::api::time();
    LAST_TICK.with(|l| l.set(now));
    if let Some(before) = REISSUE_BEFORE.with(|r| r.get()) {
        let again = rollouts::reissue_lost(before, now, REISSUE_PER_TICK);
        if again.is_empty() {
            REISSUE_BEFORE.with(|r| r.set(None));
        }
        for action in again {
            spawn(action);
        }
    }
    let lost: Vec<Principal> =
        LOST.with(|l| std::mem::take(&mut *l.borrow_mut()).into_iter().collect());
    for canister in lost {
        if let Some(action) = rollouts::current_action(&canister) {
            spawn(action);
        }
    }
    drive();
    if !rollouts::has_work() && calls_in_flight() == 0 {
        stop_timer();
    }
}

/// A timer tick of the driver: starts as many calls as the limits allow, and opens a new
/// allowance of `max_starts_per_tick` (the pipelines started when a slot is freed, inside
/// call results, use what is left of it). Its cost depends on the calls it starts, not on the
/// size of the fleet; it is measured for the metrics.
fn drive() {
    let start = ic_cdk::api::performance_counter(0);
    for action in rollouts::tick(crate::env()) {
        spawn(action);
    }
    let used = ic_cdk::api::performance_counter(0).saturating_sub(start);
    TICK_STATS.with(|t| {
        let (n, sum, max) = t.get();
        t.set((n + 1, sum + used, max.max(used)));
    });
}

/// Runs the canister's calls one after the other, from `action` until its pipeline needs
/// nothing more right now. Polled at once, so the first call is issued inside this message.
fn spawn(action: Action) {
    ic_cdk::futures::spawn_017_compat(run(action));
}

async fn run(mut action: Action) {
    let canister = action.canister;
    let mut guard = InFlight::new(canister);
    loop {
        let result = perform(&action).await;
        let Fed { next, started } = rollouts::on_result(canister, result, crate::env());
        ensure_timer();
        // A freed slot is filled at once rather than at the next timer tick.
        for action in started {
            spawn(action);
        }
        match next {
            Some(a) => action = a,
            None => break,
        }
    }
    guard.done = true;
}

/// Calls the management canister with `args`, counting their bytes.
async fn mgmt(
    method: &'static str,
    args: &[u8],
    cycles: u128,
    timeout_secs: Option<u32>,
) -> CallResult<Vec<u8>> {
    rollouts::add_bytes_sent(args.len() as u64);
    mgmt::management(method, args, cycles, timeout_secs).await
}

/// Whether a rejected `stop_canister` means "did not stop in time", by reject code alone: the
/// IC rejects it with `SYS_TRANSIENT` after its own timeout (IC0206; interface spec, "IC method
/// `stop_canister`"), and the bounded wait ends with `SYS_UNKNOWN` at the manager's deadline
/// (interface spec, "Bounded-wait calls"). Either way the stop may still be pending: the
/// pipeline's next call, `start_canister`, cancels it.
fn stop_timed_out(e: &mgmt::CallError) -> bool {
    matches!(e.code, ErrorCode::Rejected(2 | 6))
}

fn failed(e: mgmt::CallError) -> ActionResult {
    ActionResult::CallFailed(e.into())
}

async fn perform(action: &Action) -> ActionResult {
    let canister = action.canister;
    let id = wire::canister_id(&canister);
    let unit = |r: CallResult<Vec<u8>>, ok: ActionResult| match r {
        Ok(_) => ok,
        Err(e) => failed(e),
    };
    match &action.op {
        Op::CanisterStatus => match mgmt("canister_status", &id, 0, None).await {
            Ok(reply) => match wire::canister_status(&reply) {
                Ok(s) => ActionResult::Status {
                    controllers: s.controllers,
                    module_hash: s.module_hash,
                    cycles: s.cycles,
                },
                Err(e) => failed(mgmt::CallError::bad_reply("canister_status", e)),
            },
            Err(e) => failed(e),
        },
        Op::TopUp { cycles } => unit(
            mgmt("deposit_cycles", &id, *cycles, None).await,
            ActionResult::ToppedUp,
        ),
        // Under the rollout's stop deadline, as a bounded-wait call; without a deadline it
        // waits for the IC's own timeout.
        Op::Stop => match mgmt("stop_canister", &id, 0, rollouts::stop_deadline_secs()).await {
            Ok(_) => ActionResult::Stopped,
            Err(e) if stop_timed_out(&e) => ActionResult::StopTimedOut,
            Err(e) => failed(e),
        },
        Op::Start => unit(
            mgmt("start_canister", &id, 0, None).await,
            ActionResult::Started,
        ),
        Op::TakeSnapshot { replace } => {
            const METHOD: &str = "take_canister_snapshot";
            let take = |replace: Option<&[u8]>| wire::take_snapshot(&canister, replace);
            let mut reply = mgmt(METHOD, &take(replace.as_deref()), 0, None).await;
            if reply.is_err() && replace.is_some() {
                // The snapshot to replace may be gone (its owner deleted it): take a new one.
                reply = mgmt(METHOD, &take(None), 0, None).await;
            }
            match reply {
                Ok(r) => match wire::blob_field(&r, wire::field("id")) {
                    Ok(snapshot) => ActionResult::SnapshotTaken { snapshot },
                    Err(e) => failed(mgmt::CallError::bad_reply(METHOD, e)),
                },
                Err(e) => failed(e),
            }
        }
        Op::InstallChunked { module_hash } => install(canister, module_hash).await,
        Op::HealthCheck => {
            const METHOD: &str = "fleet_health";
            rollouts::add_bytes_sent(wire::NO_ARGS.len() as u64);
            let reply = mgmt::call(
                canister,
                METHOD,
                wire::NO_ARGS,
                0,
                Some(HEALTH_TIMEOUT_SECS),
            )
            .await;
            match reply {
                Ok(r) => match wire::health(&r) {
                    Ok(h) => ActionResult::Health {
                        ok: h.ok,
                        version: h.version,
                        message: h.message,
                    },
                    Err(e) => failed(mgmt::CallError::bad_reply(METHOD, e)),
                },
                Err(e) => failed(e),
            }
        }
        Op::LoadSnapshot { snapshot } => {
            let args = wire::load_snapshot(&canister, snapshot, ic_cdk::api::canister_version());
            unit(
                mgmt("load_canister_snapshot", &args, 0, None).await,
                ActionResult::SnapshotLoaded,
            )
        }
        Op::DeleteSnapshot { snapshot } => {
            let args = wire::delete_snapshot(&canister, snapshot);
            unit(
                mgmt("delete_canister_snapshot", &args, 0, None).await,
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

/// `install_chunked_code` in upgrade mode from the manager's own chunk store: the message
/// carries chunk hashes, not the module (interface spec, "IC method `install_chunked_code`").
async fn install(canister: Principal, module_hash: &[u8]) -> ActionResult {
    let failed = |message: String| {
        ActionResult::InstallFailed(CallError {
            reject_code: 0,
            message,
        })
    };
    let mirrored = match state::with(|s| s.mirror_state().get(module_hash).cloned()) {
        Some(m) => m,
        // Evicted from the chunk store since the rollout started: put it back first.
        None => {
            let Some(meta) = state::with(|s| s.store.get_by_sha256(module_hash)) else {
                return failed("the target release is no longer in the manager's store".into());
            };
            match ensure_mirrored(&mgmt::Ic, &meta.version).await {
                Ok(m) => m,
                Err(e) => return failed(format!("mirroring {}: {e:?}", meta.version)),
            }
        }
    };
    let args = wire::install_chunked(&wire::InstallChunked {
        mode: wire::InstallMode::Upgrade,
        target: canister,
        store: ic_cdk::api::canister_self(),
        chunk_hashes: &mirrored.chunk_hashes,
        wasm_module_hash: module_hash,
        arg: &upgrade_arg(module_hash),
        sender_version: ic_cdk::api::canister_version(),
    });
    match mgmt("install_chunked_code", &args, 0, None).await {
        Ok(_) => ActionResult::Installed,
        Err(e) => ActionResult::InstallFailed(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_timeouts_are_told_apart_from_other_rejects() {
        let e = |code, message: &str| mgmt::CallError {
            method: "stop_canister",
            code: ErrorCode::Rejected(code),
            message: message.into(),
        };
        assert!(stop_timed_out(&e(2, "Stop canister request timed out")));
        assert!(stop_timed_out(&e(6, "Request timed out.")));
        assert!(!stop_timed_out(&e(5, "request timed out")), "never by text");
        assert!(!stop_timed_out(&e(5, "only controllers may stop")));
        assert!(!stop_timed_out(&e(3, "canister not found")));
        let not_sent = mgmt::CallError {
            method: "stop_canister",
            code: ErrorCode::NotSent,
            message: "Request timed out.".into(),
        };
        assert!(!stop_timed_out(&not_sent));
        assert_eq!(
            rollout_core::CallError::from(not_sent).reject_code,
            rollout_core::NOT_SENT
        );
    }
}
