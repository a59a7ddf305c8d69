//! The operator's rollout plan: validation and cohort selection into waves.
//!
//! Validation is separate from selection so that a bad plan is refused before anything is
//! stored. Selection is deterministic: the same plan over the same registry yields the same
//! waves (canary first, then percentage waves over the rest, each ordered by canister id, the
//! subnets of a fleet on several taken evenly: see [`interleave_subnets`]), so an
//! operator's dry run shows exactly what the rollout will do.

use std::collections::BTreeSet;

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

use crate::{Nanos, SnapshotId, MINUTE};

/// Length of a sha256 module hash.
pub const HASH_LEN: usize = 32;

/// A published user-canister release.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Release {
    /// sha256 of the wasm module as installed; what `canister_status` reports as `module_hash`.
    pub module_hash: Vec<u8>,
    /// The app version the module reports in `fleet_health`; the health check compares it.
    pub version: String,
}

/// A canister owner's upgrade policy, as stored in the manager's registry.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum UpgradePolicy {
    /// Upgraded by every rollout that selects it.
    Auto,
    /// Upgraded only when the owner asks, or when the operator names it explicitly.
    Manual,
    /// Stays on this module hash: only a rollout to exactly that release may touch it.
    Pinned(Vec<u8>),
}

/// What the registry knows about one canister; the input of cohort selection.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FleetCanister {
    pub id: Principal,
    pub policy: UpgradePolicy,
    /// Module hash the registry believes is installed (`None`: empty canister).
    pub module_hash: Option<Vec<u8>>,
    /// The owner's recovery controller, which precheck requires to still be a controller.
    pub recovery: Principal,
    /// The fleet snapshot kept from the previous upgrade; replaced by the next one.
    pub snapshot: Option<SnapshotId>,
    /// The subnet the canister lives on; `None`: unknown, taken as the manager's own. Rollouts
    /// limit load and may halt per subnet.
    pub subnet: Option<Principal>,
}

/// Distinct subnets one rollout spans (besides `None`, the manager's own): each has its own
/// counters and token bucket in the rollout's header, which must stay small.
pub const MAX_SUBNETS: usize = 8;

/// How the first stage is chosen.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Canary {
    /// No canary stage: the first percentage wave comes first.
    None,
    /// The first N selected canisters in id order (taken evenly from each subnet of a fleet on
    /// several).
    Count(u32),
    /// Exactly these canisters; each must be eligible, or the plan is refused.
    List(Vec<Principal>),
}

/// Limits that bound the load a rollout puts on the fleet and on the manager.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Canisters whose pipeline is running at once.
    pub max_in_flight: u32,
    /// Long-run rate of pipeline starts (token bucket refill).
    pub starts_per_minute: u32,
    /// Token bucket capacity: starts allowed at once after a quiet period. Any window of
    /// length L sees at most `burst + starts_per_minute * L / 1 min` starts. With ticks every
    /// D, set it to at least `starts_per_minute * D / 1 min` or the rate cannot be reached.
    pub burst: u32,
    /// Pipeline starts per timer tick, which bounds the instructions a tick spends.
    pub max_starts_per_tick: u32,
    /// Limits of each subnet, on top of the overall ones: a subnet has its own capacity, and
    /// one at its limit does not hold back the others. `None`: only the overall limits.
    pub per_subnet: Option<SubnetLimits>,
}

/// The load a rollout may put on one subnet; the same meaning as the overall [`Limits`].
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubnetLimits {
    pub max_in_flight: u32,
    pub starts_per_minute: u32,
    pub burst: u32,
}

/// What a failure check trips: the whole rollout, or the subnet it counted.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HaltScope {
    /// Failures anywhere count together and halt the whole rollout.
    #[default]
    Fleet,
    /// Failures count per subnet and halt only their subnet, so that a subnet in trouble
    /// does not stop the others; the rollout ends halted when nothing else is left.
    Subnet,
}

/// When a rollout halts itself. Halting stops new starts; in-flight pipelines finish.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Halt when failed (or rolled back) canisters of a wave exceed this percentage of the wave.
    pub max_failed_percent: u8,
    /// Halt after this many failures in a row (in completion order); 0 disables the check.
    pub max_consecutive_failures: u32,
    /// Whether the checks count over the fleet or per subnet.
    pub halt_scope: HaltScope,
}

/// Snapshot before upgrade, so that a failed health check can restore the old state.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    pub take: bool,
    /// Delete the snapshot this long after a successful upgrade; `None` keeps it until the
    /// next rollout replaces it.
    pub keep_ns: Option<Nanos>,
}

