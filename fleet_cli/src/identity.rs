//! Who signs the calls: a PEM key file in dfx's formats, the recovery phrase, or anonymous.
//!
//! Accepted PEM files:
//! - `BEGIN EC PRIVATE KEY` (SEC1 secp256k1, optionally preceded by `BEGIN EC PARAMETERS`):
//!   what `dfx identity new --storage plaintext` and `dfx identity import --seed-file` write;
//! - `BEGIN PRIVATE KEY` (PKCS#8) holding an Ed25519 key (dfx's older default) or a secp256k1
//!   key (what quill writes).
//!
//! Encrypted PEM files are refused with a hint: export them with `dfx identity export` first.
//! The principal of a key is self-authenticating (IC interface spec, "Principals"): the
//! sha224 of the DER-encoded public key followed by the byte 0x02.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use candid::Principal;
use ic_agent::identity::{AnonymousIdentity, BasicIdentity, Secp256k1Identity};
use zeroize::Zeroizing;

use crate::phrase::{self, RecoveryPhrase};

/// Largest PEM file read; a key file is well under a kilobyte.
const MAX_PEM_SIZE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("reading the identity file {path}: {message}")]
    Read { path: String, message: String },
    #[error("the identity file {path} is encrypted; export it unencrypted first (`dfx identity export NAME > FILE`)")]
    Encrypted { path: String },
    #[error("the identity file {path} is not a supported key: {message}")]
    Unsupported { path: String, message: String },
    #[error(transparent)]
    Phrase(#[from] phrase::PhraseError),
    #[error("this command cannot run as the anonymous principal: give --pem-file, --phrase-file or --phrase-stdin, or set {}", phrase::PHRASE_ENV)]
    AnonymousNotAllowed,
}

/// The kind of key behind an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Anonymous,
    Secp256k1,
    Ed25519,
}

/// A signer: its principal and the ic-agent identity that signs as it.
#[derive(Clone)]
pub struct Identity {
    kind: KeyKind,
    principal: Principal,
    signer: Arc<dyn ic_agent::Identity>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({:?}, {})", self.kind, self.principal)
    }
}

impl Identity {
    pub fn anonymous() -> Self {
        Self {
            kind: KeyKind::Anonymous,
            principal: Principal::anonymous(),
            signer: Arc::new(AnonymousIdentity),
        }
    }

    /// The recovery identity of a phrase (secp256k1 at m/44'/223'/0'/0/0).
    pub fn from_phrase(phrase: &RecoveryPhrase) -> Result<Self, IdentityError> {
        Ok(Self::from_secp256k1(phrase.secret_key()?))
    }

    pub fn from_secp256k1(key: k256::SecretKey) -> Self {
        let principal = phrase::secp256k1_principal(&key.public_key());
        Self {
            kind: KeyKind::Secp256k1,
            principal,
            signer: Arc::new(Secp256k1Identity::from_private_key(key)),
        }
    }

    /// Reads a PEM key file (see the module documentation for the formats).
    pub fn from_pem_file(path: &Path) -> Result<Self, IdentityError> {
        use std::io::Read;
        let shown = path.display().to_string();
        let read_err = |message: String| IdentityError::Read {
            path: shown.clone(),
            message,
        };
        let file = std::fs::File::open(path).map_err(|e| read_err(e.to_string()))?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_PEM_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| read_err(e.to_string()))?;
        if bytes.len() as u64 > MAX_PEM_SIZE {
            return Err(read_err(format!("larger than {MAX_PEM_SIZE} bytes")));
        }
        Self::from_pem(&bytes, &shown)
    }

    /// Parses PEM text; `path` only names the input in errors.
    pub fn from_pem(bytes: &[u8], path: &str) -> Result<Self, IdentityError> {
        let unsupported = |message: String| IdentityError::Unsupported {
            path: path.to_string(),
            message,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| unsupported("not PEM text".into()))?;
        if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            || text.contains("Proc-Type: 4,ENCRYPTED")
        {
            return Err(IdentityError::Encrypted {
                path: path.to_string(),
            });
        }
        if text.contains("-----BEGIN EC PRIVATE KEY-----") {
            // Refuse other curves before parsing: an EC PARAMETERS block names the curve.
            Secp256k1Identity::from_pem(bytes).map_err(|e| unsupported(e.to_string()))?;
            let key = sec1_secret_key(text).map_err(unsupported)?;
            return Ok(Self::from_secp256k1(key));
        }
        if text.contains("-----BEGIN PRIVATE KEY-----") {
            use k256::pkcs8::DecodePrivateKey;
            if let Ok(key) = k256::SecretKey::from_pkcs8_pem(text.trim()) {
                return Ok(Self::from_secp256k1(key));
            }
            let basic = BasicIdentity::from_pem(bytes).map_err(|e| {
                unsupported(format!(
                    "neither an Ed25519 nor a secp256k1 PKCS#8 key ({e})"
                ))
            })?;
            let der = ic_agent::Identity::public_key(&basic)
                .ok_or_else(|| unsupported("the Ed25519 key has no public key".into()))?;
            return Ok(Self {
                kind: KeyKind::Ed25519,
                principal: Principal::self_authenticating(der),
                signer: Arc::new(basic),
            });
        }
        Err(unsupported(
            "expected a BEGIN EC PRIVATE KEY or BEGIN PRIVATE KEY block".into(),
        ))
    }

    pub fn principal(&self) -> Principal {
        self.principal
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The ic-agent identity that signs requests as [`Self::principal`].
    pub fn signer(&self) -> Arc<dyn ic_agent::Identity> {
        self.signer.clone()
    }
}

