//! User-initiated upgrades: the user canister asks the manager itself (its owner calls the
//! canister's `request_upgrade`), or the owner asks the manager directly. The manager answers
//! at once with a ticket and runs the pipeline from its timer; refused requests change nothing.

use candid::Principal;
use fleet_api::manager::method::{GetUserCanister, SetUpgradePolicy};
use fleet_api::manager::*;
use fleet_api::rollout::method::{GetRolloutStatus, RequestUpgrade, Rollback};
use fleet_api::rollout::*;
use fleet_api::user::{method as app, RequestUpgradeViaManagerError, UpgradeTicket};
use fleet_tests::rollout::*;
use fleet_tests::{call_on, padded, refused_at_ingress, sha256, user_wasm, Fleet};

type Requested = Result<UpgradeTicket, RequestUpgradeError>;

fn request(fleet: &Fleet, caller: Principal, id: Option<Principal>, v: Option<&str>) -> Requested {
    let arg = RequestUpgradeArg {
        canister_id: id,
        target_version: v.map(str::to_string),
    };
    fleet.ask::<RequestUpgrade>(caller, (arg,)).into_result()
}

/// The owner `caller` makes user canister `id` ask the manager for an upgrade itself.
fn request_via_canister(
    fleet: &Fleet,
    id: Principal,
    caller: Principal,
    v: Option<&str>,
) -> Result<UpgradeTicket, RequestUpgradeViaManagerError> {
    let version = v.map(str::to_string);
    call_on::<app::RequestUpgrade>(&fleet.sim, id, caller, (version,)).into_result()
}

fn release_of(fleet: &Fleet, id: Principal) -> String {
    let r = fleet.ask::<GetUserCanister>(fleet.controller, (id,));
    r.into_result().unwrap().current_release.unwrap().version
}

