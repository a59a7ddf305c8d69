//! Certification (interface spec, "Certification", "Certificate", "Lookup", "Encoding of
//! certificates", "The system state tree"): each simulated IC has its own BLS12-381 root key and
//! signs hash trees of its state with it, so that certificates verify as the IC's do.
//!
//! - [`RootKey`]: the instance's key pair, derived from a 32-byte seed so that runs are
//!   reproducible. Signatures are BLS signatures on G1 with the public key on G2, over
//!   `domain_sep("ic-state-root") · root_hash` (spec, "Certificate"), made by the
//!   `ic-verify-bls-signature` crate.
//! - [`StateTree`]: a labeled tree (the system state tree, or any part of it) from which a
//!   witness revealing chosen paths is cut: every other subtree is pruned to its hash, so the
//!   witness has the root hash of the whole tree (spec, "Lookup" and "Encoding of
//!   certificates").
//! - [`RootKey::certify`]: a CBOR certificate `{tree, signature}` under the self-describing
//!   tag 55799 for any witness (spec, "Encoding of certificates"). No delegation: the one
//!   simulated subnet signs with the root key itself, each of several subnets too (no subnet
//!   keys or delegations are modelled).
//!
//! Data certificates (spec, "Certified data") are cut from a state tree holding
//! `/canister/<id>/certified_data` for every canister and `/time`.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use candid::Principal;
use ic_certification::hash_tree::{fork_hash, labeled_hash, leaf_hash, Hash};
use ic_certification::{empty, fork, labeled, leaf, pruned, Certificate, HashTree};
use ic_verify_bls_signature::PrivateKey;
use serde::Serialize;
use sha2::{Digest, Sha512};

use crate::module::CanisterModule;
use crate::sim::Sim;

/// DER prefix of an IC BLS public key (spec, "Certificate"): the algorithm identifier
/// `1.3.6.1.4.1.44668.5.3.1.2.1` with curve `1.3.6.1.4.1.44668.5.3.2.1`, then a bit string of
/// the 96-byte compressed G2 point.
pub const ROOT_KEY_DER_PREFIX: [u8; 37] = [
    0x30, 0x81, 0x82, 0x30, 0x1d, 0x06, 0x0d, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05,
    0x03, 0x01, 0x02, 0x01, 0x06, 0x0c, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0xdc, 0x7c, 0x05, 0x03,
    0x02, 0x01, 0x03, 0x61, 0x00,
];

/// Domain separator of the signed root hash: `domain_sep("ic-state-root")`, the length byte
/// 13 followed by the name (spec, "Certificate").
pub const STATE_ROOT_DOMAIN: &[u8] = b"\x0Dic-state-root";

/// The self-describing CBOR tag every certificate starts with (spec, "Encoding of
/// certificates").
const SELF_DESCRIBING_TAG: [u8; 3] = [0xd9, 0xd9, 0xf7];

/// Why a certificate could not be produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertificationError {
    /// The CBOR encoder refused the certificate.
    Encoding(String),
}

impl std::fmt::Display for CertificationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertificationError::Encoding(e) => write!(f, "certificate encoding failed: {e}"),
        }
    }
}

impl std::error::Error for CertificationError {}

struct KeyPair {
    secret: PrivateKey,
    der: Vec<u8>,
}

/// The root key of one simulated IC. The key pair is derived on first use (one scalar
/// multiplication), so instances that never certify anything pay nothing for it.
pub struct RootKey {
    seed: [u8; 32],
    pair: OnceLock<KeyPair>,
    /// The last signed root hash and its signature: BLS signatures are deterministic, so a
    /// state that did not change is not signed twice.
    last: Mutex<Option<(Hash, Vec<u8>)>>,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKey")
            .field("public_key", &self.public_key_der())
            .finish()
    }
}

