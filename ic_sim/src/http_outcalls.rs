//! HTTP outcalls (interface spec, "IC method http_request"), answered by the test as in
//! PocketIC: a canister's `http_request` becomes a pending request that
//! [`crate::IcSim::get_canister_http`] lists, and [`crate::IcSim::mock_canister_http_response`]
//! answers it with a reply or a reject. A reply goes through what the replica does with an
//! adapter response (dfinity/ic `rs/https_outcalls/client`): the response size limit, the
//! calling canister's transform, the limit on the transformed response, and, when responses
//! of the other nodes are mocked too, consensus among the subnet's nodes. The types have the
//! names and fields of pocket-ic's (`pocket_ic::common::rest`).

use std::collections::BTreeMap;

use candid::{Nat, Principal};
use ic_management_canister_types as mgmt;

use crate::costs;
use crate::errors::{RejectCode, RejectResponse};
use crate::management::{decode, encode, rejected, Reply};
use crate::sim::{injected_reject, ReplyTo, Request, Sim};

/// The largest response and the default `max_response_bytes` (interface spec, "IC method
/// http_request": 2MB).
pub const MAX_HTTP_RESPONSE_BYTES: u64 = 2_000_000;
/// The longest URL the replica accepts (`MAX_CANISTER_HTTP_URL_SIZE`).
pub const MAX_HTTP_URL_BYTES: usize = 8192;
/// The most request headers the replica accepts (`HEADERS_LIMIT`).
pub const MAX_HTTP_HEADERS: usize = 64;
/// The most bytes of request header names and values the replica accepts
/// (`MAX_CANISTER_HTTP_HEADER_TOTAL_SIZE`, 48 KiB).
pub const MAX_HTTP_HEADER_BYTES: usize = 48 * 1024;

#[derive(Clone, Debug, Hash, Eq, PartialEq, Ord, PartialOrd)]
pub enum CanisterHttpMethod {
    GET,
    POST,
    HEAD,
}

#[derive(Clone, Debug, Hash, Eq, PartialEq, Ord, PartialOrd)]
pub struct CanisterHttpHeader {
    pub name: String,
    pub value: String,
}

/// A pending HTTP outcall, as [`crate::IcSim::get_canister_http`] lists it.
#[derive(Clone, Debug, Hash, Eq, PartialEq, Ord, PartialOrd)]
pub struct CanisterHttpRequest {
    pub subnet_id: Principal,
    pub request_id: u64,
    pub http_method: CanisterHttpMethod,
    pub url: String,
    pub headers: Vec<CanisterHttpHeader>,
    pub body: Vec<u8>,
    pub max_response_bytes: Option<u64>,
}

#[derive(Clone, Debug, Hash, Eq, PartialEq, Ord, PartialOrd)]
pub struct CanisterHttpReply {
    pub status: u16,
    pub headers: Vec<CanisterHttpHeader>,
    pub body: Vec<u8>,
}

#[derive(Clone, Debug, Hash, Eq, PartialEq, Ord, PartialOrd)]
pub struct CanisterHttpReject {
    pub reject_code: u64,
    pub message: String,
}

#[derive(Clone, Debug, Hash, Eq, PartialEq, Ord, PartialOrd)]
pub enum CanisterHttpResponse {
    CanisterHttpReply(CanisterHttpReply),
    CanisterHttpReject(CanisterHttpReject),
}

/// The answer to a pending outcall. `additional_responses` are the responses of the subnet's
/// other nodes: empty (all nodes saw `response`) or one per other node (12).
#[derive(Clone, Debug, Hash, Eq, PartialEq, Ord, PartialOrd)]
pub struct MockCanisterHttpResponse {
    pub subnet_id: Principal,
    pub request_id: u64,
    pub response: CanisterHttpResponse,
    pub additional_responses: Vec<CanisterHttpResponse>,
}

/// An outcall waiting for its mocked response.
pub(crate) struct Pending {
    request: CanisterHttpRequest,
    canister: Principal,
    reply_to: ReplyTo,
    /// The attached cycles minus the fee, refunded with the response.
    refund: u128,
    transform: Option<mgmt::TransformContext>,
}

#[derive(Default)]
pub(crate) struct Outcalls {
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
}

