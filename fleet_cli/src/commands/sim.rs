//! `fleet sim serve`: serves until Ctrl-C.

use std::io::Write;

use crate::error::CliError;
use crate::serve::{self, ServeArgs};

use super::{output, Output};

pub(super) fn serve(args: &ServeArgs) -> Result<Output, CliError> {
    let (handle, ready) = serve::start(args)?;
    let line = serde_json::to_string(&ready).map_err(|e| CliError::Io(e.to_string()))?;
    // The ready line goes out at once: scripts wait for it before they connect.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::Io(e.to_string()))?;
    let stop = handle.stopper();
    ctrlc::set_handler(stop).map_err(|e| CliError::Io(format!("handling Ctrl-C: {e}")))?;
    handle.wait();
    output(&serde_json::json!({ "stopped": true }), "stopped".into())
}
