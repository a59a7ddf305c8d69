//! `fleet canisters`: the manager's registry of user canisters.

use fleet_api::manager::CanisterFilter;

use crate::backend::managed::ThroughManager;
use crate::cli::CanistersCommand;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};

use super::{connect_manager, lines, output, recovery, Connector, Output};

pub(super) fn run(cmd: &CanistersCommand, connector: &Connector) -> Result<Output, CliError> {
    match cmd {
        CanistersCommand::Backup {
            target,
            canister,
            out,
        } => {
            let ic = connect_manager(target, connector, false)?;
            let through = ThroughManager::new(ic.as_ref(), target.manager);
            recovery::backup(&through, *canister, out)
        }
        CanistersCommand::Restore {
            target,
            canister,
            file,
            force,
        } => {
            let ic = connect_manager(target, connector, false)?;
            let through = ThroughManager::new(ic.as_ref(), target.manager);
            recovery::restore(&through, *canister, file, *force)
        }
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
            let text = lines(&records, "no user canisters match", |c| {
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
            });
            output(&records, text)
        }
    }
}