/// What the replica rejects in a request before taking the fee (its request context checks).
fn check_request(caller: Principal, args: &mgmt::HttpRequestArgs) -> Result<(), RejectResponse> {
    if let Some(max) = args
        .max_response_bytes
        .filter(|m| *m > MAX_HTTP_RESPONSE_BYTES)
    {
        return Err(rejected(format!(
            "max_response_bytes expected to be in the range [0..{MAX_HTTP_RESPONSE_BYTES}], got {max}"
        )));
    }
    if args.url.len() > MAX_HTTP_URL_BYTES {
        return Err(rejected(format!(
            "http_request: url of {} bytes is longer than the maximum of {MAX_HTTP_URL_BYTES}",
            args.url.len()
        )));
    }
    let header_bytes = header_bytes(&args.headers);
    if args.headers.len() > MAX_HTTP_HEADERS || header_bytes > MAX_HTTP_HEADER_BYTES {
        return Err(rejected(format!(
            "http_request: {} headers of {header_bytes} bytes exceed the limits of {MAX_HTTP_HEADERS} headers and {MAX_HTTP_HEADER_BYTES} bytes",
            args.headers.len()
        )));
    }
    if let Some(t) = &args.transform {
        if t.function.0.principal != caller {
            return Err(rejected(format!(
                "http_request: the transform function must be a query of the calling canister {caller}, not of {}",
                t.function.0.principal
            )));
        }
    }
    Ok(())
}

fn header_bytes(headers: &[mgmt::HttpHeader]) -> usize {
    headers.iter().map(|h| h.name.len() + h.value.len()).sum()
}

/// The request's variable size, which its fee depends on (URL, headers, body, transform
/// name and context), as `ic0.cost_http_request` takes it.
fn request_size(args: &mgmt::HttpRequestArgs) -> u64 {
    let headers = header_bytes(&args.headers);
    let transform = args
        .transform
        .as_ref()
        .map_or(0, |t| t.function.0.method.len() + t.context.len());
    (args.url.len() + headers + args.body.as_ref().map_or(0, Vec::len) + transform) as u64
}

fn reject_code(code: u64) -> Option<RejectCode> {
    RejectCode::from_u32(u32::try_from(code).ok()?)
}

fn sys_fatal(message: String) -> RejectResponse {
    injected_reject(RejectCode::SysFatal, message)
}

impl Sim {
    /// `http_request`: validates the request, takes the fee (CANISTER_REJECT "http_request
    /// request sent with <n> cycles, but <fee> cycles are required." when too few are
    /// attached) and keeps it pending; the response goes out when a test mocks it.
    pub(crate) fn http_request(&mut self, req: &Request) -> Reply {
        let args: mgmt::HttpRequestArgs = decode(&req.arg)?;
        check_request(req.sender, &args)?;
        let max_response_bytes = args.max_response_bytes.unwrap_or(MAX_HTTP_RESPONSE_BYTES);
        let fee = costs::http_request_fee(request_size(&args), max_response_bytes);
        if req.cycles < fee {
            return Err(rejected(format!(
                "http_request request sent with {} cycles, but {fee} cycles are required.",
                req.cycles
            )));
        }
        let request_id = self.outcalls.next_id;
        self.outcalls.next_id += 1;
        let request = CanisterHttpRequest {
            subnet_id: self.subnets[self.subnet_of(&req.sender)].id,
            request_id,
            http_method: match args.method {
                mgmt::HttpMethod::GET => CanisterHttpMethod::GET,
                mgmt::HttpMethod::POST => CanisterHttpMethod::POST,
                mgmt::HttpMethod::HEAD => CanisterHttpMethod::HEAD,
            },
            url: args.url,
            headers: args
                .headers
                .into_iter()
                .map(|h| CanisterHttpHeader {
                    name: h.name,
                    value: h.value,
                })
                .collect(),
            body: args.body.unwrap_or_default(),
            max_response_bytes: args.max_response_bytes,
        };
        self.outcalls.pending.insert(
            request_id,
            Pending {
                request,
                canister: req.sender,
                reply_to: req.reply_to.clone(),
                refund: req.cycles - fee,
                transform: args.transform,
            },
        );
        Ok(None)
    }

    /// The pending outcalls, oldest first.
    pub(crate) fn canister_http_requests(&self) -> Vec<CanisterHttpRequest> {
        self.outcalls
            .pending
            .values()
            .map(|p| p.request.clone())
            .collect()
    }

