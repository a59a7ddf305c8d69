//! `fleet recovery`: the end user's phrase, and their canister's status, upgrade, rollback and
//! detaching, as its controller and without the manager.

use std::io::Write;
use std::path::{Path, PathBuf};

use candid::Principal;

use crate::backend::Ic;
use crate::cli::{RecoveryCommand, Target};
use crate::error::CliError;
use crate::manager::{self as mgr, Manager};
use crate::phrase::RecoveryPhrase;
use crate::progress::Bars;
use crate::recovery;
use crate::wasm::WasmModule;

use super::{connect, output, Connector, Output};

/// Runs a recovery command. `confirm` asks the user a yes/no question (detach).
pub(super) fn run(
    cmd: &RecoveryCommand,
    connector: &Connector,
    confirm: &mut dyn FnMut(&str) -> Result<bool, CliError>,
    bars: &mut Bars,
) -> Result<Output, CliError> {
    match cmd {
        RecoveryCommand::New { phrase_out } => new(phrase_out.as_deref()),
        RecoveryCommand::Principal { identity } => {
            let id = identity.resolve(false)?;
            output(
                &serde_json::json!({ "principal": id.principal(), "key": id.kind() }),
                id.principal().to_text(),
            )
        }
        RecoveryCommand::Status { target } => status(target, connector),
        RecoveryCommand::Backup { target, out } => {
            let ic = connect(target, connector)?;
            backup(ic.as_ref(), target.canister, out)
        }
        RecoveryCommand::Restore {
            target,
            file,
            force,
        } => {
            let ic = connect(target, connector)?;
            restore(ic.as_ref(), target.canister, file, *force)
        }
        RecoveryCommand::Upgrade {
            target,
            wasm,
            manager,
            sha256,
            version,
        } => {
            let source = Source {
                wasm,
                manager: *manager,
                sha256: sha256.as_deref(),
                version: version.as_deref(),
            };
            upgrade(target, &source, connector, bars)
        }
        RecoveryCommand::Rollback { target } => {
            let ic = connect(target, connector)?;
            let r = recovery::rollback(ic.as_ref(), target.canister, bars)?;
            let text = format!(
                "restored {} from snapshot {}: module {}, version {}",
                r.canister,
                r.snapshot.id,
                r.module_hash.as_deref().unwrap_or("(empty)"),
                r.version.as_deref().unwrap_or("?")
            );
            output(&r, text)
        }
        RecoveryCommand::Detach {
            target,
            manager,
            yes,
        } => detach(target, *manager, *yes, connector, confirm),
    }
}

fn new(phrase_out: Option<&Path>) -> Result<Output, CliError> {
    let phrase = RecoveryPhrase::generate()?;
    let principal = phrase.principal()?;
    match phrase_out {
        Some(path) => {
            write_secret_file(path, phrase.reveal().as_bytes())?;
            let text = format!(
                "Recovery phrase written to {}\nRecovery principal: {principal}",
                path.display()
            );
            output(
                &serde_json::json!({ "principal": principal, "phrase_file": path }),
                text,
            )
        }
        None => {
            let words = phrase.reveal();
            let text = format!(
                "Write these {} words down and keep them offline. They are shown only this once.\n\n{}\n\nRecovery principal: {principal}",
                phrase.word_count(),
                words.as_str()
            );
            output(
                &serde_json::json!({ "principal": principal, "phrase": words.as_str() }),
                text,
            )
        }
    }
}

fn status(target: &Target, connector: &Connector) -> Result<Output, CliError> {
    let ic = connect(target, connector)?;
    let r = recovery::status(ic.as_ref(), target.canister)?;
    let snaps: Vec<String> = r
        .snapshots
        .iter()
        .map(|s| {
            format!(
                "  {} taken at {} ns, {} bytes",
                s.id, s.taken_at_timestamp_nanos, s.total_size
            )
        })
        .collect();
    let version = match &r.version {
        Ok(v) => v.clone(),
        Err(e) => format!("unknown ({e})"),
    };
    let pending = match &r.pending_releases {
        Ok(p) if p.is_empty() => "none".to_string(),
        Ok(p) => p
            .iter()
            .map(|p| format!("\n  {}", super::policy::pending_line(&p.into())))
            .collect(),
        Err(e) => format!("unknown ({e})"),
    };
    let text = format!(
        "canister:    {}\nstatus:      {:?}\ncontrollers: {}\nmodule hash: {}\nversion:     {}\ncycles:      {}\npending:     {}\nsnapshots:   {}\n{}",
        r.canister,
        r.status,
        principals(&r.controllers),
        r.module_hash.as_deref().unwrap_or("(empty)"),
        version,
        r.cycles,
        pending,
        r.snapshots.len(),
        snaps.join("\n")
    );
    output(&r, text.trim_end().to_string())
}

