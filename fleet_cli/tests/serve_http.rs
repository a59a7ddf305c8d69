//! The `fleet` command tree through its ic-agent backend, over loopback HTTP, against
//! `fleet sim serve --fleet` started in-process: the operator flows (release publish, rollout
//! start, pause, resume, status --watch, canisters list) and the end-user flows (recovery
//! principal, status, rollback, upgrade), with PEM identities. Outcomes are checked from
//! outside through certified read_state (module hashes, controllers) and manager queries.
//! Every wait is bounded in time; the server stops when its handle drops.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use candid::Principal;
use clap::Parser;
use common::*;
use fleet_api::manager::method::CreateUserCanister;
use fleet_api::manager::CreateUserCanisterArg;
use fleet_api::user::method::{List, Put, Version};
use fleet_api::user::{ListNotesArg, PutNoteArg};
use fleet_cli::backend::agent::{AgentIc, Network};
use fleet_cli::backend::Endpoints;
use fleet_cli::cli::Cli;
use fleet_cli::commands::{agent_connector, run, Output};
use fleet_cli::error::CliError;
use fleet_cli::identity::Identity;
use fleet_cli::serve::{self, ServeArgs};
use ic_agent::Agent;
use k256::pkcs8::LineEnding;

/// A dfx-style secp256k1 PEM (SEC1) for a fixed key, and the identity it holds.
fn pem(dir: &TempDir, name: &str, seed: u8) -> (String, Identity) {
    let key = k256::SecretKey::from_slice(&[seed; 32]).unwrap();
    let text = key.to_sec1_pem(LineEnding::LF).unwrap();
    let path = dir.file(name, text.as_bytes());
    let identity = Identity::from_pem(text.as_bytes(), name).unwrap();
    (path, identity)
}

/// Runs `fleet ARGS...` as the binary does, through the real ic-agent connector.
fn fleet(args: &[&str]) -> Result<Output, CliError> {
    let cli = Cli::try_parse_from(std::iter::once("fleet").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("fleet {args:?} does not parse: {e}"));
    run(&cli, &agent_connector, &mut |_| Ok(false))
}

/// `fleet ARGS...` on a thread, failing the test if it takes longer than `limit`.
fn fleet_within(limit: Duration, args: Vec<String>) -> Output {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = tx.send(fleet(&args).map_err(|e| e.to_string()));
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the command did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("the command failed: {e}"))
}

/// `fleet sim serve --fleet` in-process, `operator` holding every role of its manager.
fn serve_fleet(operator: &Identity) -> (ic_sim_http::ServerHandle, serve::Ready) {
    serve::start(&ServeArgs {
        port: 0,
        fleet: true,
        operators: vec![operator.principal()],
    })
    .unwrap()
}

/// `args` followed by `flags`, as owned arguments for [`fleet_within`].
fn with_flags(args: &[&str], flags: &[&str]) -> Vec<String> {
    args.iter().chain(flags).map(|a| a.to_string()).collect()
}

/// Certified facts about a canister, read through ic-agent.
struct Reader {
    agent: Agent,
    rt: tokio::runtime::Runtime,
}

impl Reader {
    fn new(url: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let agent = Agent::builder().with_url(url).build().unwrap();
        rt.block_on(agent.fetch_root_key()).unwrap();
        Reader { agent, rt }
    }

    fn module_hash(&self, canister: Principal) -> Vec<u8> {
        self.rt
            .block_on(self.agent.read_state_canister_module_hash(canister))
            .unwrap()
    }

    fn controllers(&self, canister: Principal) -> Vec<Principal> {
        let mut c = self
            .rt
            .block_on(self.agent.read_state_canister_controllers(canister))
            .unwrap();
        c.sort();
        c
    }
}

