//! What the dashboard page shows, read from the manager with the operator's identity: one JSON
//! document per poll, with the texts the page puts in front of the operator (phases, causes,
//! confirmations) written here rather than in the page's script.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fleet_api::rollout::method::RolloutEvents;
use fleet_api::rollout::{
    EventKind, Failure, FleetMetrics, HaltReason, Job, LogPageArg, OpKind, Outcome, Phase,
    RolloutCanisterResult, RolloutStatus, Step, WaveProgress,
};
use serde::Serialize;

use crate::error::CliError;
use crate::manager::{self as mgr, wave_name, Manager};

/// Events shown, newest first.
pub const EVENTS_SHOWN: u32 = 25;
/// Rows of the failures table, most recent first.
pub const FAILURES_SHOWN: usize = 100;

#[derive(Serialize, Debug, Clone)]
pub struct State {
    pub manager: String,
    pub operator: String,
    pub now_ns: u64,
    pub user_canisters: u64,
    pub cycles: Cycles,
    pub rollout: Option<RolloutView>,
    /// Canisters of the rollout that ended failed, rolled back or deferred, or that are
    /// retrying after an error: at most [`FAILURES_SHOWN`], most recent first.
    pub failures: Vec<FailureRow>,
    pub failures_total: usize,
    pub events: Vec<EventRow>,
    /// Upgrades per minute over time, drawn by [`super::chart`].
    pub chart_svg: String,
    pub actions: Actions,
    /// Releases a rollback may go back to, the most recent first.
    pub rollback_to: Vec<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Cycles {
    pub balance: String,
    /// The balance less what pipelines in flight have reserved.
    pub liquid: String,
    pub reserve_per_pipeline: String,
    pub text: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct RolloutView {
    pub id: u64,
    pub job: &'static str,
    pub target: String,
    /// `Running`, `Paused`, `Halted`, `Aborting`, `Completed` or `Aborted`.
    pub phase: &'static str,
    pub halt_cause: Option<String>,
    pub hold: Option<String>,
    pub in_flight: u64,
    pub max_in_flight: Option<u32>,
    pub starts_per_minute: Option<u32>,
    pub pending: u64,
    pub done: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub deferred: u64,
    pub waiting_retry: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub total: u64,
    pub rate_per_minute: f64,
    pub eta: Option<String>,
    pub next_wave_in: Option<String>,
    pub waves: Vec<WaveRow>,
    /// One row per subnet when the rollout spans two or more; empty otherwise.
    pub subnets: Vec<SubnetRow>,
}

/// A subnet's part of the rollout.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct SubnetRow {
    pub subnet: String,
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub deferred: u64,
    pub in_flight: u64,
    pub pending: u64,
    /// `halted: <why>` for a subnet halted under the plan's subnet scope, else `finished`
    /// once nothing is left, else `running`.
    pub state: String,
}

fn subnet_rows(s: &RolloutStatus) -> Vec<SubnetRow> {
    let subnets = s.subnets.as_deref().unwrap_or_default();
    if subnets.len() < 2 {
        return Vec::new();
    }
    subnets
        .iter()
        .map(|p| SubnetRow {
            subnet: p
                .subnet
                .map_or_else(|| "the manager's".into(), |id| id.to_text()),
            total: p.total,
            done: p.done,
            failed: p.failed,
            rolled_back: p.rolled_back,
            deferred: p.deferred,
            in_flight: p.in_flight + p.busy,
            pending: p.pending,
            state: match &p.halted {
                Some(h) => format!("halted: {}", halt_text(h, s)),
                None if p.in_flight + p.busy + p.pending == 0 => "finished".into(),
                None => "running".into(),
            },
        })
        .collect()
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct WaveRow {
    pub name: String,
    pub size: u64,
    pub started: u64,
    pub done: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub deferred: u64,
    /// Failed, rolled back and deferred canisters of the stage by cause: `unhealthy 2, stop
    /// timed out 1`.
    pub causes: String,
    /// `pending`, `baking` (the next to open, waiting out the bake time), `open` or `complete`.
    pub state: &'static str,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct FailureRow {
    pub canister: String,
    pub wave: String,
    /// The outcome, or the step a canister still in its pipeline is at.
    pub outcome: String,
    pub cause: String,
    pub error: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct EventRow {
    pub seq: u64,
    pub at_ns: u64,
    pub text: String,
}

/// Whether each control applies in the rollout's phase, and the confirmation that names what
/// it will do. The manager decides in the end: a control it refuses shows its typed error.
#[derive(Serialize, Debug, Clone, Default)]
pub struct Actions {
    pub pause: Action,
    pub resume: Action,
    pub abort: Action,
    /// `{to}` in the confirmation stands for the release chosen on the page.
    pub rollback: Action,
}

#[derive(Serialize, Debug, Clone, Default)]
pub struct Action {
    pub enabled: bool,
    pub confirm: String,
}

/// How long the failures table may lag behind a canister that is retrying after an error
/// while no count changes.
const RESULTS_MAX_AGE: Duration = Duration::from_secs(10);

/// The per-canister results of a rollout (a read is one query per 500 canisters): read again
/// when the failed, rolled back, deferred or retrying counts change, which is when the failures
/// table and the causes change, and otherwise at most every [`RESULTS_MAX_AGE`] (a retrying
/// canister's error changes no count).
#[derive(Default)]
pub struct ResultsCache {
    key: Option<(u64, u64, u64, u64, u64)>,
    read_at: Option<Instant>,
    results: Vec<RolloutCanisterResult>,
}

impl ResultsCache {
    fn get(
        &mut self,
        m: &Manager,
        s: &RolloutStatus,
    ) -> Result<&[RolloutCanisterResult], CliError> {
        let c = &s.counts;
        let key = (s.id, c.failed, c.rolled_back, c.deferred(), c.busy);
        let stale = self
            .read_at
            .is_none_or(|at| at.elapsed() >= RESULTS_MAX_AGE);
        if self.key != Some(key) || stale {
            self.results = mgr::rollout_results(m)?;
            self.key = Some(key);
            self.read_at = Some(Instant::now());
        }
        Ok(&self.results)
    }
}

/// Reads everything the page shows.
pub fn read(
    m: &Manager,
    cache: &mut ResultsCache,
    chart: &mut super::chart::Chart,
) -> Result<State, CliError> {
    let metrics: FleetMetrics = mgr::metrics(m)?;
    let status = mgr::rollout_status(m)?;
    let now = metrics.now;
    let (failures, failures_total, waves_causes) = match &status {
        Some(s) => {
            let results = cache.get(m, s)?;
            let (rows, total) = failure_rows(s, results);
            (rows, total, causes_by_wave(results))
        }
        None => (Vec::new(), 0, BTreeMap::new()),
    };
    let events = match &status {
        Some(_) => events(m)?,
        None => Vec::new(),
    };
    if let Some(s) = &status {
        chart.sample(s, now);
    }
    let releases = mgr::list_releases(m).unwrap_or_default();
    let target = status.as_ref().map(|s| s.target.version.clone());
    let mut rollback_to: Vec<(u64, String)> = releases
        .iter()
        .filter(|r| Some(&r.version) != target.as_ref())
        .map(|r| (r.uploaded_at, r.version.clone()))
        .collect();
    rollback_to.sort_by(|a, b| b.cmp(a));
    let rollout = status.as_ref().map(|s| rollout_view(s, now, &waves_causes));
    Ok(State {
        manager: m.id.to_text(),
        operator: m.ic.sender().to_text(),
        now_ns: now,
        user_canisters: metrics.user_canisters,
        cycles: cycles(&metrics),
        actions: status
            .as_ref()
            .map(|s| actions(s, !rollback_to.is_empty()))
            .unwrap_or_default(),
        rollout,
        failures,
        failures_total,
        events,
        chart_svg: chart.svg(),
        rollback_to: rollback_to.into_iter().map(|(_, v)| v).collect(),
    })
}

pub fn phase_name(p: &Phase) -> &'static str {
    match p {
        Phase::Running => "Running",
        Phase::Paused => "Paused",
        Phase::Halted(_) => "Halted",
        Phase::Aborting => "Aborting",
        Phase::Completed => "Completed",
        Phase::Aborted => "Aborted",
    }
}

/// Why the failure policy halted the rollout, with the threshold it crossed.
pub fn halt_text(reason: &HaltReason, s: &RolloutStatus) -> String {
    let policy = s.failure.as_ref();
    match reason {
        HaltReason::ConsecutiveFailures { count } => format!(
            "{count} failures in a row{}",
            policy
                .map(|p| format!(" (the plan halts at {})", p.max_consecutive_failures))
                .unwrap_or_default()
        ),
        HaltReason::WaveFailureThreshold { wave, failed, size } => {
            let name = s
                .waves
                .get(*wave as usize)
                .map(|w| wave_name(&w.label))
                .unwrap_or_else(|| format!("stage {wave}"));
            format!(
                "{failed} of {size} canisters of the {name} stage failed{}",
                policy
                    .map(|p| format!(" (the plan halts above {}%)", p.max_failed_percent))
                    .unwrap_or_default()
            )
        }
        HaltReason::SubnetConsecutiveFailures { subnet, count } => format!(
            "on {}: {}",
            subnet_text(subnet),
            halt_text(&HaltReason::ConsecutiveFailures { count: *count }, s)
        ),
        HaltReason::SubnetWaveFailureThreshold {
            subnet,
            wave,
            failed,
            size,
        } => format!(
            "on {}: {}",
            subnet_text(subnet),
            halt_text(
                &HaltReason::WaveFailureThreshold {
                    wave: *wave,
                    failed: *failed,
                    size: *size,
                },
                s
            )
        ),
    }
}

/// A subnet as the rollout names it; `None` is the manager's own.
pub fn subnet_text(subnet: &Option<fleet_api::Principal>) -> String {
    subnet.map_or_else(|| "the manager's subnet".into(), |p| format!("subnet {p}"))
}

/// The short name of a failure's cause, the key the causes are counted by.
pub fn cause_name(f: &Failure) -> String {
    match f {
        Failure::Unhealthy { .. } => "unhealthy".into(),
        Failure::UnhealthyNoSnapshot { .. } => "unhealthy, no snapshot".into(),
        Failure::CallFailed { op, .. } => format!("{} failed", mgr::op_name(*op)),
        Failure::ManagerCall { op, .. } => format!("manager: {} failed", mgr::op_name(*op)),
        Failure::StopTimedOut { .. } => "stop timed out".into(),
        Failure::LowCycles { .. } => "low cycles".into(),
        Failure::ModuleHashMismatch { .. } => "module hash mismatch".into(),
        Failure::RestoreFailed { .. } => "restore failed".into(),
        Failure::AlreadyOnTarget => "already on target".into(),
        Failure::InstallFailed(_) => "install failed".into(),
        Failure::RecoveryControllerMissing => "recovery controller missing".into(),
        Failure::ManagerNotController => "manager not a controller".into(),
    }
}

/// A failure with what the IC or the canister said; an unhealthy canister with its own
/// message.
pub fn failure_text(f: &Failure) -> String {
    match f {
        Failure::Unhealthy { version, message }
        | Failure::UnhealthyNoSnapshot { version, message } => format!(
            "{}: {}{}",
            mgr::op_name(OpKind::HealthCheck),
            message.as_deref().unwrap_or("unhealthy"),
            version
                .as_ref()
                .map(|v| format!(" (reports {v})"))
                .unwrap_or_default()
        ),
        other => mgr::failure_text(other),
    }
}

fn counted(outcome: Option<Outcome>) -> bool {
    matches!(
        outcome,
        Some(Outcome::Failed | Outcome::RolledBack | Outcome::Deferred)
    )
}

fn causes_by_wave(results: &[RolloutCanisterResult]) -> BTreeMap<u32, BTreeMap<String, u64>> {
    let mut by_wave: BTreeMap<u32, BTreeMap<String, u64>> = BTreeMap::new();
    for r in results.iter().filter(|r| counted(r.outcome)) {
        let cause = r
            .failure
            .as_ref()
            .map(cause_name)
            .unwrap_or_else(|| "unknown".into());
        *by_wave.entry(r.wave).or_default().entry(cause).or_default() += 1;
    }
    by_wave
}

fn causes_text(causes: Option<&BTreeMap<String, u64>>) -> String {
    let Some(causes) = causes else {
        return String::new();
    };
    let mut v: Vec<(&String, &u64)> = causes.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(c, n)| format!("{c} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn wave_row(
    i: usize,
    w: &WaveProgress,
    s: &RolloutStatus,
    causes: &BTreeMap<u32, BTreeMap<String, u64>>,
) -> WaveRow {
    let state = if w.completed_at.is_some() {
        "complete"
    } else if w.opened_at.is_some() {
        "open"
    } else if i == s.current_wave as usize + 1 && s.next_wave_at.is_some() {
        "baking"
    } else {
        "pending"
    };
    let o = &w.outcomes;
    WaveRow {
        name: wave_name(&w.label),
        size: w.size,
        started: w.started,
        done: o.done + o.restored,
        failed: o.failed,
        rolled_back: o.rolled_back,
        deferred: o.deferred(),
        causes: causes_text(causes.get(&(i as u32))),
        state,
    }
}

fn rollout_view(
    s: &RolloutStatus,
    now: u64,
    causes: &BTreeMap<u32, BTreeMap<String, u64>>,
) -> RolloutView {
    let c = &s.counts;
    let mut waves: Vec<WaveRow> = s
        .waves
        .iter()
        .enumerate()
        .map(|(i, w)| wave_row(i, w, s, causes))
        .collect();
    if s.requests.size > 0 {
        let mut row = wave_row(u32::MAX as usize, &s.requests, s, causes);
        row.name = "owner requests".into();
        waves.push(row);
    }
    RolloutView {
        id: s.id,
        job: match s.job {
            Job::Upgrade => "upgrade",
            Job::Restore => "restore",
        },
        target: s.target.version.clone(),
        phase: phase_name(&s.phase),
        halt_cause: match &s.phase {
            Phase::Halted(reason) => Some(halt_text(reason, s)),
            _ => None,
        },
        hold: s
            .hold
            .as_ref()
            .map(|h| mgr::hold_text(h).trim_start_matches(", ").to_string()),
        in_flight: c.in_flight,
        max_in_flight: s.limits.as_ref().map(|l| l.max_in_flight),
        starts_per_minute: s.limits.as_ref().map(|l| l.starts_per_minute),
        pending: c.pending,
        done: c.done + c.restored,
        failed: c.failed,
        rolled_back: c.rolled_back,
        deferred: c.deferred(),
        waiting_retry: c.busy,
        skipped: c.skipped,
        cancelled: c.cancelled,
        total: c.pending
            + c.in_flight
            + c.busy
            + c.done
            + c.restored
            + c.rolled_back
            + c.failed
            + c.skipped
            + c.cancelled
            + c.deferred(),
        rate_per_minute: s.rate_per_minute,
        eta: s
            .eta_ns
            .filter(|_| !s.phase.is_finished())
            .map(|ns| duration_text(ns / 1_000_000_000)),
        next_wave_in: s
            .next_wave_at
            .map(|at| duration_text(at.saturating_sub(now) / 1_000_000_000)),
        waves,
        subnets: subnet_rows(s),
    }
}

fn step_name(step: &Step) -> String {
    let debug = format!("{step:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_string()
}

fn failure_rows(s: &RolloutStatus, results: &[RolloutCanisterResult]) -> (Vec<FailureRow>, usize) {
    let mut rows: Vec<(u64, FailureRow)> = results
        .iter()
        .filter(|r| counted(r.outcome) || (r.outcome.is_none() && r.last_error.is_some()))
        .map(|r| {
            let wave = if r.wave == u32::MAX {
                "owner request".to_string()
            } else {
                s.waves
                    .get(r.wave as usize)
                    .map(|w| wave_name(&w.label))
                    .unwrap_or_default()
            };
            let error = match (&r.failure, &r.last_error) {
                (Some(f), _) => failure_text(f),
                (None, Some(e)) => e.message.clone(),
                (None, None) => String::new(),
            };
            let row = FailureRow {
                canister: r.canister_id.to_text(),
                wave,
                outcome: match r.outcome {
                    Some(o) => format!("{o:?}"),
                    None => format!("retrying ({})", step_name(&r.step)),
                },
                cause: r.failure.as_ref().map(cause_name).unwrap_or_default(),
                error,
            };
            (r.finished_at.or(r.started_at).unwrap_or(0), row)
        })
        .collect();
    let total = rows.len();
    rows.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.canister.cmp(&b.1.canister)));
    rows.truncate(FAILURES_SHOWN);
    (rows.into_iter().map(|(_, r)| r).collect(), total)
}

fn events(m: &Manager) -> Result<Vec<EventRow>, CliError> {
    // The page of the newest events: `next` is known only from a first read.
    let probe = m.call_ok::<RolloutEvents>((LogPageArg {
        from: u64::MAX,
        limit: Some(1),
    },))?;
    let Some(probe) = probe else {
        return Ok(Vec::new());
    };
    let from = probe
        .next
        .saturating_sub(EVENTS_SHOWN as u64)
        .max(probe.first);
    let page = m.call_ok::<RolloutEvents>((LogPageArg {
        from,
        limit: Some(EVENTS_SHOWN),
    },))?;
    let mut rows: Vec<EventRow> = page
        .map(|p| p.events)
        .unwrap_or_default()
        .into_iter()
        .map(|(seq, e)| EventRow {
            seq,
            at_ns: e.at,
            text: event_text(&e.kind),
        })
        .collect();
    rows.reverse();
    Ok(rows)
}

pub fn event_text(kind: &EventKind) -> String {
    match kind {
        EventKind::Started { canisters } => format!("started with {canisters} canisters"),
        EventKind::WaveOpened { wave, label, size } => {
            format!(
                "stage {} ({}) opened: {size} canisters",
                wave + 1,
                wave_name(label)
            )
        }
        EventKind::WaveCompleted { wave, failures } => {
            format!("stage {} completed, {failures} failures", wave + 1)
        }
        EventKind::CanisterFinished {
            canister,
            outcome,
            failure,
        } => format!(
            "{} {:?}{}",
            canister.to_text(),
            outcome,
            failure
                .as_ref()
                .map(|f| format!(": {}", failure_text(f)))
                .unwrap_or_default()
        ),
        EventKind::Held(h) => format!("held: {}", mgr::hold_text(h).trim_start_matches(", held: ")),
        EventKind::HoldLifted => "hold lifted".into(),
        EventKind::Paused => "paused".into(),
        EventKind::Resumed => "resumed".into(),
        EventKind::AbortRequested => "abort requested".into(),
        EventKind::Aborted => "aborted".into(),
        EventKind::Completed => "completed".into(),
        EventKind::Halted(reason) => format!("halted: {reason:?}"),
        EventKind::SubnetHalted { subnet, reason } => {
            format!("{} halted: {reason:?}", subnet_text(subnet))
        }
        EventKind::StartRetrying { canister, error } => {
            format!(
                "{} does not start, retrying: {}",
                canister.to_text(),
                error.message
            )
        }
        EventKind::Requested { canister, ticket } => {
            format!("owner request {ticket} for {}", canister.to_text())
        }
        EventKind::SnapshotDeleteFailed { canister, error } => format!(
            "deleting the snapshot of {} failed: {}",
            canister.to_text(),
            error.message
        ),
    }
}

/// Cycles as people read them: `12.35 T`.
pub fn cycles_text(c: u128) -> String {
    const UNITS: [(u128, &str); 4] = [
        (1_000_000_000_000, "T"),
        (1_000_000_000, "B"),
        (1_000_000, "M"),
        (1_000, "k"),
    ];
    for (size, unit) in UNITS {
        if c >= size {
            return format!("{:.2} {unit}", c as f64 / size as f64);
        }
    }
    c.to_string()
}

fn cycles(metrics: &FleetMetrics) -> Cycles {
    let balance = cycles_text(metrics.cycles_balance);
    let liquid = cycles_text(metrics.liquid_cycles);
    let reserve = cycles_text(metrics.pipeline_cycles_reserve);
    Cycles {
        text: format!(
            "{balance} cycles, {liquid} liquid ({reserve} reserved per pipeline in flight)"
        ),
        balance,
        liquid,
        reserve_per_pipeline: reserve,
    }
}

/// `1 h 02 min`, `3 min 20 s`, `45 s`.
pub fn duration_text(secs: u64) -> String {
    if secs >= 3600 {
        format!("{} h {:02} min", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        format!("{} min {:02} s", secs / 60, secs % 60)
    } else {
        format!("{secs} s")
    }
}

fn actions(s: &RolloutStatus, can_roll_back: bool) -> Actions {
    let c = &s.counts;
    let name = format!("rollout {} to {}", s.id, s.target.version);
    let finished = s.phase.is_finished();
    let halted = matches!(s.phase, Phase::Halted(_));
    Actions {
        pause: Action {
            enabled: s.phase == Phase::Running,
            confirm: format!(
                "Pause {name}: no new canister starts; the {} in flight finish their pipelines.",
                c.in_flight
            ),
        },
        resume: Action {
            enabled: s.phase == Phase::Paused || halted,
            confirm: format!(
                "Resume {name}{}: starts continue under the plan's limits, {} canisters pending.",
                match &s.phase {
                    Phase::Halted(r) => format!(", lifting the halt ({})", halt_text(r, s)),
                    _ => String::new(),
                },
                c.pending
            ),
        },
        abort: Action {
            enabled: !finished && s.phase != Phase::Aborting,
            confirm: format!(
                "Abort {name}: the {} pending canisters are dropped and stay on their release; \
                 the {} in flight finish or are brought back to running.",
                c.pending, c.in_flight
            ),
        },
        rollback: Action {
            enabled: finished && can_roll_back,
            confirm: format!(
                "Roll back {name}: a new rollout takes every canister on {} back to {{to}}, \
                 under the last rollout's limits (upgrade policies apply).",
                s.target.version
            ),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use candid::Principal;
    use fleet_api::rollout::{DeferralCounts, Release, StateCounts, SubnetProgress, WaveLabel};

    /// A halted rollout of 13 canisters in two stages, also the chart's test input.
    pub(crate) fn status() -> RolloutStatus {
        let wave = |label, size, done, completed: bool| WaveProgress {
            label,
            size,
            started: done,
            outcomes: StateCounts {
                done,
                ..Default::default()
            },
            opened_at: (done > 0).then_some(1),
            completed_at: completed.then_some(2),
        };
        RolloutStatus {
            id: 4,
            job: Job::Upgrade,
            phase: Phase::Halted(HaltReason::ConsecutiveFailures { count: 2 }),
            target: Release {
                version: "2.0.0".into(),
                module_hash: vec![],
            },
            counts: StateCounts {
                pending: 7,
                in_flight: 1,
                done: 3,
                rolled_back: 2,
                ..Default::default()
            },
            waves: vec![
                wave(WaveLabel::Canary, 2, 2, true),
                wave(WaveLabel::Percent(100), 11, 1, false),
            ],
            requests: WaveProgress {
                label: WaveLabel::Canary,
                size: 0,
                started: 0,
                outcomes: StateCounts::default(),
                opened_at: None,
                completed_at: None,
            },
            current_wave: 1,
            next_wave_at: None,
            rate_per_minute: 3.0,
            eta_ns: Some(90_000_000_000),
            top_up_spent: 0,
            created_at: 0,
            finished_at: None,
            hold: None,
            deferrals: DeferralCounts::default(),
            stop_deadline_ns: None,
            limits: None,
            failure: Some(fleet_api::rollout::FailurePolicy {
                max_failed_percent: 5,
                max_consecutive_failures: 2,
                halt_scope: None,
            }),
            subnets: None,
        }
    }

    #[test]
    fn a_rollout_on_several_subnets_has_a_row_per_subnet_with_its_halt() {
        let mut s = status();
        let other = Principal::from_slice(&[5; 29]);
        let part = |subnet, done, in_flight, pending, halted| SubnetProgress {
            subnet,
            total: done + in_flight + pending,
            done,
            failed: 0,
            rolled_back: 0,
            deferred: 0,
            in_flight,
            pending,
            busy: 0,
            halted,
        };
        let halt = HaltReason::SubnetConsecutiveFailures {
            subnet: Some(other),
            count: 2,
        };
        s.subnets = Some(vec![
            part(None, 4, 0, 0, None),
            part(Some(other), 1, 1, 3, Some(halt)),
        ]);
        let v = rollout_view(&s, 0, &BTreeMap::new());
        let rows: Vec<_> = v
            .subnets
            .iter()
            .map(|r| (r.subnet.as_str(), r.done, r.total, r.state.as_str()))
            .collect();
        let halted =
            format!("halted: on subnet {other}: 2 failures in a row (the plan halts at 2)");
        assert_eq!(
            rows,
            vec![
                ("the manager's", 4, 4, "finished"),
                (other.to_text().as_str(), 1, 5, halted.as_str()),
            ]
        );
        s.subnets.as_mut().unwrap().truncate(1);
        assert!(rollout_view(&s, 0, &BTreeMap::new()).subnets.is_empty());
    }

    #[test]
    fn a_halt_names_its_cause_and_the_plan_threshold() {
        let s = status();
        let v = rollout_view(&s, 0, &BTreeMap::new());
        assert_eq!(v.phase, "Halted");
        assert_eq!(
            v.halt_cause.as_deref(),
            Some("2 failures in a row (the plan halts at 2)")
        );
        assert_eq!(v.waves[0].state, "complete");
        assert_eq!(v.waves[1].state, "open");
        assert_eq!(v.eta.as_deref(), Some("1 min 30 s"));
        let a = actions(&s, true);
        assert!(a.resume.enabled && a.abort.enabled);
        assert!(
            !a.pause.enabled && !a.rollback.enabled,
            "halted is not finished"
        );
        assert!(
            a.resume.confirm.contains("lifting the halt"),
            "{}",
            a.resume.confirm
        );
        assert!(a.abort.confirm.contains("the 7 pending canisters"));
    }

    #[test]
    fn failures_are_counted_by_cause_per_wave() {
        let canister = |n: u8| Principal::from_slice(&[n; 29]);
        let result = |n, wave, outcome, failure| RolloutCanisterResult {
            canister_id: canister(n),
            job: Job::Upgrade,
            wave,
            outcome,
            step: Step::Pending,
            failure,
            last_error: None,
            stop_attempts: 0,
            topped_up: 0,
            snapshot: None,
            ticket: None,
            started_at: Some(n as u64),
            finished_at: Some(n as u64),
        };
        let unhealthy = || Failure::Unhealthy {
            version: None,
            message: Some("bad".into()),
        };
        let results = vec![
            result(1, 1, Some(Outcome::RolledBack), Some(unhealthy())),
            result(2, 1, Some(Outcome::RolledBack), Some(unhealthy())),
            result(
                3,
                1,
                Some(Outcome::Deferred),
                Some(Failure::StopTimedOut { attempts: 5 }),
            ),
            result(4, 1, Some(Outcome::Done), None),
            result(5, 0, Some(Outcome::Done), None),
        ];
        let by_wave = causes_by_wave(&results);
        assert_eq!(
            causes_text(by_wave.get(&1)),
            "unhealthy 2, stop timed out 1"
        );
        assert_eq!(causes_text(by_wave.get(&0)), "");
        let (rows, total) = failure_rows(&status(), &results);
        assert_eq!(total, 3);
        assert_eq!(rows[0].canister, canister(3).to_text(), "most recent first");
        assert_eq!(rows[0].outcome, "Deferred");
        assert_eq!(rows[2].cause, "unhealthy");
        assert_eq!(rows[2].wave, "100%");
    }

    #[test]
    fn cycles_and_durations_read_as_people_say_them() {
        assert_eq!(cycles_text(12_345_000_000_000), "12.35 T");
        assert_eq!(cycles_text(999), "999");
        assert_eq!(duration_text(3725), "1 h 02 min");
        assert_eq!(duration_text(200), "3 min 20 s");
    }
}
