//! Data certificates (interface spec, "Certified data"; the certificate format of
//! "Certification", "Lookup" and "Encoding of certificates"; "The system state tree" for
//! `/canister/<id>/certified_data` and `/time`): a query called as a query gets a certificate of
//! its canister's certified data, signed by the instance's root key, that an independent
//! verifier accepts; updates, replicated queries, composite query callbacks and callees get
//! none.

use candid::{decode_one, encode_one, Principal};
use ic_certification::{Certificate, LookupResult};
use ic_sim::{query_candid, update_candid, ErrorCode, IcSim, IcSimBuilder};

mod common;

/// DER prefix of the IC's BLS root key (spec, "Certificate").
const DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05,
    0x03, 0x01, 0x02, 0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03,
    0x02, 0x01, 0x03, 0x61, 0x00,
];

fn probe(pic: &IcSim) -> Principal {
    let id = pic.create_canister();
    let wasm = wasm_build::wasm("sim_probe", &["certification"]);
    pic.install_canister(id, wasm, encode_one(None::<u64>).unwrap(), None);
    id
}

/// An instance with two probes, the first one's certified data set to `data`.
fn two_probes(data: &[u8]) -> (IcSim, Principal, Principal) {
    let pic = IcSim::new();
    let (a, b) = (probe(&pic), probe(&pic));
    set_certified_data(&pic, a, data);
    (pic, a, b)
}

fn set_certified_data(pic: &IcSim, canister: Principal, data: &[u8]) {
    let () = update_candid(pic, canister, "set_certified_data", (data.to_vec(),)).unwrap();
}

fn query_certificate(pic: &IcSim, canister: Principal) -> Option<Vec<u8>> {
    let (cert,): (Option<Vec<u8>>,) = query_candid(pic, canister, "data_certificate", ()).unwrap();
    cert
}

/// Decodes a certificate and checks it as an agent does: the self-describing CBOR tag, no
/// delegation, and a BLS signature over `domain_sep("ic-state-root") · reconstruct(tree)` under
/// `root_key` (spec, "Certificate").
fn verify(cert: &[u8], root_key: &[u8]) -> Result<Certificate, String> {
    if !cert.starts_with(&[0xd9, 0xd9, 0xf7]) {
        return Err("no self-describing CBOR tag".into());
    }
    let cert: Certificate = serde_cbor::from_slice(cert).map_err(|e| e.to_string())?;
    if cert.delegation.is_some() {
        return Err("unexpected delegation".into());
    }
    let key = root_key
        .strip_prefix(&DER_PREFIX[..])
        .ok_or("root key is not a DER-encoded BLS key")?;
    let mut message = b"\x0Dic-state-root".to_vec();
    message.extend_from_slice(&cert.tree.digest());
    ic_verify_bls_signature::verify_bls_signature(&cert.signature, &message, key)
        .map_err(|()| "signature does not verify".to_string())?;
    Ok(cert)
}

fn lookup<'a>(cert: &'a Certificate, path: &[&[u8]]) -> LookupResult<'a> {
    cert.tree.lookup_path(path.iter().copied())
}

fn leb128(bytes: &[u8]) -> u64 {
    leb128::read::unsigned(&mut &bytes[..]).unwrap()
}

/// Spec, "Certified data": the certificate a query gets verifies under the instance's root key
/// and holds, at `/canister/<id>/certified_data`, what the last update set, and at `/time` the
/// time of the state it certifies.
#[test]
fn a_query_gets_a_verifiable_certificate_of_the_certified_data() {
    let (pic, a, b) = two_probes(&[7; 32]);
    set_certified_data(&pic, b, b"other canister");
    let root_key = pic.root_key().expect("the simulator has a root key");

    let bytes = query_certificate(&pic, a).expect("a query call gets a certificate");
    let cert = verify(&bytes, &root_key).unwrap();
    let cd = lookup(&cert, &[b"canister", a.as_slice(), b"certified_data"]);
    assert_eq!(cd, LookupResult::Found(&[7; 32]));
    let LookupResult::Found(time) = lookup(&cert, &[b"time"]) else {
        panic!("no /time in the certificate");
    };
    assert_eq!(leb128(time), pic.get_time().as_nanos_since_unix_epoch());
    // Only the canister's own path is revealed; the other canister is pruned.
    let other = lookup(&cert, &[b"canister", b.as_slice(), b"certified_data"]);
    assert_eq!(other, LookupResult::Unknown);

    // Both canisters' certificates certify the same state: the same root hash.
    let cert_b = verify(&query_certificate(&pic, b).unwrap(), &root_key).unwrap();
    assert_eq!(cert_b.tree.digest(), cert.tree.digest());
    let cd = lookup(&cert_b, &[b"canister", b.as_slice(), b"certified_data"]);
    assert_eq!(cd, LookupResult::Found(b"other canister"));

    // A new value is certified once an update set it.
    set_certified_data(&pic, a, b"v2");
    let cert = verify(&query_certificate(&pic, a).unwrap(), &root_key).unwrap();
    let cd = lookup(&cert, &[b"canister", a.as_slice(), b"certified_data"]);
    assert_eq!(cd, LookupResult::Found(b"v2"));
}

