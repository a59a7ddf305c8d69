//! Operators and settings: only admins (and controllers) manage them, anonymous never.

use candid::Principal;
use fleet_api::manager::*;
use fleet_tests::{user, Fleet};

fn operators(fleet: &Fleet) -> Vec<Operator> {
    let r: Result<Vec<Operator>, QueryError> = fleet.read(fleet.controller, "list_operators", ());
    r.unwrap()
}

#[test]
fn admins_from_init_manage_operators_and_others_are_refused() {
    let admin = user(1);
    let fleet = Fleet::with_arg(Some(ManagerInitArg {
        admins: Some(vec![admin]),
        ..Default::default()
    }));
    assert_eq!(
        operators(&fleet),
        vec![Operator {
            principal: admin,
            roles: vec![Role::Admin]
        }]
    );
    let deployer = Operator {
        principal: user(2),
        roles: vec![Role::Deployer],
    };
    for sender in [Principal::anonymous(), user(2), user(3)] {
        let r: Result<(), OperatorError> = fleet.call(sender, "set_operator", deployer.clone());
        assert_eq!(r, Err(OperatorError::NotAuthorized));
        let r: Result<(), OperatorError> = fleet.call(sender, "remove_operator", admin);
        assert_eq!(r, Err(OperatorError::NotAuthorized));
    }
    assert_eq!(operators(&fleet).len(), 1);

    let r: Result<(), OperatorError> = fleet.call(admin, "set_operator", deployer.clone());
    r.unwrap();
    let r: Result<(), OperatorError> = fleet.call(
        admin,
        "set_operator",
        Operator {
            principal: Principal::anonymous(),
            roles: vec![Role::Admin],
        },
    );
    assert_eq!(r, Err(OperatorError::AnonymousOperator));
    let r: Result<(), OperatorError> = fleet.call(
        admin,
        "set_operator",
        Operator {
            principal: user(4),
            roles: vec![],
        },
    );
    assert_eq!(r, Err(OperatorError::NoRoles));
    let r: Result<(), OperatorError> = fleet.call(admin, "remove_operator", user(9));
    assert_eq!(r, Err(OperatorError::UnknownOperator));
    assert_eq!(operators(&fleet).len(), 2);

    // A deployer reads the operator list but cannot change settings.
    let r: Result<Vec<Operator>, QueryError> = fleet.read(user(2), "list_operators", ());
    assert_eq!(r.unwrap().len(), 2);
    let r: Result<Vec<Operator>, QueryError> = fleet.read(user(3), "list_operators", ());
    assert_eq!(r, Err(QueryError::NotAuthorized));
    let r: Result<Settings, UpdateSettingsError> = fleet.call(
        user(2),
        "update_settings",
        SettingsUpdate {
            user_canister_cycles: Some(1),
            creation_limit: None,
            pipeline_cycles_reserve: None,
        },
    );
    assert_eq!(r, Err(UpdateSettingsError::NotAuthorized));

    let r: Result<(), OperatorError> = fleet.call(admin, "remove_operator", user(2));
    r.unwrap();
    let r: Result<Vec<Operator>, QueryError> = fleet.read(user(2), "list_operators", ());
    assert_eq!(r, Err(QueryError::NotAuthorized));
}

#[test]
fn settings_updates_are_validated_and_applied_by_admins() {
    let fleet = Fleet::new();
    let before: Settings = fleet.read(Principal::anonymous(), "get_settings", ());
    let r: Result<Settings, UpdateSettingsError> = fleet.call(
        fleet.controller,
        "update_settings",
        SettingsUpdate {
            user_canister_cycles: Some(5),
            creation_limit: Some(RateLimit {
                capacity: 0,
                refill_period_secs: 1,
            }),
            pipeline_cycles_reserve: None,
        },
    );
    assert_eq!(r, Err(UpdateSettingsError::InvalidRateLimit));
    let unchanged: Settings = fleet.read(Principal::anonymous(), "get_settings", ());
    assert_eq!(unchanged, before);

    let limit = RateLimit {
        capacity: 7,
        refill_period_secs: 60,
    };
    let r: Result<Settings, UpdateSettingsError> = fleet.call(
        fleet.controller,
        "update_settings",
        SettingsUpdate {
            user_canister_cycles: Some(2_000_000_000_000),
            creation_limit: Some(limit),
            pipeline_cycles_reserve: Some(7_000_000_000),
        },
    );
    let after = r.unwrap();
    assert_eq!(after.user_canister_cycles, 2_000_000_000_000);
    assert_eq!(after.pipeline_cycles_reserve, Some(7_000_000_000));
    assert_eq!(after.creation_limit, limit);
    let read: Settings = fleet.read(Principal::anonymous(), "get_settings", ());
    assert_eq!(read, after);
}

/// The aggregate metrics are public through candid as through `GET /metrics` (scrapers have
/// no identity); both tell the same figures.
#[test]
fn metrics_are_public_in_both_forms() {
    let fleet = Fleet::new();
    let m: fleet_api::rollout::FleetMetrics = fleet.read(Principal::anonymous(), "metrics", ());
    assert_eq!(m.user_canisters, 0);
    assert!(m.liquid_cycles > 0 && m.liquid_cycles <= m.cycles_balance);
    let text = fleet.metrics_text();
    assert!(text.contains("fleet_user_canisters 0\n"), "{text}");
    assert!(
        text.contains(&format!(
            "fleet_pipeline_cycles_reserve {}\n",
            m.pipeline_cycles_reserve
        )),
        "{text}"
    );
}
