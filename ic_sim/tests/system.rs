//! System tasks, management canister methods that only canisters can call, code installation
//! modes, environment variables and message deadlines, each as the interface spec states it.

use candid::{decode_one, encode_args, encode_one, Principal};
use ic_sim::management_canister::{
    CanisterInfoArgs, CanisterInfoResult, CanisterInstallMode, CanisterSettings, ChangeDetails,
    ChangeOrigin, CodeDeploymentMode, EnvironmentVariable, UpdateSettingsArgs,
};
use ic_sim::{query_candid, update_candid, ErrorCode, IcSim, IcSimBuilder};
use sha2::{Digest, Sha256};

mod common;
use common::CallResult;

fn probe(features: &[&str]) -> Vec<u8> {
    wasm_build::wasm("sim_probe", features)
}

fn sim() -> IcSim {
    IcSimBuilder::new().with_logs(false).build()
}

fn install(pic: &IcSim, features: &[&str], start: u64) -> Principal {
    let id = pic.create_canister();
    pic.install_canister(id, probe(features), encode_one(Some(start)).unwrap(), None);
    id
}

/// `from` calls the management canister with a candid argument and attached cycles.
fn call_management(
    pic: &IcSim,
    from: Principal,
    method: &str,
    arg: Vec<u8>,
    cycles: u128,
) -> CallResult {
    let (r,): (CallResult,) = update_candid(
        pic,
        from,
        "call_raw",
        (
            Principal::management_canister(),
            method.to_string(),
            arg,
            cycles,
        ),
    )
    .unwrap();
    r
}

fn get(pic: &IcSim, id: Principal) -> u64 {
    query_candid::<_, (u64,)>(pic, id, "get", ()).unwrap().0
}

fn heartbeats(pic: &IcSim, id: Principal) -> u64 {
    query_candid::<_, (u64,)>(pic, id, "heartbeats", ())
        .unwrap()
        .0
}

/// Interface spec, "Heartbeat": a running canister that exports `canister_heartbeat` has it
/// called once per round; a stopped canister receives none.
#[test]
fn heartbeat_runs_once_each_round_while_running() {
    let pic = sim();
    let id = install(&pic, &["heartbeat"], 0);
    let start = heartbeats(&pic, id);
    for _ in 0..7 {
        pic.tick();
    }
    assert_eq!(heartbeats(&pic, id), start + 7);

    let before_stop = heartbeats(&pic, id);
    let round = pic.round();
    pic.stop_canister(id, None).unwrap();
    for _ in 0..5 {
        pic.tick();
    }
    pic.start_canister(id, None).unwrap();
    assert!(pic.round() >= round + 7);
    // At most the round in which the stop request was executed ran a heartbeat.
    assert!(
        heartbeats(&pic, id) <= before_stop + 1,
        "no heartbeats while stopped: {before_stop} -> {}",
        heartbeats(&pic, id)
    );
    // A canister without the export is never called.
    let plain = install(&pic, &[], 0);
    pic.tick();
    assert_eq!(heartbeats(&pic, plain), 0);
}

/// Interface spec, "IC method canister_info": controllers, module hash and the change history
/// (creation, code deployments, controller changes), most recent last; callable by canisters.
#[test]
fn canister_info_reports_controllers_module_hash_and_history() {
    let pic = sim();
    let asker = install(&pic, &[], 0);
    let target = install(&pic, &[], 0);
    let wasm = probe(&[]);
    pic.upgrade_canister(target, probe(&["v2"]), encode_one(()).unwrap(), None)
        .unwrap();
    let owner = Principal::from_slice(&[7; 29]);
    pic.set_controllers(target, None, vec![Principal::anonymous(), owner])
        .unwrap();

    let info = common::canister_info(&pic, asker, target, 10);
    let mut controllers = info.controllers.clone();
    controllers.sort();
    let mut expected = vec![Principal::anonymous(), owner];
    expected.sort();
    assert_eq!(controllers, expected);
    let v2_hash = Sha256::digest(probe(&["v2"])).to_vec();
    assert_eq!(info.module_hash, Some(v2_hash.clone()));
    assert_eq!(info.total_num_changes, 4);
    let details: Vec<ChangeDetails> = info
        .recent_changes
        .iter()
        .map(|c| c.details.clone().unwrap())
        .collect();
    assert!(matches!(details[0], ChangeDetails::Creation(_)));
    match &details[1] {
        ChangeDetails::CodeDeployment(d) => {
            assert_eq!(d.mode, CodeDeploymentMode::Install);
            assert_eq!(d.module_hash, Sha256::digest(&wasm).to_vec());
        }
        other => panic!("expected the install, got {other:?}"),
    }
    match &details[2] {
        ChangeDetails::CodeDeployment(d) => {
            assert_eq!(d.mode, CodeDeploymentMode::Upgrade);
            assert_eq!(d.module_hash, v2_hash);
        }
        other => panic!("expected the upgrade, got {other:?}"),
    }
    assert!(matches!(details[3], ChangeDetails::ControllersChange(_)));

    // Only the requested number of most recent changes.
    let arg = encode_one(CanisterInfoArgs {
        canister_id: target,
        num_requested_changes: Some(1),
    })
    .unwrap();
    let info: CanisterInfoResult =
        decode_one(&call_management(&pic, asker, "canister_info", arg, 0).unwrap()).unwrap();
    assert_eq!(info.recent_changes.len(), 1);
    assert!(matches!(
        info.recent_changes[0].details,
        Some(ChangeDetails::ControllersChange(_))
    ));
}

