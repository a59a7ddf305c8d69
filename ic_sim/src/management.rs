//! The management canister `aaaaa-aa` (interface spec, "The IC management canister").
//!
//! Requests are handled when delivered, inside the round; the response goes out like any other.
//! `stop_canister` is answered later, when the canister has no open call context (or after
//! the 5-minute timeout).

use std::sync::Arc;

use candid::{CandidType, Decode, Encode, Nat, Principal};
use ic_management_canister_types as mgmt;
use mgmt::{CanisterInstallMode, CanisterSettings, ChangeDetails};
use serde::Deserialize;

use crate::costs;
use crate::errors::{ErrorCode, RejectResponse};
use crate::exec::{execute, Entry, Heap};
use crate::memory::{PageMap, StableMemory};
use crate::module::{self, sha256};
use crate::sim::{
    empty_reply, trap_reject, Canister, Request, Settings, Sim, Status, DEFAULT_PROVISIONAL_CYCLES,
    STOP_TIMEOUT_NANOS,
};
use crate::system_api::ApiType;

/// Largest chunk (interface spec, "IC method upload_chunk": 1 MiB).
pub const MAX_CHUNK_SIZE: usize = 1 << 20;
/// Chunks per chunk store (IC configuration: 100).
pub const MAX_CHUNKS: usize = 100;
/// Controllers per canister (interface spec, "Canister settings": at most 10).
pub const MAX_CONTROLLERS: usize = 10;

pub(crate) type Reply = Result<Option<Vec<u8>>, RejectResponse>;

/// The new state of a canister computed by an `install_code`, not yet committed.
pub(crate) struct PreparedInstall {
    sender: Principal,
    sender_version: Option<u64>,
    deployment: mgmt::CodeDeploymentMode,
    module: Arc<module::CanisterModule>,
    heap: Heap,
    stable: Arc<PageMap>,
    stable_pages: u64,
    balance: u128,
    global_timer: u64,
    certified_data: Vec<u8>,
    /// Log records before this index are dropped at commit (a reinstall).
    purge_log_before: Option<u64>,
}

/// An executed `install_code`: the instructions it used and the state to commit, or the trap
/// that ends it.
pub(crate) struct InstallWork {
    pub id: Principal,
    pub instructions: u64,
    result: Result<PreparedInstall, RejectResponse>,
}

impl InstallWork {
    fn failed(id: Principal, instructions: u64, reject: RejectResponse) -> Self {
        InstallWork {
            id,
            instructions,
            result: Err(reject),
        }
    }
}

pub(crate) fn decode<T: CandidType + for<'de> Deserialize<'de>>(
    arg: &[u8],
) -> Result<T, RejectResponse> {
    Decode!(arg, T).map_err(|e| {
        RejectResponse::new(
            ErrorCode::InvalidManagementPayload,
            format!("Error decoding candid: {e}"),
        )
    })
}

pub(crate) fn encode<T: CandidType>(value: &T) -> Vec<u8> {
    Encode!(value).expect("encoding a management result")
}

pub(crate) fn rejected(message: impl Into<String>) -> RejectResponse {
    RejectResponse::new(ErrorCode::CanisterRejectedMessage, message)
}

fn nat_u64(n: &Nat, what: &str) -> Result<u64, RejectResponse> {
    u64::try_from(&n.0).map_err(|_| {
        RejectResponse::new(
            ErrorCode::InvalidManagementPayload,
            format!("Invalid settings: {what} is too large"),
        )
    })
}

/// `install_code`'s argument (wire-identical to [`mgmt::InstallCodeArgs`]) with the module read
/// as one blob: the upstream type declares `wasm_module` as a plain `Vec<u8>`, which candid
/// decodes one element at a time.
#[derive(CandidType, Deserialize)]
struct InstallCodeArgs {
    mode: CanisterInstallMode,
    canister_id: Principal,
    #[serde(with = "serde_bytes")]
    wasm_module: Vec<u8>,
    #[serde(with = "serde_bytes")]
    arg: Vec<u8>,
    #[cfg_attr(not(test), allow(dead_code))]
    sender_canister_version: Option<u64>,
}

/// The optional field every management method that changes a canister takes.
#[derive(CandidType, Deserialize)]
struct SenderVersion {
    sender_canister_version: Option<u64>,
}

#[derive(CandidType, Deserialize)]
struct EffectiveCanister {
    canister_id: Principal,
}

#[derive(CandidType, Deserialize)]
struct EffectiveTarget {
    target_canister: Principal,
}

/// Methods callable only through non-replicated (query) calls by users (interface spec, "IC
/// method fetch_canister_logs").
const QUERY_ONLY: &[&str] = &["fetch_canister_logs"];

/// Methods only canisters may call (interface spec: not callable by ingress).
const CANISTER_ONLY: &[&str] = &[
    "create_canister",
    "raw_rand",
    "deposit_cycles",
    "canister_info",
    "http_request",
    "ecdsa_public_key",
    "sign_with_ecdsa",
    "schnorr_public_key",
    "sign_with_schnorr",
    "canister_metadata",
    "subnet_info",
];

