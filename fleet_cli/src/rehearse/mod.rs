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
//! `--faults` injects every class of fault the manager tells apart ([`FaultSpec`]): release
//! faults on some canisters (a trapping `post_upgrade`, a failing health check), which must end
//! failed or rolled back on the starting release; environment faults (a stop that hangs for a
//! while, a canister without cycles until its owner tops it up), which must be deferred and
//! upgraded by a later retry; and the manager's own faults (out of cycles for a while, an
//! upgrade of the manager mid-rollout), which must hold or defer work and blame nobody. The
//! report gives, per class, the faults injected and what became of those canisters, with the
//! deferrals by cause and the holds seen, and the checks from outside decide whether the
//! manager did the right thing with each.

mod faults;
pub mod live;
mod report;
mod rollout;
mod setup;
pub use setup::bundled_store_module;
mod sim;
mod verify;

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use candid::Principal;
use clap::Args;
use fleet_api::rollout::{FailurePolicy, RolloutPlanArg};

use crate::backend::sim::SimIc;
use crate::cli::{IdentityArgs, NetworkArgs};
use crate::dashboard::Dashboard;
use crate::error::CliError;
use crate::manager::Manager;
use crate::plan::PlanArgs;
use crate::progress::Bars;
use crate::progress::Progress;

pub use faults::{assign, FaultClass, FaultSpec, BUSY_SECS, FROZEN_SECS};
pub use report::{
    report_text, ClassReport, FaultReport, FollowUpReport, HoldCounts, ManagerLowReport,
    ManagerUpgradeReport, OutcomeCounts, RehearsalReport, StageReport, WallTimes,
};
pub use verify::Verification;

const SECOND_NS: u64 = 1_000_000_000;