/// Interface spec, "IC method deposit_cycles": the cycles attached to the call go to the
/// target canister.
#[test]
fn deposit_cycles_moves_the_attached_cycles() {
    let pic = sim();
    let from = install(&pic, &[], 0);
    let to = install(&pic, &[], 0);
    let amount: u128 = 2_000_000_000_000;
    let (from0, to0) = (pic.cycle_balance(from), pic.cycle_balance(to));
    let arg =
        encode_one(ic_sim::management_canister::CanisterIdRecord { canister_id: to }).unwrap();
    call_management(&pic, from, "deposit_cycles", arg, amount).unwrap();
    assert_eq!(pic.cycle_balance(to), to0 + amount);
    let spent = from0 - pic.cycle_balance(from);
    assert!(
        spent >= amount && spent < amount + 100_000_000,
        "the sender paid the deposit plus fees: {spent}"
    );
}

/// Interface spec, "IC method raw_rand": 32 fresh random bytes per call.
#[test]
fn raw_rand_returns_32_bytes_that_differ_between_calls() {
    let pic = sim();
    let id = install(&pic, &[], 0);
    let arg = encode_args(()).unwrap();
    let a: Vec<u8> =
        decode_one(&call_management(&pic, id, "raw_rand", arg.clone(), 0).unwrap()).unwrap();
    let b: Vec<u8> = decode_one(&call_management(&pic, id, "raw_rand", arg, 0).unwrap()).unwrap();
    assert_eq!(a.len(), 32);
    assert_eq!(b.len(), 32);
    assert_ne!(a, b);
}

/// Interface spec, "IC method install_code": `reinstall` discards heap and stable memory and
/// runs `canister_init`; the canister keeps its id and its cycles (less the execution fee).
#[test]
fn reinstall_wipes_heap_and_stable_memory_but_keeps_id_and_cycles() {
    let pic = sim();
    let id = install(&pic, &[], 5);
    let () = update_candid(&pic, id, "stable_put", (0u64, vec![9u8; 100])).unwrap();
    update_candid::<_, (u64,)>(&pic, id, "inc", ()).unwrap();
    assert_eq!(get(&pic, id), 6);
    assert!(!pic.get_stable_memory(id).is_empty());
    let cycles = pic.cycle_balance(id);

    pic.reinstall_canister(id, probe(&[]), encode_one(None::<u64>).unwrap(), None)
        .unwrap();
    assert_eq!(get(&pic, id), 0, "heap starts afresh");
    assert!(
        pic.get_stable_memory(id).is_empty(),
        "stable memory is empty"
    );
    let after = pic.cycle_balance(id);
    assert!(
        after <= cycles && cycles - after < 1_000_000_000,
        "{cycles} -> {after}"
    );
    assert!(pic.canister_exists(id));
    assert_eq!(
        update_candid::<_, (u64,)>(&pic, id, "inc", ()).unwrap().0,
        1
    );
}

/// Interface spec, "IC method install_code": mode `install` on a canister that has a module
/// is refused, and the canister is unchanged.
#[test]
fn install_on_a_non_empty_canister_is_refused() {
    let pic = sim();
    let id = install(&pic, &[], 5);
    let err = pic
        .install_code(
            id,
            CanisterInstallMode::Install,
            probe(&["v2"]),
            encode_one(Some(0u64)).unwrap(),
            None,
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterNonEmpty);
    assert_eq!(get(&pic, id), 5);
    assert_eq!(
        pic.module_hash(id).unwrap().to_vec(),
        Sha256::digest(probe(&[])).to_vec()
    );
}

