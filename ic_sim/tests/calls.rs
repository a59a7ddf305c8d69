//! Inter-canister calls, rounds, callbacks, upgrades with outstanding callbacks, timers,
//! cycles and fault injection.

use candid::{encode_args, encode_one, Principal};
use ic_sim::{query_candid, update_candid, ErrorCode, IcSim, RejectCode};

mod common;
use common::{install, probe, CallResult};

fn call_raw(pic: &IcSim, from: Principal, to: Principal, method: &str, arg: Vec<u8>) -> CallResult {
    common::call_raw(pic, from, to, method, arg, 0)
}

#[test]
fn reject_codes_reach_the_caller() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    let err = call_raw(&pic, a, b, "missing", encode_args(()).unwrap()).unwrap_err();
    assert_eq!(err.0, 5, "CANISTER_ERROR for a missing method");
    let err = call_raw(&pic, a, b, "reject_with", encode_one("no").unwrap()).unwrap_err();
    assert_eq!(
        err,
        (4, "no".to_string()),
        "CANISTER_REJECT with the message"
    );
    let ghost = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0x7f, 0xff, 1, 1]);
    let err = call_raw(&pic, a, ghost, "x", vec![]).unwrap_err();
    assert_eq!(err.0, 3, "DESTINATION_INVALID for a missing canister");
    pic.fault_reject_next_calls(b, 1, RejectCode::SysTransient);
    let err = call_raw(&pic, a, b, "inc", encode_args(()).unwrap()).unwrap_err();
    assert_eq!(err.0, 2, "injected SYS_TRANSIENT");
    assert!(
        call_raw(&pic, a, b, "inc", encode_args(()).unwrap()).is_ok(),
        "only one call was failed"
    );
}

#[test]
fn cleanup_runs_after_a_trapping_callback() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    let err = update_candid::<_, ()>(&pic, a, "trap_in_callback", (b,)).unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    assert!(
        err.reject_message.contains("callback traps"),
        "{}",
        err.reject_message
    );
    let (cleaned,): (u64,) = query_candid(&pic, a, "cleaned", ()).unwrap();
    assert_eq!(
        cleaned, 1,
        "the cleanup callback dropped the guard and its change persisted"
    );
}

/// When the cleanup callback traps too, the reject carries both errors as the replica writes
/// them (`HypervisorError::Cleanup`: "<callback error>\n\ncall_on_cleanup also failed:\n\n
/// <cleanup error>"), with the callback's error code.
#[test]
fn a_trapping_cleanup_adds_its_error_to_the_callbacks() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    let err = update_candid::<_, ()>(&pic, a, "trap_in_callback_and_cleanup", (b,)).unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    assert_eq!(err.error_code, ErrorCode::CanisterCalledTrap);
    let (callback, cleanup) = err
        .reject_message
        .split_once("\n\ncall_on_cleanup also failed:\n\n")
        .unwrap_or_else(|| panic!("{}", err.reject_message));
    assert!(callback.contains("callback traps"), "{callback}");
    assert!(cleanup.contains("cleanup traps too"), "{cleanup}");
}

#[test]
fn self_upgrade_through_a_regular_call_breaks_the_callback() {
    let pic = IcSim::new();
    let a = install(&pic);
    pic.set_controllers(a, None, vec![Principal::anonymous(), a])
        .unwrap();
    let err =
        update_candid::<_, (String,)>(&pic, a, "self_upgrade", (probe(&["v2"]),)).unwrap_err();
    // The response runs the new module's table entry with an env pointer from the old heap.
    assert_eq!(err.reject_code, RejectCode::CanisterError, "{err}");
    let (v,): (String,) = query_candid(&pic, a, "version", ()).unwrap();
    assert_eq!(v, "v2", "the upgrade itself happened");
}

#[test]
fn self_upgrade_through_a_one_way_call_survives() {
    let pic = IcSim::new();
    let a = install(&pic);
    pic.set_controllers(a, None, vec![Principal::anonymous(), a])
        .unwrap();
    let (sent,): (bool,) =
        update_candid(&pic, a, "self_upgrade_notify", (probe(&["v2"]),)).unwrap();
    assert!(sent);
    for _ in 0..3 {
        pic.tick();
    }
    let (v,): (String,) = query_candid(&pic, a, "version", ()).unwrap();
    assert_eq!(v, "v2");
    let (n,): (u64,) = update_candid(&pic, a, "inc", ()).unwrap();
    assert_eq!(n, 1, "the upgraded canister works");
}

#[test]
fn timers_fire_at_the_first_tick_after_their_deadline() {
    let pic = IcSim::new();
    let a = install(&pic);
    let () = update_candid(&pic, a, "start_timer", (60u64,)).unwrap();
    for _ in 0..5 {
        pic.tick();
    }
    let (n,): (u64,) = query_candid(&pic, a, "timer_fired", ()).unwrap();
    assert_eq!(n, 0, "not before the deadline");
    pic.advance_time(std::time::Duration::from_secs(61));
    // Global timer fires, it self-calls the timer executor, which runs the task.
    for _ in 0..4 {
        pic.tick();
    }
    let (n,): (u64,) = query_candid(&pic, a, "timer_fired", ()).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn a_canister_without_cycles_is_frozen() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    pic.fault_drain_cycles(b);
    let err = pic
        .submit_call(b, Principal::anonymous(), "inc", encode_args(()).unwrap())
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterOutOfCycles);
    let err = call_raw(&pic, a, b, "inc", encode_args(()).unwrap()).unwrap_err();
    assert_eq!(err.0, 2, "SYS_TRANSIENT for a frozen callee");
    pic.add_cycles(b, 10_000_000_000_000);
    assert!(call_raw(&pic, a, b, "inc", encode_args(()).unwrap()).is_ok());
}

#[test]
fn cycles_move_with_calls() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    let (a0, b0) = (pic.cycle_balance(a), pic.cycle_balance(b));
    let (r,): (CallResult,) = update_candid(
        &pic,
        a,
        "call_raw",
        (
            b,
            "accept_cycles".to_string(),
            encode_one(400_000_000u128).unwrap(),
            1_000_000_000u128,
        ),
    )
    .unwrap();
    let (accepted,): (u128,) = candid::decode_args(&r.unwrap()).unwrap();
    assert_eq!(accepted, 400_000_000);
    assert!(
        pic.cycle_balance(b) > b0 + 300_000_000,
        "b gained the accepted cycles minus fees"
    );
    let spent = a0 - pic.cycle_balance(a);
    assert!(
        (400_000_000..1_000_000_000).contains(&spent),
        "a got the unaccepted 600M back: spent {spent}"
    );
}

#[test]
fn dropped_and_delayed_responses() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    // A best-effort call whose response is dropped gets SYS_UNKNOWN.
    pic.fault_drop_responses(b, 1);
    let (r,): (CallResult,) = update_candid(
        &pic,
        a,
        "call_bounded",
        (b, "inc".to_string(), encode_args(()).unwrap()),
    )
    .unwrap();
    assert_eq!(r.unwrap_err().0, 6);
    // A delayed response arrives late but arrives.
    pic.fault_delay_responses(b, 1, 5);
    let msg = pic
        .submit_call(
            a,
            Principal::anonymous(),
            "call_raw",
            encode_args((b, "inc".to_string(), encode_args(()).unwrap(), 0u128)).unwrap(),
        )
        .unwrap();
    for _ in 0..4 {
        pic.tick();
    }
    assert!(pic.ingress_status(&msg).is_none(), "still delayed");
    assert!(pic.await_call(msg).is_ok());
}
