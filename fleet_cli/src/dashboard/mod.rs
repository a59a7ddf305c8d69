//! `fleet dashboard`: a web page on 127.0.0.1 that shows the manager's rollout as it happens
//! and controls it (pause, resume, abort, roll back).
//!
//! The CLI is the only party that talks to the manager, with the operator's identity; the
//! browser holds no key and talks only to this server ([`tiny_http`]). Requests are served on
//! the thread that owns the connection to the IC: [`Dashboard::serve_pending`] answers what
//! has arrived without blocking, so the embedded simulator of `fleet rehearse --dashboard`
//! (which is not `Send`) serves the page between its rounds.
//!
//! Another site open in the same browser must not be able to drive the manager through this
//! server: every request must name this server in `Host` (which defeats DNS rebinding), and
//! every action carries a token that only the page served here knows, in a header a
//! cross-origin page cannot set without a CORS preflight, which this server never grants.

pub mod chart;
pub mod view;

use std::cell::RefCell;
use std::io::Read;
use std::time::{Duration, Instant};

use candid::Principal;
use fleet_api::endpoint::{Endpoint, Reply};
use fleet_api::manager::method::{GetUserCanister, ListUserCanisters};
use fleet_api::manager::{CanisterFilter, ListUserCanistersArg, UserCanister};
use fleet_api::rollout::method::{AbortRollout, PauseRollout, ResumeRollout, Rollback};
use fleet_api::rollout::{RollbackArg, RolloutControlReply};
use serde::Serialize;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::backend::{CallError, Endpoints, Ic};
use crate::error::CliError;
use crate::manager::{CanisterView, Manager};

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");
const STYLE: &str = include_str!("page.css");
/// Largest request body read (a search or a rollback's version).
const MAX_BODY: u64 = 4096;
/// Registry records a search returns.
const SEARCH_LIMIT: usize = 50;
const TOKEN_HEADER: &str = "X-Fleet-Token";
/// The port `fleet dashboard` and `fleet rehearse --dashboard` serve on unless told.
pub const DEFAULT_PORT: u16 = 4950;

/// The page's server, bound to 127.0.0.1, and the connection it reads the manager through.
pub struct Dashboard {
    server: Server,
    port: u16,
    token: String,
    /// The operator's connection and the manager; a rehearsal attaches them once its manager
    /// is installed, and the page says it is waiting until then.
    target: RefCell<Option<(Box<dyn Ic>, Principal)>>,
    cache: RefCell<view::ResultsCache>,
    chart: RefCell<chart::Chart>,
}

/// What an action or a search returns when it fails: the manager's typed error (`kind` is
/// its variant, e.g. `NotAuthorized`), or a call that got no reply.
#[derive(Serialize, Debug)]
struct Failure {
    method: String,
    kind: String,
    message: String,
}

impl Dashboard {
    /// Binds 127.0.0.1:`port` (0 picks a free port) and shows `manager` through `ic`, the
    /// operator's connection.
    pub fn start(ic: Box<dyn Ic>, manager: Principal, port: u16) -> Result<Self, CliError> {
        let d = Self::bind(port)?;
        d.attach(ic, manager);
        Ok(d)
    }

    /// Binds 127.0.0.1:`port` (0 picks a free port) before there is a manager to show.
    pub fn bind(port: u16) -> Result<Self, CliError> {
        let server = Server::http(("127.0.0.1", port))
            .map_err(|e| CliError::Io(format!("serving the dashboard on port {port}: {e}")))?;
        let port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .ok_or_else(|| CliError::Io("the dashboard has no TCP address".into()))?;
        let mut token = [0u8; 16];
        getrandom::getrandom(&mut token).map_err(|e| CliError::Io(e.to_string()))?;
        Ok(Dashboard {
            server,
            port,
            token: hex::encode(token),
            target: RefCell::new(None),
            cache: RefCell::default(),
            chart: RefCell::default(),
        })
    }

    /// Shows `manager`, read and controlled through `ic`.
    pub fn attach(&self, ic: Box<dyn Ic>, manager: Principal) {
        *self.target.borrow_mut() = Some((ic, manager));
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Answers every request that has arrived, without waiting; returns how many.
    pub fn serve_pending(&self) -> usize {
        let mut served = 0;
        while let Ok(Some(request)) = self.server.try_recv() {
            self.handle(request);
            served += 1;
        }
        served
    }

    /// Serves until `stop` is set (by Ctrl-C).
    pub fn serve_until(&self, stop: &std::sync::atomic::AtomicBool) {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            self.serve_for(Duration::from_millis(200));
        }
    }