#[test]
fn owners_and_user_canisters_request_upgrades_that_run_from_the_timer() {
    let fleet = fleet_for(6);
    let v1 = user_wasm(false);
    fleet.publish_default("1.0.0", &v1);
    let ids: Vec<Principal> = fleet
        .provision(0, 6)
        .into_iter()
        .map(|c| c.canister_id)
        .collect();
    let canisters: Vec<(u32, Principal)> = ids
        .iter()
        .copied()
        .enumerate()
        .map(|(i, c)| (i as u32, c))
        .collect();
    fleet.write_notes(&canisters, 2);
    let v2 = user_wasm(true);
    fleet.publish(fleet.controller, "2.0.0", &v2);

    // Refusals change nothing.
    let arg = RequestUpgradeArg {
        canister_id: Some(ids[0]),
        target_version: Some("2.0.0".into()),
    };
    fleet.refused_at_ingress::<RequestUpgrade>(Principal::anonymous(), (arg,));
    assert_eq!(
        request(&fleet, owner(1), Some(ids[0]), Some("2.0.0")),
        Err(RequestUpgradeError::NotAuthorized)
    );
    assert_eq!(
        request(&fleet, owner(0), None, Some("9.9.9")),
        Err(RequestUpgradeError::UnknownRelease {
            version: "9.9.9".into()
        })
    );
    assert_eq!(
        request(&fleet, owner(0), None, None),
        Err(RequestUpgradeError::AlreadyOnTarget {
            version: "1.0.0".into()
        })
    );
    assert_eq!(
        request(&fleet, owner(99), None, Some("2.0.0")),
        Err(RequestUpgradeError::UnknownCanister)
    );
    let pin = SetUpgradePolicyArg {
        canister_id: ids[3],
        policy: UpgradePolicy::Pinned("1.0.0".into()),
    };
    let pinned = fleet.ask::<SetUpgradePolicy>(owner(3), (pin,));
    pinned.into_result().unwrap();
    assert_eq!(
        request(&fleet, owner(3), Some(ids[3]), Some("2.0.0")),
        Err(RequestUpgradeError::Pinned {
            version: "1.0.0".into()
        })
    );
    let nothing = fleet.ask::<GetRolloutStatus>(fleet.controller, ());
    assert_eq!(
        nothing.into_result(),
        Ok(None),
        "refused requests start nothing"
    );

    // The user canister asks for itself: its owner calls the canister, which calls the
    // manager and gets the ticket back in the same call.
    let ticket = request_via_canister(&fleet, ids[0], owner(0), Some("2.0.0"))
        .expect("the manager issued a ticket");
    assert_eq!(ticket.canister_id, ids[0]);
    assert_eq!(ticket.target_version, "2.0.0");
    // Only its owner may make the canister ask: another caller's message is dropped before
    // the canister pays for it.
    refused_at_ingress::<app::RequestUpgrade>(&fleet.sim, ids[0], owner(1), (None,));

    // An owner asks the manager directly; the request joins the running rollout.
    let second = request(&fleet, owner(2), Some(ids[2]), None).expect("owner request");
    assert_eq!(second.target_version, "2.0.0");
    assert!(second.ticket > ticket.ticket);
    // A request for another release waits for this rollout to end.
    fleet.publish(fleet.controller, "2.0.0+b", &padded(&v2, 16));
    let other = request(&fleet, owner(4), None, Some("2.0.0+b"));
    assert!(
        matches!(other, Err(RequestUpgradeError::OtherRolloutActive { ref target_version, .. }) if target_version == "2.0.0"),
        "{other:?}"
    );

    fleet.run_to_rest(500);
    let st = fleet.rollout_status();
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.counts.done, 2);
    for n in [0usize, 2] {
        assert_eq!(fleet.sim.module_hash(ids[n]).unwrap().to_vec(), sha256(&v2));
        assert!(fleet.is_running(ids[n]));
        fleet.assert_notes(n as u32, ids[n], 2);
        assert_eq!(release_of(&fleet, ids[n]), "2.0.0");
        let mut expected = vec![fleet.manager, recovery(n as u32)];
        expected.sort();
        assert_eq!(fleet.controllers_sorted(ids[n]), expected);
    }
    for n in [1usize, 3, 4, 5] {
        assert_eq!(fleet.sim.module_hash(ids[n]).unwrap().to_vec(), sha256(&v1));
        assert_eq!(release_of(&fleet, ids[n]), "1.0.0");
    }
    let results = fleet.rollout_results();
    assert!(results.iter().all(|r| r.ticket.is_some()));
    let m = fleet.metrics();
    assert_eq!(m.counters.upgrade_requests, 2);
    assert_eq!(m.counters.upgraded, 2);

    // A rollout to 2.0.0+b, then a rollback to the release before it: a rollout from the
    // last target back to 2.0.0 over exactly the canisters that run the last target.
    let mut plan = RolloutPlanArg::to("2.0.0+b");
    plan.include = Some(vec![ids[0], ids[2]]);
    plan.canary = Some(Canary::None);
    plan.waves_percent = Some(vec![100]);
    fleet.start_rollout(plan).expect("rollout to 2.0.0+b");
    fleet.run_to_rest(500);
    assert_eq!(fleet.rollout_status().counts.done, 2);
    let v2b = sha256(&padded(&v2, 16));
    assert_eq!(fleet.sim.module_hash(ids[0]).unwrap().to_vec(), v2b);
    let rollback = |sender: Principal| {
        let arg = RollbackArg::ToRelease {
            to_version: "2.0.0".into(),
            limits: None,
        };
        fleet.ask::<Rollback>(sender, (arg,)).into_result()
    };
    let arg = RollbackArg::ToRelease {
        to_version: "2.0.0".into(),
        limits: None,
    };
    fleet.refused_at_ingress::<Rollback>(owner(0), (arg,));
    let back = rollback(fleet.controller).expect("rollback");
    assert_eq!(back.canisters, 2);
    assert_eq!(back.summary.selected, 2);
    assert_eq!(back.summary.offered, 6);
    fleet.run_to_rest(500);
    assert_eq!(fleet.rollout_status().counts.done, 2);
    for n in [0usize, 2] {
        assert_eq!(fleet.sim.module_hash(ids[n]).unwrap().to_vec(), sha256(&v2));
        fleet.assert_notes(n as u32, ids[n], 2);
        assert_eq!(release_of(&fleet, ids[n]), "2.0.0");
    }
}
