//! Live module instances: consecutive messages to a canister reuse its instance, and every
//! operation that replaces the heap (snapshot load, reinstall, upgrade, uninstall) or a trap
//! leaves no trace of the instance's old state (interface spec, "Abstract behavior": an
//! execution that traps changes nothing; "IC method load_canister_snapshot"; "IC method
//! install_code").

use candid::{encode_one, Principal};
use ic_sim::management_canister::CanisterInstallMode;
use ic_sim::{query_candid, update_candid, IcSim, IcSimBuilder};

fn probe() -> Vec<u8> {
    wasm_build::wasm("sim_probe", &[])
}

fn installed(pic: &IcSim, start: u64) -> Principal {
    let id = pic.create_canister();
    pic.install_canister(id, probe(), encode_one(Some(start)).unwrap(), None);
    id
}

fn get(pic: &IcSim, id: Principal) -> u64 {
    query_candid::<_, (u64,)>(pic, id, "get", ()).unwrap().0
}

fn inc(pic: &IcSim, id: Principal) -> u64 {
    update_candid::<_, (u64,)>(pic, id, "inc", ()).unwrap().0
}

#[test]
fn consecutive_messages_reuse_the_live_instance() {
    let pic = IcSimBuilder::new().with_logs(false).build();
    let id = installed(&pic, 0);
    let (_, misses_before) = pic.instance_cache_stats();
    for n in 1..=20 {
        assert_eq!(inc(&pic, id), n);
    }
    assert_eq!(get(&pic, id), 20);
    let (hits, misses) = pic.instance_cache_stats();
    assert_eq!(
        misses, misses_before,
        "no message after the install instantiated the module"
    );
    assert!(hits >= 21, "{hits} hits");
    assert_eq!(pic.live_instances(), 1);
}

#[test]
fn the_cache_is_bounded_and_evicted_canisters_keep_their_state() {
    let pic = IcSimBuilder::new()
        .with_logs(false)
        .with_instance_cache(2, usize::MAX)
        .build();
    let ids: Vec<Principal> = (0..5).map(|i| installed(&pic, i * 100)).collect();
    for round in 1..=3 {
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(inc(&pic, *id), i as u64 * 100 + round);
        }
    }
    assert_eq!(pic.live_instances(), 2);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(get(&pic, *id), i as u64 * 100 + 3);
    }
}

#[test]
fn queries_and_traps_on_a_live_instance_leave_the_heap_as_committed() {
    let pic = IcSimBuilder::new().with_logs(false).build();
    let id = installed(&pic, 5);
    assert_eq!(inc(&pic, id), 6);
    // The query increments the counter in the live instance's memory; it must not persist.
    let (n,): (u64,) = query_candid(&pic, id, "inc_in_query", ()).unwrap();
    assert_eq!(n, 7);
    assert_eq!(get(&pic, id), 6);
    // A trapping update increments by 1000 before trapping.
    update_candid::<_, ()>(&pic, id, "write_then_trap", (vec![1u8; 8],)).unwrap_err();
    assert_eq!(get(&pic, id), 6);
    assert_eq!(inc(&pic, id), 7);
}