/// The verifier is not a formality: a certificate whose tree was altered, or checked against
/// another instance's key, does not verify.
#[test]
fn an_altered_certificate_or_another_key_fails_verification() {
    let pic = IcSim::new();
    let a = probe(&pic);
    set_certified_data(&pic, a, b"genuine");
    let bytes = query_certificate(&pic, a).unwrap();
    let root_key = pic.root_key().unwrap();
    verify(&bytes, &root_key).unwrap();

    let at = bytes
        .windows(7)
        .position(|w| w == b"genuine")
        .expect("the leaf is in the CBOR");
    let mut forged = bytes.clone();
    forged[at..at + 7].copy_from_slice(b"forgery");
    assert_eq!(
        verify(&forged, &root_key).unwrap_err(),
        "signature does not verify"
    );

    let other = IcSim::new().root_key().unwrap();
    assert_eq!(
        verify(&bytes, &other).unwrap_err(),
        "signature does not verify"
    );
}

/// Spec, "Certified data": `ic0.data_certificate_present` is 0 in update methods and in a query
/// method executed in replicated mode (called by another canister from an update).
#[test]
fn updates_and_replicated_queries_get_no_certificate() {
    let (pic, a, b) = two_probes(b"x");
    let (cert,): (Option<Vec<u8>>,) =
        update_candid(&pic, a, "data_certificate_in_update", ()).unwrap();
    assert_eq!(cert, None);
    let reply = common::call_raw(&pic, b, a, "data_certificate", encode_one(()).unwrap(), 0)
        .expect("the replicated query replies");
    assert_eq!(decode_one::<Option<Vec<u8>>>(&reply).unwrap(), None);
    // The query method called with an update call (ingress) runs replicated: none either.
    let (cert,): (Option<Vec<u8>>,) = update_candid(&pic, a, "data_certificate", ()).unwrap();
    assert_eq!(cert, None);
}

/// Spec, "Certified data": the certificate is present in the composite query a query call
/// targets, absent in its callbacks and in the methods of the canisters it calls.
#[test]
fn a_composite_query_target_has_a_certificate_its_callee_and_callback_do_not() {
    let (pic, a, b) = two_probes(b"composite");
    type Seen = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);
    let (before, callee, callback): Seen =
        query_candid(&pic, a, "certificates_in_composite", (b,)).unwrap();
    let cert = verify(
        &before.expect("the target has one"),
        &pic.root_key().unwrap(),
    )
    .unwrap();
    let cd = lookup(&cert, &[b"canister", a.as_slice(), b"certified_data"]);
    assert_eq!(cd, LookupResult::Found(b"composite"));
    assert_eq!(callee, None, "a callee of a composite query has none");
    assert_eq!(callback, None, "a composite query callback has none");
}

/// Spec, "Certified data": `ic0.root_key_copy` gives the instance's DER-encoded root key in
/// replicated mode and traps in non-replicated mode.
#[test]
fn canisters_read_the_instance_root_key_in_replicated_mode_only() {
    let pic = IcSim::new();
    let a = probe(&pic);
    let (key,): (Vec<u8>,) = update_candid(&pic, a, "root_key", ()).unwrap();
    assert_eq!(Some(key.clone()), pic.root_key());
    assert_eq!(key.len(), 133);
    assert!(key.starts_with(&DER_PREFIX));
    let err = query_candid::<_, (Vec<u8>,)>(&pic, a, "root_key_in_query", ()).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterContractViolation);
    assert!(err.reject_message.contains("root_key_size"), "{err}");
}

/// Each instance has its own root key, so certificates of one never verify under another's;
/// a seed makes an instance's key reproducible.
#[test]
fn instances_have_their_own_root_keys_and_a_seed_reproduces_one() {
    let one = IcSim::new().root_key().unwrap();
    let two = IcSim::new().root_key().unwrap();
    assert_ne!(one, two);
    let seeded = |seed| {
        IcSimBuilder::new()
            .with_root_key_seed(seed)
            .build()
            .root_key()
    };
    assert_eq!(seeded([1; 32]), seeded([1; 32]));
    assert_ne!(seeded([1; 32]), seeded([2; 32]));
}

/// Spec, "Certified data": a reinstalled canister's certified data is the empty blob again, and
/// its certificate reveals that empty blob.
#[test]
fn a_reinstalled_canister_certifies_the_empty_blob() {
    let (pic, a, _) = two_probes(b"before reinstall");
    let wasm = wasm_build::wasm("sim_probe", &["certification"]);
    pic.reinstall_canister(a, wasm, encode_one(None::<u64>).unwrap(), None)
        .unwrap();
    let cert = verify(
        &query_certificate(&pic, a).unwrap(),
        &pic.root_key().unwrap(),
    )
    .unwrap();
    let cd = lookup(&cert, &[b"canister", a.as_slice(), b"certified_data"]);
    assert_eq!(cd, LookupResult::Found(b""));
}