#[test]
fn operator_and_end_user_flows_run_over_http_against_fleet_sim_serve() {
    let dir = TempDir::new();
    let (op_pem, operator) = pem(&dir, "operator.pem", 0x31);
    let (_, owner) = pem(&dir, "owner.pem", 0x32);
    let phrase_file = dir.file("phrase.txt", PHRASE.as_bytes());
    let recovery = principal_of(PHRASE);
    let (server, ready) = serve_fleet(&operator);
    let url = ready.url.clone();
    let manager = Principal::from_text(ready.manager.as_deref().unwrap()).unwrap();
    let m = manager.to_text();
    let reader = Reader::new(&url);
    assert_eq!(hex::encode(server.root_key()), ready.root_key);
    let v1 = user_wasm(&[]);
    let v2 = user_wasm(&["v2"]);
    let v2_file = dir.file("v2.wasm", &v2);
    let op = |args: &[&str]| {
        with_flags(
            args,
            &["--network", &url, "--manager", &m, "--pem-file", &op_pem],
        )
    };
    let minute = Duration::from_secs(60);

    // An owner gets a canister from the manager (as the app would ask for it) and writes a
    // note; the canister runs the bundled 1.0.0, published by `--fleet`.
    let owner_ic = AgentIc::connect(&Network::Url(url.clone()), &owner).unwrap();
    let canister = owner_ic
        .call::<CreateUserCanister>(
            manager,
            (CreateUserCanisterArg {
                recovery_principal: recovery,
                invite: None,
            },),
        )
        .unwrap()
        .into_result()
        .unwrap()
        .canister_id;
    let c = canister.to_text();
    owner_ic
        .call::<Put>(
            canister,
            (PutNoteArg {
                key: "k".into(),
                text: "kept".into(),
            },),
        )
        .unwrap();
    let notes = || {
        owner_ic
            .call::<List>(
                canister,
                (ListNotesArg {
                    start_after: None,
                    limit: 10,
                },),
            )
            .unwrap()
            .into_result()
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.note.text))
            .collect::<Vec<_>>()
    };
    let before = notes();
    assert_eq!(before, [("k".to_string(), "kept".to_string())]);
    assert_eq!(reader.module_hash(canister), sha256(&v1).to_vec());
    let mut expected = vec![manager, recovery];
    expected.sort();
    assert_eq!(reader.controllers(canister), expected);

    // Operator: publish 2.0.0, list the fleet, start a rollout, pause, resume, watch it end.
    let published = fleet_within(
        minute,
        op(&[
            "--json",
            "release",
            "publish",
            &v2_file,
            "--version",
            "2.0.0",
        ]),
    );
    assert_eq!(
        published.json["release"]["sha256"],
        hex::encode(sha256(&v2))
    );
    let listed = fleet_within(minute, op(&["--json", "canisters", "list"]));
    assert_eq!(listed.json[0]["canister_id"], c);
    assert_eq!(listed.json[0]["release"], "1.0.0");
    fleet_within(
        minute,
        op(&[
            "rollout",
            "start",
            "--version",
            "2.0.0",
            "--bake-secs",
            "0",
            "--canary",
            "0",
        ]),
    );
    let paused = fleet_within(minute, op(&["--json", "rollout", "pause"]));
    assert_eq!(paused.json["phase"], "Paused");
    let resumed = fleet_within(minute, op(&["--json", "rollout", "resume"]));
    assert_ne!(resumed.json["phase"], "Paused");
    let done = fleet_within(
        2 * minute,
        op(&[
            "--json",
            "rollout",
            "status",
            "--watch",
            "--interval-secs",
            "1",
        ]),
    );
    assert_eq!(done.json["phase"], "Completed", "{}", done.json);
    assert_eq!(reader.module_hash(canister), sha256(&v2).to_vec());
    assert_eq!(owner_ic.call::<Version>(canister, ()).unwrap(), "2.0.0");
    assert_eq!(notes(), before, "the note survives the upgrade");
    let listed = fleet_within(
        minute,
        op(&["--json", "canisters", "list", "--release", "2.0.0"]),
    );
    assert_eq!(listed.json[0]["canister_id"], c);

    // End user, by the recovery phrase alone: principal, status, rollback to the manager's
    // snapshot (1.0.0), upgrade again to 2.0.0.
    let user = |args: &[&str]| with_flags(args, &["--phrase-file", &phrase_file]);
    let on_canister = |args: &[&str]| {
        with_flags(
            args,
            &[
                "--phrase-file",
                &phrase_file,
                "--network",
                &url,
                "--canister",
                &c,
            ],
        )
    };
    let principal = fleet_within(minute, user(&["--json", "recovery", "principal"]));
    assert_eq!(principal.json["principal"], recovery.to_text());
    let status = fleet_within(minute, on_canister(&["--json", "recovery", "status"]));
    assert_eq!(status.json["status"], "running");
    assert_eq!(status.json["caller_is_controller"], true);
    assert_eq!(status.json["module_hash"], hex::encode(sha256(&v2)));
    let rolled = fleet_within(minute, on_canister(&["--json", "recovery", "rollback"]));
    assert_eq!(rolled.json["version"], "1.0.0", "{}", rolled.json);
    assert_eq!(reader.module_hash(canister), sha256(&v1).to_vec());
    let upgraded = fleet_within(
        minute,
        on_canister(&[
            "--json",
            "recovery",
            "upgrade",
            "--wasm",
            &v2_file,
            "--version",
            "2.0.0",
        ]),
    );
    assert_eq!(upgraded.json["outcome"], "upgraded", "{}", upgraded.json);
    assert_eq!(reader.module_hash(canister), sha256(&v2).to_vec());
    assert_eq!(reader.controllers(canister), expected);
    assert_eq!(notes(), before);
    server.stop();
}

