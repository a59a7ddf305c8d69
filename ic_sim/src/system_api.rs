//! The `ic0` system API (interface spec, "Canister interface (System API)"), implemented over
//! the state of one message execution ([`Host`]).
//!
//! Every function that ic-cdk 0.20 may import (the ic0 crate's `ic0.txt`) is linked; a module
//! that imports anything else fails to install with an error naming the import (see
//! [`IMPLEMENTED`]). Availability per entry point follows the spec's import table; calling a
//! function where the spec forbids it traps with a contract violation, as on the IC.

use std::collections::HashMap;
use std::sync::Arc;

use candid::Principal;
use wasmi::{Caller, Engine, Error, Linker, Memory};

use crate::certification::RootKey;
use crate::costs;
use crate::errors::{ErrorCode, RejectCode};
use crate::memory::{PageMap, StableMemory};
use crate::sender_info::RawSenderInfo;

/// The kinds of execution the spec distinguishes (its import table's letters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApiType {
    /// `canister_init` and `canister_post_upgrade` (I).
    Init,
    /// `canister_pre_upgrade` (G).
    PreUpgrade,
    /// An update method (U).
    Update,
    /// A query method executed as part of an update call (RQ).
    ReplicatedQuery,
    /// A query method executed as a query call (NRQ).
    NonReplicatedQuery,
    /// A reply callback (Ry).
    ReplyCallback,
    /// A reject callback (Rt).
    RejectCallback,
    /// A cleanup callback (C).
    Cleanup,
    /// `canister_inspect_message` (F).
    InspectMessage,
    /// `canister_global_timer` and `canister_heartbeat` (T).
    SystemTask,
    /// A composite query method (CQ).
    CompositeQuery,
    /// A reply callback of a call made by a composite query (CRy).
    CompositeReplyCallback,
    /// A reject callback of a call made by a composite query (CRt).
    CompositeRejectCallback,
    /// A cleanup callback of a call made by a composite query (CC).
    CompositeCleanup,
}

use ApiType::*;

/// Why an execution stopped before returning normally.
#[derive(Clone, Debug)]
pub(crate) struct HostTrap {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for HostTrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl wasmi::errors::HostError for HostTrap {}

fn violation(message: impl Into<String>) -> Error {
    Error::host(HostTrap {
        code: ErrorCode::CanisterContractViolation,
        message: message.into(),
    })
}

/// A response produced by the current execution.
#[derive(Clone, Debug)]
pub(crate) enum Response {
    Reply(Vec<u8>),
    Reject(String),
}

/// A call being assembled between `ic0.call_new` and `ic0.call_perform`.
#[derive(Clone, Debug)]
pub(crate) struct OutgoingCall {
    pub callee: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub reply: (u32, u32),
    pub reject: (u32, u32),
    pub cleanup: Option<(u32, u32)>,
    pub cycles: u128,
    pub timeout_seconds: Option<u32>,
}

/// The state one message execution sees and changes. Nothing here reaches the canister unless
/// the execution succeeds (interface spec, "Abstract behavior": a trap discards all changes).
pub(crate) struct Host {
    pub api: ApiType,
    pub canister_id: Principal,
    pub caller: Principal,
    /// Caller info of the ingress message whose call context this execution belongs to.
    pub caller_info: Option<RawSenderInfo>,
    pub method_name: String,
    pub arg: Vec<u8>,
    pub reject_code: u32,
    pub reject_message: String,
    pub reply_buf: Vec<u8>,
    /// Whether the call context had already been answered before this execution.
    pub replied: bool,
    pub response: Option<Response>,
    pub accepted_message: bool,
    pub cycles_available: u128,
    pub cycles_accepted: u128,
    pub cycles_refunded: u128,
    pub balance: u128,
    /// Balance the canister must keep (freezing threshold): cycles below it are not liquid.
    pub frozen_reserve: u128,
    pub time: u64,
    pub canister_version: u64,
    /// 1 running, 2 stopping, 3 stopped (interface spec, `ic0.canister_status`).
    pub status: u32,
    pub controllers: Vec<Principal>,
    pub subnet: Principal,
    pub stable: StableMemory,
    pub max_stable_pages: u64,
    pub pending_call: Option<OutgoingCall>,
    pub calls: Vec<OutgoingCall>,
    pub global_timer: u64,
    pub certified_data: Vec<u8>,
    /// The instance's root key (`ic0.root_key_*`); none for module validation.
    pub root_key: Option<Arc<RootKey>>,
    /// The data certificate (`ic0.data_certificate_*`): present only in the method a query
    /// call targets (see `Sim::query_call_certificate`).
    pub data_certificate: Option<Vec<u8>>,
    pub env_vars: Vec<(String, String)>,
    pub fuel_limit: u64,
    pub context_instructions: u64,
    pub deadline: u64,
    pub memory: Option<Memory>,
    pub logs: Vec<Vec<u8>>,
    /// Cycles charged by `call_perform` for transmission (the cost model's call fee).
    pub call_fees: u128,
    /// Queue slots in use towards each callee: the canister's outstanding calls, plus the
    /// calls this execution made.
    pub call_slots: HashMap<Principal, u32>,
    /// Slots of the queue towards one callee (`SimLimits::queue_capacity`).
    pub queue_capacity: usize,
}

impl Host {
    /// A host for executions that must not touch any canister (module validation).
    pub fn idle() -> Self {
        Self::new(IdleParams)
    }

