//! The built-in cycles minting canister (CMC) at `rkp4c-7iaaa-aaaaa-aaaca-cai`: a canister
//! calls its `create_canister` with cycles attached and a subnet selection, as on mainnet, and
//! the new canister appears on the chosen subnet with the attached cycles minus the creation
//! fee. A failed creation refunds everything attached. The calls come from real wasm
//! (`sim_probe`'s `call_raw`); the outcome is checked from outside (subnet, controllers,
//! balances).
//!
//! Timing: the CMC is reached like a canister on another subnet (on mainnet it lives on the
//! NNS subnet): a round each way, which one test compares with a call between two application
//! subnets.

use candid::{decode_args, decode_one, encode_args, encode_one, Nat, Principal};
use ic_sim::cmc::{
    CanisterSettings, CreateCanisterArg, CreateCanisterError, CreateCanisterResult, SubnetFilter,
    SubnetSelection,
};
use ic_sim::management_canister::{ChangeOrigin, FromCanisterRecord};
use ic_sim::{update_candid_as, IcSim, IcSimBuilder, RawMessageId, CANISTER_CREATION_FEE, CMC_ID};

mod common;
use common::{call_raw, canister_info, probe, CallResult};

/// Cycles a test attaches to a creation: four times the fee.
const ATTACHED: u128 = 4 * CANISTER_CREATION_FEE;

/// What a refunded call may cost its caller at most: the ingress message to the probe, its
/// executions and the call to the CMC (a few million cycles), far below the fee or the
/// cycles attached.
const CALL_COST_BOUND: u128 = 100_000_000;

