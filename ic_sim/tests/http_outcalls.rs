//! HTTP outcalls (interface spec, "IC method http_request") with PocketIC's mocking: a
//! canister's request is listed by `get_canister_http` and answered by
//! `mock_canister_http_response`.

mod common;

use candid::{decode_one, encode_one, Nat, Principal};
use common::{install, CallResult};
use ic_sim::common::rest::{
    CanisterHttpHeader, CanisterHttpMethod, CanisterHttpReject, CanisterHttpReply,
    CanisterHttpRequest, CanisterHttpResponse, MockCanisterHttpResponse,
};
use ic_sim::management_canister::{
    HttpHeader, HttpMethod, HttpRequestArgs, HttpRequestResult, TransformContext, TransformFunc,
};
use ic_sim::{IcSim, RawMessageId};

type Outcome = Result<HttpRequestResult, (u32, String)>;

/// More than any execution and call fee of the probe's messages.
const MESSAGE_COSTS: u128 = 1_000_000_000;

fn args(probe: Principal, transform: Option<&[u8]>) -> HttpRequestArgs {
    HttpRequestArgs {
        url: "https://example.com/data".into(),
        max_response_bytes: Some(1_000),
        method: HttpMethod::GET,
        headers: vec![HttpHeader {
            name: "accept".into(),
            value: "text/plain".into(),
        }],
        body: None,
        transform: transform.map(|context| TransformContext {
            function: TransformFunc(candid::Func {
                principal: probe,
                method: "transform".into(),
            }),
            context: context.to_vec(),
        }),
        is_replicated: None,
    }
}

/// The probe starts the outcall; two rounds later (the call to the management canister goes
/// through message routing) it is pending.
fn start(
    pic: &IcSim,
    probe: Principal,
    args: &HttpRequestArgs,
) -> (RawMessageId, CanisterHttpRequest) {
    let id = pic
        .submit_call(
            probe,
            Principal::anonymous(),
            "http_outcall",
            encode_one(args).unwrap(),
        )
        .unwrap();
    pic.tick();
    pic.tick();
    let pending = pic.get_canister_http();
    assert_eq!(pending.len(), 1, "{pending:?}");
    (id, pending[0].clone())
}

fn outcome(pic: &IcSim, id: RawMessageId) -> Outcome {
    decode_one(&pic.await_call(id).unwrap()).unwrap()
}

fn reply(status: u16, headers: &[(&str, &str)], body: &[u8]) -> CanisterHttpResponse {
    CanisterHttpResponse::CanisterHttpReply(CanisterHttpReply {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| CanisterHttpHeader {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        body: body.to_vec(),
    })
}

fn mock(request: &CanisterHttpRequest, response: CanisterHttpResponse) -> MockCanisterHttpResponse {
    MockCanisterHttpResponse {
        subnet_id: request.subnet_id,
        request_id: request.request_id,
        response,
        additional_responses: vec![],
    }
}

/// A canister's `http_request` is listed with its method, URL, headers, body and
/// `max_response_bytes`, under the canister's subnet; nothing is listed before.
#[test]
fn an_outcall_is_listed_as_requested() {
    let pic = IcSim::new();
    let probe = install(&pic);
    assert!(pic.get_canister_http().is_empty());
    let mut a = args(probe, None);
    a.method = HttpMethod::POST;
    a.body = Some(b"{\"q\":1}".to_vec());
    let (_, request) = start(&pic, probe, &a);
    assert_eq!(
        request,
        CanisterHttpRequest {
            subnet_id: pic.get_subnet(probe).unwrap(),
            request_id: request.request_id,
            http_method: CanisterHttpMethod::POST,
            url: "https://example.com/data".into(),
            headers: vec![CanisterHttpHeader {
                name: "accept".into(),
                value: "text/plain".into(),
            }],
            body: b"{\"q\":1}".to_vec(),
            max_response_bytes: Some(1_000),
        }
    );
}

/// A mocked reply reaches the canister through its transform, called with the response and
/// the request's context (spec, "IC method http_request": the transform function); without a
/// transform the reply arrives as mocked. Answered outcalls are no longer listed.
#[test]
fn a_mocked_reply_reaches_the_canister_transformed() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let (id, request) = start(&pic, probe, &args(probe, Some(b"+ctx")));
    pic.mock_canister_http_response(mock(&request, reply(200, &[("date", "now")], b"hello")));
    assert!(pic.get_canister_http().is_empty());
    let result = outcome(&pic, id).unwrap();
    assert_eq!(result.status, Nat::from(200u16));
    assert!(result.headers.is_empty(), "the transform drops headers");
    assert_eq!(result.body, b"hello+ctx");

    let (id, request) = start(&pic, probe, &args(probe, None));
    pic.mock_canister_http_response(mock(&request, reply(404, &[("date", "now")], b"gone")));
    let result = outcome(&pic, id).unwrap();
    assert_eq!(result.status, Nat::from(404u16));
    assert_eq!(result.headers.len(), 1);
    assert_eq!(result.body, b"gone");
}