/// Cycles a canister needs before it is upgraded, and what the manager may spend topping up.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CyclesPolicy {
    /// Below this balance a canister is topped up (or skipped when the budget is spent).
    pub min_cycles: u128,
    /// A top-up brings the balance to this amount.
    pub top_up_to: u128,
    /// Total cycles the rollout may send in top-ups.
    pub budget: u128,
}

/// Backoff for canisters that would not stop, and for retried starts and restores.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts to stop a canister before it is marked failed.
    pub stop_attempts: u32,
    pub backoff_base_ns: Nanos,
    pub backoff_max_ns: Nanos,
}

impl RetryPolicy {
    /// Exponential backoff after `attempt` failures (1-based), capped.
    pub fn backoff(&self, attempt: u32) -> Nanos {
        let shift = attempt.saturating_sub(1).min(32);
        self.backoff_base_ns
            .saturating_mul(1u64 << shift)
            .min(self.backoff_max_ns)
    }
}

/// A rollout as the operator defines it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutPlan {
    pub target: Release,
    /// Only canisters on this module hash are selected, and precheck requires it.
    pub from_release: Option<Vec<u8>>,
    /// When set, only these canisters are candidates.
    pub include: Option<Vec<Principal>>,
    pub exclude: Vec<Principal>,
    pub canary: Canary,
    /// Cumulative percentages of the cohort after the canary, strictly increasing, ending at 100.
    pub waves_percent: Vec<u8>,
    /// Wait after a stage completes before the next one starts.
    pub bake_ns: Nanos,
    pub limits: Limits,
    pub failure: FailurePolicy,
    pub snapshot: SnapshotPolicy,
    pub cycles: CyclesPolicy,
    pub retry: RetryPolicy,
    /// How long the manager waits for a canister to stop before it starts it again and defers
    /// it; `None` waits for the IC's own timeout (5 minutes, interface spec `stop_canister`).
    pub stop_deadline_ns: Option<Nanos>,
}

/// The longest stop deadline: the IC's own stop timeout.
pub const MAX_STOP_DEADLINE: Nanos = 5 * MINUTE;
/// Default of [`RolloutPlan::stop_deadline_ns`]: a canister that is not stopped after a minute
/// is busy; waiting the IC's five minutes per attempt costs a rollout far more.
pub const DEFAULT_STOP_DEADLINE: Nanos = 60 * crate::SECOND;

impl RolloutPlan {
    /// A plan with conservative defaults: a canary of 10, waves of 1%, 10%, 50%, 100% with
    /// 10 minutes of bake, snapshots kept 7 days, and no cycles budget.
    pub fn new(target: Release) -> Self {
        RolloutPlan {
            target,
            from_release: None,
            include: None,
            exclude: Vec::new(),
            canary: Canary::Count(10),
            waves_percent: vec![1, 10, 50, 100],
            bake_ns: 10 * MINUTE,
            limits: Limits {
                max_in_flight: 20,
                starts_per_minute: 60,
                burst: 10,
                max_starts_per_tick: 10,
                per_subnet: None,
            },
            failure: FailurePolicy {
                max_failed_percent: 5,
                max_consecutive_failures: 5,
                halt_scope: HaltScope::Fleet,
            },
            snapshot: SnapshotPolicy {
                take: true,
                keep_ns: Some(7 * 24 * 60 * MINUTE),
            },
            cycles: CyclesPolicy {
                min_cycles: 500_000_000_000,
                top_up_to: 1_000_000_000_000,
                budget: 0,
            },
            retry: RetryPolicy {
                stop_attempts: 5,
                backoff_base_ns: MINUTE,
                backoff_max_ns: 30 * MINUTE,
            },
            stop_deadline_ns: Some(DEFAULT_STOP_DEADLINE),
        }
    }