impl RootKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        RootKey {
            seed,
            pair: OnceLock::new(),
            last: Mutex::new(None),
        }
    }

    /// The seed the key was derived from (pocket-ic's `SubnetConfig::subnet_seed`).
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    fn pair(&self) -> &KeyPair {
        self.pair.get_or_init(|| {
            // A 512-bit hash of the seed reduced modulo the group order: a uniformly
            // distributed secret scalar.
            let wide: [u8; 64] = Sha512::new()
                .chain_update(b"ic_sim root key")
                .chain_update(self.seed)
                .finalize()
                .into();
            let scalar = ic_bls12_381::Scalar::from_bytes_wide(&wide);
            // `PrivateKey` takes the big-endian encoding; `Scalar` gives little-endian.
            let mut be = scalar.to_bytes();
            be.reverse();
            let secret = PrivateKey::deserialize(&be)
                .expect("a reduced scalar is always in the range of a private key");
            let mut der = ROOT_KEY_DER_PREFIX.to_vec();
            der.extend_from_slice(&secret.public_key().serialize());
            KeyPair { secret, der }
        })
    }

    /// The DER-encoded public key (spec, "Certificate"; what `ic0.root_key_copy` and
    /// pocket-ic's `root_key` give).
    pub fn public_key_der(&self) -> &[u8] {
        &self.pair().der
    }

    /// Signs a state tree's root hash: `domain_sep("ic-state-root") · root_hash`.
    pub fn sign_root_hash(&self, root_hash: &Hash) -> Vec<u8> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((hash, signature)) = last.as_ref() {
            if hash == root_hash {
                return signature.clone();
            }
        }
        let mut message = STATE_ROOT_DOMAIN.to_vec();
        message.extend_from_slice(root_hash);
        let signature = self.pair().secret.sign(&message).serialize().to_vec();
        *last = Some((*root_hash, signature.clone()));
        signature
    }

    /// A certificate for `tree` (a whole tree or a witness of one: both have the same root
    /// hash), CBOR-encoded with the self-describing tag.
    pub fn certify(&self, tree: HashTree) -> Result<Vec<u8>, CertificationError> {
        let signature = self.sign_root_hash(&tree.digest());
        let certificate = Certificate {
            tree,
            signature,
            delegation: None,
        };
        let out = self_described_cbor(&certificate)?;
        debug_assert!(out.starts_with(&SELF_DESCRIBING_TAG));
        Ok(out)
    }
}

/// A labeled tree of blobs: the shape of the system state tree (spec, "The system state
/// tree"). Labels of a node are kept in byte order, as the spec's lookup requires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateTree {
    Leaf(Vec<u8>),
    Node(BTreeMap<Vec<u8>, StateTree>),
}

impl Default for StateTree {
    fn default() -> Self {
        StateTree::Node(BTreeMap::new())
    }
}

/// A witness under construction: the tree and whether it is pruned to a single hash.
struct Cut {
    tree: HashTree,
    pruned: bool,
}

impl StateTree {
    /// Puts `value` at `path`, creating the nodes on the way; a leaf on the way becomes a
    /// node.
    pub fn insert(&mut self, path: &[&[u8]], value: Vec<u8>) {
        let Some((first, rest)) = path.split_first() else {
            *self = StateTree::Leaf(value);
            return;
        };
        if let StateTree::Leaf(_) = self {
            *self = StateTree::default();
        }
        if let StateTree::Node(children) = self {
            children
                .entry(first.to_vec())
                .or_default()
                .insert(rest, value);
        }
    }

    /// The root hash of the tree (spec, "Certificate": `reconstruct`).
    pub fn digest(&self) -> Hash {
        self.witness(&[]).digest()
    }

    /// A tree revealing the values at `paths` (and the labels leading to them) with every
    /// other subtree pruned. A path that ends inside a node reveals the whole subtree.
    pub fn witness(&self, paths: &[&[&[u8]]]) -> HashTree {
        self.cut(paths).tree
    }

