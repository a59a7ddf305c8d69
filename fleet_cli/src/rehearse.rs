//! `fleet rehearse`: a whole release cycle on an embedded IC simulator, with the real canister
//! wasm. A manager is installed, the "from" release is published through the same code as
//! `release publish` and made the default, every user creates their own canister through the
//! manager (each with its own recovery principal) and writes notes into it, the "to" release
//! is published and rolled out in stages under the plan's limits, with bake times passed in
//! simulated time. Then every canister is checked from outside, as its recovery controller and
//! as anyone: module hash, running, controllers, version and data checksum (`fleet_health`).
//!
//! With `--from`/`--to` files the operator's own releases are rehearsed. Such modules must take
//! the user canister's init argument (`UserCanisterArg::Init`) and answer `fleet_health` (the
//! manager's health check needs it); no notes are written into them, and the checks are the
//! module hash, the running status, the controllers, and `fleet_health`'s version and checksum
//! (before and after must be equal) when the canister answers it.
//!
//! `--faults F` makes a fraction F of the canisters, spread evenly over the fleet, reject the
//! next call they receive: the manager's health check after the upgrade. The manager then
//! restores their snapshot (rolled back), and the failure policy halts the rollout once a
//! stage's failures pass its threshold.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use candid::{decode_one, encode_args, encode_one, Principal};
use clap::Args;
use fleet_api::manager::{
    CreateUserCanisterArg, CreateUserCanisterError, ManagerInitArg, RateLimit,
    SetDefaultReleaseError, Settings, UserCanister,
};
use fleet_api::rollout::{Outcome, Phase, RolloutStatus};
use fleet_api::user::{FleetHealth, NoteError};
use ic_sim::{IcSim, IcSimBuilder, RawMessageId, RejectCode};
use serde::Serialize;

use crate::backend::mgmt::{query_typed, RunStatus};
use crate::backend::sim::SimIc;
use crate::backend::Management;
use crate::cli::Bars;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};
use crate::plan::PlanArgs;
use crate::recovery::Progress;
use crate::wasm::WasmModule;
use crate::watch::{at_rest, phase_name, WaveBars};

/// Cycles each user canister receives at creation: above the rollout's default minimum.
const USER_CYCLES: u128 = 1_000_000_000_000;
/// Simulated time per round: the manager's timer interval.
const ROUND: Duration = Duration::from_secs(1);
/// Failed checks listed in the report (all are counted).
const MAX_PROBLEMS_SHOWN: usize = 20;

#[derive(Args, Debug, Clone)]
pub struct RehearseArgs {
    /// User canisters to create, each by its own owner with its own recovery principal.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub users: u32,
    /// The release the fleet starts on (.wasm or .wasm.gz) [default: the bundled user canister
    /// v1].
    #[arg(long, value_name = "FILE")]
    pub from: Option<PathBuf>,
    /// The release rolled out (.wasm or .wasm.gz) [default: the bundled user canister v2].
    #[arg(long, value_name = "FILE")]
    pub to: Option<PathBuf>,
    /// Version of the starting release, as its `fleet_health` reports it.
    #[arg(long, default_value = "1.0.0", value_name = "SEMVER")]
    pub from_version: String,
    /// Version of the target release, as its `fleet_health` reports it (the manager's health
    /// check compares it).
    #[arg(long, default_value = "2.0.0", value_name = "SEMVER")]
    pub to_version: String,
    /// Notes each owner writes into their canister (bundled starting release only).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub notes: u32,
    /// Fraction (0 to 1) of the canisters that reject the manager's health check after their
    /// upgrade, so that they are rolled back and the failure policy can halt the rollout.
    #[arg(long, default_value_t = 0.0, value_name = "FRACTION")]
    pub faults: f64,
    /// Give up when the rollout has not come to rest after this many rounds.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_rounds: u64,
    /// Print the canisters' debug output on stderr.
    #[arg(long)]
    pub canister_logs: bool,
    #[command(flatten)]
    pub plan: PlanArgs,
}

