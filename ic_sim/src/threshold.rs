//! Threshold signatures of the management canister (interface spec, "IC method
//! ecdsa_public_key", "IC method sign_with_ecdsa", "IC method schnorr_public_key" and "IC method
//! sign_with_schnorr").
//!
//! The subnet holds the keys PocketIC provides: `dfx_test_key`, `test_key_1` and `key_1`, each for
//! ECDSA on secp256k1 and for Schnorr with BIP340 (secp256k1) and Ed25519. A master key is a
//! fixed secret derived from its id, so signatures are reproducible across runs. A canister's key
//! for a derivation path is derived from the master secret, the canister id and the path with
//! SHA-256: every canister and path gets its own key and chain code, and a public key returned
//! for a canister and path verifies the signatures made for it. The IC derives keys with an
//! additive (BIP32-like) tweak instead, so the keys differ from the replica's; what a test can
//! observe of the spec holds. Signing is instant: the reply goes out in the next round.

use candid::Principal;
use ic_management_canister_types as mgmt;
use k256::ecdsa::signature::hazmat::PrehashSigner;
use mgmt::{SchnorrAlgorithm, SchnorrAux};
use sha2::{Digest, Sha256};

use crate::costs;
use crate::errors::{ErrorCode, RejectCode, RejectResponse};
use crate::management::{decode, encode, rejected, Reply};
use crate::sim::{injected_reject, Request, Sim};

/// The key names the subnet holds for every algorithm (PocketIC's test keys), sorted.
pub(crate) const KEY_NAMES: [&str; 3] = ["dfx_test_key", "key_1", "test_key_1"];

/// A threshold signature scheme of the IC.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    EcdsaSecp256k1,
    SchnorrBip340,
    SchnorrEd25519,
}

impl Scheme {
    const ALL: [Scheme; 3] = [
        Scheme::EcdsaSecp256k1,
        Scheme::SchnorrBip340,
        Scheme::SchnorrEd25519,
    ];

    fn schnorr(algorithm: &SchnorrAlgorithm) -> Self {
        match algorithm {
            SchnorrAlgorithm::Bip340secp256k1 => Scheme::SchnorrBip340,
            SchnorrAlgorithm::Ed25519 => Scheme::SchnorrEd25519,
        }
    }

    /// The key id as the replica prints it (`MasterPublicKeyId`'s display).
    fn key_id(self, name: &str) -> String {
        let scheme = match self {
            Scheme::EcdsaSecp256k1 => "ecdsa:Secp256k1",
            Scheme::SchnorrBip340 => "schnorr:Bip340Secp256k1",
            Scheme::SchnorrEd25519 => "schnorr:Ed25519",
        };
        format!("{scheme}:{name}")
    }
}

/// A derived key: whose and for which path.
struct KeyRef<'a> {
    scheme: Scheme,
    name: &'a str,
    canister: Principal,
    path: &'a [Vec<u8>],
}

impl KeyRef<'_> {
    /// SHA-256 over a domain label and every part of the key's identity, each part prefixed
    /// with its length so that no two identities hash the same input.
    fn hash(&self, label: &[u8], counter: u32) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut part = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        part(b"ic_sim threshold key");
        part(label);
        part(self.scheme.key_id(self.name).as_bytes());
        part(self.canister.as_slice());
        part(&(self.path.len() as u64).to_be_bytes());
        for element in self.path {
            part(element);
        }
        part(&counter.to_be_bytes());
        h.finalize().into()
    }

    fn chain_code(&self) -> Vec<u8> {
        self.hash(b"chain code", 0).to_vec()
    }

    /// A secp256k1 secret key: the first hash (by counter) that is a valid scalar. A hash is
    /// out of range with probability below 2^-127, so the search ends at once in practice.
    fn secp256k1(&self) -> k256::SecretKey {
        (0u32..)
            .find_map(|i| k256::SecretKey::from_slice(&self.hash(b"secret", i)).ok())
            .expect("some hash is a valid secp256k1 scalar")
    }

    fn ed25519(&self) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&self.hash(b"secret", 0))
    }

    /// The public key in the spec's encoding: SEC1 compressed (33 bytes) for secp256k1, for
    /// BIP340 too; the 32-byte encoding for Ed25519.
    fn public_key(&self) -> Vec<u8> {
        match self.scheme {
            Scheme::EcdsaSecp256k1 | Scheme::SchnorrBip340 => {
                use k256::elliptic_curve::sec1::ToEncodedPoint;
                self.secp256k1()
                    .public_key()
                    .to_encoded_point(true)
                    .as_bytes()
                    .to_vec()
            }
            Scheme::SchnorrEd25519 => self.ed25519().verifying_key().to_bytes().to_vec(),
        }
    }
}