    /// Checks everything that does not depend on the fleet.
    pub fn validate(&self) -> Result<(), PlanError> {
        check_hash(&self.target.module_hash, HashField::Target)?;
        if self.target.version.trim().is_empty() {
            return Err(PlanError::EmptyVersion);
        }
        if let Some(from) = &self.from_release {
            check_hash(from, HashField::From)?;
            if *from == self.target.module_hash {
                return Err(PlanError::FromEqualsTarget);
            }
        }
        if self.waves_percent.is_empty() {
            return Err(PlanError::NoWaves);
        }
        let mut previous = 0u8;
        for (index, &percent) in self.waves_percent.iter().enumerate() {
            let index = index as u32;
            if percent == 0 || percent > 100 {
                return Err(PlanError::WavePercentOutOfRange { index, percent });
            }
            if percent <= previous {
                return Err(PlanError::WavesNotIncreasing { index });
            }
            previous = percent;
        }
        if previous != 100 {
            return Err(PlanError::LastWaveNotFull { percent: previous });
        }
        let exclude = unique_set(&self.exclude, ListName::Exclude)?;
        if let Some(include) = &self.include {
            let include = unique_set(include, ListName::Include)?;
            if let Some(c) = include.intersection(&exclude).next() {
                return Err(PlanError::ListOverlap { canister: *c });
            }
        }
        match &self.canary {
            Canary::None => {}
            Canary::Count(0) => return Err(PlanError::CanaryCountZero),
            Canary::Count(_) => {}
            Canary::List(list) => {
                if list.is_empty() {
                    return Err(PlanError::EmptyCanaryList);
                }
                let canary = unique_set(list, ListName::Canary)?;
                if let Some(c) = canary.intersection(&exclude).next() {
                    return Err(PlanError::ListOverlap { canister: *c });
                }
            }
        }
        let l = &self.limits;
        for (value, limit) in [
            (l.max_in_flight, LimitName::MaxInFlight),
            (l.starts_per_minute, LimitName::StartsPerMinute),
            (l.burst, LimitName::Burst),
            (l.max_starts_per_tick, LimitName::MaxStartsPerTick),
        ] {
            if value == 0 {
                return Err(PlanError::ZeroLimit { limit });
            }
        }
        if let Some(sl) = &l.per_subnet {
            for (value, overall, limit) in [
                (
                    sl.max_in_flight,
                    l.max_in_flight,
                    LimitName::SubnetMaxInFlight,
                ),
                (
                    sl.starts_per_minute,
                    l.starts_per_minute,
                    LimitName::SubnetStartsPerMinute,
                ),
                (sl.burst, l.burst, LimitName::SubnetBurst),
            ] {
                if value == 0 {
                    return Err(PlanError::ZeroLimit { limit });
                }
                // A subnet limit above the overall one never applies: a mistake in the plan.
                if value > overall {
                    return Err(PlanError::SubnetLimitAboveOverall { limit });
                }
            }
        }
        if self.failure.max_failed_percent > 100 {
            return Err(PlanError::ThresholdOutOfRange {
                percent: self.failure.max_failed_percent,
            });
        }
        if self.cycles.top_up_to < self.cycles.min_cycles {
            return Err(PlanError::TopUpBelowMinimum);
        }
        let r = &self.retry;
        if r.stop_attempts == 0 || r.backoff_base_ns == 0 || r.backoff_max_ns < r.backoff_base_ns {
            return Err(PlanError::InvalidRetry);
        }
        if self
            .stop_deadline_ns
            .is_some_and(|d| !(crate::SECOND..=MAX_STOP_DEADLINE).contains(&d))
        {
            return Err(PlanError::InvalidStopDeadline);
        }
        Ok(())
    }
}

fn check_hash(hash: &[u8], field: HashField) -> Result<(), PlanError> {
    if hash.len() != HASH_LEN {
        return Err(PlanError::InvalidModuleHash {
            field,
            len: hash.len() as u32,
        });
    }
    Ok(())
}

fn unique_set(list: &[Principal], name: ListName) -> Result<BTreeSet<Principal>, PlanError> {
    let mut set = BTreeSet::new();
    for c in list {
        if !set.insert(*c) {
            return Err(PlanError::DuplicateInList {
                list: name,
                canister: *c,
            });
        }
    }
    Ok(set)
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashField {
    Target,
    From,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListName {
    Include,
    Exclude,
    Canary,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitName {
    MaxInFlight,
    StartsPerMinute,
    Burst,
    MaxStartsPerTick,
    SubnetMaxInFlight,
    SubnetStartsPerMinute,
    SubnetBurst,
}

/// Why a canister the operator named explicitly cannot be part of the rollout.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ineligible {
    NotInFleet,
    Pinned,
    AlreadyOnTarget,
    OtherRelease,
}

/// Why a plan was refused. Nothing is stored when a plan is refused.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    InvalidModuleHash {
        field: HashField,
        len: u32,
    },
    EmptyVersion,
    FromEqualsTarget,
    NoWaves,
    WavePercentOutOfRange {
        index: u32,
        percent: u8,
    },
    WavesNotIncreasing {
        index: u32,
    },
    LastWaveNotFull {
        percent: u8,
    },
    CanaryCountZero,
    EmptyCanaryList,
    DuplicateInList {
        list: ListName,
        canister: Principal,
    },
    ListOverlap {
        canister: Principal,
    },
    ZeroLimit {
        limit: LimitName,
    },
    ThresholdOutOfRange {
        percent: u8,
    },
    TopUpBelowMinimum,
    InvalidRetry,
    /// The stop deadline is below a second or above the IC's own 5-minute timeout.
    InvalidStopDeadline,
    CanaryNotEligible {
        canister: Principal,
        reason: Ineligible,
    },
    DuplicateCanister {
        canister: Principal,
    },
    EmptyCohort,
    /// A restore names a canister without a fleet snapshot.
    NoSnapshot {
        canister: Principal,
    },
    /// The canisters live on more distinct subnets than a rollout tracks ([`MAX_SUBNETS`]).
    TooManySubnets {
        count: u32,
        max: u32,
    },
    /// A per-subnet limit exceeds its overall counterpart.
    SubnetLimitAboveOverall {
        limit: LimitName,
    },
}

