//! The command tree, as clap parses it: every command, flag and help text in one place. The
//! handlers are in [`crate::commands`], one module per noun.

use std::path::PathBuf;

use candid::Principal;
use clap::{Args, Parser, Subcommand, ValueEnum};
use fleet_api::manager::{CanisterStatus, Role};

use crate::error::CliError;
use crate::identity::Identity;
use crate::phrase::{PhraseSource, RecoveryPhrase, PHRASE_ENV};
use crate::plan::{LimitArgs, PlanArgs};

#[derive(Parser, Debug)]
#[command(
    name = "fleet",
    version,
    about = "Manage and recover canister-per-user fleets on the Internet Computer"
)]
pub struct Cli {
    /// Print one JSON document on stdout instead of readable text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// End-user recovery through the recovery phrase, with or without the manager.
    #[command(subcommand)]
    Recovery(RecoveryCommand),
    /// Publish and inspect the user-canister releases a manager stores.
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// The manager's registry of user canisters.
    #[command(subcommand)]
    Canisters(CanistersCommand),
    /// Who may operate the manager, and in which roles.
    #[command(subcommand)]
    Operators(OperatorsCommand),
    /// Staged upgrades of the fleet, run by the manager.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// The manager canister itself.
    #[command(subcommand)]
    Manager(ManagerCommand),
    /// Who may have the manager create a canister, and the provisioning budget.
    #[command(subcommand)]
    Admission(AdmissionCommand),
    /// The subnets the fleet's canisters live on, their store canisters, and where new
    /// canisters go.
    #[command(subcommand)]
    Subnets(SubnetsCommand),
    /// The release policy (approval quorum, notice), its requests, and pending releases.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Serve a web page on 127.0.0.1 that shows the manager's rollout as it happens (stages,
    /// in flight, rate, failures by cause, events, cycles, the registry) and pauses, resumes,
    /// aborts or rolls it back, until Ctrl-C. Only this command talks to the manager, with
    /// the identity given here; the browser holds no key.
    Dashboard(DashboardArgs),
    /// Rehearse a release on an embedded IC simulator: install a manager, create a fleet of
    /// user canisters holding data, roll the new release out in stages, check every canister
    /// from outside, and report.
    #[cfg(feature = "sim")]
    Rehearse(Box<crate::rehearse::RehearseArgs>),
    /// The embedded IC simulator as a local network.
    #[cfg(feature = "sim")]
    #[command(subcommand)]
    Sim(SimCommand),
}

#[cfg(feature = "sim")]
#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Serve the IC's HTTP interface from the simulator on 127.0.0.1 until Ctrl-C, rounds
    /// running by themselves; prints one JSON line (url, root key, manager id) when ready.
    /// Other commands reach it with `--network <url>` (or `--network local` on port 4943).
    Serve(crate::serve::ServeArgs),
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Start a rollout of a published release to the fleet.
    Start {
        #[command(flatten)]
        run: Box<RolloutRun>,
        /// Start nothing: print what `rollout plan` prints.
        #[arg(long)]
        dry_run: bool,
    },
    /// What `rollout start` with the same options would do, and start nothing: the cohort per
    /// wave as the manager would select it now, the time the limits allow, and the cycles the
    /// rollout would burn (from the IC's cost table) against the manager's balance.
    Plan {
        #[command(flatten)]
        run: Box<RolloutRun>,
    },
    /// Progress of the current or last rollout.
    Status {
        #[command(flatten)]
        target: ManagerTarget,
        /// Refresh, with a progress bar per stage, until the rollout ends (or halts with
        /// nothing in flight).
        #[arg(long)]
        watch: bool,
        /// Seconds between two refreshes of --watch.
        #[arg(long, default_value_t = 5, value_name = "SECS", requires = "watch")]
        interval_secs: u64,
    },
    /// Start nothing new; pipelines in flight finish.
    Pause {
        #[command(flatten)]
        target: ManagerTarget,
    },
    /// Continue a paused or halted rollout.
    Resume {
        #[command(flatten)]
        target: ManagerTarget,
    },
    /// Drop the canisters not yet started.
    Abort {
        #[command(flatten)]
        target: ManagerTarget,
    },
    /// Undo the last rollout: roll the canisters it upgraded back to an earlier release
    /// (--to), or restore the snapshots taken before their upgrade (--restore-snapshots).
    Rollback {
        #[command(flatten)]
        target: ManagerTarget,
        /// The release to go back to.
        #[arg(
            long,
            value_name = "SEMVER",
            required_unless_present = "restore_snapshots"
        )]
        to: Option<String>,
        /// Stop each named canister, load the snapshot taken before its last upgrade, start
        /// it and health-check it.
        #[arg(long, conflicts_with = "to")]
        restore_snapshots: bool,
        /// A canister to restore (repeat, or separate with commas).
        #[arg(
            long = "canister",
            value_name = "CANISTER_ID",
            value_delimiter = ',',
            requires = "restore_snapshots"
        )]
        canisters: Vec<Principal>,
        /// Read the canisters to restore from a file, one id per line.
        #[arg(long, value_name = "FILE", requires = "restore_snapshots")]
        canisters_file: Option<PathBuf>,
        /// Limits of the rollback (without any: the last rollout's).
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ManagerCommand {
    /// Hold every new pipeline start before upgrading the manager itself; reports `ready`
    /// once nothing is in flight. `manager end-drain` ends the drain; the rollout's phase is
    /// never changed by either.
    Drain {
        #[command(flatten)]
        target: ManagerTarget,
        /// Poll until the manager is ready.
        #[arg(long)]
        wait: bool,
        /// Seconds between two polls of --wait.
        #[arg(long, default_value_t = 2, value_name = "SECS", requires = "wait")]
        interval_secs: u64,
    },
    /// End a drain after the manager's upgrade: pipelines start again in the rollout's own
    /// phase (a paused or halted rollout stays so).
    EndDrain {
        #[command(flatten)]
        target: ManagerTarget,
    },
}

