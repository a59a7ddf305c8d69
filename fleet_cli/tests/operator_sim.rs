//! Operator commands (`release`, `canisters`, `operators`) and `recovery upgrade --manager` end
//! to end on ic_sim with the real fleet manager and user canister wasm.

mod common;

use std::cell::Cell;

use candid::{encode_one, Principal};
use common::*;
use fleet_api::manager::{
    CreateUserCanisterArg, CreateUserCanisterError, ManagerInitArg, SetDefaultReleaseError,
    Settings, UserCanister,
};
use fleet_cli::backend::sim::SimIc;
use fleet_cli::backend::{CallError, Ic};

/// A manager whose controller is the principal of PHRASE (so the phrase holds every role).
struct Fleet {
    world: World,
    manager: Principal,
    manager_id: String,
    admin_phrase: String,
    stranger_phrase: String,
}

fn fleet() -> Fleet {
    let world = World::new();
    let admin = principal_of(PHRASE);
    let manager = world.sim.create_canister_with_settings(Some(admin), None);
    world.sim.add_cycles(manager, CYCLES);
    world.sim.install_canister(
        manager,
        wasm_build::wasm("fleet_manager", &[]),
        encode_one(None::<ManagerInitArg>).unwrap(),
        Some(admin),
    );
    let admin_phrase = world.dir.file("admin-phrase", PHRASE.as_bytes());
    let stranger_phrase = world
        .dir
        .file("stranger-phrase", STRANGER_PHRASE.as_bytes());
    Fleet {
        manager_id: manager.to_text(),
        world,
        manager,
        admin_phrase,
        stranger_phrase,
    }
}

impl Fleet {
    /// `fleet ARGS... --manager M --phrase-file P`.
    fn run(
        &self,
        args: &[&str],
        phrase: &str,
    ) -> Result<fleet_cli::cli::Output, fleet_cli::error::CliError> {
        let mut all = args.to_vec();
        all.extend(["--manager", &self.manager_id, "--phrase-file", phrase]);
        self.world.fleet(&all)
    }

    fn admin(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.run(&all, &self.admin_phrase)
            .unwrap_or_else(|e| panic!("fleet {args:?}: {e}"))
            .json
    }

    fn admin_err(&self, args: &[&str]) -> (i32, fleet_cli::error::CliError) {
        let e = self
            .run(args, &self.admin_phrase)
            .err()
            .unwrap_or_else(|| panic!("fleet {args:?} succeeded"));
        (e.exit_code(), e)
    }

    fn publish_file(&self, name: &str, bytes: &[u8], version: &str) -> serde_json::Value {
        let file = self.world.dir.file(name, bytes);
        self.admin(&["release", "publish", &file, "--version", version])
    }
}

/// Fails the `n`-th `upload_release_chunk` call (1-based) as a lost connection would.
struct DropsUpload {
    inner: SimIc,
    n: u32,
    seen: Cell<u32>,
}

