//! Store canisters on the subnets a fleet uses, seen from outside on ic_sim: `add_subnet`
//! installs the store module in each new store (controllers exactly the manager), the store's
//! public `releases` lists what the manager mirrored into its chunk store, only the manager
//! may change that list, without a store module nothing is created, a store whose install
//! failed stays added, and `upgrade_stores` brings every store to the module set now.

use candid::{encode_args, encode_one, Principal};
use fleet_api::manager::method::{
    AddSubnet, ListSubnets, SetStoreModule, StoreModule, UpgradeStores,
};
use fleet_api::manager::{
    AddSubnetArg, SetStoreModuleError, StoreUpgrade, StoreUpgradeOutcome, SubnetError,
};
use fleet_api::store_canister::method::{ForgetRelease, RecordRelease, Releases, Status};
use fleet_api::store_canister::{StoreCanisterError, StoredRelease};
use fleet_tests::{
    call_on, decode_reply, refused_at_ingress, sha256, store_wasm, submit, user, user_wasm, Fleet,
};
use ic_sim::IcSimBuilder;
use serde_bytes::ByteBuf;

const STORE_CYCLES: u128 = 1_000_000_000_000;

/// A manager on the first of two subnets, with a default release; the other subnet's id.
fn fleet_on_two_subnets() -> (Fleet, Principal) {
    let sim = IcSimBuilder::new()
        .with_application_subnet()
        .with_application_subnet()
        .build();
    let fleet = Fleet::on(sim, None);
    fleet.publish_default("1.0.0", &user_wasm(false));
    let own = fleet.sim.get_subnet(fleet.manager).expect("the manager's");
    let other = fleet
        .sim
        .get_app_subnets()
        .into_iter()
        .find(|s| *s != own)
        .expect("a second subnet");
    (fleet, other)
}

fn add(fleet: &Fleet, subnet: Principal) -> Result<fleet_api::manager::SubnetInfo, SubnetError> {
    fleet
        .ask::<AddSubnet>(
            fleet.controller,
            (AddSubnetArg {
                subnet,
                store_cycles: STORE_CYCLES,
            },),
        )
        .into_result()
}

/// [`fleet_on_two_subnets`] with the store module set and the other subnet added: the fleet,
/// that subnet and its store.
fn fleet_with_a_store() -> (Fleet, Principal, Principal) {
    let (fleet, other) = fleet_on_two_subnets();
    set_store_module(&fleet, fleet.controller, store_wasm()).unwrap();
    let store = add(&fleet, other).unwrap().store;
    (fleet, other, store)
}

fn set_store_module(
    fleet: &Fleet,
    sender: Principal,
    module: Vec<u8>,
) -> Result<ByteBuf, SetStoreModuleError> {
    fleet
        .ask::<SetStoreModule>(sender, (ByteBuf::from(module),))
        .into_result()
}

#[test]
fn without_a_store_module_add_subnet_is_refused_and_creates_nothing() {
    let (fleet, other) = fleet_on_two_subnets();
    assert_eq!(fleet.ask::<StoreModule>(user(1), ()), None);
    let canisters = fleet.sim.canister_count();
    assert_eq!(add(&fleet, other), Err(SubnetError::NoStoreModule));
    assert_eq!(fleet.sim.canister_count(), canisters, "nothing was created");
    assert_eq!(fleet.ask::<ListSubnets>(user(1), ()).subnets.len(), 1);
    // Bad modules, and callers without the admin role, are refused.
    assert_eq!(
        set_store_module(&fleet, fleet.controller, b"not wasm".to_vec()),
        Err(SetStoreModuleError::NotWasm)
    );
    assert!(matches!(
        set_store_module(&fleet, fleet.controller, vec![0; 2_000_000]),
        Err(SetStoreModuleError::TooLarge { .. })
    ));
    refused_at_ingress::<SetStoreModule>(
        &fleet.sim,
        fleet.manager,
        user(9),
        (ByteBuf::from(store_wasm()),),
    );
    assert_eq!(fleet.ask::<StoreModule>(user(1), ()), None);
}

