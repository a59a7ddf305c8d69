//! The parts of the system state tree the server keeps itself (interface spec, "The system
//! state tree"): the subnet (its public key, type, canister ranges and node) and request
//! statuses.

use candid::Principal;
use ic_sim::{RejectResponse, StateTree};
use serde::Serialize;

/// Where a request stands (spec, "Request status").
#[derive(Clone, Debug)]
pub enum Status {
    Processing,
    Replied(Vec<u8>),
    Rejected(RejectResponse),
}

/// The one canister range of the simulated subnet: every canister id the IC allocates (an
/// eight-byte index followed by `0x01 0x01`), as ic_sim's topology declares.
pub fn canister_range() -> (Principal, Principal) {
    let id = |index: u64| {
        let mut bytes = index.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[1, 1]);
        Principal::from_slice(&bytes)
    };
    (id(0), id(u64::MAX))
}

/// CBOR under the self-describing tag (spec, "CBOR").
pub fn cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_cbor::Serializer::new(&mut out);
    // Writing to a vector cannot fail, and the values encoded here are plain data.
    if serializer.self_describe().is_err() || value.serialize(&mut serializer).is_err() {
        out.clear();
    }
    out
}

fn leb128(n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a vector cannot fail.
    let _ = leb128::write::unsigned(&mut out, n);
    out
}

/// Adds `/subnet/<subnet>/{public_key,type,canister_ranges,node/<node>/public_key}` and
/// `/canister_ranges/<subnet>/<first id>` (spec, "Subnet information").
pub fn add_subnet(
    tree: &mut StateTree,
    subnet: Principal,
    root_key: &[u8],
    node: Principal,
    node_key: &[u8],
) {
    let s = subnet.as_slice();
    let range = canister_range();
    let ranges = cbor(&vec![range]);
    tree.insert(&[b"subnet", s, b"public_key"], root_key.to_vec());
    tree.insert(&[b"subnet", s, b"type"], b"application".to_vec());
    tree.insert(&[b"subnet", s, b"canister_ranges"], ranges.clone());
    tree.insert(
        &[b"subnet", s, b"node", node.as_slice(), b"public_key"],
        node_key.to_vec(),
    );
    tree.insert(&[b"canister_ranges", s, range.0.as_slice()], ranges);
}

/// Adds `/request_status/<id>/...` for one request (spec, "Request status").
pub fn add_request_status(tree: &mut StateTree, request_id: &[u8], status: &Status) {
    let at = |leaf: &'static [u8]| [b"request_status".as_slice(), request_id, leaf];
    match status {
        Status::Processing => tree.insert(&at(b"status"), b"processing".to_vec()),
        Status::Replied(reply) => {
            tree.insert(&at(b"status"), b"replied".to_vec());
            tree.insert(&at(b"reply"), reply.clone());
        }
        Status::Rejected(reject) => {
            tree.insert(&at(b"status"), b"rejected".to_vec());
            tree.insert(&at(b"reject_code"), leb128(reject.reject_code as u64));
            tree.insert(
                &at(b"reject_message"),
                reject.reject_message.as_bytes().to_vec(),
            );
            tree.insert(
                &at(b"error_code"),
                reject.error_code.to_string().into_bytes(),
            );
        }
    }
}
