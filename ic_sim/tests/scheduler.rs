//! The replica's scheduler as tests observe it: inner rounds, the round's instruction budget and
//! cores, deterministic time slicing, the queue between two canisters, and time per round.

use std::time::Duration;

use candid::{decode_args, encode_args, encode_one, Principal};
use ic_sim::management_canister::{CanisterInstallMode, InstallCodeArgs, UpgradeFlags};
use ic_sim::{query_candid, update_candid, IcSim, IcSimBuilder, RawMessageId, SimLimits};

mod common;
use common::{canister_info, counted_limits, install, probe, CallResult};

fn sim_with(limits: SimLimits) -> IcSim {
    IcSimBuilder::new().with_limits(limits).build()
}

fn submit(pic: &IcSim, to: Principal, method: &str, arg: Vec<u8>) -> RawMessageId {
    pic.submit_call(to, Principal::anonymous(), method, arg)
        .unwrap()
}

fn no_arg() -> Vec<u8> {
    encode_args(()).unwrap()
}

fn call_raw_arg(to: Principal, method: &str, arg: Vec<u8>) -> Vec<u8> {
    encode_args((to, method.to_string(), arg, 0u128)).unwrap()
}

fn counter(pic: &IcSim, id: Principal) -> u64 {
    let (n,): (u64,) = query_candid(pic, id, "get", ()).unwrap();
    n
}

/// Messages between canisters of one subnet are inducted between inner rounds
/// (`induct_messages_on_same_subnet` in the replica's scheduler), so A → B → A completes within
/// one round, as on PocketIC. Messages to and from the management canister take the path
/// through message routing: the request runs in the next round, the response arrives in the
/// round after.
#[test]
fn a_call_and_its_response_complete_within_one_round() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    let msg = submit(&pic, a, "call_raw", call_raw_arg(b, "inc", no_arg()));
    let round = pic.round();
    pic.tick();
    assert_eq!(pic.round(), round + 1);
    let reply = pic
        .ingress_status(&msg)
        .expect("answered within the round")
        .unwrap();
    let (r,): (CallResult,) = decode_args(&reply).unwrap();
    let (n,): (u64,) = decode_args(&r.unwrap()).unwrap();
    assert_eq!(n, 1);
    assert_eq!(counter(&pic, b), 1);

    let mgmt = Principal::management_canister();
    let msg = submit(
        &pic,
        a,
        "call_raw",
        call_raw_arg(mgmt, "raw_rand", no_arg()),
    );
    pic.tick();
    assert!(pic.ingress_status(&msg).is_none(), "the request is routed");
    pic.tick();
    assert!(pic.ingress_status(&msg).is_none(), "so is the response");
    pic.tick();
    let reply = pic.ingress_status(&msg).expect("third round").unwrap();
    let (r,): (CallResult,) = decode_args(&reply).unwrap();
    let (bytes,): (Vec<u8>,) = decode_args(&r.unwrap()).unwrap();
    assert_eq!(bytes.len(), 32);
}

/// The replica starts an execution on a core while the core's budget for the round is
/// positive, counting each execution's instructions plus `instruction_overhead_per_execution`
/// (`execute_canisters_on_thread` in the scheduler); what does not fit waits for the next
/// round. Canisters run in parallel on at most `scheduler_cores` cores.
#[test]
fn a_round_stops_when_its_instructions_are_spent() {
    let pic = sim_with(counted_limits(1));
    let id = install(&pic);
    let msgs: Vec<_> = (0..5).map(|_| submit(&pic, id, "inc", no_arg())).collect();
    pic.tick();
    let done = |pic: &IcSim, msgs: &[RawMessageId]| {
        msgs.iter()
            .filter(|m| pic.ingress_status(m).is_some())
            .count()
    };
    assert_eq!(done(&pic, &msgs), 3, "three executions fit in 3B + 1");
    assert_eq!(counter(&pic, id), 3);
    pic.tick();
    assert_eq!(done(&pic, &msgs), 5, "the rest ran in the next round");
    assert_eq!(counter(&pic, id), 5);

    // Two canisters with three messages each: one core runs three messages in a round, two
    // cores run all six.
    for (cores, expected) in [(1, 3), (2, 6)] {
        let pic = sim_with(counted_limits(cores));
        let a = install(&pic);
        let b = install(&pic);
        let msgs: Vec<_> = [a, b]
            .iter()
            .flat_map(|&id| (0..3).map(move |_| id))
            .map(|id| submit(&pic, id, "inc", no_arg()))
            .collect();
        pic.tick();
        assert_eq!(done(&pic, &msgs), expected, "{cores} core(s)");
    }
}

