//! Provisioning user canisters: controllers, installed module and data as seen from outside,
//! the registry's queries, and every refused input leaving the registry unchanged.

use candid::Principal;
use fleet_api::endpoint::Endpoint;
use fleet_api::manager::method::{
    CreateUserCanister, GetUserCanister, ListUserCanisters, MyUserCanister, SetUpgradePolicy,
};
use fleet_api::manager::*;
use fleet_api::user::method::{GetFleetHealth, Owner, Put, ReleaseSha256};
use fleet_api::user::PutNoteArg;
use fleet_tests::{call_on, refused_at_ingress, user, user_wasm, Fleet};

type Created = Result<UserCanister, CreateUserCanisterError>;

fn create(fleet: &Fleet, owner: Principal, recovery: Principal) -> Created {
    let arg = CreateUserCanisterArg {
        recovery_principal: recovery,
        invite: None,
    };
    fleet.ask::<CreateUserCanister>(owner, (arg,)).into_result()
}

fn list_page(
    fleet: &Fleet,
    sender: Principal,
    filter: CanisterFilter,
    start_after: Option<Principal>,
    limit: Option<u32>,
) -> Result<UserCanisterPage, ListUserCanistersError> {
    let arg = ListUserCanistersArg {
        filter,
        start_after,
        limit,
    };
    fleet.ask::<ListUserCanisters>(sender, (arg,)).into_result()
}

fn list(fleet: &Fleet, filter: CanisterFilter) -> Vec<UserCanister> {
    let page = list_page(fleet, fleet.controller, filter, None, None);
    let page = page.expect("list_user_canisters");
    assert_eq!(page.next, None);
    page.canisters
}

/// A query of the user canister that takes no argument, as anyone.
fn query_user<E: Endpoint<Args = ()>>(fleet: &Fleet, canister: Principal) -> E::Reply {
    call_on::<E>(&fleet.sim, canister, Principal::anonymous(), ())
}

#[test]
fn each_owner_gets_one_canister_controlled_by_manager_and_recovery_running_the_default_release() {
    let fleet = Fleet::unlimited();
    let meta = fleet.publish_default("1.0.0", &user_wasm(false));
    let owners: Vec<(Principal, Principal)> = (1..=3).map(|n| (user(n), user(100 + n))).collect();

    let mut ids = Vec::new();
    for (owner, recovery) in &owners {
        let record = create(&fleet, *owner, *recovery).expect("create_user_canister");
        assert_eq!(record.owner, *owner);
        assert_eq!(record.recovery_principal, *recovery);
        assert_eq!(record.status, CanisterStatus::Active);
        assert_eq!(
            record.current_release,
            Some(ReleaseRef {
                version: "1.0.0".into(),
                sha256: meta.sha256.clone()
            })
        );
        assert_eq!(record.history.len(), 1);
        assert_eq!(record.history[0].outcome, UpgradeOutcome::Installed);
        ids.push(record.canister_id);

        // From the outside: the IC's view of controllers and module, and the app's own view.
        let status = fleet
            .sim
            .canister_status(record.canister_id, Some(*recovery))
            .expect("the recovery principal is a controller");
        let mut controllers = status.settings.controllers.clone();
        controllers.sort();
        let mut expected = vec![fleet.manager, *recovery];
        expected.sort();
        assert_eq!(controllers, expected);
        assert_eq!(status.module_hash, Some(meta.sha256.clone()));

        let app_owner = query_user::<Owner>(&fleet, record.canister_id);
        assert_eq!(app_owner, *owner);
        let sha = query_user::<ReleaseSha256>(&fleet, record.canister_id);
        assert_eq!(sha.into_vec(), meta.sha256);
        let health = query_user::<GetFleetHealth>(&fleet, record.canister_id);
        assert!(health.ok, "{health:?}");
        assert_eq!(health.records, 0);

        // The owner, and only the owner, writes data.
        let arg = PutNoteArg {
            key: "greeting".to_string(),
            text: format!("hello from {owner}"),
        };
        let put = call_on::<Put>(&fleet.sim, record.canister_id, *owner, (arg.clone(),));
        assert!(put.into_result().is_ok());
        refused_at_ingress::<Put>(&fleet.sim, record.canister_id, user(77), (arg,));
        let health = query_user::<GetFleetHealth>(&fleet, record.canister_id);
        assert_eq!(health.records, 1);
    }
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 3, "three distinct canisters");

    // A retried call returns the same canister and creates nothing.
    let again = create(&fleet, owners[0].0, owners[0].1).unwrap();
    assert_eq!(again.canister_id, ids[0]);
    assert_eq!(fleet.user_canister_count(), 3);

    // The registry answers by owner, by release, by status, and for the caller.
    assert_eq!(list(&fleet, CanisterFilter::All).len(), 3);
    assert_eq!(
        list(&fleet, CanisterFilter::Release("1.0.0".into())).len(),
        3
    );
    assert_eq!(
        list(&fleet, CanisterFilter::Status(CanisterStatus::Active)).len(),
        3
    );
    assert!(list(&fleet, CanisterFilter::Status(CanisterStatus::Provisioning)).is_empty());
    let by_owner = list(&fleet, CanisterFilter::Owner(owners[1].0));
    assert_eq!(by_owner.len(), 1);
    assert_eq!(by_owner[0].canister_id, ids[1]);
    let mine = fleet.ask::<MyUserCanister>(owners[2].0, ());
    assert_eq!(mine.unwrap().canister_id, ids[2]);
    let got = fleet.ask::<GetUserCanister>(owners[2].1, (ids[2],));
    assert_eq!(
        got.into_result().unwrap().owner,
        owners[2].0,
        "the recovery principal reads the record"
    );

    // Pagination: pages of two cover all three.
    let all = |start_after| {
        list_page(
            &fleet,
            fleet.controller,
            CanisterFilter::All,
            start_after,
            Some(2),
        )
    };
    let page = all(None).unwrap();
    assert_eq!(page.canisters.len(), 2);
    let rest = all(page.next).unwrap();
    assert_eq!(rest.canisters.len(), 1);
    assert_eq!(rest.next, None);
}