#[derive(Args, Debug, Clone)]
pub struct RehearseArgs {
    /// User canisters to create, each by its own owner with its own recovery principal.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub users: u32,
    /// Application subnets of the simulated IC (at most 8). The manager runs on the first;
    /// it adds the others (a store canister on each, created through the cycles minting
    /// canister) and spreads the users' canisters evenly over all of them.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub subnets: u32,
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
    /// Faults to inject: `all`, or KIND[=VALUE] items, comma-separated or repeated.
    ///
    /// A SHARE is a fraction of the fleet (at least one canister, spread evenly, one fault per
    /// canister):
    ///   trap[=SHARE]        the target's post_upgrade traps: failed, kept on the start release
    ///                       (rehearses the bundled canister's fault_switch builds)
    ///   health[=SHARE]      the target fails the health check: rolled back to the snapshot
    ///   busy[=SHARE]        the stop hangs for 150 s: deferred, upgraded by a retry
    ///   frozen[=SHARE]      no cycles until the owner tops up, 240 s after the manager first
    ///                       reaches it: deferred, upgraded by a retry
    ///   manager-low[=SECS]  a third into the rollout the manager runs out of cycles for SECS,
    ///                       then has cycles for one pipeline at a time (held) for SECS/2
    ///                       before the full top-up [SECS default: 120]
    ///   manager-upgrade     two thirds into the rollout the manager is drained, stopped,
    ///                       upgraded and started again
    /// `all` = trap=0.03,health=0.02,busy=0.02,frozen=0.02,manager-low=120,manager-upgrade;
    /// later items override earlier ones (`all,busy=0`). A bare FRACTION is health=FRACTION.
    /// Kind defaults: trap 0.03, health 0.02, busy 0.02, frozen 0.02. With release faults on
    /// and no --max-failed-percent/--max-consecutive-failures, the rehearsal turns the halts
    /// off so that every class plays out; give them to rehearse a halt.
    #[arg(long, value_name = "SPEC", value_delimiter = ',', verbatim_doc_comment)]
    pub faults: Vec<String>,
    /// Give up when the rollout has not come to rest after this many rounds.
    #[arg(long, default_value_t = 1_000_000, value_name = "N")]
    pub max_rounds: u64,
    /// Print the canisters' debug output on stderr.
    #[arg(long)]
    pub canister_logs: bool,
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Rehearse the upgrade to --to on this live canister's state instead of a synthetic
    /// fleet: a snapshot of it is taken, downloaded and deleted (nothing else changes on it),
    /// then loaded into the simulator and upgraded there. As its controller (--phrase-file,
    /// --pem-file), or through --manager as an admin.
    #[arg(long, value_name = "CANISTER_ID", conflicts_with_all = ["from", "from_snapshot"])]
    pub from_canister: Option<Principal>,
    /// Rehearse the upgrade to --to on a downloaded state (a `recovery backup` or
    /// `canisters backup` file).
    #[arg(long, value_name = "FILE", conflicts_with = "from")]
    pub from_snapshot: Option<PathBuf>,
    /// With --from-canister: take the state through this manager, as one of its admins.
    #[arg(long, value_name = "CANISTER_ID", requires = "from_canister")]
    pub manager: Option<Principal>,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Instruction limit of the rehearsed upgrade: the IC's 300B for an upgrade by default;
    /// give less to demand headroom.
    #[arg(long, default_value_t = 300_000_000_000, value_name = "N")]
    pub max_upgrade_instructions: u64,
    /// Serve `fleet dashboard`'s page for the rehearsal's manager on 127.0.0.1 while the
    /// rehearsal runs, and after it until Ctrl-C (the report is printed then).
    #[arg(long, conflicts_with_all = ["from_canister", "from_snapshot"])]
    pub dashboard: bool,
    /// Port of --dashboard; 0 picks a free one.
    #[arg(long, default_value_t = crate::dashboard::DEFAULT_PORT, value_name = "PORT", requires = "dashboard")]
    pub dashboard_port: u16,
    /// With --dashboard, every simulated round (one second of simulated time) takes at least
    /// this long, so that the page shows the rollout advancing.
    #[arg(long, default_value_t = 50, value_name = "MS", requires = "dashboard")]
    pub round_ms: u64,
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

/// Rehearses a release cycle, phase by phase; each phase's wall time is in the report.
pub fn run(args: &RehearseArgs, show_progress: bool) -> Result<RehearsalReport, CliError> {
    run_with(args, show_progress, None)
}

/// [`run`], with `dashboard` showing the rehearsal's manager from its installation on, and
/// serving between the rounds.
pub fn run_with(
    args: &RehearseArgs,
    show_progress: bool,
    dashboard: Option<Rc<Dashboard>>,
) -> Result<RehearsalReport, CliError> {
    let checked = check(args)?;
    let mut clock = Clock::start();
    let mut bars = Bars::new(show_progress);
    bars.step("loading the canisters");
    let modules = setup::load_modules(args, checked.switch)?;
    let load_wasm_secs = clock.lap();

    bars.step("installing the manager");
    let installed = setup::install_manager(args, &modules.manager_wasm)?;
    let ops = SimIc::new(Rc::clone(&installed.sim), installed.admin);
    let m = Manager::new(&ops, installed.manager);
    if let Some(d) = &dashboard {
        d.attach(Box::new(ops.clone()), installed.manager);
    }
    setup::publish_start(&m, &modules.from, &args.from_version, &mut bars)?;
    setup::add_subnets(&installed, &m)?;
    let setup_secs = clock.lap();
    bars.step("");
    drop(bars);

    let mut r = sim::Rehearsal::new(Rc::clone(&installed.sim), show_progress);
    if let Some(d) = dashboard {
        r.show(d, std::time::Duration::from_millis(args.round_ms));
    }
    let fleet = setup::provision(&mut r, &installed, args.users)?;
    let provision_secs = clock.lap();

    let notes = if args.from.is_none() { args.notes } else { 0 };
    let fleet = setup::write_data(&mut r, fleet, notes)?;
    let write_data_secs = clock.lap();

    let rollouts = rollout::roll_out(&mut r, &m, args, &checked, &fleet, &modules)?;
    let rollout_secs = clock.lap();

    let verified = verify::verify(&r.sim, args, &modules, &fleet, &checked.classes, &rollouts);
    let wall = WallTimes {
        load_wasm_secs,
        setup_secs,
        provision_secs,
        write_data_secs,
        rollout_secs,
        verify_secs: clock.lap(),
        total_secs: clock.total(),
    };
    Ok(report::build(
        args, &checked, &modules, &fleet, rollouts, verified, wall,
    ))
}

/// The fleet `fleet sim serve --fleet` serves: a simulator with a manager installed as a
/// rehearsal installs it, the bundled user canister published through the code of `release
/// publish` as the rehearsal's starting version (1.0.0) and made the default; `operators`
/// become controllers of the manager, which gives them every role. Returns the simulator and
/// the manager's id.
pub fn serving_fleet(operators: &[Principal]) -> Result<(Rc<ic_sim::IcSim>, Principal), CliError> {
    #[derive(clap::Parser)]
    struct Defaults {
        #[command(flatten)]
        args: RehearseArgs,
    }
    let args = <Defaults as clap::Parser>::try_parse_from(["serve"])
        .map_err(|e| CliError::Usage(e.to_string()))?
        .args;
    let modules = setup::load_modules(&args, false)?;
    let installed = setup::install_manager(&args, &modules.manager_wasm)?;
    let ops = SimIc::new(Rc::clone(&installed.sim), installed.admin);
    let m = Manager::new(&ops, installed.manager);
    setup::publish_start(&m, &modules.from, &args.from_version, &mut Bars::new(false))?;
    let mut controllers = vec![installed.admin];
    controllers.extend_from_slice(operators);
    installed
        .sim
        .set_controllers(installed.manager, Some(installed.admin), controllers)
        .map_err(|e| CliError::Io(format!("adding the operators: {e}")))?;
    Ok((installed.sim, installed.manager))
}

/// What the arguments ask for, checked before anything runs.
struct Checked {
    spec: FaultSpec,
    /// The fault of each user's canister, in user order.
    classes: Vec<FaultClass>,
    plan: RolloutPlanArg,
    /// Why the rehearsal chose the failure policy, when it did.
    failure_policy: Option<String>,
    /// Both releases are the bundled user canister.
    bundled: bool,
    /// Release faults are set through the bundled canister's fault switch.
    switch: bool,
}

/// Everything that can be refused is checked before anything runs.
fn check(args: &RehearseArgs) -> Result<Checked, CliError> {
    if args.users == 0 {
        return Err(CliError::Usage("--users must be at least 1".into()));
    }
    if !(1..=ic_sim::MAX_APPLICATION_SUBNETS as u32).contains(&args.subnets) {
        return Err(CliError::Usage(format!(
            "--subnets must be between 1 and {}",
            ic_sim::MAX_APPLICATION_SUBNETS
        )));
    }
    let spec = FaultSpec::parse(&args.faults)?;
    let classes = assign(args.users, &spec)?;
    let bundled = args.from.is_none() && args.to.is_none();
    if spec.trap > 0.0 && !bundled {
        return Err(CliError::Usage(
            "--faults trap needs the bundled user canister (its fault_switch builds make \
             post_upgrade trap); with --from/--to, use health"
                .into(),
        ));
    }
    if args.from_version == args.to_version {
        return Err(CliError::Usage(
            "--from-version and --to-version must differ".into(),
        ));
    }
    let mut plan = args
        .plan
        .to_plan(&args.to_version, Some(&args.from_version))?;
    // The default policy halts a stage above 5% failures, which release faults reach: the
    // rehearsal would stop before the other classes played out.
    let failure_policy = (spec.release() && plan.failure.is_none()).then(|| {
        plan.failure = Some(FailurePolicy {
            max_failed_percent: 100,
            max_consecutive_failures: 0,
            halt_scope: None,
        });
        "halts off (max-failed-percent 100, max-consecutive-failures 0): release faults are \
         injected and no failure policy was given"
            .to_string()
    });
    // Release faults on the bundled canister are set per canister through its fault switch,
    // which the next module reads: both releases are the `fault_switch` builds.
    let switch = spec.release() && bundled;
    Ok(Checked {
        spec,
        classes,
        plan,
        failure_policy,
        bundled,
        switch,
    })
}

/// Wall time per phase: each lap is the time since the previous one, in seconds to 1/100.
struct Clock {
    start: Instant,
    lap: Instant,
}

impl Clock {
    fn start() -> Self {
        let now = Instant::now();
        Clock {
            start: now,
            lap: now,
        }
    }

    fn lap(&mut self) -> f64 {
        let now = Instant::now();
        let secs = round_secs(now - self.lap);
        self.lap = now;
        secs
    }

    fn total(&self) -> f64 {
        round_secs(self.start.elapsed())
    }
}

fn round_secs(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 100.0).round() / 100.0
}
