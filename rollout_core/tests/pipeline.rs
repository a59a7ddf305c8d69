//! The per-canister state machine, step by step.

mod common;

use common::*;
use rollout_core::pipeline::{self, Ctx, Next};
use rollout_core::*;

fn policies() -> (Release, CyclesPolicy, RetryPolicy) {
    let p = RolloutPlan::new(release(NEW));
    (p.target, p.cycles, p.retry)
}

fn ctx<'a>(t: &'a Release, c: &'a CyclesPolicy, r: &'a RetryPolicy) -> Ctx<'a> {
    Ctx {
        manager: manager(),
        target: t,
        take_snapshot: true,
        cycles: c,
        budget_left: 0,
        retry: r,
        aborting: false,
        manager_low: false,
    }
}

fn record() -> CanisterRecord {
    let mut r = CanisterRecord::new(pipeline::Job::Upgrade, 0, recovery_of(1));
    r.expected_module_hash = Some(hash(OLD));
    r.snapshot = Some(vec![9]);
    r
}

fn status(cycles: u128) -> ActionResult {
    ActionResult::Status {
        controllers: vec![manager(), recovery_of(1)],
        module_hash: Some(hash(OLD)),
        cycles,
    }
}

fn err() -> CallError {
    CallError {
        reject_code: 5,
        message: "boom".into(),
    }
}

fn call(n: Next) -> Op {
    match n {
        Next::Call(op) => op,
        other => panic!("expected a call, got {other:?}"),
    }
}

/// Drives a fresh record to the given step through the happy path.
fn at(step: &str, cx: &Ctx) -> CanisterRecord {
    let mut r = record();
    pipeline::begin(&mut r, 0);
    let path = [
        ("stopping", status(u128::MAX)),
        ("snapshotting", ActionResult::Stopped),
        (
            "installing",
            ActionResult::SnapshotTaken { snapshot: vec![10] },
        ),
        ("starting", ActionResult::Installed),
        ("health", ActionResult::Started),
    ];
    for (name, result) in path {
        pipeline::on_result(&mut r, result, cx, 1).unwrap();
        if name == step {
            return r;
        }
    }
    r
}

#[test]
fn happy_path_issues_each_call_in_order() {
    let (t, c, rt) = policies();
    let cx = ctx(&t, &c, &rt);
    let mut r = record();
    assert_eq!(pipeline::begin(&mut r, 0), Op::CanisterStatus);
    let steps = [
        (status(u128::MAX), Some(Op::Stop)),
        (
            ActionResult::Stopped,
            Some(Op::TakeSnapshot {
                replace: Some(vec![9]),
            }),
        ),
        (
            ActionResult::SnapshotTaken { snapshot: vec![10] },
            Some(Op::InstallChunked {
                module_hash: hash(NEW),
            }),
        ),
        (ActionResult::Installed, Some(Op::Start)),
        (ActionResult::Started, Some(Op::HealthCheck)),
        (
            ActionResult::Health {
                ok: true,
                version: t.version.clone(),
                message: None,
            },
            None,
        ),
    ];
    for (result, want) in steps {
        let next = pipeline::on_result(&mut r, result, &cx, 5).unwrap();
        match want {
            Some(op) => assert_eq!(call(next), op),
            None => assert_eq!(next, Next::Finished),
        }
    }
    assert_eq!(r.outcome(), Some(Outcome::Done));
    assert_eq!(r.snapshot, Some(vec![10]));
}

fn reject(code: u32) -> CallError {
    CallError {
        reject_code: code,
        message: "boom".into(),
    }
}

