//! `fleet dashboard` against a rollout on ic_sim: the server's guards over HTTP, and the page
//! driven in a real Chromium (playwright-core, `tests/browser/dashboard.mjs`) while the test
//! runs the simulator's rounds and checks every step from the manager's own status.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use candid::Principal;
use common::*;
use fleet_api::manager::method::{CreateUserCanister, SetOperator};
use fleet_api::manager::{CreateUserCanisterArg, Operator, Role};
use fleet_api::rollout::method::GetRolloutStatus;
use fleet_api::rollout::{HaltReason, Outcome, Phase, RolloutStatus};
use fleet_cli::backend::sim::SimIc;
use fleet_cli::dashboard::Dashboard;
use ic_sim::RejectCode;

/// A manager with 1.0.0 on `users` canisters and 2.0.0 published, as `fleet sim serve --fleet`
/// sets it up; the principal of PHRASE holds every role, `user(200)` only `Releaser`.
struct Stage {
    world: World,
    manager: Principal,
    admin: Principal,
    no_role: Principal,
    admin_phrase: String,
    canisters: Vec<Principal>,
}

fn stage(users: u8) -> Stage {
    let admin = principal_of(PHRASE);
    let (sim, manager) = fleet_cli::rehearse::serving_fleet(&[admin]).unwrap();
    let world = World {
        sim,
        dir: TempDir::new(),
    };
    let admin_phrase = world.dir.file("admin-phrase", PHRASE.as_bytes());
    let v2 = world.dir.file("v2.wasm", &user_wasm(&["v2"]));
    world
        .fleet(&[
            "release",
            "publish",
            &v2,
            "--version",
            "2.0.0",
            "--manager",
            &manager.to_text(),
            "--phrase-file",
            &admin_phrase,
        ])
        .unwrap();
    let no_role = user(200);
    world
        .call::<SetOperator>(
            manager,
            admin,
            (Operator {
                principal: no_role,
                roles: vec![Role::Releaser],
            },),
        )
        .into_result()
        .unwrap();
    let canisters = (1..=users)
        .map(|n| {
            let arg = CreateUserCanisterArg {
                recovery_principal: user(n.wrapping_add(100)),
                invite: None,
            };
            world
                .call::<CreateUserCanister>(manager, user(n), (arg,))
                .into_result()
                .unwrap()
                .canister_id
        })
        .collect();
    Stage {
        world,
        manager,
        admin,
        no_role,
        admin_phrase,
        canisters,
    }
}

