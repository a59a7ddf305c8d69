//! `fleet recovery` end to end on ic_sim with the real user canister: upgrade and rollback
//! through the recovery phrase, with and without the manager, the pipeline's failure paths
//! (calls rejected on the way by a wrapper around the simulator), and refusals that change
//! nothing. Every assertion reads the simulated IC from the outside (module hash, controllers,
//! running status, version, notes, snapshots, the chunk store).

mod common;

use std::cell::Cell;
use std::rc::Rc;

use candid::Principal;
use common::*;
use fleet_cli::backend::sim::SimIc;
use fleet_cli::backend::{CallError, Ic};

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
        self.assert_running_with_empty_store();
    }

    /// Running, and nothing left in the canister's chunk store.
    fn assert_running_with_empty_store(&self) {
        assert_eq!(self.world.sim.is_running(self.canister), Some(true));
        let chunks = self
            .world
            .sim
            .stored_chunks(self.canister, Some(self.recovery))
            .unwrap();
        assert!(chunks.is_empty(), "{} chunks left", chunks.len());
    }

    /// `fleet recovery upgrade` of this canister to `wasm`, with `extra` arguments, through
    /// the simulator as `wrap` lets it through.
    fn upgrade_via(
        &self,
        wasm: &[u8],
        extra: &[&str],
        wrap: impl Fn(SimIc) -> Box<dyn Ic>,
    ) -> Result<fleet_cli::commands::Output, fleet_cli::error::CliError> {
        let path = self.world.dir.file("upgrade.wasm", wasm);
        let id = self.id();
        let mut args = vec![
            "--json",
            "recovery",
            "upgrade",
            "--canister",
            &id,
            "--phrase-file",
            &self.phrase_file,
            "--wasm",
            &path,
        ];
        args.extend_from_slice(extra);
        self.world.fleet_via(&args, wrap)
    }

    /// `fleet recovery upgrade` to `wasm` through `wrap`, expected to fail with exit `code`
    /// and an error of `kind` whose text names `names`.
    fn upgrade_fails(
        &self,
        wasm: &[u8],
        extra: &[&str],
        wrap: impl Fn(SimIc) -> Box<dyn Ic>,
        (code, kind, names): (i32, &str, &str),
    ) {
        match self.upgrade_via(wasm, extra, wrap) {
            Ok(out) => panic!("upgraded: {}", out.text),
            Err(err) => {
                assert_eq!((err.exit_code(), err.kind()), (code, kind), "{err}");
                assert!(err.to_string().contains(names), "{err}");
            }
        }
    }

    /// Back on v1 with its notes, running, nothing left in the chunk store.
    fn assert_kept_v1(&self) {
        assert_eq!(self.world.module_hash(self.canister), Some(self.v1_hash));
        assert_eq!(self.world.version(self.canister), "1.0.0");
        assert_eq!(self.world.notes(self.canister, self.owner), self.notes);
        self.assert_running_with_empty_store();
    }

    fn upgrade(&self, wasm: &[u8]) -> serde_json::Value {
        self.upgrade_via(wasm, &[], direct).unwrap().json
    }

    fn rollback(&self) -> Result<fleet_cli::commands::Output, fleet_cli::error::CliError> {
        self.world.fleet(&[
            "--json",
            "recovery",
            "rollback",
            "--canister",
            &self.id(),
            "--phrase-file",
            &self.phrase_file,
        ])
    }
}

/// The simulator as it is.
fn direct(ic: SimIc) -> Box<dyn Ic> {
    Box::new(ic)
}

/// The simulator, with the first `times` update calls of `method` rejected with `code` before
/// they reach it.
struct Rejecting {
    inner: SimIc,
    method: &'static str,
    code: u32,
    left: Rc<Cell<u32>>,
}

fn rejecting(method: &'static str, code: u32, times: u32) -> impl Fn(SimIc) -> Box<dyn Ic> {
    let left = Rc::new(Cell::new(times));
    move |inner| {
        Box::new(Rejecting {
            inner,
            method,
            code,
            left: Rc::clone(&left),
        })
    }
}

