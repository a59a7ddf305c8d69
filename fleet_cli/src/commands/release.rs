//! `fleet release`: publish, abort, list and show the releases a manager stores.

use crate::cli::ReleaseCommand;
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};
use crate::progress::Bars;
use crate::wasm::WasmModule;

use super::{connect_manager, lines, output, Connector, Output};

fn release_line(r: &mgr::ReleaseView) -> String {
    format!(
        "{:<16} {}  {:>9} bytes{}  {} chunks  {}",
        r.version,
        r.sha256,
        r.size,
        if r.gzipped { " (gzip)" } else { "" },
        r.chunk_count,
        r.notes.lines().next().unwrap_or("")
    )
}

pub(super) fn run(
    cmd: &ReleaseCommand,
    connector: &Connector,
    bars: &mut Bars,
) -> Result<Output, CliError> {
    match cmd {
        ReleaseCommand::Publish {
            target,
            wasm,
            version,
            notes,
            sha256,
        } => {
            let module = WasmModule::read(wasm, sha256.as_deref())?;
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let r = mgr::publish(&m, &module, version, notes, bars)?;
            let mut text = match r.outcome {
                mgr::PublishOutcome::AlreadyPublished => format!(
                    "release {} is already published with this module ({})",
                    r.release.version, r.release.sha256
                ),
                mgr::PublishOutcome::Published => format!(
                    "published release {} ({}, {} chunks{})",
                    r.release.version,
                    r.release.sha256,
                    r.release.chunk_count,
                    if r.resumed {
                        format!(", resumed: sent the {} missing", r.chunks_sent)
                    } else {
                        String::new()
                    }
                ),
            };
            if let Some(e) = &r.mirror_error {
                text.push_str(&format!(
                    "\nnot yet in the manager's chunk store ({e}); it is mirrored when needed"
                ));
            }
            output(&r, text)
        }
        ReleaseCommand::Abort { target, version } => {
            let ic = connect_manager(target, connector, false)?;
            mgr::abort_upload(&Manager::new(ic.as_ref(), target.manager), version)?;
            output(
                &serde_json::json!({ "aborted": version }),
                format!("cancelled the upload of {version}"),
            )
        }
        ReleaseCommand::List { target } => {
            let ic = connect_manager(target, connector, true)?;
            let releases: Vec<mgr::ReleaseView> =
                mgr::list_releases(&Manager::new(ic.as_ref(), target.manager))?
                    .iter()
                    .map(Into::into)
                    .collect();
            let text = lines(&releases, "no releases", release_line);
            output(&releases, text)
        }
        ReleaseCommand::Show { target, version } => {
            let ic = connect_manager(target, connector, true)?;
            let state = mgr::show_release(&Manager::new(ic.as_ref(), target.manager), version)?;
            let text = match &state {
                mgr::ReleaseState::Finalized(r) => format!(
                    "version:      {}\nsha256:       {}\nsize:         {} bytes ({} uncompressed){}\nchunks:       {}\nuploader:     {}\nuploaded at:  {} ns\nnotes:        {}",
                    r.version, r.sha256, r.size, r.uncompressed_size,
                    if r.gzipped { ", gzip" } else { "" },
                    r.chunk_count, r.uploader, r.uploaded_at_ns, r.notes
                ),
                mgr::ReleaseState::Uploading(u) => format!(
                    "version {} is being uploaded by {}: {} of {} chunks missing (sha256 {})",
                    u.version, u.uploader, u.missing.len(), u.chunk_count, u.sha256
                ),
            };
            output(&state, text)
        }
    }
}
