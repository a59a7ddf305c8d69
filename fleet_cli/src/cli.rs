//! The command tree (clap derive), identity and network resolution, and output.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use candid::Principal;
use clap::{Args, Parser, Subcommand, ValueEnum};
use fleet_api::manager::{CanisterFilter, CanisterStatus, Role};
use fleet_api::rollout::RollbackArg;
use serde::Serialize;

use crate::backend::agent::{AgentIc, Network};
use crate::backend::Ic;
use crate::error::CliError;
use crate::identity::Identity;
use crate::manager::{self as mgr, Manager};
use crate::phrase::{PhraseSource, RecoveryPhrase, PHRASE_ENV};
use crate::plan::{read_principals, LimitArgs, PlanArgs};
use crate::progress::watch::{at_rest, WaveBars};
use crate::progress::Bars;
use crate::recovery;
use crate::wasm::WasmModule;

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
    /// Rehearse a release on an embedded IC simulator: install a manager, create a fleet of
    /// user canisters holding data, roll the new release out in stages, check every canister
    /// from outside, and report.
    #[cfg(feature = "sim")]
    Rehearse(Box<crate::rehearse::RehearseArgs>),
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Start a rollout of a published release to the fleet.
    Start {
        #[command(flatten)]
        target: ManagerTarget,
        /// The release to upgrade to.
        #[arg(long, value_name = "SEMVER")]
        version: String,
        /// Only canisters on this release.
        #[arg(long, value_name = "SEMVER")]
        from: Option<String>,
        #[command(flatten)]
        plan: Box<PlanArgs>,
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

/// A manager and who calls it.
#[derive(Args, Debug, Clone)]
pub struct ManagerTarget {
    /// `ic`, `local` or the URL of a replica.
    #[arg(long, default_value = "ic")]
    pub network: String,
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
    /// `ic`, `local` or the URL of a replica.
    #[arg(long, default_value = "ic")]
    pub network: String,
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

/// The outcome of a command: JSON value and readable text.
#[derive(Debug)]
pub struct Output {
    pub json: serde_json::Value,
    pub text: String,
}

fn output(value: &impl Serialize, text: String) -> Result<Output, CliError> {
    let json = serde_json::to_value(value).map_err(|e| CliError::Io(e.to_string()))?;
    Ok(Output { json, text })
}

/// Connects to the network of `target`; `make_ic` lets tests substitute the simulator.
pub type Connector<'a> = dyn Fn(&Network, &Identity) -> Result<Box<dyn Ic>, CliError> + 'a;

pub fn agent_connector(network: &Network, identity: &Identity) -> Result<Box<dyn Ic>, CliError> {
    AgentIc::connect(network, identity)
        .map(|ic| Box::new(ic) as Box<dyn Ic>)
        .map_err(|source| CliError::Call {
            step: format!("connecting to {}", network.url()),
            source,
        })
}

fn connect(target: &Target, connector: &Connector) -> Result<Box<dyn Ic>, CliError> {
    let network = Network::parse(&target.network).map_err(CliError::Usage)?;
    let identity = target.identity.resolve(false)?;
    connector(&network, &identity)
}

/// Runs a command. `confirm` asks the user a yes/no question (detach).
pub fn run(
    cli: &Cli,
    connector: &Connector,
    confirm: &mut dyn FnMut(&str) -> Result<bool, CliError>,
) -> Result<Output, CliError> {
    let mut bars = Bars::new(!cli.json);
    match &cli.command {
        Command::Release(cmd) => run_release(cmd, connector, &mut bars),
        Command::Canisters(cmd) => run_canisters(cmd, connector),
        Command::Operators(cmd) => run_operators(cmd, connector),
        Command::Rollout(cmd) => run_rollout(cmd, connector, !cli.json),
        Command::Manager(cmd) => run_manager(cmd, connector),
        #[cfg(feature = "sim")]
        Command::Rehearse(args) => {
            drop(bars);
            let report = crate::rehearse::run(args, !cli.json)?;
            let text = crate::rehearse::report_text(&report);
            if report.verified.failed_checks > 0 {
                return Err(CliError::Refused(format!(
                    "{} checks of the rehearsal failed\n{text}",
                    report.verified.failed_checks
                )));
            }
            output(&report, text)
        }
        Command::Recovery(cmd) => match cmd {
            RecoveryCommand::New { phrase_out } => {
                let phrase = RecoveryPhrase::generate()?;
                let principal = phrase.principal()?;
                match phrase_out {
                    Some(path) => {
                        write_secret_file(path, phrase.reveal().as_bytes())?;
                        let text = format!(
                            "Recovery phrase written to {}\nRecovery principal: {principal}",
                            path.display()
                        );
                        output(
                            &serde_json::json!({ "principal": principal, "phrase_file": path }),
                            text,
                        )
                    }
                    None => {
                        let words = phrase.reveal();
                        let text = format!(
                            "Write these {} words down and keep them offline. They are shown only this once.\n\n{}\n\nRecovery principal: {principal}",
                            phrase.word_count(),
                            words.as_str()
                        );
                        output(
                            &serde_json::json!({ "principal": principal, "phrase": words.as_str() }),
                            text,
                        )
                    }
                }
            }
            RecoveryCommand::Principal { identity } => {
                let id = identity.resolve(false)?;
                output(
                    &serde_json::json!({ "principal": id.principal(), "key": id.kind() }),
                    id.principal().to_text(),
                )
            }
            RecoveryCommand::Status { target } => {
                let ic = connect(target, connector)?;
                let r = recovery::status(ic.as_ref(), target.canister)?;
                let snaps: Vec<String> = r
                    .snapshots
                    .iter()
                    .map(|s| {
                        format!(
                            "  {} taken at {} ns, {} bytes",
                            s.id, s.taken_at_timestamp_nanos, s.total_size
                        )
                    })
                    .collect();
                let text = format!(
                    "canister:    {}\nstatus:      {:?}\ncontrollers: {}\nmodule hash: {}\nversion:     {}\ncycles:      {}\nsnapshots:   {}\n{}",
                    r.canister,
                    r.status,
                    r.controllers.iter().map(|p| p.to_text()).collect::<Vec<_>>().join(", "),
                    r.module_hash.as_deref().unwrap_or("(empty)"),
                    match &r.version { Ok(v) => v.clone(), Err(e) => format!("unknown ({e})") },
                    r.cycles,
                    r.snapshots.len(),
                    snaps.join("\n")
                );
                output(&r, text.trim_end().to_string())
            }
            RecoveryCommand::Upgrade {
                target,
                wasm,
                manager,
                sha256,
                version,
            } => {
                // Check the input before touching the network: bad input changes nothing.
                let (module, ic, expected_version) = match (wasm, manager) {
                    (Some(path), _) => {
                        let module = WasmModule::read(path, sha256.as_deref())?;
                        (module, connect(target, connector)?, version.clone())
                    }
                    (None, Some(manager)) => {
                        let expected = sha256
                            .as_deref()
                            .map(crate::wasm::parse_sha256)
                            .transpose()?;
                        let release = version
                            .as_deref()
                            .ok_or_else(|| CliError::Usage("--manager needs --version".into()))?;
                        let ic = connect(target, connector)?;
                        let (meta, module) = mgr::download_release(
                            &Manager::new(ic.as_ref(), *manager),
                            release,
                            expected,
                            &mut bars,
                        )?;
                        (module, ic, Some(meta.version))
                    }
                    (None, None) => {
                        return Err(CliError::Usage("give --wasm FILE or --manager".into()))
                    }
                };
                let r = recovery::upgrade(
                    ic.as_ref(),
                    target.canister,
                    &module,
                    expected_version.as_deref(),
                    &mut bars,
                )?;
                let text = match r.outcome {
                    recovery::UpgradeOutcome::AlreadyInstalled => {
                        format!("{} already runs module {}", r.canister, r.module_hash)
                    }
                    recovery::UpgradeOutcome::Upgraded => format!(
                        "upgraded {} to module {} (version {}); snapshot {} kept for rollback",
                        r.canister,
                        r.module_hash,
                        r.version.as_deref().unwrap_or("?"),
                        r.snapshot.as_deref().unwrap_or("-")
                    ),
                };
                output(&r, text)
            }
            RecoveryCommand::Rollback { target } => {
                let ic = connect(target, connector)?;
                let r = recovery::rollback(ic.as_ref(), target.canister, &mut bars)?;
                let text = format!(
                    "restored {} from snapshot {}: module {}, version {}",
                    r.canister,
                    r.snapshot.id,
                    r.module_hash.as_deref().unwrap_or("(empty)"),
                    r.version.as_deref().unwrap_or("?")
                );
                output(&r, text)
            }
            RecoveryCommand::Detach {
                target,
                manager,
                yes,
            } => {
                let ic = connect(target, connector)?;
                let plan = recovery::plan_detach(ic.as_ref(), target.canister, *manager)?;
                if !yes {
                    let question = format!(
                        "Controllers of {} will become [{}]; the manager will no longer upgrade or repair it. Continue?",
                        plan.canister,
                        plan.controllers_after.iter().map(|p| p.to_text()).collect::<Vec<_>>().join(", ")
                    );
                    if !confirm(&question)? {
                        return Err(CliError::Refused("not confirmed; nothing changed".into()));
                    }
                }
                let now = recovery::apply_detach(ic.as_ref(), &plan)?;
                let text = format!(
                    "controllers of {} are now: {}",
                    plan.canister,
                    now.iter()
                        .map(|p| p.to_text())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                output(
                    &serde_json::json!({ "canister": plan.canister, "controllers_before": plan.controllers_before, "controllers": now }),
                    text,
                )
            }
        },
    }
}

fn connect_manager(
    target: &ManagerTarget,
    connector: &Connector,
    allow_anonymous: bool,
) -> Result<Box<dyn Ic>, CliError> {
    let network = Network::parse(&target.network).map_err(CliError::Usage)?;
    let identity = target.identity.resolve(allow_anonymous)?;
    connector(&network, &identity)
}

fn release_line(r: &mgr::ReleaseView) -> String {
    format!(
        "{:<16} {}  {:>9} bytes{}  {} chunks  {}",
        r.version,
        r.sha256,
        r.size,
        if r.gzipped { " (gzip)" } else { "" },
        r.chunk_count,
        r.notes.lines().next().unwrap_or("")
    )
}

fn run_release(
    cmd: &ReleaseCommand,
    connector: &Connector,
    bars: &mut Bars,
) -> Result<Output, CliError> {
    match cmd {
        ReleaseCommand::Publish {
            target,
            wasm,
            version,
            notes,
            sha256,
        } => {
            let module = WasmModule::read(wasm, sha256.as_deref())?;
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let r = mgr::publish(&m, &module, version, notes, bars)?;
            let mut text = match r.outcome {
                mgr::PublishOutcome::AlreadyPublished => format!(
                    "release {} is already published with this module ({})",
                    r.release.version, r.release.sha256
                ),
                mgr::PublishOutcome::Published => format!(
                    "published release {} ({}, {} chunks{})",
                    r.release.version,
                    r.release.sha256,
                    r.release.chunk_count,
                    if r.resumed {
                        format!(", resumed: sent the {} missing", r.chunks_sent)
                    } else {
                        String::new()
                    }
                ),
            };
            if let Some(e) = &r.mirror_error {
                text.push_str(&format!(
                    "\nnot yet in the manager's chunk store ({e}); it is mirrored when needed"
                ));
            }
            output(&r, text)
        }
        ReleaseCommand::Abort { target, version } => {
            let ic = connect_manager(target, connector, false)?;
            mgr::abort_upload(&Manager::new(ic.as_ref(), target.manager), version)?;
            output(
                &serde_json::json!({ "aborted": version }),
                format!("cancelled the upload of {version}"),
            )
        }
        ReleaseCommand::List { target } => {
            let ic = connect_manager(target, connector, true)?;
            let releases: Vec<mgr::ReleaseView> =
                mgr::list_releases(&Manager::new(ic.as_ref(), target.manager))?
                    .iter()
                    .map(Into::into)
                    .collect();
            let text = if releases.is_empty() {
                "no releases".to_string()
            } else {
                releases
                    .iter()
                    .map(release_line)
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            output(&releases, text)
        }
        ReleaseCommand::Show { target, version } => {
            let ic = connect_manager(target, connector, true)?;
            let state = mgr::show_release(&Manager::new(ic.as_ref(), target.manager), version)?;
            let text = match &state {
                mgr::ReleaseState::Finalized(r) => format!(
                    "version:      {}\nsha256:       {}\nsize:         {} bytes ({} uncompressed){}\nchunks:       {}\nuploader:     {}\nuploaded at:  {} ns\nnotes:        {}",
                    r.version, r.sha256, r.size, r.uncompressed_size,
                    if r.gzipped { ", gzip" } else { "" },
                    r.chunk_count, r.uploader, r.uploaded_at_ns, r.notes
                ),
                mgr::ReleaseState::Uploading(u) => format!(
                    "version {} is being uploaded by {}: {} of {} chunks missing (sha256 {})",
                    u.version, u.uploader, u.missing.len(), u.chunk_count, u.sha256
                ),
            };
            output(&state, text)
        }
    }
}

fn run_canisters(cmd: &CanistersCommand, connector: &Connector) -> Result<Output, CliError> {
    match cmd {
        CanistersCommand::List {
            target,
            release,
            status,
            owner,
            limit,
        } => {
            let filter = match (release, status, owner) {
                (Some(v), _, _) => CanisterFilter::Release(v.clone()),
                (_, Some(s), _) => CanisterFilter::Status((*s).into()),
                (_, _, Some(p)) => CanisterFilter::Owner(*p),
                _ => CanisterFilter::All,
            };
            let ic = connect_manager(target, connector, false)?;
            let records: Vec<mgr::CanisterView> =
                mgr::list_canisters(&Manager::new(ic.as_ref(), target.manager), filter, *limit)?
                    .iter()
                    .map(Into::into)
                    .collect();
            let text = if records.is_empty() {
                "no user canisters match".to_string()
            } else {
                records
                    .iter()
                    .map(|c| {
                        format!(
                            "{:<27}  {:<12} {:<12} owner {}{}",
                            c.canister_id.to_text(),
                            c.status,
                            c.release.as_deref().unwrap_or("-"),
                            c.owner,
                            c.last_error
                                .as_deref()
                                .map(|e| format!("  ({e})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            output(&records, text)
        }
    }
}

fn started_text(what: &str, r: &fleet_api::rollout::RolloutStarted) -> String {
    format!(
        "{what} rollout {}: {} canisters in {} stages ({})",
        r.id,
        r.canisters,
        r.waves.len(),
        r.waves
            .iter()
            .map(|w| w.size.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn run_rollout(
    cmd: &RolloutCommand,
    connector: &Connector,
    show_progress: bool,
) -> Result<Output, CliError> {
    let target = match cmd {
        RolloutCommand::Status { target, .. }
        | RolloutCommand::Start { target, .. }
        | RolloutCommand::Pause { target }
        | RolloutCommand::Resume { target }
        | RolloutCommand::Abort { target }
        | RolloutCommand::Rollback { target, .. } => target,
    };
    // Arguments are checked before connecting: a bad plan changes nothing.
    let start_plan = match cmd {
        RolloutCommand::Start {
            version,
            from,
            plan,
            ..
        } => Some(plan.to_plan(version, from.as_deref())?),
        _ => None,
    };
    let rollback_arg = match cmd {
        RolloutCommand::Rollback {
            to,
            restore_snapshots,
            canisters,
            canisters_file,
            limits,
            ..
        } => {
            limits.validate()?;
            Some(if *restore_snapshots {
                let mut all = canisters.clone();
                if let Some(path) = canisters_file {
                    all.extend(read_principals(path)?);
                }
                if all.is_empty() {
                    return Err(CliError::Usage(
                        "--restore-snapshots needs the canisters to restore (--canister or --canisters-file)".into(),
                    ));
                }
                RollbackArg::RestoreSnapshots {
                    canisters: all,
                    limits: limits.to_limits(),
                }
            } else {
                RollbackArg::ToRelease {
                    to_version: to.clone().unwrap_or_default(),
                    limits: limits.to_limits(),
                }
            })
        }
        _ => None,
    };
    let ic = connect_manager(target, connector, false)?;
    let m = Manager::new(ic.as_ref(), target.manager);
    match cmd {
        RolloutCommand::Start { .. } => {
            let plan = start_plan.expect("built above");
            let r = mgr::start_rollout(&m, &plan)?;
            let text = started_text("started", &r);
            output(&r, text)
        }
        RolloutCommand::Status {
            watch,
            interval_secs,
            ..
        } => {
            let no_rollout =
                || CliError::NotFound(format!("manager {} has run no rollout", target.manager));
            let mut s = mgr::rollout_status(&m)?.ok_or_else(no_rollout)?;
            if *watch {
                let mut bars = WaveBars::new(show_progress);
                loop {
                    bars.update(&s, "");
                    if at_rest(&s) {
                        break;
                    }
                    ic.idle(std::time::Duration::from_secs((*interval_secs).max(1)));
                    s = mgr::rollout_status(&m)?.ok_or_else(no_rollout)?;
                }
                bars.finish();
            }
            Ok(Output {
                json: mgr::rollout_json(&s),
                text: mgr::rollout_text(&s),
            })
        }
        RolloutCommand::Pause { .. }
        | RolloutCommand::Resume { .. }
        | RolloutCommand::Abort { .. } => {
            let method = match cmd {
                RolloutCommand::Pause { .. } => "pause_rollout",
                RolloutCommand::Resume { .. } => "resume_rollout",
                _ => "abort_rollout",
            };
            let s = mgr::control_rollout(&m, method)?;
            Ok(Output {
                json: mgr::rollout_json(&s),
                text: mgr::rollout_text(&s),
            })
        }
        RolloutCommand::Rollback { .. } => {
            let arg = rollback_arg.expect("built above");
            let r = mgr::rollback_rollout(&m, &arg)?;
            let what = match &arg {
                RollbackArg::ToRelease { to_version, .. } => {
                    format!("rolling back to {to_version}:")
                }
                RollbackArg::RestoreSnapshots { .. } => "restoring snapshots:".to_string(),
            };
            let text = started_text(&what, &r);
            output(&r, text)
        }
    }
}

fn run_manager(cmd: &ManagerCommand, connector: &Connector) -> Result<Output, CliError> {
    match cmd {
        ManagerCommand::Drain {
            target,
            wait,
            interval_secs,
        } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let mut d = mgr::drain(&m)?;
            while *wait && !d.ready {
                ic.idle(std::time::Duration::from_secs((*interval_secs).max(1)));
                d = mgr::drain(&m)?;
            }
            let text = if d.ready {
                format!(
                    "manager {} is drained: nothing in flight; stop, upgrade and start it, then `fleet manager end-drain`",
                    target.manager
                )
            } else {
                format!(
                    "manager {} is draining: {} calls and {} pipelines still in flight",
                    target.manager, d.calls_in_flight, d.pipelines_in_flight
                )
            };
            output(&d, text)
        }
        ManagerCommand::EndDrain { target } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let d = mgr::end_drain(&m)?;
            let text = format!(
                "manager {}: drain ended; the rollout goes on in its own phase",
                target.manager
            );
            output(&d, text)
        }
    }
}

fn roles_text(roles: &[&str]) -> String {
    if roles.is_empty() {
        "(none)".into()
    } else {
        roles.join(", ")
    }
}

fn run_operators(cmd: &OperatorsCommand, connector: &Connector) -> Result<Output, CliError> {
    match cmd {
        OperatorsCommand::List { target } => {
            let ic = connect_manager(target, connector, false)?;
            let ops: Vec<mgr::OperatorView> =
                mgr::list_operators(&Manager::new(ic.as_ref(), target.manager))?
                    .iter()
                    .map(Into::into)
                    .collect();
            let text = if ops.is_empty() {
                "no operators besides the manager's controllers".to_string()
            } else {
                ops.iter()
                    .map(|o| format!("{}  {}", o.principal, roles_text(&o.roles)))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            output(&ops, text)
        }
        OperatorsCommand::Add {
            target,
            principal,
            roles,
        } => {
            let ic = connect_manager(target, connector, false)?;
            let roles: Vec<Role> = roles.iter().map(|r| (*r).into()).collect();
            let op = mgr::add_operator(
                &Manager::new(ic.as_ref(), target.manager),
                *principal,
                &roles,
            )?;
            let view = mgr::OperatorView::from(&op);
            let text = format!("{} now has: {}", view.principal, roles_text(&view.roles));
            output(&view, text)
        }
        OperatorsCommand::Remove {
            target,
            principal,
            roles,
        } => {
            let ic = connect_manager(target, connector, false)?;
            let roles: Vec<Role> = roles.iter().map(|r| (*r).into()).collect();
            let kept = mgr::remove_operator(
                &Manager::new(ic.as_ref(), target.manager),
                *principal,
                &roles,
            )?;
            let view = mgr::OperatorView {
                principal: *principal,
                roles: kept.into_iter().map(mgr::role_name).collect(),
            };
            let text = if view.roles.is_empty() {
                format!("{} is no longer an operator", view.principal)
            } else {
                format!("{} now has: {}", view.principal, roles_text(&view.roles))
            };
            output(&view, text)
        }
    }
}

/// Asks on the terminal; refuses when there is none (pass --yes in scripts).
pub fn terminal_confirm(question: &str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Refused(
            "confirmation needed but standard input is not a terminal: pass --yes".into(),
        ));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| CliError::Io(e.to_string()))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES"))
}

fn write_secret_file(path: &std::path::Path, bytes: &[u8]) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| CliError::Io(format!("creating {}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display())))
}