fn sec1_secret_key(text: &str) -> Result<k256::SecretKey, String> {
    use k256::elliptic_curve::SecretKey;
    let label = "EC PRIVATE KEY";
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).ok_or("no EC PRIVATE KEY block")?;
    let stop = text[start..]
        .find(&end)
        .map(|i| start + i + end.len())
        .ok_or("unterminated EC PRIVATE KEY block")?;
    SecretKey::from_sec1_pem(&text[start..stop]).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Keys made for these tests with `openssl ecparam -name secp256k1 -genkey -noout`,
    // `openssl pkcs8 -topk8 -nocrypt` and `openssl genpkey -algorithm ed25519`; the expected
    // DER public keys were printed by `openssl ec|pkey -pubout -outform DER`.
    const SECP256K1_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHQCAQEEIIcm9NBt3otX5Mwq/2jvpmMiDsk/H8h5doJEyV4PCzqZoAcGBSuBBAAK
oUQDQgAE54HmYIr6E9AZVzUVzxxkyBEoNvtaC2Vwlh19oJJH5qp/w7YtjUkJTqdF
Bm2/djwqVqk9wRYItQlc1XPv0QcfUw==
-----END EC PRIVATE KEY-----
";
    const SECP256K1_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGEAgEAMBAGByqGSM49AgEGBSuBBAAKBG0wawIBAQQghyb00G3ei1fkzCr/aO+m
YyIOyT8fyHl2gkTJXg8LOpmhRANCAATngeZgivoT0BlXNRXPHGTIESg2+1oLZXCW
HX2gkkfmqn/Dti2NSQlOp0UGbb92PCpWqT3BFgi1CVzVc+/RBx9T
-----END PRIVATE KEY-----
";
    const SECP256K1_DER: &str = "3056301006072a8648ce3d020106052b8104000a03420004e781e6608afa13d019573515cf1c64c8112836fb5a0b6570961d7da09247e6aa7fc3b62d8d49094ea745066dbf763c2a56a93dc11608b5095cd573efd1071f53";
    const ED25519_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINjdFAoVI72rUQ0CnlCYUhkTqmidCs+c4yoY3HMJke3K
-----END PRIVATE KEY-----
";
    const ED25519_DER: &str =
        "302a300506032b6570032100cd44ee97edb6c0f66078204c8c6e308daa86cd56ed66b3d309def6747959e6a0";

    fn expected(der_hex: &str) -> Principal {
        Principal::self_authenticating(hex::decode(der_hex).unwrap())
    }

    #[test]
    fn sec1_secp256k1_pem_gives_the_self_authenticating_principal_of_its_der_key() {
        let id = Identity::from_pem(SECP256K1_SEC1.as_bytes(), "k1.pem").unwrap();
        assert_eq!(id.kind(), KeyKind::Secp256k1);
        assert_eq!(id.principal(), expected(SECP256K1_DER));
        assert_eq!(id.signer().sender().unwrap(), id.principal());
        assert_eq!(
            id.signer().public_key().unwrap(),
            hex::decode(SECP256K1_DER).unwrap()
        );
    }

    #[test]
    fn pkcs8_secp256k1_pem_is_the_same_key() {
        let id = Identity::from_pem(SECP256K1_PKCS8.as_bytes(), "k1.pem").unwrap();
        assert_eq!(id.kind(), KeyKind::Secp256k1);
        assert_eq!(id.principal(), expected(SECP256K1_DER));
    }

    #[test]
    fn ed25519_pem_gives_the_principal_of_its_der_key() {
        let id = Identity::from_pem(ED25519_PKCS8.as_bytes(), "ed.pem").unwrap();
        assert_eq!(id.kind(), KeyKind::Ed25519);
        assert_eq!(id.principal(), expected(ED25519_DER));
        assert_eq!(id.signer().sender().unwrap(), id.principal());
    }

    #[test]
    fn phrase_identity_signs_as_the_phrase_principal() {
        let phrase = RecoveryPhrase::parse(
            "tornado allow zero warm have deer wool finish tiger ski dynamic strong",
        )
        .unwrap();
        let id = Identity::from_phrase(&phrase).unwrap();
        assert_eq!(id.principal(), phrase.principal().unwrap());
        assert_eq!(id.signer().sender().unwrap(), id.principal());
    }

    #[test]
    fn bad_pem_inputs_are_clear_errors() {
        let garbage = Identity::from_pem(b"hello", "x.pem").unwrap_err();
        assert!(
            matches!(garbage, IdentityError::Unsupported { .. }),
            "{garbage}"
        );
        let encrypted = Identity::from_pem(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "x.pem",
        )
        .unwrap_err();
        assert!(
            matches!(encrypted, IdentityError::Encrypted { .. }),
            "{encrypted}"
        );
        // A P-256 key is not a secp256k1 key.
        let p256 = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
            .to_string()
            + SECP256K1_SEC1;
        let wrong_curve = Identity::from_pem(p256.as_bytes(), "x.pem").unwrap_err();
        assert!(
            matches!(wrong_curve, IdentityError::Unsupported { .. }),
            "{wrong_curve}"
        );
        let truncated = Identity::from_pem(&SECP256K1_SEC1.as_bytes()[..80], "x.pem").unwrap_err();
        assert!(
            matches!(truncated, IdentityError::Unsupported { .. }),
            "{truncated}"
        );
        let missing = Identity::from_pem_file(Path::new("/nonexistent/fleet.pem")).unwrap_err();
        assert!(matches!(missing, IdentityError::Read { .. }), "{missing}");
    }
}