/// Interface spec, "Environment variables" (`ic0.env_var_*`): the canister sees the variables
/// of its settings, ordered by name.
#[test]
fn environment_variables_are_visible_to_the_canister() {
    let pic = sim();
    let id = install(&pic, &[], 0);
    let settings = CanisterSettings {
        environment_variables: Some(vec![
            EnvironmentVariable {
                name: "ZONE".into(),
                value: "eu".into(),
            },
            EnvironmentVariable {
                name: "API".into(),
                value: "v3".into(),
            },
        ]),
        ..Default::default()
    };
    pic.update_canister_settings(id, None, settings).unwrap();
    let (vars, exists): (Vec<(String, String)>, bool) =
        update_candid(&pic, id, "env_vars", ("ZONE".to_string(),)).unwrap();
    assert_eq!(
        vars,
        vec![("API".into(), "v3".into()), ("ZONE".into(), "eu".into())]
    );
    assert!(exists);
    let (_, exists): (Vec<(String, String)>, bool) =
        update_candid(&pic, id, "env_vars", ("HOME".to_string(),)).unwrap();
    assert!(!exists);
}

/// Interface spec, `ic0.msg_deadline`: 0 for ingress and guaranteed-response calls; for a
/// best-effort call, the call time plus its timeout, seen alike by the callee and by the
/// caller's callback.
#[test]
fn msg_deadline_is_zero_unless_the_call_is_best_effort() {
    let pic = sim();
    let a = install(&pic, &[], 0);
    let b = install(&pic, &[], 0);
    let (d,): (u64,) = update_candid(&pic, b, "deadline", ()).unwrap();
    assert_eq!(d, 0, "ingress has no deadline");
    let (seen, callback): (u64, u64) = update_candid(&pic, a, "call_deadline", (b, false)).unwrap();
    assert_eq!((seen, callback), (0, 0), "guaranteed-response call");
    let now = pic.get_time().as_nanos_since_unix_epoch();
    let (seen, callback): (u64, u64) = update_candid(&pic, a, "call_deadline", (b, true)).unwrap();
    // The call is made in the next round, one PocketIC round step (1 ns) later; ic-cdk's
    // bounded_wait uses a 300 s timeout.
    assert_eq!(seen, now + 1 + 300_000_000_000);
    assert_eq!(callback, seen);
}

/// `ic0.performance_counter` charges its own system API overhead on entry (the replica's
/// `overhead::PERFORMANCE_COUNTER`, 200 instructions), so two reads in a row strictly increase
/// (interface spec, "Performance counter": the counter is monotone within a message).
#[test]
fn consecutive_performance_counter_reads_increase() {
    let pic = IcSim::new();
    let a = install(&pic, &[], 0);
    let (first, second): (u64, u64) =
        query_candid(&pic, a, "performance_counter_twice", ()).unwrap();
    assert!(second >= first + 200, "{first} then {second}");
}

/// Interface spec, "IC method `canister_info`": a change made by a canister is recorded as
/// `from_canister` with the `sender_canister_version` its call passed (ic-cdk passes the
/// caller's own version), and without one when the call gave none.
#[test]
fn canister_history_records_the_calling_canisters_version() {
    let pic = sim();
    let caller = install(&pic, &[], 0);
    let target = install(&pic, &[], 0);
    pic.set_controllers(target, None, vec![caller]).unwrap();
    let change = |controllers: Vec<Principal>, version: Option<u64>| {
        let arg = encode_one(UpdateSettingsArgs {
            canister_id: target,
            settings: CanisterSettings {
                controllers: Some(controllers),
                ..Default::default()
            },
            sender_canister_version: version,
        })
        .unwrap();
        call_management(&pic, caller, "update_settings", arg, 0).unwrap();
    };
    change(vec![caller, Principal::anonymous()], Some(41));
    change(vec![caller], None);
    let arg = encode_one(CanisterInfoArgs {
        canister_id: target,
        num_requested_changes: Some(2),
    })
    .unwrap();
    let info: CanisterInfoResult =
        decode_one(&call_management(&pic, caller, "canister_info", arg, 0).unwrap()).unwrap();
    let origins: Vec<_> = info
        .recent_changes
        .iter()
        .map(|c| match &c.origin {
            ChangeOrigin::FromCanister(r) => (r.canister_id, r.canister_version),
            other => panic!("expected a change from a canister, got {other:?}"),
        })
        .collect();
    assert_eq!(origins, vec![(caller, Some(41)), (caller, None)]);
}
