//! The `fleet` command-line tool: operator commands against the fleet manager (releases,
//! registry, operators, rollouts), end-user recovery of a per-user canister through the
//! recovery phrase with or without the manager, and `rehearse`, a whole release cycle on the
//! embedded simulator (`ic_sim`).

pub mod backend;
pub mod cli;
pub mod commands;
pub mod dashboard;
pub mod error;
pub mod estimate;
pub mod identity;
pub mod interface;
pub mod manager;
pub mod phrase;
pub mod plan;
pub mod progress;
pub mod recovery;
#[cfg(feature = "sim")]
pub mod rehearse;
#[cfg(feature = "sim")]
pub mod serve;
pub mod wasm;