/// A selected canister with what its pipeline needs to know.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CohortMember {
    pub id: Principal,
    pub recovery: Principal,
    /// The module hash precheck expects to find.
    pub expected_module_hash: Option<Vec<u8>>,
    pub snapshot: Option<SnapshotId>,
    /// See [`FleetCanister::subnet`].
    pub subnet: Option<Principal>,
}

/// Name of a stage, for status and events.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaveLabel {
    Canary,
    /// Cumulative percentage of the cohort after the canary.
    Percent(u8),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WavePlan {
    pub label: WaveLabel,
    pub members: Vec<CohortMember>,
}

/// What selection did with the fleet, so the operator sees why canisters were left out.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CohortSummary {
    pub offered: u64,
    pub selected: u64,
    pub excluded: u64,
    pub not_included: u64,
    pub manual: u64,
    pub pinned: u64,
    pub already_on_target: u64,
    pub other_release: u64,
}

/// The selected canisters in waves, ready to be handed to [`crate::Rollout::start`].
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Cohort {
    pub waves: Vec<WavePlan>,
    pub summary: CohortSummary,
}

impl Cohort {
    pub fn len(&self) -> usize {
        self.waves.iter().map(|w| w.members.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Selects the cohort from the registry, which is offered one canister at a time so that the
/// manager can stream it out of a stable map without copying the registry.
pub struct CohortBuilder<'a> {
    plan: &'a RolloutPlan,
    include: Option<BTreeSet<Principal>>,
    exclude: BTreeSet<Principal>,
    canary_list: BTreeSet<Principal>,
    canary_error: Option<PlanError>,
    canaries: Vec<CohortMember>,
    rest: Vec<CohortMember>,
    summary: CohortSummary,
}

impl<'a> CohortBuilder<'a> {
    /// Validates the plan; a refused plan yields no builder.
    pub fn new(plan: &'a RolloutPlan) -> Result<Self, PlanError> {
        plan.validate()?;
        let canary_list = match &plan.canary {
            Canary::List(list) => list.iter().copied().collect(),
            _ => BTreeSet::new(),
        };
        Ok(CohortBuilder {
            plan,
            include: plan.include.as_ref().map(|l| l.iter().copied().collect()),
            exclude: plan.exclude.iter().copied().collect(),
            canary_list,
            canary_error: None,
            canaries: Vec::new(),
            rest: Vec::new(),
            summary: CohortSummary::default(),
        })
    }

    /// Considers one registry entry.
    pub fn offer(&mut self, c: &FleetCanister) {
        let s = &mut self.summary;
        s.offered += 1;
        if self.exclude.contains(&c.id) {
            s.excluded += 1;
            return;
        }
        let is_canary = self.canary_list.contains(&c.id);
        let named = is_canary || self.include.as_ref().is_some_and(|i| i.contains(&c.id));
        if self.include.is_some() && !named {
            s.not_included += 1;
            return;
        }
        let target = &self.plan.target.module_hash;
        let ineligible = match &c.policy {
            UpgradePolicy::Auto => None,
            UpgradePolicy::Manual if named => None,
            UpgradePolicy::Manual => {
                s.manual += 1;
                return;
            }
            UpgradePolicy::Pinned(pin) if pin == target => None,
            UpgradePolicy::Pinned(_) => Some(Ineligible::Pinned),
        }
        .or_else(|| {
            if c.module_hash.as_ref() == Some(target) {
                Some(Ineligible::AlreadyOnTarget)
            } else if self
                .plan
                .from_release
                .as_ref()
                .is_some_and(|f| c.module_hash.as_ref() != Some(f))
            {
                Some(Ineligible::OtherRelease)
            } else {
                None
            }
        });
        if let Some(reason) = ineligible {
            match reason {
                Ineligible::Pinned => s.pinned += 1,
                Ineligible::AlreadyOnTarget => s.already_on_target += 1,
                _ => s.other_release += 1,
            }
            if is_canary && self.canary_error.is_none() {
                self.canary_error = Some(PlanError::CanaryNotEligible {
                    canister: c.id,
                    reason,
                });
            }
            return;
        }
        s.selected += 1;
        let member = CohortMember {
            id: c.id,
            recovery: c.recovery,
            expected_module_hash: c.module_hash.clone(),
            snapshot: c.snapshot.clone(),
            subnet: c.subnet,
        };
        if is_canary {
            self.canaries.push(member);
        } else {
            self.rest.push(member);
        }
    }

    /// Orders the selection by canister id and cuts it into waves.
    pub fn finish(self) -> Result<Cohort, PlanError> {
        if let Some(e) = self.canary_error {
            return Err(e);
        }
        let mut canaries = self.canaries;
        let mut rest = self.rest;
        canaries.sort_unstable_by_key(|m| m.id);
        rest.sort_unstable_by_key(|m| m.id);
        for list in [&canaries, &rest] {
            if let Some(w) = list.windows(2).find(|w| w[0].id == w[1].id) {
                return Err(PlanError::DuplicateCanister { canister: w[0].id });
            }
        }
        if let Some(missing) = self
            .canary_list
            .iter()
            .find(|id| canaries.binary_search_by(|m| m.id.cmp(id)).is_err())
        {
            return Err(PlanError::CanaryNotEligible {
                canister: *missing,
                reason: Ineligible::NotInFleet,
            });
        }
        let mut rest = interleave_subnets(rest);
        if let Canary::Count(n) = self.plan.canary {
            let n = (n as usize).min(rest.len());
            canaries = rest.drain(..n).collect();
        }
        if canaries.is_empty() && rest.is_empty() {
            return Err(PlanError::EmptyCohort);
        }
        let mut waves = Vec::new();
        if !canaries.is_empty() {
            waves.push(WavePlan {
                label: WaveLabel::Canary,
                members: canaries,
            });
        }
        let total = rest.len() as u64;
        let mut rest = rest.into_iter();
        let mut taken = 0u64;
        for &percent in &self.plan.waves_percent {
            let end = (total * percent as u64).div_ceil(100);
            let members: Vec<_> = rest.by_ref().take((end - taken) as usize).collect();
            taken = end;
            if !members.is_empty() {
                waves.push(WavePlan {
                    label: WaveLabel::Percent(percent),
                    members,
                });
            }
        }
        Ok(Cohort {
            waves,
            summary: self.summary,
        })
    }
}

/// Orders `members` (in id order) so that every prefix takes the same share of each subnet's
/// canisters, each subnet's in id order: a canister ranked r (from 0) among the n of its subnet
/// comes at (r + 1) / n, ties in subnet order. Canister ids are allocated per subnet range, so
/// id order alone would put one subnet's canisters in the first waves and the next subnet's
/// after them, and subnets could not progress in parallel; this way a 10% wave holds 10% of
/// every subnet. One subnet keeps id order.
pub fn interleave_subnets(members: Vec<CohortMember>) -> Vec<CohortMember> {
    let mut subnets: Vec<Option<Principal>> = members.iter().map(|m| m.subnet).collect();
    subnets.sort_unstable();
    subnets.dedup();
    if subnets.len() < 2 {
        return members;
    }
    let index = |s: &Option<Principal>| subnets.binary_search(s).expect("listed above");
    let mut sizes = vec![0u64; subnets.len()];
    for m in &members {
        sizes[index(&m.subnet)] += 1;
    }
    let mut seen = vec![0u64; subnets.len()];
    let mut keyed: Vec<(u64, u64, usize, CohortMember)> = members
        .into_iter()
        .map(|m| {
            let k = index(&m.subnet);
            seen[k] += 1;
            (seen[k], sizes[k], k, m)
        })
        .collect();
    // (rank + 1) / size compared without division: a/b < c/d ⇔ a·d < c·b.
    keyed.sort_by(|a, b| {
        (u128::from(a.0) * u128::from(b.1))
            .cmp(&(u128::from(b.0) * u128::from(a.1)))
            .then(a.2.cmp(&b.2))
    });
    keyed.into_iter().map(|(_, _, _, m)| m).collect()
}

/// Validates `plan` and selects its cohort from `fleet` in one go.
pub fn select<'f>(
    plan: &RolloutPlan,
    fleet: impl IntoIterator<Item = &'f FleetCanister>,
) -> Result<Cohort, PlanError> {
    let mut builder = CohortBuilder::new(plan)?;
    for c in fleet {
        builder.offer(c);
    }
    builder.finish()
}