/// Every key id the subnet holds, sorted and listed as the replica lists them in its rejects.
fn held_keys() -> String {
    let mut ids: Vec<String> = Scheme::ALL
        .iter()
        .flat_map(|s| KEY_NAMES.iter().map(|n| s.key_id(n)))
        .collect();
    ids.sort();
    format!("[{}]", ids.join(", "))
}

/// The reject for a key the subnet does not hold. The replica fails to route such a request
/// (`resolve_destination` in dfinity/ic `rs/system_api/src/routing.rs`): DESTINATION_INVALID,
/// with the routing error in the message; signing requires an enabled key, public keys a held
/// one. No fee is taken.
fn unknown_key(method: &str, key_id: &str, signing: bool) -> RejectResponse {
    let keys = held_keys();
    let error = if signing {
        format!(
            "Requested unknown or disabled threshold key: {key_id}, existing enabled keys: {keys}"
        )
    } else {
        format!("Requested unknown threshold key: {key_id}, existing keys: {keys}")
    };
    injected_reject(
        RejectCode::DestinationInvalid,
        format!("Unable to route management canister request {method}: ChainKeyError({error:?})"),
    )
}

fn invalid(message: String) -> RejectResponse {
    RejectResponse::new(ErrorCode::InvalidManagementPayload, message)
}

/// A signing request, decoded.
enum Signing {
    Ecdsa(mgmt::SignWithEcdsaArgs),
    Schnorr(mgmt::SignWithSchnorrArgs),
}

impl Signing {
    fn key<'a>(&'a self, canister: Principal) -> KeyRef<'a> {
        let (scheme, name, path) = match self {
            Signing::Ecdsa(a) => (Scheme::EcdsaSecp256k1, &a.key_id.name, &a.derivation_path),
            Signing::Schnorr(a) => (
                Scheme::schnorr(&a.key_id.algorithm),
                &a.key_id.name,
                &a.derivation_path,
            ),
        };
        KeyRef {
            scheme,
            name,
            canister,
            path,
        }
    }

    /// Checks the message (and aux input) before any fee is taken.
    fn validate(&self) -> Result<(), RejectResponse> {
        match self {
            Signing::Ecdsa(a) if a.message_hash.len() != 32 => Err(invalid(format!(
                "sign_with_ecdsa: message_hash must be 32 bytes, got {}",
                a.message_hash.len()
            ))),
            Signing::Schnorr(a) => match (&a.key_id.algorithm, &a.aux) {
                (_, None) => Ok(()),
                (SchnorrAlgorithm::Bip340secp256k1, Some(SchnorrAux::Bip341(b)))
                    if b.merkle_root_hash.is_empty() || b.merkle_root_hash.len() == 32 =>
                {
                    Ok(())
                }
                (SchnorrAlgorithm::Bip340secp256k1, Some(SchnorrAux::Bip341(b))) => {
                    Err(invalid(format!(
                        "sign_with_schnorr: the bip341 merkle_root_hash must be empty or 32 bytes, got {}",
                        b.merkle_root_hash.len()
                    )))
                }
                (SchnorrAlgorithm::Ed25519, Some(_)) => Err(invalid(
                    "sign_with_schnorr: ed25519 takes no aux input".to_string(),
                )),
            },
            Signing::Ecdsa(_) => Ok(()),
        }
    }

    /// The candid-encoded reply: a 64-byte signature (ECDSA `r || s` with low `s`, BIP340
    /// `r || s`, or Ed25519).
    fn sign(&self, key: &KeyRef) -> Result<Vec<u8>, RejectResponse> {
        let failed = |e: k256::ecdsa::Error| {
            RejectResponse::new(
                ErrorCode::CanisterRejectedMessage,
                format!("signing failed: {e}"),
            )
        };
        let signature = match self {
            Signing::Ecdsa(a) => {
                let sk = k256::ecdsa::SigningKey::from(key.secp256k1());
                let sig: k256::ecdsa::Signature =
                    sk.sign_prehash(&a.message_hash).map_err(failed)?;
                sig.normalize_s().unwrap_or(sig).to_bytes().to_vec()
            }
            Signing::Schnorr(a) if key.scheme == Scheme::SchnorrBip340 => {
                let mut sk = k256::schnorr::SigningKey::from(key.secp256k1());
                if let Some(SchnorrAux::Bip341(b)) = &a.aux {
                    sk = taproot_tweak(&sk, &b.merkle_root_hash).map_err(failed)?;
                }
                // Auxiliary randomness (BIP340): derived from the key and message, so that
                // signing is reproducible.
                let aux: [u8; 32] = Sha256::new()
                    .chain_update(b"ic_sim bip340 aux")
                    .chain_update(key.hash(b"secret", 0))
                    .chain_update(&a.message)
                    .finalize()
                    .into();
                sk.sign_raw(&a.message, &aux)
                    .map_err(failed)?
                    .to_bytes()
                    .to_vec()
            }
            Signing::Schnorr(a) => {
                use ed25519_dalek::Signer;
                key.ed25519().sign(&a.message).to_bytes().to_vec()
            }
        };
        Ok(match self {
            Signing::Ecdsa(_) => encode(&mgmt::SignWithEcdsaResult { signature }),
            Signing::Schnorr(_) => encode(&mgmt::SignWithSchnorrResult { signature }),
        })
    }
}

