//! Threshold signatures of the management canister (interface spec, "IC method
//! ecdsa_public_key", "IC method sign_with_ecdsa", "IC method schnorr_public_key", "IC method
//! sign_with_schnorr"), called from `sim_probe` and verified here with k256 and ed25519-dalek.

mod common;

use candid::{encode_one, Principal};
use common::{call_raw, install, CallResult};
use ic_sim::management_canister::{
    Bip341, EcdsaCurve, EcdsaKeyId, EcdsaPublicKeyArgs, SchnorrAlgorithm, SchnorrAux,
    SignWithEcdsaArgs,
};
use ic_sim::{update_candid, IcSim};
use k256::elliptic_curve::ops::Reduce;
use k256::elliptic_curve::point::AffineCoordinates;
use sha2::{Digest, Sha256};

/// The signature fee of a 13-node subnet (IC documentation, "Cycles cost formulas").
const SIGNATURE_FEE: u128 = 26_153_846_153;
/// More than any execution and call fee of the probe's messages, far less than the fee.
const MESSAGE_COSTS: u128 = 1_000_000_000;

type Signed = Result<(Vec<u8>, Vec<u8>, Vec<u8>), (u32, String)>;

fn ecdsa(pic: &IcSim, canister: Principal, key: &str, path: &[&[u8]], hash: &[u8]) -> Signed {
    let path: Vec<Vec<u8>> = path.iter().map(|p| p.to_vec()).collect();
    let (r,): (Signed,) = update_candid(
        pic,
        canister,
        "ecdsa_sign",
        (key.to_string(), path, hash.to_vec()),
    )
    .unwrap();
    r
}

fn schnorr(
    pic: &IcSim,
    canister: Principal,
    algorithm: SchnorrAlgorithm,
    path: &[&[u8]],
    message: &[u8],
    aux: Option<SchnorrAux>,
) -> Signed {
    let path: Vec<Vec<u8>> = path.iter().map(|p| p.to_vec()).collect();
    let (r,): (Signed,) = update_candid(
        pic,
        canister,
        "schnorr_sign",
        (
            algorithm,
            "test_key_1".to_string(),
            path,
            message.to_vec(),
            aux,
        ),
    )
    .unwrap();
    r
}

fn verify_ecdsa(public_key: &[u8], hash: &[u8], signature: &[u8]) -> bool {
    use k256::ecdsa::signature::hazmat::PrehashVerifier;
    let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).unwrap();
    let sig = k256::ecdsa::Signature::from_slice(signature).unwrap();
    key.verify_prehash(hash, &sig).is_ok()
}

fn verify_bip340(x_only: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let key = k256::schnorr::VerifyingKey::from_bytes(x_only).unwrap();
    let sig = k256::schnorr::Signature::try_from(signature).unwrap();
    key.verify_raw(message, &sig).is_ok()
}

/// `sign_with_ecdsa` returns a 64-byte signature that verifies under the public key
/// `ecdsa_public_key` returns for the same canister, path and key (spec, "IC method
/// sign_with_ecdsa"), for each of PocketIC's key names, with a 32-byte chain code; the keys
/// differ by name and the signature fails for another message.
#[test]
fn ecdsa_signature_verifies_under_the_returned_public_key() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let hash = Sha256::digest(b"hello").to_vec();
    let mut keys = Vec::new();
    for name in ["dfx_test_key", "test_key_1", "key_1"] {
        let (public_key, chain_code, signature) =
            ecdsa(&pic, probe, name, &[b"user", b"7"], &hash).unwrap();
        assert_eq!(public_key.len(), 33, "SEC1 compressed");
        assert_eq!(chain_code.len(), 32);
        assert_eq!(signature.len(), 64);
        assert!(verify_ecdsa(&public_key, &hash, &signature), "{name}");
        let other = Sha256::digest(b"other");
        assert!(!verify_ecdsa(&public_key, &other, &signature));
        keys.push(public_key);
    }
    keys.dedup();
    assert_eq!(keys.len(), 3, "each key name is its own key");
}

