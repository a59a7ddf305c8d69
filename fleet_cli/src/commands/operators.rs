//! `fleet operators`: who may operate the manager, in which roles.

use fleet_api::manager::Role;

use crate::cli::OperatorsCommand;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};

use super::{connect_manager, lines, output, Connector, Output};

fn roles_text(roles: &[&str]) -> String {
    if roles.is_empty() {
        "(none)".into()
    } else {
        roles.join(", ")
    }
}

pub(super) fn run(cmd: &OperatorsCommand, connector: &Connector) -> Result<Output, CliError> {
    match cmd {
        OperatorsCommand::List { target } => {
            let ic = connect_manager(target, connector, false)?;
            let ops: Vec<mgr::OperatorView> =
                mgr::list_operators(&Manager::new(ic.as_ref(), target.manager))?
                    .iter()
                    .map(Into::into)
                    .collect();
            let text = lines(
                &ops,
                "no operators besides the manager's controllers",
                |o| format!("{}  {}", o.principal, roles_text(&o.roles)),
            );
            output(&ops, text)
        }
        OperatorsCommand::Add {
            target,
            principal,
            roles,
        }
        | OperatorsCommand::Remove {
            target,
            principal,
            roles,
        } => {
            let adding = matches!(cmd, OperatorsCommand::Add { .. });
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let roles: Vec<Role> = roles.iter().map(|r| (*r).into()).collect();
            let view = if adding {
                mgr::OperatorView::from(&mgr::add_operator(&m, *principal, &roles)?)
            } else {
                let kept = mgr::remove_operator(&m, *principal, &roles)?;
                mgr::OperatorView {
                    principal: *principal,
                    roles: kept.into_iter().map(mgr::role_name).collect(),
                }
            };
            let text = if !adding && view.roles.is_empty() {
                format!("{} is no longer an operator", view.principal)
            } else {
                format!("{} now has: {}", view.principal, roles_text(&view.roles))
            };
            output(&view, text)
        }
    }
}
