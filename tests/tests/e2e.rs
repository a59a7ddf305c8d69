//! The end-to-end scenarios that need nothing only the simulator has, written once against
//! `fleet_tests::backend::Backend`: they run on ic_sim by default and on a PocketIC server with
//! `FLEET_TEST_BACKEND=pocket-ic POCKET_IC_BIN=<server>`. Provisioning, publishing, a staged
//! rollout to completion, an owner's upgrade request, and the recovery principal upgrading its
//! canister without the manager; everything asserted from outside (controllers, module hashes,
//! canister status, snapshots, user data).
//!
//! Scenarios that inject faults, count rounds or meter instructions (`chaos`, `manager_faults`,
//! `rollout_failures`, `manager_cost`, …) use ic_sim's own API and run on ic_sim only.

use candid::{encode_one, Principal};
use fleet_api::manager::method::MyUserCanister;
use fleet_api::rollout::method::{RequestUpgrade, StartRollout};
use fleet_api::rollout::{Canary, Limits, Phase, RequestUpgradeArg, RolloutPlanArg};
use fleet_api::user::method::{Get, Info, Put, Version};
use fleet_api::user::{PutNoteArg, UserCanisterArg, UserUpgradeArg};
use fleet_tests::backend::{Mode, RunState};
use fleet_tests::e2e::{owner, recovery, Deployment};
use fleet_tests::{sha256, user, user_wasm};

fn note(n: u32, k: u32) -> PutNoteArg {
    PutNoteArg {
        key: format!("note-{k}"),
        text: format!("owner {n} wrote note {k}"),
    }
}

/// Owners `0..n` each write `notes` notes into their canister.
fn write_notes(d: &Deployment, canisters: &[Principal], notes: u32) {
    for (n, id) in canisters.iter().enumerate() {
        for k in 0..notes {
            let reply = d.call::<Put>(*id, owner(n as u32), (note(n as u32, k),));
            reply.expect("put").into_result().expect("put accepted");
        }
    }
}

/// Asserts that canister `id` of owner `n` runs `module` with its controllers and notes intact.
fn assert_on(d: &Deployment, n: u32, id: Principal, module: &[u8], notes: u32) {
    let status = d.ic.status(id, d.manager).expect("canister_status");
    assert_eq!(status.module_hash, Some(sha256(module)), "module of {id}");
    assert_eq!(status.state, RunState::Running, "{id} runs");
    let mut expected = vec![d.manager, recovery(n)];
    expected.sort();
    assert_eq!(d.controllers_sorted(id), expected, "controllers of {id}");
    for k in 0..notes {
        let got = d.call::<Get>(id, owner(n), (note(n, k).key,)).expect("get");
        let text = got.into_result().expect("get accepted").map(|n| n.text);
        assert_eq!(text, Some(note(n, k).text), "note {k} of {id}");
    }
}

fn ids(d: &Deployment, first: u32, n: u32) -> Vec<Principal> {
    d.provision(first, n)
        .into_iter()
        .map(|c| c.canister_id)
        .collect()
}

#[test]
fn provisioning_gives_each_owner_one_canister_that_the_owner_and_recovery_principal_hold() {
    let d = Deployment::for_fleet(3);
    let v1 = user_wasm(false);
    d.publish("1.0.0", &v1, true);
    let canisters = ids(&d, 0, 3);
    write_notes(&d, &canisters, 2);
    for (n, id) in canisters.iter().enumerate() {
        let n = n as u32;
        assert_on(&d, n, *id, &v1, 2);
        let info = d.call::<Info>(*id, owner(n), ()).expect("info");
        assert_eq!(info.owner, owner(n));
        assert_eq!(info.recovery_principal, recovery(n));
        let mine = d.ask::<MyUserCanister>(owner(n), ());
        assert_eq!(mine.map(|c| c.canister_id), Some(*id));
    }
    // Creating again returns the owner's canister: one per owner.
    assert_eq!(ids(&d, 1, 1), vec![canisters[1]]);
    // Only the owner writes: another caller's update is dropped at ingress (IC0406).
    let stranger = d.call::<Put>(canisters[0], user(7), (note(0, 9),));
    assert_eq!(stranger.map(|_| ()).unwrap_err().error_code, 406);
}