/// The canister a management request is about, if its argument names one.
pub(crate) fn effective_canister(req: &Request) -> Option<Principal> {
    effective_canister_of(&req.method, &req.arg)
}

/// The canister a management call of `method` with `arg` is about, if the argument names one.
pub(crate) fn effective_canister_of(method: &str, arg: &[u8]) -> Option<Principal> {
    match method {
        "install_chunked_code" => Some(decode::<EffectiveTarget>(arg).ok()?.target_canister),
        _ => Some(decode::<EffectiveCanister>(arg).ok()?.canister_id),
    }
}

/// Management methods whose work counts against the round's instructions, and which wait for
/// the next round once the subnet messages' budget is spent (`counts_toward_round_limit` in
/// `Ic00MethodPermissions`, dfinity/ic `rs/execution_environment/src/ic00_permissions.rs`).
pub(crate) fn counts_toward_round_limit(method: &str) -> bool {
    matches!(
        method,
        "install_code"
            | "install_chunked_code"
            | "upload_chunk"
            | "take_canister_snapshot"
            | "load_canister_snapshot"
    )
}

/// Management methods that install code: one long installation at a time per subnet.
pub(crate) fn installs_code(method: &str) -> bool {
    matches!(method, "install_code" | "install_chunked_code")
}

impl Sim {
    /// Ingress to the management canister: allowed for the methods the spec permits, with
    /// the effective canister id taken from the argument.
    pub(crate) fn check_management_ingress(
        &self,
        _sender: Principal,
        method: &str,
        arg: &[u8],
    ) -> Result<(), RejectResponse> {
        if CANISTER_ONLY.contains(&method) {
            return Err(rejected(format!(
                "Only canisters can call ic00 method {method}"
            )));
        }
        if QUERY_ONLY.contains(&method) {
            return Err(rejected(format!(
                "ic00 method {method} can not be called via ingress messages"
            )));
        }
        if method.starts_with("provisional_") {
            return Ok(());
        }
        let target = match method {
            "install_chunked_code" => decode::<EffectiveTarget>(arg).map(|a| a.target_canister),
            _ => decode::<EffectiveCanister>(arg).map(|a| a.canister_id),
        };
        // Without an effective canister the message cannot be routed; the reject names the
        // method, which may be one the simulator does not implement.
        let target = target.map_err(|mut e| {
            e.reject_message = format!(
                "ic00 method {method}: no effective canister id in the argument: {}",
                e.reject_message
            );
            e
        })?;
        self.canister(&target)?;
        Ok(())
    }

    /// A query call to the management canister: only the methods the spec lets users query.
    pub(crate) fn management_query(
        &self,
        sender: Principal,
        method: &str,
        arg: &[u8],
    ) -> Result<Vec<u8>, RejectResponse> {
        match method {
            "fetch_canister_logs" => {
                let args: mgmt::FetchCanisterLogsArgs = decode(arg)?;
                let canister_log_records = self.fetch_canister_logs(sender, &args)?;
                Ok(encode(&mgmt::FetchCanisterLogsResult {
                    canister_log_records,
                }))
            }
            other => Err(RejectResponse::new(
                ErrorCode::CanisterMethodNotFound,
                format!("Management canister has no query method '{other}'"),
            )),
        }
    }

    pub(crate) fn deliver_management(&mut self, req: Request) {
        let mgmt_id = Principal::management_canister();
        if let Some(reject) = self.injected_management_fault(&req) {
            return self.respond(mgmt_id, req.reply_to, Err(reject), req.cycles);
        }
        let mut refund = req.cycles;
        self.sender_version = crate::sim::is_canister_id(&req.sender)
            .then(|| decode::<SenderVersion>(&req.arg).ok())
            .flatten()
            .and_then(|v| v.sender_canister_version);
        let result = self.management(&req, &mut refund);
        self.sender_version = None;
        if let Some(work) = self.install_hold.take() {
            // A long installation: answered when the scheduler commits its last slice.
            let active = self.active;
            self.subnets[active]
                .held_installs
                .push(crate::scheduler::HeldInstall::new(
                    work,
                    req.reply_to,
                    req.cycles,
                    self.limits.install_slice_instructions,
                ));
            return;
        }
        match result {
            Ok(Some(bytes)) => self.respond(mgmt_id, req.reply_to, Ok(bytes), refund),
            Ok(None) => {}
            Err(e) => self.respond(mgmt_id, req.reply_to, Err(e), req.cycles),
        }
    }

    /// A fault set by `IcSim::fault_reject_management_calls` for the canister the call is about.
    fn injected_management_fault(&mut self, req: &Request) -> Option<RejectResponse> {
        if self.management_faults.is_empty() {
            return None;
        }
        let target = effective_canister(req)?;
        let (left, code) = self.management_faults.get_mut(&target)?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(crate::sim::injected_reject(
            *code,
            format!(
                "Injected fault: the management canister rejects {} for {target}",
                req.method
            ),
        ))
    }

