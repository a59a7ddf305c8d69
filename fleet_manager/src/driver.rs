//! The rollout engine's asynchronous half: a timer that ticks the driver, and one task per
//! call that performs it (`fleet_core::calls::perform`), feeds the result back and goes on
//! with the same canister's next call. Many calls run concurrently; each continues in its own
//! callback.

use crate::ic::Ic;
use candid::Principal;
use fleet_core::calls::perform;
use fleet_core::rollouts::{self, Fed};
use rollout_core::Action;
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::Duration;

/// Interval of the driver's timer while a rollout has work.
pub const TICK: Duration = Duration::from_secs(1);
/// Calls reissued per tick after an upgrade of the manager.
const REISSUE_PER_TICK: usize = 200;

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
    /// While the driver sleeps (nothing can happen before a bake time ends or a kept
    /// snapshot is due for deletion): when its one-shot timer wakes it.
    static SLEEP_UNTIL: Cell<Option<u64>> = const { Cell::new(None) };
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
    // New work (a rollout, a request) while the driver sleeps wakes it at once.
    if SLEEP_UNTIL.with(|s| s.get()).is_some() && rollouts::idle_until().is_none() {
        stop_timer();
    }
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

/// Nanoseconds since the timer last ran while it is armed (0 when no timer is needed), or,
/// while the driver sleeps, since the time it should have woken.
pub fn timer_silence(now: u64) -> u64 {
    let armed = TIMER.with(|t| t.borrow().is_some());
    match SLEEP_UNTIL.with(|s| s.get()) {
        Some(wake) => now.saturating_sub(wake),
        None if armed => now.saturating_sub(LAST_TICK.with(|l| l.get())),
        None => 0,
    }
}

fn stop_timer() {
    SLEEP_UNTIL.with(|s| s.set(None));
    TIMER.with(|t| {
        if let Some(id) = t.borrow_mut().take() {
            ic_cdk_timers::clear_timer(id);
        }
    });
}

/// Replaces the one-second interval by one timer at `wake`: ticking through a bake time or a
/// week of kept snapshots would cost the manager a timer execution every second (each one a
/// self-call of ic-cdk-timers), for nothing until the stage opens or the deletion is due.
fn sleep_until(now: u64, wake: u64) {
    stop_timer();
    SLEEP_UNTIL.with(|s| s.set(Some(wake)));
    let id = ic_cdk_timers::set_timer(Duration::from_nanos(wake - now), async {
        // This one-shot timer is spent: the interval takes over again.
        SLEEP_UNTIL.with(|s| s.set(None));
        TIMER.with(|t| t.borrow_mut().take());
        ensure_timer();
        timer_tick();
    });
    TIMER.with(|t| *t.borrow_mut() = Some(id));
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
    let idle = calls_in_flight() == 0
        && REISSUE_BEFORE.with(|r| r.get()).is_none()
        && LOST.with(|l| l.borrow().is_empty());
    if !idle {
        return;
    }
    if !rollouts::has_work() {
        stop_timer();
    } else if let Some(wake) = rollouts::idle_until() {
        if wake > now.saturating_add(TICK.as_nanos() as u64) {
            sleep_until(now, wake);
        }
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
        let result = perform(&Ic, &action).await;
        let Fed { next, started } = rollouts::on_result(canister, result, &Ic);
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
