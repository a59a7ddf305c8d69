//! `fleet recovery` end to end on ic_sim with the real user canister: upgrade and rollback
//! through the recovery phrase, with and without the manager, and refusals that change
//! nothing. Every assertion reads the simulated IC from the outside (module hash, controllers,
//! version, notes).

mod common;

use candid::Principal;
use common::*;

/// A canister of `owner` with three notes, controlled by [manager, principal of PHRASE].
struct Setup {
    world: World,
    canister: Principal,
    manager: Principal,
    recovery: Principal,
    owner: Principal,
    phrase_file: String,
    v1_hash: [u8; 32],
    notes: Vec<(String, String)>,
}

fn setup() -> Setup {
    let world = World::new();
    let manager = user(1);
    let owner = user(2);
    let recovery = principal_of(PHRASE);
    let canister = world.user_canister(manager, recovery, owner, manager);
    for (k, t) in [("a", "first"), ("b", "second"), ("c", "third")] {
        world.put_note(canister, owner, k, t);
    }
    let notes = world.notes(canister, owner);
    assert_eq!(notes.len(), 3);
    let phrase_file = world.dir.file("phrase.txt", PHRASE.as_bytes());
    Setup {
        v1_hash: sha256(&user_wasm(&[])),
        world,
        canister,
        manager,
        recovery,
        owner,
        phrase_file,
        notes,
    }
}

impl Setup {
    fn id(&self) -> String {
        self.canister.to_text()
    }

    /// The canister still runs v1 with its notes, controllers unchanged, no snapshot taken.
    fn assert_unchanged(&self) {
        let w = &self.world;
        assert_eq!(w.module_hash(self.canister), Some(self.v1_hash));
        assert_eq!(w.version(self.canister), "1.0.0");
        assert_eq!(w.notes(self.canister, self.owner), self.notes);
        assert_eq!(
            w.sim.get_controllers(self.canister).len(),
            2,
            "controllers kept"
        );
        assert_eq!(w.snapshot_count(self.canister, self.recovery), 0);
    }
}

#[test]
fn upgrade_by_phrase_installs_v2_keeps_notes_and_rollback_restores_v1() {
    let s = setup();
    let v2 = user_wasm(&["v2"]);
    let wasm = s.world.dir.file("v2.wasm", &v2);
    let out = s
        .world
        .fleet(&[
            "--json",
            "recovery",
            "upgrade",
            "--canister",
            &s.id(),
            "--phrase-file",
            &s.phrase_file,
            "--wasm",
            &wasm,
            "--sha256",
            &hex::encode(sha256(&v2)),
            "--version",
            "2.0.0",
        ])
        .unwrap();
    assert_eq!(out.json["outcome"], "upgraded");
    assert_eq!(s.world.module_hash(s.canister), Some(sha256(&v2)));
    assert_eq!(s.world.version(s.canister), "2.0.0");
    assert_eq!(
        s.world.notes(s.canister, s.owner),
        s.notes,
        "notes migrated"
    );
    let mut controllers = s.world.sim.get_controllers(s.canister);
    controllers.sort();
    let mut expected = vec![s.manager, s.recovery];
    expected.sort();
    assert_eq!(controllers, expected);

    // The same module again is a no-op.
    let again = s
        .world
        .fleet(&[
            "--json",
            "recovery",
            "upgrade",
            "--canister",
            &s.id(),
            "--phrase-file",
            &s.phrase_file,
            "--wasm",
            &wasm,
        ])
        .unwrap();
    assert_eq!(again.json["outcome"], "already_installed");

    // A note written under v2 is gone after the rollback: the snapshot is the state before.
    s.world.put_note(s.canister, s.owner, "d", "written on v2");
    let out = s
        .world
        .fleet(&[
            "--json",
            "recovery",
            "rollback",
            "--canister",
            &s.id(),
            "--phrase-file",
            &s.phrase_file,
        ])
        .unwrap();
    assert_eq!(out.json["version"], "1.0.0");
    assert_eq!(s.world.module_hash(s.canister), Some(s.v1_hash));
    assert_eq!(s.world.version(s.canister), "1.0.0");
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);

    let status = s
        .world
        .fleet(&[
            "--json",
            "recovery",
            "status",
            "--canister",
            &s.id(),
            "--phrase-file",
            &s.phrase_file,
        ])
        .unwrap();
    assert_eq!(status.json["status"], "running");
    assert_eq!(status.json["caller_is_controller"], true);
    assert_eq!(
        status.json["module_hash"],
        serde_json::json!(hex::encode(s.v1_hash))
    );
    assert_eq!(status.json["snapshots"].as_array().unwrap().len(), 1);
}

