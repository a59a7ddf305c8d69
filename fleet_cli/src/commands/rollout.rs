//! `fleet rollout`: start, watch, pause, resume, abort and roll back the manager's rollouts.

use fleet_api::rollout::method::{AbortRollout, PauseRollout, ResumeRollout};
use fleet_api::rollout::RollbackArg;

use crate::cli::RolloutCommand;
use crate::error::CliError;
use crate::estimate;
use crate::manager::{self as mgr, Manager};
use crate::plan::read_principals;
use crate::progress::watch::{at_rest, WaveBars};

use super::{connect_manager, output, Connector, Output};

fn started_text(what: &str, r: &fleet_api::rollout::RolloutStarted) -> String {
    format!(
        "{what} rollout {}: {} canisters in {} stages ({})",
        r.id,
        r.canisters,
        r.waves.len(),
        r.waves
            .iter()
            .map(|w| w.size.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub(super) fn run(
    cmd: &RolloutCommand,
    connector: &Connector,
    show_progress: bool,
) -> Result<Output, CliError> {
    let target = match cmd {
        RolloutCommand::Start { run, .. } | RolloutCommand::Plan { run } => &run.target,
        RolloutCommand::Status { target, .. }
        | RolloutCommand::Pause { target }
        | RolloutCommand::Resume { target }
        | RolloutCommand::Abort { target }
        | RolloutCommand::Rollback { target, .. } => target,
    };
    // Arguments are checked before connecting: a bad plan changes nothing.
    let start_plan = match cmd {
        RolloutCommand::Start { run, .. } | RolloutCommand::Plan { run } => {
            Some(run.plan.to_plan(&run.version, run.from.as_deref())?)
        }
        _ => None,
    };
    let rollback_arg = match cmd {
        RolloutCommand::Rollback {
            to,
            restore_snapshots,
            canisters,
            canisters_file,
            limits,
            ..
        } => {
            limits.validate()?;
            Some(if *restore_snapshots {
                let mut all = canisters.clone();
                if let Some(path) = canisters_file {
                    all.extend(read_principals(path)?);
                }
                if all.is_empty() {
                    return Err(CliError::Usage(
                        "--restore-snapshots needs the canisters to restore (--canister or --canisters-file)".into(),
                    ));
                }
                RollbackArg::RestoreSnapshots {
                    canisters: all,
                    limits: limits.to_limits(),
                }
            } else {
                RollbackArg::ToRelease {
                    to_version: to.clone().unwrap_or_default(),
                    limits: limits.to_limits(),
                }
            })
        }
        _ => None,
    };
    let ic = connect_manager(target, connector, false)?;
    let m = Manager::new(ic.as_ref(), target.manager);
    match cmd {
        RolloutCommand::Start { dry_run: false, .. } => {
            let plan = start_plan.expect("built above");
            let r = mgr::start_rollout(&m, &plan)?;
            let text = started_text("started", &r);
            output(&r, text)
        }
        RolloutCommand::Start { run, .. } | RolloutCommand::Plan { run } => {
            let plan = start_plan.expect("built above");
            let preview = mgr::plan_rollout(&m, &plan)?;
            let e = estimate::estimate(&plan, &preview, &run.assumed);
            let text = estimate::text(&e, &m.id);
            output(&e, text)
        }
        RolloutCommand::Status {
            watch,
            interval_secs,
            ..
        } => {
            let no_rollout =
                || CliError::NotFound(format!("manager {} has run no rollout", target.manager));
            let mut s = mgr::rollout_status(&m)?.ok_or_else(no_rollout)?;
            if *watch {
                let mut bars = WaveBars::new(show_progress);
                loop {
                    bars.update(&s, "");
                    if at_rest(&s) {
                        break;
                    }
                    ic.idle(std::time::Duration::from_secs((*interval_secs).max(1)));
                    s = mgr::rollout_status(&m)?.ok_or_else(no_rollout)?;
                }
                bars.finish();
            }
            Ok(Output {
                json: mgr::rollout_json(&s),
                text: mgr::rollout_text(&s),
            })
        }
        RolloutCommand::Pause { .. }
        | RolloutCommand::Resume { .. }
        | RolloutCommand::Abort { .. } => {
            let s = match cmd {
                RolloutCommand::Pause { .. } => mgr::control_rollout::<PauseRollout>(&m)?,
                RolloutCommand::Resume { .. } => mgr::control_rollout::<ResumeRollout>(&m)?,
                _ => mgr::control_rollout::<AbortRollout>(&m)?,
            };
            Ok(Output {
                json: mgr::rollout_json(&s),
                text: mgr::rollout_text(&s),
            })
        }
        RolloutCommand::Rollback { .. } => {
            let arg = rollback_arg.expect("built above");
            let r = mgr::rollback_rollout(&m, &arg)?;
            let what = match &arg {
                RollbackArg::ToRelease { to_version, .. } => {
                    format!("rolling back to {to_version}:")
                }
                RollbackArg::RestoreSnapshots { .. } => "restoring snapshots:".to_string(),
            };
            let text = started_text(&what, &r);
            output(&r, text)
        }
    }
}
