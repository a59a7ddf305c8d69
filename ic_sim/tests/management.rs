//! The management canister: stop/start, chunked install, snapshots, failed upgrades, errors.

use candid::{encode_args, encode_one, Principal};
use ic_sim::management_canister::CanisterInstallMode;
use ic_sim::{query_candid, update_candid, ErrorCode, IcSim, RejectCode};
use sha2::Digest;

fn probe(features: &[&str]) -> Vec<u8> {
    wasm_build::wasm("sim_probe", features)
}

fn install(pic: &IcSim) -> Principal {
    let id = pic.create_canister();
    pic.install_canister(id, probe(&[]), encode_one(None::<u64>).unwrap(), None);
    id
}

#[test]
fn stop_waits_for_open_call_contexts_and_times_out() {
    let pic = IcSim::new();
    let a = install(&pic);
    pic.fault_hold_call_context(a, true);
    let stop = pic
        .submit_call(
            Principal::management_canister(),
            Principal::anonymous(),
            "stop_canister",
            encode_one(ic_sim::management_canister::CanisterIdRecord { canister_id: a }).unwrap(),
        )
        .unwrap();
    pic.tick();
    pic.tick();
    assert!(pic.ingress_status(&stop).is_none(), "stop waits");
    let status = pic.canister_status(a, None).unwrap();
    assert_eq!(
        status.status,
        ic_sim::management_canister::CanisterStatusType::Stopping
    );
    let err = pic
        .update_call(a, Principal::anonymous(), "inc", encode_args(()).unwrap())
        .unwrap_err();
    assert_eq!(
        err.error_code,
        ErrorCode::CanisterStopping,
        "new calls are rejected while stopping"
    );
    pic.advance_time(std::time::Duration::from_secs(5 * 60 + 1));
    pic.tick();
    let err = pic.await_call(stop).unwrap_err();
    assert_eq!(err.reject_code, RejectCode::SysTransient);
    assert_eq!(err.error_code, ErrorCode::StopCanisterRequestTimeout);
    let status = pic.canister_status(a, None).unwrap();
    assert_eq!(
        status.status,
        ic_sim::management_canister::CanisterStatusType::Stopping,
        "stays stopping"
    );
    // Once the context closes, a new stop completes.
    pic.fault_hold_call_context(a, false);
    pic.stop_canister(a, None).unwrap();
    let err = pic
        .update_call(a, Principal::anonymous(), "inc", encode_args(()).unwrap())
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterStopped);
    pic.start_canister(a, None).unwrap();
    let (n,): (u64,) = update_candid(&pic, a, "inc", ()).unwrap();
    assert_eq!(n, 1);
}

#[test]
fn chunked_install_from_a_store_canister_and_wrong_hash() {
    let pic = IcSim::new();
    let store = install(&pic);
    let target = pic.create_canister();
    let wasm = probe(&["v2"]);
    let mut hashes = Vec::new();
    for chunk in wasm.chunks(500_000) {
        hashes.push(pic.upload_chunk(store, None, chunk.to_vec()).unwrap());
    }
    assert_eq!(pic.stored_chunks(store, None).unwrap().len(), hashes.len());
    let too_big = pic
        .upload_chunk(store, None, vec![0; (1 << 20) + 1])
        .unwrap_err();
    assert_eq!(too_big.reject_code, RejectCode::CanisterReject);
    let module_hash: [u8; 32] = sha2::Sha256::digest(&wasm).into();
    let err = pic
        .install_chunked_canister(
            target,
            None,
            CanisterInstallMode::Install,
            store,
            hashes.clone(),
            vec![0; 32],
            encode_one(None::<u64>).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::InvalidManagementPayload);
    assert!(
        err.reject_message.contains("does not match"),
        "{}",
        err.reject_message
    );
    let stranger = Principal::from_slice(&[9; 29]);
    let err = pic
        .install_chunked_canister(
            target,
            Some(stranger),
            CanisterInstallMode::Install,
            store,
            hashes.clone(),
            module_hash.to_vec(),
            encode_one(None::<u64>).unwrap(),
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterInvalidController);
    pic.install_chunked_canister(
        target,
        None,
        CanisterInstallMode::Install,
        store,
        hashes,
        module_hash.to_vec(),
        encode_one(Some(3u64)).unwrap(),
    )
    .unwrap();
    let (v,): (String,) = query_candid(&pic, target, "version", ()).unwrap();
    assert_eq!(v, "v2");
    assert_eq!(pic.module_hash(target), Some(module_hash));
}