/// A mocked reject reaches the canister as a reject with its code and message.
#[test]
fn a_mocked_reject_reaches_the_canister_as_a_reject() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let (id, request) = start(&pic, probe, &args(probe, Some(b"")));
    let reject = CanisterHttpResponse::CanisterHttpReject(CanisterHttpReject {
        reject_code: 2,
        message: "Connection refused".into(),
    });
    pic.mock_canister_http_response(mock(&request, reject));
    assert_eq!(
        outcome(&pic, id).unwrap_err(),
        (2, "Connection refused".to_string())
    );
}

/// A response larger than `max_response_bytes` is rejected with SYS_FATAL as the replica's
/// adapter rejects it: headers count first, the body gets what they leave; the transformed
/// response is held to the same limit. A transform that traps rejects the outcall.
#[test]
fn oversize_responses_and_failing_transforms_are_rejected() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let mut small = args(probe, None);
    small.max_response_bytes = Some(10);
    let (id, request) = start(&pic, probe, &small);
    pic.mock_canister_http_response(mock(&request, reply(200, &[], b"12345678901")));
    assert_eq!(
        outcome(&pic, id).unwrap_err(),
        (1, "Http body exceeds size limit of 10 bytes.".to_string())
    );

    // 6 bytes of headers leave 4 for the body.
    let (id, request) = start(&pic, probe, &small);
    pic.mock_canister_http_response(mock(&request, reply(200, &[("abc", "def")], b"12345")));
    assert_eq!(outcome(&pic, id).unwrap_err().0, 1);

    // The body fits, but the transform's candid-encoded result does not.
    small.transform = args(probe, Some(b"")).transform;
    let (id, request) = start(&pic, probe, &small);
    pic.mock_canister_http_response(mock(&request, reply(200, &[], b"1234")));
    assert_eq!(
        outcome(&pic, id).unwrap_err(),
        (1, "Transformed http response exceeds limit: 10".to_string())
    );

    let (id, request) = start(&pic, probe, &args(probe, Some(b"trap")));
    pic.mock_canister_http_response(mock(&request, reply(200, &[], b"ok")));
    let (code, message) = outcome(&pic, id).unwrap_err();
    assert_eq!(code, 5);
    assert!(message.contains("transform refuses"), "{message}");
}

/// With the responses of all 13 nodes mocked, the canister gets the outcome that at least 9
/// (2f + 1) nodes agree on after the transform; without such a majority, SYS_TRANSIENT.
#[test]
fn nodes_must_agree_on_the_transformed_response() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let (id, request) = start(&pic, probe, &args(probe, Some(b"")));
    let mut m = mock(&request, reply(200, &[("date", "0")], b"same"));
    // Headers differ but the transform drops them; 4 nodes saw another body.
    m.additional_responses = (0..12)
        .map(|i| {
            let body: &[u8] = if i < 8 { b"same" } else { b"other" };
            reply(200, &[("date", &i.to_string())], body)
        })
        .collect();
    pic.mock_canister_http_response(m);
    assert_eq!(outcome(&pic, id).unwrap().body, b"same");

    let (id, request) = start(&pic, probe, &args(probe, Some(b"")));
    let mut m = mock(&request, reply(200, &[], b"0"));
    m.additional_responses = (1..13)
        .map(|i| reply(200, &[], i.to_string().as_bytes()))
        .collect();
    pic.mock_canister_http_response(m);
    let (code, message) = outcome(&pic, id).unwrap_err();
    assert_eq!(code, 2);
    assert!(
        message.starts_with("No consensus could be reached."),
        "{message}"
    );
}