    pub(crate) fn controlled(
        &self,
        id: &Principal,
        sender: &Principal,
    ) -> Result<&Canister, RejectResponse> {
        let c = self.canister(id)?;
        if c.settings.controllers.contains(sender) {
            Ok(c)
        } else {
            Err(not_controller(c, sender))
        }
    }

    fn controlled_or_self(
        &self,
        id: &Principal,
        sender: &Principal,
    ) -> Result<&Canister, RejectResponse> {
        let c = self.canister(id)?;
        if c.settings.controllers.contains(sender) || id == sender {
            Ok(c)
        } else {
            Err(not_controller(c, sender))
        }
    }

    fn management(&mut self, req: &Request, refund: &mut u128) -> Reply {
        let sender = req.sender;
        let arg = &req.arg[..];
        match req.method.as_str() {
            "create_canister" => {
                let args: mgmt::CreateCanisterArgs = decode(arg)?;
                if req.cycles < costs::CANISTER_CREATION_FEE {
                    return Err(RejectResponse::new(
                        ErrorCode::InsufficientCyclesForCreateCanister,
                        format!(
                            "Creating a canister requires a fee of {} that is deducted from the canister's initial balance but only {} cycles were received with the create_canister request.",
                            costs::CANISTER_CREATION_FEE, req.cycles
                        ),
                    ));
                }
                let id = self.create(
                    sender,
                    args.settings,
                    req.cycles - costs::CANISTER_CREATION_FEE,
                )?;
                *refund = 0;
                Ok(Some(encode(&mgmt::CanisterIdRecord { canister_id: id })))
            }
            "provisional_create_canister_with_cycles" => {
                let args: mgmt::ProvisionalCreateCanisterWithCyclesArgs = decode(arg)?;
                let cycles = match &args.amount {
                    Some(n) => u128::try_from(&n.0).unwrap_or(u128::MAX),
                    None => DEFAULT_PROVISIONAL_CYCLES,
                };
                if let Some(id) = args.specified_id {
                    if self.canisters.contains_key(&id) || id == crate::cmc::CMC_ID {
                        return Err(rejected(format!("Canister {id} is already installed")));
                    }
                    // With several subnets, an id outside every subnet's range has no subnet
                    // to live on (pocket-ic refuses such an id too).
                    if !self.in_some_range(&id) {
                        return Err(rejected(format!(
                            "Canister id {id} is not in the canister id range of any subnet"
                        )));
                    }
                }
                let id = match args.specified_id {
                    Some(id) => {
                        self.create_with_id(id, sender, args.settings, cycles)?;
                        id
                    }
                    None => self.create(sender, args.settings, cycles)?,
                };
                Ok(Some(encode(&mgmt::CanisterIdRecord { canister_id: id })))
            }
            "provisional_top_up_canister" => {
                let args: mgmt::ProvisionalTopUpCanisterArgs = decode(arg)?;
                self.canister(&args.canister_id)?;
                let amount = u128::try_from(&args.amount.0).unwrap_or(u128::MAX);
                let c = self.canisters.get_mut(&args.canister_id).expect("checked");
                c.cycles = c.cycles.saturating_add(amount);
                Ok(Some(empty_reply()))
            }
            "update_settings" => {
                let args: mgmt::UpdateSettingsArgs = decode(arg)?;
                self.controlled(&args.canister_id, &sender)?;
                let now = self.time;
                let sender_version = self.sender_version;
                let c = self.canisters.get_mut(&args.canister_id).expect("checked");
                let mut settings = c.settings.clone();
                apply_settings(&mut settings, &args.settings)?;
                let controllers_changed = settings.controllers != c.settings.controllers;
                c.settings = settings;
                c.version += 1;
                if controllers_changed {
                    let controllers = c.settings.controllers.clone();
                    c.record_change(
                        now,
                        sender,
                        sender_version,
                        ChangeDetails::ControllersChange(mgmt::ControllersChangeRecord {
                            controllers,
                        }),
                    );
                }
                Ok(Some(empty_reply()))
            }
            "install_code" => {
                let args: InstallCodeArgs = decode(arg)?;
                self.controlled(&args.canister_id, &sender)?;
                let work = self.install(
                    sender,
                    args.canister_id,
                    args.mode,
                    &args.wasm_module,
                    args.arg,
                )?;
                self.settle_install(work)?;
                Ok(Some(empty_reply()))
            }
            "install_chunked_code" => {
                let args: mgmt::InstallChunkedCodeArgs = decode(arg)?;
                self.controlled(&args.target_canister, &sender)?;
                let store_id = args.store_canister.unwrap_or(args.target_canister);
                // The store canister must be on the target's subnet (interface spec, "IC method
                // install_chunked_code"); the replica does not find one elsewhere in its state.
                let target_subnet = self.subnet_of(&args.target_canister);
                if self.subnet_of(&store_id) != target_subnet
                    && self.canisters.contains_key(&store_id)
                {
                    return Err(rejected(format!(
                        "InstallChunkedCode Error: Store canister {store_id} was not found on subnet {} of target canister {}",
                        self.subnets[target_subnet].id, args.target_canister
                    )));
                }
                let store = self.controlled_or_self(&store_id, &sender)?;
                let mut wasm = Vec::new();
                for h in &args.chunk_hashes_list {
                    let key: [u8; 32] = h.hash.as_slice().try_into().map_err(|_| {
                        RejectResponse::new(
                            ErrorCode::InvalidManagementPayload,
                            "Chunk hashes must be 32 bytes",
                        )
                    })?;
                    let chunk = store.chunks.get(&key).ok_or_else(|| {
                        rejected(format!(
                            "Error from Canister {}: Wasm chunk with hash {} not found in the chunk store of canister {store_id}",
                            args.target_canister,
                            hex(&key)
                        ))
                    })?;
                    wasm.extend_from_slice(chunk);
                }
                let hash = sha256(&wasm);
                if hash[..] != args.wasm_module_hash[..] {
                    return Err(RejectResponse::new(
                        ErrorCode::InvalidManagementPayload,
                        format!(
                            "Error from Canister {}: Wasm module hash {} does not match given hash {}",
                            args.target_canister,
                            hex(&hash),
                            hex(&args.wasm_module_hash)
                        ),
                    ));
                }
                let work =
                    self.install(sender, args.target_canister, args.mode, &wasm, args.arg)?;
                self.settle_install(work)?;
                Ok(Some(empty_reply()))
            }
            "uninstall_code" => {
                let args: mgmt::UninstallCodeArgs = decode(arg)?;
                self.controlled(&args.canister_id, &sender)?;
                self.uninstall(sender, args.canister_id);
                Ok(Some(empty_reply()))
            }
            "upload_chunk" => {
                let args: mgmt::UploadChunkArgs = decode(arg)?;
                self.controlled_or_self(&args.canister_id, &sender)?;
                self.mgmt_instructions += self.limits.upload_chunk_instructions;
                if args.chunk.len() > MAX_CHUNK_SIZE {
                    return Err(rejected(format!(
                        "Wasm chunk size {} exceeds the maximum of {MAX_CHUNK_SIZE} bytes",
                        args.chunk.len()
                    )));
                }
                let hash = sha256(&args.chunk);
                let c = self.canisters.get_mut(&args.canister_id).expect("checked");
                if !c.chunks.contains_key(&hash) && c.chunks.len() >= MAX_CHUNKS {
                    return Err(rejected(format!(
                        "Wasm chunk store of canister {} is full: at most {MAX_CHUNKS} chunks",
                        args.canister_id
                    )));
                }
                c.chunks.insert(hash, args.chunk);
                Ok(Some(encode(&mgmt::ChunkHash {
                    hash: hash.to_vec(),
                })))
            }
            "stored_chunks" => {
                let args: mgmt::CanisterIdRecord = decode(arg)?;
                let c = self.controlled_or_self(&args.canister_id, &sender)?;
                let list: Vec<mgmt::ChunkHash> = c
                    .chunks
                    .keys()
                    .map(|h| mgmt::ChunkHash { hash: h.to_vec() })
                    .collect();
                Ok(Some(encode(&list)))
            }
            "clear_chunk_store" => {
                let args: mgmt::CanisterIdRecord = decode(arg)?;
                self.controlled_or_self(&args.canister_id, &sender)?;
                self.canisters
                    .get_mut(&args.canister_id)
                    .expect("checked")
                    .chunks
                    .clear();
                Ok(Some(empty_reply()))
            }
            "start_canister" => {
                let args: mgmt::CanisterIdRecord = decode(arg)?;
                self.controlled(&args.canister_id, &sender)?;
                let c = self.canisters.get_mut(&args.canister_id).expect("checked");
                let pending = std::mem::take(&mut c.stop_requests);
                if c.status != Status::Running {
                    c.status = Status::Running;
                    c.version += 1;
                }
                for (reply_to, _) in pending {
                    let e = RejectResponse::new(
                        ErrorCode::CanisterStoppingCancelled,
                        format!(
                            "Canister {}'s stop request was cancelled.",
                            args.canister_id
                        ),
                    );
                    self.respond(Principal::management_canister(), reply_to, Err(e), 0);
                }
                Ok(Some(empty_reply()))
            }
            "stop_canister" => {
                let args: mgmt::CanisterIdRecord = decode(arg)?;
                self.controlled(&args.canister_id, &sender)?;
                let deadline = self.time + STOP_TIMEOUT_NANOS;
                let c = self.canisters.get_mut(&args.canister_id).expect("checked");
                match c.status {
                    Status::Stopped => Ok(Some(empty_reply())),
                    Status::Running | Status::Stopping => {
                        c.status = Status::Stopping;
                        c.stop_requests.push((req.reply_to.clone(), deadline));
                        self.stopping.insert(args.canister_id);
                        Ok(None)
                    }
                }
            }
            "canister_status" => {
                let args: mgmt::CanisterIdRecord = decode(arg)?;
                let c = self.controlled_or_self(&args.canister_id, &sender)?;
                Ok(Some(encode(&status_of(c))))
            }
            "canister_info" => {
                let args: mgmt::CanisterInfoArgs = decode(arg)?;
                let c = self.canister(&args.canister_id)?;
                let n = args
                    .num_requested_changes
                    .unwrap_or(0)
                    .min(c.history.len() as u64) as usize;
                let info = mgmt::CanisterInfoResult {
                    total_num_changes: c.total_changes,
                    recent_changes: c.history[c.history.len() - n..].to_vec(),
                    module_hash: c.module.as_ref().map(|m| m.hash.to_vec()),
                    controllers: c.settings.controllers.clone(),
                };
                Ok(Some(encode(&info)))
            }
            "delete_canister" => {
                let args: mgmt::CanisterIdRecord = decode(arg)?;
                let c = self.controlled(&args.canister_id, &sender)?;
                if c.status != Status::Stopped {
                    return Err(RejectResponse::new(
                        ErrorCode::CanisterNotStopped,
                        format!(
                            "Canister {} must be stopped before it is deleted.",
                            args.canister_id
                        ),
                    ));
                }
                if args.canister_id == sender {
                    return Err(rejected("A canister cannot delete itself."));
                }
                self.canisters.remove(&args.canister_id);
                self.instances.forget(&args.canister_id);
                Ok(Some(empty_reply()))
            }
            "deposit_cycles" => {
                let args: mgmt::CanisterIdRecord = decode(arg)?;
                self.canister(&args.canister_id)?;
                let c = self.canisters.get_mut(&args.canister_id).expect("checked");
                c.cycles = c.cycles.saturating_add(req.cycles);
                *refund = 0;
                Ok(Some(empty_reply()))
            }
            "raw_rand" => {
                decode::<()>(arg)?;
                self.rand_counter += 1;
                let mut seed = b"ic_sim raw_rand".to_vec();
                seed.extend_from_slice(&self.rand_counter.to_be_bytes());
                seed.extend_from_slice(&self.time.to_be_bytes());
                Ok(Some(encode(&sha256(&seed).to_vec())))
            }
            "take_canister_snapshot"
            | "load_canister_snapshot"
            | "list_canister_snapshots"
            | "delete_canister_snapshot"
            | "read_canister_snapshot_metadata"
            | "read_canister_snapshot_data"
            | "upload_canister_snapshot_metadata"
            | "upload_canister_snapshot_data" => self.snapshot_method(&req.method, sender, arg),
            "canister_metadata" => {
                let args: mgmt::CanisterMetadataArgs = decode(arg)?;
                let value = self.canister_metadata(sender, &args.canister_id, &args.name)?;
                Ok(Some(encode(&mgmt::CanisterMetadataResult { value })))
            }
            "subnet_info" => {
                let args: mgmt::SubnetInfoArgs = decode(arg)?;
                Ok(Some(encode(&self.subnet_info(&args)?)))
            }
            "ecdsa_public_key" | "sign_with_ecdsa" | "schnorr_public_key" | "sign_with_schnorr" => {
                self.threshold_method(req, refund)
            }
            "http_request" => self.http_request(req),
            m if QUERY_ONLY.contains(&m) => Err(rejected(format!(
                "ic00 method {m} can only be called by users through query calls"
            ))),
            // The replica's execution environment: an unknown `Ic00Method` is IC0536.
            other => Err(RejectResponse::new(
                ErrorCode::CanisterMethodNotFound,
                format!("Management canister has no method '{other}'"),
            )),
        }
    }