#[test]
fn snapshot_take_and_load_restore_state() {
    let pic = IcSim::new();
    let a = install(&pic);
    let () = update_candid(&pic, a, "stable_put", (100u64, vec![7u8; 10])).unwrap();
    let (_,): (u64,) = update_candid(&pic, a, "inc", ()).unwrap();
    pic.stop_canister(a, None).unwrap();
    let snap = pic.take_canister_snapshot(a, None, None).unwrap();
    pic.start_canister(a, None).unwrap();
    let (_,): (u64,) = update_candid(&pic, a, "inc", ()).unwrap();
    let () = update_candid(&pic, a, "stable_put", (100u64, vec![8u8; 10])).unwrap();
    pic.upgrade_canister(a, probe(&["v2"]), encode_args(()).unwrap(), None)
        .unwrap();
    pic.stop_canister(a, None).unwrap();
    pic.load_canister_snapshot(a, None, snap.id.clone())
        .unwrap();
    pic.start_canister(a, None).unwrap();
    let (v,): (String,) = query_candid(&pic, a, "version", ()).unwrap();
    assert_eq!(v, "v1", "module restored");
    let (n,): (u64,) = query_candid(&pic, a, "get", ()).unwrap();
    assert_eq!(n, 1, "heap restored");
    let (b,): (Vec<u8>,) = query_candid(&pic, a, "stable_get", (100u64, 10u64)).unwrap();
    assert_eq!(b, vec![7u8; 10], "stable memory restored");
    assert_eq!(pic.list_canister_snapshots(a, None).unwrap().len(), 1);
    for _ in 0..9 {
        pic.take_canister_snapshot(a, None, None).unwrap();
    }
    let err = pic.take_canister_snapshot(a, None, None).unwrap_err();
    assert!(
        err.reject_message.contains("maximum number of snapshots"),
        "{}",
        err.reject_message
    );
    pic.delete_canister_snapshot(a, None, snap.id.clone())
        .unwrap();
    let err = pic.load_canister_snapshot(a, None, snap.id).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterSnapshotNotFound);
}

/// What the replica charges a canister for taking or loading a snapshot of `bytes`: an
/// execution (5M, plus 0.4 cycles per instruction on 13 nodes) of 2B instructions plus one per
/// byte (`canister_snapshot_baseline_instructions`, dfinity/ic `rs/config/src/subnet_config.rs`).
fn snapshot_fee(bytes: u64) -> u128 {
    5_000_000 + (2_000_000_000 + u128::from(bytes)) * 4 / 10
}

