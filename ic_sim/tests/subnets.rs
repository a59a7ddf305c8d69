//! Several application subnets, as the IC runs them: each subnet has its own id, its own range
//! of canister ids, and its own round (instruction budgets, queues), so a busy subnet does not
//! slow another; a call between subnets goes through message routing (XNet) and takes at least
//! a round each way, where one within a subnet can complete in a single round.

use candid::{decode_args, encode_args, encode_one, Principal};
use ic_sim::management_canister::{
    CanisterIdRecord, ProvisionalCreateCanisterWithCyclesArgs, UploadChunkArgs,
};
use ic_sim::management_canister::{CanisterInstallMode, CreateCanisterArgs};
use ic_sim::{
    call_candid, query_candid, update_candid, ErrorCode, IcSim, IcSimBuilder,
    RawEffectivePrincipal, RawMessageId, RejectCode, SimLimits,
};
use sha2::Digest;

mod common;
use common::{call_raw, counted_limits, probe, CallResult};

fn sim_with_subnets(n: usize, limits: SimLimits) -> IcSim {
    let mut builder = IcSimBuilder::new().with_limits(limits);
    for _ in 0..n {
        builder = builder.with_application_subnet();
    }
    builder.build()
}

/// A `sim_probe` canister (counter at 0) created on `subnet`.
fn install_on(pic: &IcSim, subnet: Principal) -> Principal {
    let id = pic.create_canister_on_subnet(None, None, subnet);
    pic.install_canister(id, probe(&[]), encode_one(None::<u64>).unwrap(), None);
    id
}

fn submit(pic: &IcSim, to: Principal, method: &str, arg: Vec<u8>) -> RawMessageId {
    pic.submit_call(to, Principal::anonymous(), method, arg)
        .unwrap()
}

fn call_raw_arg(to: Principal, method: &str, arg: Vec<u8>) -> Vec<u8> {
    encode_args((to, method.to_string(), arg, 0u128)).unwrap()
}

fn no_arg() -> Vec<u8> {
    encode_args(()).unwrap()
}

fn counter(pic: &IcSim, id: Principal) -> u64 {
    let (n,): (u64,) = query_candid(pic, id, "get", ()).unwrap();
    n
}

/// Ticks until `msg` has a result; returns the rounds it took.
fn rounds_until_done(pic: &IcSim, msg: &RawMessageId) -> u64 {
    for rounds in 1..=100 {
        pic.tick();
        if pic.ingress_status(msg).is_some() {
            return rounds;
        }
    }
    panic!("no result within 100 rounds");
}

/// The decoded reply of a `call_raw` message.
fn call_raw_reply(pic: &IcSim, msg: &RawMessageId) -> Vec<u8> {
    let reply = pic.ingress_status(msg).expect("done").unwrap();
    let (r,): (CallResult,) = decode_args(&reply).unwrap();
    r.unwrap()
}

/// `topology()` lists four application subnets with distinct ids and disjoint canister id
/// ranges; a canister created on a subnet gets an id from that subnet's range, and both
/// `get_subnet`s name that subnet. The first subnet keeps the single-subnet simulator's id and
/// is where the plain creation methods create.
#[test]
fn four_subnets_have_disjoint_ranges_and_canisters_get_ids_from_their_subnet() {
    let pic = sim_with_subnets(4, SimLimits::default());
    let topology = pic.topology();
    assert_eq!(topology.subnet_configs.len(), 4);
    let subnets = pic.get_app_subnets();
    assert_eq!(subnets.len(), 4);
    assert_eq!(topology.get_app_subnets(), subnets);

    let ranges: Vec<_> = subnets
        .iter()
        .map(|s| topology.subnet_configs[s].canister_ranges.clone())
        .collect();
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            for ra in a {
                for rb in b {
                    let (a0, a1): (Principal, Principal) =
                        (ra.start.clone().into(), ra.end.clone().into());
                    let (b0, b1): (Principal, Principal) =
                        (rb.start.clone().into(), rb.end.clone().into());
                    assert!(a1 < b0 || b1 < a0, "{ra:?} and {rb:?} overlap");
                }
            }
        }
    }

    for subnet in &subnets {
        for _ in 0..2 {
            let c = pic.create_canister_on_subnet(None, None, *subnet);
            assert_eq!(pic.get_subnet(c), Some(*subnet));
            assert_eq!(topology.get_subnet(c), Some(*subnet));
            let range = &topology.subnet_configs[subnet].canister_ranges[0];
            assert!(range.contains(c), "{c} is outside {range:?}");
        }
    }

    let single = IcSim::new();
    let first = single.get_subnet(single.create_canister()).unwrap();
    assert_eq!(subnets[0], first, "the first subnet keeps its id");
    let plain = pic.create_canister();
    assert_eq!(pic.get_subnet(plain), Some(subnets[0]));
    let default: Principal = topology.default_effective_canister_id.clone().into();
    assert_eq!(topology.get_subnet(default), Some(subnets[0]));
}