/// A mock for no pending request, or with a wrong number of node responses, is refused and
/// changes nothing: the outcall stays pending.
#[test]
fn malformed_mocks_change_nothing() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let (_, request) = start(&pic, probe, &args(probe, None));
    let mut wrong = mock(&request, reply(200, &[], b""));
    wrong.request_id += 1;
    assert!(pic.try_mock_canister_http_response(wrong).is_err());
    let mut wrong = mock(&request, reply(200, &[], b""));
    wrong.additional_responses = vec![reply(200, &[], b"")];
    assert!(pic.try_mock_canister_http_response(wrong).is_err());
    let mut wrong = mock(&request, reply(200, &[], b""));
    wrong.response = CanisterHttpResponse::CanisterHttpReject(CanisterHttpReject {
        reject_code: 9,
        message: String::new(),
    });
    assert!(pic.try_mock_canister_http_response(wrong).is_err());
    assert_eq!(pic.get_canister_http(), vec![request]);
}

/// The fee of the 13-node subnet for a request of `request_size` bytes (IC documentation,
/// "Cycles cost formulas": HTTPS outcalls).
fn fee(request_size: u128, max_response_bytes: u128) -> u128 {
    (3_000_000 + 60_000 * 13) * 13 + 400 * 13 * request_size + 800 * 13 * max_response_bytes
}

/// The call must carry the fee (spec, "IC method http_request"): too few cycles are rejected
/// with the replica's message and come back, nothing is pending; otherwise the fee is taken
/// and the rest refunded with the response. `max_response_bytes` above 2MB is rejected.
#[test]
fn the_fee_is_taken_and_the_rest_refunded() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let a = args(probe, None);
    let required = fee(
        (a.url.len() + "accept".len() + "text/plain".len()) as u128,
        1_000,
    );
    let raw = |cycles: u128| {
        pic.submit_call(
            probe,
            Principal::anonymous(),
            "call_raw",
            candid::encode_args((
                Principal::management_canister(),
                "http_request".to_string(),
                encode_one(&a).unwrap(),
                cycles,
            ))
            .unwrap(),
        )
        .unwrap()
    };
    let before = pic.cycle_balance(probe);
    let id = raw(required - 1);
    let r: CallResult = decode_one(&pic.await_call(id).unwrap()).unwrap();
    assert_eq!(
        r.unwrap_err(),
        (
            4,
            format!(
                "http_request request sent with {} cycles, but {required} cycles are required.",
                required - 1
            )
        )
    );
    assert!(pic.get_canister_http().is_empty());
    let after_reject = pic.cycle_balance(probe);
    assert!(before - after_reject < MESSAGE_COSTS);

    let id = raw(required + 7_000_000_000_000);
    pic.tick();
    pic.tick();
    let request = pic.get_canister_http().pop().unwrap();
    pic.mock_canister_http_response(mock(&request, reply(200, &[], b"ok")));
    let r: CallResult = decode_one(&pic.await_call(id).unwrap()).unwrap();
    r.unwrap();
    let spent = after_reject - pic.cycle_balance(probe);
    assert!(
        (required..required + MESSAGE_COSTS).contains(&spent),
        "spent {spent}, fee {required}"
    );

    let mut big = args(probe, None);
    big.max_response_bytes = Some(2_000_001);
    let id = pic
        .submit_call(
            probe,
            Principal::anonymous(),
            "http_outcall",
            encode_one(&big).unwrap(),
        )
        .unwrap();
    let (code, message) = outcome(&pic, id).unwrap_err();
    assert_eq!(code, 4);
    assert_eq!(
        message,
        "max_response_bytes expected to be in the range [0..2000000], got 2000001"
    );
}
