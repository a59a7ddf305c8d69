//! `fleet sim serve`: the embedded simulator served as a local network through
//! [`ic_sim_http`], optionally with a fleet manager installed, so that `fleet` (or dfx, or any
//! agent) works against it over HTTP as against a replica.

use std::rc::Rc;

use candid::Principal;
use clap::Args;
use ic_sim::IcSim;
use ic_sim_http::{ServeConfig, ServerHandle};
use serde::Serialize;

use crate::error::CliError;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Port on 127.0.0.1; 0 picks a free one. The default is dfx's, which `--network local`
    /// reaches.
    #[arg(long, default_value_t = 4943)]
    pub port: u16,
    /// Install a fleet manager, with the bundled user canister published as 1.0.0 and made
    /// the default release.
    #[arg(long)]
    pub fleet: bool,
    /// A principal made controller of the manager, and so holder of every role (e.g. `dfx
    /// identity get-principal`). Repeatable.
    #[arg(long = "operator", value_name = "PRINCIPAL", requires = "fleet")]
    pub operators: Vec<Principal>,
}

/// What `fleet sim serve` prints, as one JSON line, once it serves.
#[derive(Serialize, Debug, Clone)]
pub struct Ready {
    /// `http://127.0.0.1:<port>`, for `--network`.
    pub url: String,
    /// The DER-encoded root key, hex: certificates verify under it.
    pub root_key: String,
    /// The manager's canister id, with `--fleet`.
    pub manager: Option<String>,
}

/// Starts serving (the fleet is set up first with `--fleet`); the server stops when the
/// handle is stopped or dropped.
pub fn start(args: &ServeArgs) -> Result<(ServerHandle, Ready), CliError> {
    let config = ServeConfig {
        port: args.port,
        ..ServeConfig::default()
    };
    let fleet = args.fleet;
    let operators = args.operators.clone();
    let (handle, manager) = ic_sim_http::start(config, move || {
        if fleet {
            let (sim, manager) =
                crate::rehearse::serving_fleet(&operators).map_err(|e| e.to_string())?;
            Ok((sim, Some(manager)))
        } else {
            Ok((Rc::new(IcSim::new()), None))
        }
    })
    .map_err(|e| CliError::Io(e.to_string()))?;
    let ready = Ready {
        url: handle.url().to_string(),
        root_key: hex::encode(handle.root_key()),
        manager: manager.map(|m| m.to_text()),
    };
    Ok((handle, ready))
}