    pub(crate) fn create(
        &mut self,
        sender: Principal,
        settings: Option<CanisterSettings>,
        cycles: u128,
    ) -> Result<Principal, RejectResponse> {
        let id = self.new_canister_id()?;
        self.create_with_id(id, sender, settings, cycles)?;
        Ok(id)
    }

    fn create_with_id(
        &mut self,
        id: Principal,
        sender: Principal,
        settings: Option<CanisterSettings>,
        cycles: u128,
    ) -> Result<(), RejectResponse> {
        let mut s = Settings::new(vec![sender]);
        if let Some(requested) = &settings {
            apply_settings(&mut s, requested)?;
        }
        let mut c = Canister::new(id, s, cycles);
        let controllers = c.settings.controllers.clone();
        c.record_change(
            self.time,
            sender,
            self.sender_version,
            ChangeDetails::Creation(mgmt::CreationRecord {
                controllers,
                environment_variables_hash: None,
            }),
        );
        self.canisters.insert(id, c);
        Ok(())
    }

    /// Settles an executed installation: commits it now, or, above the install slice limit,
    /// leaves it in `install_hold` for the scheduler, which commits it after its last slice
    /// (deterministic time slicing of `install_code`).
    fn settle_install(&mut self, work: InstallWork) -> Result<(), RejectResponse> {
        let slice = self.limits.install_slice_instructions;
        if work.instructions > slice {
            self.mgmt_instructions += slice;
            self.install_hold = Some(work);
            return Ok(());
        }
        self.mgmt_instructions += work.instructions;
        self.commit_install(work)
    }

