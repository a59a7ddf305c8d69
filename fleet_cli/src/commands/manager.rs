//! `fleet manager`: drain the manager before its own upgrade, and end the drain.

use crate::cli::ManagerCommand;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};

use super::{connect_manager, output, Connector, Output};

pub(super) fn run(cmd: &ManagerCommand, connector: &Connector) -> Result<Output, CliError> {
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
