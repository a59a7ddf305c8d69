//! Request authentication (interface spec, "Authentication" and "Signatures"): the envelope's
//! sender, public key, delegation chain and signature, and the ingress expiry.
//!
//! Supported keys are those of the identities agents and dfx use: Ed25519 (RFC 8410 DER),
//! ECDSA on secp256k1 and on P-256 (RFC 5480 DER, signatures as 64 bytes `r · s` over the
//! SHA-256 of the message). Canister signatures and WebAuthn keys are refused as unsupported.

use candid::Principal;
use ic_transport_types::{Envelope, EnvelopeContent, RequestId};

/// Domain separator of a request signature (spec, "Authentication").
const REQUEST_DOMAIN: &[u8] = b"\x0Aic-request";
/// At most this many delegations in a chain (spec, "Authentication").
const MAX_DELEGATIONS: usize = 20;
/// At most this many targets in one delegation (spec, "Authentication").
const MAX_TARGETS: usize = 1000;
/// How far in the future an ingress expiry may lie: mainnet's 5 minutes, plus 30 s of clock
/// drift between client and server (spec, "Authentication": the IC may refuse requests whose
/// expiry is too far in the future).
pub const MAX_INGRESS_TTL_NANOS: u64 = (5 * 60 + 30) * 1_000_000_000;

