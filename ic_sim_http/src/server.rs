//! The serving loop: routing, the endpoints, request statuses and live rounds.

use std::collections::HashMap;
use std::io::Read;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use candid::Principal;
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::Signer;
use ic_sim::{IcSim, RawMessageId, Time};
use ic_transport_types::{
    Envelope, EnvelopeContent, NodeSignature, QueryResponse, RejectCode, RejectResponse,
    ReplyResponse, RequestId,
};
use serde::Serialize;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};
use tiny_http::{Header, Method, Request, Response};

use crate::auth::authenticate;
use crate::tree::{self, Status};
use crate::ServeConfig;

/// The largest request body taken: a 2 MiB ingress message (spec, "Limits": `MAX_INGRESS_BYTES`
/// on mainnet) and its envelope.
const MAX_BODY_BYTES: u64 = 3 * 1024 * 1024;
/// At most this many paths in a read_state request, of at most this many labels (spec,
/// "Request: Read state").
const MAX_PATHS: usize = 1000;
const MAX_PATH_LABELS: usize = 127;
/// How long a finished request's status stays readable after its expiry (spec, "Overview of
/// canister calling": statuses stay at least until the call's expiry).
const STATUS_RETENTION_NANOS: u64 = 5 * 60 * 1_000_000_000;

/// The simulated subnet's one node: its Ed25519 key signs query responses (spec, "Request:
/// Query call"), and agents find its public key in the state tree at
/// `/subnet/<subnet>/node/<node>/public_key`.
pub struct NodeKey {
    key: ed25519_dalek::SigningKey,
    der: Vec<u8>,
    id: Principal,
}

impl NodeKey {
    /// A node key derived from the simulator's root key, so that one instance signs with one
    /// node key throughout.
    pub fn for_root_key(root_key: &[u8]) -> Self {
        let seed: [u8; 32] = Sha256::new()
            .chain_update(b"ic_sim_http node key")
            .chain_update(root_key)
            .finalize()
            .into();
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let der = key
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        let id = Principal::self_authenticating(&der);
        NodeKey { key, der, id }
    }

    pub fn id(&self) -> Principal {
        self.id
    }

    pub fn public_key_der(&self) -> &[u8] {
        &self.der
    }
}

/// A submitted call and where it stands.
struct Tracked {
    message: Option<RawMessageId>,
    sender: Principal,
    /// The canister id or subnet id the call was submitted under.
    effective: Principal,
    expiry: u64,
    status: Status,
}

/// An answer to an HTTP request.
struct Reply {
    code: u16,
    body: Vec<u8>,
    cbor: bool,
}

impl Reply {
    fn cbor(body: Vec<u8>) -> Self {
        Reply {
            code: 200,
            body,
            cbor: true,
        }
    }

    fn empty(code: u16) -> Self {
        Reply {
            code,
            body: Vec::new(),
            cbor: false,
        }
    }

    fn error(code: u16, message: impl Into<String>) -> Self {
        Reply {
            code,
            body: message.into().into_bytes(),
            cbor: false,
        }
    }
}

/// Which endpoint a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Call { sync: bool },
    Query,
    ReadState,
}

/// Whether the path's id is an effective canister id or an effective subnet id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Canister(Principal),
    Subnet(Principal),
}

impl Scope {
    fn id(self) -> Principal {
        match self {
            Scope::Canister(p) | Scope::Subnet(p) => p,
        }
    }
}

enum Route {
    Status,
    Api(Kind, Scope),
}

/// Parses `/api/<version>/<canister|subnet>/<id>/<kind>` for the versions the spec defines.
fn route(path: &str) -> Result<Route, Reply> {
    let path = path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let not_found = || Reply::error(404, format!("no endpoint at {path}"));
    match parts.as_slice() {
        ["api", "v2", "status"] => Ok(Route::Status),
        ["api", version, scope, id, kind] => {
            let id = Principal::from_text(id)
                .map_err(|e| Reply::error(400, format!("invalid id in the URL: {e}")))?;
            let subnet = match *scope {
                "canister" => false,
                "subnet" => true,
                _ => return Err(not_found()),
            };
            let kind = match (*version, subnet, *kind) {
                ("v2", false, "call") => Kind::Call { sync: false },
                ("v3", false, "call") | ("v4", _, "call") => Kind::Call { sync: true },
                ("v2", false, "query") | ("v3", _, "query") => Kind::Query,
                ("v2" | "v3", _, "read_state") => Kind::ReadState,
                _ => return Err(not_found()),
            };
            let scope = if subnet {
                Scope::Subnet(id)
            } else {
                Scope::Canister(id)
            };
            Ok(Route::Api(kind, scope))
        }
        _ => Err(not_found()),
    }
}

