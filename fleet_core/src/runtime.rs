//! How the core reaches the IC: one trait, [`Runtime`], for the clock, the canister's own id,
//! version and balance, and one raw call. Every call the manager makes (provisioning, mirroring,
//! the rollout engine's) goes through [`Runtime::call`]; the management calls are built on it
//! here, once. The canister shell implements the trait over ic-cdk; unit tests implement it with
//! a fake IC (`crate::fake`, test builds only).
//!
//! A failed call is a [`CallError`]: the IC's reject code, or [`NOT_SENT`] when
//! `ic0.call_perform` failed or the reply did not decode. Failures are told apart by code,
//! never by their message (interface spec, "Reject codes").

use crate::wire;
use candid::{Encode, Principal};
use ic_management_canister_types as mc;
pub use rollout_core::{CallError, NOT_SENT};

pub type CallResult<T> = Result<T, CallError>;

/// What `canister_status` tells the manager about a canister it controls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusInfo {
    pub controllers: Vec<Principal>,
    pub module_hash: Option<Vec<u8>>,
}

/// Timeout of the bounded-wait `canister_status` of provisioning.
const STATUS_TIMEOUT_SECS: u32 = 300;

/// A reply that did not decode as the method's result: the manager's side (it asked for a
/// shape the IC does not send), classified with calls never sent.
pub fn bad_reply(method: &str, e: impl std::fmt::Display) -> CallError {
    CallError {
        reject_code: NOT_SENT,
        message: format!("{method}: reply did not decode: {e}"),
    }
}

/// The IC as the core sees it: time, identity, balance and calls.
///
/// The canister is single-threaded, so the futures need not be `Send`. The provided methods
/// are the management calls, written once over [`Runtime::call`].
#[allow(async_fn_in_trait)]
pub trait Runtime {
    /// `ic0.time`, nanoseconds since the epoch.
    fn now_ns(&self) -> u64;
    /// `ic0.canister_self`.
    fn self_id(&self) -> Principal;
    /// `ic0.subnet_self`: the subnet this canister runs on.
    fn subnet_self(&self) -> Principal;
    /// `ic0.canister_version`, sent as `sender_canister_version` so that canister history
    /// records who changed a canister (interface spec, "Canister history").
    fn canister_version(&self) -> u64;
    /// `ic0.canister_cycle_balance128`.
    fn cycles_balance(&self) -> u128;
    /// `ic0.canister_liquid_cycle_balance128`: what the canister can spend without freezing.
    fn liquid_cycles_balance(&self) -> u128;
    /// Fee the IC charges for `create_canister` on this subnet (interface spec, "Cycles cost").
    fn create_canister_fee(&self) -> u128;
    /// A line in the canister's log.
    fn log(&self, line: &str);
    /// `ic0.is_controller`: whether `principal` controls this canister.
    fn is_controller(&self, principal: &Principal) -> bool;
    /// `ic0.msg_cycles_available128`: cycles the current call attached and nobody accepted
    /// yet (available in the update and in the callbacks of its calls).
    fn msg_cycles_available(&self) -> u128;
    /// `ic0.msg_cycles_accept128`: keeps up to `max` of them; the rest go back to the caller
    /// with the reply.
    fn msg_cycles_accept(&self, max: u128) -> u128;

    /// Calls `method` of `callee` with candid-encoded `args` and `cycles`, and returns the
    /// reply's bytes. With `timeout_secs`, a bounded-wait call (interface spec, "Bounded-wait
    /// calls"): it ends with `SYS_UNKNOWN` when no reply came in time; without, it waits for
    /// the reply.
    async fn call(
        &self,
        callee: Principal,
        method: &'static str,
        args: &[u8],
        cycles: u128,
        timeout_secs: Option<u32>,
    ) -> CallResult<Vec<u8>>;

    /// [`Runtime::call`] to the management canister.
    async fn management(
        &self,
        method: &'static str,
        args: &[u8],
        cycles: u128,
        timeout_secs: Option<u32>,
    ) -> CallResult<Vec<u8>> {
        self.call(
            Principal::management_canister(),
            method,
            args,
            cycles,
            timeout_secs,
        )
        .await
    }