/// Whatever fails after the stop, the next call starts the canister again; only the release's
/// own failures (the install trapped or was refused) end `Failed`, everything else defers the
/// canister for a retry with backoff, attributed to its environment or the manager.
#[test]
fn every_failure_after_stop_starts_the_canister_again() {
    let (t, c, rt) = policies();
    let cx = ctx(&t, &c, &rt);
    let busy = Step::Busy;
    let failed = Step::Finished(Outcome::Failed);
    let cases = [
        ("stopping", ActionResult::StopTimedOut, busy.clone(), None),
        // The IC refused the stop (CANISTER_ERROR): the canister's state.
        (
            "stopping",
            ActionResult::CallFailed(reject(5)),
            busy.clone(),
            Some(Cause::Environment),
        ),
        // SYS_TRANSIENT on the snapshot: the subnet or the manager.
        (
            "snapshotting",
            ActionResult::CallFailed(reject(2)),
            busy.clone(),
            Some(Cause::Manager),
        ),
        // Not sent at all: the manager could not pay for the call.
        (
            "snapshotting",
            ActionResult::CallFailed(reject(NOT_SENT)),
            busy.clone(),
            Some(Cause::Manager),
        ),
        (
            "installing",
            ActionResult::InstallFailed(reject(5)),
            failed.clone(),
            Some(Cause::Release),
        ),
        (
            "installing",
            ActionResult::InstallFailed(reject(4)),
            failed.clone(),
            Some(Cause::Release),
        ),
        (
            "installing",
            ActionResult::InstallFailed(reject(2)),
            busy.clone(),
            Some(Cause::Manager),
        ),
    ];
    for (step, result, end, cause) in cases {
        let mut r = at(step, &cx);
        assert_eq!(
            call(pipeline::on_result(&mut r, result, &cx, 10).unwrap()),
            Op::Start
        );
        let next = pipeline::on_result(&mut r, ActionResult::Started, &cx, 11).unwrap();
        assert_eq!(r.step, end, "after {step}");
        if end == Step::Busy {
            assert_eq!(next, Next::RetryAt(11 + rt.backoff(1)));
        }
        if let Some(cause) = cause {
            assert_eq!(
                r.failure.as_ref().map(Failure::cause),
                Some(cause),
                "{step}"
            );
        }
    }
    let mut r = at("installing", &cx);
    pipeline::on_result(&mut r, ActionResult::InstallFailed(err()), &cx, 10).unwrap();
    assert_eq!(r.failure, Some(Failure::InstallFailed(err())));

    // With the manager below its reserve, even a trap-shaped reject is not booked as the
    // release's: the manager cannot tell, and a healthy canister must not be marked failed.
    let low = Ctx {
        manager_low: true,
        ..cx
    };
    let mut r = at("installing", &low);
    pipeline::on_result(&mut r, ActionResult::InstallFailed(reject(5)), &low, 10).unwrap();
    pipeline::on_result(&mut r, ActionResult::Started, &low, 11).unwrap();
    assert_eq!(r.step, Step::Busy);
    assert!(matches!(r.failure, Some(Failure::ManagerCall { .. })));
}

/// A canister deferred on every attempt ends `Deferred`, running its old release: it never
/// counts as the release's failure.
#[test]
fn repeated_deferrals_end_deferred_not_failed() {
    let (t, c, rt) = policies();
    let cx = ctx(&t, &c, &rt);
    let mut r = record();
    let mut now = 0;
    for attempt in 1..=rt.stop_attempts {
        assert_eq!(pipeline::begin(&mut r, now), Op::CanisterStatus);
        pipeline::on_result(&mut r, status(u128::MAX), &cx, now).unwrap();
        pipeline::on_result(&mut r, ActionResult::StopTimedOut, &cx, now).unwrap();
        let next = pipeline::on_result(&mut r, ActionResult::Started, &cx, now).unwrap();
        assert_eq!(r.stop_attempts, attempt);
        if attempt < rt.stop_attempts {
            assert_eq!(next, Next::RetryAt(now + rt.backoff(attempt)));
            now += rt.backoff(attempt);
        } else {
            assert_eq!(next, Next::Finished);
        }
    }
    assert_eq!(r.outcome(), Some(Outcome::Deferred));
    assert!(!Outcome::Deferred.is_failure());
    assert_eq!(
        r.failure,
        Some(Failure::StopTimedOut {
            attempts: rt.stop_attempts
        })
    );
}

