//! The rehearsal's report: the JSON structs (their field names are the `--json` output) and
//! [`report_text`], the same for people.

use candid::Principal;
use fleet_api::rollout::{DeferralCounts, Outcome, Phase, RolloutStatus};
use serde::Serialize;

use super::faults::{FaultClass, FaultSpec, BUSY_SECS, FROZEN_SECS};
use super::rollout::{FollowUp, Rollouts};
use super::setup::{Fleet, Modules};
use super::verify::{Verification, Verified};
use super::{Checked, RehearseArgs};
use crate::estimate::group;
use crate::manager as mgr;
use crate::progress::watch::phase_name;

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

impl OutcomeCounts {
    pub(super) fn add(&mut self, outcome: Option<Outcome>) {
        match outcome {
            Some(Outcome::Done) => self.upgraded += 1,
            Some(Outcome::Failed) => self.failed += 1,
            Some(Outcome::RolledBack) => self.rolled_back += 1,
            Some(Outcome::Skipped) => self.skipped += 1,
            Some(Outcome::Cancelled) => self.cancelled += 1,
            Some(Outcome::Deferred) => self.deferred += 1,
            Some(Outcome::Restored) | None => self.not_started += 1,
        }
    }

    /// Canisters whose pipeline ran to an end of its own.
    fn finished(&self) -> u64 {
        self.upgraded + self.failed + self.rolled_back + self.skipped + self.cancelled
    }
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
    /// Canisters given a fault of their own (release, busy or frozen).
    pub faults_injected: u64,
    pub rollout_id: u64,
    pub phase: String,
    pub halted: bool,
    pub rounds: u64,
    pub simulated_secs: f64,
    pub upgrades_per_round: f64,
    /// Outcomes of the first rollout.
    pub outcomes: OutcomeCounts,
    pub stages: Vec<StageReport>,
    /// Instructions the manager executed during the rollout (ic_sim's count), in total and
    /// per canister whose pipeline ran; the rehearsal's own polls and operator calls are left
    /// out. The per-tick figures are the manager's since it was last installed or upgraded.
    pub manager_instructions: u64,
    pub manager_instructions_per_upgrade: u64,
    pub tick_instructions_mean: u64,
    pub tick_instructions_max: u64,
    pub provision_rounds: u64,
    /// What was injected and what became of it; `None` without `--faults`.
    pub faults: Option<FaultReport>,
    pub verified: Verification,
    pub wall: WallTimes,
}