    /// Answers requests as they arrive for `duration`.
    pub fn serve_for(&self, duration: Duration) {
        let end = Instant::now() + duration;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.server.recv_timeout(left) {
                Ok(Some(request)) => self.handle(request),
                Ok(None) | Err(_) => return,
            }
        }
    }

    fn host_ok(&self, request: &Request) -> bool {
        let allowed = [
            format!("127.0.0.1:{}", self.port),
            format!("localhost:{}", self.port),
        ];
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Host"))
            .is_some_and(|h| allowed.iter().any(|a| h.value.as_str() == a))
    }

    fn token_ok(&self, request: &Request) -> bool {
        request
            .headers()
            .iter()
            .find(|h| h.field.equiv(TOKEN_HEADER))
            .is_some_and(|h| h.value.as_str() == self.token)
    }

    fn handle(&self, mut request: Request) {
        if !self.host_ok(&request) {
            return respond(request, 421, "text/plain", "unknown host".into());
        }
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let method = request.method().clone();
        let target = self.target.borrow();
        let Some((ic, manager)) = target.as_ref() else {
            drop(target);
            let waiting = match (&method, path.as_str()) {
                (Method::Get, "/") => (200, "text/html; charset=utf-8", waiting_page()),
                _ => failure(
                    503,
                    Failure {
                        method: path,
                        kind: "NotReady".into(),
                        message: "the manager is being installed".into(),
                    },
                ),
            };
            return respond(request, waiting.0, waiting.1, waiting.2);
        };
        let m = Manager::new(ic.as_ref(), *manager);
        let (status, kind, body) = match (&method, path.as_str()) {
            (Method::Get, "/") => (200, "text/html; charset=utf-8", self.page(&m)),
            (Method::Get, "/app.js") => (200, "text/javascript; charset=utf-8", SCRIPT.into()),
            (Method::Get, "/app.css") => (200, "text/css; charset=utf-8", STYLE.into()),
            (Method::Get, "/favicon.ico") => (204, "image/x-icon", String::new()),
            (Method::Get, "/api/state") => self.state(&m),
            (Method::Post, _) if !self.token_ok(&request) => (
                403,
                "application/json",
                json(
                    &serde_json::json!({"error": {"kind": "Forbidden", "method": path, "message": "missing or wrong page token"}}),
                ),
            ),
            (Method::Post, p) if p.starts_with("/api/control/") => {
                let body = read_body(&mut request);
                control(&m, p.trim_start_matches("/api/control/"), &body)
            }
            (Method::Post, "/api/search") => {
                let body = read_body(&mut request);
                search(&m, &body)
            }
            _ => (404, "text/plain", "not found".into()),
        };
        respond(request, status, kind, body)
    }

    fn page(&self, m: &Manager) -> String {
        PAGE.replace("{{TOKEN}}", &self.token)
            .replace("{{MANAGER}}", &m.id.to_text())
            .replace("{{OPERATOR}}", &m.ic.sender().to_text())
    }

    fn state(&self, m: &Manager) -> (u16, &'static str, String) {
        let read = view::read(
            m,
            &mut self.cache.borrow_mut(),
            &mut self.chart.borrow_mut(),
        );
        match read {
            Ok(state) => (200, "application/json", json(&state)),
            Err(e) => (
                502,
                "application/json",
                json(
                    &serde_json::json!({"error": {"kind": "CallFailed", "method": "state", "message": e.to_string()}}),
                ),
            ),
        }
    }
}

/// Runs one control as the operator; the reply is the manager's own answer.
fn control(m: &Manager, action: &str, body: &serde_json::Value) -> (u16, &'static str, String) {
    let result = match action {
        "pause" => control_reply::<PauseRollout>(m),
        "resume" => control_reply::<ResumeRollout>(m),
        "abort" => control_reply::<AbortRollout>(m),
        "rollback" => {
            let Some(to) = body.get("to").and_then(|v| v.as_str()) else {
                return failure(
                    400,
                    Failure {
                        method: Rollback::NAME.into(),
                        kind: "BadRequest".into(),
                        message: "a rollback names the release to go back to".into(),
                    },
                );
            };
            let arg = RollbackArg::ToRelease {
                to_version: to.to_string(),
                limits: None,
            };
            typed::<Rollback>(m, (arg,)).map(|started| {
                    serde_json::json!({"rollout": started.id, "canisters": started.canisters})
                })
        }
        _ => {
            return failure(
                404,
                Failure {
                    method: action.into(),
                    kind: "UnknownAction".into(),
                    message: "pause, resume, abort or rollback".into(),
                },
            )
        }
    };
    match result {
        Ok(v) => (200, "application/json", json(&serde_json::json!({"ok": v}))),
        Err(f) => failure(if f.kind == "CallFailed" { 502 } else { 409 }, f),
    }
}

