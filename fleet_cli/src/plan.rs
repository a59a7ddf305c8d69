//! Rollout plan options on the command line: every field of the manager's `RolloutPlanArg`,
//! shared by `rollout start` and `rehearse`, and the limits `rollout rollback` takes.
//!
//! A group of related settings (limits, failure policy, cycles, retry) is one record in the
//! plan. When any flag of a group is given, the group is sent whole, its other fields taking
//! the manager's defaults ([`rollout_core::RolloutPlan::new`]); when none is given, the
//! manager's defaults apply. The plan is validated here with the manager's own rules before
//! anything is sent, so a bad plan is refused with a precise message and starts nothing.

use std::path::{Path, PathBuf};

use candid::Principal;
use clap::Args;
use fleet_api::rollout::{
    Canary, CyclesPolicy, FailurePolicy, Limits, PlanError, RetryPolicy, RolloutPlanArg,
};
use fleet_api::wire::Wire;
use rollout_core::{RolloutPlan, SECOND};

use crate::error::CliError;

/// Rate and concurrency limits of a rollout or a rollback.
#[derive(Args, Debug, Clone, Default)]
pub struct LimitArgs {
    /// Canisters whose upgrade pipeline runs at once [manager default: 20].
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<u32>,
    /// Long-run rate of pipeline starts [default: 60].
    #[arg(long, value_name = "N")]
    pub starts_per_minute: Option<u32>,
    /// Starts allowed at once after a quiet period (token bucket size) [default: 10].
    #[arg(long, value_name = "N")]
    pub burst: Option<u32>,
    /// Pipeline starts per timer tick of the manager [default: 10].
    #[arg(long, value_name = "N")]
    pub starts_per_tick: Option<u32>,
    /// Pipelines at once on each subnet, within --max-in-flight (fleets on several subnets;
    /// a subnet at its limit does not hold the others back) [default: no per-subnet limits].
    #[arg(long, value_name = "N")]
    pub subnet_max_in_flight: Option<u32>,
    /// Long-run rate of pipeline starts on each subnet [default with a per-subnet limit:
    /// --starts-per-minute].
    #[arg(long, value_name = "N")]
    pub subnet_starts_per_minute: Option<u32>,
    /// Token bucket size on each subnet [default with a per-subnet limit: --burst].
    #[arg(long, value_name = "N")]
    pub subnet_burst: Option<u32>,
}

impl LimitArgs {
    pub fn any(&self) -> bool {
        self.max_in_flight.is_some()
            || self.starts_per_minute.is_some()
            || self.burst.is_some()
            || self.starts_per_tick.is_some()
            || self.per_subnet()
    }

    fn per_subnet(&self) -> bool {
        self.subnet_max_in_flight.is_some()
            || self.subnet_starts_per_minute.is_some()
            || self.subnet_burst.is_some()
    }

    /// The limits to send: `None` when no flag is given (the manager then uses its default,
    /// or for a rollback the last rollout's limits).
    pub fn to_limits(&self) -> Option<Limits> {
        self.any().then(|| {
            let d = defaults().limits;
            let starts_per_minute = self.starts_per_minute.unwrap_or(d.starts_per_minute);
            let burst = self.burst.unwrap_or(d.burst);
            let max_in_flight = self.max_in_flight.unwrap_or(d.max_in_flight);
            Limits {
                max_in_flight,
                starts_per_minute,
                burst,
                max_starts_per_tick: self.starts_per_tick.unwrap_or(d.max_starts_per_tick),
                per_subnet: self.per_subnet().then(|| fleet_api::engine::SubnetLimits {
                    max_in_flight: self.subnet_max_in_flight.unwrap_or(max_in_flight),
                    starts_per_minute: self.subnet_starts_per_minute.unwrap_or(starts_per_minute),
                    burst: self.subnet_burst.unwrap_or(burst),
                }),
            }
        })
    }

    /// Refuses a zero limit before anything is sent.
    pub fn validate(&self) -> Result<(), CliError> {
        if let Some(l) = self.to_limits() {
            let mut plan = defaults();
            plan.limits = l.wire();
            plan.validate().map_err(|e| plan_error(e.wire()))?;
        }
        Ok(())
    }
}