    fn cut(&self, paths: &[&[&[u8]]]) -> Cut {
        let revealed = !paths.is_empty();
        let whole = paths.iter().any(|p| p.is_empty());
        match self {
            StateTree::Leaf(value) if revealed => Cut {
                tree: leaf(value.clone()),
                pruned: false,
            },
            StateTree::Leaf(value) => pruned_cut(leaf_hash(value)),
            // An empty node not asked for is pruned too, so that its label stays hidden.
            StateTree::Node(children) if children.is_empty() && !revealed => {
                pruned_cut(empty().digest())
            }
            StateTree::Node(children) => {
                // A requested label this node lacks is proven absent by revealing the labels
                // on either side of it (spec, "Lookup": a lookup is `Absent` only where the
                // witness shows the neighbouring labels), their subtrees pruned.
                let mut neighbours = std::collections::BTreeSet::new();
                if !whole {
                    for first in paths.iter().filter_map(|p| p.first()) {
                        if children.contains_key(*first) {
                            continue;
                        }
                        use std::ops::Bound::{Excluded, Unbounded};
                        let below = children
                            .range::<[u8], _>((Unbounded, Excluded(*first)))
                            .next_back();
                        let above = children
                            .range::<[u8], _>((Excluded(*first), Unbounded))
                            .next();
                        neighbours.extend(below.into_iter().chain(above).map(|(l, _)| l));
                    }
                }
                let cuts = children
                    .iter()
                    .map(|(label, child)| {
                        let below: Vec<&[&[u8]]> = if whole {
                            vec![&[]]
                        } else {
                            paths
                                .iter()
                                .filter_map(|p| p.split_first())
                                .filter(|(first, _)| **first == label.as_slice())
                                .map(|(_, rest)| rest)
                                .collect()
                        };
                        let cut = child.cut(&below);
                        if cut.pruned && neighbours.contains(label) {
                            Cut {
                                tree: labeled(label.clone(), cut.tree),
                                pruned: false,
                            }
                        } else if cut.pruned {
                            pruned_cut(labeled_hash(label, &cut.tree.digest()))
                        } else {
                            Cut {
                                tree: labeled(label.clone(), cut.tree),
                                pruned: false,
                            }
                        }
                    })
                    .collect::<Vec<_>>();
                forks(cuts)
            }
        }
    }
}

fn pruned_cut(hash: Hash) -> Cut {
    Cut {
        tree: pruned(hash),
        pruned: true,
    }
}

/// Joins the children of a node into a balanced tree of forks, in label order; a fork of two
/// pruned subtrees is pruned itself.
fn forks(mut cuts: Vec<Cut>) -> Cut {
    if cuts.len() <= 1 {
        return cuts.pop().unwrap_or(Cut {
            tree: empty(),
            pruned: false,
        });
    }
    let right = cuts.split_off(cuts.len() / 2);
    let (l, r) = (forks(cuts), forks(right));
    if l.pruned && r.pruned {
        pruned_cut(fork_hash(&l.tree.digest(), &r.tree.digest()))
    } else {
        Cut {
            tree: fork(l.tree, r.tree),
            pruned: false,
        }
    }
}

/// Unsigned LEB128, the encoding of natural numbers in the state tree (spec, "The system
/// state tree": `/time`).
pub(crate) fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(10);
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// CBOR of `value` under the self-describing tag (interface spec, "CBOR"), the encoding of
/// the state tree's CBOR values such as `/canister/<id>/controllers`.
fn self_described_cbor<T: Serialize>(value: &T) -> Result<Vec<u8>, CertificationError> {
    let mut out = Vec::new();
    let mut serializer = serde_cbor::Serializer::new(&mut out);
    serializer
        .self_describe()
        .map_err(|e| CertificationError::Encoding(e.to_string()))?;
    value
        .serialize(&mut serializer)
        .map_err(|e| CertificationError::Encoding(e.to_string()))?;
    Ok(out)
}

impl Sim {
    /// The part of the system state tree a read_state request may ask about canisters and time
    /// (interface spec, "The system state tree", "Canister information"): `/time`, and per
    /// canister `certified_data`, `module_hash` (when a module is installed) and `controllers`
    /// (CBOR, self-describing tag, an array of principals).
    pub(crate) fn read_state_tree(&self) -> Result<StateTree, CertificationError> {
        let mut tree = self.state_tree();
        for (id, c) in &self.canisters {
            if let Some(module) = &c.module {
                tree.insert(
                    &[b"canister", id.as_slice(), b"module_hash"],
                    module.hash.to_vec(),
                );
            }
            let controllers = self_described_cbor(&c.settings.controllers)?;
            tree.insert(&[b"canister", id.as_slice(), b"controllers"], controllers);
        }
        Ok(tree)
    }

    /// The certified part of the system state tree the simulator keeps: `/time` and
    /// `/canister/<id>/certified_data` of every canister (spec, "The system state tree").
    pub(crate) fn state_tree(&self) -> StateTree {
        let mut canisters = BTreeMap::new();
        for (id, c) in &self.canisters {
            let mut node = StateTree::default();
            node.insert(&[b"certified_data"], c.certified_data.clone());
            canisters.insert(id.as_slice().to_vec(), node);
        }
        let mut root = BTreeMap::new();
        root.insert(b"canister".to_vec(), StateTree::Node(canisters));
        root.insert(b"time".to_vec(), StateTree::Leaf(leb128(self.time)));
        StateTree::Node(root)
    }