/// The registry by canister id, owner or release version.
fn search(m: &Manager, body: &serde_json::Value) -> (u16, &'static str, String) {
    let q = body
        .get("q")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .trim()
        .to_string();
    if q.is_empty() {
        return (
            200,
            "application/json",
            json(&serde_json::json!({"canisters": []})),
        );
    }
    let mut found: Vec<UserCanister> = Vec::new();
    let result = match Principal::from_text(&q) {
        Ok(p) => {
            let by_id = match typed::<GetUserCanister>(m, (p,)) {
                Ok(c) => Ok(Some(c)),
                Err(f) if f.kind == "NotFound" => Ok(None),
                Err(f) => Err(f),
            };
            by_id.and_then(|c| {
                found.extend(c);
                list(m, CanisterFilter::Owner(p))
            })
        }
        Err(_) => list(m, CanisterFilter::Release(q.clone())),
    };
    match result {
        Ok(more) => {
            for c in more {
                if !found.iter().any(|f| f.canister_id == c.canister_id) {
                    found.push(c);
                }
            }
            let views: Vec<CanisterView> = found.iter().map(CanisterView::from).collect();
            (
                200,
                "application/json",
                json(&serde_json::json!({"canisters": views})),
            )
        }
        Err(f) => failure(409, f),
    }
}

/// What the page shows before the rehearsal's manager is installed; it reloads itself.
fn waiting_page() -> String {
    "<!doctype html><html><head><meta http-equiv=\"refresh\" content=\"1\"><title>fleet dashboard</title></head><body><p>The rehearsal is installing its manager…</p></body></html>".into()
}

fn list(m: &Manager, filter: CanisterFilter) -> Result<Vec<UserCanister>, Failure> {
    typed::<ListUserCanisters>(
        m,
        (ListUserCanistersArg {
            filter,
            start_after: None,
            limit: Some(SEARCH_LIMIT as u32),
        },),
    )
    .map(|page| page.canisters)
}

fn control_reply<E>(m: &Manager) -> Result<serde_json::Value, Failure>
where
    E: Endpoint<Args = (), Reply = RolloutControlReply>,
{
    typed::<E>(m, ()).map(|s| serde_json::json!({"phase": view::phase_name(&s.phase)}))
}

/// Calls `E` and keeps a refusal as the manager typed it.
fn typed<E>(m: &Manager, args: E::Args) -> Result<<E::Reply as Reply>::Ok, Failure>
where
    E: Endpoint,
    E::Reply: Reply,
    <E::Reply as Reply>::Err: Serialize + std::fmt::Debug,
{
    let reply =
        m.ic.call::<E>(m.id, args)
            .map_err(|e| call_failure(E::NAME, e))?;
    reply.into_result().map_err(|e| Failure {
        method: E::NAME.into(),
        kind: variant_name(&e),
        message: format!("{e:?}"),
    })
}

/// The variant of a serialized enum: `"NotAuthorized"` or `{"InvalidPhase": …}`.
fn variant_name(e: &impl Serialize) -> String {
    match serde_json::to_value(e) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(o)) => o.keys().next().cloned().unwrap_or_default(),
        _ => "Error".into(),
    }
}

/// A call without a reply. The manager's `canister_inspect_message` drops an update from a
/// caller without the role it needs (IC0406): that is `NotAuthorized` too.
fn call_failure(method: &str, e: CallError) -> Failure {
    let kind = match &e {
        CallError::Reject {
            error_code: Some(code),
            ..
        } if code == "IC0406" => "NotAuthorized",
        _ => "CallFailed",
    };
    Failure {
        method: method.into(),
        kind: kind.into(),
        message: e.to_string(),
    }
}

fn failure(status: u16, f: Failure) -> (u16, &'static str, String) {
    (
        status,
        "application/json",
        json(&serde_json::json!({ "error": f })),
    )
}

fn json(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

fn read_body(request: &mut Request) -> serde_json::Value {
    let mut text = String::new();
    let _ = request.as_reader().take(MAX_BODY).read_to_string(&mut text);
    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
}

fn respond(request: Request, status: u16, kind: &str, body: String) {
    let headers = [
        ("Content-Type", kind),
        ("Cache-Control", "no-store"),
        // The page loads only its own script and style; the chart is inline SVG.
        (
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
        ("X-Content-Type-Options", "nosniff"),
    ];
    let mut response = Response::from_string(body).with_status_code(status);
    for (name, value) in headers {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    let _ = request.respond(response);
}