fn sim_with_subnets(n: usize) -> IcSim {
    let mut builder = IcSimBuilder::new();
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

/// `from` calls the CMC's `create_canister` with `cycles` attached.
fn cmc_create(
    pic: &IcSim,
    from: Principal,
    arg: &CreateCanisterArg,
    cycles: u128,
) -> CreateCanisterResult {
    let reply = call_raw(
        pic,
        from,
        CMC_ID,
        "create_canister",
        encode_one(arg).unwrap(),
        cycles,
    )
    .expect("the CMC replies");
    decode_one(&reply).unwrap()
}

fn on_subnet(subnet: Principal) -> CreateCanisterArg {
    CreateCanisterArg {
        subnet_selection: Some(SubnetSelection::Subnet { subnet }),
        ..Default::default()
    }
}

/// The refunded amount and error of a failed creation.
fn refund(result: CreateCanisterResult) -> (u128, String) {
    match result {
        Err(CreateCanisterError::Refunded {
            refund_amount,
            create_error,
        }) => (u128::try_from(refund_amount.0).unwrap(), create_error),
        Ok(id) => panic!("expected a refund, {id} was created"),
    }
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

/// A canister created through the CMC on a named subnet has an id from that subnet's range,
/// `get_subnet` names the subnet, its controllers are those given, and its balance is the
/// cycles attached minus the creation fee; the caller paid the attached cycles.
#[test]
fn create_canister_on_a_named_subnet() {
    let pic = sim_with_subnets(3);
    let subnets = pic.get_app_subnets();
    let caller = install_on(&pic, subnets[0]);
    let user = Principal::self_authenticating(b"cmc test user");
    let arg = CreateCanisterArg {
        settings: Some(CanisterSettings {
            controllers: Some(vec![caller, user]),
            freezing_threshold: Some(Nat::from(86_400u64)),
            ..Default::default()
        }),
        ..on_subnet(subnets[2])
    };
    let before = pic.cycle_balance(caller);

    let created = cmc_create(&pic, caller, &arg, ATTACHED).expect("created");

    let topology = pic.topology();
    let range = &topology.subnet_configs[&subnets[2]].canister_ranges[0];
    assert!(range.contains(created), "{created} is outside {range:?}");
    assert_eq!(pic.get_subnet(created), Some(subnets[2]));
    assert_eq!(topology.get_subnet(created), Some(subnets[2]));
    let mut expected = vec![caller, user];
    expected.sort();
    let mut controllers = pic.get_controllers(created);
    controllers.sort();
    assert_eq!(controllers, expected);
    assert_eq!(pic.cycle_balance(created), ATTACHED - CANISTER_CREATION_FEE);
    let status = pic.canister_status(created, Some(user)).unwrap();
    assert_eq!(status.settings.freezing_threshold, Nat::from(86_400u64));
    let spent = before - pic.cycle_balance(caller);
    assert!(
        (ATTACHED..ATTACHED + CALL_COST_BOUND).contains(&spent),
        "the caller spent {spent}"
    );
    // The CMC created it, so the canister's history names the CMC (interface spec, "IC method
    // canister_info").
    let info = canister_info(&pic, caller, created, 1);
    assert_eq!(
        info.recent_changes[0].origin,
        ChangeOrigin::FromCanister(FromCanisterRecord {
            canister_id: CMC_ID,
            canister_version: None,
        })
    );
}

/// Without a subnet selection, or with a filter for application subnets, the CMC creates on
/// the application subnet with the fewest canisters, the first in `get_app_subnets` order on
/// a tie; the controllers default to the caller.
#[test]
fn no_selection_picks_the_least_populated_subnet() {
    let pic = sim_with_subnets(3);
    let subnets = pic.get_app_subnets();
    let caller = install_on(&pic, subnets[0]);
    pic.create_canister_on_subnet(None, None, subnets[0]);
    pic.create_canister_on_subnet(None, None, subnets[1]);
    pic.create_canister_on_subnet(None, None, subnets[2]);
    // Canisters per subnet: 2, 1, 1.

    let first = cmc_create(&pic, caller, &CreateCanisterArg::default(), ATTACHED).unwrap();
    assert_eq!(
        pic.get_subnet(first),
        Some(subnets[1]),
        "the tie goes to the earlier subnet"
    );
    assert_eq!(pic.get_controllers(first), vec![caller]);
    // 2, 2, 1.
    let second = CreateCanisterArg {
        subnet_type: Some("application".into()),
        ..Default::default()
    };
    let second = cmc_create(&pic, caller, &second, ATTACHED).unwrap();
    assert_eq!(pic.get_subnet(second), Some(subnets[2]));
    // 2, 2, 2.
    let third = CreateCanisterArg {
        subnet_selection: Some(SubnetSelection::Filter(SubnetFilter {
            subnet_type: Some("application".into()),
        })),
        ..Default::default()
    };
    let third = cmc_create(&pic, caller, &third, ATTACHED).unwrap();
    assert_eq!(pic.get_subnet(third), Some(subnets[0]));
    for created in [first, second, third] {
        assert_eq!(pic.cycle_balance(created), ATTACHED - CANISTER_CREATION_FEE);
    }
}

/// A subnet that does not exist, a subnet type the simulator does not have, or both ways of
/// choosing a subnet at once: nothing is created and every attached cycle comes back, so the
/// caller is out only what the call itself cost.
#[test]
fn an_unknown_subnet_is_refunded() {
    let pic = sim_with_subnets(2);
    let subnets = pic.get_app_subnets();
    let caller = install_on(&pic, subnets[1]);
    let nowhere = Principal::self_authenticating(b"no such subnet");
    let refused = [
        (on_subnet(nowhere), nowhere.to_text()),
        (
            CreateCanisterArg {
                subnet_type: Some("fiduciary".into()),
                ..Default::default()
            },
            "fiduciary".to_string(),
        ),
        (
            CreateCanisterArg {
                subnet_selection: Some(SubnetSelection::Filter(SubnetFilter {
                    subnet_type: Some("verified_application".into()),
                })),
                ..Default::default()
            },
            "verified_application".to_string(),
        ),
        (
            CreateCanisterArg {
                subnet_type: Some("application".into()),
                ..on_subnet(subnets[0])
            },
            "Only one of".to_string(),
        ),
    ];
    for (arg, named) in refused {
        let canisters = pic.canister_count();
        let before = pic.cycle_balance(caller);
        let (amount, error) = refund(cmc_create(&pic, caller, &arg, ATTACHED));
        assert_eq!(amount, ATTACHED);
        assert!(error.contains(&named), "{error}");
        let spent = before - pic.cycle_balance(caller);
        assert!(
            0 < spent && spent < CALL_COST_BOUND,
            "the caller spent {spent}"
        );
        assert_eq!(pic.canister_count(), canisters);
    }
}

/// Fewer cycles than the creation fee are refunded in full; exactly the fee creates a canister
/// with an empty balance.
#[test]
fn too_few_cycles_are_refunded() {
    let pic = sim_with_subnets(2);
    let subnets = pic.get_app_subnets();
    let caller = install_on(&pic, subnets[0]);
    let canisters = pic.canister_count();
    let before = pic.cycle_balance(caller);

    let short = CANISTER_CREATION_FEE - 1;
    let (amount, error) = refund(cmc_create(&pic, caller, &on_subnet(subnets[1]), short));
    assert_eq!(amount, short);
    assert!(error.contains("Insufficient cycles"), "{error}");
    let spent = before - pic.cycle_balance(caller);
    assert!(
        0 < spent && spent < CALL_COST_BOUND,
        "the caller spent {spent}"
    );
    assert_eq!(pic.canister_count(), canisters);

    let exact = cmc_create(&pic, caller, &on_subnet(subnets[1]), CANISTER_CREATION_FEE).unwrap();
    assert_eq!(pic.get_subnet(exact), Some(subnets[1]));
    assert_eq!(pic.cycle_balance(exact), 0);
}

/// A user's ingress message carries no cycles, so the CMC refunds nothing and creates nothing,
/// as on mainnet. The CMC itself is no canister of the simulator: its id has no subnet, and no
/// creation hands it out.
#[test]
fn an_ingress_call_is_refused() {
    let pic = IcSim::new();
    let user = Principal::self_authenticating(b"cmc test user");
    let (result,): (CreateCanisterResult,) = update_candid_as(
        &pic,
        CMC_ID,
        user,
        "create_canister",
        (CreateCanisterArg::default(),),
    )
    .unwrap();
    let (amount, error) = refund(result);
    assert_eq!(amount, 0);
    assert!(error.contains("Insufficient cycles"), "{error}");
    assert_eq!(pic.canister_count(), 0);

    assert_eq!(
        CMC_ID,
        Principal::from_text("rkp4c-7iaaa-aaaaa-aaaca-cai").unwrap()
    );
    let created: Vec<_> = (0..6).map(|_| pic.create_canister()).collect();
    assert!(!created.contains(&CMC_ID));
    assert!(!pic.canister_exists(CMC_ID));
    assert_eq!(pic.get_subnet(CMC_ID), None);
    assert!(pic.create_canister_with_id(None, None, CMC_ID).is_err());
}

/// A call to the CMC takes as many rounds as a call to a canister on another application
/// subnet: its request and its response each cross to another subnet (a round each way).
#[test]
fn a_cmc_call_takes_a_round_each_way_like_a_call_to_another_subnet() {
    let pic = sim_with_subnets(2);
    let subnets = pic.get_app_subnets();
    let caller = install_on(&pic, subnets[0]);
    let remote = install_on(&pic, subnets[1]);

    let submit = |to: Principal, method: &str, arg: Vec<u8>, cycles: u128| {
        let arg = encode_args((to, method.to_string(), arg, cycles)).unwrap();
        pic.submit_call(caller, Principal::anonymous(), "call_raw", arg)
            .unwrap()
    };
    let xnet = submit(remote, "inc", encode_args(()).unwrap(), 0);
    let xnet_rounds = rounds_until_done(&pic, &xnet);
    let cmc = submit(
        CMC_ID,
        "create_canister",
        encode_one(on_subnet(subnets[0])).unwrap(),
        ATTACHED,
    );
    let cmc_rounds = rounds_until_done(&pic, &cmc);
    assert_eq!(cmc_rounds, xnet_rounds);
    assert_eq!(
        cmc_rounds, 3,
        "ingress, the CMC's round, the callback's round"
    );

    let reply = pic.ingress_status(&cmc).unwrap().unwrap();
    let (r,): (CallResult,) = decode_args(&reply).unwrap();
    let created: CreateCanisterResult = decode_one(&r.unwrap()).unwrap();
    assert_eq!(pic.get_subnet(created.unwrap()), Some(subnets[0]));
}
