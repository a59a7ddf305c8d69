//! Admission to provisioning, on ic_sim: a Sybil attack against an open manager spends no more
//! than its budget; the allowlist, the approver canister and payment by a calling canister
//! admit exactly whom they should, and ingress the mode refuses is dropped before it costs the
//! manager anything; asserted from outside (canisters created, balances, the manager's
//! admission status).

use candid::{encode_args, encode_one, Principal};
use fleet_api::governance::method::{GetAdmission, SetAdmission, UpdateAllowlist};
use fleet_api::governance::*;
use fleet_api::manager::method::CreateUserCanister;
use fleet_api::manager::*;
use fleet_tests::rollout::{owner, recovery};
use fleet_tests::{sha256, user, user_wasm, Fleet};

type Created = Result<UserCanister, CreateUserCanisterError>;

/// A manager with a creation limit out of the way, admission as given, and release 1.0.0 as
/// its default.
fn fleet_with(mode: AdmissionMode, cycles_per_window: u128) -> Fleet {
    let fleet = Fleet::with_arg(Some(ManagerInitArg {
        creation_limit: Some(RateLimit {
            capacity: 5_000,
            refill_period_secs: 1,
        }),
        admission: Some(Admission {
            mode,
            budget: ProvisioningBudget {
                cycles_per_window,
                window_secs: 86_400,
            },
        }),
        ..Default::default()
    }));
    fleet.publish_default("1.0.0", &user_wasm(false));
    fleet
}

fn create(fleet: &Fleet, owner: Principal, invite: Option<&str>) -> Created {
    let arg = CreateUserCanisterArg {
        recovery_principal: user(250),
        invite: invite.map(str::to_string),
    };
    fleet.ask::<CreateUserCanister>(owner, (arg,)).into_result()
}

/// What one creation costs the manager on ic_sim: the creation fee plus the user canister's
/// cycles, read from a creation of the fleet itself.
fn creation_cost(fleet: &Fleet) -> u128 {
    let status = fleet.ask::<GetAdmission>(fleet.controller, ());
    status.spent_in_window
}

/// 1,000 fresh principals ask an open manager for a canister at once: the budget admits as
/// many creations as it covers and refuses every other one with a typed error; the manager's
/// balance falls by no more than the budget (plus the execution of the 1,000 messages).
#[test]
fn a_sybil_run_of_a_thousand_principals_spends_no_more_than_the_budget() {
    let probe = fleet_with(AdmissionMode::Open, u128::MAX);
    create(&probe, user(1), None).unwrap();
    let cost = creation_cost(&probe);
    assert!(cost > 1_000_000_000_000, "fee plus 1T cycles: {cost}");

    let budget = 10 * cost + cost / 2;
    let fleet = fleet_with(AdmissionMode::Open, budget);
    let before = fleet.sim.cycle_balance(fleet.manager);
    let messages = (0..1_000)
        .map(|i| {
            let arg = CreateUserCanisterArg {
                recovery_principal: recovery(i),
                invite: None,
            };
            fleet_tests::submit::<CreateUserCanister>(&fleet.sim, fleet.manager, owner(i), (arg,))
        })
        .collect();
    let replies = fleet.run_all::<CreateUserCanister>(messages, 2_000);
    let created = replies
        .iter()
        .filter(|r| matches!(r, CreateUserCanisterReply::Ok(_)))
        .count();
    let over_budget = replies
        .iter()
        .filter(|r| {
            matches!(
                r,
                CreateUserCanisterReply::Err(CreateUserCanisterError::BudgetExhausted { .. })
            )
        })
        .count();
    assert_eq!(created, 10, "the budget covers ten creations");
    assert_eq!(
        over_budget, 990,
        "every other principal is refused by the budget"
    );
    assert_eq!(fleet.user_canister_count(), 10);
    let status = fleet.ask::<GetAdmission>(fleet.controller, ());
    assert!(status.spent_in_window <= budget);
    assert_eq!(status.refused_over_budget, 990);
    assert!(fleet
        .metrics_text()
        .contains("fleet_provisioning_refused_total{reason=\"budget\"} 990\n"));
    let spent = before - fleet.sim.cycle_balance(fleet.manager);
    // Without the budget, 1,000 creations would spend 1,000 × cost.
    assert!(
        spent <= budget + 1_000 * 1_000_000_000,
        "spent {spent}, budget {budget}"
    );
}

/// The allowlist admits listed principals and single-use invites; everyone else is refused
/// before anything is created.
#[test]
fn the_allowlist_admits_listed_principals_and_invites_once() {
    let fleet = fleet_with(AdmissionMode::Allowlist, u128::MAX);
    let update = AllowlistUpdate {
        add: vec![user(1)],
        add_invites: vec![serde_bytes::ByteBuf::from(sha256(b"invite-7"))],
        ..Default::default()
    };
    // Only admins manage the allowlist.
    fleet.refused_at_ingress::<UpdateAllowlist>(user(9), (update.clone(),));
    let status = fleet
        .ask::<UpdateAllowlist>(fleet.controller, (update,))
        .into_result()
        .unwrap();
    assert_eq!((status.allowlisted, status.invites), (1, 1));

    // A caller the allowlist refuses is dropped at ingress: the manager pays nothing for it.
    let before = fleet.sim.cycle_balance(fleet.manager);
    for invite in [None, Some("invite-8")] {
        let arg = CreateUserCanisterArg {
            recovery_principal: user(250),
            invite: invite.map(str::to_string),
        };
        fleet.refused_at_ingress::<CreateUserCanister>(user(2), (arg,));
    }
    assert_eq!(fleet.sim.cycle_balance(fleet.manager), before);
    assert_eq!(fleet.user_canister_count(), 0);
    create(&fleet, user(1), None).expect("allowlisted");
    create(&fleet, user(2), Some("invite-7")).expect("invited");
    // An invite is used once: the next caller presenting it is dropped at ingress.
    let reused = CreateUserCanisterArg {
        recovery_principal: user(250),
        invite: Some("invite-7".into()),
    };
    fleet.refused_at_ingress::<CreateUserCanister>(user(3), (reused,));
    assert_eq!(fleet.user_canister_count(), 2);
    let status = fleet.ask::<GetAdmission>(fleet.controller, ());
    assert_eq!(status.invites, 0);
}

