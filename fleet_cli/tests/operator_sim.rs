//! Operator commands (`release`, `canisters`, `operators`) and `recovery upgrade --manager` end
//! to end on ic_sim with the real fleet manager and user canister wasm.

mod common;

use candid::{encode_one, Principal};
use common::*;
use fleet_api::endpoint::Endpoint;
use fleet_api::manager::method::{CreateUserCanister, SetDefaultRelease, UploadReleaseChunk};
use fleet_api::manager::{CreateUserCanisterArg, ManagerInitArg};
use fleet_api::rollout::method::PlanRollout;
use fleet_api::rollout::{RolloutPlanArg, StartRolloutError};
use fleet_api::store_canister::method::Releases;

/// A manager whose controller is the principal of PHRASE (so the phrase holds every role).
struct Fleet {
    world: World,
    manager: Principal,
    manager_id: String,
    admin_phrase: String,
    stranger_phrase: String,
}

fn fleet() -> Fleet {
    fleet_on(World::new())
}

/// [`fleet`] on `world`, the manager on its first subnet.
fn fleet_on(world: World) -> Fleet {
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
    ) -> Result<fleet_cli::commands::Output, fleet_cli::error::CliError> {
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

    /// Makes `version` the release new canisters get, as the admin.
    fn set_default_release(&self, version: &str) {
        let admin = principal_of(PHRASE);
        self.world
            .call::<SetDefaultRelease>(self.manager, admin, (version.to_string(),))
            .into_result()
            .unwrap();
    }

    /// Runs the manager's timers, a round a second, until the rollout is finished; its status.
    fn settle(&self) -> serde_json::Value {
        let mut st = serde_json::Value::Null;
        for _ in 0..600 {
            st = self.admin(&["rollout", "status"]);
            if st["phase"] == "Completed"
                || st["phase"] == "Aborted"
                || st["phase"].get("Halted").is_some()
            {
                return st;
            }
            self.world
                .sim
                .advance_time(std::time::Duration::from_secs(1));
            self.world.sim.tick();
        }
        panic!("the rollout did not finish: {st:#}");
    }

    /// `user(n)` creates its canister through the manager, recovered by `user(n + 100)`.
    fn create_user_canister(&self, n: u8) -> Principal {
        let arg = CreateUserCanisterArg {
            recovery_principal: user(n + 100),
            invite: None,
        };
        self.world
            .call::<CreateUserCanister>(self.manager, user(n), (arg,))
            .into_result()
            .unwrap()
            .canister_id
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
            FailsNth::boxed(ic, UploadReleaseChunk::NAME, 3)
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

    // Before upgrading, the owner's status shows what the manager may roll out, read from the
    // canister itself (a composite query to its manager).
    let status = f
        .world
        .fleet(&[
            "--json",
            "recovery",
            "status",
            "--canister",
            &id,
            "--phrase-file",
            &f.stranger_phrase,
        ])
        .unwrap()
        .json;
    let pending = &status["pending_releases"]["Ok"];
    assert_eq!(pending[0]["version"], "2.0.0", "{status}");
    assert_eq!(pending.as_array().map(Vec::len), Some(1));

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
    f.publish_file("v1.wasm", &user_wasm(&[]), "1.0.0");
    f.set_default_release("1.0.0");
    let mut created = Vec::new();
    for n in [11u8, 12] {
        created.push(f.create_user_canister(n).to_text());
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
    let v1 = user_wasm(&[]);
    let v2 = user_wasm(&["v2"]);
    f.publish_file("v1.wasm", &v1, "1.0.0");
    f.publish_file("v2.wasm", &v2, "2.0.0");
    f.set_default_release("1.0.0");
    let mut canisters = Vec::new();
    for n in [21u8, 22] {
        let c = f.create_user_canister(n);
        f.world.put_note(c, user(n), "k", "v");
        canisters.push((c, user(n)));
    }

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
    let done = f.settle();
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

/// A fleet over three subnets: `subnets add` sets the manager's store module (the one this
/// build of fleet bundles) and creates a store canister on each other subnet (controlled by
/// the manager alone, running the store module, holding the default release, which its public
/// `releases` query lists with its chunk hashes; `subnets upgrade-stores` finds them current),
/// `subnets
/// placement spread` puts new canisters on all three, an adopted canister on another subnet
/// is registered there, and a rollout upgrades every one from its own subnet's store (ic_sim,
/// like the IC, refuses a store on another subnet). Bad input is refused with exit code 2.
#[test]
fn a_fleet_spread_over_three_subnets_is_provisioned_and_upgraded_from_each_subnets_store() {
    use fleet_api::manager::method::AdoptCanister;
    use fleet_api::manager::{AdoptCanisterArg, AdoptCanisterError};
    let f = fleet_on(World::with_subnets(3));
    let subnets = f.world.sim.get_app_subnets();
    assert_eq!(f.world.sim.get_subnet(f.manager), Some(subnets[0]));
    let v1 = user_wasm(&[]);
    let v2 = user_wasm(&["v2"]);
    f.publish_file("v1.wasm", &v1, "1.0.0");
    f.set_default_release("1.0.0");
    let (code, e) = f.admin_err(&["subnets", "add", &subnets[0].to_text()]);
    assert_eq!(code, 2, "the manager's own subnet: {e}");
    // A store module that is not wasm is refused as bad input, and nothing is created.
    let bad = f.world.dir.path().join("store.wasm");
    std::fs::write(&bad, b"not wasm").unwrap();
    let canisters_before = f.world.sim.canister_count();
    let (code, e) = f.admin_err(&[
        "subnets",
        "add",
        &subnets[1].to_text(),
        "--store-wasm",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{e}");
    assert_eq!(f.world.sim.canister_count(), canisters_before);
    let store_module = sha256(&wasm_build::wasm("store_canister", &[]));
    let v1_chunks: Vec<serde_bytes::ByteBuf> = v1
        .chunks(1024 * 1024)
        .map(|c| serde_bytes::ByteBuf::from(sha256(c).to_vec()))
        .collect();
    let mut stores = Vec::new();
    for s in &subnets[1..] {
        let added = f.admin(&["subnets", "add", &s.to_text()]);
        assert_eq!(added["subnet"], s.to_text());
        assert_eq!(added["releases"], serde_json::json!(["1.0.0"]));
        let store = Principal::from_text(added["store"].as_str().unwrap()).unwrap();
        assert_eq!(f.world.sim.get_subnet(store), Some(*s));
        assert_eq!(f.world.sim.get_controllers(store), vec![f.manager]);
        assert_eq!(
            f.world.module_hash(store),
            Some(store_module),
            "a store runs the store module"
        );
        let held = f.world.call::<Releases>(store, user(99), ());
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].version, "1.0.0");
        assert_eq!(held[0].module_hash, sha256(&v1).to_vec());
        assert_eq!(held[0].chunk_hashes, v1_chunks, "v1's 1 MiB chunks");
        stores.push(store);
    }
    let (code, e) = f.admin_err(&["subnets", "add", &subnets[1].to_text()]);
    assert_eq!(code, 2, "added twice: {e}");
    // Every store runs the bundled module already: `upgrade-stores` leaves them as they are.
    let upgraded = f.admin(&["subnets", "upgrade-stores"]);
    let outcomes: Vec<(String, String)> = upgraded
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["store"].as_str().unwrap().to_string(),
                u["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = stores
        .iter()
        .map(|s| (s.to_text(), "current".to_string()))
        .collect();
    assert_eq!(outcomes, expected);
    let (code, e) = f.admin_err(&["subnets", "placement", "fill:0"]);
    assert_eq!(code, 2, "{e}");
    let stranger = f
        .run(&["subnets", "placement", "spread"], &f.stranger_phrase)
        .unwrap_err();
    assert_eq!(stranger.exit_code(), 3, "{stranger}");
    f.admin(&["subnets", "placement", "spread"]);
    let mut canisters: Vec<(Principal, Principal)> = Vec::new();
    for n in 30u8..36 {
        let c = f.create_user_canister(n);
        f.world.put_note(c, user(n), "k", "v");
        canisters.push((c, user(n)));
    }
    for s in &subnets {
        let on = canisters
            .iter()
            .filter(|(c, _)| f.world.sim.get_subnet(*c) == Some(*s))
            .count();
        assert_eq!(on, 2, "two canisters on {s}");
    }
    // A canister created elsewhere on the third subnet, adopted there.
    let recovery = user(140);
    let adopted =
        f.world
            .user_canister_on(Some(subnets[2]), f.manager, recovery, user(40), recovery);
    let adopt = |subnet| AdoptCanisterArg {
        canister_id: adopted,
        owner: Some(user(40)),
        subnet,
    };
    let unknown = Principal::from_slice(&[7; 29]);
    assert_eq!(
        f.world
            .call::<AdoptCanister>(f.manager, recovery, (adopt(Some(unknown)),))
            .into_result(),
        Err(AdoptCanisterError::UnknownSubnet(unknown))
    );
    let record = f
        .world
        .call::<AdoptCanister>(f.manager, recovery, (adopt(Some(subnets[2])),))
        .into_result()
        .unwrap();
    assert_eq!(record.subnet, Some(subnets[2]));
    canisters.push((adopted, user(40)));
    f.world.put_note(adopted, user(40), "k", "v");
    let listed = f.admin(&["subnets", "list"]);
    let counts: Vec<u64> = listed["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["canisters"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, vec![2, 2, 3]);
    assert_eq!(listed["subnets"][0]["own"], true);

    f.publish_file("v2.wasm", &v2, "2.0.0");
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
        "100",
        "--bake-secs",
        "0",
        "--subnet-max-in-flight",
        "1",
        "--halt-scope",
        "subnet",
    ]);
    assert_eq!(started["canisters"], 7);
    // One tick later: one pipeline per subnet, whatever the overall limit allows.
    f.world.sim.advance_time(std::time::Duration::from_secs(1));
    f.world.sim.tick();
    let running = f.admin(&["rollout", "status"]);
    let in_flight: Vec<u64> = running["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["in_flight"].as_u64().unwrap())
        .collect();
    assert_eq!(in_flight, vec![1, 1, 1], "{running:#}");
    let done = f.settle();
    assert_eq!(done["phase"], "Completed", "{done:#}");
    assert_eq!(done["counts"]["done"], 7);
    let per_subnet: Vec<(serde_json::Value, u64)> = done["subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["subnet"].clone(), s["done"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        per_subnet,
        vec![
            (serde_json::Value::Null, 2),
            (serde_json::json!(subnets[1].to_text()), 2),
            (serde_json::json!(subnets[2].to_text()), 3),
        ],
        "the manager's own subnet is the rollout's unnamed one"
    );
    for (c, owner) in &canisters {
        assert_eq!(f.world.module_hash(*c), Some(sha256(&v2)));
        assert_eq!(f.world.notes(*c, *owner), vec![("k".into(), "v".into())]);
    }
    let listed = f.admin(&["subnets", "list"]);
    for s in listed["subnets"].as_array().unwrap() {
        assert_eq!(s["releases"], serde_json::json!(["1.0.0", "2.0.0"]), "{s}");
    }
    for store in &stores {
        let held: Vec<String> = f
            .world
            .call::<Releases>(*store, user(99), ())
            .into_iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(held, ["1.0.0", "2.0.0"], "each store lists what it holds");
    }
}

/// `rollout plan` and `rollout start --dry-run` start nothing, show the waves `rollout start`
/// then creates, and estimate the cycles the rollout burns within 10% of what ic_sim charged:
/// the balance drops of the manager and of every canister of the cohort, read from outside
/// (top-ups would cancel out in that sum; this plan has no top-up budget).
#[test]
fn rollout_plan_previews_the_start_and_estimates_its_cycles_within_ten_percent() {
    let f = fleet();
    f.publish_file("v1.wasm", &user_wasm(&[]), "1.0.0");
    f.publish_file("v2.wasm", &user_wasm(&["v2"]), "2.0.0");
    f.set_default_release("1.0.0");
    let mut canisters = Vec::new();
    for n in 1..=30u8 {
        // The manager creates at most 10 canisters at once, then one every 6 s.
        f.world.sim.advance_time(std::time::Duration::from_secs(6));
        let c = f.create_user_canister(n);
        f.world.put_note(c, user(n), "k", "a note");
        canisters.push(c);
    }
    let plan = [
        "--version",
        "2.0.0",
        "--from",
        "1.0.0",
        "--canary",
        "3",
        "--waves",
        "50,100",
        "--bake-secs",
        "0",
        "--max-in-flight",
        "10",
        "--keep-snapshot-secs",
        "0",
    ];
    let with = |cmd: &[&'static str]| [cmd, &plan[..]].concat();
    let estimate = f.admin(&with(&["rollout", "plan"]));
    let dry = f.admin(&with(&["rollout", "start", "--dry-run"]));
    assert_eq!(dry["waves"], estimate["waves"]);
    assert_eq!(estimate["canisters"], 30);
    assert_eq!(estimate["take_snapshot"], true);
    let (code, _) = f.admin_err(&["rollout", "status"]);
    assert_eq!(code, 10, "a dry run starts no rollout");
    let text = f
        .run(&with(&["rollout", "plan"]), &f.admin_phrase)
        .unwrap()
        .text;
    println!("{text}");

    let user_balances = || -> u128 {
        canisters
            .iter()
            .map(|c| f.world.sim.cycle_balance(*c))
            .sum()
    };
    let (manager_before, users_before) = (f.world.sim.cycle_balance(f.manager), user_balances());
    let instructions_before = f.world.sim.instructions_total(f.manager);
    let started = f.admin(&with(&["rollout", "start"]));
    assert_eq!(started["id"], estimate["rollout_id"]);
    let sizes = |r: &serde_json::Value| -> Vec<serde_json::Value> {
        let waves = r["waves"].as_array().unwrap();
        waves.iter().map(|w| w["size"].clone()).collect()
    };
    assert_eq!(
        sizes(&started),
        sizes(&estimate),
        "the waves the dry run showed"
    );
    let done = f.settle();
    assert_eq!(done["phase"], "Completed");
    assert_eq!(done["counts"]["done"], 30);
    let by_manager = manager_before - f.world.sim.cycle_balance(f.manager);
    let by_users = users_before - user_balances();
    let charged = by_manager + by_users;
    let instructions = f.world.sim.instructions_total(f.manager) - instructions_before;
    let burned = estimate["burned"].as_u64().unwrap() as u128;
    let snapshot = f
        .world
        .sim
        .list_canister_snapshots(canisters[0], Some(f.manager))
        .unwrap()[0]
        .total_size;
    println!(
        "estimated {burned} cycles (manager {}, user canisters {}), ic_sim charged {charged} \
         (manager {by_manager}, user canisters {by_users}): {:+.2}%; a snapshot of {snapshot} \
         bytes, {instructions} manager instructions, {} s (estimated {} s)",
        estimate["burned_by_manager"],
        estimate["burned_by_user_canisters"],
        (burned as f64 - charged as f64) * 100.0 / charged as f64,
        (done["finished_at"].as_u64().unwrap() - done["created_at"].as_u64().unwrap())
            / 1_000_000_000,
        estimate["eta_secs"],
    );
    assert!(
        burned.abs_diff(charged) * 10 <= charged,
        "estimate {burned} vs charged {charged}"
    );
}

/// Only deployers may preview a rollout, as only they may start one: the manager answers
/// `NotAuthorized`, and the CLI exits with code 3.
#[test]
fn rollout_plan_is_refused_to_a_caller_without_the_deployer_role() {
    let f = fleet();
    fleet_of_two(&f);
    let reply = f
        .world
        .call::<PlanRollout>(f.manager, user(77), (RolloutPlanArg::to("2.0.0"),));
    assert_eq!(reply.into_result(), Err(StartRolloutError::NotAuthorized));
    for cmd in [&["rollout", "plan"][..], &["rollout", "start", "--dry-run"]] {
        let e = f
            .run(&[cmd, &["--version", "2.0.0"]].concat(), &f.stranger_phrase)
            .unwrap_err();
        assert_eq!(e.exit_code(), 3, "{e}");
    }
    let (code, _) = f.admin_err(&["rollout", "status"]);
    assert_eq!(code, 10, "nothing started");
}

/// While kept snapshots wait for their deletion, the manager's driver sleeps instead of ticking
/// every second: its balance does not move; it wakes when the first deletion is due, deletes
/// them (checked from outside), stops, and costs no more than the estimate's line says.
#[test]
fn the_driver_sleeps_until_kept_snapshots_are_due_for_deletion() {
    let f = fleet();
    let canisters = fleet_of_two(&f);
    let plan = [
        "--version",
        "2.0.0",
        "--canary",
        "0",
        "--waves",
        "100",
        "--bake-secs",
        "0",
        "--keep-snapshot-secs",
        "60",
    ];
    let estimate = f.admin(&[&["rollout", "plan"][..], &plan].concat());
    let line = estimate["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| {
            l["what"]
                .as_str()
                .unwrap()
                .starts_with("snapshot deletions")
        })
        .expect("a line for the deletions")
        .clone();
    f.admin(&[&["rollout", "start"][..], &plan].concat());
    assert_eq!(f.settle()["phase"], "Completed");
    let kept = || {
        canisters
            .iter()
            .map(|(c, _)| f.world.snapshot_count(*c, f.manager))
            .sum::<usize>()
    };
    let balance = || f.world.sim.cycle_balance(f.manager);
    // Seconds of simulated time, a round each; the manager's balance after them.
    let seconds = |n: u32| {
        for _ in 0..n {
            f.world.sim.advance_time(std::time::Duration::from_secs(1));
            f.world.sim.tick();
        }
        balance()
    };
    assert_eq!(kept(), 2);
    let start = balance();
    // The tick after the last result puts the driver to sleep.
    let asleep = seconds(3);
    assert_eq!(seconds(30), asleep, "no tick while the snapshots wait");
    let done = seconds(60);
    assert_eq!(kept(), 0, "deleted once due");
    let spent = asleep - done;
    println!(
        "the ticks after the rollout ended, until the driver slept: {} cycles",
        start - asleep
    );
    let estimated = line["cycles"].as_u64().unwrap() as u128;
    println!("deleting the kept snapshots: {spent} cycles, estimated {estimated}");
    assert!(spent > 0 && spent <= estimated, "{spent} vs {estimated}");
    assert_eq!(seconds(20), done, "the timer stopped");
}

/// While a rollout waits out the bake time after a stage, the driver sleeps until the bake
/// ends: the manager's balance does not move, and the next stage opens on time and completes
/// (checked from outside: both canisters run 2.0.0).
#[test]
fn the_driver_sleeps_through_a_bake_time() {
    let f = fleet();
    let canisters = fleet_of_two(&f);
    f.admin(&[
        "rollout",
        "start",
        "--version",
        "2.0.0",
        "--canary",
        "1",
        "--waves",
        "100",
        "--bake-secs",
        "300",
    ]);
    let balance = || f.world.sim.cycle_balance(f.manager);
    let round = || {
        f.world.sim.advance_time(std::time::Duration::from_secs(1));
        f.world.sim.tick();
    };
    let mut baking = f.admin(&["rollout", "status"]);
    for _ in 0..120 {
        if baking["waves"][0]["completed_at"].is_u64() && baking["counts"]["in_flight"] == 0 {
            break;
        }
        round();
        baking = f.admin(&["rollout", "status"]);
    }
    let bake_end = baking["next_wave_at"].as_u64().expect("baking");
    // The tick after the canary's last result puts the driver to sleep.
    for _ in 0..3 {
        round();
    }
    let asleep = balance();
    for _ in 0..200 {
        round();
    }
    assert_eq!(balance(), asleep, "no tick while the bake time runs");
    let done = f.settle();
    assert_eq!(done["phase"], "Completed");
    assert!(done["waves"][1]["opened_at"].as_u64().unwrap() >= bake_end);
    assert!(
        done["waves"][1]["opened_at"].as_u64().unwrap() < bake_end + 5_000_000_000,
        "the stage opens when the bake ends: {done}"
    );
    for (c, _) in &canisters {
        assert_eq!(f.world.module_hash(*c), Some(sha256(&user_wasm(&["v2"]))));
    }
}

/// Two canisters on 1.0.0 with 2.0.0 published: (canister, owner) pairs.
fn fleet_of_two(f: &Fleet) -> Vec<(Principal, Principal)> {
    f.publish_file("v1.wasm", &user_wasm(&[]), "1.0.0");
    f.publish_file("v2.wasm", &user_wasm(&["v2"]), "2.0.0");
    f.set_default_release("1.0.0");
    let mut canisters: Vec<(Principal, Principal)> = [31u8, 32]
        .iter()
        .map(|&n| (f.create_user_canister(n), user(n)))
        .collect();
    canisters.sort();
    canisters
}

#[test]
fn invalid_rollout_plans_are_refused_with_exit_code_2_and_start_nothing() {
    let f = fleet();
    let canisters = fleet_of_two(&f);
    let stranger = principal_of(STRANGER_PHRASE).to_text();
    let a = canisters[0].0.to_text();
    let bad_file = f
        .world
        .dir
        .file("bad-include", b"# canisters\nnot-a-principal\n");
    let empty_file = f.world.dir.file("empty-include", b"# nothing\n\n");
    for (args, wanted) in [
        // Refused by the CLI with the manager's own rules.
        (vec!["--waves", "10,5,100"], "increase strictly"),
        (vec!["--waves", "10,50"], "must be 100%"),
        (vec!["--max-in-flight", "0"], "MaxInFlight"),
        (vec!["--max-failed-percent", "120"], "--max-failed-percent"),
        (vec!["--min-cycles", "9", "--top-up-to", "1"], "--top-up-to"),
        (
            vec!["--backoff-base-secs", "600", "--backoff-max-secs", "60"],
            "retry",
        ),
        (vec!["--include", &a, "--exclude", &a], "both included"),
        (vec!["--include-file", &bad_file], "bad-include:2"),
        (vec!["--include-file", &empty_file], "lists no canister"),
        (
            vec!["--canary", "1", "--canary-list", &a],
            "cannot be used with",
        ),
        // Refused by the manager: a canary that is not in the fleet.
        (vec!["--canary-list", &stranger], "invalid rollout plan"),
        (vec!["--from", "2.0.0"], "invalid rollout plan"),
    ] {
        let mut all = vec!["rollout", "start", "--version", "2.0.0"];
        all.extend(args.iter().copied());
        let mut with_target = all.clone();
        with_target.extend(["--manager", &f.manager_id, "--phrase-file", &f.admin_phrase]);
        let cli = <fleet_cli::cli::Cli as clap::Parser>::try_parse_from(
            std::iter::once("fleet").chain(with_target.iter().copied()),
        );
        match cli {
            // clap refuses conflicting flags itself, with its usage exit code 2.
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{args:?}");
                assert!(e.to_string().contains(wanted), "{args:?}: {e}");
            }
            Ok(_) => {
                let (code, e) = f.admin_err(&all);
                assert_eq!(code, 2, "{args:?}: {e}");
                assert!(e.to_string().contains(wanted), "{args:?}: {e}");
            }
        }
        let (code, _) = f.admin_err(&["rollout", "status"]);
        assert_eq!(code, 10, "{args:?} started a rollout");
    }
    for (c, _) in &canisters {
        assert_eq!(f.world.module_hash(*c), Some(sha256(&user_wasm(&[]))));
    }
}

#[test]
fn rollout_start_takes_every_plan_option_and_status_watch_follows_it_to_the_end() {
    let f = fleet();
    let canisters = fleet_of_two(&f);
    let (a, owner_a) = canisters[0];
    let (b, _) = canisters[1];
    f.world.put_note(a, owner_a, "k", "v");
    let include = f.world.dir.file(
        "include",
        format!("# canisters to upgrade\n{a}  # the first\n").as_bytes(),
    );
    let started = f.admin(&[
        "rollout",
        "start",
        "--version",
        "2.0.0",
        "--from",
        "1.0.0",
        "--include-file",
        &include,
        "--exclude",
        &b.to_text(),
        "--canary-list",
        &a.to_text(),
        "--waves",
        "100",
        "--bake-secs",
        "5",
        "--max-in-flight",
        "3",
        "--starts-per-minute",
        "30",
        "--burst",
        "2",
        "--starts-per-tick",
        "1",
        "--max-failed-percent",
        "50",
        "--max-consecutive-failures",
        "2",
        "--keep-snapshot-secs",
        "0",
        "--min-cycles",
        "100000000000",
        "--top-up-to",
        "200000000000",
        "--cycles-budget",
        "0",
        "--stop-attempts",
        "2",
        "--backoff-base-secs",
        "1",
        "--backoff-max-secs",
        "4",
    ]);
    // Only the included `a`, as the canary; `b` is left out.
    assert_eq!(started["canisters"], 1, "{started:#}");
    assert_eq!(started["summary"]["selected"], 1);
    assert_eq!(started["waves"][0]["label"], "Canary");

    let done = f.admin(&["rollout", "status", "--watch", "--interval-secs", "1"]);
    assert_eq!(done["phase"], "Completed", "{done:#}");
    assert_eq!(done["counts"]["done"], 1);
    assert_eq!(
        done["target"]["module_hash"],
        hex::encode(sha256(&user_wasm(&["v2"]))),
        "hashes are hex in JSON"
    );
    assert_eq!(f.world.module_hash(a), Some(sha256(&user_wasm(&["v2"]))));
    assert_eq!(f.world.module_hash(b), Some(sha256(&user_wasm(&[]))));

    // The snapshot kept from that upgrade restores `a` to 1.0.0 with its data.
    let (code, e) = f.admin_err(&["rollout", "rollback", "--restore-snapshots"]);
    assert_eq!(code, 2, "no canister named: {e}");
    let restore = f.admin(&[
        "rollout",
        "rollback",
        "--restore-snapshots",
        "--canister",
        &a.to_text(),
        "--max-in-flight",
        "1",
    ]);
    assert_eq!(restore["canisters"], 1, "{restore:#}");
    let restored = f.admin(&["rollout", "status", "--watch", "--interval-secs", "1"]);
    assert_eq!(restored["phase"], "Completed", "{restored:#}");
    assert_eq!(restored["counts"]["restored"], 1);
    assert_eq!(f.world.module_hash(a), Some(sha256(&user_wasm(&[]))));
    assert_eq!(f.world.notes(a, owner_a), vec![("k".into(), "v".into())]);

    // Drain for a manager upgrade: nothing in flight, so ready at once; `end-drain` ends it
    // (resume does not: a drain is not the rollout's phase).
    let drained = f.admin(&["manager", "drain", "--wait", "--interval-secs", "1"]);
    assert_eq!(drained["ready"], true, "{drained:#}");
    assert_eq!(drained["draining"], true);
    let (code, e) = f.admin_err(&["rollout", "start", "--version", "2.0.0"]);
    assert_eq!(code, 8, "no rollout while draining: {e}");
    let (code, _) = f.admin_err(&["rollout", "resume"]);
    assert_eq!(code, 8, "resume of a completed rollout");
    let ended = f.admin(&["manager", "end-drain"]);
    assert_eq!(ended["draining"], false, "{ended:#}");
    let again = f.admin(&[
        "rollout",
        "start",
        "--version",
        "2.0.0",
        "--canary",
        "0",
        "--waves",
        "100",
    ]);
    assert_eq!(again["canisters"], 2, "{again:#}");
    // A stranger may not drain the manager.
    let e = f
        .run(&["manager", "drain"], &f.stranger_phrase)
        .unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
}

/// `admission` and `policy` drive the manager's admission and release policy: invites are
/// issued (only their hashes reach the manager), a stranger cannot change admission, and under
/// a quorum of two a publish waits for a second operator's `policy approve`.
#[test]
fn admission_and_policy_commands_govern_provisioning_and_publishing() {
    let f = fleet();
    assert_eq!(f.admin(&["admission", "show"])["mode"], "open");
    let codes = f.admin(&["admission", "invite", "--count", "2"]);
    assert_eq!(codes.as_array().map(Vec::len), Some(2));
    let shown = f.admin(&[
        "admission",
        "set",
        "--mode",
        "allowlist",
        "--budget-cycles",
        "1000000000000000",
    ]);
    assert_eq!(
        (shown["mode"].as_str(), shown["invites"].as_u64()),
        (Some("allowlist"), Some(2))
    );
    let e = f
        .run(
            &["admission", "set", "--mode", "open", "--budget-cycles", "1"],
            &f.stranger_phrase,
        )
        .unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert_eq!(f.admin(&["admission", "show"])["mode"], "allowlist");

    // Two operators with every role, then a quorum of two.
    let second = principal_of(STRANGER_PHRASE).to_text();
    let third = user(3).to_text();
    for op in [&second, &third] {
        f.admin(&[
            "operators",
            "add",
            op,
            "--role",
            "admin",
            "--role",
            "releaser",
            "--role",
            "deployer",
        ]);
    }
    let policy = f.admin(&["policy", "set", "--quorum", "2", "--notice-secs", "0"]);
    assert_eq!(policy["quorum"], 2);

    let file = f.world.dir.file("v1.wasm", &user_wasm(&[]));
    let (code, e) = f.admin_err(&["release", "publish", &file, "--version", "1.0.0"]);
    assert!(e.to_string().contains("awaiting approval"), "{e}");
    assert_eq!(code, 8, "{e}");
    assert_eq!(f.admin(&["release", "list"]), serde_json::json!([]));
    let requests = f.admin(&["policy", "requests"]);
    assert_eq!(requests[0]["action"], "publish 1.0.0");
    let id = requests[0]["id"].as_u64().unwrap().to_string();
    let approved = f
        .run(&["--json", "policy", "approve", &id], &f.stranger_phrase)
        .unwrap()
        .json;
    let state = approved["state"].as_str().unwrap_or_default();
    assert!(state.starts_with("Executed"), "{approved}");
    assert_eq!(f.admin(&["release", "list"])[0]["version"], "1.0.0");
    assert_eq!(f.admin(&["policy", "pending"])[0]["version"], "1.0.0");
}

/// The user canister's interface as its modules embed it, and variants of it.
fn user_service() -> String {
    wasm_build::service_text(
        &std::fs::read_to_string(wasm_build::did_file("user_canister")).unwrap(),
    )
}

/// The user canister's module with `service` as its `candid:service` metadata.
fn with_service(wasm: &[u8], service: &str) -> Vec<u8> {
    wasm_build::with_custom_section(wasm, wasm_build::CANDID_SECTION, service.as_bytes())
}

#[test]
fn publish_refuses_a_release_that_breaks_the_interface_unless_allowed_with_a_reason() {
    use fleet_api::manager::method::{GetRelease, GetReleaseInterface};

    let f = fleet();
    let code = user_wasm(&[]);
    let v1 = user_service();
    assert!(v1.contains("  list : (ListNotesArg)"), "{v1}");
    f.publish_file("v1.wasm", &with_service(&code, &v1), "1.0.0");
    f.set_default_release("1.0.0");
    let interface_of = |version: &str| {
        f.world
            .call::<GetReleaseInterface>(f.manager, user(1), (version.to_string(),))
    };
    assert_eq!(
        interface_of("1.0.0").unwrap().service.as_deref(),
        Some(&v1[..])
    );

    // A new method: a subtype of the default release's interface, published.
    let last = "  version : () -> (text) query;\n";
    assert!(v1.contains(last), "{v1}");
    let added = v1.replace(last, &format!("  export : () -> (blob) query;\n{last}"));
    let r = f.publish_file("v11.wasm", &with_service(&code, &added), "1.1.0");
    assert_eq!(r["interface"]["against"], "release 1.0.0", "{r}");
    assert_eq!(r["interface"]["incompatible"], serde_json::json!([]), "{r}");
    let kept = interface_of("1.1.0").unwrap();
    assert_eq!(kept.service.as_deref(), Some(&added[..]));
    assert_eq!(kept.breaking_change, None);

    // `list` removed and `put` taking a second, required argument: refused before any upload,
    // naming both methods.
    let broken = v1
        .replace("  list : (ListNotesArg) -> (ListNotesReply) query;\n", "")
        .replace("  put : (PutNoteArg)", "  put : (PutNoteArg, nat64)");
    let file = f.world.dir.file("v2.wasm", &with_service(&code, &broken));
    let (exit, e) = f.admin_err(&["release", "publish", &file, "--version", "2.0.0"]);
    assert_eq!(exit, 8, "{e}");
    let message = e.to_string();
    assert!(
        message.contains("release 1.0.0") && message.contains("list, put"),
        "{message}"
    );
    let none = f
        .world
        .call::<GetRelease>(f.manager, user(1), ("2.0.0".to_string(),));
    assert_eq!(none, None, "nothing was published");
    let status = f.admin_err(&["release", "show", "2.0.0"]).1;
    assert!(
        matches!(status, fleet_cli::error::CliError::NotFound(_)),
        "no upload began: {status}"
    );

    // `release check` says the same without a manager when given the old interface as a file,
    // and accepts the compatible one.
    let old_did = f.world.dir.file("v1.did", v1.as_bytes());
    let (exit, e) = f
        .world
        .fleet_err(&["release", "check", &file, "--against", &old_did]);
    assert_eq!(exit, 8, "{e}");
    let ok = f.world.dir.file("v11.wasm", &with_service(&code, &added));
    let checked = f
        .world
        .fleet(&["--json", "release", "check", &ok, "--against", &old_did])
        .unwrap()
        .json;
    assert_eq!(checked["incompatible"], serde_json::json!([]), "{checked}");
    // Against a release by version, through the manager.
    let (exit, _) = f.admin_err(&["release", "check", &file, "--against", "1.1.0"]);
    assert_eq!(exit, 8);

    // Allowed with a reason: published, and the reason is kept and shown.
    let reason = "notes are listed by the new search endpoint";
    let file = f.world.dir.file("v2b.wasm", &with_service(&code, &broken));
    let r = f.admin(&[
        "release",
        "publish",
        &file,
        "--version",
        "2.0.0",
        "--allow-breaking",
        reason,
    ]);
    assert_eq!(r["outcome"], "published", "{r}");
    assert_eq!(
        interface_of("2.0.0").unwrap().breaking_change.as_deref(),
        Some(reason)
    );
    let shown = f.admin(&["release", "show", "2.0.0"]);
    assert_eq!(shown["interface"]["breaking_change"], reason, "{shown}");

    // A module without `candid:service` is published with a warning and no interface.
    let r = f.publish_file("bare.wasm", &padded(&code, 10), "2.1.0");
    let warning = r["interface"]["warnings"][0].as_str().unwrap_or_default();
    assert!(warning.contains("candid:service"), "{r}");
    assert_eq!(interface_of("2.1.0"), None);
}

/// An admin backs up and restores any managed canister through the manager, holding no
/// controller key: the notes written after the backup are gone after the restore, and the
/// snapshot taken for the backup and the one uploaded for the restore are deleted. Callers
/// without the role, canisters the manager does not manage and methods outside the snapshot
/// set are refused, changing nothing.
#[test]
fn admins_back_up_and_restore_managed_canisters_through_the_manager() {
    use fleet_api::manager::method::ManageCanister;
    use fleet_api::manager::{ManageCanisterArg, ManageCanisterError};

    let f = fleet();
    f.publish_file("v1.wasm", &user_wasm(&[]), "1.0.0");
    f.set_default_release("1.0.0");
    let canister = f.create_user_canister(1);
    let id = canister.to_text();
    f.world.put_note(canister, user(1), "a", "kept");
    let file = f.world.dir.path().join("operator-backup.bin");
    let file = file.to_str().unwrap();
    let snapshots = || f.world.snapshot_count(canister, f.manager);

    let out = f.admin(&["canisters", "backup", &id, "--out", file]);
    assert_eq!(out["header"]["canister"], id, "{out}");
    assert_eq!(snapshots(), 0, "the backup's snapshot is deleted");
    f.world
        .put_note(canister, user(1), "b", "written after the backup");
    assert_eq!(f.world.notes(canister, user(1)).len(), 2);

    // Without the admin role nothing is read or written.
    let stranger = f.run(&["canisters", "restore", &id, file], &f.stranger_phrase);
    assert!(stranger.is_err(), "a stranger restored a canister");
    assert_eq!(f.world.notes(canister, user(1)).len(), 2);

    f.admin(&["canisters", "restore", &id, file]);
    assert_eq!(
        f.world.notes(canister, user(1)),
        vec![("a".to_string(), "kept".to_string())]
    );
    assert_eq!(snapshots(), 0, "the uploaded snapshot is deleted");

    // The manager forwards only snapshot, stop, start and status calls, and only for the
    // canisters it manages.
    let admin = principal_of(PHRASE);
    let ask = |method: &str, about: Principal| {
        let arg = ManageCanisterArg {
            method: method.into(),
            arg: encode_one(ic_management_canister_types::CanisterIdRecord { canister_id: about })
                .unwrap(),
        };
        f.world
            .call::<ManageCanister>(f.manager, admin, (arg,))
            .into_result()
    };
    assert_eq!(
        ask("uninstall_code", canister),
        Err(ManageCanisterError::MethodNotAllowed {
            method: "uninstall_code".into()
        })
    );
    assert_eq!(
        ask("canister_status", f.manager),
        Err(ManageCanisterError::NotManaged {
            canister: f.manager
        })
    );
    assert!(ask("canister_status", canister).is_ok());
}