/// Every option of a rollout plan but its target and source release.
#[derive(Args, Debug, Clone, Default)]
pub struct PlanArgs {
    /// Only these canisters are candidates (repeat, or separate with commas).
    #[arg(long = "include", value_name = "CANISTER_ID", value_delimiter = ',')]
    pub include: Vec<Principal>,
    /// Read more `--include` canisters from a file, one id per line (`#` starts a comment).
    #[arg(long, value_name = "FILE")]
    pub include_file: Option<PathBuf>,
    /// Never touch these canisters (repeat, or separate with commas).
    #[arg(long = "exclude", value_name = "CANISTER_ID", value_delimiter = ',')]
    pub exclude: Vec<Principal>,
    /// Read more `--exclude` canisters from a file, one id per line.
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Option<PathBuf>,
    /// Canisters in the canary stage, the first N in id order (0: no canary) [default: 10].
    #[arg(long, value_name = "N", conflicts_with_all = ["canary_list", "canary_file"])]
    pub canary: Option<u32>,
    /// Exactly these canisters form the canary stage (repeat, or separate with commas).
    #[arg(
        long = "canary-list",
        value_name = "CANISTER_ID",
        value_delimiter = ','
    )]
    pub canary_list: Vec<Principal>,
    /// Read the canary canisters from a file, one id per line.
    #[arg(long, value_name = "FILE")]
    pub canary_file: Option<PathBuf>,
    /// Cumulative percentages of the waves after the canary, ending at 100
    /// [default: 1,10,50,100].
    #[arg(long, value_name = "PERCENTS", value_delimiter = ',')]
    pub waves: Option<Vec<u8>>,
    /// Seconds to wait between a completed stage and the next [default: 600].
    #[arg(long, value_name = "SECS")]
    pub bake_secs: Option<u64>,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Halt when failed or rolled-back canisters exceed this percentage of a wave [default: 5].
    #[arg(long, value_name = "PERCENT")]
    pub max_failed_percent: Option<u8>,
    /// Halt after this many failures in a row; 0 disables the check [default: 5].
    #[arg(long, value_name = "N")]
    pub max_consecutive_failures: Option<u32>,
    /// What a halt stops: the whole `fleet`, or only the `subnet` whose canisters failed
    /// (failures then count per subnet, and the other subnets go on) [default: fleet].
    #[arg(long, value_name = "SCOPE", value_parser = ["fleet", "subnet"])]
    pub halt_scope: Option<String>,
    /// Do not snapshot canisters before upgrading them (a failed health check then cannot be
    /// rolled back).
    #[arg(long)]
    pub no_snapshot: bool,
    /// Delete a successful upgrade's snapshot this long after it; 0 keeps it until the next
    /// upgrade replaces it [default: 604800, 7 days].
    #[arg(long, value_name = "SECS", conflicts_with = "no_snapshot")]
    pub keep_snapshot_secs: Option<u64>,
    /// Canisters below this balance are topped up first, or skipped when the budget is spent
    /// [default: 500000000000].
    #[arg(long, value_name = "CYCLES")]
    pub min_cycles: Option<u128>,
    /// A top-up brings the balance to this amount [default: 1000000000000].
    #[arg(long, value_name = "CYCLES")]
    pub top_up_to: Option<u128>,
    /// Total cycles the rollout may spend on top-ups [default: 0].
    #[arg(long, value_name = "CYCLES")]
    pub cycles_budget: Option<u128>,
    /// Attempts for a deferred canister (busy, frozen, controllers changed, manager faults)
    /// before it is left on its release as deferred [default: 5].
    #[arg(long, value_name = "N")]
    pub stop_attempts: Option<u32>,
    /// First retry backoff, doubled on each retry [default: 60].
    #[arg(long, value_name = "SECS")]
    pub backoff_base_secs: Option<u64>,
    /// Longest retry backoff [default: 1800].
    #[arg(long, value_name = "SECS")]
    pub backoff_max_secs: Option<u64>,
    /// Seconds a canister gets to stop before it is started again and deferred; 0 waits for
    /// the IC's own 5-minute timeout [default: 60].
    #[arg(long, value_name = "SECS")]
    pub stop_deadline_secs: Option<u64>,
}

/// The manager's defaults, as `rollout_core` defines them.
fn defaults() -> RolloutPlan {
    RolloutPlan::new(rollout_core::Release {
        module_hash: vec![0; rollout_core::plan::HASH_LEN],
        version: "0.0.0".into(),
    })
}