/// The network a command talks to: the local replica unless told otherwise, as dfx does.
#[derive(Args, Debug, Clone)]
pub struct NetworkArgs {
    /// `local`, `ic` or the URL of a replica.
    #[arg(long, default_value = "local")]
    pub network: String,
    /// Mainnet: the same as `--network ic`.
    #[arg(long, conflicts_with = "network")]
    pub ic: bool,
}

impl NetworkArgs {
    /// The network's name or URL, as `Network::parse` takes it.
    pub fn name(&self) -> &str {
        if self.ic {
            "ic"
        } else {
            &self.network
        }
    }
}

/// A rollout as `rollout start` and `rollout plan` take it.
#[derive(Args, Debug)]
pub struct RolloutRun {
    #[command(flatten)]
    pub target: ManagerTarget,
    /// The release to upgrade to.
    #[arg(long, value_name = "SEMVER")]
    pub version: String,
    /// Only canisters on this release.
    #[arg(long, value_name = "SEMVER")]
    pub from: Option<String>,
    #[command(flatten)]
    pub plan: PlanArgs,
    /// What the cost estimate assumes (used by `plan` and `--dry-run`).
    #[command(flatten)]
    pub assumed: crate::estimate::Assumed,
}

#[derive(Args, Debug, Clone)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub target: ManagerTarget,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = crate::dashboard::DEFAULT_PORT)]
    pub port: u16,
}

/// A manager and who calls it.
#[derive(Args, Debug, Clone)]
pub struct ManagerTarget {
    #[command(flatten)]
    pub network: NetworkArgs,
    /// The fleet manager canister.
    #[arg(long, value_name = "CANISTER_ID")]
    pub manager: Principal,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Subcommand, Debug)]