/// Where the module of `recovery upgrade` comes from, as the flags say.
struct Source<'a> {
    wasm: &'a Option<PathBuf>,
    manager: Option<Principal>,
    sha256: Option<&'a str>,
    version: Option<&'a str>,
}

fn upgrade(
    target: &Target,
    source: &Source,
    connector: &Connector,
    bars: &mut Bars,
) -> Result<Output, CliError> {
    // Check the input before touching the network: bad input changes nothing.
    let (module, ic, expected_version) = match (source.wasm, source.manager) {
        (Some(path), _) => {
            let module = WasmModule::read(path, source.sha256)?;
            let version = source.version.map(str::to_string);
            (module, connect(target, connector)?, version)
        }
        (None, Some(manager)) => {
            let expected = source.sha256.map(crate::wasm::parse_sha256).transpose()?;
            let release = source
                .version
                .ok_or_else(|| CliError::Usage("--manager needs --version".into()))?;
            let ic = connect(target, connector)?;
            let (meta, module) = mgr::download_release(
                &Manager::new(ic.as_ref(), manager),
                release,
                expected,
                bars,
            )?;
            (module, ic, Some(meta.version))
        }
        (None, None) => return Err(CliError::Usage("give --wasm FILE or --manager".into())),
    };
    let r = recovery::upgrade(
        ic.as_ref(),
        target.canister,
        &module,
        expected_version.as_deref(),
        bars,
    )?;
    let text = match r.outcome {
        recovery::UpgradeOutcome::AlreadyInstalled => {
            format!("{} already runs module {}", r.canister, r.module_hash)
        }
        recovery::UpgradeOutcome::Upgraded => format!(
            "upgraded {} to module {} (version {}); snapshot {} kept for rollback",
            r.canister,
            r.module_hash,
            r.version.as_deref().unwrap_or("?"),
            r.snapshot.as_deref().unwrap_or("-")
        ),
    };
    output(&r, text)
}

fn detach(
    target: &Target,
    manager: Option<Principal>,
    yes: bool,
    connector: &Connector,
    confirm: &mut dyn FnMut(&str) -> Result<bool, CliError>,
) -> Result<Output, CliError> {
    let ic = connect(target, connector)?;
    let plan = recovery::plan_detach(ic.as_ref(), target.canister, manager)?;
    if !yes {
        let question = format!(
            "Controllers of {} will become [{}]; the manager will no longer upgrade or repair it. Continue?",
            plan.canister,
            principals(&plan.controllers_after)
        );
        if !confirm(&question)? {
            return Err(CliError::Refused("not confirmed; nothing changed".into()));
        }
    }
    let now = recovery::apply_detach(ic.as_ref(), &plan)?;
    let text = format!(
        "controllers of {} are now: {}",
        plan.canister,
        principals(&now)
    );
    output(
        &serde_json::json!({ "canister": plan.canister, "controllers_before": plan.controllers_before, "controllers": now }),
        text,
    )
}

fn principals(list: &[Principal]) -> String {
    list.iter()
        .map(|p| p.to_text())
        .collect::<Vec<_>>()
        .join(", ")
}

fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| CliError::Io(format!("creating {}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|e| CliError::Io(format!("writing {}: {e}", path.display())))
}

/// `backup`, as the canister's controller or (`canisters backup`) through its manager.
pub(super) fn backup(ic: &dyn Ic, canister: Principal, out: &Path) -> Result<Output, CliError> {
    let r = recovery::backup::backup(ic, canister, out)?;
    let text = format!(
        "{} bytes of {} (module {}, version {}) written to {}; the snapshot taken for it \
         was deleted",
        r.bytes,
        r.header.canister,
        r.header.module_hash.as_deref().unwrap_or("(empty)"),
        r.header.version.as_deref().unwrap_or("unknown"),
        r.file
    );
    output(&r, text)
}

/// `restore`, as the canister's controller or (`canisters restore`) through its manager.
pub(super) fn restore(
    ic: &dyn Ic,
    canister: Principal,
    file: &Path,
    force: bool,
) -> Result<Output, CliError> {
    let r = recovery::backup::restore(ic, canister, file, force)?;
    let text = format!(
        "{canister} restored from {} (module {}, taken at {} ns)",
        r.file,
        r.header.module_hash.as_deref().unwrap_or("(empty)"),
        r.header.taken_at_ns
    );
    output(&r, text)
}