    pub fn new(_: IdleParams) -> Self {
        Host {
            api: Init,
            canister_id: Principal::management_canister(),
            caller: Principal::management_canister(),
            caller_info: None,
            method_name: String::new(),
            arg: Vec::new(),
            reject_code: 0,
            reject_message: String::new(),
            reply_buf: Vec::new(),
            replied: false,
            response: None,
            accepted_message: false,
            cycles_available: 0,
            cycles_accepted: 0,
            cycles_refunded: 0,
            balance: 0,
            frozen_reserve: 0,
            time: 0,
            canister_version: 0,
            status: 1,
            controllers: Vec::new(),
            subnet: Principal::management_canister(),
            stable: StableMemory::new(Arc::new(PageMap::default()), 0),
            max_stable_pages: 0,
            pending_call: None,
            calls: Vec::new(),
            global_timer: 0,
            certified_data: Vec::new(),
            root_key: None,
            data_certificate: None,
            env_vars: Vec::new(),
            fuel_limit: 0,
            context_instructions: 0,
            deadline: 0,
            memory: None,
            logs: Vec::new(),
            call_fees: 0,
            call_slots: HashMap::new(),
            queue_capacity: usize::MAX,
        }
    }

    fn liquid(&self) -> u128 {
        self.balance.saturating_sub(self.frozen_reserve)
    }
}

/// Marker for [`Host::new`]: the caller fills in the fields it needs.
pub(crate) struct IdleParams;

/// Every `ic0` function the simulator links.
pub(crate) const IMPLEMENTED: &[&str] = &[
    "msg_arg_data_size",
    "msg_arg_data_copy",
    "msg_caller_size",
    "msg_caller_copy",
    "msg_caller_info_data_size",
    "msg_caller_info_data_copy",
    "msg_caller_info_signer_size",
    "msg_caller_info_signer_copy",
    "msg_reject_code",
    "msg_reject_msg_size",
    "msg_reject_msg_copy",
    "msg_deadline",
    "msg_reply_data_append",
    "msg_reply",
    "msg_reject",
    "msg_cycles_available128",
    "msg_cycles_refunded128",
    "msg_cycles_accept128",
    "cycles_burn128",
    "canister_self_size",
    "canister_self_copy",
    "canister_cycle_balance128",
    "canister_liquid_cycle_balance128",
    "canister_status",
    "canister_version",
    "subnet_self_size",
    "subnet_self_copy",
    "subnet_self_node_count",
    "msg_method_name_size",
    "msg_method_name_copy",
    "accept_message",
    "call_new",
    "call_on_cleanup",
    "call_data_append",
    "call_with_best_effort_response",
    "call_cycles_add128",
    "call_perform",
    "stable64_size",
    "stable64_grow",
    "stable64_write",
    "stable64_read",
    "root_key_size",
    "root_key_copy",
    "certified_data_set",
    "data_certificate_present",
    "data_certificate_size",
    "data_certificate_copy",
    "time",
    "global_timer_set",
    "performance_counter",
    "is_controller",
    "in_replicated_execution",
    "cost_call",
    "cost_create_canister",
    "cost_http_request",
    "cost_http_request_v2",
    "cost_sign_with_ecdsa",
    "cost_sign_with_schnorr",
    "cost_vetkd_derive_key",
    "env_var_count",
    "env_var_name_size",
    "env_var_name_copy",
    "env_var_name_exists",
    "env_var_value_size",
    "env_var_value_copy",
    "debug_print",
    "trap",
];

/// Checks the spec's availability of `name` in the current execution.
fn check(caller: &Caller<'_, Host>, name: &str, allowed: &[ApiType]) -> Result<(), Error> {
    let api = caller.data().api;
    if allowed.contains(&api) {
        Ok(())
    } else {
        Err(violation(format!(
            "\"ic0_{name}\" cannot be executed in {} mode",
            api_name(api)
        )))
    }
}

fn api_name(api: ApiType) -> &'static str {
    match api {
        Init => "init",
        PreUpgrade => "pre upgrade",
        Update => "update",
        ReplicatedQuery => "replicated query",
        NonReplicatedQuery => "non-replicated query",
        ReplyCallback => "reply callback",
        RejectCallback => "reject callback",
        Cleanup => "cleanup",
        InspectMessage => "inspect message",
        SystemTask => "system task",
        CompositeQuery => "composite query",
        CompositeReplyCallback => "composite reply callback",
        CompositeRejectCallback => "composite reject callback",
        CompositeCleanup => "composite cleanup",
    }
}

// Which modes may use which imports: interface spec, "Overview of imports".
const RESPONDING: &[ApiType] = &[
    Update,
    ReplicatedQuery,
    NonReplicatedQuery,
    ReplyCallback,
    RejectCallback,
    CompositeQuery,
    CompositeReplyCallback,
    CompositeRejectCallback,
];
const CALLING: &[ApiType] = &[
    Update,
    ReplyCallback,
    RejectCallback,
    SystemTask,
    CompositeQuery,
    CompositeReplyCallback,
    CompositeRejectCallback,
];
/// Calls that may carry cycles: not from composite queries, which move no cycles.
const CALLING_WITH_CYCLES: &[ApiType] = &[Update, ReplyCallback, RejectCallback, SystemTask];
const ARG_DATA: &[ApiType] = &[
    Init,
    Update,
    ReplicatedQuery,
    NonReplicatedQuery,
    ReplyCallback,
    InspectMessage,
    CompositeQuery,
    CompositeReplyCallback,
];
/// Where caller info is available (interface spec: `U RQ NRQ CQ Ry Rt CRy CRt C CC F`; it traps
/// in init, upgrade hooks and system tasks).
const CALLER_INFO: &[ApiType] = &[
    Update,
    ReplicatedQuery,
    NonReplicatedQuery,
    CompositeQuery,
    ReplyCallback,
    RejectCallback,
    CompositeReplyCallback,
    CompositeRejectCallback,
    Cleanup,
    CompositeCleanup,
    InspectMessage,
];
const CALLBACKS: &[ApiType] = &[
    ReplyCallback,
    RejectCallback,
    CompositeReplyCallback,
    CompositeRejectCallback,
];
const STATE_CHANGING: &[ApiType] = &[
    Init,
    PreUpgrade,
    Update,
    ReplyCallback,
    RejectCallback,
    Cleanup,
    SystemTask,
];
/// Replicated executions: where `ic0.root_key_*` may be used ("I G U RQ Ry Rt C T").
const REPLICATED: &[ApiType] = &[
    Init,
    PreUpgrade,
    Update,
    ReplicatedQuery,
    ReplyCallback,
    RejectCallback,
    Cleanup,
    SystemTask,
];
/// Where `ic0.data_certificate_size/copy` may be used ("NRQ CQ").
const CERTIFICATE_READERS: &[ApiType] = &[NonReplicatedQuery, CompositeQuery];

