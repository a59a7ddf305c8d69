//! The command tree (clap derive), identity and network resolution, and output.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use candid::Principal;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::backend::agent::{AgentIc, Network};
use crate::backend::Ic;
use crate::error::CliError;
use crate::identity::Identity;
use crate::phrase::{PhraseSource, RecoveryPhrase, PHRASE_ENV};
use crate::recovery::{self, Progress};
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
    /// Upgrade the canister from a wasm file as its controller, without the manager.
    Upgrade {
        #[command(flatten)]
        target: Target,
        /// The module (.wasm or .wasm.gz).
        #[arg(long, value_name = "FILE")]
        wasm: PathBuf,
        /// Expected sha256 of the file, hex.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Version the canister must report after the upgrade.
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

/// Draws progress on stderr when it is a terminal and output is not JSON.
pub struct Bars {
    spinner: Option<indicatif::ProgressBar>,
    bar: Option<indicatif::ProgressBar>,
    enabled: bool,
}

impl Bars {
    pub fn new(enabled: bool) -> Self {
        Self {
            spinner: None,
            bar: None,
            enabled: enabled && std::io::stderr().is_terminal(),
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Progress for Bars {
    fn step(&mut self, message: &str) {
        if !self.enabled {
            return;
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let s = self.spinner.get_or_insert_with(|| {
            let s = indicatif::ProgressBar::new_spinner();
            s.enable_steady_tick(std::time::Duration::from_millis(120));
            s
        });
        s.set_message(message.to_string());
    }
    fn chunk_uploaded(&mut self, done: usize, total: usize) {
        if !self.enabled {
            return;
        }
        let b = self.bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("uploading {bar:30} {pos}/{len} chunks")
                    .expect("valid template"),
            );
            b
        });
        b.set_position(done as u64);
    }
}

/// The outcome of a command: JSON value and readable text.
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
                sha256,
                version,
            } => {
                // Check the file before touching the network: bad input changes nothing.
                let module = WasmModule::read(wasm, sha256.as_deref())?;
                let ic = connect(target, connector)?;
                let r = recovery::upgrade(
                    ic.as_ref(),
                    target.canister,
                    &module,
                    version.as_deref(),
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