pub enum ReleaseCommand {
    /// Upload a module as a new release (resumes an interrupted upload of the same file).
    Publish {
        #[command(flatten)]
        target: ManagerTarget,
        /// The module (.wasm or .wasm.gz).
        #[arg(value_name = "FILE")]
        wasm: PathBuf,
        /// Semantic version of the release.
        #[arg(long, value_name = "SEMVER")]
        version: String,
        /// Release notes.
        #[arg(long, default_value = "")]
        notes: String,
        /// Expected sha256 of the file, hex.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Check the module's interface against this release or file (.did, or a module with
        /// candid:service metadata) instead of the manager's default release.
        #[arg(long, value_name = "SEMVER|FILE")]
        against: Option<String>,
        /// Publish although the interface breaks the one checked against; the reason is kept
        /// with the release.
        #[arg(long, value_name = "REASON")]
        allow_breaking: Option<String>,
    },
    /// Check a module's Candid interface against a release or a file, uploading nothing:
    /// the new service must be a subtype of the old one.
    Check {
        #[command(flatten)]
        network: NetworkArgs,
        /// The fleet manager canister; needed unless --against names a file.
        #[arg(long, value_name = "CANISTER_ID")]
        manager: Option<Principal>,
        #[command(flatten)]
        identity: IdentityArgs,
        /// The new module (.wasm or .wasm.gz).
        #[arg(value_name = "FILE")]
        wasm: PathBuf,
        /// A release version or a file (.did, or a module with candid:service); without it,
        /// the manager's default release.
        #[arg(long, value_name = "SEMVER|FILE")]
        against: Option<String>,
    },
    /// Cancel an unfinished upload.
    Abort {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "SEMVER")]
        version: String,
    },
    /// Every finalized release.
    List {
        #[command(flatten)]
        target: ManagerTarget,
    },
    /// One release, or the progress of its unfinished upload.
    Show {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "SEMVER")]
        version: String,
    },
}

/// Registry status, as `canisters list --status` takes it.
#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum StatusArg {
    Provisioning,
    Active,
    Upgrading,
    Failed,
    RolledBack,
    Detached,
}

impl From<StatusArg> for CanisterStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Provisioning => CanisterStatus::Provisioning,
            StatusArg::Active => CanisterStatus::Active,
            StatusArg::Upgrading => CanisterStatus::Upgrading,
            StatusArg::Failed => CanisterStatus::Failed,
            StatusArg::RolledBack => CanisterStatus::RolledBack,
            StatusArg::Detached => CanisterStatus::Detached,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum CanistersCommand {
    /// User canisters, optionally only those of one release, status or owner.
    List {
        #[command(flatten)]
        target: ManagerTarget,
        /// Only canisters running this release version.
        #[arg(long, value_name = "SEMVER", conflicts_with_all = ["status", "owner"])]
        release: Option<String>,
        #[arg(long, value_enum, conflicts_with = "owner")]
        status: Option<StatusArg>,
        #[arg(long, value_name = "PRINCIPAL")]
        owner: Option<Principal>,
        /// Show at most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Download a managed canister's whole state into a file, as `recovery backup` does, with
    /// the manager making the management calls for an admin.
    Backup {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "CANISTER_ID")]
        canister: Principal,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Load a backup file into a managed canister, through the manager (admins only).
    Restore {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "CANISTER_ID")]
        canister: Principal,
        /// The backup file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Load a backup taken from another canister.
        #[arg(long)]
        force: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleArg {
    Admin,
    Releaser,
    Deployer,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Releaser => Role::Releaser,
            RoleArg::Deployer => Role::Deployer,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum SubnetsCommand {
    /// Each subnet with its store canister, canisters and chunk store, and the placement.
    List {
        #[command(flatten)]
        target: ManagerTarget,
    },
    /// Use another subnet: the manager creates a store canister there (through the cycles
    /// minting canister) and mirrors the releases it needs into it.
    Add {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "SUBNET_ID")]
        subnet: Principal,
        /// Cycles the store canister receives besides the creation fee.
        #[arg(long, default_value_t = 1_000_000_000_000, value_name = "CYCLES")]
        store_cycles: u128,
        /// The store canister's module (`store_canister`), set in the manager first when its
        /// own differs; without it, the module bundled in this build of fleet, if any.
        #[arg(long, value_name = "PATH")]
        store_wasm: Option<PathBuf>,
    },
    /// Bring every added subnet's store canister to the store module: the file given (or the
    /// one this build bundles) is set in the manager first when it differs; stores that run
    /// another module are upgraded (their recorded releases stay), stores without one get it.
    UpgradeStores {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(long, value_name = "PATH")]
        store_wasm: Option<PathBuf>,
    },
    /// Where new canisters go: `own` (the manager's subnet), `spread` (the subnet with the
    /// fewest), `fill:N` (each subnet up to N canisters, in order), or a subnet id.
    Placement {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "PLACEMENT", value_parser = parse_placement)]
        placement: fleet_api::manager::Placement,
    },
}