    /// Installs, reinstalls or upgrades code (interface spec, "IC method install_code"): runs
    /// pre-upgrade, init or post-upgrade on copies of the canister's state, so that a trap
    /// anywhere leaves the canister as it was. Errors found before any execution are returned
    /// at once; a trap is the work's result, charged when the work is settled.
    fn install(
        &mut self,
        sender: Principal,
        id: Principal,
        mode: CanisterInstallMode,
        wasm: &[u8],
        arg: Vec<u8>,
    ) -> Result<InstallWork, RejectResponse> {
        let module = module::load(wasm).map_err(|e| {
            RejectResponse::new(
                ErrorCode::CanisterInvalidWasm,
                format!("Error from Canister {id}: Canister's Wasm module is not valid: {e}"),
            )
        })?;
        let c = self.canister(&id)?;
        let first_log = c.log.next_idx();
        let budget = self.limits.install_instructions;
        let mut used = 0u64;
        let mut instructions = 0u64;
        let (stable, stable_pages, balance) = match &mode {
            CanisterInstallMode::Install | CanisterInstallMode::Reinstall => {
                if matches!(mode, CanisterInstallMode::Install) && c.module.is_some() {
                    return Err(RejectResponse::new(
                        ErrorCode::CanisterNonEmpty,
                        format!("Canister {id} cannot be installed because the canister is not empty. Try installing with mode='reinstall' instead."),
                    ));
                }
                (Arc::new(PageMap::default()), 0, c.cycles)
            }
            CanisterInstallMode::Upgrade(flags) => {
                let old = c.module.clone().ok_or_else(|| {
                    RejectResponse::new(
                        ErrorCode::CanisterWasmModuleNotFound,
                        format!("Error from Canister {id}: Attempted to execute a message, but the canister contains no Wasm module."),
                    )
                })?;
                let skip = flags
                    .as_ref()
                    .and_then(|f| f.skip_pre_upgrade)
                    .unwrap_or(false);
                if !skip && old.exports("canister_pre_upgrade") {
                    let host = self.host_for(c, ApiType::PreUpgrade, sender);
                    let c = &self.canisters[&id];
                    let mut out = execute(
                        &mut self.instances,
                        id,
                        &old,
                        &c.heap,
                        &Entry::Export("canister_pre_upgrade".into()),
                        host,
                        budget,
                        false,
                    );
                    used += out.instructions;
                    instructions += out.instructions;
                    let mut stable = c.stable.clone();
                    self.record_logs(&id, &out.host.logs, out.result.as_ref().err());
                    if let Err(trap) = &out.result {
                        return Ok(InstallWork::failed(
                            id,
                            instructions,
                            trap_reject(&id, trap),
                        ));
                    }
                    let s = std::mem::replace(
                        &mut out.host.stable,
                        StableMemory::new(Arc::default(), 0),
                    );
                    let pages = s.commit(&mut stable);
                    (stable, pages, out.host.balance)
                } else {
                    (c.stable.clone(), c.stable_pages, c.cycles)
                }
            }
        };
        let c = self.canister(&id)?;
        let heap = Heap::initial(&module);
        let entry = match mode {
            CanisterInstallMode::Upgrade(_) => "canister_post_upgrade",
            _ => "canister_init",
        };
        let mut host = self.host_for(c, ApiType::Init, sender);
        host.stable = StableMemory::new(stable.clone(), stable_pages);
        host.balance = balance;
        host.arg = arg;
        host.global_timer = 0;
        host.certified_data = Vec::new();
        host.canister_version = c.version + 1;
        let (heap, host) = if module.exports(entry) {
            let out = execute(
                &mut self.instances,
                id,
                &module,
                &heap,
                &Entry::Export(entry.into()),
                host,
                budget - used,
                true,
            );
            instructions += out.instructions;
            self.record_logs(&id, &out.host.logs, out.result.as_ref().err());
            match out.result {
                Err(trap) => {
                    return Ok(InstallWork::failed(
                        id,
                        instructions,
                        trap_reject(&id, &trap),
                    ));
                }
                Ok(new_heap) => (new_heap.expect("heap kept"), out.host),
            }
        } else {
            (heap, host)
        };
        let mut stable_map = stable;
        let pages = host.stable.commit(&mut stable_map);
        let deployment = match mode {
            CanisterInstallMode::Install => mgmt::CodeDeploymentMode::Install,
            CanisterInstallMode::Reinstall => mgmt::CodeDeploymentMode::Reinstall,
            CanisterInstallMode::Upgrade(_) => mgmt::CodeDeploymentMode::Upgrade,
        };
        Ok(InstallWork {
            id,
            instructions,
            result: Ok(PreparedInstall {
                sender,
                sender_version: self.sender_version,
                deployment,
                module,
                heap,
                stable: stable_map,
                stable_pages: pages,
                balance: host.balance,
                global_timer: host.global_timer,
                certified_data: host.certified_data,
                // A reinstall purges the log (spec, "IC method fetch_canister_logs"); what
                // its `canister_init` printed stays.
                purge_log_before: matches!(mode, CanisterInstallMode::Reinstall)
                    .then_some(first_log),
            }),
        })
    }