#[test]
fn snapshots_are_charged_to_their_canister() {
    let pic = IcSim::new();
    let a = install(&pic);
    let () = update_candid(&pic, a, "stable_put", (100u64, vec![7u8; 10])).unwrap();
    pic.stop_canister(a, None).unwrap();

    let before = pic.cycle_balance(a);
    let snap = pic.take_canister_snapshot(a, None, None).unwrap();
    assert!(snap.total_size > 0);
    assert_eq!(before - pic.cycle_balance(a), snapshot_fee(snap.total_size));

    let before = pic.cycle_balance(a);
    pic.load_canister_snapshot(a, None, snap.id.clone())
        .unwrap();
    assert_eq!(before - pic.cycle_balance(a), snapshot_fee(snap.total_size));

    // Downloading a slice: 5M instructions plus the bytes moved.
    let before = pic.cycle_balance(a);
    let args = ic_sim::management_canister::ReadCanisterSnapshotDataArgs {
        canister_id: a,
        snapshot_id: snap.id.clone(),
        kind: ic_sim::management_canister::SnapshotDataKind::StableMemory {
            offset: 0,
            size: 1000,
        },
    };
    pic.read_canister_snapshot_data(None, &args).unwrap();
    assert_eq!(
        before - pic.cycle_balance(a),
        5_000_000 + (5_000_000 + 1000) * 4 / 10
    );

    // Enough for the fee but not above the freezing threshold: refused, nothing charged.
    pic.fault_drain_cycles(a);
    pic.add_cycles(a, snapshot_fee(snap.total_size));
    let err = pic.take_canister_snapshot(a, None, None).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterOutOfCycles);
    assert!(
        err.reject_message.contains("out of cycles"),
        "{}",
        err.reject_message
    );
    assert_eq!(pic.cycle_balance(a), snapshot_fee(snap.total_size));
    assert_eq!(pic.list_canister_snapshots(a, None).unwrap().len(), 1);
}

#[test]
fn a_trap_in_post_upgrade_keeps_the_old_module_and_data() {
    let pic = IcSim::new();
    let a = install(&pic);
    let (_,): (u64,) = update_candid(&pic, a, "inc", ()).unwrap();
    let hash = pic.module_hash(a);
    let err = pic
        .upgrade_canister(
            a,
            probe(&["v2", "trap_post_upgrade"]),
            encode_args(()).unwrap(),
            None,
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterCalledTrap);
    assert!(
        err.reject_message.contains("post_upgrade refuses"),
        "{}",
        err.reject_message
    );
    assert_eq!(pic.module_hash(a), hash);
    let (v,): (String,) = query_candid(&pic, a, "version", ()).unwrap();
    assert_eq!(v, "v1");
    let (n,): (u64,) = query_candid(&pic, a, "get", ()).unwrap();
    assert_eq!(n, 1);
    // A trap in pre_upgrade fails the upgrade too; skip_pre_upgrade bypasses it.
    let () = update_candid(&pic, a, "set_trap_pre_upgrade", (true,)).unwrap();
    let err = pic
        .upgrade_canister(a, probe(&["v2"]), encode_args(()).unwrap(), None)
        .unwrap_err();
    assert!(
        err.reject_message.contains("pre_upgrade refuses"),
        "{}",
        err.reject_message
    );
    let mode = CanisterInstallMode::Upgrade(Some(ic_sim::management_canister::UpgradeFlags {
        skip_pre_upgrade: Some(true),
        wasm_memory_persistence: None,
    }));
    pic.install_code(a, mode, probe(&["v2"]), encode_args(()).unwrap(), None)
        .unwrap();
    let (v,): (String,) = query_candid(&pic, a, "version", ()).unwrap();
    assert_eq!(v, "v2");
}