impl Stage {
    fn start_rollout(&self, extra: &[&str]) {
        let mut args = vec![
            "rollout",
            "start",
            "--version",
            "2.0.0",
            "--manager",
            &self.manager.to_text(),
            "--phrase-file",
            &self.admin_phrase,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.world.fleet(&refs).unwrap();
    }

    fn dashboard(&self, operator: Principal) -> Dashboard {
        let ic = SimIc::new(Rc::clone(&self.world.sim), operator);
        Dashboard::start(Box::new(ic), self.manager, 0).unwrap()
    }

    fn status(&self) -> RolloutStatus {
        self.world
            .call::<GetRolloutStatus>(self.manager, self.admin, ())
            .into_result()
            .unwrap()
            .expect("a rollout")
    }

    fn round(&self) {
        self.world.sim.advance_time(Duration::from_secs(1));
        self.world.sim.tick();
    }
}

/// Another site in the operator's browser cannot use the dashboard: a request naming another
/// host (DNS rebinding) is refused, and so is an action without the page's token; the page's
/// token works, and a refusal of the manager comes back typed.
#[test]
fn the_dashboard_refuses_other_hosts_and_actions_without_the_page_token() {
    let s = stage(4);
    s.start_rollout(&["--canary", "0", "--waves", "100", "--max-in-flight", "1"]);
    let d = s.dashboard(s.admin);
    let host = dashboard_host(&d);
    let (get, post) = (dashboard_get, dashboard_post);

    let (code, _) = get(&d, "/", "evil.example:80");
    assert_eq!(code, 421, "another host is refused");
    let token = dashboard_token(&d);
    assert_eq!(token.len(), 32);

    let (code, state) = get(&d, "/api/state", &host);
    assert_eq!(code, 200, "{state}");
    let state = json_of(&state);
    assert_eq!(state["rollout"]["phase"], "Running");
    assert_eq!(state["rollout"]["total"], 4);
    assert_eq!(state["rollout"]["max_in_flight"], 1);
    assert_eq!(state["operator"], s.admin.to_text());
    assert!(state["actions"]["pause"]["enabled"].as_bool().unwrap());

    let (code, body) = post(&d, "/api/control/pause", &host, None, "{}");
    assert_eq!(code, 403, "{body}");
    let (code, body) = post(&d, "/api/control/pause", &host, Some("0000"), "{}");
    assert_eq!(code, 403, "{body}");
    let (code, body) = post(
        &d,
        "/api/control/pause",
        "evil.example:80",
        Some(&token),
        "{}",
    );
    assert_eq!(code, 421, "{body}");
    assert_eq!(s.status().phase, Phase::Running, "nothing was paused");

    let (code, body) = post(&d, "/api/control/pause", &host, Some(&token), "{}");
    assert_eq!(code, 200, "{body}");
    assert_eq!(s.status().phase, Phase::Paused);
    // Pausing twice: the manager's typed error, on the page as it said it.
    let (code, body) = post(&d, "/api/control/pause", &host, Some(&token), "{}");
    assert_eq!(code, 409, "{body}");
    let body = json_of(&body);
    assert_eq!(body["error"]["kind"], "InvalidPhase");
    assert_eq!(body["error"]["method"], "pause_rollout");

    // The registry by canister, owner and release.
    let c = s.canisters[2];
    let (code, found) = post(
        &d,
        "/api/search",
        &host,
        Some(&token),
        &format!("{{\"q\":\"{c}\"}}"),
    );
    assert_eq!(code, 200, "{found}");
    let found = json_of(&found);
    assert_eq!(found["canisters"][0]["canister_id"], c.to_text());
    let (_, by_owner) = post(
        &d,
        "/api/search",
        &host,
        Some(&token),
        &format!("{{\"q\":\"{}\"}}", user(3)),
    );
    assert!(by_owner.contains(&c.to_text()), "{by_owner}");
    let (_, by_release) = post(&d, "/api/search", &host, Some(&token), "{\"q\":\"1.0.0\"}");
    let by_release = json_of(&by_release);
    assert_eq!(by_release["canisters"].as_array().unwrap().len(), 4);
    let (code, unknown) = post(&d, "/api/search", &host, Some(&token), "{\"q\":\"9.9.9\"}");
    assert_eq!(code, 409, "{unknown}");
    assert!(unknown.contains("UnknownRelease"), "{unknown}");
}

// ---------------------------------------------------------------------------- the browser

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium and playwright-core, when installed (`.ci/run` installs them and sets
/// `FLEET_BROWSER_TESTS=require`, which turns their absence into a failure).
fn browser() -> Option<PathBuf> {
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let playwright = browser_dir().join("node_modules/playwright-core");
    let node = Command::new("node").arg("--version").output().is_ok();
    let missing: Vec<String> = [
        (!node).then(|| "node".to_string()),
        (!chromium.exists()).then(|| format!("{} (apt-get install chromium)", chromium.display())),
        (!playwright.exists())
            .then(|| "playwright-core (npm ci --prefix fleet_cli/tests/browser)".to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return Some(chromium);
    }
    let why = format!("the browser test needs {}", missing.join(", "));
    if std::env::var("FLEET_BROWSER_TESTS").as_deref() == Ok("require") {
        panic!("{why}");
    }
    eprintln!("SKIPPED: {why}");
    None
}

/// The script's stdout, line by line, from a reader thread.
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// What each of the script's checkpoints must find in the manager, and what the test does
/// there. Returns the step's name.
fn checkpoint(s: &Stage, line: &str, dashboards: &[&Dashboard]) -> String {
    let (name, detail) = line
        .trim_start_matches("STEP ")
        .split_once(' ')
        .unwrap_or((line.trim_start_matches("STEP "), ""));
    let st = s.status();
    match name {
        "advancing" => {
            let seen: u64 = detail.parse().unwrap();
            assert_eq!(st.phase, Phase::Running);
            assert!(st.waves[0].completed_at.is_some(), "the canary is done");
            assert!(
                st.counts.done >= seen,
                "the page shows no more than the manager"
            );
        }
        "paused" => {
            assert_eq!(st.phase, Phase::Paused);
            // No pipeline starts while paused; those in flight finish.
            let started = |st: &RolloutStatus| st.waves.iter().map(|w| w.started).sum::<u64>();
            let before = started(&st);
            for _ in 0..40 {
                s.round();
                dashboards.iter().for_each(|d| {
                    d.serve_pending();
                });
            }
            let after = s.status();
            assert_eq!(started(&after), before, "nothing started while paused");
            assert_eq!(after.counts.in_flight, 0);
            assert!(after.counts.pending > 0, "work is left for the resume");
        }
        "resumed" => {
            assert_eq!(st.phase, Phase::Running);
            // From now on the release fails its health check on every canister not yet
            // finished: the rollout must halt after two failures in a row.
            let results = fleet_cli::manager::rollout_results(&fleet_cli::manager::Manager::new(
                &SimIc::new(Rc::clone(&s.world.sim), s.admin),
                s.manager,
            ))
            .unwrap();
            for r in results.iter().filter(|r| r.outcome.is_none()) {
                s.world
                    .sim
                    .fault_reject_next_calls(r.canister_id, 1, RejectCode::CanisterReject);
            }
        }
        "halted" => {
            assert!(
                matches!(
                    st.phase,
                    Phase::Halted(HaltReason::ConsecutiveFailures { count: 2 })
                ),
                "{:?}",
                st.phase
            );
            assert!(detail.contains("2 failures in a row"), "{detail}");
            assert!(st.counts.rolled_back >= 2);
        }
        "refused" => {
            assert!(detail.contains("NotAuthorized"), "{detail}");
            assert!(
                matches!(st.phase, Phase::Halted(_)),
                "still halted: {:?}",
                st.phase
            );
        }
        "done" => {}
        other => panic!("unknown step {other}"),
    }
    name.to_string()
}

/// The page in Chromium shows the stages advancing, is paused and resumed through its
/// confirmations (checked in the manager's status, with nothing started while paused), shows
/// the halt and its cause after injected health failures with the failed canisters and their
/// errors, shows the manager's `NotAuthorized` to an operator without the Deployer role (and
/// the rollout stays halted), and finds a canister in the registry.
#[test]
fn a_browser_watches_and_controls_a_rollout_through_the_dashboard() {
    let Some(chromium) = browser() else { return };
    let s = stage(40);
    s.start_rollout(&[
        "--canary",
        "2",
        "--waves",
        "25,50,100",
        "--bake-secs",
        "0",
        "--max-in-flight",
        "2",
        "--max-consecutive-failures",
        "2",
        "--max-failed-percent",
        "100",
    ]);
    let admin = s.dashboard(s.admin);
    let no_role = s.dashboard(s.no_role);
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let mut child = Command::new("node")
        .arg(browser_dir().join("dashboard.mjs"))
        .env("DASHBOARD_URL", admin.url())
        .env("DASHBOARD_URL_NO_ROLE", no_role.url())
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium)
        .env("STEP_TIMEOUT_MS", "60000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node runs");
    let rx = lines(&mut child);
    let mut stdin = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut last_round = Instant::now();
    let mut rounds = 0u32;
    let mut steps = Vec::new();
    let outcome: Result<(), String> = loop {
        if Instant::now() > deadline || rounds > 20_000 {
            break Err(format!(
                "out of time after {rounds} rounds, steps {steps:?}"
            ));
        }
        admin.serve_pending();
        no_role.serve_pending();
        // A round every 50 ms: the page (polling each second) sees the stages advance.
        if last_round.elapsed() >= Duration::from_millis(50) {
            s.round();
            rounds += 1;
            last_round = Instant::now();
        }
        match rx.try_recv() {
            Ok(line) if line.starts_with("STEP ") => {
                steps.push(checkpoint(&s, &line, &[&admin, &no_role]));
                writeln!(stdin, "OK").unwrap();
                stdin.flush().unwrap();
            }
            Ok(line) if line.starts_with("FAIL") => break Err(line),
            Ok(line) => eprintln!("browser: {line}"),
            Err(mpsc::TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(5)),
            Err(mpsc::TryRecvError::Disconnected) => break Ok(()),
        }
    };
    if let Err(why) = outcome {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{why}");
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "the browser script exited with {status}");
    assert_eq!(
        steps,
        [
            "advancing",
            "paused",
            "resumed",
            "halted",
            "refused",
            "done"
        ]
    );
    assert!(screenshot.exists());
    eprintln!(
        "screenshot of the page under load: {}",
        screenshot.display()
    );

    // From outside: what the page called done runs 2.0.0; what it called rolled back runs
    // 1.0.0 again.
    let results = fleet_cli::manager::rollout_results(&fleet_cli::manager::Manager::new(
        &SimIc::new(Rc::clone(&s.world.sim), s.admin),
        s.manager,
    ))
    .unwrap();
    let v1 = sha256(&user_wasm(&[]));
    let v2 = sha256(&user_wasm(&["v2"]));
    for r in &results {
        match r.outcome {
            Some(Outcome::Done) => assert_eq!(s.world.module_hash(r.canister_id), Some(v2)),
            Some(Outcome::RolledBack) => {
                assert_eq!(s.world.module_hash(r.canister_id), Some(v1))
            }
            _ => {}
        }
    }
    assert!(results
        .iter()
        .any(|r| r.outcome == Some(Outcome::RolledBack)));
}

/// `fleet rehearse --dashboard`: the page is served between the rehearsal's rounds, so a
/// client polling it sees the rollout advance, and after the rehearsal it shows the end.
#[test]
fn the_rehearsal_serves_its_dashboard_while_it_runs() {
    use clap::Parser;
    let cli = fleet_cli::cli::Cli::try_parse_from([
        "fleet",
        "rehearse",
        "--users",
        "12",
        "--canary",
        "2",
        "--waves",
        "50,100",
        "--max-in-flight",
        "2",
        "--dashboard",
        "--dashboard-port",
        "0",
        "--round-ms",
        "20",
    ])
    .unwrap();
    let fleet_cli::cli::Command::Rehearse(args) = cli.command else {
        unreachable!()
    };
    let d = Rc::new(Dashboard::bind(0).unwrap());
    let host = dashboard_host(&d);
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    // A client polls the state as the page does, on its own thread.
    let poller = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(300);
        while stop_rx.try_recv().is_err() && Instant::now() < deadline {
            let (_, body) = http_exchange(&host, &get_request("/api/state", &host))
                .expect("the rehearsal serves its dashboard");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                if let Some(r) = v.get("rollout").filter(|r| !r.is_null()) {
                    seen.push((
                        r["phase"].as_str().unwrap_or("").to_string(),
                        r["done"].as_u64().unwrap_or(0),
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        seen
    });
    let report = fleet_cli::rehearse::run_with(&args, false, Some(Rc::clone(&d))).unwrap();
    assert_eq!(report.verified.failed_checks, 0);
    // After the rehearsal the page still answers, with the last state.
    let (code, last) = dashboard_get(&d, "/api/state", &dashboard_host(&d));
    assert_eq!(code, 200);
    let last = json_of(&last);
    assert_eq!(last["rollout"]["phase"], "Completed");
    assert_eq!(last["rollout"]["done"], 12);
    // The poller may be waiting on an answer: serve until it has seen the stop and ended.
    stop_tx.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !poller.is_finished() {
        assert!(Instant::now() < deadline, "the poller did not stop");
        d.serve_for(Duration::from_millis(20));
    }
    let seen = poller.join().unwrap();
    let running: Vec<u64> = seen
        .iter()
        .filter(|(phase, _)| phase == "Running")
        .map(|(_, done)| *done)
        .collect();
    assert!(
        running.windows(2).all(|w| w[0] <= w[1]),
        "done never goes back: {running:?}"
    );
    let distinct: std::collections::BTreeSet<u64> = running.iter().copied().collect();
    assert!(
        distinct.len() >= 3,
        "the page saw the rollout advance while it ran: {seen:?}"
    );
}