/// The BIP341 (taproot) output key of `sk` for a script tree with `merkle_root` (empty for a
/// key-path-only output): `d + H_TapTweak(P || merkle_root)`, where `d` is the secret of the
/// even-y public key `P`.
fn taproot_tweak(
    sk: &k256::schnorr::SigningKey,
    merkle_root: &[u8],
) -> Result<k256::schnorr::SigningKey, k256::ecdsa::Error> {
    use k256::elliptic_curve::ops::Reduce;
    let tag = Sha256::digest(b"TapTweak");
    let t = Sha256::new()
        .chain_update(tag)
        .chain_update(tag)
        .chain_update(sk.verifying_key().to_bytes())
        .chain_update(merkle_root)
        .finalize();
    let t = <k256::Scalar as Reduce<k256::U256>>::reduce_bytes(&t);
    let tweaked = *sk.as_nonzero_scalar().as_ref() + t;
    k256::schnorr::SigningKey::from_bytes(&tweaked.to_bytes())
}

/// Rejects a key the subnet does not hold.
fn check_key(method: &str, key: &KeyRef, signing: bool) -> Result<(), RejectResponse> {
    if KEY_NAMES.contains(&key.name) {
        Ok(())
    } else {
        Err(unknown_key(method, &key.scheme.key_id(key.name), signing))
    }
}

impl Sim {
    /// `ecdsa_public_key`, `sign_with_ecdsa`, `schnorr_public_key` and `sign_with_schnorr`.
    /// Public keys are free; signing takes the signature fee out of the attached cycles and
    /// refunds the rest, or rejects when too few are attached (as the replica's execution
    /// environment: CANISTER_REJECT, "<method> request sent with <n> cycles, but <fee> cycles
    /// are required.").
    pub(crate) fn threshold_method(&self, req: &Request, refund: &mut u128) -> Reply {
        let method = req.method.as_str();
        let public = match method {
            "ecdsa_public_key" => {
                let a: mgmt::EcdsaPublicKeyArgs = decode(&req.arg)?;
                Some((
                    Scheme::EcdsaSecp256k1,
                    a.key_id.name,
                    a.canister_id,
                    a.derivation_path,
                ))
            }
            "schnorr_public_key" => {
                let a: mgmt::SchnorrPublicKeyArgs = decode(&req.arg)?;
                let scheme = Scheme::schnorr(&a.key_id.algorithm);
                Some((scheme, a.key_id.name, a.canister_id, a.derivation_path))
            }
            _ => None,
        };
        if let Some((scheme, name, canister, path)) = public {
            let key = KeyRef {
                scheme,
                name: &name,
                canister: canister.unwrap_or(req.sender),
                path: &path,
            };
            check_key(method, &key, false)?;
            // `ecdsa_public_key` and `schnorr_public_key` reply with the same record.
            return Ok(Some(encode(&mgmt::EcdsaPublicKeyResult {
                public_key: key.public_key(),
                chain_code: key.chain_code(),
            })));
        }
        let request = match method {
            "sign_with_ecdsa" => Signing::Ecdsa(decode(&req.arg)?),
            _ => Signing::Schnorr(decode(&req.arg)?),
        };
        let key = request.key(req.sender);
        check_key(method, &key, true)?;
        request.validate()?;
        let fee = costs::THRESHOLD_FEE;
        if req.cycles < fee {
            return Err(rejected(format!(
                "{method} request sent with {} cycles, but {fee} cycles are required.",
                req.cycles
            )));
        }
        let reply = request.sign(&key)?;
        *refund = req.cycles - fee;
        Ok(Some(reply))
    }
}