#[test]
fn heap_replacements_invalidate_the_live_instance() {
    let pic = IcSimBuilder::new().with_logs(false).build();
    let id = installed(&pic, 10);
    assert_eq!(inc(&pic, id), 11);
    pic.stop_canister(id, None).unwrap();
    let snap = pic.take_canister_snapshot(id, None, None).unwrap();
    pic.start_canister(id, None).unwrap();
    assert_eq!(inc(&pic, id), 12);
    assert_eq!(inc(&pic, id), 13);

    pic.stop_canister(id, None).unwrap();
    pic.load_canister_snapshot(id, None, snap.id).unwrap();
    pic.start_canister(id, None).unwrap();
    assert_eq!(
        get(&pic, id),
        11,
        "the snapshot's heap, not the live instance's"
    );
    assert_eq!(inc(&pic, id), 12);

    pic.reinstall_canister(id, probe(), encode_one(Some(0u64)).unwrap(), None)
        .unwrap();
    assert_eq!(get(&pic, id), 0, "reinstall starts from the init argument");
    assert_eq!(inc(&pic, id), 1);

    // Upgrade: the counter goes through stable memory, the heap starts afresh.
    pic.upgrade_canister(id, probe(), encode_one(()).unwrap(), None)
        .unwrap();
    assert_eq!(get(&pic, id), 1);

    pic.uninstall_canister(id, None).unwrap();
    assert_eq!(pic.live_instances(), 0);
    pic.install_code(
        id,
        CanisterInstallMode::Install,
        probe(),
        encode_one(Some(40u64)).unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(inc(&pic, id), 41);
}

#[test]
fn a_busy_canister_stays_live_through_a_sweep_over_more_canisters_than_the_cache_holds() {
    let pic = IcSimBuilder::new()
        .with_logs(false)
        .with_instance_cache(4, usize::MAX)
        .build();
    let hot = installed(&pic, 0);
    let others: Vec<Principal> = (0..12).map(|i| installed(&pic, 1000 * (i + 1))).collect();
    let mut expected_hot = 0;
    for sweep in 1..=4 {
        for (i, id) in others.iter().enumerate() {
            assert_eq!(inc(&pic, *id), 1000 * (i as u64 + 1) + sweep);
            if i % 5 == 4 {
                let (_, misses_before) = pic.instance_cache_stats();
                expected_hot += 1;
                assert_eq!(inc(&pic, hot), expected_hot);
                let (_, misses) = pic.instance_cache_stats();
                if sweep > 1 {
                    assert_eq!(
                        misses, misses_before,
                        "sweep {sweep}: the busy canister missed"
                    );
                }
            }
        }
    }
    assert!(pic.live_instances() <= 4);
    for (i, id) in others.iter().enumerate() {
        assert_eq!(get(&pic, *id), 1000 * (i as u64 + 1) + 4);
    }
    assert_eq!(get(&pic, hot), expected_hot);
}

fn ballast_sum(pic: &IcSim, id: Principal) -> (u64, u64) {
    query_candid::<_, (u64, u64)>(pic, id, "ballast_sum", ()).unwrap()
}

fn expected_ballast(kib: u64) -> (u64, u64) {
    let len = kib * 1024;
    (len, (0..len).map(|i| i % 251 + 1).sum())
}

#[test]
fn reused_instances_show_nothing_of_their_previous_canister() {
    // One live instance: nearly every message runs on an instance another canister used last.
    let pic = IcSimBuilder::new()
        .with_logs(false)
        .with_instance_cache(1, usize::MAX)
        .build();
    let small = installed(&pic, 100);
    let big = installed(&pic, 200);
    let other = installed(&pic, 300);
    update_candid::<_, (u64,)>(&pic, big, "ballast", (256u64,)).unwrap();
    for round in 1..=3u64 {
        assert_eq!(inc(&pic, small), 100 + round);
        assert_eq!(inc(&pic, big), 200 + round);
        assert_eq!(inc(&pic, other), 300 + round);
        // A query's writes on a reused instance do not persist either.
        let (n,): (u64,) = query_candid(&pic, other, "inc_in_query", ()).unwrap();
        assert_eq!(n, 300 + round + 1);
        let small_ballast = if round > 2 {
            expected_ballast(512)
        } else {
            (0, 0)
        };
        assert_eq!(ballast_sum(&pic, small), small_ballast);
        assert_eq!(ballast_sum(&pic, big), expected_ballast(256));
        assert_eq!(ballast_sum(&pic, other), (0, 0));
        if round == 2 {
            // `small` grows past `big`'s size: later runs of either reuse the other's instance
            // only where the memory sizes allow it.
            update_candid::<_, (u64,)>(&pic, small, "ballast", (512u64,)).unwrap();
        }
    }
    assert_eq!(ballast_sum(&pic, small), expected_ballast(512));
    assert_eq!(get(&pic, small), 103);
    assert_eq!(get(&pic, big), 203);
    assert_eq!(get(&pic, other), 303);
}

/// Digests of the whole memory of `b` between messages to `a` and `c` (see
/// [`a_reused_instance_holds_exactly_the_canisters_memory`]).
fn digests_of_b(live: usize) -> Vec<u64> {
    let pic = IcSimBuilder::new()
        .with_logs(false)
        .with_instance_cache(live, usize::MAX)
        .build();
    let a = installed(&pic, 1);
    let b = installed(&pic, 2);
    let c = installed(&pic, 3);
    // `c` is busy and holds the one live place; `a` and `b` run on spare instances.
    for _ in 0..10 {
        inc(&pic, c);
    }
    // `a` writes pages that are the module's image in `b`.
    update_candid::<_, (u64,)>(&pic, a, "ballast", (8u64,)).unwrap();
    let digest = |id| {
        query_candid::<_, (u64,)>(&pic, id, "memory_digest", ())
            .unwrap()
            .0
    };
    let mut digests = vec![digest(b)];
    for _ in 0..3 {
        inc(&pic, a);
        digests.push(digest(b));
        inc(&pic, c);
        inc(&pic, b);
        digests.push(digest(b));
    }
    assert_eq!(get(&pic, a), 4);
    assert_eq!(get(&pic, b), 5);
    assert_eq!(get(&pic, c), 16);
    digests
}

#[test]
fn a_reused_instance_holds_exactly_the_canisters_memory() {
    // Without live instances every message instantiates the module afresh: the reference.
    assert_eq!(digests_of_b(1), digests_of_b(0));
}
