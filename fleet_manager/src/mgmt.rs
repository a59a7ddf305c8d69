//! How the manager calls the IC: one call helper ([`call`]) and one error type
//! ([`CallError`]) for every call it makes, the rollout engine's and provisioning's alike.
//! Arguments and replies of the calls made on every upgrade go through [`wire`], the rest
//! through the candid crate. Provisioning and mirroring use the calls through the [`Runtime`]
//! trait, so that they run natively in unit tests against a fake, and on the IC through [`Ic`].

pub mod wire;

use candid::{Encode, Principal};
use ic_cdk::call::{Call, CallFailed};
use ic_management_canister_types as mc;

/// What `canister_status` tells the manager about a canister it controls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusInfo {
    pub controllers: Vec<Principal>,
    pub module_hash: Option<Vec<u8>>,
}

/// Why a call failed, as a code: failures are told apart by code, never by their message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The IC rejected the call with this reject code (interface spec, "Reject codes").
    Rejected(u32),
    /// `ic0.call_perform` failed: the call never left the manager (its cycles or queues).
    NotSent,
    /// A reply came but did not decode as the method's result.
    BadReply,
}

/// A failed call: which method, its code and the reject or decode message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    pub method: &'static str,
    pub code: ErrorCode,
    pub message: String,
}

impl CallError {
    /// The reject code as the rollout engine classifies it: the IC's, or
    /// [`rollout_core::NOT_SENT`] for a call never sent, or 0 for a reply that did not decode.
    pub fn reject_code(&self) -> u32 {
        match self.code {
            ErrorCode::Rejected(code) => code,
            ErrorCode::NotSent => rollout_core::NOT_SENT,
            ErrorCode::BadReply => 0,
        }
    }

    pub fn bad_reply(method: &'static str, e: impl std::fmt::Display) -> Self {
        CallError {
            method,
            code: ErrorCode::BadReply,
            message: format!("reply did not decode: {e}"),
        }
    }
}

impl From<CallError> for rollout_core::CallError {
    fn from(e: CallError) -> Self {
        rollout_core::CallError {
            reject_code: e.reject_code(),
            message: e.message,
        }
    }
}

pub type CallResult<T> = Result<T, CallError>;

/// Calls `method` of `callee` with candid-encoded `args` and `cycles`, and returns the reply's
/// bytes. With `timeout_secs`, a bounded-wait call (interface spec, "Bounded-wait calls"):
/// it ends with `SYS_UNKNOWN` when no reply came in time; without, it waits for the reply.
pub async fn call(
    callee: Principal,
    method: &'static str,
    args: &[u8],
    cycles: u128,
    timeout_secs: Option<u32>,
) -> CallResult<Vec<u8>> {
    let call = match timeout_secs {
        Some(secs) => Call::bounded_wait(callee, method).change_timeout(secs),
        None => Call::unbounded_wait(callee, method),
    };
    let mut call = call.with_raw_args(args);
    if cycles > 0 {
        call = call.with_cycles(cycles);
    }
    match call.await {
        Ok(reply) => Ok(reply.into_bytes()),
        Err(CallFailed::CallRejected(r)) => Err(CallError {
            method,
            code: ErrorCode::Rejected(r.raw_reject_code()),
            message: r.reject_message().to_string(),
        }),
        Err(other) => Err(CallError {
            method,
            code: ErrorCode::NotSent,
            message: other.to_string(),
        }),
    }
}

/// [`call`] to the management canister.
pub async fn management(
    method: &'static str,
    args: &[u8],
    cycles: u128,
    timeout_secs: Option<u32>,
) -> CallResult<Vec<u8>> {
    call(
        Principal::management_canister(),
        method,
        args,
        cycles,
        timeout_secs,
    )
    .await
}

/// Timeout of the bounded-wait `canister_status` of provisioning.
const STATUS_TIMEOUT_SECS: u32 = 300;

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

/// The real IC.
pub struct Ic;

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
        const METHOD: &str = "create_canister";
        let arg = mc::CreateCanisterArgs {
            settings: Some(mc::CanisterSettings {
                controllers: Some(controllers),
                ..Default::default()
            }),
            sender_canister_version: Some(ic_cdk::api::canister_version()),
        };
        let args = Encode!(&arg).expect("encoding create_canister's argument");
        let cycles = self.create_canister_fee().saturating_add(cycles);
        let reply = management(METHOD, &args, cycles, None).await?;
        wire::canister_id_reply(&reply).map_err(|e| CallError::bad_reply(METHOD, e))
    }

    async fn install_chunked(
        &self,
        target: Principal,
        chunk_hashes: Vec<Vec<u8>>,
        wasm_module_hash: Vec<u8>,
        arg: Vec<u8>,
    ) -> CallResult<()> {
        let args = wire::install_chunked(&wire::InstallChunked {
            mode: wire::InstallMode::Install,
            target,
            store: self.self_id(),
            chunk_hashes: &chunk_hashes,
            wasm_module_hash: &wasm_module_hash,
            arg: &arg,
            sender_version: ic_cdk::api::canister_version(),
        });
        management("install_chunked_code", &args, 0, None)
            .await
            .map(drop)
    }

    async fn upload_chunk(&self, chunk: Vec<u8>) -> CallResult<Vec<u8>> {
        const METHOD: &str = "upload_chunk";
        let arg = mc::UploadChunkArgs {
            canister_id: self.self_id(),
            chunk,
        };
        let args = Encode!(&arg).expect("encoding upload_chunk's argument");
        let reply = management(METHOD, &args, 0, None).await?;
        wire::blob_field(&reply, wire::field("hash")).map_err(|e| CallError::bad_reply(METHOD, e))
    }

    async fn clear_chunk_store(&self) -> CallResult<()> {
        let args = wire::canister_id(&self.self_id());
        management("clear_chunk_store", &args, 0, None)
            .await
            .map(drop)
    }

    async fn canister_status(&self, canister: Principal) -> CallResult<StatusInfo> {
        const METHOD: &str = "canister_status";
        let args = wire::canister_id(&canister);
        let reply = management(METHOD, &args, 0, Some(STATUS_TIMEOUT_SECS)).await?;
        let s = wire::canister_status(&reply).map_err(|e| CallError::bad_reply(METHOD, e))?;
        Ok(StatusInfo {
            controllers: s.controllers,
            module_hash: s.module_hash,
        })
    }
}
