//! Recovery phrases: BIP39 mnemonics that derive the user's recovery principal.
//!
//! The derivation is the one dfx (`dfx identity new --seed`/`import --seed-file`) and quill
//! (`quill generate`) use, so that a phrase written down for this fleet also works with those
//! tools: BIP39 seed with an empty passphrase, BIP32 derivation along the ICP path
//! `m/44'/223'/0'/0/0` (SLIP-44 coin type 223), secp256k1 key. The principal is the
//! self-authenticating principal of the key's DER-encoded SubjectPublicKeyInfo (IC interface
//! spec, "Principals" and "Signatures": ECDSA on secp256k1).
//!
//! A phrase is a secret: it is held in zeroizing memory, never accepted as a command-line
//! argument (arguments are visible to every local user through the process table and end up in
//! shell history), and never printed except once by `recovery new`.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use bip32::{DerivationPath, XPrv};
use candid::Principal;
use zeroize::Zeroizing;

/// The BIP44 path of the first ICP key, as used by dfx and quill.
pub const ICP_DERIVATION_PATH: &str = "m/44'/223'/0'/0/0";

/// Environment variable a phrase may be read from.
pub const PHRASE_ENV: &str = "FLEET_RECOVERY_PHRASE";

/// Word counts accepted: 128, 192 and 256 bits of entropy.
pub const ACCEPTED_WORD_COUNTS: [usize; 3] = [12, 18, 24];

/// Largest phrase input read from a file or stdin; a phrase is a few hundred bytes.
const MAX_PHRASE_INPUT: u64 = 4096;

/// Why a phrase was refused. Never carries the phrase or any of its words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PhraseError {
    #[error("the recovery phrase has {0} words; expected 12, 18 or 24")]
    WordCount(usize),
    #[error("word {0} of the recovery phrase is not in the BIP39 English word list")]
    UnknownWord(usize),
    #[error("the recovery phrase has a wrong checksum: a word is mistyped or the words are out of order")]
    Checksum,
    #[error("reading the recovery phrase from {source_name}: {message}")]
    Read {
        source_name: String,
        message: String,
    },
    #[error(
        "no recovery phrase given: use --phrase-file FILE, --phrase-stdin or set {PHRASE_ENV}"
    )]
    Missing,
    #[error("deriving the key from the recovery phrase failed: {0}")]
    Derivation(String),
}

/// Where a phrase comes from; never the command line itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhraseSource {
    File(PathBuf),
    Stdin,
    Env,
}

impl fmt::Display for PhraseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhraseSource::File(path) => write!(f, "file {}", path.display()),
            PhraseSource::Stdin => f.write_str("standard input"),
            PhraseSource::Env => write!(f, "environment variable {PHRASE_ENV}"),
        }
    }
}

/// A validated BIP39 English mnemonic of 12, 18 or 24 words.
pub struct RecoveryPhrase {
    mnemonic: bip39::Mnemonic,
}

impl fmt::Debug for RecoveryPhrase {
    /// Redacted: a phrase must not leak through logs or error reports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryPhrase({} words, redacted)", self.word_count())
    }
}

impl RecoveryPhrase {
    /// Generates a new 24-word phrase from 256 bits of operating-system randomness.
    pub fn generate() -> Result<Self, PhraseError> {
        let mut entropy = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(entropy.as_mut())
            .map_err(|e| PhraseError::Derivation(format!("no system randomness: {e}")))?;
        Self::from_entropy(entropy.as_ref())
    }

    /// The phrase encoding `entropy` (16, 24 or 32 bytes).
    pub fn from_entropy(entropy: &[u8]) -> Result<Self, PhraseError> {
        let mnemonic = bip39::Mnemonic::from_entropy_in(bip39::Language::English, entropy)
            .map_err(|e| PhraseError::Derivation(e.to_string()))?;
        let count = mnemonic.word_count();
        if !ACCEPTED_WORD_COUNTS.contains(&count) {
            return Err(PhraseError::WordCount(count));
        }
        Ok(Self { mnemonic })
    }