#[test]
fn a_staged_rollout_upgrades_every_canister_and_keeps_its_data_and_a_snapshot() {
    const N: u32 = 6;
    let d = Deployment::for_fleet(N);
    let v1 = user_wasm(false);
    let v2 = user_wasm(true);
    d.publish("1.0.0", &v1, true);
    let canisters = ids(&d, 0, N);
    write_notes(&d, &canisters, 2);
    let meta = d.publish("2.0.0", &v2, false);
    assert_eq!(meta.sha256, sha256(&v2));

    let mut plan = RolloutPlanArg::to("2.0.0");
    plan.canary = Some(Canary::Count(1));
    plan.waves_percent = Some(vec![50, 100]);
    plan.bake_secs = Some(0);
    plan.limits = Some(Limits {
        max_in_flight: 3,
        starts_per_minute: 600,
        burst: 3,
        max_starts_per_tick: 3,
        per_subnet: None,
    });
    d.ask::<StartRollout>(d.controller, (plan,))
        .into_result()
        .expect("start_rollout");
    d.run_to_rest(2_000);
    let status = d.rollout_status();
    assert_eq!(status.phase, Phase::Completed, "{status:?}");
    assert_eq!(status.counts.done, u64::from(N));
    assert_eq!(status.waves.len(), 3, "canary and two waves");
    for (n, id) in canisters.iter().enumerate() {
        assert_on(&d, n as u32, *id, &v2, 2);
        let version = d
            .call::<Version>(*id, owner(n as u32), ())
            .expect("version");
        assert!(version.starts_with('2'), "{id} reports {version}");
        // The snapshot taken before the upgrade is kept (7 days by default).
        assert_eq!(d.ic.snapshot_count(*id, d.manager), Ok(1), "{id}");
    }
}

#[test]
fn an_owner_request_upgrades_only_their_canister() {
    let d = Deployment::for_fleet(2);
    let v1 = user_wasm(false);
    let v2 = user_wasm(true);
    d.publish("1.0.0", &v1, true);
    let canisters = ids(&d, 0, 2);
    write_notes(&d, &canisters, 1);
    d.publish("2.0.0", &v2, false);

    let arg = RequestUpgradeArg {
        canister_id: None,
        target_version: Some("2.0.0".into()),
    };
    let ticket = d.ask::<RequestUpgrade>(owner(0), (arg,)).into_result();
    assert_eq!(ticket.expect("a ticket").canister_id, canisters[0]);
    d.run_to_rest(500);
    assert_eq!(d.rollout_status().phase, Phase::Completed);
    assert_on(&d, 0, canisters[0], &v2, 1);
    assert_on(&d, 1, canisters[1], &v1, 1);
}

#[test]
fn the_recovery_principal_upgrades_its_canister_without_the_manager() {
    let d = Deployment::for_fleet(1);
    let v1 = user_wasm(false);
    let v2 = user_wasm(true);
    d.publish("1.0.0", &v1, true);
    let id = ids(&d, 0, 1)[0];
    write_notes(&d, &[id], 2);
    let arg = encode_one(UserCanisterArg::Upgrade(UserUpgradeArg {
        release_sha256: sha256(&v2),
    }))
    .expect("encoding the upgrade argument");

    // Neither the owner nor a stranger controls the canister.
    for caller in [owner(0), user(7)] {
        let refused =
            d.ic.install_code(Mode::Upgrade, id, v2.clone(), arg.clone(), caller);
        assert!(refused.is_err(), "{caller} upgraded {id}");
    }
    // The recovery principal does, as the second controller.
    d.ic.install_code(Mode::Upgrade, id, v2.clone(), arg, recovery(0))
        .expect("the recovery principal upgrades");
    assert_on(&d, 0, id, &v2, 2);
}
