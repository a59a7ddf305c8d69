//! The manager's state lives in stable memory: upgrading the manager keeps releases, settings,
//! operators, the chunk-store mirror and the registry.

use candid::{encode_args, Principal};
use fleet_api::manager::*;
use fleet_tests::{user, user_wasm, Fleet};

#[test]
fn upgrading_the_manager_keeps_all_state() {
    let fleet = Fleet::unlimited();
    let meta = fleet.publish_default("1.0.0", &user_wasm(false));
    let r: Result<(), OperatorError> = fleet.call(
        fleet.controller,
        "set_operator",
        Operator {
            principal: user(5),
            roles: vec![Role::Releaser, Role::Deployer],
        },
    );
    r.unwrap();
    let created: Vec<UserCanister> = (1..=2)
        .map(|n| {
            let r: Result<UserCanister, CreateUserCanisterError> = fleet.call(
                user(n),
                "create_user_canister",
                CreateUserCanisterArg {
                    recovery_principal: user(100 + n),
                },
            );
            r.unwrap()
        })
        .collect();
    let settings_before: Settings = fleet.read(Principal::anonymous(), "get_settings", ());
    let mirror_before: ChunkStoreStatus =
        fleet.read(Principal::anonymous(), "chunk_store_status", ());

    fleet
        .sim
        .upgrade_canister(
            fleet.manager,
            wasm_build::wasm("fleet_manager", &[]),
            encode_args(()).unwrap(),
            Some(fleet.controller),
        )
        .expect("upgrading the manager");

    let got: Option<ReleaseMeta> = fleet.read(Principal::anonymous(), "get_release", "1.0.0");
    assert_eq!(got, Some(meta));
    let settings: Settings = fleet.read(Principal::anonymous(), "get_settings", ());
    assert_eq!(settings, settings_before);
    let mirror: ChunkStoreStatus = fleet.read(Principal::anonymous(), "chunk_store_status", ());
    assert_eq!(mirror, mirror_before);
    let ops: Result<Vec<Operator>, QueryError> = fleet.read(user(5), "list_operators", ());
    assert_eq!(ops.unwrap().len(), 1);
    assert_eq!(fleet.user_canister_count(), 2);
    for record in &created {
        let mine: Option<UserCanister> = fleet.read(record.owner, "my_user_canister", ());
        assert_eq!(mine.as_ref(), Some(record));
    }
    // Provisioning still works after the upgrade and still refuses duplicates.
    let again: Result<UserCanister, CreateUserCanisterError> = fleet.call(
        user(1),
        "create_user_canister",
        CreateUserCanisterArg {
            recovery_principal: user(101),
        },
    );
    assert_eq!(again.unwrap().canister_id, created[0].canister_id);
    assert_eq!(fleet.user_canister_count(), 2);
}
