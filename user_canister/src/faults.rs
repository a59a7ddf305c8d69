//! Test-only fault switch (feature `fault_switch`), so that a test can make one release fail on
//! some canisters only: the fault variants `fault_post_upgrade_trap` and `fault_health` fail on
//! every canister they are installed in, whereas this switch is set per canister by a controller
//! and kept in stable memory ([`crate::memory::FAULT_SWITCH`]), where the `post_upgrade` and
//! `fleet_health` of the next module (also built with `fault_switch`) read it.
//!
//! The switch is opened on every use rather than kept in [`crate::state::State`]: it is tiny,
//! and reading it must not depend on the state having been loaded (`post_upgrade` reads it after
//! the migration, `fleet_health` before touching the notes).

use std::borrow::Cow;

use candid::{CandidType, Decode, Encode};
use ic_stable_structures::storable::{Bound, Storable};
use ic_stable_structures::{Cell, Memory as _};
use serde::{Deserialize, Serialize};

use crate::memory;

/// Which faults this canister injects. All false by default (a canister never switched).
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultSwitch {
    /// `post_upgrade` traps (after the migration), so the IC keeps the previous module and state.
    pub trap_post_upgrade: bool,
    /// `fleet_health` replies `ok: false` with a message.
    pub fail_health: bool,
    /// `fleet_health` traps, so the health call is rejected.
    pub trap_health: bool,
}

/// Why `set_faults` was refused; a refused call changes nothing.
#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetFaultsError {
    /// Only a controller of the canister (the manager, the recovery principal) may set faults.
    NotAController,
}

/// Candid-encoded, like the config, so that a later build can add `opt` fields.
impl Storable for FaultSwitch {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(Encode!(self).expect("encoding the fault switch"))
    }

    fn into_bytes(self) -> Vec<u8> {
        Encode!(&self).expect("encoding the fault switch")
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Decode!(&bytes, FaultSwitch).expect("stored fault switch decodes")
    }

    const BOUND: Bound = Bound::Unbounded;
}

/// The stored switch, or all false if it was never set. An unset switch is read without
/// writing, so that a query or an upgrade never allocates the memory for it.
pub fn get() -> FaultSwitch {
    let memory = memory::get(memory::FAULT_SWITCH);
    if memory.size() == 0 {
        return FaultSwitch::default();
    }
    *Cell::init(memory, FaultSwitch::default()).get()
}

/// Stores the switch; it outlives upgrades, like every stable structure.
pub fn set(switch: FaultSwitch) {
    Cell::init(memory::get(memory::FAULT_SWITCH), FaultSwitch::default()).set(switch);
}