/// `own`, `spread`, `fill:N` or a subnet id.
pub fn parse_placement(text: &str) -> Result<fleet_api::manager::Placement, String> {
    use fleet_api::manager::Placement;
    match text {
        "own" => Ok(Placement::OwnSubnet),
        "spread" => Ok(Placement::Spread),
        _ => {
            if let Some(n) = text.strip_prefix("fill:") {
                let max_per_subnet = n
                    .parse()
                    .map_err(|_| format!("fill:N needs a number of canisters, not {n:?}"))?;
                return Ok(Placement::Fill { max_per_subnet });
            }
            Principal::from_text(text)
                .map(Placement::Subnet)
                .map_err(|_| format!("expected own, spread, fill:N or a subnet id, not {text:?}"))
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum OperatorsCommand {
    List {
        #[command(flatten)]
        target: ManagerTarget,
    },
    /// Grant roles (kept roles stay).
    Add {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "PRINCIPAL")]
        principal: Principal,
        /// A role to grant; repeat for several.
        #[arg(long = "role", value_enum, required = true)]
        roles: Vec<RoleArg>,
    },
    /// Revoke roles, or every role when none is named.
    Remove {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "PRINCIPAL")]
        principal: Principal,
        #[arg(long = "role", value_enum)]
        roles: Vec<RoleArg>,
    },
}

/// Who signs. The phrase is never a command-line argument: arguments are visible to other
/// local users and stay in shell history.
#[derive(Args, Debug, Clone, Default)]
pub struct IdentityArgs {
    /// Read the recovery phrase from this file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["phrase_stdin", "pem_file"])]
    pub phrase_file: Option<PathBuf>,
    /// Read the recovery phrase from standard input.
    #[arg(long, conflicts_with = "pem_file")]
    pub phrase_stdin: bool,
    /// Sign with this PEM key file (dfx format) instead of a recovery phrase.
    #[arg(long, value_name = "FILE")]
    pub pem_file: Option<PathBuf>,
}

impl IdentityArgs {
    /// The identity to sign with; the phrase comes from FLEET_RECOVERY_PHRASE when no option
    /// names a source.
    pub fn resolve(&self, allow_anonymous: bool) -> Result<Identity, CliError> {
        if let Some(pem) = &self.pem_file {
            return Ok(Identity::from_pem_file(pem)?);
        }
        match self.phrase_source() {
            Some(source) => Ok(Identity::from_phrase(&RecoveryPhrase::read(&source)?)?),
            None if allow_anonymous => Ok(Identity::anonymous()),
            None => Err(crate::phrase::PhraseError::Missing.into()),
        }
    }

