//! The checks from outside: every canister as its recovery controller sees it
//! (`canister_status`) and as anyone does (`fleet_health`), against what the rollout's outcome
//! and the canister's injected fault say it should be.

use std::collections::BTreeMap;
use std::rc::Rc;

use candid::Principal;
use fleet_api::rollout::{Failure, Outcome, RolloutCanisterResult};
use fleet_api::user::FleetHealth;
use ic_sim::IcSim;
use serde::Serialize;

use super::faults::FaultClass;
use super::recovery;
use super::report::ClassReport;
use super::rollout::Rollouts;
use super::setup::{fleet_health, Fleet, Modules};
use super::RehearseArgs;
use crate::backend::mgmt::RunStatus;
use crate::backend::sim::SimIc;
use crate::backend::Management;
use crate::wasm::WasmModule;

/// Failed checks listed in the report (all are counted).
const MAX_PROBLEMS_SHOWN: usize = 20;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    pub canisters: u64,
    pub on_target: u64,
    pub on_source: u64,
    /// Canisters whose `fleet_health` answered before and after with equal checksums.
    pub checksums_equal: u64,
    /// Checks that failed, over all canisters.
    pub failed_checks: u64,
    /// Failed checks by kind.
    pub wrong_module: u64,
    pub not_running: u64,
    pub wrong_controllers: u64,
    pub data_changed: u64,
    /// Outcomes that contradict the injected faults: a release-faulty canister upgraded, a
    /// canister without a release fault failed or rolled back, or (rollout completed) left
    /// off the target.
    pub wrong_outcome: u64,
    /// The first failed checks, for people.
    pub problems: Vec<String>,
    /// Per subnet (as the simulator places each canister), in the simulator's order.
    pub subnets: Vec<SubnetCount>,
}

/// The canisters found on one subnet, and how many of them run the target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SubnetCount {
    pub subnet: String,
    pub canisters: u64,
    pub on_target: u64,
}

/// What the canisters are checked against.
struct Expected<'a> {
    sim: &'a Rc<IcSim>,
    manager: Principal,
    from: &'a WasmModule,
    to: &'a WasmModule,
    from_version: &'a str,
    to_version: &'a str,
    /// The starting release is the bundled user canister, which must answer `fleet_health`.
    bundled_from: bool,
    /// Every rollout completed: each canister's outcome is final.
    complete: bool,
}

/// The checks' verdict, over all canisters and per fault class.
pub(super) struct Verified {
    pub verification: Verification,
    pub classes: Vec<ClassReport>,
}

/// Which release a canister was found on.
#[derive(PartialEq)]
enum Found {
    Target,
    Source,
    Other,
}

/// One canister's failed checks, by kind, in the order the report lists them.
#[derive(Default)]
struct Failed {
    wrong_module: Vec<String>,
    not_running: Vec<String>,
    wrong_controllers: Vec<String>,
    data_changed: Vec<String>,
    wrong_outcome: Vec<String>,
}

/// Checks every canister of the fleet, given the fault it got and its last rollout result.
pub(super) fn verify(
    sim: &Rc<IcSim>,
    args: &RehearseArgs,
    modules: &Modules,
    fleet: &Fleet,
    classes: &[FaultClass],
    rollouts: &Rollouts,
) -> Verified {
    let e = &Expected {
        sim,
        manager: fleet.manager,
        from: &modules.from,
        to: &modules.to,
        from_version: &args.from_version,
        to_version: &args.to_version,
        bundled_from: args.from.is_none(),
        complete: rollouts.complete,
    };
    let anyone = SimIc::new(Rc::clone(sim), Principal::anonymous());
    let mut v = Verification {
        canisters: fleet.canisters.len() as u64,
        ..Default::default()
    };
    let mut by_class: BTreeMap<FaultClass, ClassReport> = BTreeMap::new();
    let mut by_subnet: Vec<SubnetCount> = sim
        .get_app_subnets()
        .iter()
        .map(|s| SubnetCount {
            subnet: s.to_text(),
            ..Default::default()
        })
        .collect();
    let subnets = sim.get_app_subnets();
    for (i, id) in fleet.canisters.iter().enumerate() {
        let on_subnet = sim
            .get_subnet(*id)
            .and_then(|s| subnets.iter().position(|x| *x == s));
        let class = classes[i];
        let rep = by_class
            .entry(class)
            .or_insert_with(|| ClassReport::new(class));
        rep.canisters += 1;
        let res = rollouts.last.get(id);
        rep.outcomes.add(res.and_then(|x| x.outcome));
        let mut failed = Failed::default();
        let upgraded = check_outcome(class, res, e.complete, &mut failed.wrong_outcome);
        let (expected, expected_version) = if upgraded {
            (e.to, e.to_version)
        } else {
            (e.from, e.from_version)
        };
        let found = check_status(e, i as u32, *id, expected, &mut failed);
        if let Some(k) = on_subnet {
            by_subnet[k].canisters += 1;
            by_subnet[k].on_target += u64::from(found == Found::Target);
        }
        match found {
            Found::Target => {
                v.on_target += 1;
                rep.on_target += 1;
            }
            Found::Source => {
                v.on_source += 1;
                rep.on_source += 1;
            }
            Found::Other => {}
        }
        let after = fleet_health(&anyone, *id);
        if check_data(e, &fleet.before[i], after, expected_version, &mut failed) {
            v.checksums_equal += 1;
        }
        v.add(failed, rep, &format!("{id} (user {i})"));
    }
    v.subnets = by_subnet;
    Verified {
        verification: v,
        classes: by_class.into_values().collect(),
    }
}