fn wall_clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The transport's reject code for ic_sim's; `SYS_UNKNOWN` (6), which ic-transport-types does
/// not know, is reported as transient.
fn transport_reject(reject: &ic_sim::RejectResponse) -> RejectResponse {
    RejectResponse {
        reject_code: RejectCode::try_from(reject.reject_code as u64)
            .unwrap_or(RejectCode::SysTransient),
        reject_message: reject.reject_message.clone(),
        error_code: Some(reject.error_code.to_string()),
    }
}

/// What a call or a query asks for.
struct Message<'a> {
    canister: Principal,
    method: &'a str,
    arg: &'a [u8],
    sender: Principal,
}

impl<'a> Message<'a> {
    fn of(content: &'a EnvelopeContent) -> Self {
        match content {
            EnvelopeContent::Call {
                canister_id,
                method_name,
                arg,
                sender,
                ..
            }
            | EnvelopeContent::Query {
                canister_id,
                method_name,
                arg,
                sender,
                ..
            } => Message {
                canister: *canister_id,
                method: method_name,
                arg,
                sender: *sender,
            },
            EnvelopeContent::ReadState { sender, .. } => Message {
                canister: Principal::management_canister(),
                method: "",
                arg: &[],
                sender: *sender,
            },
        }
    }
}

/// The simulator in live mode and what the server keeps beside it.
pub struct Live {
    sim: Rc<IcSim>,
    config: ServeConfig,
    root_key: Vec<u8>,
    subnet: Principal,
    node: NodeKey,
    requests: HashMap<[u8; 32], Tracked>,
    last_round: Instant,
}

impl Live {
    pub fn new(sim: Rc<IcSim>, config: ServeConfig) -> Self {
        let root_key = sim.root_key().unwrap_or_default();
        // With no delegation, agents take the root subnet's id to be the self-authenticating
        // id of the root key (spec, "Request: Query call": `RootSubnetId`).
        let subnet = Principal::self_authenticating(&root_key);
        let node = NodeKey::for_root_key(&root_key);
        let live = Live {
            sim,
            config,
            root_key,
            subnet,
            node,
            requests: HashMap::new(),
            last_round: Instant::now(),
        };
        live.follow_wall_clock();
        live
    }

    pub fn root_key(&self) -> &[u8] {
        &self.root_key
    }