impl Ic for DropsUpload {
    fn update(&self, c: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        if method == "upload_release_chunk" {
            self.seen.set(self.seen.get() + 1);
            if self.seen.get() == self.n {
                return Err(CallError::Transport("connection reset".into()));
            }
        }
        self.inner.update(c, method, arg)
    }
    fn query(&self, c: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError> {
        self.inner.query(c, method, arg)
    }
    fn sender(&self) -> Principal {
        self.inner.sender()
    }
}

#[test]
fn operators_are_added_listed_and_removed_by_an_admin_only() {
    let f = fleet();
    let releaser = principal_of(STRANGER_PHRASE).to_text();
    assert_eq!(f.admin(&["operators", "list"]), serde_json::json!([]));

    let added = f.admin(&["operators", "add", &releaser, "--role", "releaser"]);
    assert_eq!(added["roles"], serde_json::json!(["releaser"]));
    let added = f.admin(&["operators", "add", &releaser, "--role", "deployer"]);
    assert_eq!(added["roles"], serde_json::json!(["releaser", "deployer"]));
    let list = f.admin(&["operators", "list"]);
    assert_eq!(list[0]["principal"], releaser);
    assert_eq!(
        list[0]["roles"],
        serde_json::json!(["releaser", "deployer"])
    );

    // A releaser is not an admin: it cannot grant roles, and nothing changes.
    let e = f
        .run(
            &["operators", "add", &releaser, "--role", "admin"],
            &f.stranger_phrase,
        )
        .unwrap_err();
    assert_eq!((e.exit_code(), e.kind()), (3, "not_authorized"), "{e}");
    assert_eq!(f.admin(&["operators", "list"]), list);

    let kept = f.admin(&["operators", "remove", &releaser, "--role", "releaser"]);
    assert_eq!(kept["roles"], serde_json::json!(["deployer"]));
    f.admin(&["operators", "remove", &releaser]);
    assert_eq!(f.admin(&["operators", "list"]), serde_json::json!([]));
    let (code, e) = f.admin_err(&["operators", "remove", &releaser]);
    assert_eq!(code, 10, "{e}");
}

#[test]
fn publish_resumes_an_interrupted_upload_and_checks_the_hash() {
    let f = fleet();
    // At least four chunks: 3.5 MiB of padding after the v2 module.
    let module = padded(&user_wasm(&["v2"]), 3 * 1024 * 1024 + 512 * 1024);
    let chunks = module.len().div_ceil(1024 * 1024) as u32;
    assert!(chunks >= 4);
    let file = f.world.dir.file("v2.wasm", &module);
    let publish = [
        "release",
        "publish",
        file.as_str(),
        "--version",
        "2.0.0",
        "--notes",
        "notes v2",
        "--manager",
        &f.manager_id,
        "--phrase-file",
        &f.admin_phrase,
    ];

    // The third chunk is lost: the command fails and says how to go on.
    let err = f
        .world
        .fleet_via(&publish, |ic| {
            Box::new(DropsUpload {
                inner: ic,
                n: 3,
                seen: Cell::new(0),
            })
        })
        .unwrap_err();
    assert_eq!(err.exit_code(), 4, "{err}");
    assert!(
        err.to_string().contains("run the same command again"),
        "{err}"
    );
    let shown = f.admin(&["release", "show", "2.0.0"]);
    assert_eq!(shown["state"], "uploading");
    assert_eq!(
        shown["missing"],
        serde_json::json!((2..chunks).collect::<Vec<_>>())
    );

    // Running it again sends only the missing chunks.
    let mut json = vec!["--json"];
    json.extend_from_slice(&publish);
    let out = f.world.fleet(&json).unwrap().json;
    assert_eq!(out["outcome"], "published");
    assert_eq!(out["resumed"], true);
    assert_eq!(out["chunks_sent"], chunks - 2);
    assert_eq!(out["release"]["sha256"], hex::encode(sha256(&module)));
    assert_eq!(out["release"]["chunk_count"], chunks);

    let shown = f.admin(&["release", "show", "2.0.0"]);
    assert_eq!(shown["state"], "finalized");
    assert_eq!(shown["sha256"], hex::encode(sha256(&module)));
    assert_eq!(shown["notes"], "notes v2");
    let list = f.admin(&["release", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["version"], "2.0.0");

    // Publishing the same file again is a no-op.
    let again = f.world.fleet(&json).unwrap().json;
    assert_eq!(again["outcome"], "already_published");
}

#[test]
fn bad_publishes_are_refused_and_leave_the_manager_unchanged() {
    let f = fleet();
    let v1 = user_wasm(&[]);
    f.publish_file("v1.wasm", &v1, "1.0.0");
    let before = f.admin(&["release", "list"]);

    let not_wasm = f.world.dir.file("x.txt", b"not a module");
    let other = f.world.dir.file("v2.wasm", &user_wasm(&["v2"]));
    let v1_file = f.world.dir.file("v1-again.wasm", &v1);
    let wrong = hex::encode([1u8; 32]);
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec![not_wasm.as_str(), "--version", "3.0.0"], 2),
        (
            vec![other.as_str(), "--version", "3.0.0", "--sha256", &wrong],
            2,
        ),
        (vec![other.as_str(), "--version", "not-a-version"], 2),
        // Another module under an existing version.
        (vec![other.as_str(), "--version", "1.0.0"], 8),
    ];
    for (extra, code) in cases {
        let mut args = vec!["release", "publish"];
        args.extend(extra.iter().copied());
        let (got, e) = f.admin_err(&args);
        assert_eq!(got, code, "{args:?}: {e}");
        assert_eq!(f.admin(&["release", "list"]), before, "{args:?}");
    }
    // A caller without the releaser role.
    let e = f
        .run(
            &["release", "publish", &v1_file, "--version", "1.0.1"],
            &f.stranger_phrase,
        )
        .unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert_eq!(f.admin(&["release", "list"]), before);
    let (code, _) = f.admin_err(&["release", "show", "3.0.0"]);
    assert_eq!(code, 10);
}