/// `fleet sim serve` as a process: it prints its ready line, serves, and on SIGINT (Ctrl-C)
/// stops and exits 0. Every wait is bounded.
#[test]
fn the_binary_serves_until_ctrl_c() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    use std::time::Instant;

    /// Ends the process if the test fails before it stopped.
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut guard = Guard(
        Command::new(env!("CARGO_BIN_EXE_fleet"))
            .args(["sim", "serve", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let child = &mut guard.0;
    // The output's lines, read on a thread so that every wait for one is bounded.
    let (lines_tx, lines) = mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let next_line = |what: &str| {
        lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {what} line within 60 s"))
    };
    let line = next_line("ready");
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["manager"], serde_json::Value::Null);
    let url = ready["url"].as_str().unwrap();
    let address = url.trim_start_matches("http://");

    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /api/v2/status HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    assert!(response.starts_with(b"HTTP/1.1 200") || response.starts_with(b"HTTP/1.0 200"));

    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            panic!("fleet sim serve did not stop within 20 s of Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(next_line("last"), "stopped");
}

/// `fleet dashboard` through ic-agent against `fleet sim serve --fleet`: the page reads the
/// manager's rollout over HTTP, and its controls reach the manager (checked with `fleet rollout
/// status` over HTTP, not from the page).
#[test]
fn the_dashboard_reads_and_controls_a_rollout_over_http() {
    use fleet_cli::dashboard::Dashboard;

    let dir = TempDir::new();
    let (op_pem, operator) = pem(&dir, "operator.pem", 0x41);
    let (server, ready) = serve_fleet(&operator);
    let url = ready.url.clone();
    let manager = Principal::from_text(ready.manager.as_deref().unwrap()).unwrap();
    let m = manager.to_text();
    for seed in [0x42, 0x43] {
        let (_, owner) = pem(&dir, &format!("owner-{seed}.pem"), seed);
        AgentIc::connect(&Network::Url(url.clone()), &owner)
            .unwrap()
            .call::<CreateUserCanister>(
                manager,
                (CreateUserCanisterArg {
                    recovery_principal: principal_of(PHRASE),
                    invite: None,
                },),
            )
            .unwrap()
            .into_result()
            .unwrap();
    }
    let op = |args: &[&str]| {
        with_flags(
            args,
            &["--network", &url, "--manager", &m, "--pem-file", &op_pem],
        )
    };
    let minute = Duration::from_secs(60);
    let v2_file = dir.file("v2.wasm", &user_wasm(&["v2"]));
    fleet_within(
        minute,
        op(&["release", "publish", &v2_file, "--version", "2.0.0"]),
    );
    // The canary upgrades, then the rollout waits out an hour of bake time: a running rollout
    // that stays put while the page is read.
    fleet_within(
        minute,
        op(&[
            "rollout",
            "start",
            "--version",
            "2.0.0",
            "--canary",
            "1",
            "--waves",
            "100",
            "--bake-secs",
            "3600",
        ]),
    );
    let status = || fleet_within(minute, op(&["--json", "rollout", "status"])).json;
    let deadline = std::time::Instant::now() + minute;
    while status()["waves"][0]["completed_at"].is_null() {
        assert!(
            std::time::Instant::now() < deadline,
            "the canary never ended"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let ic = AgentIc::connect(&Network::Url(url.clone()), &operator).unwrap();
    let d = Dashboard::start(Box::new(ic), manager, 0).unwrap();
    let host = dashboard_host(&d);
    let (code, state) = dashboard_get(&d, "/api/state", &host);
    assert_eq!(code, 200, "{state}");
    let state = json_of(&state);
    let r = &state["rollout"];
    assert_eq!(r["phase"], "Running");
    assert_eq!(r["target"], "2.0.0");
    assert_eq!(r["waves"][0]["state"], "complete");
    assert_eq!(r["waves"][0]["done"], 1);
    assert_eq!(r["waves"][1]["state"], "baking");
    assert!(r["next_wave_in"].as_str().unwrap().contains("min"), "{r}");
    assert_eq!(state["user_canisters"], 2);

    let token = dashboard_token(&d);
    let control = |action: &str| {
        let (code, body) = dashboard_post(
            &d,
            &format!("/api/control/{action}"),
            &host,
            Some(&token),
            "{}",
        );
        assert_eq!(code, 200, "{action}: {body}");
    };
    control("pause");
    assert_eq!(status()["phase"], "Paused");
    control("resume");
    assert_eq!(status()["phase"], "Running");
    control("abort");
    let deadline = std::time::Instant::now() + minute;
    while status()["phase"] != "Aborted" {
        assert!(
            std::time::Instant::now() < deadline,
            "the abort never ended"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Roll back the canary's canister to the release the page offers.
    let (_, state) = dashboard_get(&d, "/api/state", &host);
    let state = json_of(&state);
    assert_eq!(state["actions"]["rollback"]["enabled"], true, "{state}");
    assert_eq!(state["rollback_to"][0], "1.0.0");
    let (code, body) = dashboard_post(&d, "/api/control/rollback", &host, Some(&token), "{}");
    assert_eq!(code, 400, "a rollback names its release: {body}");
    let (code, body) = dashboard_post(
        &d,
        "/api/control/rollback",
        &host,
        Some(&token),
        r#"{"to":"1.0.0"}"#,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_of(&body)["ok"]["canisters"], 1);
    let rollback = status();
    assert_eq!(rollback["target"]["version"], "1.0.0");
    assert_eq!(rollback["id"], 2);
    server.stop();
}