#[test]
fn rejects_are_classified_by_code_and_call() {
    use OpKind::*;
    let c = |code, op| classify(op, &reject(code), false);
    assert_eq!(c(5, InstallChunked), Cause::Release);
    assert_eq!(c(4, HealthCheck), Cause::Release);
    assert_eq!(c(2, Stop), Cause::Environment);
    assert_eq!(c(6, Stop), Cause::Environment);
    assert_eq!(c(2, TakeSnapshot), Cause::Manager);
    assert_eq!(c(6, HealthCheck), Cause::Manager);
    assert_eq!(c(NOT_SENT, InstallChunked), Cause::Manager);
    assert_eq!(c(1, CanisterStatus), Cause::Manager);
    assert_eq!(c(3, Stop), Cause::Environment);
    assert_eq!(c(5, TakeSnapshot), Cause::Environment);
    assert_eq!(c(4, CanisterStatus), Cause::Environment);
    assert_eq!(
        classify(InstallChunked, &reject(5), true),
        Cause::Manager,
        "a low manager takes every reject on itself"
    );
}

/// A health check that gets no answer (SYS_UNKNOWN) is asked again; one that is rejected by
/// the canister is unhealthy at once.
#[test]
fn health_check_retries_lost_answers_but_not_rejections() {
    let (t, c, rt) = policies();
    let cx = ctx(&t, &c, &rt);
    let mut r = at("health", &cx);
    let next = pipeline::on_result(&mut r, ActionResult::CallFailed(reject(6)), &cx, 50).unwrap();
    assert_eq!(next, Next::CallAt(50 + rt.backoff(1)));
    assert_eq!(r.step, Step::HealthCheck);
    let next = pipeline::on_result(&mut r, ActionResult::CallFailed(reject(5)), &cx, 60).unwrap();
    assert_eq!(call(next), Op::Stop, "unhealthy: restore the snapshot");
    assert_eq!(r.step, Step::RestoringStop);
}

#[test]
fn unhealthy_upgrade_is_restored_from_the_fresh_snapshot() {
    let (t, c, rt) = policies();
    let cx = ctx(&t, &c, &rt);
    let mut r = at("health", &cx);
    let unhealthy = ActionResult::Health {
        ok: true,
        version: "0.9.0".into(),
        message: None,
    };
    assert_eq!(
        call(pipeline::on_result(&mut r, unhealthy, &cx, 1).unwrap()),
        Op::Stop
    );
    assert_eq!(
        call(pipeline::on_result(&mut r, ActionResult::Stopped, &cx, 2).unwrap()),
        Op::LoadSnapshot { snapshot: vec![10] }
    );
    assert_eq!(
        call(pipeline::on_result(&mut r, ActionResult::SnapshotLoaded, &cx, 3).unwrap()),
        Op::Start
    );
    assert_eq!(
        pipeline::on_result(&mut r, ActionResult::Started, &cx, 4).unwrap(),
        Next::Finished
    );
    assert_eq!(r.outcome(), Some(Outcome::RolledBack));
    assert!(matches!(r.failure, Some(Failure::Unhealthy { .. })));

    // Without a snapshot of this pipeline, the old fleet snapshot is never loaded.
    let cx = Ctx {
        take_snapshot: false,
        ..cx
    };
    let mut r = record();
    pipeline::begin(&mut r, 0);
    pipeline::on_result(&mut r, status(u128::MAX), &cx, 1).unwrap();
    let op = call(pipeline::on_result(&mut r, ActionResult::Stopped, &cx, 1).unwrap());
    assert!(matches!(op, Op::InstallChunked { .. }));
    pipeline::on_result(&mut r, ActionResult::Installed, &cx, 1).unwrap();
    pipeline::on_result(&mut r, ActionResult::Started, &cx, 1).unwrap();
    let next = pipeline::on_result(&mut r, ActionResult::CallFailed(err()), &cx, 1).unwrap();
    assert_eq!(next, Next::Finished);
    assert!(matches!(
        r.failure,
        Some(Failure::UnhealthyNoSnapshot { .. })
    ));
}

