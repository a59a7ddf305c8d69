//! `fleet subnets`: the subnets the fleet uses, their store canisters, and the placement of
//! new canisters.

use fleet_api::manager::method::{AddSubnet, ListSubnets, SetPlacement};
use fleet_api::manager::{AddSubnetArg, Placement, SubnetInfo, SubnetsView};
use serde::Serialize;

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
        } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let info = m.call_ok::<AddSubnet>((AddSubnetArg {
                subnet: *subnet,
                store_cycles: *store_cycles,
            },))?;
            let line = SubnetLine::from(&info);
            let text = format!("added {}", line.text());
            output(&line, text)
        }
        SubnetsCommand::Placement { target, placement } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            view_output(&m.call_ok::<SetPlacement>((placement.clone(),))?)
        }
    }
}