    /// Commits a prepared installation (or charges a failed one) and returns its result.
    pub(crate) fn commit_install(&mut self, work: InstallWork) -> Result<(), RejectResponse> {
        let id = work.id;
        self.charge(&id, work.instructions);
        let p = work.result?;
        let now = self.time;
        let c = self.canisters.get_mut(&id).ok_or_else(|| {
            RejectResponse::new(
                ErrorCode::CanisterNotFound,
                format!("Canister {id} not found"),
            )
        })?;
        c.heap = p.heap;
        c.stable = p.stable;
        c.stable_pages = p.stable_pages;
        c.cycles = p
            .balance
            .saturating_sub(costs::execution_fee(work.instructions));
        c.global_timer = p.global_timer;
        c.certified_data = p.certified_data;
        if let Some(first) = p.purge_log_before {
            c.log.purge_before(first);
        }
        c.version += 1;
        c.record_change(
            now,
            p.sender,
            p.sender_version,
            ChangeDetails::CodeDeployment(mgmt::CodeDeploymentRecord {
                mode: p.deployment,
                module_hash: p.module.hash.to_vec(),
            }),
        );
        c.module = Some(p.module);
        self.may_have_system_tasks(id);
        Ok(())
    }

    fn charge(&mut self, id: &Principal, instructions: u64) {
        if let Some(c) = self.canisters.get_mut(id) {
            c.instructions_total += instructions;
            c.cycles = c.cycles.saturating_sub(costs::execution_fee(instructions));
        }
    }

