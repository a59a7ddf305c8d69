//! `fleet rehearse`: a release cycle on the embedded simulator; a failed check fails the
//! command, with the report.

use crate::error::CliError;
use crate::rehearse::{self, RehearseArgs};

use super::{output, Output};

pub(super) fn run(args: &RehearseArgs, show_progress: bool) -> Result<Output, CliError> {
    let report = rehearse::run(args, show_progress)?;
    let text = rehearse::report_text(&report);
    if report.verified.failed_checks > 0 {
        return Err(CliError::Refused(format!(
            "{} checks of the rehearsal failed\n{text}",
            report.verified.failed_checks
        )));
    }
    output(&report, text)
}