    /// Parses a phrase typed or pasted by a person: case and runs of whitespace (spaces, tabs,
    /// newlines) do not matter. The BIP39 checksum is verified.
    pub fn parse(text: &str) -> Result<Self, PhraseError> {
        let normalized = Zeroizing::new(
            text.split_whitespace()
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(" "),
        );
        let count = normalized.split(' ').filter(|w| !w.is_empty()).count();
        if !ACCEPTED_WORD_COUNTS.contains(&count) {
            return Err(PhraseError::WordCount(count));
        }
        let mnemonic = bip39::Mnemonic::parse_in_normalized(bip39::Language::English, &normalized)
            .map_err(|e| match e {
                bip39::Error::BadWordCount(n) => PhraseError::WordCount(n),
                bip39::Error::UnknownWord(i) => PhraseError::UnknownWord(i + 1),
                bip39::Error::InvalidChecksum => PhraseError::Checksum,
                other => PhraseError::Derivation(other.to_string()),
            })?;
        Ok(Self { mnemonic })
    }

    /// Reads and parses a phrase from `source`.
    pub fn read(source: &PhraseSource) -> Result<Self, PhraseError> {
        let text = match source {
            PhraseSource::File(path) => read_limited_file(path)?,
            PhraseSource::Stdin => read_limited(std::io::stdin().lock(), source)?,
            PhraseSource::Env => match std::env::var(PHRASE_ENV) {
                Ok(value) => Zeroizing::new(value),
                Err(std::env::VarError::NotPresent) => return Err(PhraseError::Missing),
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(PhraseError::Read {
                        source_name: source.to_string(),
                        message: "not valid UTF-8".into(),
                    })
                }
            },
        };
        Self::parse(&text)
    }

    pub fn word_count(&self) -> usize {
        self.mnemonic.word_count()
    }

    /// The words separated by single spaces. Only `recovery new` shows this.
    pub fn reveal(&self) -> Zeroizing<String> {
        Zeroizing::new(self.mnemonic.words().collect::<Vec<_>>().join(" "))
    }

    /// The BIP39 seed for `passphrase` (the fleet always uses the empty passphrase).
    pub fn seed(&self, passphrase: &str) -> Zeroizing<[u8; 64]> {
        Zeroizing::new(self.mnemonic.to_seed_normalized(passphrase))
    }

    /// The secp256k1 key at [`ICP_DERIVATION_PATH`] for the empty passphrase.
    pub fn secret_key(&self) -> Result<k256::SecretKey, PhraseError> {
        let seed = self.seed("");
        derive_secp256k1(seed.as_ref(), ICP_DERIVATION_PATH)
    }

    /// The recovery principal this phrase controls.
    pub fn principal(&self) -> Result<Principal, PhraseError> {
        Ok(secp256k1_principal(&self.secret_key()?.public_key()))
    }
}

/// BIP32 private derivation of `path` from a BIP39 seed.
pub fn derive_secp256k1(seed: &[u8], path: &str) -> Result<k256::SecretKey, PhraseError> {
    let path: DerivationPath = path
        .parse()
        .map_err(|e| PhraseError::Derivation(format!("derivation path {path}: {e}")))?;
    let xprv =
        XPrv::derive_from_path(seed, &path).map_err(|e| PhraseError::Derivation(e.to_string()))?;
    Ok(k256::SecretKey::from(
        xprv.private_key().as_nonzero_scalar(),
    ))
}

/// Self-authenticating principal of a secp256k1 public key: the key is DER-encoded as an
/// RFC 5480 SubjectPublicKeyInfo (uncompressed point) and hashed (IC interface spec,
/// "Principals": `sha224(der) · 0x02`).
pub fn secp256k1_principal(public_key: &k256::PublicKey) -> Principal {
    Principal::self_authenticating(secp256k1_der(public_key))
}

/// DER SubjectPublicKeyInfo of a secp256k1 key (OIDs id-ecPublicKey, secp256k1), as the IC
/// expects it in `sender_pubkey` (IC interface spec, "Signatures").
pub fn secp256k1_der(public_key: &k256::PublicKey) -> Vec<u8> {
    use k256::elliptic_curve::sec1::ToEncodedPoint;
    // SEQUENCE { SEQUENCE { OID 1.2.840.10045.2.1, OID 1.3.132.0.10 }, BIT STRING (65 bytes) }
    const PREFIX: [u8; 23] = [
        0x30, 0x56, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05,
        0x2b, 0x81, 0x04, 0x00, 0x0a, 0x03, 0x42, 0x00,
    ];
    let point = public_key.to_encoded_point(false);
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(point.as_bytes());
    der
}