    /// Removes code and state; open call contexts are rejected and callbacks forgotten
    /// (interface spec, "IC method uninstall_code").
    pub(crate) fn uninstall(&mut self, sender: Principal, id: Principal) {
        let now = self.time;
        let sender_version = self.sender_version;
        self.instances.forget(&id);
        let c = self.canisters.get_mut(&id).expect("checked by caller");
        c.module = None;
        c.heap = Heap::default();
        c.stable = Arc::new(PageMap::default());
        c.stable_pages = 0;
        c.global_timer = 0;
        c.certified_data.clear();
        c.callbacks.clear();
        c.log.purge_before(c.log.next_idx());
        c.calls_out.clear();
        c.version += 1;
        c.record_change(now, sender, sender_version, ChangeDetails::CodeUninstall);
        let contexts = std::mem::take(&mut c.contexts);
        for ctx in contexts.into_values() {
            if !ctx.replied {
                let e = RejectResponse::new(
                    ErrorCode::CanisterRejectedMessage,
                    "Canister has been uninstalled.",
                );
                self.respond(id, ctx.origin, Err(e), ctx.available);
            }
        }
    }
}

fn not_controller(c: &Canister, sender: &Principal) -> RejectResponse {
    let list: Vec<String> = c.settings.controllers.iter().map(|p| p.to_text()).collect();
    RejectResponse::new(
        ErrorCode::CanisterInvalidController,
        format!(
            "Only the controllers of the canister {} can control it.\nCanister's controllers: {}\nSender's ID: {sender}",
            c.id,
            list.join(" ")
        ),
    )
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Validates all requested settings, then applies them (all or nothing).
pub(crate) fn apply_settings(
    s: &mut Settings,
    requested: &CanisterSettings,
) -> Result<(), RejectResponse> {
    let mut next = s.clone();
    if let Some(controllers) = &requested.controllers {
        if controllers.len() > MAX_CONTROLLERS {
            return Err(RejectResponse::new(
                ErrorCode::InvalidManagementPayload,
                format!("Invalid settings: 'controllers' length exceeds maximum size allowed of {MAX_CONTROLLERS}."),
            ));
        }
        let mut unique = controllers.clone();
        unique.sort();
        unique.dedup();
        next.controllers = unique;
    }
    if let Some(n) = &requested.compute_allocation {
        let v = nat_u64(n, "compute_allocation")?;
        if v > 100 {
            return Err(RejectResponse::new(
                ErrorCode::InvalidManagementPayload,
                "Invalid settings: compute_allocation must be between 0 and 100",
            ));
        }
        next.compute_allocation = v;
    }
    if let Some(n) = &requested.memory_allocation {
        next.memory_allocation = nat_u64(n, "memory_allocation")?;
    }
    if let Some(n) = &requested.freezing_threshold {
        next.freezing_threshold = nat_u64(n, "freezing_threshold")?;
    }
    if let Some(n) = &requested.reserved_cycles_limit {
        next.reserved_cycles_limit = u128::try_from(&n.0).unwrap_or(u128::MAX);
    }
    if let Some(v) = &requested.log_visibility {
        next.log_visibility = v.clone();
    }
    if let Some(n) = &requested.wasm_memory_limit {
        next.wasm_memory_limit = nat_u64(n, "wasm_memory_limit")?;
    }
    if let Some(n) = &requested.wasm_memory_threshold {
        next.wasm_memory_threshold = nat_u64(n, "wasm_memory_threshold")?;
    }
    if let Some(n) = &requested.log_memory_limit {
        next.log_memory_limit = nat_u64(n, "log_memory_limit")?;
    }
    if let Some(vars) = &requested.environment_variables {
        let mut v: Vec<(String, String)> = vars
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect();
        v.sort();
        v.dedup_by(|a, b| a.0 == b.0);
        next.environment_variables = v;
    }
    *s = next;
    Ok(())
}

pub(crate) fn status_of(c: &Canister) -> mgmt::CanisterStatusResult {
    let s = &c.settings;
    let stable = c.stable_pages * crate::module::WASM_PAGE_SIZE;
    let wasm = c.module.as_ref().map_or(0, |m| m.wasm_len as u64);
    let chunks: usize = c.chunks.values().map(Vec::len).sum();
    let snapshots: u64 = c.snapshots.iter().map(|s| s.size).sum();
    mgmt::CanisterStatusResult {
        status: match c.status {
            Status::Running => mgmt::CanisterStatusType::Running,
            Status::Stopping => mgmt::CanisterStatusType::Stopping,
            Status::Stopped => mgmt::CanisterStatusType::Stopped,
        },
        ready_for_migration: false,
        version: c.version,
        settings: mgmt::DefiniteCanisterSettings {
            controllers: s.controllers.clone(),
            compute_allocation: Nat::from(s.compute_allocation),
            memory_allocation: Nat::from(s.memory_allocation),
            freezing_threshold: Nat::from(s.freezing_threshold),
            reserved_cycles_limit: Nat::from(s.reserved_cycles_limit),
            log_visibility: s.log_visibility.clone(),
            log_memory_limit: Nat::from(s.log_memory_limit),
            wasm_memory_limit: Nat::from(s.wasm_memory_limit),
            wasm_memory_threshold: Nat::from(s.wasm_memory_threshold),
            environment_variables: s
                .environment_variables
                .iter()
                .map(|(name, value)| mgmt::EnvironmentVariable {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
        },
        module_hash: c.module.as_ref().map(|m| m.hash.to_vec()),
        memory_size: Nat::from(c.memory_bytes()),
        memory_metrics: mgmt::MemoryMetrics {
            wasm_memory_size: Nat::from(c.heap.size_bytes as u64),
            stable_memory_size: Nat::from(stable),
            global_memory_size: Nat::from(c.heap.globals.len() as u64 * 8),
            wasm_binary_size: Nat::from(wasm),
            custom_sections_size: Nat::from(c.module.as_ref().map_or(0, |m| {
                m.metadata
                    .iter()
                    .map(|(k, (_, v))| k.len() + v.len())
                    .sum::<usize>() as u64
            })),
            canister_history_size: Nat::from(c.history.len() as u64 * 64),
            wasm_chunk_store_size: Nat::from(chunks as u64),
            snapshots_size: Nat::from(snapshots),
            log_memory_store_size: Nat::from(c.log.bytes() as u64),
        },
        cycles: Nat::from(c.cycles),
        reserved_cycles: Nat::from(0u64),
        idle_cycles_burned_per_day: Nat::from(costs::freezing_reserve(c.memory_bytes(), 86_400)),
        query_stats: mgmt::QueryStats {
            num_calls_total: Nat::from(0u64),
            num_instructions_total: Nat::from(0u64),
            request_payload_bytes_total: Nat::from(0u64),
            response_payload_bytes_total: Nat::from(0u64),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_code_args_decode_the_upstream_encoding() {
        let upstream = mgmt::InstallCodeArgs {
            mode: CanisterInstallMode::Reinstall,
            canister_id: Principal::from_slice(&[1, 2, 3]),
            wasm_module: (0..100_000u32).map(|i| (i % 251) as u8).collect(),
            arg: vec![7, 8, 9],
            sender_canister_version: Some(4),
        };
        let args: InstallCodeArgs = decode(&Encode!(&upstream).unwrap()).unwrap();
        assert_eq!(args.mode, upstream.mode);
        assert_eq!(args.canister_id, upstream.canister_id);
        assert_eq!(args.wasm_module, upstream.wasm_module);
        assert_eq!(args.arg, upstream.arg);
        assert_eq!(args.sender_canister_version, Some(4));
    }
}