    fn phrase_source(&self) -> Option<PhraseSource> {
        if let Some(path) = &self.phrase_file {
            Some(PhraseSource::File(path.clone()))
        } else if self.phrase_stdin {
            Some(PhraseSource::Stdin)
        } else if std::env::var_os(PHRASE_ENV).is_some() {
            Some(PhraseSource::Env)
        } else {
            None
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct Target {
    #[command(flatten)]
    pub network: NetworkArgs,
    /// The user canister.
    #[arg(long, value_name = "CANISTER_ID")]
    pub canister: Principal,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

#[derive(Subcommand, Debug)]
pub enum RecoveryCommand {
    /// Generate a new 24-word recovery phrase, show it once, and print its principal.
    New {
        /// Write the phrase to this new file (mode 0600) instead of showing it.
        #[arg(long, value_name = "FILE")]
        phrase_out: Option<PathBuf>,
    },
    /// Print the recovery principal of a phrase.
    Principal {
        #[command(flatten)]
        identity: IdentityArgs,
    },
    /// Controllers, module hash, version, cycles and snapshots of a user canister.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// Upgrade the canister as its controller, from a wasm file or from a release downloaded
    /// from the manager; the install itself never goes through the manager.
    Upgrade {
        #[command(flatten)]
        target: Target,
        /// The module (.wasm or .wasm.gz).
        #[arg(long, value_name = "FILE", required_unless_present = "manager")]
        wasm: Option<PathBuf>,
        /// Download release --version from this manager instead of reading --wasm.
        #[arg(
            long,
            value_name = "CANISTER_ID",
            conflicts_with = "wasm",
            requires = "version"
        )]
        manager: Option<Principal>,
        /// Expected sha256 of the module, hex.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Version the canister must report after the upgrade (with --manager: the release).
        #[arg(long, value_name = "SEMVER")]
        version: Option<String>,
    },
    /// Restore the latest snapshot (stop, load, start).
    Rollback {
        #[command(flatten)]
        target: Target,
    },
    /// Download the canister's whole state (module, heap, stable memory, chunk store) into a
    /// file: a snapshot is taken, read and deleted; nothing else on the canister changes.
    Backup {
        #[command(flatten)]
        target: Target,
        /// The file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Load a backup file into the canister (upload as a snapshot, stop, load, start).
    Restore {
        #[command(flatten)]
        target: Target,
        /// The backup file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Load a backup taken from another canister.
        #[arg(long)]
        force: bool,
    },
    /// Remove the manager from the controllers, keeping the recovery principal.
    Detach {
        #[command(flatten)]
        target: Target,
        /// The manager to remove; without it every controller but the recovery principal goes.
        #[arg(long, value_name = "PRINCIPAL")]
        manager: Option<Principal>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// How `admission set` names a mode.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdmissionModeArg {
    Open,
    Allowlist,
    Approver,
    Paid,
}

#[derive(Subcommand, Debug)]
pub enum AdmissionCommand {
    /// The admission mode, the budget and what the current window has spent.
    Show {
        #[command(flatten)]
        target: ManagerTarget,
    },
    /// Set the admission mode and the provisioning budget (admins).
    Set {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(long, value_enum)]
        mode: AdmissionModeArg,
        /// The app's canister answering `fleet_admit : (principal) -> (bool)` (mode approver).
        #[arg(long, value_name = "CANISTER_ID", required_if_eq("mode", "approver"))]
        approver: Option<Principal>,
        /// Cycles creations may spend per window.
        #[arg(long, value_name = "CYCLES")]
        budget_cycles: u128,
        /// Length of a budget window.
        #[arg(long, value_name = "SECS", default_value_t = 86_400)]
        window_secs: u64,
    },
    /// Put principals on the allowlist, or take them off (--remove).
    Allow {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "PRINCIPAL", required = true)]
        principals: Vec<Principal>,
        #[arg(long)]
        remove: bool,
    },
    /// Issue single-use invite codes: printed here, only their sha256 reaches the manager.
    Invite {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Revoke invite codes not used yet.
    Revoke {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "CODE", required = true)]
        codes: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// The release policy.
    Show {
        #[command(flatten)]
        target: ManagerTarget,
    },
    /// Set the release policy (admins; under a quorum, a request).
    Set {
        #[command(flatten)]
        target: ManagerTarget,
        /// Distinct role holders who must approve publishing, a first rollout to a release,
        /// operator changes and policy changes.
        #[arg(long, value_name = "N")]
        quorum: u32,
        /// Delay between publishing a release and the first rollout to it.
        #[arg(long, value_name = "SECS", default_value_t = 0)]
        notice_secs: u64,
    },
    /// Requests, newest first.
    Requests {
        #[command(flatten)]
        target: ManagerTarget,
    },
    /// Approve a request; the approval that completes the quorum runs it.
    Approve {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// Cancel a pending request (its proposer or an admin).
    Cancel {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// Published releases no rollout has used yet, and when a rollout to each may start.
    Pending {
        #[command(flatten)]
        target: ManagerTarget,
    },
    /// Emergency: end one release's notice sooner (admins; under a quorum, a request).
    ShortenNotice {
        #[command(flatten)]
        target: ManagerTarget,
        #[arg(long, value_name = "SEMVER")]
        version: String,
        #[arg(long, value_name = "SECS")]
        notice_secs: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network_of(args: &[&str]) -> Result<String, clap::Error> {
        let cli = Cli::try_parse_from(
            ["fleet", "canisters", "list", "--manager", "aaaaa-aa"]
                .iter()
                .chain(args),
        )?;
        match cli.command {
            Command::Canisters(CanistersCommand::List { target, .. }) => {
                Ok(target.network.name().to_string())
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_network_is_local_unless_told_and_ic_is_a_shorthand() {
        assert_eq!(network_of(&[]).unwrap(), "local");
        assert_eq!(network_of(&["--ic"]).unwrap(), "ic");
        assert_eq!(network_of(&["--network", "ic"]).unwrap(), "ic");
        let url = "http://127.0.0.1:4943";
        assert_eq!(network_of(&["--network", url]).unwrap(), url);
        assert!(network_of(&["--ic", "--network", "local"]).is_err());
    }
}