/// Keys are derived per canister and derivation path (spec, "IC method ecdsa_public_key"):
/// another path or another canister gets another key and chain code, the same ones get the
/// same key again, and `canister_id` names whose key to derive.
#[test]
fn keys_differ_by_canister_and_derivation_path() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    let hash = [7u8; 32];
    let (a1, a1_chain, _) = ecdsa(&pic, a, "key_1", &[b"one"], &hash).unwrap();
    let (a1_again, _, _) = ecdsa(&pic, a, "key_1", &[b"one"], &hash).unwrap();
    let (a2, a2_chain, _) = ecdsa(&pic, a, "key_1", &[b"two"], &hash).unwrap();
    let (b1, _, _) = ecdsa(&pic, b, "key_1", &[b"one"], &hash).unwrap();
    // Path elements are kept apart: ["on", "e"] is not ["one"].
    let (split, _, _) = ecdsa(&pic, a, "key_1", &[b"on", b"e"], &hash).unwrap();
    assert_eq!(a1, a1_again);
    assert_ne!(a1, a2);
    assert_ne!(a1_chain, a2_chain);
    assert_ne!(a1, b1);
    assert_ne!(a1, split);

    // b asks for a's key by canister id.
    let arg = encode_one(EcdsaPublicKeyArgs {
        canister_id: Some(a),
        derivation_path: vec![b"one".to_vec()],
        key_id: EcdsaKeyId {
            curve: EcdsaCurve::Secp256k1,
            name: "key_1".into(),
        },
    })
    .unwrap();
    let reply = call_raw(
        &pic,
        b,
        Principal::management_canister(),
        "ecdsa_public_key",
        arg,
        0,
    )
    .unwrap();
    let result: ic_sim::management_canister::EcdsaPublicKeyResult =
        candid::decode_one(&reply).unwrap();
    assert_eq!(result.public_key, a1);
}

/// `sign_with_schnorr` with bip340secp256k1 signs messages of any length with a BIP340
/// signature that verifies under the x coordinate of the returned key; with ed25519 it returns
/// an Ed25519 signature under a 32-byte key (spec, "IC method sign_with_schnorr").
#[test]
fn schnorr_signatures_verify_for_both_algorithms() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let message = b"a message that is longer than thirty-two bytes, as BIP340 allows";
    let (key, _, sig) = schnorr(
        &pic,
        probe,
        SchnorrAlgorithm::Bip340secp256k1,
        &[b"p"],
        message,
        None,
    )
    .unwrap();
    assert_eq!((key.len(), sig.len()), (33, 64));
    assert!(verify_bip340(&key[1..], message, &sig));
    assert!(!verify_bip340(&key[1..], b"tampered", &sig));

    let (key, _, sig) = schnorr(
        &pic,
        probe,
        SchnorrAlgorithm::Ed25519,
        &[b"p"],
        message,
        None,
    )
    .unwrap();
    assert_eq!((key.len(), sig.len()), (32, 64));
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key[..].try_into().unwrap()).unwrap();
    let sig = ed25519_dalek::Signature::from_slice(&sig).unwrap();
    assert!(key.verify_strict(message, &sig).is_ok());
    assert!(key.verify_strict(b"tampered", &sig).is_err());
}

/// With the `bip341` aux input, a BIP340 signature is made with the taproot output key: the
/// returned key tweaked by `H_TapTweak(P || merkle_root_hash)` (spec, "IC method
/// sign_with_schnorr", BIP341); it does not verify under the untweaked key.
#[test]
fn bip341_aux_signs_with_the_taproot_tweaked_key() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let message = b"spend";
    let root = [9u8; 32];
    let aux = SchnorrAux::Bip341(Bip341 {
        merkle_root_hash: root.to_vec(),
    });
    let (key, _, sig) = schnorr(
        &pic,
        probe,
        SchnorrAlgorithm::Bip340secp256k1,
        &[],
        message,
        Some(aux),
    )
    .unwrap();
    let internal = k256::schnorr::VerifyingKey::from_bytes(&key[1..]).unwrap();
    let tag = Sha256::digest(b"TapTweak");
    let t = Sha256::new()
        .chain_update(tag)
        .chain_update(tag)
        .chain_update(&key[1..])
        .chain_update(root)
        .finalize();
    let t = <k256::Scalar as Reduce<k256::U256>>::reduce_bytes(&t);
    let output = (k256::ProjectivePoint::from(*internal.as_affine())
        + k256::ProjectivePoint::GENERATOR * t)
        .to_affine();
    assert!(verify_bip340(&output.x(), message, &sig));
    assert!(!verify_bip340(&key[1..], message, &sig));

    // Ed25519 takes no aux input.
    let aux = SchnorrAux::Bip341(Bip341 {
        merkle_root_hash: vec![],
    });
    let err = schnorr(
        &pic,
        probe,
        SchnorrAlgorithm::Ed25519,
        &[],
        message,
        Some(aux),
    );
    assert!(err.unwrap_err().1.contains("aux"));
}

