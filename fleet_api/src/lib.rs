//! Candid types shared by the canisters, the `fleet` CLI and the tests.
//!
//! This crate has no ic-cdk runtime calls, so it builds for the host and for wasm32 alike. Every
//! method of the canisters is a type in a `method` module ([`endpoint::Endpoint`]: name,
//! arguments, reply), and every reply is named, so the `.did` files carry no `Result_N`.

pub mod endpoint;
pub mod engine;
pub mod governance;
pub mod manager;
pub mod rollout;
pub mod store;
pub mod store_canister;
pub mod user;
#[cfg(feature = "mapping")]
pub mod wire;

pub use candid::Principal;
