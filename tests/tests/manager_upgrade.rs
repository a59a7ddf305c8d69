//! The manager's state lives in stable memory: upgrading the manager keeps releases, settings,
//! operators, the chunk-store mirror and the registry.

use candid::{encode_args, Principal};
use fleet_api::manager::method::{
    ChunkStoreStatusQuery, CreateUserCanister, GetRelease, GetSettings, ListOperators,
    MyUserCanister, SetOperator,
};
use fleet_api::manager::*;
use fleet_tests::{user, user_wasm, Fleet};

#[test]
fn upgrading_the_manager_keeps_all_state() {
    let fleet = Fleet::unlimited();
    let meta = fleet.publish_default("1.0.0", &user_wasm(false));
    let operator = Operator {
        principal: user(5),
        roles: vec![Role::Releaser, Role::Deployer],
    };
    let r = fleet.ask::<SetOperator>(fleet.controller, (operator,));
    r.into_result().unwrap();
    let create = |n: u8| {
        let arg = CreateUserCanisterArg {
            recovery_principal: user(100 + n),
            invite: None,
        };
        fleet
            .ask::<CreateUserCanister>(user(n), (arg,))
            .into_result()
    };
    let created: Vec<UserCanister> = (1..=2).map(|n| create(n).unwrap()).collect();
    let settings = || fleet.ask::<GetSettings>(Principal::anonymous(), ());
    let mirror = || fleet.ask::<ChunkStoreStatusQuery>(Principal::anonymous(), ());
    let settings_before = settings();
    let mirror_before = mirror();

    fleet
        .sim
        .upgrade_canister(
            fleet.manager,
            wasm_build::wasm("fleet_manager", &[]),
            encode_args(()).unwrap(),
            Some(fleet.controller),
        )
        .expect("upgrading the manager");

    let got = fleet.ask::<GetRelease>(Principal::anonymous(), ("1.0.0".to_string(),));
    assert_eq!(got, Some(meta));
    assert_eq!(settings(), settings_before);
    assert_eq!(mirror(), mirror_before);
    let ops = fleet.ask::<ListOperators>(user(5), ());
    assert_eq!(ops.into_result().unwrap().len(), 1);
    assert_eq!(fleet.user_canister_count(), 2);
    for record in &created {
        let mine = fleet.ask::<MyUserCanister>(record.owner, ());
        assert_eq!(mine.as_ref(), Some(record));
    }
    // Provisioning still works after the upgrade and still refuses duplicates.
    let again = create(1);
    assert_eq!(again.unwrap().canister_id, created[0].canister_id);
    assert_eq!(fleet.user_canister_count(), 2);
}