#[test]
fn controllers_unknown_methods_and_limits() {
    let pic = IcSim::new();
    let a = install(&pic);
    let user = Principal::from_slice(&[3; 29]);
    let err = pic.stop_canister(a, Some(user)).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterInvalidController);
    let eleven: Vec<Principal> = (0..11u8).map(|i| Principal::from_slice(&[i; 29])).collect();
    let err = pic.set_controllers(a, None, eleven).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::InvalidManagementPayload);
    pic.set_controllers(a, None, vec![Principal::anonymous(), user])
        .unwrap();
    pic.stop_canister(a, Some(user)).unwrap();
    pic.start_canister(a, Some(user)).unwrap();
    // A canister calling an unknown management method is rejected as the replica rejects it:
    // reject code 5 (CANISTER_ERROR) with IC0536 CanisterMethodNotFound (the execution
    // environment's `Ic00Method` parse failure), not 4.
    let (r,): (Result<Vec<u8>, (u32, String)>,) = update_candid(
        &pic,
        a,
        "call_raw",
        (
            Principal::management_canister(),
            "no_such_method".to_string(),
            encode_args(()).unwrap(),
            0u128,
        ),
    )
    .unwrap();
    let (code, message) = r.unwrap_err();
    assert_eq!(code, 5);
    assert!(
        message.contains("Management canister has no method 'no_such_method'"),
        "{message}"
    );
    // create_canister needs the creation fee.
    let args = ic_sim::management_canister::CreateCanisterArgs {
        settings: None,
        sender_canister_version: None,
    };
    let (r,): (Result<Vec<u8>, (u32, String)>,) = update_candid(
        &pic,
        a,
        "call_raw",
        (
            Principal::management_canister(),
            "create_canister".to_string(),
            encode_one(&args).unwrap(),
            1_000u128,
        ),
    )
    .unwrap();
    assert_eq!(r.unwrap_err().0, 4);
    let (r,): (Result<Vec<u8>, (u32, String)>,) = update_candid(
        &pic,
        a,
        "call_raw",
        (
            Principal::management_canister(),
            "create_canister".to_string(),
            encode_one(&args).unwrap(),
            1_000_000_000_000u128,
        ),
    )
    .unwrap();
    let created: ic_sim::management_canister::CanisterIdRecord =
        candid::decode_one(&r.unwrap()).unwrap();
    assert_eq!(pic.get_controllers(created.canister_id), vec![a]);
    assert_eq!(pic.cycle_balance(created.canister_id), 500_000_000_000);
    pic.stop_canister(a, None).unwrap();
    pic.delete_canister(a, None).unwrap();
    assert!(!pic.canister_exists(a));
}

#[test]
fn injected_management_rejects_hit_only_calls_about_that_canister() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    pic.fault_reject_management_calls(a, 2, RejectCode::SysTransient);
    let e = pic.stop_canister(a, None).unwrap_err();
    assert_eq!(e.reject_code, RejectCode::SysTransient);
    pic.stop_canister(b, None)
        .expect("another canister is not affected");
    let e = pic.canister_status(a, None).unwrap_err();
    assert_eq!(e.reject_code, RejectCode::SysTransient);
    // The count is used up; the rejected stop changed nothing.
    let status = pic.canister_status(a, None).unwrap();
    assert_eq!(
        status.status,
        ic_sim::management_canister::CanisterStatusType::Running
    );
    pic.fault_reject_management_calls(a, 1, RejectCode::CanisterError);
    let e = pic.start_canister(a, None).unwrap_err();
    assert_eq!(e.reject_code, RejectCode::CanisterError);
}

/// Methods the simulator does not implement are rejected with their name (interface spec,
/// "The IC management canister"; the replica's execution environment answers IC0536 for a
/// method it does not know).
#[test]
fn unimplemented_management_methods_are_rejected_by_name() {
    let pic = IcSim::new();
    let a = install(&pic);
    for method in ["vetkd_public_key", "vetkd_derive_key", "bitcoin_get_utxos"] {
        let (result,): (Result<Vec<u8>, (u32, String)>,) = update_candid(
            &pic,
            a,
            "call_raw",
            (
                Principal::management_canister(),
                method,
                encode_args(()).unwrap(),
                0u128,
            ),
        )
        .unwrap();
        let (code, message) = result.unwrap_err();
        assert_eq!(code, 5, "{method}: {message}");
        assert!(message.contains(method), "{message}");
    }
    let err = pic
        .update_call(
            Principal::management_canister(),
            Principal::anonymous(),
            "list_canisters",
            encode_args(()).unwrap(),
        )
        .unwrap_err();
    assert!(err.reject_message.contains("list_canisters"), "{err}");
}