fn read_limited_file(path: &Path) -> Result<Zeroizing<String>, PhraseError> {
    let source = PhraseSource::File(path.to_path_buf());
    let file = std::fs::File::open(path).map_err(|e| PhraseError::Read {
        source_name: source.to_string(),
        message: e.to_string(),
    })?;
    read_limited(file, &source)
}

fn read_limited(
    reader: impl Read,
    source: &PhraseSource,
) -> Result<Zeroizing<String>, PhraseError> {
    let mut bytes = Zeroizing::new(Vec::new());
    reader
        .take(MAX_PHRASE_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| PhraseError::Read {
            source_name: source.to_string(),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_PHRASE_INPUT {
        return Err(PhraseError::Read {
            source_name: source.to_string(),
            message: format!("more than {MAX_PHRASE_INPUT} bytes: not a recovery phrase"),
        });
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| PhraseError::Read {
        source_name: source.to_string(),
        message: "not valid UTF-8".into(),
    })?;
    Ok(Zeroizing::new(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bip32::Prefix;

    /// Official BIP39 English test vectors (trezor/python-mnemonic `vectors.json`):
    /// entropy, mnemonic, seed for passphrase "TREZOR", BIP32 root key of that seed.
    const TREZOR_VECTORS: &[(&str, &str, &str, &str)] = &[
        (
            "00000000000000000000000000000000",
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
            "c55257c360c07c72029aebc1b53c05ed0362ada38ead3e3e9efa3708e53495531f09a6987599d18264c1e1c92f2cf141630c7a3c4ab7c81b2f001698e7463b04",
            "xprv9s21ZrQH143K3h3fDYiay8mocZ3afhfULfb5GX8kCBdno77K4HiA15Tg23wpbeF1pLfs1c5SPmYHrEpTuuRhxMwvKDwqdKiGJS9XFKzUsAF",
        ),
        (
            "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f",
            "legal winner thank year wave sausage worth useful legal winner thank yellow",
            "2e8905819b8723fe2c1d161860e5ee1830318dbf49a83bd451cfb8440c28bd6fa457fe1296106559a3c80937a1c1069be3a3a5bd381ee6260e8d9739fce1f607",
            "xprv9s21ZrQH143K2gA81bYFHqU68xz1cX2APaSq5tt6MFSLeXnCKV1RVUJt9FWNTbrrryem4ZckN8k4Ls1H6nwdvDTvnV7zEXs2HgPezuVccsq",
        ),
        (
            "ffffffffffffffffffffffffffffffff",
            "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo wrong",
            "ac27495480225222079d7be181583751e86f571027b0497b5b5d11218e0a8a13332572917f0f8e5a589620c6f15b11c61dee327651a14c34e18231052e48c069",
            "xprv9s21ZrQH143K2V4oox4M8Zmhi2Fjx5XK4Lf7GKRvPSgydU3mjZuKGCTg7UPiBUD7ydVPvSLtg9hjp7MQTYsW67rZHAXeccqYqrsx8LcXnyd",
        ),
        (
            "808080808080808080808080808080808080808080808080",
            "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic avoid letter always",
            "107d7c02a5aa6f38c58083ff74f04c607c2d2c0ecc55501dadd72d025b751bc27fe913ffb796f841c49b1d33b610cf0e91d3aa239027f5e99fe4ce9e5088cd65",
            "xprv9s21ZrQH143K3VPCbxbUtpkh9pRG371UCLDz3BjceqP1jz7XZsQ5EnNkYAEkfeZp62cDNj13ZTEVG1TEro9sZ9grfRmcYWLBhCocViKEJae",
        ),
        (
            "6610b25967cdcca9d59875f5cb50b0ea75433311869e930b",
            "gravity machine north sort system female filter attitude volume fold club stay feature office ecology stable narrow fog",
            "628c3827a8823298ee685db84f55caa34b5cc195a778e52d45f59bcf75aba68e4d7590e101dc414bc1bbd5737666fbbef35d1f1903953b66624f910feef245ac",
            "xprv9s21ZrQH143K3uT8eQowUjsxrmsA9YUuQQK1RLqFufzybxD6DH6gPY7NjJ5G3EPHjsWDrs9iivSbmvjc9DQJbJGatfa9pv4MZ3wjr8qWPAK",
        ),
        (
            "0000000000000000000000000000000000000000000000000000000000000000",
            "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon art",
            "bda85446c68413707090a52022edd26a1c9462295029f2e60cd7c4f2bbd3097170af7a4d73245cafa9c3cca8d561a7c3de6f5d4a10be8ed2a5e608d68f92fcc8",
            "xprv9s21ZrQH143K32qBagUJAMU2LsHg3ka7jqMcV98Y7gVeVyNStwYS3U7yVVoDZ4btbRNf4h6ibWpY22iRmXq35qgLs79f312g2kj5539ebPM",
        ),
        (
            "68a79eaca2324873eacc50cb9c6eca8cc68ea5d936f98787c60c7ebc74e6ce7c",
            "hamster diagram private dutch cause delay private meat slide toddler razor book happy fancy gospel tennis maple dilemma loan word shrug inflict delay length",
            "64c87cde7e12ecf6704ab95bb1408bef047c22db4cc7491c4271d170a1b213d20b385bc1588d9c7b38f1b39d415665b8a9030c9ec653d75e65f847d8fc1fc440",
            "xprv9s21ZrQH143K2XTAhys3pMNcGn261Fi5Ta2Pw8PwaVPhg3D8DWkzWQwjTJfskj8ofb81i9NP2cUNKxwjueJHHMQAnxtivTA75uUFqPFeWzk",
        ),
        (
            "f585c11aec520db57dd353c69554b21a89b20fb0650966fa0a9d6f74fd989d8f",
            "void come effort suffer camp survey warrior heavy shoot primary clutch crush open amazing screen patrol group space point ten exist slush involve unfold",
            "01f5bced59dec48e362f2c45b5de68b9fd6c92c6634f44d6d40aab69056506f0e35524a518034ddc1192e1dacd32c1ed3eaa3c3b131c88ed8e7e54c49a5d0998",
            "xprv9s21ZrQH143K39rnQJknpH1WEPFJrzmAqqasiDcVrNuk926oizzJDDQkdiTvNPr2FYDYzWgiMiC63YmfPAa2oPyNB23r2g7d1yiK6WpqaQS",
        ),
    ];

    #[test]
    fn trezor_vectors_entropy_to_mnemonic_to_seed_to_root_key() {
        for (entropy, words, seed, root) in TREZOR_VECTORS {
            let phrase = RecoveryPhrase::from_entropy(&hex::decode(entropy).unwrap()).unwrap();
            assert_eq!(phrase.reveal().as_str(), *words);
            let parsed = RecoveryPhrase::parse(words).unwrap();
            let derived = parsed.seed("TREZOR");
            assert_eq!(hex::encode(derived.as_ref()), *seed, "seed of {words}");
            let xprv = XPrv::new(derived.as_ref()).unwrap();
            assert_eq!(
                xprv.to_string(Prefix::XPRV).as_str(),
                *root,
                "root of {words}"
            );
        }
    }

    /// BIP32 test vector 1 (seed 000102…0f): private derivation through hardened and normal
    /// children, compared with the published extended private keys.
    #[test]
    fn bip32_vector_1_private_derivation() {
        let seed = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let cases = [
            ("m", "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi"),
            ("m/0'", "xprv9uHRZZhk6KAJC1avXpDAp4MDc3sQKNxDiPvvkX8Br5ngLNv1TxvUxt4cV1rGL5hj6KCesnDYUhd7oWgT11eZG7XnxHrnYeSvkzY7d2bhkJ7"),
            ("m/0'/1", "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs"),
            ("m/0'/1/2'", "xprv9z4pot5VBttmtdRTWfWQmoH1taj2axGVzFqSb8C9xaxKymcFzXBDptWmT7FwuEzG3ryjH4ktypQSAewRiNMjANTtpgP4mLTj34bhnZX7UiM"),
            ("m/0'/1/2'/2", "xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb2Tyh8RfQMuPh7f7RtyzTtdrbdqqsunu5Mm3wDvUAKRHSC34sJ7in334"),
            ("m/0'/1/2'/2/1000000000", "xprvA41z7zogVVwxVSgdKUHDy1SKmdb533PjDz7J6N6mV6uS3ze1ai8FHa8kmHScGpWmj4WggLyQjgPie1rFSruoUihUZREPSL39UNdE3BBDu76"),
        ];
        for (path, expected) in cases {
            let xprv = XPrv::derive_from_path(&seed, &path.parse().unwrap()).unwrap();
            assert_eq!(xprv.to_string(Prefix::XPRV).as_str(), expected, "{path}");
            let key = derive_secp256k1(&seed, path).unwrap();
            assert_eq!(key.to_bytes(), xprv.private_key().to_bytes(), "{path}");
        }
    }

    /// quill's own test (`tests/commands/generate.sh` and `tests/outputs/generate.txt` in
    /// dfinity/quill): `quill generate --phrase "tornado allow …"` then `quill public-ids`
    /// prints this principal. quill and dfx derive along m/44'/223'/0'/0/0 with an empty
    /// passphrase.
    #[test]
    fn phrase_gives_the_principal_quill_gives() {
        let phrase = RecoveryPhrase::parse(
            "tornado allow zero warm have deer wool finish tiger ski dynamic strong",
        )
        .unwrap();
        assert_eq!(
            phrase.principal().unwrap().to_text(),
            "beckf-r6bg7-t6ju6-s7k45-b5jtj-mcm57-zjaie-svgrr-7ekzs-55v75-sae"
        );
    }

    #[test]
    fn case_and_whitespace_do_not_matter() {
        let a = RecoveryPhrase::parse(
            "tornado allow zero warm have deer wool finish tiger ski dynamic strong",
        )
        .unwrap();
        let b = RecoveryPhrase::parse(
            "  Tornado ALLOW zero\twarm have deer\nwool finish tiger ski dynamic strong\n",
        )
        .unwrap();
        assert_eq!(a.principal().unwrap(), b.principal().unwrap());
    }

    #[test]
    fn wrong_checksum_is_a_clear_error() {
        // The last word of the first vector changed from "about" to "abandon".
        let err = RecoveryPhrase::parse(&["abandon"; 12].join(" ")).unwrap_err();
        assert_eq!(err, PhraseError::Checksum);
        assert!(err.to_string().contains("checksum"));
    }

    #[test]
    fn unknown_word_is_reported_by_position_without_the_word() {
        let err = RecoveryPhrase::parse(
            "tornado allow zero warm qwertyx deer wool finish tiger ski dynamic strong",
        )
        .unwrap_err();
        assert_eq!(err, PhraseError::UnknownWord(5));
        assert!(!err.to_string().contains("qwertyx"));
    }

    #[test]
    fn only_12_18_or_24_words_are_accepted() {
        // 15 words is valid BIP39 but not accepted here.
        let fifteen = RecoveryPhrase::from_entropy(&[0u8; 20]);
        assert_eq!(fifteen.unwrap_err(), PhraseError::WordCount(15));
        let err = RecoveryPhrase::parse("abandon abandon abandon").unwrap_err();
        assert_eq!(err, PhraseError::WordCount(3));
        assert_eq!(
            RecoveryPhrase::parse("").unwrap_err(),
            PhraseError::WordCount(0)
        );
    }

    #[test]
    fn generated_phrases_have_24_words_and_round_trip() {
        let a = RecoveryPhrase::generate().unwrap();
        let b = RecoveryPhrase::generate().unwrap();
        assert_eq!(a.word_count(), 24);
        assert_ne!(a.reveal(), b.reveal());
        let again = RecoveryPhrase::parse(&a.reveal()).unwrap();
        assert_eq!(again.principal().unwrap(), a.principal().unwrap());
    }

    #[test]
    fn debug_output_does_not_reveal_the_phrase() {
        let phrase = RecoveryPhrase::parse(
            "tornado allow zero warm have deer wool finish tiger ski dynamic strong",
        )
        .unwrap();
        let shown = format!("{phrase:?}");
        assert!(!shown.contains("tornado"), "{shown}");
    }

    #[test]
    fn phrase_file_is_read_and_oversized_input_refused() {
        let dir = std::env::temp_dir().join(format!("fleet-phrase-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(
            &good,
            "tornado allow zero warm have deer wool finish tiger ski dynamic strong\n",
        )
        .unwrap();
        let phrase = RecoveryPhrase::read(&PhraseSource::File(good)).unwrap();
        assert_eq!(phrase.word_count(), 12);
        let big = dir.join("big");
        std::fs::write(&big, vec![b'a'; 5000]).unwrap();
        let err = RecoveryPhrase::read(&PhraseSource::File(big)).unwrap_err();
        assert!(matches!(err, PhraseError::Read { .. }), "{err}");
        let missing = RecoveryPhrase::read(&PhraseSource::File(dir.join("none"))).unwrap_err();
        assert!(matches!(missing, PhraseError::Read { .. }), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