#[test]
fn recovery_upgrade_downloads_the_release_from_the_manager() {
    let f = fleet();
    let v2 = padded(&user_wasm(&["v2"]), 1024 * 1024);
    f.publish_file("v2.wasm", &v2, "2.0.0");

    let owner = user(5);
    let recovery = principal_of(STRANGER_PHRASE);
    let canister = f.world.user_canister(f.manager, recovery, owner, recovery);
    f.world.put_note(canister, owner, "n", "kept");
    let notes = f.world.notes(canister, owner);
    let v1_hash = f.world.module_hash(canister);
    let id = canister.to_text();
    let upgrade = |extra: &[&str]| {
        let mut args = vec![
            "recovery",
            "upgrade",
            "--canister",
            &id,
            "--phrase-file",
            &f.stranger_phrase,
            "--manager",
            &f.manager_id,
        ];
        args.extend_from_slice(extra);
        f.world.fleet(&args)
    };

    // Unknown release, or a hash the download does not have: nothing changes.
    let e = upgrade(&["--version", "9.0.0"]).unwrap_err();
    assert_eq!(e.exit_code(), 10, "{e}");
    let e = upgrade(&["--version", "2.0.0", "--sha256", &hex::encode([7u8; 32])]).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert_eq!(f.world.module_hash(canister), v1_hash);
    assert_eq!(f.world.snapshot_count(canister, recovery), 0);

    upgrade(&["--version", "2.0.0", "--sha256", &hex::encode(sha256(&v2))]).unwrap();
    assert_eq!(f.world.module_hash(canister), Some(sha256(&v2)));
    assert_eq!(f.world.version(canister), "2.0.0");
    assert_eq!(f.world.notes(canister, owner), notes);
}

