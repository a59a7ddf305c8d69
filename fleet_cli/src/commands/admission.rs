//! `fleet admission`: who may have the manager create a canister, and the provisioning budget.

use fleet_api::governance::method::{GetAdmission, SetAdmission, UpdateAllowlist};
use fleet_api::governance::ProvisioningBudget;
use fleet_api::governance::{Admission, AdmissionMode, AdmissionStatus, AllowlistUpdate};
use serde::Serialize;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::cli::{AdmissionCommand, AdmissionModeArg};
use crate::error::CliError;
use crate::manager::Manager;

use super::{connect_manager, output, Connector, Output};

#[derive(Serialize)]
struct AdmissionView {
    mode: String,
    budget_cycles_per_window: String,
    window_secs: u64,
    spent_in_window: String,
    refused_over_budget: u64,
    refused_not_admitted: u64,
    allowlisted: u64,
    invites: u64,
}

impl From<&AdmissionStatus> for AdmissionView {
    fn from(s: &AdmissionStatus) -> Self {
        AdmissionView {
            mode: match &s.admission.mode {
                AdmissionMode::Open => "open".into(),
                AdmissionMode::Allowlist => "allowlist".into(),
                AdmissionMode::Approver(p) => format!("approver {p}"),
                AdmissionMode::Paid => "paid".into(),
            },
            budget_cycles_per_window: s.admission.budget.cycles_per_window.to_string(),
            window_secs: s.admission.budget.window_secs,
            spent_in_window: s.spent_in_window.to_string(),
            refused_over_budget: s.refused_over_budget,
            refused_not_admitted: s.refused_not_admitted,
            allowlisted: s.allowlisted,
            invites: s.invites,
        }
    }
}

fn show(status: &AdmissionStatus) -> Result<Output, CliError> {
    let v = AdmissionView::from(status);
    let text = format!(
        "mode: {}\nbudget: {} cycles per {} s, {} spent in this window\nrefused: {} over budget, \
         {} not admitted\nallowlist: {} principals, {} unused invites",
        v.mode,
        v.budget_cycles_per_window,
        v.window_secs,
        v.spent_in_window,
        v.refused_over_budget,
        v.refused_not_admitted,
        v.allowlisted,
        v.invites
    );
    output(&v, text)
}

/// A fresh invite code: 16 random bytes in hex, from the operating system's generator.
fn invite_code() -> Result<String, CliError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).map_err(|e| CliError::Io(e.to_string()))?;
    Ok(hex::encode(bytes))
}

fn hash(code: &str) -> ByteBuf {
    ByteBuf::from(Sha256::digest(code.as_bytes()).to_vec())
}

pub(super) fn run(cmd: &AdmissionCommand, connector: &Connector) -> Result<Output, CliError> {
    match cmd {
        AdmissionCommand::Show { target } => {
            let ic = connect_manager(target, connector, true)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            show(&m.call::<GetAdmission>(())?)
        }
        AdmissionCommand::Set {
            target,
            mode,
            approver,
            budget_cycles,
            window_secs,
        } => {
            let mode = match mode {
                AdmissionModeArg::Open => AdmissionMode::Open,
                AdmissionModeArg::Allowlist => AdmissionMode::Allowlist,
                AdmissionModeArg::Paid => AdmissionMode::Paid,
                AdmissionModeArg::Approver => {
                    AdmissionMode::Approver(approver.ok_or_else(|| {
                        CliError::Usage("--mode approver needs --approver".into())
                    })?)
                }
            };
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let admission = Admission {
                mode,
                budget: ProvisioningBudget {
                    cycles_per_window: *budget_cycles,
                    window_secs: *window_secs,
                },
            };
            show(&m.call_ok::<SetAdmission>((admission,))?)
        }
        AdmissionCommand::Allow {
            target,
            principals,
            remove,
        } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let update = if *remove {
                AllowlistUpdate {
                    remove: principals.clone(),
                    ..Default::default()
                }
            } else {
                AllowlistUpdate {
                    add: principals.clone(),
                    ..Default::default()
                }
            };
            show(&m.call_ok::<UpdateAllowlist>((update,))?)
        }
        AdmissionCommand::Invite { target, count } => {
            let codes = (0..*count)
                .map(|_| invite_code())
                .collect::<Result<Vec<_>, _>>()?;
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let update = AllowlistUpdate {
                add_invites: codes.iter().map(|c| hash(c)).collect(),
                ..Default::default()
            };
            m.call_ok::<UpdateAllowlist>((update,))?;
            let text = codes.join("\n");
            output(&codes, text)
        }
        AdmissionCommand::Revoke { target, codes } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let update = AllowlistUpdate {
                revoke_invites: codes.iter().map(|c| hash(c)).collect(),
                ..Default::default()
            };
            show(&m.call_ok::<UpdateAllowlist>((update,))?)
        }
    }
}
