//! Execution, system API, atomicity and metering on real ic-cdk wasm.

use candid::{encode_args, encode_one, Principal};
use ic_sim::{
    query_candid, update_candid, update_candid_as, ErrorCode, IcSim, IcSimBuilder, RejectCode,
    SimLimits,
};

fn probe() -> Vec<u8> {
    wasm_build::wasm("sim_probe", &[])
}

fn setup() -> (IcSim, Principal) {
    let pic = IcSim::new();
    let id = pic.create_canister();
    pic.install_canister(id, probe(), encode_one(Some(5u64)).unwrap(), None);
    (pic, id)
}

#[test]
fn init_update_and_query_round_trip() {
    let (pic, id) = setup();
    let (v,): (String,) = query_candid(&pic, id, "version", ()).unwrap();
    assert_eq!(v, "v1");
    let (n,): (u64,) = update_candid(&pic, id, "inc", ()).unwrap();
    assert_eq!(n, 6, "init argument 5, then one increment");
    let (n,): (u64,) = query_candid(&pic, id, "get", ()).unwrap();
    assert_eq!(n, 6);
}

#[test]
fn queries_never_persist_state() {
    let (pic, id) = setup();
    let (n,): (u64,) = query_candid(&pic, id, "inc_in_query", ()).unwrap();
    assert_eq!(n, 6);
    // Also when a query method is called through an update call (replicated mode).
    let (n,): (u64,) = update_candid(&pic, id, "inc_in_query", ()).unwrap();
    assert_eq!(n, 6);
    let (n,): (u64,) = query_candid(&pic, id, "get", ()).unwrap();
    assert_eq!(n, 5);
}

#[test]
fn a_trap_rolls_back_heap_and_stable_memory() {
    let (pic, id) = setup();
    let () = update_candid(&pic, id, "stable_put", (0u64, vec![1u8; 16])).unwrap();
    assert_eq!(pic.trap_count(id), 0);
    let err = update_candid::<_, ()>(&pic, id, "write_then_trap", (vec![9u8; 8],)).unwrap_err();
    assert_eq!(pic.trap_count(id), 1, "the trap is counted");
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    assert_eq!(err.error_code, ErrorCode::CanisterCalledTrap);
    assert!(
        err.reject_message.contains("write_then_trap"),
        "{}",
        err.reject_message
    );
    let (n,): (u64,) = query_candid(&pic, id, "get", ()).unwrap();
    assert_eq!(n, 5, "the heap change of the trapped message is gone");
    let (bytes,): (Vec<u8>,) = query_candid(&pic, id, "stable_get", (0u64, 16u64)).unwrap();
    assert_eq!(
        bytes,
        vec![1u8; 16],
        "the stable write of the trapped message is gone"
    );
}

#[test]
fn replying_twice_is_a_contract_violation_and_no_reply_is_an_error() {
    let (pic, id) = setup();
    let err = pic
        .update_call(
            id,
            Principal::anonymous(),
            "reply_twice",
            encode_args(()).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterContractViolation);
    assert!(
        err.reject_message.contains("already replied"),
        "{}",
        err.reject_message
    );
    let err = pic
        .update_call(
            id,
            Principal::anonymous(),
            "no_reply",
            encode_args(()).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterDidNotReply);
    assert_eq!(err.reject_code, RejectCode::CanisterError);
    // The execution itself succeeded, so its state change stays.
    let (n,): (u64,) = query_candid(&pic, id, "get", ()).unwrap();
    assert_eq!(n, 6);
    let err = pic
        .update_call(
            id,
            Principal::anonymous(),
            "reject_with",
            encode_one("nope").unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterReject);
    assert_eq!(err.error_code, ErrorCode::CanisterRejectedMessage);
    assert_eq!(err.reject_message, "nope");
}

#[test]
fn unknown_methods_and_inspect_message_reject() {
    let (pic, id) = setup();
    let err = pic
        .update_call(
            id,
            Principal::anonymous(),
            "missing",
            encode_args(()).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterMethodNotFound);
    let err = pic
        .submit_call(
            id,
            Principal::anonymous(),
            "forbidden",
            encode_args(()).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterRejectedMessage);
    let err = pic
        .query_call(id, Principal::anonymous(), "inc", encode_args(()).unwrap())
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterMethodNotFound);
}

/// An ingress message costs its receiver the induction fee once `canister_inspect_message`
/// accepted it: 1.2M cycles plus 2,000 per byte of method name and argument (the replica's
/// `ingress_induction_cost`, application subnet); execution is charged when it runs. A message
/// the canister refuses is never inducted and costs it nothing (interface spec, "Ingress message
/// inspection").
#[test]
fn ingress_costs_its_induction_only_when_inspect_message_accepts_it() {
    let (pic, id) = setup();
    let before = pic.cycle_balance(id);
    let arg = encode_args(()).unwrap();
    for _ in 0..1_000 {
        let err = pic
            .submit_call(id, Principal::anonymous(), "forbidden", arg.clone())
            .unwrap_err();
        assert_eq!(err.error_code, ErrorCode::CanisterRejectedMessage);
    }
    assert_eq!(pic.cycle_balance(id), before, "refused ingress is free");
    pic.submit_call(id, Principal::anonymous(), "inc", arg.clone())
        .unwrap();
    let induction = 1_200_000 + 2_000 * ("inc".len() + arg.len()) as u128;
    assert_eq!(before - pic.cycle_balance(id), induction);
}