/// The data certificate of the execution; reading an absent one traps (interface spec,
/// "Certified data").
fn data_certificate<'a>(caller: &'a Caller<'_, Host>, what: &str) -> Result<&'a [u8], Error> {
    caller
        .data()
        .data_certificate
        .as_deref()
        .ok_or_else(|| violation(format!("{what}: no certificate is present")))
}

fn memory(caller: &Caller<'_, Host>) -> Result<Memory, Error> {
    caller
        .data()
        .memory
        .ok_or_else(|| violation("module has no exported memory"))
}

fn read_mem(caller: &Caller<'_, Host>, src: u64, size: u64) -> Result<Vec<u8>, Error> {
    let mem = memory(caller)?;
    let data = mem.data(caller);
    let end = src
        .checked_add(size)
        .filter(|end| *end <= data.len() as u64)
        .ok_or_else(|| oob(src, size, data.len()))?;
    Ok(data[src as usize..end as usize].to_vec())
}

fn write_mem(caller: &mut Caller<'_, Host>, dst: u64, bytes: &[u8]) -> Result<(), Error> {
    let mem = memory(caller)?;
    let data = mem.data_mut(caller);
    let len = data.len();
    let end = dst
        .checked_add(bytes.len() as u64)
        .filter(|end| *end <= len as u64)
        .ok_or_else(|| oob(dst, bytes.len() as u64, len))?;
    data[dst as usize..end as usize].copy_from_slice(bytes);
    Ok(())
}

fn oob(addr: u64, size: u64, len: usize) -> Error {
    Error::host(HostTrap {
        code: ErrorCode::CanisterTrapped,
        message: format!("heap out of bounds: {size} bytes at {addr} (heap size {len})"),
    })
}

/// Implements the `*_copy(dst, offset, size)` convention: copies `data[offset..offset+size]`,
/// trapping when the range leaves `data` (interface spec, "Blob-typed arguments and results").
fn copy_out(
    caller: &mut Caller<'_, Host>,
    data: &[u8],
    dst: u32,
    offset: u32,
    size: u32,
    what: &str,
) -> Result<(), Error> {
    charge(caller, u64::from(size) * costs::BYTE_COPY_COST)?;
    let slice = blob_range(data, offset, size, what)?;
    write_mem(caller, u64::from(dst), slice)
}

/// [`copy_out`] for bytes the host holds: only the requested range is copied out of the host
/// before writing it into the canister's memory.
fn copy_host_blob(
    caller: &mut Caller<'_, Host>,
    bytes: fn(&Host) -> &[u8],
    dst: u32,
    offset: u32,
    size: u32,
    what: &str,
) -> Result<(), Error> {
    charge(caller, u64::from(size) * costs::BYTE_COPY_COST)?;
    let slice = blob_range(bytes(caller.data()), offset, size, what)?.to_vec();
    write_mem(caller, u64::from(dst), &slice)
}

fn blob_range<'a>(data: &'a [u8], offset: u32, size: u32, what: &str) -> Result<&'a [u8], Error> {
    let (offset, size) = (offset as usize, size as usize);
    let end = offset
        .checked_add(size)
        .filter(|end| *end <= data.len())
        .ok_or_else(|| {
            violation(format!(
                "{what}: src={offset} + length={size} exceeds the slice size={}",
                data.len()
            ))
        })?;
    Ok(&data[offset..end])
}

fn write_u128(caller: &mut Caller<'_, Host>, dst: u32, value: u128) -> Result<(), Error> {
    write_mem(caller, u64::from(dst), &value.to_le_bytes())
}

/// Charges a system API call's overhead to the message's instructions, as the replica does on
/// entry; running out of instructions on it is the same trap as in wasm code.
fn charge(caller: &mut Caller<'_, Host>, instructions: u64) -> Result<(), Error> {
    let left = caller.get_fuel().unwrap_or(0);
    if left < instructions {
        let _ = caller.set_fuel(0);
        return Err(Error::from(wasmi::TrapCode::OutOfFuel));
    }
    caller
        .set_fuel(left - instructions)
        .map_err(|e| violation(format!("charging instructions: {e}")))
}

fn instructions_used(caller: &Caller<'_, Host>) -> u64 {
    let left = caller.get_fuel().unwrap_or(0);
    caller.data().fuel_limit.saturating_sub(left)
}

fn env_name(caller: &Caller<'_, Host>, src: u32, size: u32) -> Result<String, Error> {
    let bytes = read_mem(caller, u64::from(src), u64::from(size))?;
    String::from_utf8(bytes).map_err(|_| violation("environment variable name is not UTF-8"))
}