#[test]
fn an_added_subnets_store_runs_the_store_module_and_lists_the_mirrored_releases() {
    let (fleet, other) = fleet_on_two_subnets();
    let module = store_wasm();
    eprintln!("store module: {} bytes", module.len());
    let hash = set_store_module(&fleet, fleet.controller, module.clone()).unwrap();
    assert_eq!(hash.to_vec(), sha256(&module));
    assert_eq!(fleet.ask::<StoreModule>(user(1), ()), Some(hash.clone()));
    let before = fleet.sim.instructions_total(fleet.manager);
    let info = add(&fleet, other).unwrap();
    eprintln!(
        "add_subnet (create, install, mirror and record 1.0.0): {} manager instructions",
        fleet.sim.instructions_total(fleet.manager) - before
    );
    let store = info.store;
    assert_eq!(fleet.sim.get_subnet(store), Some(other));
    assert_eq!(fleet.sim.get_controllers(store), vec![fleet.manager]);
    assert_eq!(
        fleet.sim.module_hash(store).map(|h| h.to_vec()),
        Some(hash.to_vec()),
        "the store runs the store module"
    );
    // Anyone reads what the store holds: the releases the manager mirrored there.
    let mirrored = &info.chunk_store.releases;
    assert_eq!(mirrored.len(), 1);
    let listed = call_on::<Releases>(&fleet.sim, store, user(7), ());
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version, "1.0.0");
    assert_eq!(listed[0].module_hash, mirrored[0].release.sha256);
    assert_eq!(
        listed[0]
            .chunk_hashes
            .iter()
            .map(|h| h.to_vec())
            .collect::<Vec<_>>(),
        mirrored[0].chunk_hashes
    );
    assert_eq!(listed[0].wasm_len, user_wasm(false).len() as u64);
    let status = call_on::<Status>(&fleet.sim, store, user(7), ());
    assert_eq!(status.manager, fleet.manager);
    assert_eq!(status.releases, 1);

    // A release mirrored later is recorded too: a rollout's start mirrors its target into
    // every store (this fleet has no canister, so the start itself is then refused or ends at
    // once; the stores hold the target either way).
    let before = fleet.sim.instructions_total(fleet.manager);
    fleet.publish(fleet.controller, "2.0.0", &user_wasm(true));
    let publish = fleet.sim.instructions_total(fleet.manager) - before;
    let before = fleet.sim.instructions_total(fleet.manager);
    let sub = fleet.ask::<fleet_api::rollout::method::StartRollout>(
        fleet.controller,
        (fleet_tests::rollout::one_wave_plan("2.0.0", 10),),
    );
    let start = fleet.sim.instructions_total(fleet.manager) - before;
    eprintln!("publish 2.0.0: {publish}; start_rollout (mirrors into both stores): {start}");
    drop(sub);
    let versions: Vec<String> = call_on::<Releases>(&fleet.sim, store, user(7), ())
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, ["1.0.0", "2.0.0"]);
}

/// A store whose module install fails stays added, so its cycles are not left in a canister
/// nobody tracks; `upgrade_stores` fails on it while the module cannot be installed, and
/// installs the working module set afterwards, so that the store records what a rollout's
/// start mirrors into it.
#[test]
fn a_store_whose_install_failed_stays_added_and_upgrade_stores_installs_it() {
    let (fleet, other) = fleet_on_two_subnets();
    // The wasm magic and version, then a section that does not parse: taken, not installable.
    set_store_module(
        &fleet,
        fleet.controller,
        b"\0asm\x01\0\0\0\x01\xff".to_vec(),
    )
    .unwrap();
    let before = fleet.sim.canister_count();
    let store = match add(&fleet, other) {
        Err(SubnetError::StoreInstallFailed { store, .. }) => store,
        other => panic!("expected StoreInstallFailed, got {other:?}"),
    };
    assert_eq!(fleet.sim.canister_count(), before + 1);
    assert_eq!(fleet.sim.module_hash(store), None);
    let listed = fleet.ask::<ListSubnets>(user(1), ()).subnets;
    assert!(
        listed.iter().any(|s| s.subnet == other && s.store == store),
        "{listed:?}"
    );
    assert_eq!(add(&fleet, other), Err(SubnetError::AlreadyAdded));
    assert_eq!(fleet.sim.canister_count(), before + 1, "no second store");
    let outcomes = |fleet: &Fleet| -> Vec<StoreUpgradeOutcome> {
        let done = fleet
            .ask::<UpgradeStores>(fleet.controller, ())
            .into_result()
            .unwrap();
        assert!(done.iter().all(|u| u.subnet == other && u.store == store));
        done.into_iter().map(|u| u.outcome).collect()
    };
    assert!(
        matches!(&outcomes(&fleet)[..], [StoreUpgradeOutcome::Failed(_)]),
        "the broken module cannot be installed"
    );
    assert_eq!(fleet.sim.module_hash(store), None);

    let hash = set_store_module(&fleet, fleet.controller, store_wasm()).unwrap();
    assert_eq!(outcomes(&fleet), [StoreUpgradeOutcome::Installed]);
    fleet.publish(fleet.controller, "2.0.0", &user_wasm(true));
    drop(fleet.ask::<fleet_api::rollout::method::StartRollout>(
        fleet.controller,
        (fleet_tests::rollout::one_wave_plan("2.0.0", 10),),
    ));
    assert_eq!(
        fleet.sim.module_hash(store).map(|h| h.to_vec()),
        Some(hash.to_vec()),
        "the store runs the module"
    );
    let versions: Vec<String> = call_on::<Releases>(&fleet.sim, store, user(7), ())
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, ["2.0.0"]);
}