    /// Serves until `stop` is set; between requests, a round every `round_interval`.
    pub fn serve(&mut self, http: &tiny_http::Server, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let wait = self
                .config
                .round_interval
                .saturating_sub(self.last_round.elapsed());
            match http.recv_timeout(wait) {
                Ok(Some(request)) => self.respond(request),
                Ok(None) => {}
                Err(_) => break,
            }
            if self.last_round.elapsed() >= self.config.round_interval
                && catch_unwind(AssertUnwindSafe(|| self.round())).is_err()
            {
                // A round that failed is not retried at once.
                self.last_round = Instant::now();
            }
        }
    }

    /// Moves the simulator's time up to the wall clock (never back: time is monotonic).
    fn follow_wall_clock(&self) {
        let now = wall_clock_nanos();
        if now > self.sim.get_time().as_nanos_since_unix_epoch() {
            self.sim.set_time(Time::from_nanos_since_unix_epoch(now));
        }
    }

    fn now(&self) -> u64 {
        self.sim.get_time().as_nanos_since_unix_epoch()
    }

    /// One round at the current wall-clock time, then the statuses of finished calls.
    fn round(&mut self) {
        self.follow_wall_clock();
        self.sim.tick();
        self.last_round = Instant::now();
        let now = self.now();
        for tracked in self.requests.values_mut() {
            let Some(message) = &tracked.message else {
                continue;
            };
            if self.sim.ingress_status(message).is_some() {
                let outcome = self.sim.await_call(message.clone());
                tracked.status = match outcome {
                    Ok(reply) => Status::Replied(reply),
                    Err(reject) => Status::Rejected(reject),
                };
                tracked.message = None;
            }
        }
        self.requests.retain(|_, t| {
            t.message.is_some() || t.expiry.saturating_add(STATUS_RETENTION_NANOS) >= now
        });
    }

    fn respond(&mut self, mut request: Request) {
        // A fault of the simulator on one request must not end the server: the request is
        // answered 500 and serving goes on.
        let reply = catch_unwind(AssertUnwindSafe(|| self.handle(&mut request)))
            .unwrap_or_else(|_| Reply::error(500, "the simulator failed on this request"));
        let mut response = Response::from_data(reply.body).with_status_code(reply.code);
        let content_type = if reply.cbor {
            "application/cbor"
        } else {
            "text/plain; charset=utf-8"
        };
        for (name, value) in [
            ("Content-Type", content_type),
            // Browser agents call local replicas from other origins.
            ("Access-Control-Allow-Origin", "*"),
            ("Access-Control-Allow-Methods", "GET, POST, OPTIONS"),
            ("Access-Control-Allow-Headers", "Content-Type"),
        ] {
            if let Ok(header) = Header::from_bytes(name, value) {
                response.add_header(header);
            }
        }
        // A client that hung up is no concern of the server's.
        let _ = request.respond(response);
    }

    fn handle(&mut self, request: &mut Request) -> Reply {
        let route = match route(request.url()) {
            Ok(route) => route,
            Err(reply) => return reply,
        };
        match (request.method(), route) {
            (Method::Options, _) => Reply::empty(204),
            (Method::Get, Route::Status) => self.status(),
            (Method::Post, Route::Api(kind, scope)) => {
                let mut body = Vec::new();
                let read = request
                    .as_reader()
                    .take(MAX_BODY_BYTES + 1)
                    .read_to_end(&mut body);
                if let Err(e) = read {
                    return Reply::error(400, format!("reading the request body: {e}"));
                }
                if body.len() as u64 > MAX_BODY_BYTES {
                    return Reply::error(413, "request body too large");
                }
                self.api(kind, scope, &body)
            }
            _ => Reply::error(405, "method not allowed"),
        }
    }

    /// `GET /api/v2/status` (spec, "Status endpoint"): the root key, which a development
    /// instance must serve, and the replica's health as dfx waits for it.
    fn status(&self) -> Reply {
        #[derive(Serialize)]
        struct Status<'a> {
            root_key: ByteBuf,
            impl_version: &'a str,
            replica_health_status: &'a str,
        }
        Reply::cbor(tree::cbor(&Status {
            root_key: ByteBuf::from(self.root_key.clone()),
            impl_version: concat!("ic_sim_http ", env!("CARGO_PKG_VERSION")),
            replica_health_status: "healthy",
        }))
    }

    fn api(&mut self, kind: Kind, scope: Scope, body: &[u8]) -> Reply {
        let envelope: Envelope<'_> = match serde_cbor::from_slice(body) {
            Ok(envelope) => envelope,
            Err(e) => return Reply::error(400, format!("malformed request envelope: {e}")),
        };
        if let Scope::Subnet(id) = scope {
            if id != self.subnet {
                return Reply::error(
                    400,
                    format!("unknown subnet {id}: this IC has subnet {}", self.subnet),
                );
            }
        }
        let request_id = match authenticate(&envelope, self.now()) {
            Ok(id) => id,
            Err(e) => return Reply::error(400, e.to_string()),
        };
        let content = envelope.content.as_ref();
        match (kind, content) {
            (Kind::Call { sync }, EnvelopeContent::Call { ingress_expiry, .. }) => self.call(
                sync,
                scope,
                Message::of(content),
                *ingress_expiry,
                request_id,
            ),
            (Kind::Query, EnvelopeContent::Query { .. }) => {
                self.query(scope, Message::of(content), request_id)
            }
            (Kind::ReadState, EnvelopeContent::ReadState { sender, paths, .. }) => {
                self.read_state(scope, *sender, paths)
            }
            _ => Reply::error(400, "the request type does not match the endpoint"),
        }
    }

    /// Checks the effective id of a call or query (spec, "Effective canister id", "Effective
    /// subnet id").
    fn check_effective(
        &self,
        scope: Scope,
        canister: Principal,
        method: &str,
        query: bool,
    ) -> Result<(), Reply> {
        let management = canister == Principal::management_canister();
        match scope {
            Scope::Canister(id) if !management && id != canister => Err(Reply::error(
                400,
                format!("the effective canister id {id} is not the target canister {canister}"),
            )),
            Scope::Canister(_) => Ok(()),
            Scope::Subnet(_) => {
                let allowed = management
                    && if query {
                        method == "list_canisters"
                    } else {
                        matches!(
                            method,
                            "create_canister" | "provisional_create_canister_with_cycles"
                        )
                    };
                if allowed {
                    Ok(())
                } else {
                    Err(Reply::error(
                        400,
                        format!("`{method}` cannot be called at a subnet-scoped endpoint"),
                    ))
                }
            }
        }
    }

    /// A call (spec, "Request: Call", "Request: Asynchronous Call"): submitted as an ingress
    /// message; asynchronous calls are answered 202 at once, synchronous ones with a
    /// certificate of the request status once the call is done, or 202 after the timeout.
    fn call(
        &mut self,
        sync: bool,
        scope: Scope,
        m: Message<'_>,
        ingress_expiry: u64,
        request_id: RequestId,
    ) -> Reply {
        if let Err(reply) = self.check_effective(scope, m.canister, m.method, false) {
            return reply;
        }
        let key = *request_id;
        // The same request again is not executed twice (spec, "Overview of canister calling":
        // a request id identifies the call until it expires).
        if !self.requests.contains_key(&key) {
            self.follow_wall_clock();
            match self
                .sim
                .submit_call(m.canister, m.sender, m.method, m.arg.to_vec())
            {
                Ok(message) => {
                    self.requests.insert(
                        key,
                        Tracked {
                            message: Some(message),
                            sender: m.sender,
                            effective: scope.id(),
                            expiry: ingress_expiry,
                            status: Status::Processing,
                        },
                    );
                }
                Err(reject) => return non_replicated_rejection(sync, &reject),
            }
        }
        if !sync {
            return Reply::empty(202);
        }
        let started = Instant::now();
        for _ in 0..self.config.sync_call_max_rounds {
            if self.requests.get(&key).is_some_and(|t| t.message.is_none()) {
                break;
            }
            if started.elapsed() >= self.config.sync_call_timeout {
                break;
            }
            self.round();
        }
        match self.requests.get(&key) {
            Some(t) if t.message.is_none() => {
                let rid = request_id.as_slice().to_vec();
                let paths = [vec![b"request_status".to_vec(), rid]];
                match self.certificate(&paths, Some((&key, &t.status)), Vec::new()) {
                    Ok(certificate) => {
                        #[derive(Serialize)]
                        struct Replied {
                            status: &'static str,
                            certificate: ByteBuf,
                        }
                        Reply::cbor(tree::cbor(&Replied {
                            status: "replied",
                            certificate: ByteBuf::from(certificate),
                        }))
                    }
                    Err(reply) => reply,
                }
            }
            _ => Reply::empty(202),
        }
    }

    /// A query (spec, "Request: Query call"): executed on the current state, the response
    /// signed by the node.
    fn query(&mut self, scope: Scope, m: Message<'_>, request_id: RequestId) -> Reply {
        if let Err(reply) = self.check_effective(scope, m.canister, m.method, true) {
            return reply;
        }
        self.follow_wall_clock();
        let outcome = self
            .sim
            .query_call(m.canister, m.sender, m.method, m.arg.to_vec());
        let mut response = match outcome {
            Ok(reply) => QueryResponse::Replied {
                reply: ReplyResponse { arg: reply },
                signatures: Vec::new(),
            },
            Err(reject) => QueryResponse::Rejected {
                reject: transport_reject(&reject),
                signatures: Vec::new(),
            },
        };
        let timestamp = self.now();
        let signature = NodeSignature {
            timestamp,
            signature: self
                .node
                .key
                .sign(&response.signable(request_id, timestamp))
                .to_bytes()
                .to_vec(),
            identity: self.node.id,
        };
        match &mut response {
            QueryResponse::Replied { signatures, .. }
            | QueryResponse::Rejected { signatures, .. } => {
                signatures.push(signature);
            }
        }
        Reply::cbor(tree::cbor(&response))
    }

    /// A read_state request (spec, "Request: Read state"): the requested paths are checked,
    /// then a certificate revealing them and `/time` is returned.
    fn read_state(
        &mut self,
        scope: Scope,
        sender: Principal,
        paths: &[Vec<ic_certification::Label>],
    ) -> Reply {
        if paths.len() > MAX_PATHS || paths.iter().any(|p| p.len() > MAX_PATH_LABELS) {
            return Reply::error(400, "too many paths or labels");
        }
        let paths: Vec<Vec<Vec<u8>>> = paths
            .iter()
            .map(|p| p.iter().map(|l| l.as_bytes().to_vec()).collect())
            .collect();
        let mut request: Option<[u8; 32]> = None;
        let mut metadata: Vec<(Principal, String)> = Vec::new();
        for path in &paths {
            let labels: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
            match labels.as_slice() {
                [b"time"] => {}
                [b"subnet", ..] | [b"canister_ranges", ..] | [b"api_boundary_nodes", ..] => {}
                [b"request_status", id, ..] if labels.len() <= 3 => {
                    let Ok(id) = <[u8; 32]>::try_from(*id) else {
                        return Reply::error(400, "a request id has 32 bytes");
                    };
                    if request.is_some_and(|r| r != id) {
                        return Reply::error(400, "paths name more than one request id");
                    }
                    request = Some(id);
                    if let Some(t) = self.requests.get(&id) {
                        if t.sender != sender || t.effective != scope.id() {
                            return Reply::error(
                                403,
                                "the request was sent by another sender or to another effective id",
                            );
                        }
                    }
                }
                [b"canister", id, rest @ ..] => {
                    let Ok(canister) = Principal::try_from_slice(id) else {
                        return Reply::error(400, "a canister id has at most 29 bytes");
                    };
                    if scope != Scope::Canister(canister) {
                        return Reply::error(
                            400,
                            format!("canister paths must name the effective canister id, not {canister}"),
                        );
                    }
                    match rest {
                        [b"module_hash"] | [b"controllers"] => {}
                        [b"metadata", name] => match std::str::from_utf8(name) {
                            Ok(name) => metadata.push((canister, name.to_string())),
                            Err(_) => return Reply::error(400, "a metadata name is UTF-8"),
                        },
                        _ => return Reply::error(400, "this canister path cannot be requested"),
                    }
                }
                _ => return Reply::error(400, "this path cannot be requested"),
            }
        }
        let mut leaves = Vec::new();
        for (canister, name) in metadata {
            // A section that does not exist, or that a private section's non-controller may
            // not read, is left absent.
            if let Ok(value) = self.sim.canister_metadata(canister, Some(sender), &name) {
                let path = vec![
                    b"canister".to_vec(),
                    canister.as_slice().to_vec(),
                    b"metadata".to_vec(),
                    name.into_bytes(),
                ];
                leaves.push((path, value));
            }
        }
        let status = request.and_then(|id| self.requests.get(&id).map(|t| (id, t.status.clone())));
        let status = status.as_ref().map(|(id, s)| (id, s));
        match self.certificate(&paths, status, leaves) {
            Ok(certificate) => {
                #[derive(Serialize)]
                struct ReadState {
                    certificate: ByteBuf,
                }
                Reply::cbor(tree::cbor(&ReadState {
                    certificate: ByteBuf::from(certificate),
                }))
            }
            Err(reply) => reply,
        }
    }

    /// A certificate revealing `paths` and `/time` (spec, "Request: Read state": `/time` is
    /// always revealed) in the state tree with the subnet, the status of one request and
    /// `leaves` added.
    fn certificate(
        &self,
        paths: &[Vec<Vec<u8>>],
        status: Option<(&[u8; 32], &Status)>,
        leaves: Vec<(Vec<Vec<u8>>, Vec<u8>)>,
    ) -> Result<Vec<u8>, Reply> {
        self.follow_wall_clock();
        let mut tree = self
            .sim
            .read_state_tree()
            .map_err(|e| Reply::error(500, e.to_string()))?;
        tree::add_subnet(
            &mut tree,
            self.subnet,
            &self.root_key,
            self.node.id,
            &self.node.der,
        );
        if let Some((id, status)) = status {
            tree::add_request_status(&mut tree, id, status);
        }
        for (path, value) in leaves {
            let labels: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
            tree.insert(&labels, value);
        }
        let mut refs: Vec<Vec<&[u8]>> = paths
            .iter()
            .map(|p| p.iter().map(Vec::as_slice).collect())
            .collect();
        refs.push(vec![b"time".as_slice()]);
        let refs: Vec<&[&[u8]]> = refs.iter().map(Vec::as_slice).collect();
        self.sim
            .certify(tree.witness(&refs))
            .map_err(|e| Reply::error(500, e.to_string()))
    }
}