#[test]
fn failed_start_is_retried_with_backoff_forever() {
    let (t, c, rt) = policies();
    let cx = ctx(&t, &c, &rt);
    let mut r = at("starting", &cx);
    for i in 1..=20 {
        let next = pipeline::on_result(&mut r, ActionResult::CallFailed(err()), &cx, 100).unwrap();
        assert_eq!(next, Next::CallAt(100 + rt.backoff(i)));
        assert!(matches!(r.step, Step::Starting { .. }));
        assert_eq!(pipeline::current_op(&r, &t), Some(Op::Start));
    }
    assert_eq!(rt.backoff(20), rt.backoff_max_ns);
}

#[test]
fn precheck_skips_or_defers_with_reasons_and_tops_up_within_budget() {
    let (t, c, rt) = policies();
    let cx = ctx(&t, &c, &rt);
    let skip = |result: ActionResult, cx: &Ctx| {
        let mut r = record();
        pipeline::begin(&mut r, 0);
        let next = pipeline::on_result(&mut r, result, cx, 1).unwrap();
        (next, r)
    };
    let (_, r) = skip(
        ActionResult::Status {
            controllers: vec![manager()],
            module_hash: Some(hash(OLD)),
            cycles: u128::MAX,
        },
        &cx,
    );
    // Controllers changed: deferred and retried (they may be put back), never upgraded now.
    assert_eq!(r.failure, Some(Failure::RecoveryControllerMissing));
    assert_eq!(r.step, Step::Busy);
    let (_, r) = skip(
        ActionResult::Status {
            controllers: vec![manager(), recovery_of(1)],
            module_hash: Some(hash(7)),
            cycles: u128::MAX,
        },
        &cx,
    );
    assert!(matches!(
        r.failure,
        Some(Failure::ModuleHashMismatch { .. })
    ));
    let low = c.min_cycles - 1;
    let (_, r) = skip(status(low), &cx);
    assert!(matches!(r.failure, Some(Failure::LowCycles { .. })));
    assert_eq!(r.step, Step::Busy, "its owner may top it up");
    let cx = Ctx {
        budget_left: c.top_up_to,
        ..cx
    };
    let (next, _) = skip(status(low), &cx);
    assert_eq!(
        call(next),
        Op::TopUp {
            cycles: c.top_up_to - low
        }
    );
}

#[test]
fn mismatched_result_changes_nothing() {
    let (t, c, rt) = policies();
    let cx = ctx(&t, &c, &rt);
    let mut r = at("installing", &cx);
    let before = r.clone();
    assert!(pipeline::on_result(&mut r, ActionResult::Stopped, &cx, 9).is_err());
    assert!(pipeline::on_result(&mut r, ActionResult::SnapshotLoaded, &cx, 9).is_err());
    assert_eq!(r, before);
}

#[test]
fn abort_before_install_restarts_and_cancels() {
    let (t, c, rt) = policies();
    let cx = Ctx {
        aborting: true,
        manager_low: false,
        ..ctx(&t, &c, &rt)
    };
    let normal = ctx(&t, &c, &rt);
    let mut r = at("stopping", &normal); // stop issued
    assert_eq!(
        call(pipeline::on_result(&mut r, ActionResult::Stopped, &cx, 1).unwrap()),
        Op::Start
    );
    pipeline::on_result(&mut r, ActionResult::Started, &cx, 2).unwrap();
    assert_eq!(r.outcome(), Some(Outcome::Cancelled));
    // Once installed, the pipeline finishes (start, health check) even when aborting.
    let mut r = at("starting", &normal);
    assert_eq!(
        call(pipeline::on_result(&mut r, ActionResult::Started, &cx, 1).unwrap()),
        Op::HealthCheck
    );
}