#[test]
fn bad_creation_requests_are_refused_with_typed_errors_and_create_nothing() {
    let fleet = Fleet::with_arg(Some(ManagerInitArg {
        creation_limit: Some(RateLimit {
            capacity: 2,
            refill_period_secs: 3600,
        }),
        ..Default::default()
    }));

    // No default release yet.
    assert_eq!(
        create(&fleet, user(1), user(101)),
        Err(CreateUserCanisterError::NoDefaultRelease)
    );
    fleet.publish_default("1.0.0", &user_wasm(false));

    let arg = CreateUserCanisterArg {
        recovery_principal: user(101),
        invite: None,
    };
    fleet.refused_at_ingress::<CreateUserCanister>(Principal::anonymous(), (arg,));
    for recovery in [
        Principal::anonymous(),
        fleet.manager,
        Principal::management_canister(),
    ] {
        assert_eq!(
            create(&fleet, user(1), recovery),
            Err(CreateUserCanisterError::InvalidRecoveryPrincipal)
        );
    }
    assert_eq!(fleet.user_canister_count(), 0);

    let first = create(&fleet, user(1), user(101)).unwrap();
    // Same owner, other recovery principal: refused, the existing canister is untouched.
    assert_eq!(
        create(&fleet, user(1), user(102)),
        Err(CreateUserCanisterError::RecoveryPrincipalMismatch {
            existing: user(101)
        })
    );
    let status = fleet
        .sim
        .canister_status(first.canister_id, Some(user(101)))
        .unwrap();
    assert!(status.settings.controllers.contains(&user(101)));
    assert!(!status.settings.controllers.contains(&user(102)));

    // Capacity 2: the third creation within the hour is rate limited.
    create(&fleet, user(2), user(102)).unwrap();
    match create(&fleet, user(3), user(103)) {
        Err(CreateUserCanisterError::RateLimited { retry_after_secs }) => {
            assert!(retry_after_secs > 0 && retry_after_secs <= 3600)
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(fleet.user_canister_count(), 2);
    let none = fleet.ask::<MyUserCanister>(user(3), ());
    assert_eq!(none, None);
}

#[test]
fn the_registry_is_private_to_operators_owners_and_recovery_principals() {
    let fleet = Fleet::unlimited();
    fleet.publish_default("1.0.0", &user_wasm(false));
    let record = create(&fleet, user(1), user(101)).unwrap();

    for stranger in [Principal::anonymous(), user(50)] {
        let page = list_page(&fleet, stranger, CanisterFilter::All, None, None);
        assert_eq!(page, Err(ListUserCanistersError::NotAuthorized));
        let got = fleet.ask::<GetUserCanister>(stranger, (record.canister_id,));
        assert_eq!(got.into_result(), Err(GetUserCanisterError::NotAuthorized));
    }
    let release = CanisterFilter::Release("7.7.7".into());
    let unknown = list_page(&fleet, fleet.controller, release, None, None);
    assert_eq!(unknown, Err(ListUserCanistersError::UnknownRelease));

    // Upgrade policy: the owner may change it, strangers may not, pins need a real release.
    let set =
        |sender: Principal, policy: UpgradePolicy| -> Result<UserCanister, SetUpgradePolicyError> {
            let arg = SetUpgradePolicyArg {
                canister_id: record.canister_id,
                policy,
            };
            fleet.ask::<SetUpgradePolicy>(sender, (arg,)).into_result()
        };
    assert_eq!(
        set(user(50), UpgradePolicy::Manual),
        Err(SetUpgradePolicyError::NotAuthorized)
    );
    assert_eq!(
        set(user(1), UpgradePolicy::Pinned("3.0.0".into())),
        Err(SetUpgradePolicyError::UnknownRelease)
    );
    assert_eq!(
        set(user(1), UpgradePolicy::Pinned("1.0.0".into()))
            .unwrap()
            .policy,
        UpgradePolicy::Pinned("1.0.0".into())
    );
    let mine = fleet.ask::<MyUserCanister>(user(1), ());
    assert_eq!(mine.unwrap().policy, UpgradePolicy::Pinned("1.0.0".into()));
}

/// More owners at once than the manager takes: 260 creations arrive in one round; 200 await
/// the IC's `create_canister` (the manager's cap: the IC holds 500 outstanding calls from it to
/// the management canister, shared with rollouts), the other 60 are refused as `Busy` with
/// nothing recorded. Those owners try again and get their canister.
#[test]
fn creations_past_the_cap_are_refused_as_busy_and_succeed_when_retried() {
    use fleet_tests::rollout::{fleet_for, owner, recovery};
    use fleet_tests::submit;
    const OWNERS: u32 = 260;
    const CAP: u32 = 200;
    let fleet = fleet_for(OWNERS);
    fleet.publish_default("1.0.0", &user_wasm(false));
    let submit_all = |owners: &[u32]| {
        let messages = owners
            .iter()
            .map(|&i| {
                let arg = CreateUserCanisterArg {
                    recovery_principal: recovery(i),
                    invite: None,
                };
                submit::<CreateUserCanister>(&fleet.sim, fleet.manager, owner(i), (arg,))
            })
            .collect();
        fleet.run_all::<CreateUserCanister>(messages, 1_000)
    };
    let all: Vec<u32> = (0..OWNERS).collect();
    let mut busy = Vec::new();
    for (i, reply) in all.iter().zip(submit_all(&all)) {
        match reply.into_result() {
            Ok(c) => assert_eq!(c.owner, owner(*i)),
            Err(CreateUserCanisterError::Busy { in_progress }) => {
                assert_eq!(in_progress, CAP);
                busy.push(*i);
            }
            Err(e) => panic!("owner {i}: {e:?}"),
        }
    }
    assert_eq!(busy.len() as u32, OWNERS - CAP);
    assert_eq!(fleet.user_canister_count(), u64::from(CAP));
    for i in &busy {
        let mine = fleet.ask::<MyUserCanister>(owner(*i), ());
        assert_eq!(mine, None, "a refused owner has no canister");
    }
    for (i, reply) in busy.iter().zip(submit_all(&busy)) {
        let created = reply.into_result().expect("the retry is taken");
        assert_eq!(created.owner, owner(*i));
        assert_eq!(created.status, CanisterStatus::Active);
    }
    assert_eq!(fleet.user_canister_count(), u64::from(OWNERS));
}