#[test]
fn gzipped_module_is_installed_and_reported_by_the_hash_of_the_file() {
    use std::io::Write;
    let s = setup();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&user_wasm(&["v2"])).unwrap();
    let gz = gz.finish().unwrap();
    let wasm = s.world.dir.file("v2.wasm.gz", &gz);
    s.world
        .fleet(&[
            "recovery",
            "upgrade",
            "--canister",
            &s.id(),
            "--phrase-file",
            &s.phrase_file,
            "--wasm",
            &wasm,
        ])
        .unwrap();
    assert_eq!(s.world.module_hash(s.canister), Some(sha256(&gz)));
    assert_eq!(s.world.version(s.canister), "2.0.0");
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
}

#[test]
fn failed_health_check_is_rolled_back_to_v1_by_the_snapshot() {
    let s = setup();
    let faulty = s
        .world
        .dir
        .file("faulty.wasm", &user_wasm(&["v2", "fault_health"]));
    let (code, err) = s.world.fleet_err(&[
        "recovery",
        "upgrade",
        "--canister",
        &s.id(),
        "--phrase-file",
        &s.phrase_file,
        "--wasm",
        &faulty,
    ]);
    assert_eq!(code, 6, "{err}");
    assert_eq!(err.kind(), "rolled_back");
    assert!(err.to_string().contains("fault_health"), "{err}");
    assert_eq!(s.world.module_hash(s.canister), Some(s.v1_hash));
    assert_eq!(s.world.version(s.canister), "1.0.0");
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
    let st = s
        .world
        .sim
        .canister_status(s.canister, Some(s.recovery))
        .unwrap();
    assert_eq!(
        st.status,
        ic_sim::management_canister::CanisterStatusType::Running
    );
}

#[test]
fn a_canister_whose_manager_was_deleted_is_upgraded_and_rolled_back_by_its_phrase() {
    let world = World::new();
    let owner = user(2);
    let recovery = principal_of(PHRASE);
    // The manager is a real canister, deleted afterwards: it stays a controller that no one
    // can act as.
    let operator = user(9);
    let manager = world
        .sim
        .create_canister_with_settings(Some(operator), None);
    let canister = world.user_canister(manager, recovery, owner, recovery);
    world.put_note(canister, owner, "k", "kept");
    world.sim.stop_canister(manager, Some(operator)).unwrap();
    world.sim.delete_canister(manager, Some(operator)).unwrap();
    assert!(!world.sim.canister_exists(manager));

    let phrase = world.dir.file("phrase", PHRASE.as_bytes());
    let v2 = user_wasm(&["v2"]);
    let wasm = world.dir.file("v2.wasm", &v2);
    let id = canister.to_text();
    world
        .fleet(&[
            "recovery",
            "upgrade",
            "--canister",
            &id,
            "--phrase-file",
            &phrase,
            "--wasm",
            &wasm,
            "--version",
            "2.0.0",
        ])
        .unwrap();
    assert_eq!(world.module_hash(canister), Some(sha256(&v2)));
    assert_eq!(world.version(canister), "2.0.0");
    assert_eq!(
        world.notes(canister, owner),
        vec![("k".into(), "kept".into())]
    );

    world
        .fleet(&[
            "recovery",
            "rollback",
            "--canister",
            &id,
            "--phrase-file",
            &phrase,
        ])
        .unwrap();
    assert_eq!(world.module_hash(canister), Some(sha256(&user_wasm(&[]))));
    assert_eq!(world.version(canister), "1.0.0");
    assert_eq!(
        world.notes(canister, owner),
        vec![("k".into(), "kept".into())]
    );
}