/// Why a request is not authentic or no longer valid; each is answered with HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the request expired at {expiry} ns, it is now {now} ns")]
    Expired { expiry: u64, now: u64 },
    #[error("the request expires at {expiry} ns, more than 5 minutes after now ({now} ns)")]
    ExpiryTooFar { expiry: u64, now: u64 },
    #[error("an anonymous request carries a public key, a signature or delegations")]
    AnonymousWithCredentials,
    #[error("the request has no {0}")]
    Missing(&'static str),
    #[error("the public key does not authenticate the sender {sender}")]
    SenderMismatch { sender: Principal },
    #[error("unsupported or malformed public key (Ed25519, secp256k1 and P-256 are supported)")]
    UnsupportedKey,
    #[error("invalid {0} signature")]
    BadSignature(&'static str),
    #[error("more than {MAX_DELEGATIONS} delegations")]
    TooManyDelegations,
    #[error("a delegation has more than {MAX_TARGETS} targets")]
    TooManyTargets,
    #[error("a public key appears twice in the delegation chain")]
    DelegationCycle,
    #[error("a delegation expired at {expiration} ns")]
    DelegationExpired { expiration: u64 },
    #[error("a delegation does not allow canister {canister}")]
    TargetNotAllowed { canister: Principal },
}

/// Checks `envelope` at time `now` (nanoseconds) and returns its request id.
pub fn authenticate(envelope: &Envelope<'_>, now: u64) -> Result<RequestId, AuthError> {
    let content = envelope.content.as_ref();
    let sender = *content.sender();
    let anonymous = sender == Principal::anonymous();
    let expiry = content.ingress_expiry();
    // Anonymous queries and read_state requests may carry any expiry (spec,
    // "Authentication"); everything else is checked.
    let unchecked_expiry = anonymous && !matches!(content, EnvelopeContent::Call { .. });
    if !unchecked_expiry {
        if expiry < now {
            return Err(AuthError::Expired { expiry, now });
        }
        if expiry > now.saturating_add(MAX_INGRESS_TTL_NANOS) {
            return Err(AuthError::ExpiryTooFar { expiry, now });
        }
    }
    let request_id = content.to_request_id();
    if anonymous {
        if envelope.sender_pubkey.is_some()
            || envelope.sender_sig.is_some()
            || envelope.sender_delegation.is_some()
        {
            return Err(AuthError::AnonymousWithCredentials);
        }
        return Ok(request_id);
    }
    let pubkey = envelope
        .sender_pubkey
        .as_deref()
        .ok_or(AuthError::Missing("sender_pubkey"))?;
    let sig = envelope
        .sender_sig
        .as_deref()
        .ok_or(AuthError::Missing("sender_sig"))?;
    if Principal::self_authenticating(pubkey) != sender {
        return Err(AuthError::SenderMismatch { sender });
    }
    let target = match content {
        EnvelopeContent::Call { canister_id, .. } | EnvelopeContent::Query { canister_id, .. } => {
            Some(*canister_id)
        }
        EnvelopeContent::ReadState { .. } => None,
    };
    let mut key = pubkey.to_vec();
    let delegations = envelope.sender_delegation.as_deref().unwrap_or_default();
    if delegations.len() > MAX_DELEGATIONS {
        return Err(AuthError::TooManyDelegations);
    }
    let mut seen = vec![key.clone()];
    for signed in delegations {
        let d = &signed.delegation;
        verify_signature(&key, &d.signable(), &signed.signature)?;
        if d.expiration < now {
            return Err(AuthError::DelegationExpired {
                expiration: d.expiration,
            });
        }
        if let Some(targets) = &d.targets {
            if targets.len() > MAX_TARGETS {
                return Err(AuthError::TooManyTargets);
            }
            if let Some(canister) = target {
                if !targets.contains(&canister) {
                    return Err(AuthError::TargetNotAllowed { canister });
                }
            }
        }
        if seen.contains(&d.pubkey) {
            return Err(AuthError::DelegationCycle);
        }
        seen.push(d.pubkey.clone());
        key.clone_from(&d.pubkey);
    }
    let mut message = REQUEST_DOMAIN.to_vec();
    message.extend_from_slice(request_id.as_slice());
    verify_signature(&key, &message, sig)?;
    Ok(request_id)
}

/// Verifies `sig` over `message` with the DER-encoded public key `der` (spec, "Signatures").
pub fn verify_signature(der: &[u8], message: &[u8], sig: &[u8]) -> Result<(), AuthError> {
    use ed25519_dalek as ed;
    verify_with::<ed::VerifyingKey, ed::Signature>(der, message, sig, "Ed25519")
        .or_else(|| {
            use k256::ecdsa as k;
            verify_with::<k::VerifyingKey, k::Signature>(der, message, sig, "secp256k1")
        })
        .or_else(|| {
            use p256::ecdsa as p;
            verify_with::<p::VerifyingKey, p::Signature>(der, message, sig, "P-256")
        })
        .unwrap_or(Err(AuthError::UnsupportedKey))
}

/// The verification of `sig` if `der` is a key of the scheme `K`, `None` if it is not.
fn verify_with<K, S>(
    der: &[u8],
    message: &[u8],
    sig: &[u8],
    scheme: &'static str,
) -> Option<Result<(), AuthError>>
where
    K: ed25519_dalek::pkcs8::DecodePublicKey + ed25519_dalek::Verifier<S>,
    S: for<'a> TryFrom<&'a [u8]>,
{
    let key = K::from_public_key_der(der).ok()?;
    let Ok(sig) = S::try_from(sig) else {
        return Some(Err(AuthError::BadSignature(scheme)));
    };
    Some(
        key.verify(message, &sig)
            .map_err(|_| AuthError::BadSignature(scheme)),
    )
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use ic_transport_types::{Delegation, SignedDelegation};

    use super::*;

    const NOW: u64 = 1_800_000_000_000_000_000;
    const MINUTE: u64 = 60_000_000_000;

    type SignFn = Box<dyn Fn(&[u8]) -> Vec<u8>>;

    /// A key of one of the supported schemes: its DER public key and a signing function.
    struct Key {
        der: Vec<u8>,
        sign: SignFn,
    }

    fn key<K, S>(signing: K, der: k256::pkcs8::Document) -> Key
    where
        K: ed25519_dalek::Signer<S> + 'static,
        S: ed25519_dalek::ed25519::signature::SignatureEncoding,
    {
        Key {
            der: der.to_vec(),
            sign: Box::new(move |m| signing.sign(m).to_vec()),
        }
    }

    fn ed25519(seed: u8) -> Key {
        use ed25519_dalek::pkcs8::EncodePublicKey;
        let k = ed25519_dalek::SigningKey::from_bytes(&[seed; 32]);
        let der = k.verifying_key().to_public_key_der().unwrap();
        key::<_, ed25519_dalek::Signature>(k, der)
    }

    fn secp256k1(seed: u8) -> Key {
        use k256::pkcs8::EncodePublicKey;
        let k = k256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let der = k.verifying_key().to_public_key_der().unwrap();
        key::<_, k256::ecdsa::Signature>(k, der)
    }

    fn p256(seed: u8) -> Key {
        use p256::pkcs8::EncodePublicKey;
        let k = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let der = k.verifying_key().to_public_key_der().unwrap();
        key::<_, p256::ecdsa::Signature>(k, der)
    }

    fn call(sender: Principal, expiry: u64) -> EnvelopeContent {
        EnvelopeContent::Call {
            nonce: None,
            ingress_expiry: expiry,
            sender,
            canister_id: Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 7, 1, 1]),
            method_name: "put".into(),
            arg: b"DIDL\x00\x00".to_vec(),
            sender_info: None,
        }
    }

    fn request_message(content: &EnvelopeContent) -> Vec<u8> {
        let mut m = REQUEST_DOMAIN.to_vec();
        m.extend_from_slice(content.to_request_id().as_slice());
        m
    }

    /// An envelope for `content` signed by `key` (no delegation).
    fn signed(key: &Key, content: EnvelopeContent) -> Envelope<'static> {
        let sig = (key.sign)(&request_message(&content));
        Envelope {
            content: Cow::Owned(content),
            sender_pubkey: Some(key.der.clone()),
            sender_sig: Some(sig),
            sender_delegation: None,
        }
    }

    #[test]
    fn each_supported_scheme_authenticates_its_sender() {
        for key in [ed25519(1), secp256k1(2), p256(3)] {
            let sender = Principal::self_authenticating(&key.der);
            let envelope = signed(&key, call(sender, NOW + MINUTE));
            assert_eq!(
                authenticate(&envelope, NOW),
                Ok(envelope.content.to_request_id())
            );
        }
    }

    #[test]
    fn a_wrong_signature_or_a_foreign_key_is_refused() {
        for (key, other) in [
            (ed25519(1), ed25519(9)),
            (secp256k1(2), secp256k1(8)),
            (p256(3), p256(7)),
        ] {
            let sender = Principal::self_authenticating(&key.der);
            let mut envelope = signed(&key, call(sender, NOW + MINUTE));
            // Signed by another key of the same scheme.
            envelope.sender_sig = Some((other.sign)(&request_message(&envelope.content)));
            assert!(matches!(
                authenticate(&envelope, NOW),
                Err(AuthError::BadSignature(_))
            ));
            // The other key's public key does not authenticate this sender.
            envelope.sender_pubkey = Some(other.der.clone());
            assert_eq!(
                authenticate(&envelope, NOW),
                Err(AuthError::SenderMismatch { sender })
            );
        }
        let key = ed25519(1);
        let sender = Principal::self_authenticating(&key.der);
        let mut unsigned = signed(&key, call(sender, NOW + MINUTE));
        unsigned.sender_sig = None;
        assert_eq!(
            authenticate(&unsigned, NOW),
            Err(AuthError::Missing("sender_sig"))
        );
    }

    #[test]
    fn expired_and_far_future_requests_are_refused() {
        let key = secp256k1(2);
        let sender = Principal::self_authenticating(&key.der);
        let expired = signed(&key, call(sender, NOW - 1));
        assert_eq!(
            authenticate(&expired, NOW),
            Err(AuthError::Expired {
                expiry: NOW - 1,
                now: NOW
            })
        );
        let far = signed(&key, call(sender, NOW + 10 * MINUTE));
        assert!(matches!(
            authenticate(&far, NOW),
            Err(AuthError::ExpiryTooFar { .. })
        ));
    }

    #[test]
    fn anonymous_requests_carry_no_credentials() {
        let content = call(Principal::anonymous(), NOW + MINUTE);
        let plain = Envelope {
            content: Cow::Owned(content.clone()),
            sender_pubkey: None,
            sender_sig: None,
            sender_delegation: None,
        };
        assert!(authenticate(&plain, NOW).is_ok());
        let with_sig = Envelope {
            sender_sig: Some(vec![0; 64]),
            ..plain
        };
        assert_eq!(
            authenticate(&with_sig, NOW),
            Err(AuthError::AnonymousWithCredentials)
        );
    }

    /// An envelope signed by `session`, whose key `identity` delegated to it.
    fn delegated(
        identity: &Key,
        session: &Key,
        delegation: Delegation,
        content: EnvelopeContent,
    ) -> Envelope<'static> {
        let signature = (identity.sign)(&delegation.signable());
        let sig = (session.sign)(&request_message(&content));
        Envelope {
            content: Cow::Owned(content),
            sender_pubkey: Some(identity.der.clone()),
            sender_sig: Some(sig),
            sender_delegation: Some(vec![SignedDelegation {
                delegation,
                signature,
            }]),
        }
    }

    #[test]
    fn a_delegation_lets_its_key_sign_within_its_expiry_and_targets() {
        // Internet Identity's shape: an identity key delegating to a session key.
        let identity = ed25519(4);
        let session = p256(5);
        let sender = Principal::self_authenticating(&identity.der);
        let content = call(sender, NOW + MINUTE);
        let canister = match &content {
            EnvelopeContent::Call { canister_id, .. } => *canister_id,
            _ => unreachable!(),
        };
        let delegation = |expiration, targets| Delegation {
            pubkey: session.der.clone(),
            expiration,
            targets,
            permissions: None,
        };
        let ok = delegated(
            &identity,
            &session,
            delegation(NOW + MINUTE, Some(vec![canister])),
            content.clone(),
        );
        assert!(authenticate(&ok, NOW).is_ok());

        let expired = delegated(
            &identity,
            &session,
            delegation(NOW - 1, None),
            content.clone(),
        );
        assert_eq!(
            authenticate(&expired, NOW),
            Err(AuthError::DelegationExpired {
                expiration: NOW - 1
            })
        );

        let elsewhere = Principal::from_slice(&[9; 10]);
        let wrong_target = delegated(
            &identity,
            &session,
            delegation(NOW + MINUTE, Some(vec![elsewhere])),
            content.clone(),
        );
        assert_eq!(
            authenticate(&wrong_target, NOW),
            Err(AuthError::TargetNotAllowed { canister })
        );

        // The session key signing the delegation itself (no chain from the sender's key).
        let mut forged = ok.clone();
        if let Some(chain) = forged.sender_delegation.as_mut() {
            chain[0].signature = (session.sign)(&chain[0].delegation.signable());
        }
        assert!(matches!(
            authenticate(&forged, NOW),
            Err(AuthError::BadSignature(_))
        ));
    }
}