/// `upgrade_stores` after `set_store_module` changed the module: a store running the previous
/// one is upgraded and keeps the releases it recorded; asked again, it is current; only an
/// admin may ask.
#[test]
fn upgrade_stores_brings_each_store_to_the_module_set_now_and_keeps_its_records() {
    let (fleet, other, store) = fleet_with_a_store();
    let listed = call_on::<Releases>(&fleet.sim, store, user(7), ());
    assert_eq!(listed.len(), 1);
    // The same code with a custom section: another module, another hash.
    let newer = fleet_tests::padded(&store_wasm(), 1_000);
    let hash = set_store_module(&fleet, fleet.controller, newer).unwrap();
    let running = |fleet: &Fleet| fleet.sim.module_hash(store).map(|h| h.to_vec());
    assert_ne!(
        running(&fleet),
        Some(hash.to_vec()),
        "set_store_module alone"
    );
    let upgrade = |fleet: &Fleet| {
        fleet
            .ask::<UpgradeStores>(fleet.controller, ())
            .into_result()
            .unwrap()
    };
    assert_eq!(
        upgrade(&fleet),
        [StoreUpgrade {
            subnet: other,
            store,
            outcome: StoreUpgradeOutcome::Upgraded
        }]
    );
    assert_eq!(running(&fleet), Some(hash.to_vec()));
    assert_eq!(
        call_on::<Releases>(&fleet.sim, store, user(7), ()),
        listed,
        "the upgrade keeps what the store recorded"
    );
    assert_eq!(upgrade(&fleet)[0].outcome, StoreUpgradeOutcome::Current);
    refused_at_ingress::<UpgradeStores>(&fleet.sim, fleet.manager, user(9), ());
}

/// Only the manager changes what a store lists: an ingress update from anyone else is dropped
/// before it is paid for, and a call from another canister gets `NotAuthorized` and changes
/// nothing.
#[test]
fn a_store_refuses_anyone_but_the_manager() {
    let (fleet, _, store) = fleet_with_a_store();
    let listed = call_on::<Releases>(&fleet.sim, store, user(7), ());
    let forged = StoredRelease {
        version: "9.9.9".into(),
        module_hash: vec![1; 32],
        chunk_hashes: vec![ByteBuf::from(vec![2; 32])],
        wasm_len: 10,
    };
    for sender in [user(7), fleet.controller, Principal::anonymous()] {
        refused_at_ingress::<RecordRelease>(&fleet.sim, store, sender, (forged.clone(),));
        refused_at_ingress::<ForgetRelease>(&fleet.sim, store, sender, ("1.0.0".into(),));
    }
    // A canister's call is not inspected: the handler refuses it, typed.
    let probe = fleet_tests::install_probe(&fleet.sim, fleet.controller);
    let via_probe = |method: &str, arg: Vec<u8>| -> Vec<u8> {
        let args = encode_args((store, method.to_string(), arg, 0u128)).unwrap();
        let reply = fleet
            .sim
            .update_call(probe, fleet.controller, "call_raw", args)
            .unwrap();
        candid::decode_one::<Result<Vec<u8>, (u32, String)>>(&reply)
            .unwrap()
            .expect("the store replied")
    };
    let reply = via_probe("record_release", encode_one(&forged).unwrap());
    assert_eq!(
        fleet_tests::decode_reply::<RecordRelease>(&reply).into_result(),
        Err(StoreCanisterError::NotAuthorized { caller: probe })
    );
    let reply = via_probe("forget_release", encode_one("1.0.0").unwrap());
    assert_eq!(
        fleet_tests::decode_reply::<ForgetRelease>(&reply).into_result(),
        Err(StoreCanisterError::NotAuthorized { caller: probe })
    );
    assert_eq!(call_on::<Releases>(&fleet.sim, store, user(7), ()), listed);
}

/// Two `add_subnet` calls for one subnet, in the same round: the manager runs the second while
/// the first awaits the CMC, and refuses it before it creates anything, so the subnet gets one
/// store.
#[test]
fn two_concurrent_adds_of_a_subnet_create_one_store() {
    let (fleet, other) = fleet_on_two_subnets();
    set_store_module(&fleet, fleet.controller, store_wasm()).unwrap();
    let before = fleet.sim.canister_count();
    let arg = AddSubnetArg {
        subnet: other,
        store_cycles: STORE_CYCLES,
    };
    let first = submit::<AddSubnet>(&fleet.sim, fleet.manager, fleet.controller, (arg.clone(),));
    let second = submit::<AddSubnet>(&fleet.sim, fleet.manager, fleet.controller, (arg,));
    let reply = |id| {
        let bytes = fleet.sim.await_call(id).expect("a reply");
        decode_reply::<AddSubnet>(&bytes).into_result()
    };
    let (first, second) = (reply(first), reply(second));
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(second, Err(SubnetError::AlreadyAdded));
    assert_eq!(fleet.sim.canister_count(), before + 1, "one store created");
    let subnets = fleet.ask::<ListSubnets>(user(1), ()).subnets;
    assert_eq!(subnets.len(), 2);
    let store = first.unwrap().store;
    assert_eq!(fleet.sim.get_subnet(store), Some(other));
    // Once the first is done, the subnet is known: a later add is refused the same way.
    assert_eq!(add(&fleet, other), Err(SubnetError::AlreadyAdded));
}
