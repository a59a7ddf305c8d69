//! Stable header, configuration, and the install/upgrade transitions of the canister state.

use std::borrow::Cow;
use std::cell::RefCell;

use candid::{CandidType, Decode, Encode, Principal};
use fleet_api::user::{UserInitArg, UserUpgradeArg};
use ic_stable_structures::storable::{Bound, Storable};
use ic_stable_structures::{Cell, Memory as _};
use serde::{Deserialize, Serialize};

use crate::memory::{self, Memory};
use crate::notes::Notes;

/// Version of the memory map in [`crate::memory`]; bumped if a memory id changes meaning.
pub const LAYOUT_VERSION: u32 = 1;

/// The compiled-in app version and the stable schema it writes.
#[cfg(not(feature = "v2"))]
pub const APP_VERSION: &str = "1.0.0";
#[cfg(not(feature = "v2"))]
pub const SCHEMA_VERSION: u32 = 1;
#[cfg(feature = "v2")]
pub const APP_VERSION: &str = "2.0.0";
#[cfg(feature = "v2")]
pub const SCHEMA_VERSION: u32 = 2;

/// First bytes of the header memory, so that memory written by some other program is never
/// taken for this canister's state.
const MAGIC: [u8; 4] = *b"FUC1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub layout_version: u32,
    pub schema_version: u32,
}

impl Storable for Header {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&self.layout_version.to_le_bytes());
        bytes.extend_from_slice(&self.schema_version.to_le_bytes());
        bytes
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        if bytes.len() != 12 || bytes[..4] != MAGIC {
            // Not ours: report a layout no build understands, so post_upgrade refuses it.
            return Header {
                layout_version: u32::MAX,
                schema_version: u32::MAX,
            };
        }
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        Header {
            layout_version: word(4),
            schema_version: word(8),
        }
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: 12,
        is_fixed_size: true,
    };
}

/// Who the canister belongs to and what release runs in it.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub owner: Principal,
    pub recovery_principal: Principal,
    pub manager: Principal,
    #[serde(with = "serde_bytes")]
    pub release_sha256: Vec<u8>,
    pub installed_at: u64,
    pub upgraded_at: Option<u64>,
}

impl Storable for Config {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(Encode!(self).expect("encoding the config"))
    }

    fn into_bytes(self) -> Vec<u8> {
        Encode!(&self).expect("encoding the config")
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        Decode!(&bytes, Config).expect("stored config decodes")
    }

    const BOUND: Bound = Bound::Unbounded;
}

pub struct State {
    header: Cell<Header, Memory>,
    config: Cell<Config, Memory>,
    pub notes: Notes,
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// Runs `f` on the state. Every entry point but `init`/`post_upgrade` runs after one of them.
pub fn with<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(|s| f(s.borrow().as_ref().expect("state is initialized")))
}

pub fn with_mut<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(s.borrow_mut().as_mut().expect("state is initialized")))
}

impl State {
    pub fn header(&self) -> Header {
        *self.header.get()
    }

    pub fn config(&self) -> &Config {
        self.config.get()
    }
}

/// Why an install or upgrade argument is refused. `init` and `post_upgrade` cannot return an
/// error, so the canister traps with it and the IC keeps the previous state (interface spec,
/// "IC method `install_code`": a trap in `canister_init`/`canister_post_upgrade` fails the call).
fn check_sha256(sha256: &[u8]) -> Result<(), String> {
    if sha256.is_empty() || sha256.len() == 32 {
        Ok(())
    } else {
        Err(format!(
            "release_sha256 must be 32 bytes (or empty), got {}",
            sha256.len()
        ))
    }
}

/// First install: writes a fresh header and config; the notes map starts empty.
pub fn install(arg: UserInitArg, now: u64) -> Result<(), String> {
    if arg.owner == Principal::anonymous() {
        return Err("the owner cannot be the anonymous principal".into());
    }
    if arg.recovery_principal == Principal::anonymous() {
        return Err("the recovery principal cannot be the anonymous principal".into());
    }
    check_sha256(&arg.release_sha256)?;
    let header = Cell::new(
        memory::get(memory::HEADER),
        Header {
            layout_version: LAYOUT_VERSION,
            schema_version: SCHEMA_VERSION,
        },
    );
    let config = Cell::new(
        memory::get(memory::CONFIG),
        Config {
            owner: arg.owner,
            recovery_principal: arg.recovery_principal,
            manager: arg.manager,
            release_sha256: arg.release_sha256,
            installed_at: now,
            upgraded_at: None,
        },
    );
    let notes = Notes::open();
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            header,
            config,
            notes,
        })
    });
    Ok(())
}

/// Upgrade: loads the state left by the previous module, migrates the notes to this build's
/// schema, and records the release. Refuses state it cannot read: no header, another layout, or
/// a newer schema (a downgrade would misread it).
pub fn upgrade(arg: Option<UserUpgradeArg>, now: u64) -> Result<(), String> {
    let arg = arg.unwrap_or_default();
    check_sha256(&arg.release_sha256)?;
    let header_memory = memory::get(memory::HEADER);
    if header_memory.size() == 0 {
        return Err("no user canister state to upgrade from".into());
    }
    let mut header = Cell::init(
        header_memory,
        Header {
            layout_version: LAYOUT_VERSION,
            schema_version: SCHEMA_VERSION,
        },
    );
    let found = *header.get();
    if found.layout_version != LAYOUT_VERSION {
        return Err(format!(
            "stable layout {} is not {LAYOUT_VERSION}",
            found.layout_version
        ));
    }
    if found.schema_version > SCHEMA_VERSION {
        return Err(format!(
            "stable schema {} is newer than this release's schema {SCHEMA_VERSION}",
            found.schema_version
        ));
    }
    #[cfg(feature = "v2")]
    if found.schema_version < 2 {
        crate::notes::migrate_v1_to_v2(now);
    }
    header.set(Header {
        layout_version: LAYOUT_VERSION,
        schema_version: SCHEMA_VERSION,
    });
    let mut config = Cell::init(
        memory::get(memory::CONFIG),
        Config {
            owner: Principal::anonymous(),
            recovery_principal: Principal::anonymous(),
            manager: Principal::anonymous(),
            release_sha256: vec![],
            installed_at: 0,
            upgraded_at: None,
        },
    );
    let mut updated = config.get().clone();
    if updated.owner == Principal::anonymous() {
        return Err("the stored config has no owner".into());
    }
    updated.release_sha256 = arg.release_sha256;
    updated.upgraded_at = Some(now);
    config.set(updated);
    let notes = Notes::open();
    STATE.with(|s| {
        *s.borrow_mut() = Some(State {
            header,
            config,
            notes,
        })
    });
    Ok(())
}
