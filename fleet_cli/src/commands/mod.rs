//! The handlers of the command tree ([`crate::cli`]), one module per noun, and what they
//! share: connecting as the identity the flags name, and the [`Output`] every command
//! returns (printed as text, or as one JSON document with `--json`).

mod admission;
mod canisters;
mod dashboard;
mod manager;
mod operators;
mod policy;
mod recovery;
#[cfg(feature = "sim")]
mod rehearse;
mod release;
mod rollout;
#[cfg(feature = "sim")]
mod sim;
mod subnets;

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::backend::agent::{AgentIc, Network};
use crate::backend::Ic;
use crate::cli::{Cli, Command, IdentityArgs, ManagerTarget, Target};
use crate::error::CliError;
use crate::identity::Identity;
use crate::progress::Bars;

/// The outcome of a command: JSON value and readable text.
#[derive(Debug)]
pub struct Output {
    pub json: serde_json::Value,
    pub text: String,
}

pub(crate) fn output(value: &impl Serialize, text: String) -> Result<Output, CliError> {
    let json = serde_json::to_value(value).map_err(|e| CliError::Io(e.to_string()))?;
    Ok(Output { json, text })
}

/// One line per item, or `none` when there are none.
pub(crate) fn lines<T>(items: &[T], none: &str, line: impl Fn(&T) -> String) -> String {
    if items.is_empty() {
        none.to_string()
    } else {
        items.iter().map(line).collect::<Vec<_>>().join("\n")
    }
}

/// Opens a connection as an identity; the binary's reaches the network through ic-agent, the
/// tests' the simulator.
pub type Connector<'a> = dyn Fn(&Network, &Identity) -> Result<Box<dyn Ic>, CliError> + 'a;

pub fn agent_connector(network: &Network, identity: &Identity) -> Result<Box<dyn Ic>, CliError> {
    AgentIc::connect(network, identity)
        .map(|ic| Box::new(ic) as Box<dyn Ic>)
        .map_err(|source| CliError::Call {
            step: format!("connecting to {}", network.url()),
            source,
        })
}

/// Connects to a user canister's network as the identity the flags name.
pub(crate) fn connect(target: &Target, connector: &Connector) -> Result<Box<dyn Ic>, CliError> {
    connect_as(target.network.name(), &target.identity, false, connector)
}

/// Connects to a manager's network; read-only commands may go unsigned (`allow_anonymous`).
pub(crate) fn connect_manager(
    target: &ManagerTarget,
    connector: &Connector,
    allow_anonymous: bool,
) -> Result<Box<dyn Ic>, CliError> {
    connect_as(
        target.network.name(),
        &target.identity,
        allow_anonymous,
        connector,
    )
}

pub(crate) fn connect_as(
    network: &str,
    identity: &IdentityArgs,
    allow_anonymous: bool,
    connector: &Connector,
) -> Result<Box<dyn Ic>, CliError> {
    let network = Network::parse(network).map_err(CliError::Usage)?;
    let identity = identity.resolve(allow_anonymous)?;
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
        Command::Release(cmd) => release::run(cmd, connector, &mut bars),
        Command::Canisters(cmd) => canisters::run(cmd, connector),
        Command::Operators(cmd) => operators::run(cmd, connector),
        Command::Subnets(cmd) => subnets::run(cmd, connector),
        Command::Rollout(cmd) => rollout::run(cmd, connector, !cli.json),
        Command::Manager(cmd) => manager::run(cmd, connector),
        Command::Admission(cmd) => admission::run(cmd, connector),
        Command::Policy(cmd) => policy::run(cmd, connector),
        Command::Dashboard(args) => {
            drop(bars);
            dashboard::run(args, connector)
        }
        #[cfg(feature = "sim")]
        Command::Rehearse(args) => {
            drop(bars);
            if args.from_canister.is_some() || args.from_snapshot.is_some() {
                rehearse::run_live(args, connector)
            } else {
                rehearse::run(args, !cli.json)
            }
        }
        #[cfg(feature = "sim")]
        Command::Sim(crate::cli::SimCommand::Serve(args)) => {
            drop(bars);
            sim::serve(args)
        }
        Command::Recovery(cmd) => recovery::run(cmd, connector, confirm, &mut bars),
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