/// `--faults`: what was injected, per class what became of those canisters, and the manager's
/// own view (deferrals by cause, holds).
#[derive(Debug, Clone, Serialize)]
pub struct FaultReport {
    pub spec: FaultSpec,
    pub busy_secs: u64,
    pub frozen_secs: u64,
    /// Why the rehearsal chose the failure policy, when it did.
    pub failure_policy: Option<String>,
    /// Every class of canister, the unfaulted ones included, with final outcomes (after the
    /// follow-up rollout, if one ran) and where the checks from outside found them.
    pub classes: Vec<ClassReport>,
    /// Deferral events of the first rollout by cause, as the manager counts them.
    pub deferrals: DeferralCounts,
    /// Canisters the first rollout ended deferred.
    pub deferred: u64,
    /// Canisters waiting for a retry when the first rollout came to rest (0 when complete).
    pub waiting: u64,
    /// Rounds in which the rollout status showed each hold (first rollout and follow-up).
    pub holds: HoldCounts,
    pub manager_low: Option<ManagerLowReport>,
    pub manager_upgrade: Option<ManagerUpgradeReport>,
    /// The rollout over the canisters the first one left deferred, if any.
    pub follow_up: Option<FollowUpReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassReport {
    pub class: FaultClass,
    pub canisters: u64,
    pub outcomes: OutcomeCounts,
    pub on_target: u64,
    pub on_source: u64,
    /// Canisters of the class with at least one failed check.
    pub with_problems: u64,
}

impl ClassReport {
    pub(super) fn new(class: FaultClass) -> Self {
        ClassReport {
            class,
            canisters: 0,
            outcomes: OutcomeCounts::default(),
            on_target: 0,
            on_source: 0,
            with_problems: 0,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct HoldCounts {
    pub draining: u64,
    pub manager_low_cycles: u64,
    pub manager_faults: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ManagerLowReport {
    pub injected: bool,
    /// Simulated seconds into the rollout when the manager ran out of cycles.
    pub at_secs: Option<f64>,
    pub out_of_cycles_secs: u64,
    /// Seconds after the first top-up with cycles for one pipeline at a time.
    pub low_secs: u64,
    /// The manager's liquid cycles during that time, and the per-pipeline reserve.
    pub low_liquid_cycles: Option<u128>,
    pub pipeline_cycles_reserve: Option<u128>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ManagerUpgradeReport {
    pub upgraded: bool,
    /// Simulated seconds into the rollout when the drain began.
    pub at_secs: Option<f64>,
    /// Simulated seconds from the first `drain` to ready.
    pub drain_secs: u64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FollowUpReport {
    pub rollout_id: u64,
    pub canisters: u64,
    pub phase: String,
    pub rounds: u64,
    pub simulated_secs: f64,
    pub outcomes: OutcomeCounts,
    pub deferrals: DeferralCounts,
}

/// The report of a rehearsal that ran to the end, from what each phase returned.
pub(super) fn build(
    args: &RehearseArgs,
    checked: &Checked,
    modules: &Modules,
    fleet: &Fleet,
    rollouts: Rollouts,
    verified: Verified,
    wall: WallTimes,
) -> RehearsalReport {
    let first = &rollouts.first;
    let status = &first.driven.status;
    let mut outcomes = OutcomeCounts::default();
    for res in &first.results {
        outcomes.add(res.outcome);
    }
    let rounds = first.driven.rounds;
    RehearsalReport {
        users: args.users,
        manager: fleet.manager,
        from_version: args.from_version.clone(),
        from_sha256: hex::encode(modules.from.sha256),
        to_version: args.to_version.clone(),
        to_sha256: hex::encode(modules.to.sha256),
        bundled: checked.bundled,
        notes_per_user: fleet.notes_per_user,
        faults_injected: checked
            .classes
            .iter()
            .filter(|c| **c != FaultClass::None)
            .count() as u64,
        rollout_id: first.id,
        phase: phase_name(&status.phase),
        halted: matches!(status.phase, Phase::Halted(_)),
        rounds,
        simulated_secs: first.driven.simulated_ns as f64 / 1e9,
        upgrades_per_round: if rounds == 0 {
            0.0
        } else {
            (outcomes.upgraded as f64 / rounds as f64 * 1000.0).round() / 1000.0
        },
        stages: stage_reports(status),
        manager_instructions: first.manager_instructions,
        manager_instructions_per_upgrade: first.manager_instructions / outcomes.finished().max(1),
        outcomes,
        tick_instructions_mean: first.tick_instructions_mean,
        tick_instructions_max: first.tick_instructions_max,
        provision_rounds: fleet.provision_rounds,
        faults: (!args.faults.is_empty())
            .then(|| fault_report(checked, rollouts, verified.classes)),
        verified: verified.verification,
        wall,
    }
}

fn stage_reports(status: &RolloutStatus) -> Vec<StageReport> {
    status
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
        .collect()
}

fn fault_report(checked: &Checked, rollouts: Rollouts, classes: Vec<ClassReport>) -> FaultReport {
    let spec = &checked.spec;
    let status = &rollouts.first.driven.status;
    FaultReport {
        spec: spec.clone(),
        busy_secs: BUSY_SECS,
        frozen_secs: FROZEN_SECS,
        failure_policy: checked.failure_policy.clone(),
        classes,
        deferrals: status.deferrals.clone(),
        deferred: status.counts.deferred(),
        waiting: status.counts.busy,
        holds: rollouts.seen.holds,
        manager_low: (spec.manager_low_secs > 0).then_some(rollouts.seen.low),
        manager_upgrade: spec.manager_upgrade.then_some(rollouts.seen.upgrade),
        follow_up: rollouts.follow_up.map(follow_up_report),
    }
}

fn follow_up_report(f: FollowUp) -> FollowUpReport {
    FollowUpReport {
        rollout_id: f.id,
        canisters: f.canisters,
        phase: phase_name(&f.driven.status.phase),
        rounds: f.driven.rounds,
        simulated_secs: f.driven.simulated_ns as f64 / 1e9,
        outcomes: f.outcomes,
        deferrals: f.driven.status.deferrals,
    }
}

/// The parts joined with commas, or `none`.
fn list_or_none(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn outcome_text(o: &OutcomeCounts) -> String {
    list_or_none(
        [
            (o.upgraded, "upgraded"),
            (o.failed, "failed"),
            (o.rolled_back, "rolled back"),
            (o.deferred, "deferred"),
            (o.skipped, "skipped"),
            (o.cancelled, "cancelled"),
            (o.not_started, "not started"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect(),
    )
}

/// What was asked for, for people: `30 post_upgrade traps, 20 ...`.
fn injected_text(f: &FaultReport) -> String {
    let count = |class: FaultClass| {
        f.classes
            .iter()
            .find(|c| c.class == class)
            .map_or(0, |c| c.canisters)
    };
    let mut parts = Vec::new();
    for (class, what) in [
        (FaultClass::Trap, "with a trapping post_upgrade".to_string()),
        (FaultClass::Health, "failing the health check".to_string()),
        (
            FaultClass::Busy,
            format!("busy (stop hangs {} s)", f.busy_secs),
        ),
        (
            FaultClass::Frozen,
            format!("frozen (owner tops up after {} s)", f.frozen_secs),
        ),
    ] {
        if count(class) > 0 {
            parts.push(format!("{} {what}", count(class)));
        }
    }
    if f.spec.manager_low_secs > 0 {
        parts.push(format!(
            "manager out of cycles {} s then low {} s",
            f.spec.manager_low_secs,
            f.spec.manager_low_secs / 2
        ));
    }
    if f.spec.manager_upgrade {
        parts.push("manager upgraded mid-rollout".into());
    }
    list_or_none(parts)
}

/// The report for people.
pub fn report_text(r: &RehearsalReport) -> String {
    let mut t = setup_text(r);
    t += &rollout_text(r);
    if let Some(f) = &r.faults {
        t += &faults_text(r, f);
    }
    t += &verified_text(r);
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

/// The fleet before the rollout, and the faults asked for.
fn setup_text(r: &RehearsalReport) -> String {
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
    if let Some(f) = &r.faults {
        t += &format!("  faults: {}\n", injected_text(f));
        if let Some(p) = &f.failure_policy {
            t += &format!("  failure policy: {p}\n");
        }
    }
    t
}

/// The first rollout: time, outcomes, stages and the manager's instructions.
fn rollout_text(r: &RehearsalReport) -> String {
    let o = &r.outcomes;
    let mut t = format!("rollout {}: {}\n", r.rollout_id, r.phase);
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
    t
}

/// What became of the faults: the manager's view, its own faults, the follow-up rollout and
/// the canisters by class.
fn faults_text(r: &RehearsalReport, f: &FaultReport) -> String {
    let mut t = format!(
        "  deferrals: {} for the environment, {} for the manager; {} ended deferred\n",
        f.deferrals.environment, f.deferrals.manager, f.deferred
    );
    t += &format!(
        "  holds seen (rounds): draining {}, manager low on cycles {}, manager faults {}\n",
        f.holds.draining, f.holds.manager_low_cycles, f.holds.manager_faults
    );
    if let Some(l) = &f.manager_low {
        t += &manager_low_text(l);
    }
    if let Some(u) = &f.manager_upgrade {
        t += &match (u.upgraded, u.at_secs) {
            (true, Some(at)) => format!(
                "  manager drained at {at:.0} s, ready after {} s, stopped, upgraded, started, \
                 drain ended\n",
                u.drain_secs
            ),
            _ => format!(
                "  manager upgrade: {}\n",
                u.note.as_deref().unwrap_or("not injected")
            ),
        };
    }
    if let Some(fu) = &f.follow_up {
        t += &format!(
            "rollout {} (follow-up from {} over the {} deferred): {}, {} rounds, {:.0} s \
             simulated: {}\n",
            fu.rollout_id,
            r.from_version,
            fu.canisters,
            fu.phase,
            fu.rounds,
            fu.simulated_secs,
            outcome_text(&fu.outcomes)
        );
    }
    t += "by fault (final outcomes; where the checks found them):\n";
    for c in &f.classes {
        t += &format!(
            "  {:>20}: {:>5} canisters: {}; {} on {}, {} on {}{}\n",
            c.class.describe(),
            c.canisters,
            outcome_text(&c.outcomes),
            c.on_target,
            r.to_version,
            c.on_source,
            r.from_version,
            if c.with_problems > 0 {
                format!("; {} with failed checks", c.with_problems)
            } else {
                String::new()
            }
        );
    }
    t
}

fn manager_low_text(l: &ManagerLowReport) -> String {
    match (l.injected, l.at_secs) {
        (true, Some(at)) => format!(
            "  manager out of cycles at {at:.0} s for {} s, then {} s with {} liquid \
             cycles ({} reserved per pipeline), then topped up{}\n",
            l.out_of_cycles_secs,
            l.low_secs,
            l.low_liquid_cycles.map_or("?".into(), group),
            l.pipeline_cycles_reserve.map_or("?".into(), group),
            l.note
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        ),
        _ => format!(
            "  manager low on cycles: {}\n",
            l.note.as_deref().unwrap_or("not injected")
        ),
    }
}

/// The checks from outside: counts, failed checks by kind, and the first problems.
fn verified_text(r: &RehearsalReport) -> String {
    let v = &r.verified;
    let mut t = format!(
        "verified from outside: {} canisters, {} on {}, {} on {}, {} with unchanged data, {} failed checks\n",
        v.canisters, v.on_target, r.to_version, v.on_source, r.from_version, v.checksums_equal,
        v.failed_checks
    );
    if v.failed_checks > 0 {
        t += &format!(
            "  failed: {} module or version, {} not running, {} controllers, {} data, {} outcome\n",
            v.wrong_module, v.not_running, v.wrong_controllers, v.data_changed, v.wrong_outcome
        );
    }
    if v.subnets.len() > 1 {
        let parts: Vec<String> = v
            .subnets
            .iter()
            .map(|s| {
                format!(
                    "{} {} ({} on {})",
                    s.subnet, s.canisters, s.on_target, r.to_version
                )
            })
            .collect();
        t += &format!("  by subnet: {}\n", parts.join("; "));
    }
    for p in &v.problems {
        t += &format!("  {p}\n");
    }
    t
}