/// Ingress messages and queries reach canisters on every subnet; a canister that creates a
/// canister through the management canister gets one on its own subnet, as the replica creates
/// it on the subnet that executes the call.
#[test]
fn ingress_queries_and_canister_creation_work_on_every_subnet() {
    let pic = sim_with_subnets(3, SimLimits::default());
    for subnet in pic.get_app_subnets() {
        let c = install_on(&pic, subnet);
        let (n,): (u64,) = update_candid(&pic, c, "inc", ()).unwrap();
        assert_eq!(n, 1);
        assert_eq!(counter(&pic, c), 1);

        let arg = encode_one(CreateCanisterArgs::default()).unwrap();
        let mgmt = Principal::management_canister();
        let reply = call_raw(&pic, c, mgmt, "create_canister", arg, 1_000_000_000_000)
            .expect("create_canister");
        let record: ic_sim::management_canister::CanisterIdRecord =
            candid::decode_one(&reply).unwrap();
        assert_eq!(pic.get_subnet(record.canister_id), Some(subnet));
    }
}

/// Within a subnet, A → B → A completes in the round it starts (as with one subnet). Across
/// subnets the request reaches the callee only in the next round and the response the caller
/// in the round after: the same call takes three rounds, and the callee has not executed after
/// the first.
#[test]
fn a_call_across_subnets_takes_a_round_each_way_and_one_within_a_subnet_does_not() {
    let pic = sim_with_subnets(2, SimLimits::default());
    let subnets = pic.get_app_subnets();
    let a = install_on(&pic, subnets[0]);
    let b = install_on(&pic, subnets[0]);
    let c = install_on(&pic, subnets[1]);

    let same = submit(&pic, a, "call_raw", call_raw_arg(b, "inc", no_arg()));
    assert_eq!(rounds_until_done(&pic, &same), 1);
    let (n,): (u64,) = decode_args(&call_raw_reply(&pic, &same)).unwrap();
    assert_eq!(n, 1);

    let cross = submit(&pic, a, "call_raw", call_raw_arg(c, "inc", no_arg()));
    pic.tick();
    assert_eq!(counter(&pic, c), 0, "the request waits for the next round");
    assert!(pic.ingress_status(&cross).is_none());
    pic.tick();
    assert_eq!(counter(&pic, c), 1, "executed in the next round");
    assert!(
        pic.ingress_status(&cross).is_none(),
        "the response waits too"
    );
    pic.tick();
    let (n,): (u64,) = decode_args(&call_raw_reply(&pic, &cross)).unwrap();
    assert_eq!(n, 1);
}

/// Each subnet's round has its own instruction budget: while twelve busy canisters on one
/// subnet need four rounds to get through their messages, a message to a canister on another
/// subnet, submitted after them, completes in the first round; on the busy subnet the same
/// message waits its turn.
#[test]
fn a_busy_subnet_does_not_delay_a_canister_on_another_subnet() {
    let pic = sim_with_subnets(2, counted_limits(1));
    let subnets = pic.get_app_subnets();
    let busy: Vec<_> = (0..12).map(|_| install_on(&pic, subnets[0])).collect();
    let late_on_busy = install_on(&pic, subnets[0]);
    let other = install_on(&pic, subnets[1]);

    let load: Vec<_> = busy
        .iter()
        .map(|c| submit(&pic, *c, "inc", no_arg()))
        .collect();
    let on_busy = submit(&pic, late_on_busy, "inc", no_arg());
    let on_other = submit(&pic, other, "inc", no_arg());

    assert_eq!(rounds_until_done(&pic, &on_other), 1);
    let done_in_first = load
        .iter()
        .filter(|m| pic.ingress_status(m).is_some())
        .count();
    assert_eq!(done_in_first, 3, "one core runs three executions a round");
    assert!(pic.ingress_status(&on_busy).is_none());
    let busy_rounds = 1 + rounds_until_done(&pic, &on_busy);
    assert_eq!(busy_rounds, 5, "13 messages at 3 per round");
    assert!(load.iter().all(|m| pic.ingress_status(m).is_some()));
}

