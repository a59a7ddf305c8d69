//! A manager deployed with the previous stable layout is upgraded to this one and carries on:
//! the module built from an earlier release of this repository (stable layout version 2,
//! `tests/fixtures/`) runs a fleet through a rollout with snapshots, then the manager is
//! upgraded in place to the current build (layout version 4, whose `post_upgrade` migrates the
//! registry's counts out of a B-tree, reads the fleet snapshots from their old map, and counts
//! the releases already deployed as used by the release policy).
//! Everything is asserted from outside: queries, module hashes, the user canisters' data.

use candid::{encode_args, encode_one, Principal};
use fleet_api::manager::{method as m, CanisterFilter, ListUserCanistersArg, ManagerInitArg};
use fleet_api::manager::{RateLimit, UserCanister};
use fleet_api::rollout::{method as r, Phase, RollbackArg};
use fleet_tests::rollout::*;
use fleet_tests::{sha256, user, user_wasm, Fleet, MANAGER_CYCLES};
use ic_sim::IcSim;
use std::io::Read;

/// The manager at the last commit with stable layout version 2, gzip-compressed; how it was
/// built is in `tests/fixtures/README.md`.
const LAYOUT_2_MANAGER: &[u8] = include_bytes!("../fixtures/fleet_manager-layout2.wasm.gz");

/// A fleet whose manager runs the layout 2 module.
fn layout_2_fleet(users: u32) -> Fleet {
    let sim = IcSim::new();
    let controller = user(200);
    let manager = sim.create_canister_with_settings(Some(controller), None);
    sim.add_cycles(manager, MANAGER_CYCLES + users as u128 * 2 * USER_CYCLES);
    let mut wasm = Vec::new();
    flate2::read::GzDecoder::new(LAYOUT_2_MANAGER)
        .read_to_end(&mut wasm)
        .expect("the fixture is gzip");
    let arg = Some(ManagerInitArg {
        creation_limit: Some(RateLimit {
            capacity: 100,
            refill_period_secs: 1,
        }),
        user_canister_cycles: Some(USER_CYCLES),
        ..Default::default()
    });
    sim.install_canister(manager, wasm, encode_one(arg).unwrap(), Some(controller));
    Fleet {
        sim,
        manager,
        controller,
    }
}

fn all_canisters(fleet: &Fleet) -> Vec<UserCanister> {
    let page = fleet.ask::<m::ListUserCanisters>(
        fleet.controller,
        (ListUserCanistersArg {
            filter: CanisterFilter::All,
            start_after: None,
            limit: Some(100),
        },),
    );
    page.into_result().expect("list_user_canisters").canisters
}

#[test]
fn a_layout_2_manager_upgrades_in_place_and_keeps_its_fleet_counts_and_snapshots() {
    const USERS: u32 = 4;
    const NOTES: u32 = 2;
    let fleet = layout_2_fleet(USERS);
    let (v1, v2) = (user_wasm(false), user_wasm(true));
    fleet.publish_default("1.0.0", &v1);
    fleet.publish(fleet.controller, "2.0.0", &v2);
    let canisters = fleet.provision_with_notes(USERS, NOTES);
    fleet
        .start_rollout(one_wave_plan("2.0.0", 2))
        .expect("start_rollout");
    fleet.run_to_rest(2_000);
    assert_eq!(fleet.rollout_status().phase, Phase::Completed);

    let records_before = all_canisters(&fleet);
    let metrics_before = fleet.metrics();
    let status_before = fleet.rollout_status();
    assert_eq!(records_before.len(), USERS as usize);
    assert!(metrics_before
        .by_release
        .iter()
        .any(|c| c.version.as_deref() == Some("2.0.0") && c.canisters == u64::from(USERS)));

    // The upgrade to this build: layout 2 is migrated in post_upgrade.
    let current = wasm_build::wasm("fleet_manager", &[]);
    fleet
        .sim
        .upgrade_canister(
            fleet.manager,
            current.clone(),
            encode_args(()).unwrap(),
            Some(fleet.controller),
        )
        .expect("upgrading the manager from layout 2");
    assert_eq!(
        fleet.sim.module_hash(fleet.manager).unwrap().to_vec(),
        sha256(&current)
    );

    // Registry, counts and the finished rollout read as before.
    assert_eq!(all_canisters(&fleet), records_before);
    // The releases the fleet ran before the release policy existed count as used: neither
    // is pending, so going back to either needs no approval.
    let pending = fleet.ask::<fleet_api::governance::method::PendingReleases>(fleet.controller, ());
    assert_eq!(
        pending,
        vec![],
        "releases deployed under layout 2 are not pending"
    );
    let metrics = fleet.metrics();
    assert_eq!(metrics.by_release, metrics_before.by_release);
    assert_eq!(metrics.by_status, metrics_before.by_status);
    assert_eq!(metrics.user_canisters, metrics_before.user_canisters);
    let status = fleet.rollout_status();
    assert_eq!(
        (status.id, status.phase),
        (status_before.id, Phase::Completed)
    );
    assert_eq!(status.counts, status_before.counts);

    // The fleet snapshots taken under layout 2 still restore every canister to 1.0.0.
    let restore: Vec<Principal> = canisters.iter().map(|c| c.1).collect();
    let started = fleet.ask::<r::Rollback>(
        fleet.controller,
        (RollbackArg::RestoreSnapshots {
            canisters: restore.clone(),
            limits: None,
        },),
    );
    assert_eq!(
        started.into_result().expect("rollback").canisters,
        u64::from(USERS)
    );
    fleet.run_to_rest(2_000);
    let st = fleet.rollout_status();
    assert_eq!(st.phase, Phase::Completed);
    assert_eq!(st.counts.restored, u64::from(USERS));
    for (n, id) in &canisters {
        assert_eq!(fleet.sim.module_hash(*id).unwrap().to_vec(), sha256(&v1));
        fleet.assert_notes(*n, *id, NOTES);
    }
    let metrics = fleet.metrics();
    assert!(metrics
        .by_release
        .iter()
        .any(|c| c.version.as_deref() == Some("1.0.0") && c.canisters == u64::from(USERS)));
    assert!(!metrics
        .by_release
        .iter()
        .any(|c| c.version.as_deref() == Some("2.0.0") && c.canisters > 0));

    // And a new rollout runs on the new layout.
    fleet
        .start_rollout(one_wave_plan("2.0.0", 2))
        .expect("start_rollout after the upgrade");
    fleet.run_to_rest(2_000);
    assert_eq!(fleet.rollout_status().counts.done, u64::from(USERS));
    for (n, id) in &canisters {
        assert_eq!(fleet.sim.module_hash(*id).unwrap().to_vec(), sha256(&v2));
        fleet.assert_notes(*n, *id, NOTES);
    }
}
