//! The fleet manager's logic, without the canister: the registry of user canisters, releases
//! and the chunk-store plan, provisioning, operators and the rollout engine (plans, owner
//! requests, reconciliation of the registry with each pipeline's outcome).
//!
//! Its one idea: everything the manager decides is here, over the stable `Memory` of
//! ic-stable-structures and one [`runtime::Runtime`] trait that covers every IC call, the clock
//! and the canister's own id, so it runs natively in unit tests against a fake IC. The
//! `fleet_manager` canister is the shell: lifecycle hooks, endpoints, the timer that drives the
//! engine, and the runtime over ic-cdk. This crate does not depend on ic-cdk.

pub mod access;
pub mod admission;
pub mod calls;
pub mod chunk_store;
pub mod governance;
pub mod manage;
pub mod memory;
pub mod pipeline_log;
pub mod provisioning;
pub mod rate_limit;
pub mod registry;
pub mod releases;
pub mod rollouts;
pub mod runtime;
pub mod state;
pub mod stored;
pub mod subnets;
pub mod wire;

#[cfg(test)]
mod fake;
