//! `fleet rehearse`: a release cycle on the embedded simulator; a failed check fails the
//! command, with the report.

use std::rc::Rc;

use crate::dashboard::Dashboard;
use crate::error::CliError;
use crate::rehearse::{self, RehearseArgs};

use super::{output, Connector, Output};

pub(super) fn run(args: &RehearseArgs, show_progress: bool) -> Result<Output, CliError> {
    let dashboard = if args.dashboard {
        let d = Rc::new(Dashboard::bind(args.dashboard_port)?);
        eprintln!("dashboard of the rehearsal at {}", d.url());
        Some(d)
    } else {
        None
    };
    let report = rehearse::run_with(args, show_progress, dashboard.clone())?;
    let text = rehearse::report_text(&report);
    if let Some(d) = dashboard {
        eprintln!(
            "rehearsal finished; the dashboard at {} shows its last state until Ctrl-C, then the report is printed",
            d.url()
        );
        let stop = super::dashboard::ctrl_c()?;
        d.serve_until(&stop);
    }
    if report.verified.failed_checks > 0 {
        return Err(CliError::Refused(format!(
            "{} checks of the rehearsal failed\n{text}",
            report.verified.failed_checks
        )));
    }
    output(&report, text)
}

/// `fleet rehearse --from-canister | --from-snapshot`: a failed upgrade, or data that reads
/// otherwise afterwards, fails the command, with the report.
pub(super) fn run_live(args: &RehearseArgs, connector: &Connector) -> Result<Output, CliError> {
    let report = rehearse::live::run(args, connector)?;
    let text = rehearse::live::text(&report);
    if !report.passed() {
        return Err(CliError::Refused(format!(
            "the rehearsed upgrade failed\n{text}"
        )));
    }
    output(&report, text)
}