/// Principals listed in `path`, one per line; blank lines and `#` comments are ignored.
pub fn read_principals(path: &Path) -> Result<Vec<Principal>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("reading {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let id = line.split('#').next().unwrap_or("").trim();
        if id.is_empty() {
            continue;
        }
        out.push(Principal::from_text(id).map_err(|e| {
            CliError::Usage(format!(
                "{}:{}: `{id}` is not a canister id: {e}",
                path.display(),
                n + 1
            ))
        })?);
    }
    Ok(out)
}

fn list(flags: &[Principal], file: &Option<PathBuf>) -> Result<Vec<Principal>, CliError> {
    let mut all = flags.to_vec();
    if let Some(path) = file {
        all.extend(read_principals(path)?);
    }
    Ok(all)
}

impl PlanArgs {
    /// The plan to send for a rollout to `target_version`, validated with the manager's rules
    /// (those that do not depend on the fleet or the releases).
    pub fn to_plan(
        &self,
        target_version: &str,
        from_version: Option<&str>,
    ) -> Result<RolloutPlanArg, CliError> {
        let d = defaults();
        let mut plan = RolloutPlanArg::to(target_version);
        plan.from_version = from_version.map(str::to_string);
        let include = list(&self.include, &self.include_file)?;
        if self.include_file.is_some() && include.is_empty() {
            return Err(CliError::Usage(
                "the include file lists no canister: the rollout would select nothing".into(),
            ));
        }
        plan.include = (!include.is_empty()).then_some(include);
        let exclude = list(&self.exclude, &self.exclude_file)?;
        plan.exclude = (!exclude.is_empty()).then_some(exclude);
        let canary_list = list(&self.canary_list, &self.canary_file)?;
        plan.canary = match (self.canary, canary_list.is_empty()) {
            (Some(_), false) => {
                return Err(CliError::Usage(
                    "give the canary as a count or as a list, not both".into(),
                ))
            }
            (Some(0), true) => Some(Canary::None),
            (Some(n), true) => Some(Canary::Count(n)),
            (None, false) => Some(Canary::List(canary_list)),
            (None, true) if self.canary_file.is_some() => {
                return Err(CliError::Usage("the canary file lists no canister".into()))
            }
            (None, true) => None,
        };
        plan.waves_percent = self.waves.clone();
        plan.bake_secs = self.bake_secs;
        plan.limits = self.limits.to_limits();
        if self.max_failed_percent.is_some()
            || self.max_consecutive_failures.is_some()
            || self.halt_scope.is_some()
        {
            plan.failure = Some(FailurePolicy {
                max_failed_percent: self
                    .max_failed_percent
                    .unwrap_or(d.failure.max_failed_percent),
                max_consecutive_failures: self
                    .max_consecutive_failures
                    .unwrap_or(d.failure.max_consecutive_failures),
                halt_scope: self.halt_scope.as_deref().map(|s| match s {
                    "subnet" => fleet_api::engine::HaltScope::Subnet,
                    _ => fleet_api::engine::HaltScope::Fleet,
                }),
            });
        }
        plan.take_snapshot = self.no_snapshot.then_some(false);
        plan.keep_snapshot_secs = self.keep_snapshot_secs;
        if self.min_cycles.is_some() || self.top_up_to.is_some() || self.cycles_budget.is_some() {
            plan.cycles = Some(CyclesPolicy {
                min_cycles: self.min_cycles.unwrap_or(d.cycles.min_cycles),
                top_up_to: self.top_up_to.unwrap_or(d.cycles.top_up_to),
                budget: self.cycles_budget.unwrap_or(d.cycles.budget),
            });
        }
        if self.stop_attempts.is_some()
            || self.backoff_base_secs.is_some()
            || self.backoff_max_secs.is_some()
        {
            plan.retry = Some(RetryPolicy {
                stop_attempts: self.stop_attempts.unwrap_or(d.retry.stop_attempts),
                backoff_base_ns: self
                    .backoff_base_secs
                    .map_or(d.retry.backoff_base_ns, secs_to_ns),
                backoff_max_ns: self
                    .backoff_max_secs
                    .map_or(d.retry.backoff_max_ns, secs_to_ns),
            });
        }
        plan.stop_deadline_secs = self.stop_deadline_secs;
        validate(&plan)?;
        Ok(plan)
    }
}