impl Ic for Rejecting {
    fn update(
        &self,
        canister: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, CallError> {
        if method == self.method && self.left.get() > 0 {
            self.left.set(self.left.get() - 1);
            return Err(CallError::reject(
                self.code,
                format!("{method} rejected by the test"),
                None,
            ));
        }
        self.inner.update(canister, method, arg)
    }
    fn query(&self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.inner.query(canister, method, arg)
    }
    fn sender(&self) -> Principal {
        self.inner.sender()
    }
    fn idle(&self, duration: std::time::Duration) {
        self.inner.idle(duration)
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

/// A canister on another subnet than its manager's is upgraded by its phrase all the same:
/// the recovery controller stages the module in the canister's own chunk store, which is on
/// the canister's subnet wherever that is.
#[test]
fn a_canister_on_another_subnet_than_its_manager_is_upgraded_by_its_phrase() {
    let world = World::with_subnets(3);
    let subnets = world.sim.get_app_subnets();
    assert_eq!(subnets.len(), 3);
    let manager = world.sim.create_canister_on_subnet(None, None, subnets[0]);
    let owner = user(2);
    let recovery = principal_of(PHRASE);
    let canister = world.user_canister_on(Some(subnets[2]), manager, recovery, owner, manager);
    assert_eq!(world.sim.get_subnet(canister), Some(subnets[2]));
    world.put_note(canister, owner, "a", "kept across the upgrade");
    let notes = world.notes(canister, owner);
    let v2 = user_wasm(&["v2"]);
    let wasm = world.dir.file("v2.wasm", &v2);
    let phrase_file = world.dir.file("phrase.txt", PHRASE.as_bytes());
    let id = canister.to_text();
    let out = world
        .fleet(&[
            "--json",
            "recovery",
            "upgrade",
            "--canister",
            &id,
            "--phrase-file",
            &phrase_file,
            "--wasm",
            &wasm,
        ])
        .unwrap();
    assert_eq!(out.json["outcome"], "upgraded");
    assert_eq!(world.module_hash(canister), Some(sha256(&v2)));
    assert_eq!(world.version(canister), "2.0.0");
    assert_eq!(world.notes(canister, owner), notes);
    assert_eq!(world.sim.get_subnet(canister), Some(subnets[2]));
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

#[test]
fn a_module_of_several_chunks_is_staged_in_the_canisters_own_store_and_cleared() {
    let s = setup();
    let v2 = padded(&user_wasm(&["v2"]), 1536 * 1024);
    let out = s.upgrade_via(&v2, &["--version", "2.0.0"], direct);
    let json = out.unwrap().json;
    assert_eq!(json["outcome"], "upgraded");
    assert_eq!(json["chunks"], v2.len().div_ceil(1024 * 1024));
    assert!(json["chunks"].as_u64().unwrap() >= 2);
    assert_eq!(json["module_hash_before"], hex::encode(s.v1_hash));
    assert_eq!(s.world.module_hash(s.canister), Some(sha256(&v2)));
    assert_eq!(s.world.version(s.canister), "2.0.0");
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
    s.assert_running_with_empty_store();
    // The snapshot of the upgrade is kept, and the report names it.
    let snaps = s
        .world
        .sim
        .list_canister_snapshots(s.canister, Some(s.recovery))
        .unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(json["snapshot"], hex::encode(&snaps[0].id));
}

#[test]
fn a_version_other_than_the_one_asked_for_is_rolled_back() {
    let s = setup();
    let expected = (6, "rolled_back", "version is 2.0.0, expected 3.0.0");
    let v2 = user_wasm(&["v2"]);
    s.upgrade_fails(&v2, &["--version", "3.0.0"], direct, expected);
    s.assert_kept_v1();
}

#[test]
fn a_module_whose_post_upgrade_traps_is_refused_and_the_canister_started_again() {
    let s = setup();
    let trap = user_wasm(&["v2", "fault_post_upgrade_trap"]);
    s.upgrade_fails(&trap, &[], direct, (5, "install_failed", "refused"));
    s.assert_kept_v1();
}

#[test]
fn a_rejected_snapshot_starts_the_canister_again_and_installs_nothing() {
    let s = setup();
    let wrap = rejecting("take_canister_snapshot", 5, u32::MAX);
    let expected = (4, "call_failed", "take_canister_snapshot");
    s.upgrade_fails(&user_wasm(&["v2"]), &[], wrap, expected);
    s.assert_unchanged();
}

#[test]
fn a_transient_install_reject_is_not_blamed_on_the_module() {
    let s = setup();
    // SYS_TRANSIENT: the subnet's trouble, not the module's (an install refusal exits 5).
    let wrap = rejecting("install_chunked_code", 2, 1);
    let expected = (4, "call_failed", "install_chunked_code");
    s.upgrade_fails(&user_wasm(&["v2"]), &[], wrap, expected);
    s.assert_kept_v1();
}

#[test]
fn a_start_rejected_twice_is_made_again_and_the_upgrade_completes() {
    let s = setup();
    let v2 = user_wasm(&["v2"]);
    let out = s.upgrade_via(&v2, &[], rejecting("start_canister", 2, 2));
    assert_eq!(out.unwrap().json["outcome"], "upgraded");
    assert_eq!(s.world.module_hash(s.canister), Some(sha256(&v2)));
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
    s.assert_running_with_empty_store();
}

#[test]
fn a_start_that_keeps_failing_is_reported_as_needing_attention() {
    let s = setup();
    let wrap = rejecting("start_canister", 2, u32::MAX);
    let expected = (7, "rollback_failed", "starting the canister again failed");
    s.upgrade_fails(&user_wasm(&["v2"]), &[], wrap, expected);
    assert_eq!(s.world.sim.is_running(s.canister), Some(false));
    // The recovery principal can start it by hand.
    s.world
        .sim
        .start_canister(s.canister, Some(s.recovery))
        .unwrap();
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
}

#[test]
fn a_failed_restore_after_a_failed_health_check_leaves_the_canister_running() {
    let s = setup();
    let faulty = user_wasm(&["v2", "fault_health"]);
    let wrap = rejecting("load_canister_snapshot", 5, u32::MAX);
    let expected = (7, "rollback_failed", "load_canister_snapshot");
    s.upgrade_fails(&faulty, &[], wrap, expected);
    // The unhealthy module stays, running, with its data; the snapshot is there to load.
    assert_eq!(s.world.module_hash(s.canister), Some(sha256(&faulty)));
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
    assert_eq!(s.world.snapshot_count(s.canister, s.recovery), 1);
    s.assert_running_with_empty_store();
    s.rollback().unwrap();
    s.assert_kept_v1();
}

#[test]
fn at_the_snapshot_limit_the_oldest_snapshot_is_replaced() {
    let s = setup();
    let sim = &s.world.sim;
    let mut taken = Vec::new();
    for _ in 0..ic_sim::MAX_SNAPSHOTS {
        sim.advance_time(std::time::Duration::from_secs(1));
        let snap = sim.take_canister_snapshot(s.canister, Some(s.recovery), None);
        taken.push(snap.unwrap().id);
    }
    let v2 = user_wasm(&["v2"]);
    assert_eq!(s.upgrade(&v2)["outcome"], "upgraded");
    assert_eq!(s.world.module_hash(s.canister), Some(sha256(&v2)));
    let ids: Vec<_> = sim
        .list_canister_snapshots(s.canister, Some(s.recovery))
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(ids.len(), ic_sim::MAX_SNAPSHOTS);
    assert!(!ids.contains(&taken[0]), "the oldest is replaced");
    assert!(
        taken[1..].iter().all(|t| ids.contains(t)),
        "the others stay"
    );
    s.assert_running_with_empty_store();
}

#[test]
fn rollback_restores_the_latest_of_several_snapshots() {
    let s = setup();
    let v2 = user_wasm(&["v2"]);
    s.upgrade(&v2);
    s.world.put_note(s.canister, s.owner, "d", "on v2");
    let with_d = s.world.notes(s.canister, s.owner);
    // The same code under another hash: a second upgrade, a second snapshot (of v2 with d).
    s.world.sim.advance_time(std::time::Duration::from_secs(1));
    s.upgrade(&padded(&v2, 16));
    s.world
        .put_note(s.canister, s.owner, "e", "after the second upgrade");
    assert_eq!(s.world.snapshot_count(s.canister, s.recovery), 2);

    let out = s.rollback().unwrap();
    assert_eq!(out.json["module_hash"], hex::encode(sha256(&v2)));
    assert_eq!(out.json["version"], "2.0.0");
    assert_eq!(s.world.module_hash(s.canister), Some(sha256(&v2)));
    assert_eq!(s.world.notes(s.canister, s.owner), with_d);
    s.assert_running_with_empty_store();
}

#[test]
fn a_rejected_load_fails_the_rollback_and_starts_the_canister_again() {
    let s = setup();
    let v2 = user_wasm(&["v2"]);
    s.upgrade(&v2);
    let id = s.id();
    let args = [
        "recovery",
        "rollback",
        "--canister",
        &id,
        "--phrase-file",
        &s.phrase_file,
    ];
    let wrap = rejecting("load_canister_snapshot", 5, u32::MAX);
    let err = s.world.fleet_via(&args, wrap).unwrap_err();
    assert_eq!(
        (err.exit_code(), err.kind()),
        (7, "rollback_failed"),
        "{err}"
    );
    assert_eq!(s.world.module_hash(s.canister), Some(sha256(&v2)));
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
    s.assert_running_with_empty_store();
}

#[test]
fn detach_refuses_what_would_lock_the_caller_out_or_change_nothing() {
    let s = setup();
    let id = s.id();
    let me = s.recovery.to_text();
    // Naming the recovery principal as the manager.
    let (code, err) = s.world.fleet_err(&[
        "recovery",
        "detach",
        "--canister",
        &id,
        "--phrase-file",
        &s.phrase_file,
        "--manager",
        &me,
        "--yes",
    ]);
    assert_eq!((code, err.kind()), (8, "refused"), "{err}");
    s.assert_unchanged();

    // A plan without the caller is never written.
    let ic = SimIc::new(Rc::clone(&s.world.sim), s.recovery);
    let bad = fleet_cli::recovery::DetachPlan {
        canister: s.canister,
        controllers_before: vec![s.manager, s.recovery],
        controllers_after: vec![s.manager],
    };
    let err = fleet_cli::recovery::apply_detach(&ic, &bad).unwrap_err();
    assert_eq!(err.kind(), "refused", "{err}");
    s.assert_unchanged();

    // Once detached, there is nothing left to remove.
    let detach = [
        "recovery",
        "detach",
        "--canister",
        &id,
        "--phrase-file",
        &s.phrase_file,
        "--yes",
    ];
    s.world.fleet(&detach).unwrap();
    assert_eq!(s.world.sim.get_controllers(s.canister), vec![s.recovery]);
    let (code, err) = s.world.fleet_err(&detach);
    assert_eq!((code, err.kind()), (8, "refused"), "{err}");
    assert!(err.to_string().contains("no other controller"), "{err}");
    assert_eq!(s.world.sim.get_controllers(s.canister), vec![s.recovery]);
}

#[test]
fn a_rollback_to_an_unhealthy_snapshot_is_reported_not_hidden() {
    use candid::encode_one;
    use fleet_api::user::{UserCanisterArg, UserUpgradeArg};
    let s = setup();
    s.upgrade(&user_wasm(&["v2"]));
    // As the recovery controller, by hand: an unhealthy module, and a snapshot of it.
    let faulty = user_wasm(&["v2", "fault_health"]);
    let arg = UserCanisterArg::Upgrade(UserUpgradeArg {
        release_sha256: sha256(&faulty).to_vec(),
    });
    let sim = &s.world.sim;
    sim.upgrade_canister(
        s.canister,
        faulty.clone(),
        encode_one(arg).unwrap(),
        Some(s.recovery),
    )
    .unwrap();
    sim.advance_time(std::time::Duration::from_secs(1));
    sim.take_canister_snapshot(s.canister, Some(s.recovery), None)
        .unwrap();

    let err = s.rollback().unwrap_err();
    assert_eq!(
        (err.exit_code(), err.kind()),
        (7, "rollback_failed"),
        "{err}"
    );
    assert!(err.to_string().contains("not healthy"), "{err}");
    assert!(err.to_string().contains("fault_health"), "{err}");
    // The snapshot was loaded and the canister runs it.
    assert_eq!(s.world.module_hash(s.canister), Some(sha256(&faulty)));
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
    s.assert_running_with_empty_store();
}

/// The module, heap and stable memory of a backup file: the bytes after its header, in order.
fn backup_sections(path: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let (h, start) = fleet_cli::recovery::backup::read_header(std::path::Path::new(path)).unwrap();
    let bytes = std::fs::read(path).unwrap();
    let module_end = start as usize + h.wasm_module_size as usize;
    let heap_end = module_end + h.wasm_memory_size as usize;
    let stable_end = heap_end + h.stable_memory_size as usize;
    (
        bytes[start as usize..module_end].to_vec(),
        bytes[module_end..heap_end].to_vec(),
        bytes[heap_end..stable_end].to_vec(),
    )
}

/// A backup taken by the recovery phrase outlives later changes: restoring it brings back the
/// module, the heap and the stable memory byte for byte (checked against a second backup and
/// against the simulator's stable memory), and the notes; the snapshots it used are gone, and
/// a backup of another canister is refused without --force.
#[test]
fn backup_and_restore_round_trip_the_whole_state_byte_for_byte() {
    let s = setup();
    let stable_before = s.world.sim.get_stable_memory(s.canister);
    let file = s.world.dir.path().join("backup.bin");
    let file = file.to_str().unwrap();
    let id = s.id();
    let run = |args: &[&str]| {
        let mut all = vec!["--json", "recovery"];
        all.extend_from_slice(args);
        all.extend(["--canister", &id, "--phrase-file", &s.phrase_file]);
        s.world.fleet(&all)
    };
    let out = run(&["backup", "--out", file]).unwrap().json;
    assert_eq!(out["header"]["version"], "1.0.0");
    assert_eq!(
        out["header"]["module_hash"],
        serde_json::json!(hex::encode(s.v1_hash))
    );
    assert_eq!(
        s.world.snapshot_count(s.canister, s.recovery),
        0,
        "the backup's snapshot is deleted"
    );
    let (module, heap, stable) = backup_sections(file);
    assert_eq!(sha256(&module), s.v1_hash);
    assert_eq!(stable, stable_before);
    assert!(!heap.is_empty());

    // Life goes on: notes change.
    s.world
        .put_note(s.canister, s.owner, "d", "after the backup");
    s.world.put_note(s.canister, s.owner, "a", "overwritten");
    assert_ne!(s.world.notes(s.canister, s.owner), s.notes);
    assert_ne!(s.world.sim.get_stable_memory(s.canister), stable_before);

    run(&["restore", file]).unwrap();
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
    assert_eq!(s.world.module_hash(s.canister), Some(s.v1_hash));
    assert_eq!(s.world.sim.get_stable_memory(s.canister), stable_before);
    assert_eq!(s.world.snapshot_count(s.canister, s.recovery), 0);
    let again = s.world.dir.path().join("again.bin");
    let again = again.to_str().unwrap();
    run(&["backup", "--out", again]).unwrap();
    assert_eq!(backup_sections(again), (module, heap, stable));

    // A damaged file, or another canister's backup, changes nothing.
    let mut damaged = std::fs::read(file).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    let damaged_file = s.world.dir.file("damaged.bin", &damaged);
    let e = run(&["restore", &damaged_file]).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    let other = s
        .world
        .user_canister(s.manager, s.recovery, user(9), s.manager);
    let e = s
        .world
        .fleet(&[
            "recovery",
            "restore",
            file,
            "--canister",
            &other.to_text(),
            "--phrase-file",
            &s.phrase_file,
        ])
        .unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("--force"), "{e}");
    assert_eq!(s.world.notes(other, user(9)), vec![]);
}

/// `fleet rehearse --from-canister` takes a live canister's state as its recovery controller,
/// upgrades a copy on the embedded simulator and reports the upgrade's instructions, stable
/// memory and `fleet_health` before and after; the live canister keeps its module, notes and
/// (no) snapshots. The same state rehearsed from a backup file under a limit below what the
/// migration needs is reported as exceeding the instruction limit, and fails the command.
#[test]
fn rehearsal_from_a_live_canister_upgrades_a_copy_and_reports_the_instruction_limit() {
    let s = setup();
    let v2 = s.world.dir.file("v2.wasm", &user_wasm(&["v2"]));
    let id = s.id();
    let live = s
        .world
        .fleet(&[
            "--json",
            "rehearse",
            "--from-canister",
            &id,
            "--to",
            &v2,
            "--phrase-file",
            &s.phrase_file,
        ])
        .unwrap()
        .json;
    eprintln!("{live:#}");
    let upgrade = &live["upgrade"];
    assert_eq!(upgrade["succeeded"], true, "{live}");
    let instructions = upgrade["instructions"].as_u64().unwrap();
    assert!(instructions > 0, "{live}");
    assert_eq!(upgrade["instruction_limit"], 300_000_000_000u64);
    assert_eq!(upgrade["slices"], 1);
    let (before, after) = (&live["health_before"], &live["health_after"]);
    assert_eq!(before["records"], 3, "{live}");
    assert_eq!(before["version"], "1.0.0");
    assert_eq!(after["version"], "2.0.0");
    assert_eq!(after["records"], 3);
    assert_eq!(
        after["checksum"], before["checksum"],
        "the migration keeps the notes"
    );
    assert_ne!(after["schema_version"], before["schema_version"]);
    assert!(live["stable_memory_before"].as_u64().unwrap() > 0);
    assert!(live["live_canister_changes"]
        .as_str()
        .unwrap()
        .contains("taken, downloaded and deleted"));
    s.assert_unchanged();

    // The same state from a file, under a limit the migration does not fit in.
    let file = s.world.dir.path().join("live.bin");
    let file = file.to_str().unwrap();
    s.world
        .fleet(&[
            "recovery",
            "backup",
            "--out",
            file,
            "--canister",
            &id,
            "--phrase-file",
            &s.phrase_file,
        ])
        .unwrap();
    let limit = (instructions / 2).to_string();
    let e = s
        .world
        .fleet(&[
            "rehearse",
            "--from-snapshot",
            file,
            "--to",
            &v2,
            "--max-upgrade-instructions",
            &limit,
        ])
        .unwrap_err();
    assert_eq!(e.exit_code(), 8, "{e}");
    assert!(
        e.to_string()
            .contains(&format!("exceeds the instruction limit of {limit}")),
        "{e}"
    );
    s.assert_unchanged();
}

/// A download cut in the middle keeps what it wrote and the snapshot; the same command then
/// continues from there, and the file equals one downloaded in one go.
#[test]
fn an_interrupted_backup_resumes_where_it_stopped() {
    let s = setup();
    let id = s.id();
    let path = |name: &str| {
        let p = s.world.dir.path().join(name);
        p.to_str().unwrap().to_string()
    };
    let (file, whole) = (path("resumed.bin"), path("whole.bin"));
    let args = |out: &str| {
        [
            "--json",
            "recovery",
            "backup",
            "--out",
            out,
            "--canister",
            &id,
            "--phrase-file",
            &s.phrase_file,
        ]
        .map(str::to_string)
    };
    let run = |out: &str| {
        let a = args(out);
        s.world
            .fleet(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    run(&whole).unwrap();

    // The fifth slice read fails: several slices are in the partial file already.
    let a = args(&file);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let e = s
        .world
        .fleet_via(&a, |inner| {
            FailsNth::boxed(inner, "read_canister_snapshot_data", 5)
        })
        .unwrap_err();
    assert_eq!(e.exit_code(), 4, "{e}");
    assert!(e.to_string().contains("run the same command again"), "{e}");
    let partial = format!("{file}.partial");
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 2_000_000, "{kept} bytes kept: at least one slice");
    assert!(!std::path::Path::new(&file).exists());
    assert_eq!(
        s.world.snapshot_count(s.canister, s.recovery),
        1,
        "the snapshot stays"
    );

    let out = run(&file).unwrap().json;
    assert_eq!(out["resumed"], true, "{out}");
    assert!(!std::path::Path::new(&partial).exists());
    assert_eq!(s.world.snapshot_count(s.canister, s.recovery), 0);
    assert_eq!(backup_sections(&file), backup_sections(&whole));
    // The file is whole: it restores.
    s.world.put_note(s.canister, s.owner, "z", "after");
    s.world
        .fleet(&[
            "recovery",
            "restore",
            &file,
            "--canister",
            &id,
            "--phrase-file",
            &s.phrase_file,
        ])
        .unwrap();
    assert_eq!(s.world.notes(s.canister, s.owner), s.notes);
}