impl Verification {
    /// Counts one canister's failed checks, and lists them while there is room.
    fn add(&mut self, f: Failed, rep: &mut ClassReport, canister: &str) {
        self.wrong_module += f.wrong_module.len() as u64;
        self.not_running += f.not_running.len() as u64;
        self.wrong_controllers += f.wrong_controllers.len() as u64;
        self.data_changed += f.data_changed.len() as u64;
        self.wrong_outcome += f.wrong_outcome.len() as u64;
        let texts = [
            f.wrong_module,
            f.not_running,
            f.wrong_controllers,
            f.data_changed,
            f.wrong_outcome,
        ]
        .concat();
        if !texts.is_empty() {
            rep.with_problems += 1;
        }
        self.failed_checks += texts.len() as u64;
        for what in texts {
            if self.problems.len() < MAX_PROBLEMS_SHOWN {
                self.problems.push(format!("{canister}: {what}"));
            }
        }
    }
}

/// Whether the outcome fits the canister's fault; returns whether the target is installed.
fn check_outcome(
    class: FaultClass,
    res: Option<&RolloutCanisterResult>,
    complete: bool,
    wrong: &mut Vec<String>,
) -> bool {
    let outcome = res.and_then(|x| x.outcome);
    // A failed health check without a snapshot leaves the target installed.
    let left_on_target = matches!(
        res.and_then(|x| x.failure.as_ref()),
        Some(Failure::UnhealthyNoSnapshot { .. })
    );
    let failed = matches!(outcome, Some(Outcome::Failed | Outcome::RolledBack));
    if class.is_release() && outcome == Some(Outcome::Done) {
        wrong.push(format!("{} but upgraded", class.describe()));
    }
    if !class.is_release() && failed {
        wrong.push(format!(
            "{:?} without a release fault ({}): blamed on the release",
            outcome,
            class.describe()
        ));
    }
    if complete {
        if class.is_release() && !failed {
            wrong.push(format!("{} but ended {outcome:?}", class.describe()));
        }
        if !class.is_release() && outcome != Some(Outcome::Done) {
            wrong.push(format!(
                "{} and left off the target: {outcome:?}",
                class.describe()
            ));
        }
    }
    outcome == Some(Outcome::Done) || left_on_target
}

/// As user `user`'s recovery controller: the module, the running status and the controllers.
fn check_status(
    e: &Expected,
    user: u32,
    id: Principal,
    expected: &WasmModule,
    failed: &mut Failed,
) -> Found {
    let rec = SimIc::new(Rc::clone(e.sim), recovery(user));
    let st = match rec.canister_status(id) {
        Ok(st) => st,
        Err(err) => {
            failed
                .wrong_controllers
                .push(format!("canister_status as its recovery controller: {err}"));
            return Found::Other;
        }
    };
    let hash = st.module_hash.as_ref().map(|h| h.to_vec());
    let found = if hash.as_deref() == Some(&e.to.sha256[..]) {
        Found::Target
    } else if hash.as_deref() == Some(&e.from.sha256[..]) {
        Found::Source
    } else {
        Found::Other
    };
    if hash.as_deref() != Some(&expected.sha256[..]) {
        failed.wrong_module.push(format!(
            "module {} where {} was expected",
            hash.map(hex::encode).unwrap_or_else(|| "(none)".into()),
            hex::encode(expected.sha256)
        ));
    }
    if st.status != RunStatus::Running {
        failed
            .not_running
            .push(format!("not running ({:?})", st.status));
    }
    let mut controllers = st.settings.controllers.clone();
    controllers.sort();
    let mut wanted = vec![e.manager, recovery(user)];
    wanted.sort();
    if controllers != wanted {
        failed
            .wrong_controllers
            .push(format!("controllers {controllers:?}"));
    }
    found
}

/// As anyone, through `fleet_health`: the version and the data; returns whether the data is
/// unchanged.
fn check_data(
    e: &Expected,
    before: &Option<FleetHealth>,
    after: Option<FleetHealth>,
    expected_version: &str,
    failed: &mut Failed,
) -> bool {
    match (before, after) {
        (Some(b), Some(a)) => {
            if a.version != expected_version {
                failed.wrong_module.push(format!(
                    "reports version {} where {expected_version} was expected",
                    a.version
                ));
            }
            if a.checksum == b.checksum && a.records == b.records {
                return true;
            }
            failed.data_changed.push(format!(
                "data changed: {} records (checksum {}) before, {} ({}) after",
                b.records,
                hex::encode(&b.checksum),
                a.records,
                hex::encode(&a.checksum)
            ));
        }
        (Some(_), None) => failed
            .data_changed
            .push("fleet_health no longer answers".into()),
        (None, _) if e.bundled_from => failed
            .data_changed
            .push("fleet_health did not answer".into()),
        (None, _) => {}
    }
    false
}