#[test]
fn system_api_reports_identity_time_cycles_and_controllers() {
    let (pic, id) = setup();
    let user = Principal::from_slice(&[7; 29]);
    let before = pic.cycle_balance(id);
    let (me, caller, time, cycles, version, is_ctrl, nodes): (
        Principal,
        Principal,
        u64,
        u128,
        u64,
        bool,
        u32,
    ) = update_candid_as(&pic, id, user, "facts", ()).unwrap();
    assert_eq!(me, id);
    assert_eq!(caller, user);
    assert_eq!(time, pic.get_time().as_nanos_since_unix_epoch());
    assert!(cycles <= before && cycles > 0);
    assert!(version >= 1, "installed once");
    assert!(!is_ctrl, "the user is not a controller");
    assert_eq!(nodes, 13);
    let (_, _, _, _, _, is_ctrl, _): (Principal, Principal, u64, u128, u64, bool, u32) =
        update_candid_as(&pic, id, Principal::anonymous(), "facts", ()).unwrap();
    assert!(is_ctrl, "the anonymous creator controls the canister");
    assert!(pic.cycle_balance(id) < before, "executions cost cycles");
}

#[test]
fn time_moves_only_with_rounds_and_advance_time() {
    let (pic, id) = setup();
    let (t1,): (u64,) = query_candid(&pic, id, "query_time", ()).unwrap();
    let (t2,): (u64,) = query_candid(&pic, id, "query_time", ()).unwrap();
    assert_eq!(t1, t2, "queries do not move time");
    pic.advance_time(std::time::Duration::from_secs(10));
    let (t3,): (u64,) = query_candid(&pic, id, "query_time", ()).unwrap();
    assert_eq!(t3, t1 + 10_000_000_000);
    pic.set_time(ic_sim::Time::from_nanos_since_unix_epoch(t3 + 5));
    assert_eq!(pic.get_time().as_nanos_since_unix_epoch(), t3 + 5);
}

#[test]
fn instructions_are_counted_and_limited() {
    let (pic, id) = setup();
    let before_total = pic.instructions_total(id);
    let (b1, a1): (u64, u64) = update_candid(&pic, id, "spin", (1_000u64,)).unwrap();
    let (b2, a2): (u64, u64) = update_candid(&pic, id, "spin", (100_000u64,)).unwrap();
    assert!(a1 > b1 && a2 > b2);
    assert!(
        a2 - b2 > 50 * (a1 - b1),
        "100x the loop costs far more: {} vs {}",
        a2 - b2,
        a1 - b1
    );
    assert!(pic.instructions_total(id) >= before_total + (a2 - b2));

    let limits = SimLimits {
        update_instructions: 2_000_000,
        ..SimLimits::default()
    };
    let pic = IcSimBuilder::new().with_limits(limits).build();
    let id = pic.create_canister();
    pic.install_canister(id, probe(), encode_one(None::<u64>).unwrap(), None);
    let _ok = update_candid::<_, (u64, u64)>(&pic, id, "spin", (1_000u64,)).unwrap();
    eprintln!("small ok");
    let err = update_candid::<_, (u64, u64)>(&pic, id, "spin", (10_000_000u64,)).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterInstructionLimitExceeded);
    assert!(
        err.reject_message
            .contains("exceeded the limit of 2000000 instructions"),
        "{}",
        err.reject_message
    );
}

#[test]
fn a_module_importing_an_unknown_function_fails_to_install() {
    // A minimal module importing ic0.does_not_exist (hand-assembled wasm).
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend_from_slice(&[0x01, 0x04, 0x01, 0x60, 0x00, 0x00]); // type: () -> ()
    let mut import = vec![0x01, 0x03];
    import.extend_from_slice(b"ic0");
    import.push(14);
    import.extend_from_slice(b"does_not_exist");
    import.extend_from_slice(&[0x00, 0x00]);
    wasm.push(0x02);
    wasm.push(import.len() as u8);
    wasm.extend_from_slice(&import);
    let pic = IcSim::new();
    let id = pic.create_canister();
    let err = pic.reinstall_canister(id, wasm, vec![], None).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterInvalidWasm);
    assert!(
        err.reject_message.contains("does_not_exist"),
        "{}",
        err.reject_message
    );
}

#[test]
fn gzipped_modules_install_and_hash_as_installed() {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&probe()).unwrap();
    let gz = enc.finish().unwrap();
    let pic = IcSim::new();
    let id = pic.create_canister();
    pic.install_canister(id, gz.clone(), encode_one(None::<u64>).unwrap(), None);
    let (v,): (String,) = query_candid(&pic, id, "version", ()).unwrap();
    assert_eq!(v, "v1");
    let status = pic.canister_status(id, None).unwrap();
    use sha2::Digest;
    let expected: [u8; 32] = sha2::Sha256::digest(&gz).into();
    assert_eq!(status.module_hash, Some(expected.to_vec()));
}
