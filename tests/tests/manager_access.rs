//! Operators and settings: only admins (and controllers) manage them, anonymous never.

use candid::Principal;
use fleet_api::manager::method::{
    GetSettings, ListOperators, RemoveOperator, SetOperator, UpdateSettings,
};
use fleet_api::manager::*;
use fleet_api::rollout::method::Metrics;
use fleet_tests::{user, Fleet};

fn operators(fleet: &Fleet) -> Vec<Operator> {
    fleet
        .ask::<ListOperators>(fleet.controller, ())
        .into_result()
        .unwrap()
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
        fleet.refused_at_ingress::<SetOperator>(sender, (deployer.clone(),));
        fleet.refused_at_ingress::<RemoveOperator>(sender, (admin,));
    }
    assert_eq!(operators(&fleet).len(), 1);

    let set = |operator: Operator| fleet.ask::<SetOperator>(admin, (operator,)).into_result();
    set(deployer.clone()).unwrap();
    let r = set(Operator {
        principal: Principal::anonymous(),
        roles: vec![Role::Admin],
    });
    assert_eq!(r, Err(OperatorError::AnonymousOperator));
    let r = set(Operator {
        principal: user(4),
        roles: vec![],
    });
    assert_eq!(r, Err(OperatorError::NoRoles));
    let r = fleet.ask::<RemoveOperator>(admin, (user(9),));
    assert_eq!(r.into_result(), Err(OperatorError::UnknownOperator));
    assert_eq!(operators(&fleet).len(), 2);

    // A deployer reads the operator list but cannot change settings.
    let list = |sender: Principal| fleet.ask::<ListOperators>(sender, ()).into_result();
    assert_eq!(list(user(2)).unwrap().len(), 2);
    assert_eq!(list(user(3)), Err(QueryError::NotAuthorized));
    let update = SettingsUpdate {
        user_canister_cycles: Some(1),
        creation_limit: None,
        pipeline_cycles_reserve: None,
    };
    fleet.refused_at_ingress::<UpdateSettings>(user(2), (update,));

    let r = fleet.ask::<RemoveOperator>(admin, (user(2),));
    r.into_result().unwrap();
    assert_eq!(list(user(2)), Err(QueryError::NotAuthorized));
}

#[test]
fn settings_updates_are_validated_and_applied_by_admins() {
    let fleet = Fleet::new();
    let settings = || fleet.ask::<GetSettings>(Principal::anonymous(), ());
    let update = |u: SettingsUpdate| {
        fleet
            .ask::<UpdateSettings>(fleet.controller, (u,))
            .into_result()
    };
    let before = settings();
    let r = update(SettingsUpdate {
        user_canister_cycles: Some(5),
        creation_limit: Some(RateLimit {
            capacity: 0,
            refill_period_secs: 1,
        }),
        pipeline_cycles_reserve: None,
    });
    assert_eq!(r, Err(UpdateSettingsError::InvalidRateLimit));
    assert_eq!(settings(), before);

    let limit = RateLimit {
        capacity: 7,
        refill_period_secs: 60,
    };
    let after = update(SettingsUpdate {
        user_canister_cycles: Some(2_000_000_000_000),
        creation_limit: Some(limit),
        pipeline_cycles_reserve: Some(7_000_000_000),
    })
    .unwrap();
    assert_eq!(after.user_canister_cycles, 2_000_000_000_000);
    assert_eq!(after.pipeline_cycles_reserve, Some(7_000_000_000));
    assert_eq!(after.creation_limit, limit);
    assert_eq!(settings(), after);
}

/// The aggregate metrics are public through candid as through `GET /metrics` (scrapers have
/// no identity); both tell the same figures.
#[test]
fn metrics_are_public_in_both_forms() {
    let fleet = Fleet::new();
    let m = fleet.ask::<Metrics>(Principal::anonymous(), ());
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

/// Refused ingress costs the manager nothing: 1,000 update messages it would refuse for their
/// caller (anonymous, or without the role the method needs) or for an argument that does not
/// decode are dropped by its `canister_inspect_message` before they are inducted, and its
/// balance does not move. One message it accepts does cost it (induction and execution), so the
/// balance is a measure that would show them (interface spec, "Ingress message inspection").
#[test]
fn a_thousand_refused_ingress_messages_leave_the_managers_balance_unchanged() {
    use fleet_api::endpoint::Endpoint;
    use fleet_api::manager::method::{BeginRelease, CreateUserCanister, SetDefaultRelease};
    use fleet_api::rollout::method::{Drain, StartRollout};
    use fleet_api::rollout::RolloutPlanArg;
    let fleet = Fleet::new();
    let before = fleet.sim.cycle_balance(fleet.manager);
    let begin = BeginUpload {
        version: "1.0.0".into(),
        total_size: 8,
        sha256: vec![0; 32],
        notes: String::new(),
        interface: None,
    };
    for i in 0..1_000u32 {
        let stranger = user((i % 50) as u8 + 1);
        match i % 6 {
            0 => fleet.refused_at_ingress::<BeginRelease>(stranger, (begin.clone(),)),
            1 => fleet.refused_at_ingress::<SetDefaultRelease>(stranger, ("1.0.0".into(),)),
            2 => fleet.refused_at_ingress::<StartRollout>(stranger, (RolloutPlanArg::to("1.0.0"),)),
            3 => fleet.refused_at_ingress::<Drain>(Principal::anonymous(), ()),
            4 => {
                let arg = CreateUserCanisterArg {
                    recovery_principal: stranger,
                    invite: None,
                };
                fleet.refused_at_ingress::<CreateUserCanister>(Principal::anonymous(), (arg,))
            }
            _ => {
                // An argument that is not the method's: bytes that are not candid at all.
                let err = fleet
                    .sim
                    .submit_call(
                        fleet.manager,
                        fleet.controller,
                        BeginRelease::NAME,
                        vec![7; 16],
                    )
                    .unwrap_err();
                assert_eq!(err.error_code, ic_sim::ErrorCode::CanisterRejectedMessage);
            }
        }
    }
    assert_eq!(fleet.sim.cycle_balance(fleet.manager), before);
    assert_eq!(operators(&fleet).len(), 0, "nothing was changed");

    fleet
        .ask::<BeginRelease>(fleet.controller, (begin,))
        .into_result()
        .expect("a controller may begin a release");
    assert!(fleet.sim.cycle_balance(fleet.manager) < before);
}