/// Outcomes of the rollout, as the manager's per-canister results give them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub upgraded: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub skipped: u64,
    pub cancelled: u64,
    /// Left on their release by their environment or the manager, after every retry.
    pub deferred: u64,
    /// Selected but not started (a halted rollout leaves them).
    pub not_started: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    pub stage: String,
    pub size: u64,
    pub upgraded: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub skipped: u64,
    /// Simulated seconds from the stage's opening to its completion.
    pub simulated_secs: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WallTimes {
    pub load_wasm_secs: f64,
    pub setup_secs: f64,
    pub provision_secs: f64,
    pub write_data_secs: f64,
    pub rollout_secs: f64,
    pub verify_secs: f64,
    pub total_secs: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RehearsalReport {
    pub users: u32,
    pub manager: Principal,
    pub from_version: String,
    pub from_sha256: String,
    pub to_version: String,
    pub to_sha256: String,
    /// True when the bundled user canister was used for both releases.
    pub bundled: bool,
    pub notes_per_user: u32,
    pub faults_injected: u64,
    pub rollout_id: u64,
    pub phase: String,
    pub halted: bool,
    pub rounds: u64,
    pub simulated_secs: f64,
    pub upgrades_per_round: f64,
    pub outcomes: OutcomeCounts,
    pub stages: Vec<StageReport>,
    /// Instructions the manager executed during the rollout (ic_sim's count), in total and
    /// per canister whose pipeline ran.
    pub manager_instructions: u64,
    pub manager_instructions_per_upgrade: u64,
    pub tick_instructions_mean: u64,
    pub tick_instructions_max: u64,
    pub provision_rounds: u64,
    pub verified: Verification,
    pub wall: WallTimes,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub canisters: u64,
    pub on_target: u64,
    pub on_source: u64,
    /// Canisters whose `fleet_health` answered before and after with equal checksums.
    pub checksums_equal: u64,
    /// Checks that failed, over all canisters.
    pub failed_checks: u64,
    /// The first failed checks, for people.
    pub problems: Vec<String>,
}

/// A distinct principal per role and user (self-authenticating shape).
fn principal(tag: u8, n: u32) -> Principal {
    let mut bytes = [tag; 29];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    bytes[28] = 0x02;
    Principal::from_slice(&bytes)
}

pub fn owner(n: u32) -> Principal {
    principal(0x11, n)
}

pub fn recovery(n: u32) -> Principal {
    principal(0x22, n)
}

fn operator() -> Principal {
    principal(0x33, 0)
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}

fn bundled(features: &[&str]) -> Result<WasmModule, CliError> {
    let bytes = wasm_build::build("user_canister", features)
        .map_err(|e| CliError::Io(format!("building the bundled user canister: {e}")))?;
    Ok(WasmModule::from_bytes(
        bytes,
        &wasm_build::variant_name("user_canister", features),
        None,
    )?)
}

/// Which canisters get a fault: `fraction` of `n`, spread evenly.
pub fn faulty(n: u32, fraction: f64) -> Vec<u32> {
    (0..n)
        .filter(|&i| ((i as f64 + 1.0) * fraction).floor() > (i as f64 * fraction).floor())
        .collect()
}

struct Rehearsal {
    sim: Rc<IcSim>,
    manager: Principal,
    rounds: u64,
}

impl Rehearsal {
    fn step(&mut self) {
        self.sim.advance_time(ROUND);
        self.sim.tick();
        self.rounds += 1;
    }

    /// Runs rounds until every message has an answer; calls `done` as answers come.
    fn run_all(
        &mut self,
        messages: &[RawMessageId],
        mut done: impl FnMut(usize),
    ) -> Result<Vec<Vec<u8>>, CliError> {
        let mut replies: Vec<Option<Vec<u8>>> = vec![None; messages.len()];
        let mut answered = 0;
        for _ in 0..100_000 {
            for (i, m) in messages.iter().enumerate() {
                if replies[i].is_none() {
                    match self.sim.ingress_status(m) {
                        Some(Ok(bytes)) => {
                            replies[i] = Some(bytes);
                            answered += 1;
                        }
                        Some(Err(e)) => {
                            return Err(CliError::Refused(format!(
                                "message {i} was rejected: {}",
                                e.reject_message
                            )))
                        }
                        None => {}
                    }
                }
            }
            done(answered);
            if answered == messages.len() {
                return Ok(replies.into_iter().flatten().collect());
            }
            self.step();
        }
        Err(CliError::Refused(format!(
            "{} messages still unanswered after 100000 rounds",
            messages.len() - answered
        )))
    }
}

fn submit(
    sim: &IcSim,
    canister: Principal,
    sender: Principal,
    method: &str,
    arg: Vec<u8>,
) -> Result<RawMessageId, CliError> {
    sim.submit_call(canister, sender, method, arg)
        .map_err(|e| CliError::Refused(format!("{method} on {canister}: {}", e.reject_message)))
}

fn count_bar(enabled: bool, len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    (enabled && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(len);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg:>24} {bar:40} {pos:>6}/{len}")
                .expect("valid template"),
        );
        b.set_message(what.to_string());
        b
    })
}

