//! Certified data and data certificates (interface spec, "Certified data"), built with the
//! `certification` feature so that the default module imports no certificate functions.

use candid::Principal;
use ic_cdk::call::Call;

/// Sets the certified data (at most 32 bytes; more traps).
#[ic_cdk::update]
fn set_certified_data(data: Vec<u8>) {
    ic_cdk::api::certified_data_set(data);
}

/// The data certificate this query sees, if one is present.
#[ic_cdk::query]
fn data_certificate() -> Option<Vec<u8>> {
    ic_cdk::api::data_certificate()
}

/// The data certificate an update sees (none, on the IC).
#[ic_cdk::update]
fn data_certificate_in_update() -> Option<Vec<u8>> {
    ic_cdk::api::data_certificate()
}

/// The root key as `ic0.root_key_copy` gives it (replicated mode only).
#[ic_cdk::update]
fn root_key() -> Vec<u8> {
    ic_cdk::api::root_key()
}

/// What a composite query sees: its own certificate before calling `callee`'s
/// `data_certificate`, the callee's answer, and its own certificate in the callback.
#[ic_cdk::query(composite = true)]
async fn certificates_in_composite(
    callee: Principal,
) -> (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>) {
    let before = ic_cdk::api::data_certificate();
    let callee_sees = match Call::unbounded_wait(callee, "data_certificate").await {
        Ok(reply) => reply.candid::<Option<Vec<u8>>>().unwrap_or_default(),
        Err(e) => ic_cdk::trap(format!("calling data_certificate: {e}")),
    };
    (before, callee_sees, ic_cdk::api::data_certificate())
}

/// The root key read in a query called as a query (non-replicated mode: traps on the IC).
#[ic_cdk::query]
fn root_key_in_query() -> Vec<u8> {
    ic_cdk::api::root_key()
}
