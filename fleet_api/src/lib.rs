//! Candid types shared by the canisters, the `fleet` CLI and the tests.
//!
//! This crate has no ic-cdk runtime calls, so it builds for the host and for wasm32 alike.

pub mod user;

pub use candid::Principal;
