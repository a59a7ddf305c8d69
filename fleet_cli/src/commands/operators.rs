//! `fleet operators`: who may operate the manager, in which roles.

use fleet_api::manager::Role;

use crate::cli::OperatorsCommand;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};

use super::{connect_manager, output, Connector, Output};

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