    /// Answers a pending outcall: the canister receives the outcome in the next round, which
    /// runs at once (PocketIC executes a round with the response). An unknown request, a
    /// malformed mock or an unknown reject code changes nothing.
    pub(crate) fn mock_http_response(
        &mut self,
        mock: MockCanisterHttpResponse,
    ) -> Result<(), String> {
        let pending = self
            .outcalls
            .pending
            .get(&mock.request_id)
            .filter(|p| mock.subnet_id == self.subnets[self.subnet_of(&p.canister)].id)
            .ok_or_else(|| {
                format!(
                    "no pending canister http request {} on subnet {}",
                    mock.request_id, mock.subnet_id
                )
            })?;
        let others = costs::SUBNET_SIZE as usize - 1;
        if !mock.additional_responses.is_empty() && mock.additional_responses.len() != others {
            return Err(format!(
                "additional_responses must be empty or hold one response for each of the {others} other nodes, got {}",
                mock.additional_responses.len()
            ));
        }
        let responses: Vec<&CanisterHttpResponse> = std::iter::once(&mock.response)
            .chain(&mock.additional_responses)
            .collect();
        for r in &responses {
            if let CanisterHttpResponse::CanisterHttpReject(r) = r {
                if reject_code(r.reject_code).is_none() {
                    return Err(format!("invalid reject code {}", r.reject_code));
                }
            }
        }
        let (canister, transform) = (pending.canister, pending.transform.clone());
        let max = pending
            .request
            .max_response_bytes
            .unwrap_or(MAX_HTTP_RESPONSE_BYTES);
        let outcomes: Vec<_> = responses
            .into_iter()
            .map(|r| self.http_outcome(canister, transform.as_ref(), max, r))
            .collect();
        let result = agreed(mock.request_id, outcomes);
        let p = self
            .outcalls
            .pending
            .remove(&mock.request_id)
            .expect("found above");
        // The response comes from the management canister of the caller's subnet.
        self.active = self.subnet_of(&p.canister);
        self.respond(
            Principal::management_canister(),
            p.reply_to,
            result,
            p.refund,
        );
        self.induct(false);
        self.active = 0;
        self.tick();
        Ok(())
    }

    /// What a node makes of a response: a reject as mocked; a reply checked against the size
    /// limit (headers first, then the body in what the headers leave, as the adapter counts),
    /// transformed by the canister's transform query (run as a query from the management
    /// canister, on the canister's current state), and checked again after the transform.
    fn http_outcome(
        &mut self,
        canister: Principal,
        transform: Option<&mgmt::TransformContext>,
        max: u64,
        response: &CanisterHttpResponse,
    ) -> Result<Vec<u8>, RejectResponse> {
        let reply = match response {
            CanisterHttpResponse::CanisterHttpReject(r) => {
                let code = reject_code(r.reject_code).unwrap_or(RejectCode::SysFatal);
                return Err(injected_reject(code, r.message.clone()));
            }
            CanisterHttpResponse::CanisterHttpReply(reply) => reply,
        };
        let header_bytes: u64 = reply
            .headers
            .iter()
            .map(|h| (h.name.len() + h.value.len()) as u64)
            .sum();
        if header_bytes > max {
            return Err(sys_fatal(format!(
                "Header size exceeds specified response size limit {max}"
            )));
        }
        if reply.body.len() as u64 > max - header_bytes {
            return Err(sys_fatal(format!(
                "Http body exceeds size limit of {max} bytes."
            )));
        }
        let response = mgmt::HttpRequestResult {
            status: Nat::from(reply.status),
            headers: reply
                .headers
                .iter()
                .map(|h| mgmt::HttpHeader {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect(),
            body: reply.body.clone(),
        };
        let Some(t) = transform else {
            return Ok(encode(&response));
        };
        let arg = encode(&mgmt::TransformArgs {
            response,
            context: t.context.clone(),
        });
        let transformed = self.query(
            canister,
            Principal::management_canister(),
            &t.function.0.method,
            arg,
        )?;
        if transformed.len() as u64 > max {
            return Err(sys_fatal(format!(
                "Transformed http response exceeds limit: {max}"
            )));
        }
        Ok(transformed)
    }
}

/// The outcome the subnet agrees on: the only one, or one that at least 2f + 1 of the n = 3f + 1
/// nodes reached; otherwise SYS_TRANSIENT, as the replica's consensus reports it.
fn agreed(
    request_id: u64,
    outcomes: Vec<Result<Vec<u8>, RejectResponse>>,
) -> Result<Vec<u8>, RejectResponse> {
    let n = outcomes.len();
    let needed = n - (n - 1) / 3;
    for candidate in &outcomes {
        if outcomes.iter().filter(|o| *o == candidate).count() >= needed {
            return candidate.clone();
        }
    }
    Err(injected_reject(
        RejectCode::SysTransient,
        format!(
            "No consensus could be reached. Replicas had different responses. Details: request_id: {request_id}"
        ),
    ))
}
