//! Every stable memory of the store canister. An id is never reused for another purpose, even
//! after the structure it held is retired, so that an older module's data is never misread.

use std::cell::RefCell;

use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::DefaultMemoryImpl;

pub type Memory = VirtualMemory<DefaultMemoryImpl>;

/// [`crate::state::Config`]: layout version and manager.
pub const CONFIG: MemoryId = MemoryId::new(0);
/// Releases recorded: version → [`crate::state::Record`].
pub const RELEASES: MemoryId = MemoryId::new(1);

thread_local! {
    static MEMORY_MANAGER: RefCell<MemoryManager<DefaultMemoryImpl>> =
        RefCell::new(MemoryManager::init(DefaultMemoryImpl::default()));
}

pub fn get(id: MemoryId) -> Memory {
    MEMORY_MANAGER.with(|m| m.borrow().get(id))
}