/// Deterministic time slicing (`MAX_INSTRUCTIONS_PER_SLICE`): an update above the slice limit
/// runs over ceil(instructions / slice) rounds, its result is committed after the last slice,
/// and the canister executes nothing else meanwhile.
#[test]
fn a_long_update_takes_one_round_per_slice_and_keeps_the_canister_busy() {
    const SLICE: u64 = 100_000;
    const SPIN: u64 = 200_000;
    let pic = sim_with(SimLimits {
        slice_instructions: SLICE,
        ..SimLimits::default()
    });
    let id = install(&pic);
    let spin_arg = encode_args((SPIN,)).unwrap();
    // The interpreter charges the first run of a function for translating it: warm up.
    let _: (u64, u64) = update_candid(&pic, id, "spin", (SPIN,)).unwrap();

    let before = pic.instructions_total(id);
    let spin = submit(&pic, id, "spin", spin_arg.clone());
    let rounds = rounds_until_done(&pic, &spin, |_| {});
    let instructions = pic.instructions_total(id) - before;
    assert!(instructions > 3 * SLICE, "{instructions}");
    assert_eq!(rounds, instructions.div_ceil(SLICE));

    let spin = submit(&pic, id, "spin", spin_arg);
    let inc = submit(&pic, id, "inc", no_arg());
    let again = rounds_until_done(&pic, &spin, |round| {
        assert!(pic.ingress_status(&inc).is_none(), "round {round}: busy");
        assert_eq!(counter(&pic, id), 0, "round {round}");
    });
    assert_eq!(again, rounds);
    assert!(
        pic.ingress_status(&inc).is_some(),
        "the next message ran once the long one was done, in the same round"
    );
    assert_eq!(counter(&pic, id), 1);
}

fn upgrade_args(id: Principal) -> Vec<u8> {
    encode_one(InstallCodeArgs {
        mode: CanisterInstallMode::Upgrade(Some(UpgradeFlags {
            skip_pre_upgrade: None,
            wasm_memory_persistence: None,
        })),
        canister_id: id,
        wasm_module: probe(&["v2"]),
        arg: no_arg(),
        sender_canister_version: None,
    })
    .unwrap()
}

/// Ticks until `msg` completes, checking `meanwhile` before each round; returns the rounds.
fn rounds_until_done(pic: &IcSim, msg: &RawMessageId, meanwhile: impl Fn(u64)) -> u64 {
    for round in 1..=1_000 {
        meanwhile(round);
        pic.tick();
        if let Some(result) = pic.ingress_status(msg) {
            assert!(result.is_ok(), "{result:?}");
            return round;
        }
    }
    panic!("not done in 1000 rounds");
}

/// A long `install_code` is sliced too (`MAX_INSTRUCTIONS_PER_INSTALL_CODE_SLICE`): it takes
/// ceil(instructions / slice) rounds and the canister keeps its old module until the last one.
/// A subnet runs one long installation at a time (`Ic00MethodPermissions::installs_code`): the
/// next one starts in the round the first one ends.
#[test]
fn a_long_upgrade_takes_one_round_per_slice_and_installations_take_turns() {
    const SLICE: u64 = 2_000;
    let pic = sim_with(SimLimits {
        install_slice_instructions: SLICE,
        ..SimLimits::default()
    });
    let a = install(&pic);
    let b = install(&pic);
    let v1 = pic.module_hash(a).unwrap();
    let (before_a, before_b) = (pic.instructions_total(a), pic.instructions_total(b));
    let mgmt = Principal::management_canister();
    let up_a = submit(&pic, mgmt, "install_code", upgrade_args(a));
    let up_b = submit(&pic, mgmt, "install_code", upgrade_args(b));
    let rounds_a = rounds_until_done(&pic, &up_a, |round| {
        assert_eq!(pic.module_hash(a), Some(v1), "round {round}: not committed");
        assert!(pic.ingress_status(&up_b).is_none(), "b waits for a");
        assert_eq!(pic.instructions_total(b), before_b, "b has not started");
    });
    let instructions_a = pic.instructions_total(a) - before_a;
    assert!(instructions_a > 2 * SLICE, "{instructions_a}");
    assert_eq!(rounds_a, instructions_a.div_ceil(SLICE));
    assert_ne!(pic.module_hash(a), Some(v1));
    // b's first slice ran in a's last round.
    let rounds_b = rounds_until_done(&pic, &up_b, |round| {
        assert_eq!(pic.module_hash(b), Some(v1), "round {round} of b");
    });
    let instructions_b = pic.instructions_total(b) - before_b;
    assert_eq!(rounds_b + 1, instructions_b.div_ceil(SLICE));
}