#[test]
fn detached_canister_is_controlled_by_the_phrase_alone_and_still_upgrades() {
    let s = setup();
    let id = s.id();
    let manager = s.manager.to_text();
    let detach = [
        "recovery",
        "detach",
        "--canister",
        &id,
        "--phrase-file",
        &s.phrase_file,
        "--manager",
        &manager,
    ];
    // Without --yes the question is asked; answered "no", nothing changes.
    let (code, err) = s.world.fleet_err(&detach);
    assert_eq!(code, 8, "{err}");
    s.assert_unchanged();

    let mut confirmed = detach.to_vec();
    confirmed.push("--yes");
    s.world.fleet(&confirmed).unwrap();
    assert_eq!(s.world.sim.get_controllers(s.canister), vec![s.recovery]);
    // The former manager can no longer touch it.
    assert!(s
        .world
        .sim
        .stop_canister(s.canister, Some(s.manager))
        .is_err());

    let v2 = user_wasm(&["v2"]);
    let wasm = s.world.dir.file("v2.wasm", &v2);
    s.world
        .fleet(&[
            "recovery",
            "upgrade",
            "--canister",
            &id,
            "--phrase-file",
            &s.phrase_file,
            "--wasm",
            &wasm,
        ])
        .unwrap();
    assert_eq!(s.world.module_hash(s.canister), Some(sha256(&v2)));
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
    s.world
        .fleet(&[
            "recovery",
            "rollback",
            "--canister",
            &id,
            "--phrase-file",
            &s.phrase_file,
        ])
        .unwrap();
    assert_eq!(s.world.module_hash(s.canister), Some(s.v1_hash));
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
    assert_eq!(s.world.sim.get_controllers(s.canister), vec![s.recovery]);
}

#[test]
fn bad_input_is_refused_with_a_clear_error_and_changes_nothing() {
    let s = setup();
    let id = s.id();
    let v2 = user_wasm(&["v2"]);
    let wasm = s.world.dir.file("v2.wasm", &v2);
    let bad_phrase = s
        .world
        .dir
        .file("bad-phrase", BAD_CHECKSUM_PHRASE.as_bytes());
    let stranger = s
        .world
        .dir
        .file("stranger-phrase", STRANGER_PHRASE.as_bytes());
    let not_wasm = s
        .world
        .dir
        .file("notes.txt", b"this is not a wasm module\n");
    let wrong_hash = hex::encode([0u8; 32]);

    let cases: Vec<(Vec<&str>, i32, &str, &str)> = vec![
        (
            vec!["--phrase-file", &bad_phrase, "--wasm", &wasm],
            2,
            "phrase",
            "checksum",
        ),
        (
            vec!["--phrase-file", &s.phrase_file, "--wasm", &not_wasm],
            2,
            "wasm",
            "not a wasm module",
        ),
        (
            vec![
                "--phrase-file",
                &s.phrase_file,
                "--wasm",
                &wasm,
                "--sha256",
                &wrong_hash,
            ],
            2,
            "wasm",
            "sha256",
        ),
        (
            vec!["--phrase-file", &stranger, "--wasm", &wasm],
            3,
            "not_controller",
            "not a controller",
        ),
    ];
    for (extra, code, kind, message) in cases {
        let mut args = vec!["recovery", "upgrade", "--canister", &id];
        args.extend(extra.iter().copied());
        let (got, err) = s.world.fleet_err(&args);
        assert_eq!((got, err.kind()), (code, kind), "{args:?}: {err}");
        assert!(err.to_string().contains(message), "{args:?}: {err}");
        s.assert_unchanged();
    }

    // Rolling back a canister that never had a snapshot, and as a stranger.
    let (code, err) = s.world.fleet_err(&[
        "recovery",
        "rollback",
        "--canister",
        &id,
        "--phrase-file",
        &s.phrase_file,
    ]);
    assert_eq!(code, 9, "{err}");
    let (code, err) = s.world.fleet_err(&[
        "recovery",
        "rollback",
        "--canister",
        &id,
        "--phrase-file",
        &stranger,
    ]);
    assert_eq!(code, 3, "{err}");
    s.assert_unchanged();
}