fn env_value(caller: &Caller<'_, Host>, name: &str) -> Result<Vec<u8>, Error> {
    caller
        .data()
        .env_vars
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_bytes().to_vec())
        .ok_or_else(|| violation(format!("environment variable '{name}' not found")))
}

/// The result convention of `cost_sign_with_ecdsa`, `cost_sign_with_schnorr` and
/// `cost_vetkd_derive_key`: 0 with the fee written to `dst`, 1 for an unknown curve or
/// algorithm, 2 for an unknown key name. The key name is read (and may trap) first.
fn threshold_cost(
    caller: &mut Caller<'_, Host>,
    src: i32,
    size: i32,
    known_algorithm: bool,
    dst: i32,
) -> Result<i32, Error> {
    let name = env_name(caller, src as u32, size as u32)?;
    if !known_algorithm {
        return Ok(1);
    }
    match costs::threshold_fee(&name) {
        Some(fee) => {
            write_u128(caller, dst as u32, fee)?;
            Ok(0)
        }
        None => Ok(2),
    }
}

/// Links `ic0.<name>`, charging the call's fixed overhead ([`costs::system_api_overhead`]) on
/// entry, before the body runs, as the replica's embedder does; bodies that move bytes charge
/// for them on top.
macro_rules! wrap {
    (
        $linker:ident,
        $name:expr,
        $(move)? |mut $c:ident: Caller<'_, Host $(,)?> $(, $arg:ident: $ty:ty)* $(,)?|
        -> $ret:ty $body:block
    ) => {
        wrap!(@link $linker, $name, $c, ($($arg: $ty),*), $ret, $body)
    };
    (
        $linker:ident,
        $name:expr,
        $(move)? |$c:ident: Caller<'_, Host $(,)?> $(, $arg:ident: $ty:ty)* $(,)?|
        -> $ret:ty $body:block
    ) => {
        wrap!(@link $linker, $name, $c, ($($arg: $ty),*), $ret, $body)
    };
    (@link $linker:ident, $name:expr, $c:ident, ($($arg:ident: $ty:ty),*), $ret:ty, $body:block) => {
        $linker
            .func_wrap(
                "ic0",
                $name,
                {
                    let overhead = costs::system_api_overhead($name);
                    move |mut $c: Caller<'_, Host> $(, $arg: $ty)*| -> $ret {
                        charge(&mut $c, overhead)?;
                        $body
                    }
                },
            )
            .expect(concat!("linking ic0.", $name));
    };
}

/// Links `ic0.<stem>_size` and `ic0.<stem>_copy` over bytes the host holds. The spec gives
/// both functions of a pair the same availability, so the allowed API types (when restricted)
/// are named once.
macro_rules! blob {
    ($linker:ident, $stem:literal $(, $allowed:expr)? => $bytes:expr) => {{
        let bytes: fn(&Host) -> &[u8] = $bytes;
        wrap!(
            $linker,
            concat!($stem, "_size"),
            move |c: Caller<'_, Host>| -> Result<i32, Error> {
                $(check(&c, concat!($stem, "_size"), $allowed)?;)?
                Ok(bytes(c.data()).len() as i32)
            }
        );
        wrap!(
            $linker,
            concat!($stem, "_copy"),
            move |mut c: Caller<'_, Host>, dst: i32, off: i32, size: i32| -> Result<(), Error> {
                $(check(&c, concat!($stem, "_copy"), $allowed)?;)?
                let what = concat!("ic0.", $stem, "_copy");
                copy_host_blob(&mut c, bytes, dst as u32, off as u32, size as u32, what)
            }
        );
    }};
}

