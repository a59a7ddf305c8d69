//! The calls the manager makes to the IC, behind a trait so that provisioning and mirroring run
//! natively in unit tests against a fake, and on the IC through [`Ic`].

use candid::Principal;
use ic_cdk_management_canister as mc;

/// What `canister_status` tells the manager about a canister it controls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusInfo {
    pub controllers: Vec<Principal>,
    pub module_hash: Option<Vec<u8>>,
}

/// A failed call: which management method, and the reject or decode error as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub method: &'static str,
    pub message: String,
}

pub type CallResult<T> = Result<T, CallError>;

/// The runtime: time, identity, balance and management canister calls.
///
/// The canister is single-threaded, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Runtime {
    fn now_ns(&self) -> u64;
    fn self_id(&self) -> Principal;
    fn cycles_balance(&self) -> u128;
    /// Fee the IC charges for `create_canister` on this subnet (interface spec, "Cycles cost").
    fn create_canister_fee(&self) -> u128;

    /// `create_canister` with these controllers and `cycles` for the new canister on top of the
    /// creation fee.
    async fn create_canister(
        &self,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> CallResult<Principal>;

    /// `install_chunked_code` (mode install) from this canister's chunk store.
    async fn install_chunked(
        &self,
        target: Principal,
        chunk_hashes: Vec<Vec<u8>>,
        wasm_module_hash: Vec<u8>,
        arg: Vec<u8>,
    ) -> CallResult<()>;

    /// `upload_chunk` into this canister's own chunk store; returns the chunk's hash.
    async fn upload_chunk(&self, chunk: Vec<u8>) -> CallResult<Vec<u8>>;

    /// `clear_chunk_store` of this canister.
    async fn clear_chunk_store(&self) -> CallResult<()>;

    async fn canister_status(&self, canister: Principal) -> CallResult<StatusInfo>;
}

/// The real IC, through `ic-cdk-management-canister`.
pub struct Ic;

fn failed<E: std::fmt::Display>(method: &'static str) -> impl FnOnce(E) -> CallError {
    move |e| CallError {
        method,
        message: e.to_string(),
    }
}

impl Runtime for Ic {
    fn now_ns(&self) -> u64 {
        ic_cdk::api::time()
    }

    fn self_id(&self) -> Principal {
        ic_cdk::api::canister_self()
    }

    fn cycles_balance(&self) -> u128 {
        ic_cdk::api::canister_cycle_balance()
    }

    fn create_canister_fee(&self) -> u128 {
        ic_cdk::api::cost_create_canister()
    }

    async fn create_canister(
        &self,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> CallResult<Principal> {
        let arg = mc::CreateCanisterArgs {
            settings: Some(mc::CanisterSettings {
                controllers: Some(controllers),
                ..Default::default()
            }),
        };
        mc::create_canister_with_extra_cycles(&arg, cycles)
            .await
            .map(|r| r.canister_id)
            .map_err(failed("create_canister"))
    }

    async fn install_chunked(
        &self,
        target: Principal,
        chunk_hashes: Vec<Vec<u8>>,
        wasm_module_hash: Vec<u8>,
        arg: Vec<u8>,
    ) -> CallResult<()> {
        let arg = mc::InstallChunkedCodeArgs {
            mode: mc::CanisterInstallMode::Install,
            target_canister: target,
            store_canister: Some(self.self_id()),
            chunk_hashes_list: chunk_hashes
                .into_iter()
                .map(|hash| mc::ChunkHash { hash })
                .collect(),
            wasm_module_hash,
            arg,
        };
        mc::install_chunked_code(&arg)
            .await
            .map_err(failed("install_chunked_code"))
    }

    async fn upload_chunk(&self, chunk: Vec<u8>) -> CallResult<Vec<u8>> {
        let arg = mc::UploadChunkArgs {
            canister_id: self.self_id(),
            chunk,
        };
        mc::upload_chunk(&arg)
            .await
            .map(|r| r.hash)
            .map_err(failed("upload_chunk"))
    }

    async fn clear_chunk_store(&self) -> CallResult<()> {
        let arg = mc::ClearChunkStoreArgs {
            canister_id: self.self_id(),
        };
        mc::clear_chunk_store(&arg)
            .await
            .map_err(failed("clear_chunk_store"))
    }

    async fn canister_status(&self, canister: Principal) -> CallResult<StatusInfo> {
        let arg = mc::CanisterStatusArgs {
            canister_id: canister,
        };
        mc::canister_status(&arg)
            .await
            .map(|s| StatusInfo {
                controllers: s.settings.controllers,
                module_hash: s.module_hash,
            })
            .map_err(failed("canister_status"))
    }
}
