//! `fleet policy`: the release policy (quorum and notice), its requests, pending releases.

use fleet_api::governance::method::{
    ApproveRequest, CancelRequest, GetReleasePolicy, ListRequests, PendingReleases,
    SetReleasePolicy, ShortenNotice,
};
use fleet_api::governance::{
    ListRequestsArg, PendingRelease, ReleasePolicy, Request, RequestAction, RequestState,
};
use serde::Serialize;

use crate::cli::PolicyCommand;
use crate::error::CliError;
use crate::manager::Manager;

use super::{connect_manager, lines, output, Connector, Output};

#[derive(Serialize)]
pub(crate) struct PendingView {
    pub version: String,
    pub sha256: String,
    pub published_at_ns: u64,
    pub may_start_at_ns: u64,
}

impl From<&PendingRelease> for PendingView {
    fn from(p: &PendingRelease) -> Self {
        PendingView {
            version: p.version.clone(),
            sha256: hex::encode(&p.sha256),
            published_at_ns: p.published_at_ns,
            may_start_at_ns: p.may_start_at_ns,
        }
    }
}

pub(crate) fn pending_line(p: &PendingView) -> String {
    format!(
        "{}  sha256 {}  may start at {} ns",
        p.version, p.sha256, p.may_start_at_ns
    )
}

#[derive(Serialize)]
struct RequestView {
    id: u64,
    action: String,
    role: String,
    proposer: String,
    approvals: Vec<String>,
    quorum: u32,
    state: String,
}

impl From<&Request> for RequestView {
    fn from(r: &Request) -> Self {
        RequestView {
            id: r.id,
            action: match &r.action {
                RequestAction::PublishRelease(v) => format!("publish {v}"),
                RequestAction::StartRollout(plan) => format!("rollout to {}", plan.target_version),
                RequestAction::SetDefaultRelease(v) => format!("default release {v}"),
                RequestAction::SetReleasePolicy(p) => {
                    format!("policy quorum {} notice {} s", p.quorum, p.notice_secs)
                }
                RequestAction::SetOperator(o) => format!("operator {} {:?}", o.principal, o.roles),
                RequestAction::RemoveOperator(p) => format!("remove operator {p}"),
                RequestAction::ShortenNotice {
                    version,
                    notice_secs,
                } => format!("notice of {version} to {notice_secs} s"),
            },
            role: format!("{:?}", r.role),
            proposer: r.proposer.to_text(),
            approvals: r.approvals.iter().map(|p| p.to_text()).collect(),
            quorum: r.quorum,
            state: match &r.state {
                RequestState::Failed { message, .. } => format!("failed: {message}"),
                RequestState::Cancelled { by, .. } => format!("cancelled by {by}"),
                other => format!("{other:?}"),
            },
        }
    }
}

fn request_line(r: &RequestView) -> String {
    format!(
        "#{}  {}  ({} of {} {} approvals)  {}",
        r.id,
        r.action,
        r.approvals.len(),
        r.quorum,
        r.role,
        r.state
    )
}

fn policy_output(p: &ReleasePolicy) -> Result<Output, CliError> {
    let text = format!("quorum {}, notice {} s", p.quorum, p.notice_secs);
    output(p, text)
}

pub(super) fn run(cmd: &PolicyCommand, connector: &Connector) -> Result<Output, CliError> {
    match cmd {
        PolicyCommand::Show { target } => {
            let ic = connect_manager(target, connector, true)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            policy_output(&m.call::<GetReleasePolicy>(())?)
        }
        PolicyCommand::Set {
            target,
            quorum,
            notice_secs,
        } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let policy = ReleasePolicy {
                quorum: *quorum,
                notice_secs: *notice_secs,
            };
            policy_output(&m.call_ok::<SetReleasePolicy>((policy,))?)
        }
        PolicyCommand::Requests { target } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let requests: Vec<RequestView> = m
                .call_ok::<ListRequests>((ListRequestsArg::default(),))?
                .iter()
                .map(Into::into)
                .collect();
            let text = lines(&requests, "no requests", request_line);
            output(&requests, text)
        }
        PolicyCommand::Approve { target, id } | PolicyCommand::Cancel { target, id } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let request = if matches!(cmd, PolicyCommand::Approve { .. }) {
                m.call_ok::<ApproveRequest>((*id,))?
            } else {
                m.call_ok::<CancelRequest>((*id,))?
            };
            let view = RequestView::from(&request);
            let text = request_line(&view);
            output(&view, text)
        }
        PolicyCommand::Pending { target } => {
            let ic = connect_manager(target, connector, true)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let pending: Vec<PendingView> = m
                .call::<PendingReleases>(())?
                .iter()
                .map(Into::into)
                .collect();
            let text = lines(&pending, "no pending releases", pending_line);
            output(&pending, text)
        }
        PolicyCommand::ShortenNotice {
            target,
            version,
            notice_secs,
        } => {
            let ic = connect_manager(target, connector, false)?;
            let m = Manager::new(ic.as_ref(), target.manager);
            let p = m.call_ok::<ShortenNotice>((version.clone(), *notice_secs))?;
            let view = PendingView::from(&p);
            let text = pending_line(&view);
            output(&view, text)
        }
    }
}