/// A canister's queue towards one callee holds 500 messages (`DEFAULT_QUEUE_CAPACITY`), and
/// each outstanding call keeps a slot for its response: the 501st call of one message fails
/// synchronously, `ic0.call_perform` returning SYS_TRANSIENT (2) as the replica's
/// `push_output_request` does on `QueueFull`. Another callee has a queue of its own, and the
/// slots are free again once the responses are in.
#[test]
fn the_501st_call_to_one_callee_fails_synchronously() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    let c = install(&pic);
    let (accepted, failed): (u32, Vec<u32>) =
        update_candid(&pic, a, "fan_out", (b, "inc".to_string(), 501u32)).unwrap();
    assert_eq!((accepted, failed), (500, vec![2]));
    assert_eq!(counter(&pic, b), 500, "the accepted calls ran");
    let (accepted, failed): (u32, Vec<u32>) =
        update_candid(&pic, a, "fan_out", (c, "inc".to_string(), 500u32)).unwrap();
    assert_eq!((accepted, failed), (500, vec![]));
    let (accepted, failed): (u32, Vec<u32>) =
        update_candid(&pic, a, "fan_out", (b, "inc".to_string(), 500u32)).unwrap();
    assert_eq!(
        (accepted, failed),
        (500, vec![]),
        "the responses freed the slots"
    );
    assert_eq!(counter(&pic, b), 1000);
}

fn now(pic: &IcSim) -> u64 {
    pic.get_time().as_nanos_since_unix_epoch()
}

/// A PocketIC round moves time by 1 ns when time was not moved since the previous round
/// (`StateMachine::EXECUTE_ROUND_TIME_INCREMENT`); `with_round_duration` sets that step, so that
/// canister history records the times of the rounds that made the changes.
#[test]
fn each_round_moves_time_by_the_round_step() {
    let pic = IcSim::new();
    let t0 = now(&pic);
    pic.tick();
    assert_eq!(now(&pic), t0 + 1);
    pic.tick();
    assert_eq!(now(&pic), t0 + 2);
    pic.advance_time(Duration::from_secs(5));
    pic.tick();
    assert_eq!(
        now(&pic),
        t0 + 2 + 5_000_000_000,
        "a moved time replaces the step"
    );
    pic.tick();
    assert_eq!(now(&pic), t0 + 3 + 5_000_000_000);

    let pic = IcSimBuilder::new()
        .with_round_duration(Duration::from_secs(1))
        .build();
    let t0 = now(&pic);
    for _ in 0..3 {
        pic.tick();
    }
    assert_eq!(now(&pic), t0 + 3_000_000_000);
    let a = install(&pic);
    let b = install(&pic);
    pic.set_controllers(b, None, vec![Principal::anonymous(), a])
        .unwrap();
    let info = canister_info(&pic, a, b, 20);
    let times: Vec<u64> = info
        .recent_changes
        .iter()
        .map(|c| c.timestamp_nanos)
        .collect();
    assert_eq!(times.len(), 3, "creation, code, controllers");
    assert!(times[0] > t0 + 3_000_000_000, "{times:?}");
    assert!(
        times.windows(2).all(|w| w[1] >= w[0] + 1_000_000_000),
        "a second per round: {times:?}"
    );
}

#[test]
fn settings_a_scheduler_cannot_work_with_are_errors() {
    assert!(IcSimBuilder::new()
        .with_round_duration(Duration::ZERO)
        .try_build()
        .is_err());
    for limits in [
        SimLimits {
            scheduler_cores: 0,
            ..SimLimits::default()
        },
        SimLimits {
            slice_instructions: 0,
            ..SimLimits::default()
        },
    ] {
        let err = IcSimBuilder::new()
            .with_limits(limits)
            .try_build()
            .err()
            .expect("rejected");
        assert!(err.contains("must be positive"), "{err}");
    }
}