/// A call refused before it was inducted, e.g. by `canister_inspect_message` (spec, "Request:
/// Call": `non_replicated_rejection`; "Request: Asynchronous Call": 200 with the reject).
fn non_replicated_rejection(sync: bool, reject: &ic_sim::RejectResponse) -> Reply {
    #[derive(Serialize)]
    struct Rejection<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        status: Option<&'static str>,
        reject_code: u64,
        reject_message: &'a str,
        error_code: String,
    }
    Reply::cbor(tree::cbor(&Rejection {
        status: sync.then_some("non_replicated_rejection"),
        reject_code: reject.reject_code as u64,
        reject_message: &reject.reject_message,
        error_code: reject.error_code.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    //! The deprecated v2 endpoints, which current ic-agent no longer calls, and routing; the
    //! requests are signed by ic-agent, the handlers called directly.

    use candid::encode_one;
    use ic_agent::identity::BasicIdentity;
    use ic_agent::Agent;
    use ic_sim::management_canister::CanisterIdRecord;

    use super::*;

    fn status_arg(canister: Principal) -> Vec<u8> {
        encode_one(CanisterIdRecord {
            canister_id: canister,
        })
        .unwrap()
    }

    fn live_and_agent() -> (Live, Agent, Principal) {
        let sim = Rc::new(IcSim::new());
        let canister = sim.create_canister();
        let live = Live::new(sim, ServeConfig::default());
        // The agent only signs here; nothing is sent to its URL.
        let agent = Agent::builder()
            .with_url("http://127.0.0.1:9")
            .with_identity(BasicIdentity::from_raw_key(&[3; 32]))
            .build()
            .unwrap();
        agent.set_root_key(live.root_key().to_vec());
        let sender = agent.get_principal().unwrap();
        live.sim
            .set_controllers(canister, None, vec![sender])
            .unwrap();
        (live, agent, canister)
    }

    #[test]
    fn routes_are_the_versions_the_spec_defines() {
        let c = "aaaaa-aa";
        let ok = |path: &str| route(path).is_ok();
        assert!(ok("/api/v2/status"));
        for kind in ["call", "query", "read_state"] {
            assert!(ok(&format!("/api/v2/canister/{c}/{kind}")));
            assert!(!ok(&format!("/api/v1/canister/{c}/{kind}")));
        }
        assert!(ok(&format!("/api/v3/canister/{c}/call")));
        assert!(ok(&format!("/api/v4/canister/{c}/call")));
        assert!(ok(&format!("/api/v4/subnet/{c}/call")));
        assert!(
            !ok(&format!("/api/v3/subnet/{c}/call")),
            "no v3 subnet call"
        );
        assert!(
            !ok(&format!("/api/v2/subnet/{c}/query")),
            "no v2 subnet query"
        );
        assert!(ok(&format!("/api/v3/subnet/{c}/query")));
        assert!(ok(&format!("/api/v2/subnet/{c}/read_state")));
        assert!(!ok("/api/v2/canister/not-a-principal/call"));
    }

    #[test]
    fn an_asynchronous_call_is_accepted_then_its_status_read_at_v2() {
        let (mut live, agent, canister) = live_and_agent();
        let signed = agent
            .update(&Principal::management_canister(), "canister_status")
            .with_effective_canister_id(canister)
            .with_arg(status_arg(canister))
            .sign()
            .unwrap();
        let scope = Scope::Canister(canister);
        let accepted = live.api(Kind::Call { sync: false }, scope, &signed.signed_update);
        assert_eq!((accepted.code, accepted.body.len()), (202, 0));
        for _ in 0..100 {
            live.round();
            if live.requests.values().all(|t| t.message.is_none()) {
                break;
            }
        }
        let read = agent
            .sign_request_status(canister, signed.request_id)
            .unwrap();
        let reply = live.api(Kind::ReadState, scope, &read.signed_request_status);
        assert_eq!(reply.code, 200);
        #[derive(serde::Deserialize)]
        struct Body {
            #[serde(with = "serde_bytes")]
            certificate: Vec<u8>,
        }
        let body: Body = serde_cbor::from_slice(&reply.body).unwrap();
        let cert: ic_certification::Certificate =
            serde_cbor::from_slice(&body.certificate).unwrap();
        agent
            .verify(&cert, canister)
            .expect("signed by the root key, fresh");
        let status = [
            b"request_status".as_slice(),
            signed.request_id.as_slice(),
            b"status",
        ];
        assert_eq!(
            cert.tree.lookup_path(status),
            ic_certification::LookupResult::Found(b"replied".as_slice())
        );
    }

    #[test]
    fn a_v2_query_is_answered_with_a_node_signature() {
        let (mut live, agent, canister) = live_and_agent();
        // The canister is empty: the reject is signed like a reply.
        let signed = agent.query(&canister, "missing").sign().unwrap();
        let reply = live.api(Kind::Query, Scope::Canister(canister), &signed.signed_query);
        assert_eq!(reply.code, 200);
        let response: QueryResponse = serde_cbor::from_slice(&reply.body).unwrap();
        assert!(matches!(response, QueryResponse::Rejected { .. }));
        let [signature] = response.signatures() else {
            panic!("one node signature");
        };
        let key = ed25519_dalek::VerifyingKey::from(&live.node.key);
        let request_id = ic_transport_types::to_request_id(
            &serde_cbor::from_slice::<Envelope<'_>>(&signed.signed_query)
                .unwrap()
                .content
                .as_ref(),
        )
        .unwrap();
        let message = response.signable(request_id, signature.timestamp);
        let sig = ed25519_dalek::Signature::from_slice(&signature.signature).unwrap();
        assert!(key.verify_strict(&message, &sig).is_ok());
        assert_eq!(signature.identity, live.node.id());
    }

    #[test]
    fn a_request_of_the_wrong_type_or_malformed_is_refused() {
        let (mut live, agent, canister) = live_and_agent();
        let scope = Scope::Canister(canister);
        assert_eq!(live.api(Kind::Query, scope, b"not cbor").code, 400);
        let signed = agent.update(&canister, "anything").sign().unwrap();
        // An anonymous read_state of a canister id longer than a principal.
        let content = EnvelopeContent::ReadState {
            ingress_expiry: live.now() + 60_000_000_000,
            sender: Principal::anonymous(),
            paths: vec![vec![
                b"canister".as_slice().into(),
                [7u8; 40].as_slice().into(),
                b"controllers".as_slice().into(),
            ]],
        };
        let read = Envelope {
            content: std::borrow::Cow::Owned(content),
            sender_pubkey: None,
            sender_sig: None,
            sender_delegation: None,
        };
        assert_eq!(
            live.api(Kind::ReadState, scope, &read.encode_bytes()).code,
            400
        );
        // A call sent to the query endpoint.
        assert_eq!(
            live.api(Kind::Query, scope, &signed.signed_update).code,
            400
        );
        // A call whose target is not the effective canister id.
        let other = Scope::Canister(Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 9, 1, 1]));
        assert_eq!(
            live.api(Kind::Call { sync: true }, other, &signed.signed_update)
                .code,
            400
        );
    }
}