/// The store canister of `install_chunked_code` must be on the target's subnet (interface spec,
/// "IC method install_chunked_code"): a store on another subnet is rejected as the replica
/// rejects it (CANISTER_REJECT, IC0406, the store "was not found on subnet" of the target), and
/// nothing is installed; a store on the same subnet installs.
#[test]
fn install_chunked_code_needs_the_store_canister_on_the_target_subnet() {
    let pic = sim_with_subnets(2, SimLimits::default());
    let subnets = pic.get_app_subnets();
    let target = pic.create_canister_on_subnet(None, None, subnets[0]);
    let near = pic.create_canister_on_subnet(None, None, subnets[0]);
    let far = pic.create_canister_on_subnet(None, None, subnets[1]);
    let wasm = probe(&["v2"]);
    let module_hash: [u8; 32] = sha2::Sha256::digest(&wasm).into();
    let upload = |store: Principal| -> Vec<Vec<u8>> {
        wasm.chunks(500_000)
            .map(|chunk| pic.upload_chunk(store, None, chunk.to_vec()).unwrap())
            .collect()
    };
    let (far_hashes, near_hashes) = (upload(far), upload(near));
    let install = |store: Principal, hashes: Vec<Vec<u8>>| {
        pic.install_chunked_canister(
            target,
            None,
            CanisterInstallMode::Install,
            store,
            hashes,
            module_hash.to_vec(),
            encode_one(None::<u64>).unwrap(),
        )
    };

    let err = install(far, far_hashes).unwrap_err();
    assert_eq!(err.reject_code, RejectCode::CanisterReject);
    assert_eq!(err.error_code, ErrorCode::CanisterRejectedMessage);
    assert!(
        err.reject_message.contains(&format!(
            "Store canister {far} was not found on subnet {}",
            subnets[0]
        )),
        "{}",
        err.reject_message
    );
    assert_eq!(pic.module_hash(target), None);

    install(near, near_hashes).unwrap();
    assert_eq!(pic.module_hash(target), Some(module_hash));
    let (v,): (String,) = query_candid(&pic, target, "version", ()).unwrap();
    assert_eq!(v, "v2");
}

/// A composite query reads canisters of its own subnet only: `sum_counters` over a canister of
/// the same subnet answers, over one of another subnet the call is rejected with
/// CANISTER_REJECT, as the replica rejects a query call across subnets.
#[test]
fn a_composite_query_calls_canisters_of_its_own_subnet_only() {
    let pic = sim_with_subnets(2, SimLimits::default());
    let subnets = pic.get_app_subnets();
    let a = install_on(&pic, subnets[0]);
    let near = install_on(&pic, subnets[0]);
    let far = install_on(&pic, subnets[1]);
    update_candid::<_, (u64,)>(&pic, near, "inc", ()).unwrap();
    update_candid::<_, (u64,)>(&pic, far, "inc", ()).unwrap();

    let (sum,): (Result<u64, (u32, String)>,) =
        query_candid(&pic, a, "sum_counters", (vec![near],)).unwrap();
    assert_eq!(sum, Ok(1));
    let (sum,): (Result<u64, (u32, String)>,) =
        query_candid(&pic, a, "sum_counters", (vec![far],)).unwrap();
    let (code, message) = sum.unwrap_err();
    assert_eq!(code, RejectCode::CanisterReject as u32);
    assert!(message.contains("own subnet"), "{message}");
}