/// Builds the linker that provides `ic0` to canister modules.
pub(crate) fn linker(engine: &Engine) -> Linker<Host> {
    let mut l = Linker::<Host>::new(engine);

    // Message data.
    blob!(l, "msg_arg_data", ARG_DATA => |h| &h.arg);
    blob!(l, "msg_caller" => |h| h.caller.as_slice());
    blob!(l, "msg_caller_info_data", CALLER_INFO => |h| h.caller_info.as_ref().map_or(&[], |i| &i.info));
    blob!(l, "msg_caller_info_signer", CALLER_INFO => |h| h.caller_info.as_ref().map_or(&[], |i| &i.signer));
    wrap!(
        l,
        "msg_reject_code",
        |c: Caller<'_, Host>| -> Result<i32, Error> {
            check(&c, "msg_reject_code", CALLBACKS)?;
            Ok(c.data().reject_code as i32)
        }
    );
    blob!(l, "msg_reject_msg", &[RejectCallback, CompositeRejectCallback] => |h| h.reject_message.as_bytes());
    wrap!(
        l,
        "msg_deadline",
        |c: Caller<'_, Host>| -> Result<i64, Error> {
            check(
                &c,
                "msg_deadline",
                &[
                    Update,
                    ReplicatedQuery,
                    NonReplicatedQuery,
                    ReplyCallback,
                    RejectCallback,
                    CompositeQuery,
                    CompositeReplyCallback,
                    CompositeRejectCallback,
                ],
            )?;
            Ok(c.data().deadline as i64)
        }
    );

    // Responding.
    wrap!(l, "msg_reply_data_append", |mut c: Caller<'_, Host>,
                                       src: i32,
                                       size: i32|
     -> Result<(), Error> {
        check(&c, "msg_reply_data_append", RESPONDING)?;
        charge(&mut c, size as u32 as u64 * costs::BYTE_TRANSMISSION_COST)?;
        if c.data().replied || c.data().response.is_some() {
            return Err(violation(
                "ic0.msg_reply_data_append: the call is already replied",
            ));
        }
        let bytes = read_mem(&c, src as u32 as u64, size as u32 as u64)?;
        c.data_mut().reply_buf.extend_from_slice(&bytes);
        Ok(())
    });
    wrap!(
        l,
        "msg_reply",
        |mut c: Caller<'_, Host>| -> Result<(), Error> {
            check(&c, "msg_reply", RESPONDING)?;
            let h = c.data_mut();
            if h.replied || h.response.is_some() {
                return Err(violation("ic0.msg_reply: the call is already replied"));
            }
            let data = std::mem::take(&mut h.reply_buf);
            h.response = Some(Response::Reply(data));
            Ok(())
        }
    );
    wrap!(l, "msg_reject", |mut c: Caller<'_, Host>,
                            src: i32,
                            size: i32|
     -> Result<(), Error> {
        check(&c, "msg_reject", RESPONDING)?;
        charge(&mut c, size as u32 as u64 * costs::BYTE_TRANSMISSION_COST)?;
        if c.data().replied || c.data().response.is_some() {
            return Err(violation("ic0.msg_reject: the call is already replied"));
        }
        let bytes = read_mem(&c, src as u32 as u64, size as u32 as u64)?;
        let message = String::from_utf8_lossy(&bytes).into_owned();
        c.data_mut().response = Some(Response::Reject(message));
        Ok(())
    });

    // Cycles.
    wrap!(l, "msg_cycles_available128", |mut c: Caller<'_, Host>,
                                         dst: i32|
     -> Result<(), Error> {
        check(
            &c,
            "msg_cycles_available128",
            &[Update, ReplicatedQuery, ReplyCallback, RejectCallback],
        )?;
        let h = c.data();
        let v = if h.replied || h.response.is_some() {
            0
        } else {
            h.cycles_available - h.cycles_accepted
        };
        write_u128(&mut c, dst as u32, v)
    });
    wrap!(l, "msg_cycles_refunded128", |mut c: Caller<'_, Host>,
                                        dst: i32|
     -> Result<(), Error> {
        check(
            &c,
            "msg_cycles_refunded128",
            &[ReplyCallback, RejectCallback],
        )?;
        let v = c.data().cycles_refunded;
        write_u128(&mut c, dst as u32, v)
    });
    wrap!(l, "msg_cycles_accept128", |mut c: Caller<'_, Host>,
                                      high: i64,
                                      low: i64,
                                      dst: i32|
     -> Result<(), Error> {
        check(
            &c,
            "msg_cycles_accept128",
            &[Update, ReplyCallback, RejectCallback],
        )?;
        let max = (u128::from(high as u64) << 64) | u128::from(low as u64);
        let h = c.data_mut();
        let left = if h.replied || h.response.is_some() {
            0
        } else {
            h.cycles_available - h.cycles_accepted
        };
        let take = left.min(max);
        h.cycles_accepted += take;
        h.balance += take;
        write_u128(&mut c, dst as u32, take)
    });
    wrap!(l, "cycles_burn128", |mut c: Caller<'_, Host>,
                                high: i64,
                                low: i64,
                                dst: i32|
     -> Result<(), Error> {
        check(&c, "cycles_burn128", STATE_CHANGING)?;
        let max = (u128::from(high as u64) << 64) | u128::from(low as u64);
        let h = c.data_mut();
        let burn = h.liquid().min(max);
        h.balance -= burn;
        write_u128(&mut c, dst as u32, burn)
    });
    wrap!(l, "canister_cycle_balance128", |mut c: Caller<'_, Host>,
                                           dst: i32|
     -> Result<(), Error> {
        let v = c.data().balance;
        write_u128(&mut c, dst as u32, v)
    });
    wrap!(l, "canister_liquid_cycle_balance128", |mut c: Caller<
        '_,
        Host,
    >,
                                                  dst: i32|
     -> Result<
        (),
        Error,
    > {
        let v = c.data().liquid();
        write_u128(&mut c, dst as u32, v)
    });

    // Canister and subnet.
    blob!(l, "canister_self" => |h| h.canister_id.as_slice());
    wrap!(
        l,
        "canister_status",
        |c: Caller<'_, Host>| -> Result<i32, Error> { Ok(c.data().status as i32) }
    );
    wrap!(
        l,
        "canister_version",
        |c: Caller<'_, Host>| -> Result<i64, Error> { Ok(c.data().canister_version as i64) }
    );
    blob!(l, "subnet_self" => |h| h.subnet.as_slice());
    wrap!(
        l,
        "subnet_self_node_count",
        |_c: Caller<'_, Host>| -> Result<i32, Error> { Ok(costs::SUBNET_SIZE as i32) }
    );
    blob!(l, "msg_method_name", &[InspectMessage] => |h| h.method_name.as_bytes());
    wrap!(
        l,
        "accept_message",
        |mut c: Caller<'_, Host>| -> Result<(), Error> {
            check(&c, "accept_message", &[InspectMessage])?;
            if c.data().accepted_message {
                return Err(violation(
                    "ic0.accept_message: the message is already accepted",
                ));
            }
            c.data_mut().accepted_message = true;
            Ok(())
        }
    );

    // Calls.
    wrap!(l, "call_new", |mut c: Caller<'_, Host>,
                          callee_src: i32,
                          callee_size: i32,
                          name_src: i32,
                          name_size: i32,
                          reply_fun: i32,
                          reply_env: i32,
                          reject_fun: i32,
                          reject_env: i32|
     -> Result<(), Error> {
        check(&c, "call_new", CALLING)?;
        let names = u64::from(callee_size as u32) + u64::from(name_size as u32);
        charge(&mut c, names * costs::BYTE_COPY_COST)?;
        let callee = read_mem(&c, callee_src as u32 as u64, callee_size as u32 as u64)?;
        let callee = Principal::try_from_slice(&callee)
            .map_err(|e| violation(format!("ic0.call_new: invalid callee: {e}")))?;
        let name = read_mem(&c, name_src as u32 as u64, name_size as u32 as u64)?;
        let method = String::from_utf8(name)
            .map_err(|_| violation("ic0.call_new: method name is not UTF-8"))?;
        // A call under construction that was never performed is discarded (spec: call_new
        // starts a new call).
        c.data_mut().pending_call = Some(OutgoingCall {
            callee,
            method,
            arg: Vec::new(),
            reply: (reply_fun as u32, reply_env as u32),
            reject: (reject_fun as u32, reject_env as u32),
            cleanup: None,
            cycles: 0,
            timeout_seconds: None,
        });
        Ok(())
    });
    wrap!(l, "call_on_cleanup", |mut c: Caller<'_, Host>,
                                 fun: i32,
                                 env: i32|
     -> Result<(), Error> {
        check(&c, "call_on_cleanup", CALLING)?;
        let call = c
            .data_mut()
            .pending_call
            .as_mut()
            .ok_or_else(|| violation("ic0.call_on_cleanup: no call under construction"))?;
        if call.cleanup.is_some() {
            return Err(violation("ic0.call_on_cleanup: cleanup already set"));
        }
        call.cleanup = Some((fun as u32, env as u32));
        Ok(())
    });
    wrap!(l, "call_data_append", |mut c: Caller<'_, Host>,
                                  src: i32,
                                  size: i32|
     -> Result<(), Error> {
        check(&c, "call_data_append", CALLING)?;
        charge(&mut c, size as u32 as u64 * costs::BYTE_TRANSMISSION_COST)?;
        let bytes = read_mem(&c, src as u32 as u64, size as u32 as u64)?;
        let call = c
            .data_mut()
            .pending_call
            .as_mut()
            .ok_or_else(|| violation("ic0.call_data_append: no call under construction"))?;
        call.arg.extend_from_slice(&bytes);
        Ok(())
    });
    wrap!(l, "call_with_best_effort_response", |mut c: Caller<
        '_,
        Host,
    >,
                                                timeout: i32|
     -> Result<
        (),
        Error,
    > {
        check(&c, "call_with_best_effort_response", CALLING)?;
        let call = c.data_mut().pending_call.as_mut().ok_or_else(|| {
            violation("ic0.call_with_best_effort_response: no call under construction")
        })?;
        if call.timeout_seconds.is_some() {
            return Err(violation(
                "ic0.call_with_best_effort_response: timeout already set",
            ));
        }
        // The spec bounds the timeout to 300 seconds.
        call.timeout_seconds = Some((timeout as u32).clamp(1, 300));
        Ok(())
    });
    wrap!(l, "call_cycles_add128", |mut c: Caller<'_, Host>,
                                    high: i64,
                                    low: i64|
     -> Result<(), Error> {
        check(&c, "call_cycles_add128", CALLING_WITH_CYCLES)?;
        let amount = (u128::from(high as u64) << 64) | u128::from(low as u64);
        let h = c.data_mut();
        let call = h
            .pending_call
            .as_mut()
            .ok_or_else(|| violation("ic0.call_cycles_add128: no call under construction"))?;
        // Cycles move out of the balance when added; a failed call_perform gives them back.
        if h.balance.saturating_sub(h.frozen_reserve) < amount {
            return Err(Error::host(HostTrap {
                code: ErrorCode::InsufficientCyclesInCall,
                message: format!(
                    "Canister {} is out of cycles: tried to send {amount} cycles, but only {} are available",
                    h.canister_id,
                    h.balance.saturating_sub(h.frozen_reserve)
                ),
            }));
        }
        call.cycles += amount;
        h.balance -= amount;
        Ok(())
    });
    wrap!(
        l,
        "call_perform",
        |mut c: Caller<'_, Host>| -> Result<i32, Error> {
            check(&c, "call_perform", CALLING)?;
            let h = c.data_mut();
            let call = h
                .pending_call
                .take()
                .ok_or_else(|| violation("ic0.call_perform: no call under construction"))?;
            let slots = h.call_slots.get(&call.callee).copied().unwrap_or(0);
            if slots as usize >= h.queue_capacity {
                // The queue towards the callee is full: the replica fails the call at once with
                // SYS_TRANSIENT (`push_output_request` in the system API returns
                // `RejectCode::SysTransient` on `QueueFull`) and gives its cycles back.
                h.balance += call.cycles;
                return Ok(RejectCode::SysTransient as i32);
            }
            let fee = costs::call_fee(call.method.len() as u64, call.arg.len() as u64);
            if h.balance.saturating_sub(h.frozen_reserve) < fee {
                // Not enough cycles: the call is not made, its cycles return (spec: call_perform
                // returns a non-zero code and the call is discarded).
                h.balance += call.cycles;
                return Ok(RejectCode::SysTransient as i32);
            }
            h.balance -= fee;
            h.call_fees += fee;
            *h.call_slots.entry(call.callee).or_default() += 1;
            h.calls.push(call);
            Ok(0)
        }
    );

    // Stable memory.
    wrap!(
        l,
        "stable64_size",
        |c: Caller<'_, Host>| -> Result<i64, Error> { Ok(c.data().stable.size_pages() as i64) }
    );
    wrap!(l, "stable64_grow", |mut c: Caller<'_, Host>,
                               pages: i64|
     -> Result<i64, Error> {
        let h = c.data_mut();
        let old = h.stable.size_pages();
        match old.checked_add(pages as u64) {
            Some(new) if new <= h.max_stable_pages => {
                h.stable.set_size_pages(new);
                Ok(old as i64)
            }
            _ => Ok(-1),
        }
    });
    wrap!(l, "stable64_write", |mut c: Caller<'_, Host>,
                                offset: i64,
                                src: i64,
                                size: i64|
     -> Result<(), Error> {
        charge(&mut c, size as u64 * costs::BYTE_COPY_COST)?;
        let bytes = read_mem(&c, src as u64, size as u64)?;
        let h = c.data_mut();
        h.stable.write(offset as u64, &bytes).map_err(|m| {
            Error::host(HostTrap {
                code: ErrorCode::CanisterTrapped,
                message: m,
            })
        })
    });
    wrap!(l, "stable64_read", |mut c: Caller<'_, Host>,
                               dst: i64,
                               offset: i64,
                               size: i64|
     -> Result<(), Error> {
        charge(&mut c, size as u64 * costs::BYTE_COPY_COST)?;
        let bytes = c
            .data()
            .stable
            .read(offset as u64, size as u64)
            .map_err(|m| {
                Error::host(HostTrap {
                    code: ErrorCode::CanisterTrapped,
                    message: m,
                })
            })?;
        write_mem(&mut c, dst as u64, &bytes)
    });

    // Certification (interface spec, "Certified data").
    blob!(l, "root_key", REPLICATED => |h| {
        h.root_key.as_deref().map_or(&[][..], RootKey::public_key_der)
    });
    wrap!(l, "certified_data_set", |mut c: Caller<'_, Host>,
                                    src: i32,
                                    size: i32|
     -> Result<(), Error> {
        check(
            &c,
            "certified_data_set",
            &[
                Init,
                PreUpgrade,
                Update,
                ReplyCallback,
                RejectCallback,
                SystemTask,
            ],
        )?;
        if size as u32 > 32 {
            return Err(violation(
                "ic0.certified_data_set: certified data is limited to 32 bytes",
            ));
        }
        charge(&mut c, size as u32 as u64 * costs::BYTE_COPY_COST)?;
        let bytes = read_mem(&c, src as u32 as u64, size as u32 as u64)?;
        c.data_mut().certified_data = bytes;
        Ok(())
    });
    wrap!(
        l,
        "data_certificate_present",
        |c: Caller<'_, Host>| -> Result<i32, Error> {
            Ok(i32::from(c.data().data_certificate.is_some()))
        }
    );
    wrap!(
        l,
        "data_certificate_size",
        |c: Caller<'_, Host>| -> Result<i32, Error> {
            check(&c, "data_certificate_size", CERTIFICATE_READERS)?;
            Ok(data_certificate(&c, "ic0.data_certificate_size")?.len() as i32)
        }
    );
    wrap!(l, "data_certificate_copy", |mut c: Caller<'_, Host>,
                                       dst: i32,
                                       off: i32,
                                       size: i32|
     -> Result<(), Error> {
        check(&c, "data_certificate_copy", CERTIFICATE_READERS)?;
        data_certificate(&c, "ic0.data_certificate_copy")?;
        copy_host_blob(
            &mut c,
            |h| h.data_certificate.as_deref().unwrap_or_default(),
            dst as u32,
            off as u32,
            size as u32,
            "ic0.data_certificate_copy",
        )
    });

    // Time, timer, counters, controllers.
    wrap!(l, "time", |c: Caller<'_, Host>| -> Result<i64, Error> {
        Ok(c.data().time as i64)
    });
    wrap!(l, "global_timer_set", |mut c: Caller<'_, Host>,
                                  ts: i64|
     -> Result<i64, Error> {
        check(&c, "global_timer_set", STATE_CHANGING)?;
        let h = c.data_mut();
        let old = h.global_timer;
        h.global_timer = ts as u64;
        Ok(old as i64)
    });
    wrap!(l, "performance_counter", |mut c: Caller<'_, Host>,
                                     kind: i32|
     -> Result<i64, Error> {
        let used = instructions_used(&c);
        match kind {
            0 => Ok(used as i64),
            1 => Ok((c.data().context_instructions + used) as i64),
            _ => Err(violation(format!(
                "ic0.performance_counter: unknown counter type {kind}"
            ))),
        }
    });
    wrap!(l, "is_controller", |c: Caller<'_, Host>,
                               src: i32,
                               size: i32|
     -> Result<i32, Error> {
        charge(&mut c, size as u32 as u64 * costs::BYTE_COPY_COST)?;
        let bytes = read_mem(&c, src as u32 as u64, size as u32 as u64)?;
        let p = Principal::try_from_slice(&bytes)
            .map_err(|e| violation(format!("ic0.is_controller: invalid principal: {e}")))?;
        Ok(i32::from(c.data().controllers.contains(&p)))
    });
    wrap!(
        l,
        "in_replicated_execution",
        |c: Caller<'_, Host>| -> Result<i32, Error> {
            Ok(i32::from(!matches!(
                c.data().api,
                NonReplicatedQuery
                    | InspectMessage
                    | CompositeQuery
                    | CompositeReplyCallback
                    | CompositeRejectCallback
                    | CompositeCleanup
            )))
        }
    );

    // Costs (see `costs` for the model).
    wrap!(l, "cost_call", |mut c: Caller<'_, Host>,
                           name_size: i64,
                           payload_size: i64,
                           dst: i32|
     -> Result<(), Error> {
        write_u128(
            &mut c,
            dst as u32,
            costs::call_fee(name_size as u64, payload_size as u64),
        )
    });
    wrap!(l, "cost_create_canister", |mut c: Caller<'_, Host>,
                                      dst: i32|
     -> Result<(), Error> {
        write_u128(&mut c, dst as u32, costs::CANISTER_CREATION_FEE)
    });
    wrap!(l, "cost_http_request", |mut c: Caller<'_, Host>,
                                   request_size: i64,
                                   max_res: i64,
                                   dst: i32|
     -> Result<(), Error> {
        write_u128(
            &mut c,
            dst as u32,
            costs::http_request_fee(request_size as u64, max_res as u64),
        )
    });
    wrap!(l, "cost_http_request_v2", |mut c: Caller<'_, Host>,
                                      src: i32,
                                      size: i32,
                                      dst: i32|
     -> Result<(), Error> {
        // The parameters are a candid record; its byte size stands for the request size and
        // the response is priced at the 2 MB maximum.
        let _ = read_mem(&c, src as u32 as u64, size as u32 as u64)?;
        write_u128(
            &mut c,
            dst as u32,
            costs::http_request_fee(size as u32 as u64, 2_000_000),
        )
    });
    wrap!(l, "cost_sign_with_ecdsa", |mut c: Caller<'_, Host>,
                                      src: i32,
                                      size: i32,
                                      curve: i32,
                                      dst: i32|
     -> Result<i32, Error> {
        threshold_cost(&mut c, src, size, curve == 0, dst)
    });
    wrap!(l, "cost_sign_with_schnorr", |mut c: Caller<'_, Host>,
                                        src: i32,
                                        size: i32,
                                        algorithm: i32,
                                        dst: i32|
     -> Result<i32, Error> {
        threshold_cost(&mut c, src, size, (0..=1).contains(&algorithm), dst)
    });
    wrap!(l, "cost_vetkd_derive_key", |mut c: Caller<'_, Host>,
                                       src: i32,
                                       size: i32,
                                       curve: i32,
                                       dst: i32|
     -> Result<i32, Error> {
        threshold_cost(&mut c, src, size, curve == 0, dst)
    });

    // Environment variables (interface spec, "Environment variables"), sorted by name.
    wrap!(
        l,
        "env_var_count",
        |c: Caller<'_, Host>| -> Result<i32, Error> { Ok(c.data().env_vars.len() as i32) }
    );
    wrap!(l, "env_var_name_size", |c: Caller<'_, Host>,
                                   index: i32|
     -> Result<i32, Error> {
        c.data()
            .env_vars
            .get(index as u32 as usize)
            .map(|(n, _)| n.len() as i32)
            .ok_or_else(|| violation("ic0.env_var_name_size: index out of bounds"))
    });
    wrap!(l, "env_var_name_copy", |mut c: Caller<'_, Host>,
                                   index: i32,
                                   dst: i32,
                                   off: i32,
                                   size: i32|
     -> Result<(), Error> {
        let name = c
            .data()
            .env_vars
            .get(index as u32 as usize)
            .map(|(n, _)| n.as_bytes().to_vec())
            .ok_or_else(|| violation("ic0.env_var_name_copy: index out of bounds"))?;
        copy_out(
            &mut c,
            &name,
            dst as u32,
            off as u32,
            size as u32,
            "ic0.env_var_name_copy",
        )
    });
    wrap!(l, "env_var_name_exists", |c: Caller<'_, Host>,
                                     src: i32,
                                     size: i32|
     -> Result<i32, Error> {
        let name = env_name(&c, src as u32, size as u32)?;
        Ok(i32::from(c.data().env_vars.iter().any(|(n, _)| *n == name)))
    });
    wrap!(l, "env_var_value_size", |c: Caller<'_, Host>,
                                    src: i32,
                                    size: i32|
     -> Result<i32, Error> {
        let name = env_name(&c, src as u32, size as u32)?;
        Ok(env_value(&c, &name)?.len() as i32)
    });
    wrap!(l, "env_var_value_copy", |mut c: Caller<'_, Host>,
                                    src: i32,
                                    size: i32,
                                    dst: i32,
                                    off: i32,
                                    len: i32|
     -> Result<(), Error> {
        let name = env_name(&c, src as u32, size as u32)?;
        let value = env_value(&c, &name)?;
        copy_out(
            &mut c,
            &value,
            dst as u32,
            off as u32,
            len as u32,
            "ic0.env_var_value_copy",
        )
    });

    // Debugging.
    wrap!(l, "debug_print", |mut c: Caller<'_, Host>,
                             src: i32,
                             size: i32|
     -> Result<(), Error> {
        charge(&mut c, costs::log_record_cost(size as u32 as u64))?;
        let bytes = read_mem(&c, src as u32 as u64, size as u32 as u64)?;
        c.data_mut().logs.push(bytes);
        Ok(())
    });
    wrap!(l, "trap", |c: Caller<'_, Host>,
                      src: i32,
                      size: i32|
     -> Result<(), Error> {
        let len = size as u32 as u64;
        charge(
            &mut c,
            len * costs::BYTE_COPY_COST + costs::log_record_cost(len),
        )?;
        let bytes = read_mem(&c, src as u32 as u64, size as u32 as u64)?;
        Err(Error::host(HostTrap {
            code: ErrorCode::CanisterCalledTrap,
            message: String::from_utf8_lossy(&bytes).into_owned(),
        }))
    });
    l
}
