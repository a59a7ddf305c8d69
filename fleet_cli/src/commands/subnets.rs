//! `fleet subnets`: the subnets the fleet uses, their store canisters, and the placement of
//! new canisters.

use fleet_api::manager::method::{
    AddSubnet, ListSubnets, SetPlacement, SetStoreModule, StoreModule, UpgradeStores,
};
use fleet_api::manager::{
    AddSubnetArg, Placement, StoreUpgrade, StoreUpgradeOutcome, SubnetInfo, SubnetsView,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;

use crate::cli::SubnetsCommand;
use crate::error::CliError;
use crate::manager::Manager;

use super::{connect_manager, output, Connector, Output};

/// One subnet as the CLI prints and returns it.
#[derive(Serialize)]
struct SubnetLine {
    subnet: String,
    store: String,
    own: bool,
    canisters: u64,
    chunks_used: u32,
    chunk_capacity: u32,
    releases: Vec<String>,
}

impl From<&SubnetInfo> for SubnetLine {
    fn from(i: &SubnetInfo) -> Self {
        SubnetLine {
            subnet: i.subnet.to_text(),
            store: i.store.to_text(),
            own: i.own,
            canisters: i.canisters,
            chunks_used: i.chunk_store.used,
            chunk_capacity: i.chunk_store.capacity,
            releases: i
                .chunk_store
                .releases
                .iter()
                .map(|r| r.release.version.clone())
                .collect(),
        }
    }
}

impl SubnetLine {
    fn text(&self) -> String {
        format!(
            "{}{}  store {}  {} canisters  chunks {}/{}  releases: {}",
            self.subnet,
            if self.own { " (the manager's)" } else { "" },
            self.store,
            self.canisters,
            self.chunks_used,
            self.chunk_capacity,
            if self.releases.is_empty() {
                "none".to_string()
            } else {
                self.releases.join(", ")
            }
        )
    }
}

pub fn placement_text(p: &Placement) -> String {
    match p {
        Placement::OwnSubnet => "own subnet only".into(),
        Placement::Spread => "spread (the subnet with the fewest canisters)".into(),
        Placement::Fill { max_per_subnet } => {
            format!("fill each subnet up to {max_per_subnet} canisters, in order")
        }
        Placement::Subnet(s) => format!("subnet {s}"),
    }
}

fn view_output(view: &SubnetsView) -> Result<Output, CliError> {
    let lines: Vec<SubnetLine> = view.subnets.iter().map(Into::into).collect();
    let mut text = format!("placement: {}", placement_text(&view.placement));
    for l in &lines {
        text.push('\n');
        text.push_str(&l.text());
    }
    let json = serde_json::json!({
        "placement": placement_text(&view.placement),
        "subnets": lines,
    });
    output(&json, text)
}

/// One line per store `upgrade_stores` went through.
fn upgrades_output(done: &[StoreUpgrade]) -> Result<Output, CliError> {
    let rows: Vec<serde_json::Value> = done
        .iter()
        .map(|u| {
            let (outcome, error) = match &u.outcome {
                StoreUpgradeOutcome::Current => ("current", None),
                StoreUpgradeOutcome::Upgraded => ("upgraded", None),
                StoreUpgradeOutcome::Installed => ("installed", None),
                StoreUpgradeOutcome::Failed(why) => ("failed", Some(why.clone())),
            };
            serde_json::json!({
                "subnet": u.subnet.to_text(),
                "store": u.store.to_text(),
                "outcome": outcome,
                "error": error,
            })
        })
        .collect();
    let mut text = if done.is_empty() {
        "no subnet added besides the manager's: no store to upgrade".to_string()
    } else {
        format!("{} store(s):", done.len())
    };
    for r in &rows {
        text.push_str(&format!(
            "\n{}  store {}  {}{}",
            r["subnet"].as_str().unwrap_or_default(),
            r["store"].as_str().unwrap_or_default(),
            r["outcome"].as_str().unwrap_or_default(),
            r["error"]
                .as_str()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    let failed = done
        .iter()
        .filter(|u| matches!(u.outcome, StoreUpgradeOutcome::Failed(_)))
        .count();
    if failed > 0 {
        return Err(CliError::Refused(format!(
            "{text}\n{failed} store(s) not upgraded"
        )));
    }
    output(&rows, text)
}

/// The store module to set in the manager: the file given, else the one this build bundles
/// (feature `sim`), else none.
fn local_store_module(path: Option<&Path>) -> Result<Option<Vec<u8>>, CliError> {
    if let Some(path) = path {
        return std::fs::read(path)
            .map(Some)
            .map_err(|e| CliError::Io(format!("reading {}: {e}", path.display())));
    }
    #[cfg(feature = "sim")]
    {
        crate::rehearse::bundled_store_module().map(|m| Some(m.to_vec()))
    }
    #[cfg(not(feature = "sim"))]
    Ok(None)
}

/// Sets the manager's store module before a subnet is added, when it has none or another one
/// than the module given (or bundled): `add_subnet` installs it in the new store canister.
fn ensure_store_module(m: &Manager, path: Option<&Path>) -> Result<(), CliError> {
    let current = m.call::<StoreModule>(())?.map(|h| h.into_vec());
    match (local_store_module(path)?, current) {
        (Some(module), current) => {
            if current.as_deref() != Some(Sha256::digest(&module).as_slice()) {
                m.call_ok::<SetStoreModule>((serde_bytes::ByteBuf::from(module),))?;
            }
            Ok(())
        }
        (None, Some(_)) => Ok(()),
        (None, None) => Err(CliError::Usage(
            "the manager has no store module and this build of fleet bundles none: give \
             --store-wasm PATH (build it with `cargo run -p wasm_build --bin canister-wasm -- \
             store_canister store_canister.wasm`)"
                .into(),
        )),
    }
}

pub(super) fn run(cmd: &SubnetsCommand, connector: &Connector) -> Result<Output, CliError> {
    match cmd {
        SubnetsCommand::List { target } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            view_output(&m.call::<ListSubnets>(())?)
        }
        SubnetsCommand::Add {
            target,
            subnet,
            store_cycles,
            store_wasm,
        } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            ensure_store_module(&m, store_wasm.as_deref())?;
            let info = m.call_ok::<AddSubnet>((AddSubnetArg {
                subnet: *subnet,
                store_cycles: *store_cycles,
            },))?;
            let line = SubnetLine::from(&info);
            let text = format!("added {}", line.text());
            output(&line, text)
        }
        SubnetsCommand::UpgradeStores { target, store_wasm } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            ensure_store_module(&m, store_wasm.as_deref())?;
            upgrades_output(&m.call_ok::<UpgradeStores>(())?)
        }
        SubnetsCommand::Placement { target, placement } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            view_output(&m.call_ok::<SetPlacement>((placement.clone(),))?)
        }
    }
}
