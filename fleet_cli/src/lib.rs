//! The `fleet` command-line tool: end-user recovery of a per-user canister through the recovery
//! phrase, with or without the fleet manager, against the IC (ic-agent) or the embedded
//! simulator (`ic_sim`).

pub mod backend;
pub mod cli;
pub mod error;
pub mod identity;
pub mod manager;
pub mod phrase;
pub mod recovery;
pub mod wasm;
