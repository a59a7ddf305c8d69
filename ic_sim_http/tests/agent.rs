//! ic-agent against the server: status and root key, synchronous calls to the management
//! canister signed by each supported scheme, read_state of time, request status, module hash
//! and controllers (certificates verified by the agent against the served root key), signed
//! query responses, and requests the server must refuse.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use candid::{decode_one, encode_one, Principal};
use ic_agent::identity::{BasicIdentity, Prime256v1Identity, Secp256k1Identity};
use ic_agent::{Agent, AgentError, Identity};
use ic_sim::management_canister::{
    CanisterIdRecord, CanisterInstallMode, InstallCodeArgs, ProvisionalCreateCanisterWithCyclesArgs,
};
use ic_sim::IcSim;
use ic_sim_http::{ServeConfig, ServerHandle};
use sha2::{Digest, Sha256};

/// The smallest valid wasm module: the magic and the version.
const EMPTY_WASM: &[u8] = b"\0asm\x01\0\0\0";

fn serve() -> ServerHandle {
    let (handle, ()) =
        ic_sim_http::start(ServeConfig::default(), || Ok((Rc::new(IcSim::new()), ())))
            .expect("the server starts");
    handle
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn agent(rt: &tokio::runtime::Runtime, url: &str, identity: Arc<dyn Identity>) -> Agent {
    let agent = Agent::builder()
        .with_url(url)
        .with_arc_identity(identity)
        .with_max_polling_time(Duration::from_secs(20))
        .build()
        .unwrap();
    rt.block_on(agent.fetch_root_key()).unwrap();
    agent
}

/// A server, a runtime and an agent with an Ed25519 identity.
fn world() -> (ServerHandle, tokio::runtime::Runtime, Agent) {
    let server = serve();
    let rt = runtime();
    let agent = agent(
        &rt,
        server.url(),
        Arc::new(BasicIdentity::from_raw_key(&[5; 32])),
    );
    (server, rt, agent)
}

fn status_arg(canister: Principal) -> Vec<u8> {
    encode_one(CanisterIdRecord {
        canister_id: canister,
    })
    .unwrap()
}

fn identities() -> Vec<Arc<dyn Identity>> {
    vec![
        Arc::new(BasicIdentity::from_raw_key(&[5; 32])),
        Arc::new(Secp256k1Identity::from_private_key(
            k256::SecretKey::from_slice(&[6; 32]).unwrap(),
        )),
        Arc::new(Prime256v1Identity::from_private_key(
            p256::SecretKey::from_slice(&[7; 32]).unwrap(),
        )),
    ]
}

/// Creates a canister controlled by the agent's identity, through a synchronous call.
fn create_canister(rt: &tokio::runtime::Runtime, agent: &Agent) -> Principal {
    let arg = ProvisionalCreateCanisterWithCyclesArgs {
        amount: Some(candid::Nat::from(10_000_000_000_000u64)),
        settings: None,
        specified_id: None,
        sender_canister_version: None,
    };
    let reply = rt
        .block_on(
            agent
                .update(
                    &Principal::management_canister(),
                    "provisional_create_canister_with_cycles",
                )
                .with_effective_canister_id(Principal::management_canister())
                .with_arg(encode_one(arg).unwrap())
                .call_and_wait(),
        )
        .expect("the creation is certified as replied");
    decode_one::<CanisterIdRecord>(&reply).unwrap().canister_id
}

fn install(rt: &tokio::runtime::Runtime, agent: &Agent, canister: Principal) {
    let arg = InstallCodeArgs {
        mode: CanisterInstallMode::Install,
        canister_id: canister,
        wasm_module: EMPTY_WASM.to_vec(),
        arg: Vec::new(),
        sender_canister_version: None,
    };
    rt.block_on(
        agent
            .update(&Principal::management_canister(), "install_code")
            .with_effective_canister_id(canister)
            .with_arg(encode_one(arg).unwrap())
            .call_and_wait(),
    )
    .expect("install_code is certified as replied");
}

#[test]
fn status_serves_the_root_key_certificates_verify_under() {
    let (server, rt, agent) = world();
    assert_eq!(agent.read_root_key(), server.root_key());
    // A read_state of /time: the agent verifies the certificate against the root key and
    // refuses one older than its ingress expiry, so live time must follow the wall clock.
    let canister = create_canister(&rt, &agent);
    let cert = rt
        .block_on(agent.read_state_raw(vec![vec!["time".into()]], canister))
        .expect("a certificate the agent verified");
    assert!(matches!(
        cert.tree.lookup_path([b"time"]),
        ic_certification::LookupResult::Found(_)
    ));
    server.stop();
}

#[test]
fn each_scheme_creates_installs_and_reads_its_canister() {
    let server = serve();
    let rt = runtime();
    for identity in identities() {
        let sender = identity.sender().unwrap();
        let agent = agent(&rt, server.url(), identity);
        let canister = create_canister(&rt, &agent);
        install(&rt, &agent, canister);
        let hash = rt
            .block_on(agent.read_state_canister_module_hash(canister))
            .expect("the module hash, certified");
        assert_eq!(hash, Sha256::digest(EMPTY_WASM).to_vec());
        let controllers = rt
            .block_on(agent.read_state_canister_controllers(canister))
            .expect("the controllers, certified");
        assert_eq!(controllers, vec![sender]);
    }
    server.stop();
}

#[test]
fn request_status_is_readable_by_its_sender_only() {
    let (server, rt, alice) = world();
    let bob = agent(
        &rt,
        server.url(),
        Arc::new(BasicIdentity::from_raw_key(&[8; 32])),
    );
    let canister = create_canister(&rt, &alice);
    let arg = status_arg(canister);
    let signed = alice
        .update(&Principal::management_canister(), "canister_status")
        .with_effective_canister_id(canister)
        .with_arg(arg)
        .sign()
        .unwrap();
    rt.block_on(alice.update_signed(canister, signed.signed_update))
        .expect("canister_status replied");
    let (status, _) = rt
        .block_on(alice.request_status_raw(&signed.request_id, canister))
        .expect("the request status, certified");
    assert!(matches!(
        status,
        ic_agent::agent::RequestStatusResponse::Replied(_)
    ));
    let refused = rt.block_on(bob.request_status_raw(&signed.request_id, canister));
    assert!(
        matches!(refused, Err(AgentError::HttpError(ref e)) if e.status == 403),
        "{refused:?}"
    );
    // A request id nobody sent is proven absent: its status is unknown.
    let (unknown, _) = rt
        .block_on(alice.request_status_raw(&ic_agent::RequestId::new(&[9; 32]), canister))
        .expect("an absence proof");
    assert_eq!(unknown, ic_agent::agent::RequestStatusResponse::Unknown);
    server.stop();
}

#[test]
fn query_responses_are_signed_by_the_node() {
    let (server, rt, agent) = world();
    let canister = create_canister(&rt, &agent);
    install(&rt, &agent, canister);
    // The module exports no method: the reject comes back signed (an unsigned or badly
    // signed response would fail with a signature error instead).
    let rejected = rt.block_on(agent.query(&canister, "missing").with_arg(vec![]).call());
    assert!(
        matches!(rejected, Err(AgentError::UncertifiedReject { .. })),
        "{rejected:?}"
    );
    server.stop();
}

#[test]
fn expired_and_unsigned_requests_are_refused() {
    let (server, rt, agent) = world();
    let canister = create_canister(&rt, &agent);
    let arg = status_arg(canister);
    let expired = rt.block_on(
        agent
            .update(&Principal::management_canister(), "canister_status")
            .with_effective_canister_id(canister)
            .with_arg(arg.clone())
            .expire_at(SystemTime::now() - Duration::from_secs(60))
            .call_and_wait(),
    );
    assert!(
        matches!(expired, Err(AgentError::HttpError(ref e)) if e.status == 400),
        "{expired:?}"
    );
    // A signed request whose signature was replaced.
    let mut signed = agent
        .update(&Principal::management_canister(), "canister_status")
        .with_effective_canister_id(canister)
        .with_arg(arg)
        .sign()
        .unwrap();
    let mut envelope: ic_transport_types::Envelope<'_> =
        serde_cbor::from_slice(&signed.signed_update).unwrap();
    envelope.sender_sig = Some(vec![0; 64]);
    signed.signed_update = envelope.encode_bytes();
    let forged = rt.block_on(agent.update_signed(canister, signed.signed_update));
    assert!(
        matches!(forged, Err(AgentError::HttpError(ref e)) if e.status == 400),
        "{forged:?}"
    );
    server.stop();
}

#[test]
fn subnet_scoped_endpoints_create_canisters_and_describe_the_subnet() {
    let (server, rt, agent) = world();
    // With no delegation, the root subnet's id is the self-authenticating id of the root key.
    let subnet = Principal::self_authenticating(server.root_key());
    let info = rt
        .block_on(agent.fetch_subnet_by_id(&subnet))
        .expect("/subnet and /canister_ranges, certified for the subnet");
    assert_eq!(info.iter_nodes().count(), 1);
    let created = |effective: ic_agent::agent::EffectiveId| {
        let arg = ProvisionalCreateCanisterWithCyclesArgs {
            amount: None,
            settings: None,
            specified_id: None,
            sender_canister_version: None,
        };
        let signed = agent
            .update(
                &Principal::management_canister(),
                "provisional_create_canister_with_cycles",
            )
            .with_arg(encode_one(arg).unwrap())
            .sign()
            .unwrap();
        rt.block_on(agent.update_signed(effective, signed.signed_update))
    };
    let reply = created(ic_agent::agent::EffectiveId::Subnet(subnet));
    let Ok(ic_agent::agent::CallResponse::Response(bytes)) = reply else {
        panic!("a certified reply at /api/v4/subnet/{subnet}/call: {reply:?}");
    };
    let canister = decode_one::<CanisterIdRecord>(&bytes).unwrap().canister_id;
    assert!(info.contains_canister(&canister));
    // Another subnet's id is refused.
    let elsewhere = Principal::self_authenticating([1; 44]);
    let refused = created(ic_agent::agent::EffectiveId::Subnet(elsewhere));
    assert!(
        matches!(refused, Err(AgentError::HttpError(ref e)) if e.status == 400),
        "{refused:?}"
    );
    server.stop();
}
