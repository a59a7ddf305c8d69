//! The rollouts: the target release published, the faults injected, the rollout driven to
//! rest, and a follow-up rollout over the canisters the first one left deferred.

use std::collections::BTreeMap;
use std::rc::Rc;

use candid::Principal;
use fleet_api::endpoint::Endpoint;
use fleet_api::rollout::{Canary, Outcome, Phase, RolloutCanisterResult, RolloutPlanArg};

use super::faults::{
    reject_health_check, FaultClass, FaultSwitch, Injector, ManagerFaults, SetFaults,
};
use super::report::OutcomeCounts;
use super::setup::{Fleet, Modules};
use super::sim::{drive, refused, Driven, Rehearsal};
use super::{recovery, Checked, RehearseArgs};
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};
use crate::progress::Bars;

/// The first rollout, driven to rest with the faults alongside.
pub(super) struct FirstRollout {
    pub id: u64,
    pub driven: Driven,
    /// The manager's instructions during the rollout, the rehearsal's own calls left out.
    pub manager_instructions: u64,
    pub tick_instructions_mean: u64,
    pub tick_instructions_max: u64,
    pub results: Vec<RolloutCanisterResult>,
}

/// The rollout over the canisters the first one left deferred.
pub(super) struct FollowUp {
    pub id: u64,
    pub canisters: u64,
    pub driven: Driven,
    pub outcomes: OutcomeCounts,
}

pub(super) struct Rollouts {
    pub first: FirstRollout,
    pub follow_up: Option<FollowUp>,
    /// Every canister's last result: the follow-up's over the first rollout's.
    pub last: BTreeMap<Principal, RolloutCanisterResult>,
    /// Every rollout completed, so every outcome is final.
    pub complete: bool,
    /// What was seen of the manager's own faults.
    pub seen: ManagerFaults,
}

/// Publishes the target release, injects the faults and rolls the fleet out; then, once every
/// fault is over, rolls out the canisters the first rollout left deferred.
pub(super) fn roll_out(
    r: &mut Rehearsal,
    m: &Manager,
    args: &RehearseArgs,
    checked: &Checked,
    fleet: &Fleet,
    modules: &Modules,
) -> Result<Rollouts, CliError> {
    let mut bars = Bars::new(r.show_progress);
    mgr::publish(
        m,
        &modules.to,
        &args.to_version,
        "rehearsal: target release",
        None,
        &mut bars,
    )?;
    drop(bars);
    if checked.switch {
        set_fault_switches(r, &fleet.canisters, &checked.classes)?;
    }
    let mut inj = Injector::new(
        Rc::clone(&r.sim),
        fleet.manager,
        fleet.admin,
        modules.manager_wasm.clone(),
        &checked.spec,
    );
    inj.inject(m, &fleet.canisters, &checked.classes, checked.switch)?;
    let first = first_rollout(r, m, &mut inj, &checked.plan, args.max_rounds)?;
    let mut last: BTreeMap<Principal, RolloutCanisterResult> = first
        .results
        .iter()
        .map(|res| (res.canister_id, res.clone()))
        .collect();
    let leftovers: Vec<Principal> = first
        .results
        .iter()
        .filter(|res| res.outcome == Some(Outcome::Deferred))
        .map(|res| res.canister_id)
        .collect();
    let follow_up = if first.driven.status.phase == Phase::Completed && !leftovers.is_empty() {
        let (follow_up, results) =
            follow_up(r, m, &mut inj, checked, fleet, leftovers, args.max_rounds)?;
        for res in results {
            last.insert(res.canister_id, res);
        }
        Some(follow_up)
    } else {
        None
    };
    let complete = first.driven.status.phase == Phase::Completed
        && follow_up
            .as_ref()
            .is_none_or(|f| f.driven.status.phase == Phase::Completed);
    Ok(Rollouts {
        first,
        follow_up,
        last,
        complete,
        seen: inj.into_seen(),
    })
}

/// Release faults through the fault switch, set by each canister's recovery controller.
fn set_fault_switches(
    r: &mut Rehearsal,
    canisters: &[Principal],
    classes: &[FaultClass],
) -> Result<(), CliError> {
    let mut switches = Vec::new();
    for (i, class) in classes.iter().enumerate() {
        if !class.is_release() {
            continue;
        }
        let arg = FaultSwitch::for_class(*class);
        switches.push(r.submit::<SetFaults>(canisters[i], recovery(i as u32), (arg,))?);
    }
    for reply in r.run_all(&switches, None)? {
        reply.map_err(refused(SetFaults::NAME))?;
    }
    Ok(())
}

fn first_rollout(
    r: &mut Rehearsal,
    m: &Manager,
    inj: &mut Injector,
    plan: &RolloutPlanArg,
    max_rounds: u64,
) -> Result<FirstRollout, CliError> {
    let manager = m.id;
    let instructions_before = r.sim.instructions_total(manager);
    inj.start_ns = r.now();
    let started = inj.measure(|| mgr::start_rollout(m, plan))?;
    let driven = drive(r, m, inj, max_rounds)?;
    inj.finish(m)?;
    let manager_instructions =
        r.sim.instructions_total(manager) - instructions_before - inj.overhead;
    let metrics = mgr::metrics(m)?;
    Ok(FirstRollout {
        id: started.id,
        driven,
        manager_instructions,
        tick_instructions_mean: metrics.tick_instructions_mean,
        tick_instructions_max: metrics.tick_instructions_max,
        results: mgr::rollout_results(m)?,
    })
}

/// Canisters the first rollout left deferred, once their faults are over: a rollout from the
/// starting release over them, as an operator would run; returns its results too.
fn follow_up(
    r: &mut Rehearsal,
    m: &Manager,
    inj: &mut Injector,
    checked: &Checked,
    fleet: &Fleet,
    leftovers: Vec<Principal>,
    max_rounds: u64,
) -> Result<(FollowUp, Vec<RolloutCanisterResult>), CliError> {
    for (id, class) in fleet.canisters.iter().zip(&checked.classes) {
        // Without the switch the health fault is one rejected call, maybe spent on a
        // deferred attempt: armed again, so that the release is as unhealthy as before.
        if *class == FaultClass::Health && !checked.switch && leftovers.contains(id) {
            reject_health_check(&r.sim, *id);
        }
    }
    let canisters = leftovers.len() as u64;
    let mut again: RolloutPlanArg = checked.plan.clone();
    again.include = Some(leftovers);
    again.exclude = None;
    again.canary = Some(Canary::None);
    again.waves_percent = Some(vec![100]);
    again.bake_secs = Some(0);
    let started = mgr::start_rollout(m, &again)?;
    let driven = drive(r, m, inj, max_rounds)?;
    let results = mgr::rollout_results(m)?;
    let mut outcomes = OutcomeCounts::default();
    for res in &results {
        outcomes.add(res.outcome);
    }
    let follow_up = FollowUp {
        id: started.id,
        canisters,
        driven,
        outcomes,
    };
    Ok((follow_up, results))
}