    /// The data certificate of `canister` (spec, "Certified data"): a certificate of the
    /// current state revealing `/canister/<id>/certified_data` and `/time`.
    pub(crate) fn data_certificate(
        &self,
        canister: &Principal,
    ) -> Result<Vec<u8>, CertificationError> {
        let tree = self.state_tree().witness(&[
            &[b"canister", canister.as_slice(), b"certified_data"],
            &[b"time"],
        ]);
        self.root_key.certify(tree)
    }

    /// What `ic0.data_certificate_*` see in the method a query call targets (spec,
    /// "Certified data": present there only, absent in replicated executions, composite query
    /// callbacks and the methods of other canisters the query calls). Building the tree and
    /// signing it is skipped for a module that imports neither `data_certificate_size` nor
    /// `data_certificate_copy`: it can only learn that a certificate is present. A certificate
    /// that cannot be encoded is absent.
    pub(crate) fn query_call_certificate(
        &self,
        canister: &Principal,
        module: &CanisterModule,
    ) -> Option<Vec<u8>> {
        let reads = module.module.imports().any(|i| {
            i.module() == "ic0"
                && matches!(i.name(), "data_certificate_size" | "data_certificate_copy")
        });
        if !reads {
            return Some(Vec::new());
        }
        self.data_certificate(canister).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_certification::LookupResult;

    #[test]
    fn leb128_matches_the_spec_examples() {
        assert_eq!(leb128(0), [0]);
        assert_eq!(leb128(127), [0x7f]);
        assert_eq!(leb128(128), [0x80, 0x01]);
        assert_eq!(leb128(624_485), [0xe5, 0x8e, 0x26]);
    }

    #[test]
    fn a_witness_keeps_the_root_hash_and_reveals_only_its_paths() {
        let mut t = StateTree::default();
        for i in 0u8..7 {
            t.insert(&[b"canister", &[i], b"certified_data"], vec![i; 3]);
        }
        t.insert(&[b"time"], leb128(42));
        let w = t.witness(&[&[b"canister", &[3], b"certified_data"]]);
        assert_eq!(w.digest(), t.digest());
        assert_eq!(
            w.lookup_path([b"canister".as_slice(), &[3], b"certified_data"]),
            LookupResult::Found(&[3, 3, 3])
        );
        assert!(matches!(
            w.lookup_path([b"canister".as_slice(), &[4], b"certified_data"]),
            LookupResult::Unknown
        ));
        assert!(matches!(w.lookup_path([b"time"]), LookupResult::Unknown));
        // An empty node is revealed when asked for and pruned (its label hidden) otherwise;
        // both cuts have the same root hash.
        let mut with_empty = t.clone();
        if let StateTree::Node(children) = &mut with_empty {
            children.insert(b"empty".to_vec(), StateTree::default());
        }
        let revealed = with_empty.witness(&[&[b"empty"]]);
        let hidden = with_empty.witness(&[&[b"time"]]);
        assert_eq!(revealed.digest(), hidden.digest());
        assert_eq!(revealed.lookup_path([b"empty"]), LookupResult::Absent);
        assert_eq!(hidden.lookup_path([b"empty"]), LookupResult::Unknown);
        // A label the tree lacks is proven absent: its neighbours' labels are revealed.
        let absent = t.witness(&[
            &[b"canister", &[9], b"certified_data"],
            &[b"request_status", &[1]],
        ]);
        assert_eq!(absent.digest(), t.digest());
        assert_eq!(
            absent.lookup_path([b"canister".as_slice(), &[9], b"certified_data"]),
            LookupResult::Absent
        );
        assert_eq!(
            absent.lookup_path([b"request_status".as_slice(), &[1], b"status"]),
            LookupResult::Absent
        );
        // Revealing nothing prunes the whole tree to its root hash.
        let nothing = t.witness(&[]);
        assert!(matches!(
            nothing.as_ref(),
            ic_certification::HashTreeNode::Pruned(h) if *h == t.digest()
        ));
    }
}