#[test]
fn canisters_are_listed_with_filters_for_operators_only() {
    let f = fleet();
    let admin = principal_of(PHRASE);
    f.publish_file("v1.wasm", &user_wasm(&[]), "1.0.0");
    let (set,): (Result<Settings, SetDefaultReleaseError>,) = f.world.update(
        f.manager,
        admin,
        "set_default_release",
        ("1.0.0".to_string(),),
    );
    set.unwrap();
    let mut created = Vec::new();
    for n in [11u8, 12] {
        let (r,): (Result<UserCanister, CreateUserCanisterError>,) = f.world.update(
            f.manager,
            user(n),
            "create_user_canister",
            (CreateUserCanisterArg {
                recovery_principal: user(n + 100),
            },),
        );
        created.push(r.unwrap().canister_id.to_text());
    }
    created.sort();

    let ids = |v: serde_json::Value| {
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["canister_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(f.admin(&["canisters", "list"])), created);
    assert_eq!(
        ids(f.admin(&["canisters", "list", "--release", "1.0.0"])),
        created
    );
    assert_eq!(
        ids(f.admin(&["canisters", "list", "--status", "active"])),
        created
    );
    assert!(ids(f.admin(&["canisters", "list", "--status", "rolled-back"])).is_empty());
    let one = f.admin(&["canisters", "list", "--owner", &user(12).to_text()]);
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["owner"], user(12).to_text());
    assert_eq!(one[0]["release"], "1.0.0");
    assert_eq!(
        f.admin(&["canisters", "list", "--limit", "1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let (code, e) = f.admin_err(&["canisters", "list", "--release", "9.9.9"]);
    assert_eq!(code, 2, "{e}");
    let e = f
        .run(&["canisters", "list"], &f.stranger_phrase)
        .unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
}

#[test]
fn rollout_upgrades_the_fleet_with_pause_and_resume() {
    let f = fleet();
    let admin = principal_of(PHRASE);
    let v1 = user_wasm(&[]);
    let v2 = user_wasm(&["v2"]);
    f.publish_file("v1.wasm", &v1, "1.0.0");
    f.publish_file("v2.wasm", &v2, "2.0.0");
    let (set,): (Result<Settings, SetDefaultReleaseError>,) = f.world.update(
        f.manager,
        admin,
        "set_default_release",
        ("1.0.0".to_string(),),
    );
    set.unwrap();
    let mut canisters = Vec::new();
    for n in [21u8, 22] {
        let (r,): (Result<UserCanister, CreateUserCanisterError>,) = f.world.update(
            f.manager,
            user(n),
            "create_user_canister",
            (CreateUserCanisterArg {
                recovery_principal: user(n + 100),
            },),
        );
        let c = r.unwrap().canister_id;
        f.world.put_note(c, user(n), "k", "v");
        canisters.push((c, user(n)));
    }
    // Runs the manager's timers until the rollout is finished.
    let settle = || {
        let mut st = serde_json::Value::Null;
        for _ in 0..600 {
            st = f.admin(&["rollout", "status"]);
            if st["phase"] == "Completed"
                || st["phase"] == "Aborted"
                || st["phase"].get("Halted").is_some()
            {
                return st;
            }
            f.world.sim.advance_time(std::time::Duration::from_secs(1));
            f.world.sim.tick();
        }
        panic!("the rollout did not finish: {st:#}");
    };

    // Refused before anything starts: unknown release, not a deployer.
    let (code, e) = f.admin_err(&["rollout", "start", "--version", "9.0.0"]);
    assert_eq!(code, 2, "{e}");
    let e = f
        .run(
            &["rollout", "start", "--version", "2.0.0"],
            &f.stranger_phrase,
        )
        .unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    let (code, _) = f.admin_err(&["rollout", "status"]);
    assert_eq!(code, 10, "no rollout yet");

    let started = f.admin(&[
        "rollout",
        "start",
        "--version",
        "2.0.0",
        "--from",
        "1.0.0",
        "--canary",
        "0",
        "--waves",
        "50,100",
        "--bake-secs",
        "0",
    ]);
    assert_eq!(started["canisters"], 2);
    let paused = f.admin(&["rollout", "pause"]);
    assert_eq!(paused["phase"], "Paused");
    let (code, e) = f.admin_err(&["rollout", "pause"]);
    assert_eq!(code, 8, "pausing twice: {e}");
    f.admin(&["rollout", "resume"]);
    let done = settle();
    assert_eq!(done["phase"], "Completed");
    assert_eq!(done["counts"]["done"], 2);
    for (c, owner) in &canisters {
        assert_eq!(f.world.module_hash(*c), Some(sha256(&v2)));
        assert_eq!(f.world.version(*c), "2.0.0");
        assert_eq!(f.world.notes(*c, *owner), vec![("k".into(), "v".into())]);
    }

    // v1 refuses a downgrade from schema 2, so only the refusal of an unknown release is
    // checked here; it starts nothing.
    let (code, e) = f.admin_err(&["rollout", "rollback", "--to", "9.9.9"]);
    assert_eq!(code, 2, "{e}");
    assert_eq!(f.admin(&["rollout", "status"])["id"], done["id"]);
}