    /// `create_canister` with these controllers and `cycles` for the new canister on top of the
    /// creation fee.
    async fn create_canister(
        &self,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> CallResult<Principal> {
        const METHOD: &str = "create_canister";
        let arg = mc::CreateCanisterArgs {
            settings: Some(mc::CanisterSettings {
                controllers: Some(controllers),
                ..Default::default()
            }),
            sender_canister_version: Some(self.canister_version()),
        };
        let args = Encode!(&arg).expect("encoding create_canister's argument");
        let cycles = self.create_canister_fee().saturating_add(cycles);
        let reply = self.management(METHOD, &args, cycles, None).await?;
        wire::canister_id_reply(&reply).map_err(|e| bad_reply(METHOD, e))
    }

    /// `create_canister` of the cycles minting canister on `subnet`, the IC's way to create a
    /// canister on a chosen subnet (the management canister creates on the caller's): `cycles`
    /// for the new canister on top of the creation fee. A refusal comes back as a reject of
    /// this call, with the CMC's reason; the CMC has refunded the cycles then.
    async fn create_canister_on(
        &self,
        subnet: Principal,
        controllers: Vec<Principal>,
        cycles: u128,
    ) -> CallResult<Principal> {
        const METHOD: &str = "create_canister";
        let args = crate::subnets::cmc_create_args(subnet, controllers);
        let cycles = self.create_canister_fee().saturating_add(cycles);
        let reply = self
            .call(crate::subnets::CMC, METHOD, &args, cycles, None)
            .await?;
        crate::subnets::cmc_create_reply(&reply)
    }

    /// `install_code` of `wasm_module` (sent whole: for the store canister's small module;
    /// releases go through the chunk store) into `canister` in `mode`, with the candid-encoded
    /// `arg` (interface spec, "IC method `install_code`": `install` only into a canister
    /// without a module, `upgrade` keeps stable memory).
    async fn install_code(
        &self,
        canister: Principal,
        mode: mc::CanisterInstallMode,
        wasm_module: Vec<u8>,
        arg: Vec<u8>,
    ) -> CallResult<()> {
        let a = mc::InstallCodeArgs {
            mode,
            canister_id: canister,
            wasm_module,
            arg,
            sender_canister_version: Some(self.canister_version()),
        };
        let args = Encode!(&a).expect("encoding install_code's argument");
        self.management("install_code", &args, 0, None)
            .await
            .map(drop)
    }

    /// The argument of `install_chunked_code` in `mode` from `store`'s chunk store (on the
    /// target's subnet): the message carries chunk hashes, not the module (interface spec, "IC
    /// method `install_chunked_code`").
    #[allow(clippy::too_many_arguments)]
    fn install_chunked_args(
        &self,
        mode: wire::InstallMode,
        store: Principal,
        target: Principal,
        chunk_hashes: &[Vec<u8>],
        wasm_module_hash: &[u8],
        arg: &[u8],
    ) -> Vec<u8> {
        wire::install_chunked(&wire::InstallChunked {
            mode,
            target,
            store,
            chunk_hashes,
            wasm_module_hash,
            arg,
            sender_version: self.canister_version(),
        })
    }

    /// `install_chunked_code` with [`Runtime::install_chunked_args`].
    async fn install_chunked(
        &self,
        mode: wire::InstallMode,
        store: Principal,
        target: Principal,
        chunk_hashes: &[Vec<u8>],
        wasm_module_hash: &[u8],
        arg: &[u8],
    ) -> CallResult<()> {
        let args =
            self.install_chunked_args(mode, store, target, chunk_hashes, wasm_module_hash, arg);
        self.management("install_chunked_code", &args, 0, None)
            .await
            .map(drop)
    }

    /// `upload_chunk` into `store`'s chunk store (the manager's own, or a store canister it
    /// controls); returns the chunk's hash.
    async fn upload_chunk(&self, store: Principal, chunk: Vec<u8>) -> CallResult<Vec<u8>> {
        const METHOD: &str = "upload_chunk";
        let arg = mc::UploadChunkArgs {
            canister_id: store,
            chunk,
        };
        let args = Encode!(&arg).expect("encoding upload_chunk's argument");
        let reply = self.management(METHOD, &args, 0, None).await?;
        wire::blob_field(&reply, wire::field("hash")).map_err(|e| bad_reply(METHOD, e))
    }

    /// `clear_chunk_store` of `store`.
    async fn clear_chunk_store(&self, store: Principal) -> CallResult<()> {
        let args = wire::canister_id(&store);
        self.management("clear_chunk_store", &args, 0, None)
            .await
            .map(drop)
    }

    /// `canister_status` as a bounded-wait call, for provisioning.
    async fn canister_status(&self, canister: Principal) -> CallResult<StatusInfo> {
        const METHOD: &str = "canister_status";
        let args = wire::canister_id(&canister);
        let reply = self
            .management(METHOD, &args, 0, Some(STATUS_TIMEOUT_SECS))
            .await?;
        let s = wire::canister_status(&reply).map_err(|e| bad_reply(METHOD, e))?;
        Ok(StatusInfo {
            controllers: s.controllers,
            module_hash: s.module_hash,
        })
    }
}
