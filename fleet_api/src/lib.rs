//! Candid types shared by the canisters, the `fleet` CLI and the tests.
//!
//! This crate has no ic-cdk runtime calls, so it builds for the host and for wasm32 alike. The
//! release types are the wasm store's own, re-exported by [`manager`].

pub mod manager;
pub mod rollout;
pub mod user;

pub use candid::Principal;
