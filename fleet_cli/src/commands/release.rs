//! `fleet release`: publish, abort, list and show the releases a manager stores.

use fleet_api::manager::method::GetReleaseInterface;
use fleet_api::manager::ReleaseInterface;
use serde::Serialize;

use crate::cli::ReleaseCommand;
use crate::error::CliError;
use crate::interface::{self, Baseline, InterfaceCheck};
use crate::manager::{self as mgr, Manager};
use crate::progress::Bars;
use crate::wasm::WasmModule;

use super::{connect_as, connect_manager, lines, output, Connector, Output};

/// A report with the interface check that came with it.
#[derive(Serialize)]
struct Checked<'a, T: Serialize> {
    #[serde(flatten)]
    report: &'a T,
    interface: &'a InterfaceCheck,
}

/// Appends the check's lines to `text`.
fn with_check(mut text: String, check: &InterfaceCheck) -> String {
    let lines = check.text();
    if !lines.is_empty() {
        text.push('\n');
        text.push_str(&lines);
    }
    text
}

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
            against,
            allow_breaking,
        } => {
            let module = WasmModule::read(wasm, sha256.as_deref())?;
            let service = interface::service_of(&module, &wasm.display().to_string())?;
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            // The gate runs before anything is uploaded: a refused release leaves no trace.
            let baseline = against.as_deref().map(Baseline::parse);
            let mut check = interface::check(service.as_deref(), baseline.as_ref(), Some(&m))?;
            if check.breaking() && allow_breaking.is_none() {
                return Err(check.refusal(&format!("release {version}")));
            }
            let breaking_change = match allow_breaking {
                Some(reason) if check.breaking() => Some(reason.clone()),
                Some(_) => {
                    check.warnings.push(
                        "the interface is not breaking: the --allow-breaking reason is not recorded"
                            .into(),
                    );
                    None
                }
                None => None,
            };
            let kept = service.map(|service| ReleaseInterface {
                service: Some(service),
                breaking_change,
            });
            let r = mgr::publish(&m, &module, version, notes, kept, bars)?;
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
            let report = Checked {
                report: &r,
                interface: &check,
            };
            output(&report, with_check(text, &check))
        }
        ReleaseCommand::Check {
            network,
            manager,
            identity,
            wasm,
            against,
        } => {
            let module = WasmModule::read(wasm, None)?;
            let service = interface::service_of(&module, &wasm.display().to_string())?;
            let baseline = against.as_deref().map(Baseline::parse);
            let ic = match (manager, &baseline) {
                (_, Some(Baseline::File(_))) | (None, _) => None,
                (Some(_), _) => Some(connect_as(network.name(), identity, true, connector)?),
            };
            let m = ic
                .as_deref()
                .zip(*manager)
                .map(|(ic, id)| Manager::new(ic, id));
            let check = interface::check(service.as_deref(), baseline.as_ref(), m.as_ref())?;
            if check.breaking() {
                return Err(check.refusal(&wasm.display().to_string()));
            }
            let text = with_check(String::new(), &check);
            output(&check, text.trim_start().to_string())
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
            let m = Manager::new(ic.as_ref(), target.manager);
            let state = mgr::show_release(&m, version)?;
            let kept = match &state {
                mgr::ReleaseState::Finalized(_) => {
                    m.call::<GetReleaseInterface>((version.clone(),))?
                }
                mgr::ReleaseState::Uploading(_) => None,
            };
            let text = match &state {
                mgr::ReleaseState::Finalized(r) => format!(
                    "version:      {}\nsha256:       {}\nsize:         {} bytes ({} uncompressed){}\nchunks:       {}\nuploader:     {}\nuploaded at:  {} ns\nnotes:        {}",
                    r.version, r.sha256, r.size, r.uncompressed_size,
                    if r.gzipped { ", gzip" } else { "" },
                    r.chunk_count, r.uploader, r.uploaded_at_ns, r.notes
                ) + &interface_lines(kept.as_ref()),
                mgr::ReleaseState::Uploading(u) => format!(
                    "version {} is being uploaded by {}: {} of {} chunks missing (sha256 {})",
                    u.version, u.uploader, u.missing.len(), u.chunk_count, u.sha256
                ),
            };
            // The release's fields as before, with the interface beside them.
            let mut out = output(&state, text)?;
            out.json["interface"] =
                serde_json::to_value(&kept).map_err(|e| CliError::Io(e.to_string()))?;
            Ok(out)
        }
    }
}

/// `release show`'s lines on the interface a release was published with.
fn interface_lines(kept: Option<&ReleaseInterface>) -> String {
    let service = kept.and_then(|k| k.service.as_ref());
    let mut text = match service {
        Some(s) => format!("\ninterface:    candid:service kept ({} bytes)", s.len()),
        None => "\ninterface:    none on record (not checked at publish)".to_string(),
    };
    if let Some(reason) = kept.and_then(|k| k.breaking_change.as_ref()) {
        text.push_str(&format!("\nbreaking:     {reason}"));
    }
    text
}