/// A canister controlling a canister of another subnet manages it through the management
/// canister: the call runs on the target's subnet and completes, taking the rounds of message
/// routing (request in the next round, response in the one after).
#[test]
fn a_management_call_about_a_canister_of_another_subnet_runs_there() {
    let pic = sim_with_subnets(2, SimLimits::default());
    let subnets = pic.get_app_subnets();
    let admin = install_on(&pic, subnets[0]);
    let managed = pic.create_canister_on_subnet(None, None, subnets[1]);
    pic.set_controllers(managed, None, vec![admin]).unwrap();

    let mgmt = Principal::management_canister();
    let arg = encode_one(CanisterIdRecord {
        canister_id: managed,
    })
    .unwrap();
    let msg = submit(
        &pic,
        admin,
        "call_raw",
        call_raw_arg(mgmt, "stop_canister", arg),
    );
    assert_eq!(rounds_until_done(&pic, &msg), 3);
    call_raw_reply(&pic, &msg);
    assert_eq!(pic.is_running(managed), Some(false));
}

/// A provisional creation goes to the subnet its effective principal names (a subnet id, or the
/// subnet of a chosen canister id); with several subnets a chosen id outside every subnet's
/// range is refused.
#[test]
fn creations_go_to_the_subnet_their_effective_principal_or_id_names() {
    let pic = sim_with_subnets(3, SimLimits::default());
    let subnets = pic.get_app_subnets();
    let (record,): (CanisterIdRecord,) = call_candid(
        &pic,
        Principal::management_canister(),
        RawEffectivePrincipal::SubnetId(subnets[2].as_slice().to_vec()),
        "provisional_create_canister_with_cycles",
        (ProvisionalCreateCanisterWithCyclesArgs {
            amount: None,
            settings: None,
            specified_id: None,
            sender_canister_version: None,
        },),
    )
    .unwrap();
    assert_eq!(pic.get_subnet(record.canister_id), Some(subnets[2]));

    let range = pic.topology().subnet_configs[&subnets[1]].canister_ranges[0].clone();
    let chosen: Principal = range.end.into();
    let id = pic.create_canister_with_id(None, None, chosen).unwrap();
    assert_eq!(pic.get_subnet(id), Some(subnets[1]));

    let outside = Principal::from_slice(&[0, 0, 0, 0, 0xff, 0, 0, 0, 1, 1]);
    let err = pic
        .create_canister_with_id(None, None, outside)
        .unwrap_err();
    assert!(err.contains("not in the canister id range"), "{err}");
    assert!(!pic.canister_exists(outside));
}

/// Each subnet has its own budget for management messages: while ten `upload_chunk`s (200M
/// instructions each, against 250M a round here) take a subnet five rounds, one submitted to a
/// canister of another subnet after them runs in the first round.
#[test]
fn a_busy_subnet_does_not_delay_management_messages_of_another_subnet() {
    let pic = sim_with_subnets(2, counted_limits(1));
    let subnets = pic.get_app_subnets();
    let busy = pic.create_canister_on_subnet(None, None, subnets[0]);
    let other = pic.create_canister_on_subnet(None, None, subnets[1]);
    let upload = |canister: Principal, byte: u8| {
        let arg = encode_one(UploadChunkArgs {
            canister_id: canister,
            chunk: vec![byte; 100],
        })
        .unwrap();
        submit(&pic, Principal::management_canister(), "upload_chunk", arg)
    };
    let load: Vec<_> = (0..10).map(|i| upload(busy, i)).collect();
    let on_other = upload(other, 0);

    assert_eq!(rounds_until_done(&pic, &on_other), 1);
    let done = load
        .iter()
        .filter(|m| pic.ingress_status(m).is_some())
        .count();
    assert_eq!(done, 2, "two uploads spend a round's management budget");
    let busy_rounds = 1 + rounds_until_done(&pic, load.last().unwrap());
    assert_eq!(busy_rounds, 5);
}

/// `create_canister_on_subnet` creates on the named subnet whoever the sender is: a canister
/// sender (a controller to be) does not pull the creation onto its own subnet.
#[test]
fn create_canister_on_subnet_honours_the_subnet_for_a_canister_sender() {
    let pic = sim_with_subnets(2, SimLimits::default());
    let subnets = pic.get_app_subnets();
    let controller = install_on(&pic, subnets[0]);
    let id = pic.create_canister_on_subnet(Some(controller), None, subnets[1]);
    assert_eq!(pic.get_subnet(id), Some(subnets[1]));
    assert_eq!(pic.get_controllers(id), vec![controller]);
    let next = pic.create_canister_with_settings(Some(controller), None);
    assert_eq!(
        pic.get_subnet(next),
        Some(subnets[0]),
        "a later creation by the canister goes to its own subnet again"
    );
}
