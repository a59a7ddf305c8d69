//! Every stable memory of the canister. An id is never reused for another purpose, even after
//! the structure it held is retired, so that any older module's data is never misread.
//! Id 9 is reserved for the test-only fault switch (feature `fault_switch`): no build uses it
//! for anything else, so a release build never misreads a switch a test build left behind.

use std::cell::RefCell;

use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::DefaultMemoryImpl;

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// [`crate::state::Header`]: layout and schema versions.
pub const HEADER: MemoryId = MemoryId::new(0);
/// [`crate::state::Config`]: owner, recovery principal, manager, release.
pub const CONFIG: MemoryId = MemoryId::new(1);
/// Schema 1 notes: key → text. Emptied by the migration to schema 2.
pub const NOTES_V1: MemoryId = MemoryId::new(2);
/// Schema 2 notes: key → text with created/updated times.
pub const NOTES_V2: MemoryId = MemoryId::new(3);
/// [`crate::faults::FaultSwitch`], test builds only. Reserved: never reused, even without the
/// feature, since a canister upgraded from a test build still holds the switch here.
#[cfg(feature = "fault_switch")]
pub const FAULT_SWITCH: MemoryId = MemoryId::new(9);

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
}

pub fn get(id: MemoryId) -> Memory {
    MEMORY_MANAGER.with(|m| m.borrow().get(id))
}
