//! `fleet dashboard`: serves the page until Ctrl-C.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::cli::DashboardArgs;
use crate::dashboard::Dashboard;
use crate::error::CliError;

use super::{connect_manager, output, Connector, Output};

pub(super) fn run(args: &DashboardArgs, connector: &Connector) -> Result<Output, CliError> {
    let ic = connect_manager(&args.target, connector, false)?;
    let dashboard = Dashboard::start(ic, args.target.manager, args.port)?;
    let stop = ctrl_c()?;
    // Said at once: whoever started the command opens the page now.
    let mut out = std::io::stderr();
    writeln!(
        out,
        "dashboard of manager {} at {} (Ctrl-C ends it)",
        args.target.manager,
        dashboard.url()
    )
    .and_then(|()| out.flush())
    .map_err(|e| CliError::Io(e.to_string()))?;
    dashboard.serve_until(&stop);
    output(
        &serde_json::json!({ "stopped": true, "url": dashboard.url() }),
        "dashboard stopped".into(),
    )
}

/// A flag Ctrl-C sets.
pub(crate) fn ctrl_c() -> Result<Arc<AtomicBool>, CliError> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .map_err(|e| CliError::Io(format!("handling Ctrl-C: {e}")))?;
    Ok(stop)
}
