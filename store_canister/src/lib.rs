//! The store canister: the manager creates one on each subnet the fleet uses besides its own
//! (`add_subnet`), as its only controller, and installs this module in it.
//!
//! It exists for its IC chunk store: `install_chunked_code` takes chunks only from a store
//! canister on the target's subnet whose controllers include the caller (interface spec, "IC
//! method `install_chunked_code`"), so the manager fills this canister's chunk store
//! (`upload_chunk`, as its controller) with every release it installs on the subnet. A chunk
//! store cannot be listed by anyone but a controller (`stored_chunks`), so the manager also
//! records each release it mirrors here (`record_release`) and forgets those it clears
//! (`forget_release`): `releases` and `status` are public queries, and anyone can audit what
//! the subnet's store holds.
//!
//! Only the manager changes the record; every other caller, the anonymous principal included,
//! gets `NotAuthorized`, and its ingress updates are dropped in `canister_inspect_message`
//! before they are paid for. State lives in stable structures only ([`memory`]), so upgrades
//! keep it and there is no `pre_upgrade`.

pub mod memory;
pub mod state;

use std::cell::RefCell;

use candid::Nat;
use fleet_api::endpoint::CallKind;
use fleet_api::store_canister::{
    ForgetReleaseReply, RecordReleaseReply, StoreInit, StoreStatus, StoredRelease,
};

thread_local! {
    static STORE: RefCell<state::Store<memory::Memory>> = RefCell::new(state::Store::open(
        memory::get(memory::CONFIG),
        memory::get(memory::RELEASES),
    ));
}

fn with<T>(f: impl FnOnce(&state::Store<memory::Memory>) -> T) -> T {
    STORE.with(|s| f(&s.borrow()))
}

fn with_mut<T>(f: impl FnOnce(&mut state::Store<memory::Memory>) -> T) -> T {
    STORE.with(|s| f(&mut s.borrow_mut()))
}

/// Install: records the manager. A bad argument traps, so the install fails.
#[ic_cdk::init]
fn init(arg: StoreInit) {
    if let Err(e) = with_mut(|s| s.initialize(arg.manager)) {
        ic_cdk::trap(e);
    }
}

/// Upgrade: keeps the manager and the releases recorded. A trap keeps the previous module and
/// state (interface spec, "IC method `install_code`", upgrade mode).
#[ic_cdk::post_upgrade]
fn post_upgrade() {
    if let Err(e) = with(|s| s.check_layout()) {
        ic_cdk::trap(e);
    }
}

/// Drops, before it is inducted and paid for, an ingress message the store would refuse: an
/// update from anyone but the manager (which, a canister, never sends ingress), or a method
/// whose argument does not decode (interface spec, "Ingress message inspection"). Queries sent
/// as updates are admitted: anyone may read. Calls from canisters are not inspected; the
/// handlers check again.
#[ic_cdk::inspect_message]
fn inspect_message() {
    let method = ic_cdk::api::msg_method_name();
    let admitted =
        match fleet_api::store_canister::method::decodes(&method, &ic_cdk::api::msg_arg_data()) {
            Some(true) => {
                let update = fleet_api::store_canister::method::METHODS
                    .iter()
                    .any(|(name, kind)| *name == method && *kind == CallKind::Update);
                !update || with(|s| s.is_manager(ic_cdk::api::msg_caller()))
            }
            Some(false) | None => false,
        };
    if admitted {
        ic_cdk::api::accept_message();
    }
}

/// The store's chunk store holds `release`. Manager only.
#[ic_cdk::update]
fn record_release(release: StoredRelease) -> RecordReleaseReply {
    let caller = ic_cdk::api::msg_caller();
    with_mut(|s| s.record(caller, release)).into()
}

/// The store's chunk store no longer holds `version`. Manager only.
#[ic_cdk::update]
fn forget_release(version: String) -> ForgetReleaseReply {
    let caller = ic_cdk::api::msg_caller();
    with_mut(|s| s.forget(caller, &version)).into()
}

/// The releases the manager recorded, in version order.
#[ic_cdk::query]
fn releases() -> Vec<StoredRelease> {
    with(|s| s.releases())
}

#[ic_cdk::query]
fn status() -> StoreStatus {
    with(|s| StoreStatus {
        manager: s.config().manager,
        releases: s.release_count(),
        chunks: s.chunk_count(),
        cycles: Nat::from(ic_cdk::api::canister_cycle_balance()),
        layout_version: s.config().layout_version,
    })
}

ic_cdk::export_candid!();

#[cfg(test)]
mod tests;