fn sign_raw(pic: &IcSim, canister: Principal, key: &str, cycles: u128) -> CallResult {
    let arg = encode_one(SignWithEcdsaArgs {
        message_hash: vec![1; 32],
        derivation_path: vec![],
        key_id: EcdsaKeyId {
            curve: EcdsaCurve::Secp256k1,
            name: key.into(),
        },
    })
    .unwrap();
    call_raw(
        pic,
        canister,
        Principal::management_canister(),
        "sign_with_ecdsa",
        arg,
        cycles,
    )
}

/// An unknown key name is rejected as the replica's routing rejects it (DESTINATION_INVALID,
/// naming the key and the keys the subnet holds), for public keys and signing alike, and the
/// attached cycles come back.
#[test]
fn unknown_key_is_rejected_naming_it() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let before = pic.cycle_balance(probe);
    let (code, message) = sign_raw(&pic, probe, "no_such_key", SIGNATURE_FEE).unwrap_err();
    assert_eq!(code, 3);
    assert!(
        message.starts_with(
            "Unable to route management canister request sign_with_ecdsa: ChainKeyError(\"Requested unknown or disabled threshold key: ecdsa:Secp256k1:no_such_key, existing enabled keys: [ecdsa:Secp256k1:dfx_test_key, "
        ),
        "{message}"
    );
    assert!(before - pic.cycle_balance(probe) < MESSAGE_COSTS);

    let arg = encode_one(EcdsaPublicKeyArgs {
        canister_id: None,
        derivation_path: vec![],
        key_id: EcdsaKeyId {
            curve: EcdsaCurve::Secp256k1,
            name: "no_such_key".into(),
        },
    })
    .unwrap();
    let (code, message) = call_raw(
        &pic,
        probe,
        Principal::management_canister(),
        "ecdsa_public_key",
        arg,
        0,
    )
    .unwrap_err();
    assert_eq!(code, 3);
    assert!(
        message.contains(
            "Requested unknown threshold key: ecdsa:Secp256k1:no_such_key, existing keys: ["
        ),
        "{message}"
    );
}

/// Signing takes the fee out of the attached cycles: too few are rejected with the replica's
/// message (CANISTER_REJECT) and all come back; with more, the canister pays the fee and gets
/// the rest back (spec, "IC method sign_with_ecdsa": the call must carry the fee).
#[test]
fn signing_charges_the_fee_and_refunds_the_rest() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let before = pic.cycle_balance(probe);
    let (code, message) = sign_raw(&pic, probe, "key_1", SIGNATURE_FEE - 1).unwrap_err();
    assert_eq!(code, 4);
    assert_eq!(
        message,
        format!(
            "sign_with_ecdsa request sent with {} cycles, but {SIGNATURE_FEE} cycles are required.",
            SIGNATURE_FEE - 1
        )
    );
    let after_reject = pic.cycle_balance(probe);
    assert!(before - after_reject < MESSAGE_COSTS);

    sign_raw(&pic, probe, "key_1", SIGNATURE_FEE + 5_000_000_000_000).unwrap();
    let spent = after_reject - pic.cycle_balance(probe);
    assert!(
        (SIGNATURE_FEE..SIGNATURE_FEE + MESSAGE_COSTS).contains(&spent),
        "spent {spent}"
    );
}

/// The message hash of `sign_with_ecdsa` must be 32 bytes (spec, "IC method sign_with_ecdsa");
/// another length is rejected before any fee is taken.
#[test]
fn ecdsa_message_hash_must_be_32_bytes() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let err = ecdsa(&pic, probe, "key_1", &[], &[1; 31]).unwrap_err();
    assert_eq!(err.0, 4);
    assert!(err.1.contains("message_hash must be 32 bytes"), "{}", err.1);
}