fn secs_to_ns(secs: u64) -> u64 {
    secs.saturating_mul(SECOND)
}

/// Checks `arg` as the manager will, with a placeholder for the release hashes it resolves.
fn validate(arg: &RolloutPlanArg) -> Result<(), CliError> {
    let mut plan = defaults();
    plan.target.version = arg.target_version.clone();
    fleet_api::wire::apply_plan_options(arg, &mut plan);
    plan.validate().map_err(|e| plan_error(e.wire()))
}

/// A refused plan as a usage error (exit code 2).
pub fn plan_error(e: PlanError) -> CliError {
    CliError::Usage(format!("invalid rollout plan: {}", describe_plan_error(&e)))
}

/// What is wrong with a plan, in the operator's terms (flag names).
pub fn describe_plan_error(e: &PlanError) -> String {
    match e {
        PlanError::EmptyVersion => "the target version is empty".into(),
        PlanError::FromEqualsTarget => "--from names the target release itself".into(),
        PlanError::NoWaves => "--waves is empty".into(),
        PlanError::WavePercentOutOfRange { index, percent } => {
            format!("wave {} is {percent}%: each must be 1..=100", index + 1)
        }
        PlanError::WavesNotIncreasing { index } => format!(
            "--waves must increase strictly (wave {} does not)",
            index + 1
        ),
        PlanError::LastWaveNotFull { percent } => {
            format!("the last wave must be 100%, not {percent}%")
        }
        PlanError::CanaryCountZero => "a canary count must be at least 1 (0: none)".into(),
        PlanError::EmptyCanaryList => "the canary list is empty".into(),
        PlanError::DuplicateInList { list, canister } => {
            format!("{canister} appears twice in the {list:?} list")
        }
        PlanError::ListOverlap { canister } => {
            format!("{canister} is both included (or a canary) and excluded")
        }
        PlanError::ZeroLimit { limit } => format!("the {limit:?} limit must be at least 1"),
        PlanError::ThresholdOutOfRange { percent } => {
            format!("--max-failed-percent is {percent}: it must be 0..=100")
        }
        PlanError::TopUpBelowMinimum => "--top-up-to must be at least --min-cycles".into(),
        PlanError::InvalidRetry => {
            "retry policy: --stop-attempts must be at least 1 and --backoff-base-secs at most --backoff-max-secs"
                .into()
        }
        PlanError::InvalidStopDeadline => {
            "--stop-deadline-secs must be 1..=300 (0: the IC's own timeout)".into()
        }
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        plan: PlanArgs,
    }

    fn plan(args: &[&str]) -> Result<RolloutPlanArg, CliError> {
        T::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .plan
            .to_plan("2.0.0", None)
    }

    #[test]
    fn no_flags_send_the_managers_defaults() {
        assert_eq!(plan(&[]).unwrap(), RolloutPlanArg::to("2.0.0"));
    }

    #[test]
    fn a_partly_given_group_is_completed_with_defaults() {
        let p = plan(&["--burst", "3", "--backoff-max-secs", "120", "--no-snapshot"]).unwrap();
        let l = p.limits.unwrap();
        assert_eq!((l.burst, l.max_in_flight), (3, 20));
        let r = p.retry.unwrap();
        assert_eq!(
            (r.backoff_base_ns, r.backoff_max_ns),
            (60 * SECOND, 120 * SECOND)
        );
        assert_eq!(p.take_snapshot, Some(false));
        assert_eq!(p.failure, None);
    }

    #[test]
    fn invalid_plans_are_refused_before_sending() {
        for bad in [
            &["--waves", "10,5,100"][..],
            &["--waves", "10,50"],
            &["--max-in-flight", "0"],
            &["--max-failed-percent", "101"],
            &["--min-cycles", "10", "--top-up-to", "5"],
            &["--stop-attempts", "0"],
        ] {
            let e = plan(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}: {e}");
            assert!(e.to_string().starts_with("invalid rollout plan"), "{e}");
        }
        let c = Principal::from_text("rrkah-fqaaa-aaaaa-aaaaq-cai")
            .unwrap()
            .to_text();
        let e = plan(&["--include", &c, "--exclude", &c]).unwrap_err();
        assert!(e.to_string().contains("both included"), "{e}");
    }
}