fn install_probe(fleet: &Fleet) -> Principal {
    fleet_tests::install_probe(&fleet.sim, fleet.controller)
}

/// The approver canister decides; an approver that cannot answer refuses, and nothing is
/// created.
#[test]
fn the_approver_canister_decides_and_its_failure_refuses() {
    let fleet = fleet_with(AdmissionMode::Open, u128::MAX);
    let approver = install_probe(&fleet);
    fleet
        .ask::<SetAdmission>(
            fleet.controller,
            (Admission {
                mode: AdmissionMode::Approver(approver),
                budget: ProvisioningBudget {
                    cycles_per_window: u128::MAX,
                    window_secs: 60,
                },
            },),
        )
        .into_result()
        .unwrap();
    let set = encode_one(vec![user(1)]).unwrap();
    fleet
        .sim
        .update_call(approver, fleet.controller, "set_admitted", set)
        .unwrap();
    assert_eq!(
        create(&fleet, user(2), None),
        Err(CreateUserCanisterError::NotAdmitted)
    );
    create(&fleet, user(1), None).expect("the approver admits user 1");

    // An approver without `fleet_admit` (here an empty canister) rejects the call: refused.
    let unrelated = fleet
        .sim
        .create_canister_with_settings(Some(fleet.controller), None);
    fleet
        .ask::<SetAdmission>(
            fleet.controller,
            (Admission {
                mode: AdmissionMode::Approver(unrelated),
                budget: ProvisioningBudget {
                    cycles_per_window: u128::MAX,
                    window_secs: 60,
                },
            },),
        )
        .into_result()
        .unwrap();
    assert!(matches!(
        create(&fleet, user(3), None),
        Err(CreateUserCanisterError::ApproverFailed(_))
    ));
    assert_eq!(fleet.user_canister_count(), 1);
}

/// Under `Paid`, a canister that attaches the cost gets a canister and pays exactly the cost;
/// one that attaches too little is refused and keeps its cycles; the manager's balance does not
/// fall by the creation.
#[test]
fn a_paying_canister_pays_exactly_the_cost_and_a_short_payment_is_refunded() {
    let probe_fleet = fleet_with(AdmissionMode::Open, u128::MAX);
    create(&probe_fleet, user(1), None).unwrap();
    let cost = creation_cost(&probe_fleet);

    let fleet = fleet_with(AdmissionMode::Paid, 0);
    let payer = install_probe(&fleet);
    let call = |cycles: u128| -> Created {
        let arg = CreateUserCanisterArg {
            recovery_principal: user(250),
            invite: None,
        };
        let args = encode_args((
            fleet.manager,
            "create_user_canister".to_string(),
            encode_one(arg).unwrap(),
            cycles,
        ))
        .unwrap();
        let reply = fleet
            .sim
            .update_call(payer, fleet.controller, "call_raw", args)
            .unwrap();
        let bytes = candid::decode_one::<Result<Vec<u8>, (u32, String)>>(&reply)
            .unwrap()
            .expect("the manager replied");
        fleet_tests::decode_reply::<CreateUserCanister>(&bytes).into_result()
    };
    let payer_before = fleet.sim.cycle_balance(payer);
    assert_eq!(
        call(cost - 1),
        Err(CreateUserCanisterError::PaymentRequired {
            needed: cost,
            attached: cost - 1
        })
    );
    let refunded_loss = payer_before - fleet.sim.cycle_balance(payer);
    assert!(
        refunded_loss < 100_000_000_000,
        "a refused payment comes back (lost {refunded_loss} to fees)"
    );
    let manager_before = fleet.sim.cycle_balance(fleet.manager);
    let payer_before = fleet.sim.cycle_balance(payer);
    let created = call(cost * 2).expect("a paying canister gets a canister");
    assert_eq!(created.owner, payer);
    let paid = payer_before - fleet.sim.cycle_balance(payer);
    assert!(
        paid >= cost && paid < cost + 100_000_000_000,
        "the payer paid {paid}, the cost is {cost}"
    );
    let manager_after = fleet.sim.cycle_balance(fleet.manager);
    assert!(
        manager_after + 100_000_000_000 > manager_before,
        "the creation did not come out of the manager's balance ({manager_before} -> {manager_after})"
    );
    // A user cannot pay: ingress carries no cycles, so it is dropped before it costs anything.
    let arg = CreateUserCanisterArg {
        recovery_principal: user(250),
        invite: None,
    };
    fleet.refused_at_ingress::<CreateUserCanister>(user(5), (arg,));
}