pub fn run(args: &RehearseArgs, show_progress: bool) -> Result<RehearsalReport, CliError> {
    // ---- Everything that can be refused is checked before anything runs.
    if args.users == 0 {
        return Err(CliError::Usage("--users must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&args.faults) || args.faults.is_nan() {
        return Err(CliError::Usage(format!(
            "--faults is {}: give a fraction from 0 to 1",
            args.faults
        )));
    }
    if args.from_version == args.to_version {
        return Err(CliError::Usage(
            "--from-version and --to-version must differ".into(),
        ));
    }
    let plan = args
        .plan
        .to_plan(&args.to_version, Some(&args.from_version))?;
    let total = Instant::now();
    let mut bars = Bars::new(show_progress);

    bars.step("loading the canisters");
    let from = match &args.from {
        Some(path) => WasmModule::read(path, None)?,
        None => bundled(&[])?,
    };
    let to = match &args.to {
        Some(path) => WasmModule::read(path, None)?,
        None => bundled(&["v2"])?,
    };
    if from.sha256 == to.sha256 {
        return Err(CliError::Usage(
            "the starting and the target release are the same module".into(),
        ));
    }
    let manager_wasm = wasm_build::build("fleet_manager", &[])
        .map_err(|e| CliError::Io(format!("building the fleet manager: {e}")))?;
    let load_wasm = total.elapsed();

    // ---- A simulated IC with the manager.
    let setup_start = Instant::now();
    bars.step("installing the manager");
    let sim = Rc::new(IcSimBuilder::new().with_logs(args.canister_logs).build());
    let admin = operator();
    let manager = sim.create_canister_with_settings(Some(admin), None);
    sim.add_cycles(
        manager,
        u128::from(args.users) * 2 * USER_CYCLES + 100 * USER_CYCLES,
    );
    let init = ManagerInitArg {
        admins: None,
        user_canister_cycles: Some(USER_CYCLES),
        // Every user may create their canister at once: provisioning is not what is rehearsed.
        creation_limit: Some(RateLimit {
            capacity: args.users.max(10),
            refill_period_secs: 1,
        }),
    };
    sim.install_canister(
        manager,
        manager_wasm,
        encode_one(Some(init)).map_err(|e| CliError::Io(e.to_string()))?,
        Some(admin),
    );
    let ops = SimIc::new(Rc::clone(&sim), admin);
    let m = Manager::new(&ops, manager);
    mgr::publish(
        &m,
        &from,
        &args.from_version,
        "rehearsal: starting release",
        &mut bars,
    )?;
    let set: Result<Settings, SetDefaultReleaseError> =
        m.update("set_default_release", &args.from_version)?;
    set.map_err(|e| CliError::Refused(format!("set_default_release: {e:?}")))?;
    let setup = setup_start.elapsed();
    bars.step("");
    drop(bars);

    let mut r = Rehearsal {
        sim: Rc::clone(&sim),
        manager,
        rounds: 0,
    };

    // ---- Every owner creates their canister, concurrently.
    let provision_start = Instant::now();
    let messages = (0..args.users)
        .map(|i| {
            let arg = CreateUserCanisterArg {
                recovery_principal: recovery(i),
            };
            submit(
                &sim,
                manager,
                owner(i),
                "create_user_canister",
                encode_one(arg).map_err(|e| CliError::Io(e.to_string()))?,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bar = count_bar(show_progress, args.users as u64, "creating canisters");
    let replies = r.run_all(&messages, |n| {
        if let Some(b) = &bar {
            b.set_position(n as u64)
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut canisters: Vec<Principal> = Vec::with_capacity(replies.len());
    for (i, bytes) in replies.iter().enumerate() {
        let created = decode_one::<Result<UserCanister, CreateUserCanisterError>>(bytes)
            .map_err(|e| CliError::Io(format!("create_user_canister reply: {e}")))?
            .map_err(|e| CliError::Refused(format!("create_user_canister for user {i}: {e:?}")))?;
        canisters.push(created.canister_id);
    }
    let provision_rounds = r.rounds;
    let provision = provision_start.elapsed();

    // ---- Owners write their data.
    let data_start = Instant::now();
    let notes = if args.from.is_none() { args.notes } else { 0 };
    if notes > 0 {
        let mut messages = Vec::new();
        for (i, id) in canisters.iter().enumerate() {
            for k in 0..notes {
                let arg = encode_args((
                    format!("note-{k}"),
                    format!("user {i} wrote note {k} before the upgrade"),
                ))
                .map_err(|e| CliError::Io(e.to_string()))?;
                messages.push(submit(&sim, *id, owner(i as u32), "put", arg)?);
            }
        }
        let bar = count_bar(show_progress, messages.len() as u64, "writing notes");
        let replies = r.run_all(&messages, |n| {
            if let Some(b) = &bar {
                b.set_position(n as u64)
            }
        })?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        for bytes in replies {
            decode_one::<Result<(), NoteError>>(&bytes)
                .map_err(|e| CliError::Io(format!("put reply: {e}")))?
                .map_err(|e| CliError::Refused(format!("put: {e:?}")))?;
        }
    }
    let anyone = SimIc::new(Rc::clone(&sim), Principal::anonymous());
    let health = |id: Principal| -> Option<FleetHealth> {
        query_typed::<_, FleetHealth>(&anyone, id, "fleet_health", &()).ok()
    };
    let before: Vec<Option<FleetHealth>> = canisters.iter().map(|id| health(*id)).collect();
    let write_data = data_start.elapsed();

    // ---- The target release, the faults, and the rollout.
    let rollout_start = Instant::now();
    let mut bars = Bars::new(show_progress);
    mgr::publish(
        &m,
        &to,
        &args.to_version,
        "rehearsal: target release",
        &mut bars,
    )?;
    drop(bars);
    let faulty: Vec<u32> = faulty(args.users, args.faults);
    for &i in &faulty {
        sim.fault_reject_next_calls(canisters[i as usize], 1, RejectCode::CanisterReject);
    }
    let instructions_before = sim.instructions_total(manager);
    let time_before = sim.get_time();
    let rounds_before = r.rounds;
    let started = mgr::start_rollout(&m, &plan)?;
    let mut waves = WaveBars::new(show_progress);
    // ic_sim counts query instructions too: the status polls of this loop are left out of the
    // manager's figure.
    let mut poll_instructions = 0u64;
    let status: RolloutStatus = loop {
        let before_poll = sim.instructions_total(manager);
        let polled = mgr::rollout_status(&m);
        poll_instructions += sim.instructions_total(manager) - before_poll;
        let s = polled?.ok_or_else(|| {
            CliError::Refused("the manager reports no rollout after starting one".into())
        })?;
        let elapsed_sim = (sim.get_time().as_nanos_since_unix_epoch()
            - time_before.as_nanos_since_unix_epoch())
            / 1_000_000_000;
        waves.update(
            &s,
            &format!(
                "round {}, {} s simulated",
                r.rounds - rounds_before,
                elapsed_sim
            ),
        );
        if at_rest(&s) {
            break s;
        }
        if r.rounds - rounds_before >= args.max_rounds {
            return Err(CliError::Refused(format!(
                "the rollout has not come to rest after {} rounds: {}",
                args.max_rounds,
                mgr::rollout_text(&s)
            )));
        }
        // A bake time with nothing in flight: let the simulated time pass at once.
        if let (Some(at), 0) = (s.next_wave_at, s.counts.in_flight + s.counts.busy) {
            let now = sim.get_time().as_nanos_since_unix_epoch();
            if at > now + ROUND.as_nanos() as u64 {
                sim.advance_time(Duration::from_nanos(at - now - ROUND.as_nanos() as u64));
            }
        }
        r.step();
    };
    waves.finish();
    drop(waves);
    let rollout_rounds = r.rounds - rounds_before;
    let simulated_ns =
        sim.get_time().as_nanos_since_unix_epoch() - time_before.as_nanos_since_unix_epoch();
    let manager_instructions =
        sim.instructions_total(manager) - instructions_before - poll_instructions;
    let metrics = mgr::metrics(&m)?;
    let results = mgr::rollout_results(&m)?;
    let rollout = rollout_start.elapsed();

    // ---- Checks from outside.
    let verify_start = Instant::now();
    let mut outcome_of = std::collections::BTreeMap::new();
    let mut outcomes = OutcomeCounts::default();
    for res in &results {
        outcome_of.insert(res.canister_id, res.outcome);
        match res.outcome {
            Some(Outcome::Done) => outcomes.upgraded += 1,
            Some(Outcome::Failed) => outcomes.failed += 1,
            Some(Outcome::RolledBack) => outcomes.rolled_back += 1,
            Some(Outcome::Skipped) => outcomes.skipped += 1,
            Some(Outcome::Cancelled) => outcomes.cancelled += 1,
            Some(Outcome::Deferred) => outcomes.deferred += 1,
            Some(Outcome::Restored) | None => outcomes.not_started += 1,
        }
    }
    let mut v = Verification {
        canisters: canisters.len() as u64,
        ..Default::default()
    };
    for (i, id) in canisters.iter().enumerate() {
        let mut found: Vec<String> = Vec::new();
        let mut problem = |what: String| found.push(what);
        let upgraded = outcome_of.get(id) == Some(&Some(Outcome::Done));
        let (expected, expected_version) = if upgraded {
            (to.sha256, &args.to_version)
        } else {
            (from.sha256, &args.from_version)
        };
        let rec = SimIc::new(Rc::clone(&sim), recovery(i as u32));
        match rec.canister_status(*id) {
            Err(e) => problem(format!("canister_status as its recovery controller: {e}")),
            Ok(st) => {
                let hash = st.module_hash.as_ref().map(|h| h.to_vec());
                if hash.as_deref() == Some(&to.sha256[..]) {
                    v.on_target += 1;
                } else if hash.as_deref() == Some(&from.sha256[..]) {
                    v.on_source += 1;
                }
                if hash.as_deref() != Some(&expected[..]) {
                    problem(format!(
                        "module {} where {} was expected",
                        hash.map(hex::encode).unwrap_or_else(|| "(none)".into()),
                        hex::encode(expected)
                    ));
                }
                if st.status != RunStatus::Running {
                    problem(format!("not running ({:?})", st.status));
                }
                let mut controllers = st.settings.controllers.clone();
                controllers.sort();
                let mut wanted = vec![manager, recovery(i as u32)];
                wanted.sort();
                if controllers != wanted {
                    problem(format!("controllers {controllers:?}"));
                }
            }
        }
        match (&before[i], health(*id)) {
            (Some(b), Some(a)) => {
                if a.version != *expected_version {
                    problem(format!(
                        "reports version {} where {expected_version} was expected",
                        a.version
                    ));
                }
                if a.checksum == b.checksum && a.records == b.records {
                    v.checksums_equal += 1;
                } else {
                    problem(format!(
                        "data changed: {} records (checksum {}) before, {} ({}) after",
                        b.records,
                        hex::encode(&b.checksum),
                        a.records,
                        hex::encode(&a.checksum)
                    ));
                }
            }
            (Some(_), None) => problem("fleet_health no longer answers".into()),
            (None, _) if args.from.is_none() => problem("fleet_health did not answer".into()),
            (None, _) => {}
        }
        v.failed_checks += found.len() as u64;
        for what in found {
            if v.problems.len() < MAX_PROBLEMS_SHOWN {
                v.problems.push(format!("{id} (user {i}): {what}"));
            }
        }
    }
    let verify = verify_start.elapsed();

    let finished = outcomes.upgraded
        + outcomes.failed
        + outcomes.rolled_back
        + outcomes.skipped
        + outcomes.cancelled;
    let stages = status
        .waves
        .iter()
        .map(|w| StageReport {
            stage: mgr::wave_name(&w.label),
            size: w.size,
            upgraded: w.outcomes.done,
            failed: w.outcomes.failed,
            rolled_back: w.outcomes.rolled_back,
            skipped: w.outcomes.skipped,
            simulated_secs: match (w.opened_at, w.completed_at) {
                (Some(o), Some(c)) => Some(c.saturating_sub(o) as f64 / 1e9),
                _ => None,
            },
        })
        .collect();
    let report = RehearsalReport {
        users: args.users,
        manager,
        from_version: args.from_version.clone(),
        from_sha256: hex::encode(from.sha256),
        to_version: args.to_version.clone(),
        to_sha256: hex::encode(to.sha256),
        bundled: args.from.is_none() && args.to.is_none(),
        notes_per_user: notes,
        faults_injected: faulty.len() as u64,
        rollout_id: started.id,
        phase: phase_name(&status.phase),
        halted: matches!(status.phase, Phase::Halted(_)),
        rounds: rollout_rounds,
        simulated_secs: simulated_ns as f64 / 1e9,
        upgrades_per_round: if rollout_rounds == 0 {
            0.0
        } else {
            (outcomes.upgraded as f64 / rollout_rounds as f64 * 1000.0).round() / 1000.0
        },
        outcomes,
        stages,
        manager_instructions,
        manager_instructions_per_upgrade: manager_instructions / finished.max(1),
        tick_instructions_mean: metrics.tick_instructions_mean,
        tick_instructions_max: metrics.tick_instructions_max,
        provision_rounds,
        verified: v,
        wall: WallTimes {
            load_wasm_secs: secs(load_wasm),
            setup_secs: secs(setup),
            provision_secs: secs(provision),
            write_data_secs: secs(write_data),
            rollout_secs: secs(rollout),
            verify_secs: secs(verify),
            total_secs: secs(total.elapsed()),
        },
    };
    let _ = r.manager;
    Ok(report)
}

fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The report for people.
pub fn report_text(r: &RehearsalReport) -> String {
    let o = &r.outcomes;
    let mut t = format!(
        "rehearsal on ic_sim: {} users, {} -> {}{}\n",
        r.users,
        r.from_version,
        r.to_version,
        if r.bundled {
            " (bundled user canister)"
        } else {
            ""
        }
    );
    t += &format!(
        "  provisioned {} canisters in {} rounds ({:.1} s), {} notes each ({:.1} s)\n",
        r.users,
        r.provision_rounds,
        r.wall.provision_secs,
        r.notes_per_user,
        r.wall.write_data_secs
    );
    if r.faults_injected > 0 {
        t += &format!(
            "  faults: {} canisters reject the health check after their upgrade\n",
            r.faults_injected
        );
    }
    t += &format!("rollout {}: {}\n", r.rollout_id, r.phase);
    t += &format!(
        "  rounds {}, simulated time {:.0} s ({:.1} min), {:.3} upgrades per round\n",
        r.rounds,
        r.simulated_secs,
        r.simulated_secs / 60.0,
        r.upgrades_per_round
    );
    t += &format!(
        "  upgraded {}, failed {}, rolled back {}, skipped {}, cancelled {}, deferred {}, not \
         started {}\n",
        o.upgraded, o.failed, o.rolled_back, o.skipped, o.cancelled, o.deferred, o.not_started
    );
    for s in &r.stages {
        t += &format!(
            "    {:>8}: {:>5} canisters, {:>5} upgraded, {} failed, {} rolled back{}\n",
            s.stage,
            s.size,
            s.upgraded,
            s.failed,
            s.rolled_back,
            s.simulated_secs
                .map(|x| format!(", {x:.0} s simulated"))
                .unwrap_or_default()
        );
    }
    t += &format!(
        "  manager instructions: {} in total, {} per upgrade; per timer tick {} mean, {} max\n",
        group(r.manager_instructions),
        group(r.manager_instructions_per_upgrade),
        group(r.tick_instructions_mean),
        group(r.tick_instructions_max)
    );
    let v = &r.verified;
    t += &format!(
        "verified from outside: {} canisters, {} on {}, {} on {}, {} with unchanged data, {} failed checks\n",
        v.canisters, v.on_target, r.to_version, v.on_source, r.from_version, v.checksums_equal,
        v.failed_checks
    );
    for p in &v.problems {
        t += &format!("  {p}\n");
    }
    t += &format!(
        "wall time {:.1} s (load {:.1}, setup {:.1}, provision {:.1}, data {:.1}, rollout {:.1}, verify {:.1})",
        r.wall.total_secs,
        r.wall.load_wasm_secs,
        r.wall.setup_secs,
        r.wall.provision_secs,
        r.wall.write_data_secs,
        r.wall.rollout_secs,
        r.wall.verify_secs
    );
    t
}
