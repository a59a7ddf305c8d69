//! `ic_sim`: an in-process Internet Computer that runs real canister wasm.
//!
//! [`IcSim`] (alias [`PocketIc`]) has the shape of the pocket-ic crate's `PocketIc`, so that a
//! test written for PocketIC compiles against it by changing the type. It executes modules
//! built with ic-cdk on the wasmi interpreter, implements the `ic0` system API, the management
//! canister, the cycles minting canister's `create_canister` ([`cmc`]), rounds, call contexts
//! and callbacks, cycles and instruction metering. See the
//! crate's README for the model, its limits and measured figures.

mod call_shapes;
mod certification;
pub mod cmc;
mod composite;
mod costs;
mod errors;
mod exec;
mod http_outcalls;
mod logs;
mod management;
mod memory;
mod metadata;
mod module;
mod report;
mod scheduler;
mod sender_info;
mod sim;
mod snapshots;
mod system_api;
mod threshold;
mod topology;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{decode_args, encode_args, encode_one, Principal};

pub use call_shapes::{call_candid, call_candid_as, RawEffectivePrincipal};
pub use certification::{CertificationError, StateTree};
pub use cmc::CMC_ID;
pub use composite::{
    INSTRUCTION_OVERHEAD_PER_QUERY_CALL, MAX_QUERY_CALL_DEPTH, MAX_QUERY_CALL_GRAPH_INSTRUCTIONS,
};
pub use costs::CANISTER_CREATION_FEE;
pub use errors::{ErrorCode, RejectCode, RejectResponse};
pub use http_outcalls::{
    CanisterHttpHeader, CanisterHttpMethod, CanisterHttpReject, CanisterHttpReply,
    CanisterHttpRequest, CanisterHttpResponse, MockCanisterHttpResponse, MAX_HTTP_RESPONSE_BYTES,
};
pub use management::{MAX_CHUNKS, MAX_CHUNK_SIZE, MAX_CONTROLLERS};
pub use metadata::{with_custom_section, REGISTRY_VERSION, REPLICA_VERSION};
pub use report::MemoryReport;
pub use sender_info::RawSenderInfo;
pub use sim::{SimLimits, DEFAULT_PROVISIONAL_CYCLES};
pub use snapshots::{MAX_SNAPSHOTS, MAX_SNAPSHOT_SLICE};
pub use topology::{
    CanisterIdRange, RawCanisterId, SubnetConfig, SubnetId, SubnetInstructionConfig, SubnetKind,
    Topology, MAX_APPLICATION_SUBNETS,
};

/// The types pocket-ic offers under `pocket_ic::common::rest` that the simulator uses.
pub mod common {
    pub mod rest {
        pub use crate::call_shapes::RawEffectivePrincipal;
        pub use crate::http_outcalls::{
            CanisterHttpHeader, CanisterHttpMethod, CanisterHttpReject, CanisterHttpReply,
            CanisterHttpRequest, CanisterHttpResponse, MockCanisterHttpResponse,
        };
        pub use crate::sender_info::RawSenderInfo;
    }
}

/// Management canister types, as pocket-ic's `management_canister` module offers them.
pub mod management_canister {
    pub use ic_management_canister_types::*;
}

use management_canister::{
    CanisterIdRecord, CanisterInstallMode, CanisterSettings, CanisterStatusResult, ChunkHash,
    DeleteCanisterSnapshotArgs, InstallChunkedCodeArgs, InstallCodeArgs, LoadCanisterSnapshotArgs,
    ProvisionalCreateCanisterWithCyclesArgs, Snapshot, TakeCanisterSnapshotArgs,
    UpdateSettingsArgs, UpgradeFlags,
};

pub type CanisterId = Principal;

/// A point in simulated time (nanoseconds since the Unix epoch), like pocket-ic's `Time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(u64);

impl Time {
    pub const fn from_nanos_since_unix_epoch(nanos: u64) -> Self {
        Time(nanos)
    }
    pub const fn as_nanos_since_unix_epoch(&self) -> u64 {
        self.0
    }
}

impl std::ops::Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0 + d.as_nanos() as u64)
    }
}

impl From<SystemTime> for Time {
    fn from(t: SystemTime) -> Self {
        Time(
            t.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        )
    }
}

impl From<Time> for SystemTime {
    fn from(t: Time) -> Self {
        UNIX_EPOCH + Duration::from_nanos(t.0)
    }
}

/// The id of a submitted ingress message (pocket-ic's `RawMessageId`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawMessageId {
    pub effective_principal: Principal,
    pub message_id: Vec<u8>,
}

/// Simulated start time: 2025-01-01T00:00:00Z, fixed so that runs are reproducible.
pub const DEFAULT_START_TIME_NANOS: u64 = 1_735_689_600_000_000_000;

/// Builds an [`IcSim`] (pocket-ic's `PocketIcBuilder`).
#[derive(Clone, Debug)]
pub struct IcSimBuilder {
    limits: SimLimits,
    time: u64,
    print_logs: bool,
    live_instances: usize,
    live_bytes: usize,
    round_duration: Option<Duration>,
    subnets: Vec<SubnetKind>,
    root_key_seed: Option<[u8; 32]>,
}

impl Default for IcSimBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl IcSimBuilder {
    pub fn new() -> Self {
        IcSimBuilder {
            limits: SimLimits::default(),
            time: DEFAULT_START_TIME_NANOS,
            print_logs: std::env::var_os("IC_SIM_QUIET").is_none(),
            live_instances: exec::DEFAULT_LIVE_INSTANCES,
            live_bytes: exec::DEFAULT_LIVE_BYTES,
            round_duration: None,
            subnets: Vec::new(),
            root_key_seed: None,
        }
    }
    /// Seeds the instance's root key (interface spec, "Certification"): instances built with
    /// the same seed sign with the same key. Without a seed, each instance of the process gets
    /// its own key (the seed is the instance's number in the process).
    pub fn with_root_key_seed(mut self, seed: [u8; 32]) -> Self {
        self.root_key_seed = Some(seed);
        self
    }
}

/// pocket-ic's builder methods that add a subnet. The simulator has application subnets only:
/// up to [`MAX_APPLICATION_SUBNETS`] `with_application_subnet` are accepted (none gives one),
/// and [`IcSimBuilder::try_build`] refuses any other kind, naming it.
macro_rules! subnet_options {
    ($($method:ident => $kind:ident),* $(,)?) => {
        impl IcSimBuilder {
            $(
                #[doc = concat!(
                    "Adds a subnet of kind `", stringify!($kind), "`; only application subnets ",
                    "build (see [`IcSimBuilder::try_build`])."
                )]
                pub fn $method(mut self) -> Self {
                    self.subnets.push(SubnetKind::$kind);
                    self
                }
            )*
        }
    };
}

subnet_options!(
    with_application_subnet => Application,
    with_verified_application_subnet => VerifiedApplication,
    with_system_subnet => System,
    with_nns_subnet => NNS,
    with_sns_subnet => SNS,
    with_ii_subnet => II,
    with_fiduciary_subnet => Fiduciary,
    with_bitcoin_subnet => Bitcoin,
);

impl IcSimBuilder {
    pub fn with_limits(mut self, limits: SimLimits) -> Self {
        self.limits = limits;
        self
    }
    pub fn with_initial_time(mut self, time: Time) -> Self {
        self.time = time.0;
        self
    }
    /// Whether canister `debug_print` output goes to stderr (default: yes, unless the
    /// `IC_SIM_QUIET` environment variable is set).
    pub fn with_logs(mut self, print: bool) -> Self {
        self.print_logs = print;
        self
    }
    /// Bounds the cache of live module instances: at most `max_instances` canisters keep an
    /// instance between messages, holding at most `max_bytes` of linear memory together
    /// (defaults: 128 instances, 512 MiB). Once full, a canister replaces the least recently
    /// used one only if it ran more often recently. Zero instances re-instantiates for every
    /// message (no spare instances are reused either).
    pub fn with_instance_cache(mut self, max_instances: usize, max_bytes: usize) -> Self {
        self.live_instances = max_instances;
        self.live_bytes = max_bytes;
        self
    }
    /// The time each round adds when time did not move since the previous round. The default
    /// is PocketIC's step, 1 ns (`StateMachine::EXECUTE_ROUND_TIME_INCREMENT`); a rehearsal that
    /// models mainnet, where a subnet finalizes about one block per second, sets about 1 s.
    /// Moving time with `advance_time`/`set_time` replaces the step for the next round, as in
    /// PocketIC.
    pub fn with_round_duration(mut self, duration: Duration) -> Self {
        self.round_duration = Some(duration);
        self
    }
    /// Builds the simulator, or says which setting it cannot work with.
    pub fn try_build(self) -> Result<IcSim, String> {
        self.limits.validate()?;
        topology::validate_subnets(&self.subnets)?;
        let round_nanos = match self.round_duration {
            None => scheduler::POCKET_IC_ROUND_NANOS,
            Some(d) => match u64::try_from(d.as_nanos()) {
                Ok(0) => {
                    return Err(
                        "the round duration must be positive: time is strictly monotonic".into(),
                    )
                }
                Ok(n) => n,
                Err(_) => return Err(format!("round duration {d:?} is too long")),
            },
        };
        let mut sim = sim::Sim::new(self.limits, self.time, self.print_logs);
        let count = self.subnets.len().max(1);
        sim.subnets = (0..count).map(|i| sim::Subnet::new(i, count)).collect();
        sim.round_nanos = round_nanos;
        sim.root_key = Arc::new(certification::RootKey::from_seed(
            self.root_key_seed.unwrap_or_else(next_instance_seed),
        ));
        sim.instances = exec::Instances::new(self.live_instances, self.live_bytes);
        Ok(IcSim {
            sim: RefCell::new(sim),
        })
    }
    /// Builds the simulator; panics on a setting [`IcSimBuilder::try_build`] rejects (as
    /// pocket-ic's builder panics on a bad configuration).
    pub fn build(self) -> IcSim {
        self.try_build()
            .unwrap_or_else(|e| panic!("invalid ic_sim configuration: {e}"))
    }
}

/// The default root key seed of the next instance built in this process: its number.
fn next_instance_seed() -> [u8; 32] {
    static INSTANCES: AtomicU64 = AtomicU64::new(0);
    let mut seed = [0; 32];
    seed[..8].copy_from_slice(&INSTANCES.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    seed
}

/// An in-process IC with one or more application subnets. Methods take `&self` like
/// pocket-ic's.
pub struct IcSim {
    sim: RefCell<sim::Sim>,
}

/// Drop-in name for tests written against pocket-ic.
pub type PocketIc = IcSim;
pub type PocketIcBuilder = IcSimBuilder;

impl Default for IcSim {
    fn default() -> Self {
        Self::new()
    }
}

fn sender_or_anonymous(sender: Option<Principal>) -> Principal {
    sender.unwrap_or_else(Principal::anonymous)
}

fn decode_reply<T: candid::CandidType + for<'de> serde::Deserialize<'de>>(bytes: Vec<u8>) -> T {
    candid::decode_one(&bytes).expect("management canister reply decodes")
}

impl IcSim {
    pub fn new() -> Self {
        IcSimBuilder::new().build()
    }

    /// Calls the management canister as `sender` (an ingress message, executed in rounds).
    fn management<A: candid::CandidType>(
        &self,
        sender: Principal,
        method: &str,
        arg: &A,
    ) -> Result<Vec<u8>, RejectResponse> {
        let bytes = encode_one(arg).expect("encoding management argument");
        self.update_call(Principal::management_canister(), sender, method, bytes)
    }

    /// [`Self::management`] as `sender` (anonymous if none), with the reply decoded.
    fn management_decoded<A, R>(
        &self,
        sender: Option<Principal>,
        method: &str,
        arg: &A,
    ) -> Result<R, RejectResponse>
    where
        A: candid::CandidType,
        R: candid::CandidType + for<'de> serde::Deserialize<'de>,
    {
        self.management(sender_or_anonymous(sender), method, arg)
            .map(decode_reply)
    }

    // ------------------------------------------------------------ canisters and cycles

    /// Creates a canister controlled by the anonymous principal, with the default cycles.
    pub fn create_canister(&self) -> CanisterId {
        self.create_canister_with_settings(None, None)
    }

    pub fn create_canister_with_settings(
        &self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
    ) -> CanisterId {
        self.provisional_create(sender, settings, None)
            .unwrap_or_else(|e| panic!("create_canister failed: {e}"))
    }

    /// Creates a canister under a chosen id (pocket-ic's `create_canister_with_id`).
    pub fn create_canister_with_id(
        &self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
        canister_id: CanisterId,
    ) -> Result<CanisterId, String> {
        self.provisional_create(sender, settings, Some(canister_id))
            .map_err(|e| e.to_string())
    }

    /// `provisional_create_canister_with_cycles` with the default cycles, as `sender`.
    fn provisional_create(
        &self,
        sender: Option<Principal>,
        settings: Option<CanisterSettings>,
        specified_id: Option<CanisterId>,
    ) -> Result<CanisterId, RejectResponse> {
        let args = ProvisionalCreateCanisterWithCyclesArgs {
            amount: None,
            settings,
            specified_id,
            sender_canister_version: None,
        };
        // A chosen id is created by the subnet whose range holds it.
        if let Some(id) = specified_id {
            let mut sim = self.sim.borrow_mut();
            sim.provisional_subnet = sim.subnet_of(&id);
        }
        let created = self
            .management_decoded(sender, "provisional_create_canister_with_cycles", &args)
            .map(|r: CanisterIdRecord| r.canister_id);
        if specified_id.is_some() {
            self.sim.borrow_mut().provisional_subnet = 0;
        }
        created
    }

    /// Adds cycles to a canister and returns its new balance.
    pub fn add_cycles(&self, canister_id: CanisterId, amount: u128) -> u128 {
        let mut sim = self.sim.borrow_mut();
        let c = sim
            .canisters
            .get_mut(&canister_id)
            .unwrap_or_else(|| panic!("canister {canister_id} not found"));
        c.cycles = c.cycles.saturating_add(amount);
        c.cycles
    }

    pub fn cycle_balance(&self, canister_id: CanisterId) -> u128 {
        self.sim
            .borrow()
            .canisters
            .get(&canister_id)
            .map_or(0, |c| c.cycles)
    }

    // ------------------------------------------------------------ code

    /// Installs code; panics on failure, like pocket-ic.
    pub fn install_canister(
        &self,
        canister_id: CanisterId,
        wasm_module: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) {
        self.install_code(
            canister_id,
            CanisterInstallMode::Install,
            wasm_module,
            arg,
            sender,
        )
        .unwrap_or_else(|e| panic!("install_canister failed: {e}"));
    }

    pub fn upgrade_canister(
        &self,
        canister_id: CanisterId,
        wasm_module: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let mode = CanisterInstallMode::Upgrade(Some(UpgradeFlags {
            skip_pre_upgrade: None,
            wasm_memory_persistence: None,
        }));
        self.install_code(canister_id, mode, wasm_module, arg, sender)
    }

    pub fn reinstall_canister(
        &self,
        canister_id: CanisterId,
        wasm_module: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        self.install_code(
            canister_id,
            CanisterInstallMode::Reinstall,
            wasm_module,
            arg,
            sender,
        )
    }

    /// `install_code` with any mode (e.g. an upgrade with `skip_pre_upgrade`).
    pub fn install_code(
        &self,
        canister_id: CanisterId,
        mode: CanisterInstallMode,
        wasm_module: Vec<u8>,
        arg: Vec<u8>,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let args = InstallCodeArgs {
            mode,
            canister_id,
            wasm_module,
            arg,
            sender_canister_version: None,
        };
        self.management(sender_or_anonymous(sender), "install_code", &args)
            .map(|_| ())
    }

    pub fn uninstall_canister(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        let args = management_canister::UninstallCodeArgs {
            canister_id,
            sender_canister_version: None,
        };
        self.management(sender_or_anonymous(sender), "uninstall_code", &args)
            .map(|_| ())
    }

    pub fn upload_chunk(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
        chunk: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let args = management_canister::UploadChunkArgs { canister_id, chunk };
        self.management(sender_or_anonymous(sender), "upload_chunk", &args)
            .map(|r| decode_reply::<ChunkHash>(r).hash)
    }

    pub fn stored_chunks(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
    ) -> Result<Vec<Vec<u8>>, RejectResponse> {
        self.management(
            sender_or_anonymous(sender),
            "stored_chunks",
            &CanisterIdRecord { canister_id },
        )
        .map(|r| {
            decode_reply::<Vec<ChunkHash>>(r)
                .into_iter()
                .map(|h| h.hash)
                .collect()
        })
    }

    pub fn clear_chunk_store(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        self.management(
            sender_or_anonymous(sender),
            "clear_chunk_store",
            &CanisterIdRecord { canister_id },
        )
        .map(|_| ())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn install_chunked_canister(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
        mode: CanisterInstallMode,
        store_canister_id: CanisterId,
        chunk_hashes_list: Vec<Vec<u8>>,
        wasm_module_hash: Vec<u8>,
        arg: Vec<u8>,
    ) -> Result<(), RejectResponse> {
        let args = InstallChunkedCodeArgs {
            mode,
            target_canister: canister_id,
            store_canister: Some(store_canister_id),
            chunk_hashes_list: chunk_hashes_list
                .into_iter()
                .map(|hash| ChunkHash { hash })
                .collect(),
            wasm_module_hash,
            arg,
            sender_canister_version: None,
        };
        self.management(sender_or_anonymous(sender), "install_chunked_code", &args)
            .map(|_| ())
    }

    // ------------------------------------------------------------ calls

    /// Submits an update call and ticks until it completes (bounded by
    /// [`SimLimits::max_rounds_per_call`]). The management canister is a valid target: the
    /// effective canister is taken from the argument and the sender must control it.
    pub fn update_call(
        &self,
        canister_id: CanisterId,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let id = self.submit_call(canister_id, sender, method, payload)?;
        self.await_call(id)
    }

    /// Submits an ingress message; it executes in the next round.
    pub fn submit_call(
        &self,
        canister_id: CanisterId,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<RawMessageId, RejectResponse> {
        let id = self
            .sim
            .borrow_mut()
            .submit(canister_id, sender, method, payload, None)?;
        Ok(RawMessageId {
            effective_principal: canister_id,
            message_id: id.to_be_bytes().to_vec(),
        })
    }

    /// Ticks until the submitted message completes and returns its result.
    pub fn await_call(&self, message_id: RawMessageId) -> Result<Vec<u8>, RejectResponse> {
        let id = u64::from_be_bytes(
            message_id
                .message_id
                .as_slice()
                .try_into()
                .expect("an ic_sim message id"),
        );
        self.sim.borrow_mut().await_ingress(id)
    }

    /// The result of a submitted message if it has completed, without ticking. Five minutes
    /// after completion its status is `done` and this is a reject (interface spec, "Request
    /// status").
    pub fn ingress_status(
        &self,
        message_id: &RawMessageId,
    ) -> Option<Result<Vec<u8>, RejectResponse>> {
        let id = u64::from_be_bytes(message_id.message_id.as_slice().try_into().ok()?);
        self.sim.borrow().ingress_status(id)
    }

    /// Executes a query on the current state; nothing it does persists.
    pub fn query_call(
        &self,
        canister_id: CanisterId,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        if canister_id == Principal::management_canister() {
            return self.sim.borrow().management_query(sender, method, &payload);
        }
        self.sim
            .borrow_mut()
            .query(canister_id, sender, method, payload)
    }

    /// The canister's log records, as a query of `sender` to the management canister
    /// (pocket-ic's `fetch_canister_logs`; interface spec, "IC method fetch_canister_logs").
    pub fn fetch_canister_logs(
        &self,
        canister_id: CanisterId,
        sender: Principal,
    ) -> Result<Vec<management_canister::CanisterLogRecord>, RejectResponse> {
        let args = management_canister::FetchCanisterLogsArgs {
            canister_id,
            filter: None,
        };
        let bytes = encode_one(&args).expect("encoding management argument");
        self.query_call(
            Principal::management_canister(),
            sender,
            "fetch_canister_logs",
            bytes,
        )
        .map(|r| {
            decode_reply::<management_canister::FetchCanisterLogsResult>(r).canister_log_records
        })
    }

    // ------------------------------------------------------------ rounds and time

    // ------------------------------------------------------------ HTTP outcalls

    /// The pending HTTP outcalls of canisters, oldest first (pocket-ic's `get_canister_http`).
    pub fn get_canister_http(&self) -> Vec<CanisterHttpRequest> {
        self.sim.borrow().canister_http_requests()
    }

    /// Answers a pending HTTP outcall and executes a round, in which the canister gets the
    /// outcome; panics when the request is not pending or the mock is malformed, as pocket-ic
    /// fails then (see [`Self::try_mock_canister_http_response`]).
    pub fn mock_canister_http_response(&self, mock: MockCanisterHttpResponse) {
        self.try_mock_canister_http_response(mock)
            .unwrap_or_else(|e| panic!("mock_canister_http_response failed: {e}"));
    }

    /// [`Self::mock_canister_http_response`] that says what is wrong with the mock instead of
    /// panicking; nothing changes then.
    pub fn try_mock_canister_http_response(
        &self,
        mock: MockCanisterHttpResponse,
    ) -> Result<(), String> {
        self.sim.borrow_mut().mock_http_response(mock)
    }

    /// Executes one round.
    pub fn tick(&self) {
        self.sim.borrow_mut().tick();
    }

    pub fn advance_time(&self, duration: Duration) {
        let mut sim = self.sim.borrow_mut();
        sim.time += duration.as_nanos() as u64;
    }

    pub fn get_time(&self) -> Time {
        Time(self.sim.borrow().time)
    }

    /// Sets the time; it never moves backwards (interface spec: time is monotonic).
    pub fn set_time(&self, time: Time) {
        let mut sim = self.sim.borrow_mut();
        assert!(time.0 >= sim.time, "time cannot move backwards");
        sim.time = time.0;
    }

    // ------------------------------------------------------------ settings and lifecycle

    pub fn set_controllers(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
        new_controllers: Vec<Principal>,
    ) -> Result<(), RejectResponse> {
        let settings = CanisterSettings {
            controllers: Some(new_controllers),
            ..Default::default()
        };
        self.update_canister_settings(canister_id, sender, settings)
    }

    pub fn update_canister_settings(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
        settings: CanisterSettings,
    ) -> Result<(), RejectResponse> {
        let args = UpdateSettingsArgs {
            canister_id,
            settings,
            sender_canister_version: None,
        };
        self.management(sender_or_anonymous(sender), "update_settings", &args)
            .map(|_| ())
    }

    pub fn start_canister(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        self.management(
            sender_or_anonymous(sender),
            "start_canister",
            &CanisterIdRecord { canister_id },
        )
        .map(|_| ())
    }

    pub fn stop_canister(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        self.management(
            sender_or_anonymous(sender),
            "stop_canister",
            &CanisterIdRecord { canister_id },
        )
        .map(|_| ())
    }

    pub fn canister_status(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
    ) -> Result<CanisterStatusResult, RejectResponse> {
        self.management(
            sender_or_anonymous(sender),
            "canister_status",
            &CanisterIdRecord { canister_id },
        )
        .map(decode_reply::<CanisterStatusResult>)
    }

    pub fn delete_canister(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
    ) -> Result<(), RejectResponse> {
        self.management(
            sender_or_anonymous(sender),
            "delete_canister",
            &CanisterIdRecord { canister_id },
        )
        .map(|_| ())
    }

    pub fn canister_exists(&self, canister_id: CanisterId) -> bool {
        self.sim.borrow().canisters.contains_key(&canister_id)
    }

    /// Whether the canister is running (`Some(false)`: stopping or stopped), read without
    /// executing anything: unlike `canister_status`, which is a call and runs rounds until it
    /// is answered, this does not move the simulation (for invariant checks between rounds).
    pub fn is_running(&self, canister_id: CanisterId) -> Option<bool> {
        self.sim
            .borrow()
            .canisters
            .get(&canister_id)
            .map(|c| c.status == crate::sim::Status::Running)
    }

    /// The controllers of a canister (empty if it does not exist).
    pub fn get_controllers(&self, canister_id: CanisterId) -> Vec<Principal> {
        self.sim
            .borrow()
            .canisters
            .get(&canister_id)
            .map_or_else(Vec::new, |c| c.settings.controllers.clone())
    }

    // ------------------------------------------------------------ snapshots

    pub fn take_canister_snapshot(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
        replace_snapshot: Option<Vec<u8>>,
    ) -> Result<Snapshot, RejectResponse> {
        let args = TakeCanisterSnapshotArgs {
            canister_id,
            replace_snapshot,
            uninstall_code: None,
            sender_canister_version: None,
        };
        self.management(sender_or_anonymous(sender), "take_canister_snapshot", &args)
            .map(decode_reply::<Snapshot>)
    }

    pub fn load_canister_snapshot(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
        snapshot_id: Vec<u8>,
    ) -> Result<(), RejectResponse> {
        let args = LoadCanisterSnapshotArgs {
            canister_id,
            snapshot_id,
            sender_canister_version: None,
        };
        self.management(sender_or_anonymous(sender), "load_canister_snapshot", &args)
            .map(|_| ())
    }

    pub fn list_canister_snapshots(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
    ) -> Result<Vec<Snapshot>, RejectResponse> {
        self.management(
            sender_or_anonymous(sender),
            "list_canister_snapshots",
            &CanisterIdRecord { canister_id },
        )
        .map(decode_reply::<Vec<Snapshot>>)
    }

    pub fn delete_canister_snapshot(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
        snapshot_id: Vec<u8>,
    ) -> Result<(), RejectResponse> {
        let args = DeleteCanisterSnapshotArgs {
            canister_id,
            snapshot_id,
        };
        self.management(
            sender_or_anonymous(sender),
            "delete_canister_snapshot",
            &args,
        )
        .map(|_| ())
    }

    /// A snapshot's metadata (interface spec, "IC method read_canister_snapshot_metadata").
    pub fn read_canister_snapshot_metadata(
        &self,
        sender: Option<Principal>,
        args: &management_canister::ReadCanisterSnapshotMetadataArgs,
    ) -> Result<management_canister::ReadCanisterSnapshotMetadataResult, RejectResponse> {
        self.management_decoded(sender, "read_canister_snapshot_metadata", args)
    }

    /// One slice of a snapshot's data, at most [`MAX_SNAPSHOT_SLICE`] bytes (interface spec,
    /// "IC method read_canister_snapshot_data").
    pub fn read_canister_snapshot_data(
        &self,
        sender: Option<Principal>,
        args: &management_canister::ReadCanisterSnapshotDataArgs,
    ) -> Result<Vec<u8>, RejectResponse> {
        self.management_decoded(sender, "read_canister_snapshot_data", args)
            .map(|r: management_canister::ReadCanisterSnapshotDataResult| r.chunk)
    }

    /// Creates an empty snapshot of the given sizes and returns its id (interface spec, "IC
    /// method upload_canister_snapshot_metadata").
    pub fn upload_canister_snapshot_metadata(
        &self,
        sender: Option<Principal>,
        args: &management_canister::UploadCanisterSnapshotMetadataArgs,
    ) -> Result<Vec<u8>, RejectResponse> {
        self.management_decoded(sender, "upload_canister_snapshot_metadata", args)
            .map(|r: management_canister::UploadCanisterSnapshotMetadataResult| r.snapshot_id)
    }

    /// Writes one slice into an uploaded snapshot (interface spec, "IC method
    /// upload_canister_snapshot_data").
    pub fn upload_canister_snapshot_data(
        &self,
        sender: Option<Principal>,
        args: &management_canister::UploadCanisterSnapshotDataArgs,
    ) -> Result<(), RejectResponse> {
        self.management_decoded(sender, "upload_canister_snapshot_data", args)
    }

    // ------------------------------------------------------------ subnet and metadata

    /// The DER-encoded public root key of this instance (pocket-ic's `root_key`; interface spec,
    /// "Certificate"): certificates it issues verify under this key. Always present: every
    /// simulated subnet signs with the root key itself (no subnet keys or delegations), where
    /// pocket-ic answers `None` for an instance without an NNS subnet.
    pub fn root_key(&self) -> Option<Vec<u8>> {
        Some(self.sim.borrow().root_key.public_key_der().to_vec())
    }

    /// The system state tree as the HTTP interface's read_state requests see it (interface
    /// spec, "The system state tree"): `/time` and, per canister, `certified_data`,
    /// `module_hash` and `controllers`. A server adds the parts it keeps itself (request
    /// statuses, the subnet's nodes) and certifies a witness of it with [`Self::certify`].
    pub fn read_state_tree(&self) -> Result<StateTree, CertificationError> {
        self.sim.borrow().read_state_tree()
    }

    /// A certificate (interface spec, "Certificate", "Encoding of certificates") of `tree`,
    /// a state tree or a witness cut from one, signed with this instance's root key: it
    /// verifies under [`Self::root_key`] with no delegation.
    pub fn certify(&self, tree: ic_certification::HashTree) -> Result<Vec<u8>, CertificationError> {
        self.sim.borrow().root_key.certify(tree)
    }

    /// The subnet of a canister (pocket-ic's `get_subnet`): the subnet whose range holds its id,
    /// for every existing canister.
    pub fn get_subnet(&self, canister_id: CanisterId) -> Option<Principal> {
        let sim = self.sim.borrow();
        sim.canisters
            .contains_key(&canister_id)
            .then(|| sim.subnets[sim.subnet_of(&canister_id)].id)
    }

    /// Metadata section `name` of a canister's module as a read_state request of `sender` for
    /// `/canister/<id>/metadata/<name>` sees it (interface spec, "Canister information"):
    /// `icp:public` sections for anyone, `icp:private` ones for controllers only.
    pub fn canister_metadata(
        &self,
        canister_id: CanisterId,
        sender: Option<Principal>,
        name: &str,
    ) -> Result<Vec<u8>, RejectResponse> {
        self.sim
            .borrow()
            .canister_metadata(sender_or_anonymous(sender), &canister_id, name)
    }

    // ------------------------------------------------------------ inspection (ic_sim only)

    /// Replicated executions of the canister (updates, callbacks, timers, heartbeats) that
    /// trapped so far: a canister that should never trap can be watched with it.
    pub fn trap_count(&self, canister_id: CanisterId) -> u64 {
        self.sim
            .borrow()
            .canisters
            .get(&canister_id)
            .map_or(0, |c| c.traps)
    }

    /// What the simulator holds, by category, summed over canisters (for benchmarks).
    pub fn memory_report(&self) -> MemoryReport {
        self.sim.borrow().memory_report()
    }

    /// Instructions executed by a canister so far, over all its messages (for benchmarks).
    pub fn instructions_total(&self, canister_id: CanisterId) -> u64 {
        self.sim
            .borrow()
            .canisters
            .get(&canister_id)
            .map_or(0, |c| c.instructions_total)
    }

    /// SHA-256 of the installed module (as installed, so of the gzip bytes for gzipped ones).
    pub fn module_hash(&self, canister_id: CanisterId) -> Option<[u8; 32]> {
        self.sim
            .borrow()
            .canisters
            .get(&canister_id)?
            .module
            .as_ref()
            .map(|m| m.hash)
    }

    /// Executions so far that found their canister's instance live, and those that had to
    /// instantiate the module (see [`IcSimBuilder::with_instance_cache`]).
    pub fn instance_cache_stats(&self) -> (u64, u64) {
        let sim = self.sim.borrow();
        (sim.instances.hits, sim.instances.misses)
    }

    /// Canisters whose module instance is currently kept live.
    pub fn live_instances(&self) -> usize {
        self.sim.borrow().instances.len()
    }

    pub fn canister_count(&self) -> usize {
        self.sim.borrow().canisters.len()
    }

    /// Rounds executed so far.
    pub fn round(&self) -> u64 {
        self.sim.borrow().round
    }

    /// Host memory held privately by a canister: heap pages that differ from its module's
    /// initial image plus touched stable memory pages.
    pub fn private_memory_bytes(&self, canister_id: CanisterId) -> usize {
        self.sim
            .borrow()
            .canisters
            .get(&canister_id)
            .map_or(0, |c| c.heap.private_bytes() + c.stable.bytes())
    }

    /// Stable memory of a canister, as pocket-ic's `get_stable_memory`.
    pub fn get_stable_memory(&self, canister_id: CanisterId) -> Vec<u8> {
        let sim = self.sim.borrow();
        let Some(c) = sim.canisters.get(&canister_id) else {
            return Vec::new();
        };
        let mem = memory::StableMemory::new(c.stable.clone(), c.stable_pages);
        mem.read(0, c.stable_pages * module::WASM_PAGE_SIZE)
            .expect("in bounds")
    }

    // ------------------------------------------------------------ fault injection

    /// The next `n` calls to `canister_id` (from canisters or users) are rejected with `code`
    /// before they execute.
    pub fn fault_reject_next_calls(&self, canister_id: CanisterId, n: u32, code: RejectCode) {
        let mut sim = self.sim.borrow_mut();
        if let Some(c) = sim.canisters.get_mut(&canister_id) {
            c.faults.reject_next = n;
            c.faults.reject_code = Some(code);
        }
    }

    /// While `hold` is true the canister counts as having an open call context, so a stop
    /// request stays pending (and times out after 5 minutes).
    pub fn fault_hold_call_context(&self, canister_id: CanisterId, hold: bool) {
        let mut sim = self.sim.borrow_mut();
        if let Some(c) = sim.canisters.get_mut(&canister_id) {
            c.faults.hold_open = hold;
        }
    }

    /// The next `n` calls to the management canister about `canister_id` (named in their
    /// argument), from any caller, are rejected with `code` before they take effect.
    pub fn fault_reject_management_calls(&self, canister_id: CanisterId, n: u32, code: RejectCode) {
        self.sim
            .borrow_mut()
            .management_faults
            .insert(canister_id, (n, code));
    }

    /// Sets the canister's balance to zero: it is frozen and rejects calls.
    pub fn fault_drain_cycles(&self, canister_id: CanisterId) {
        let mut sim = self.sim.borrow_mut();
        if let Some(c) = sim.canisters.get_mut(&canister_id) {
            c.cycles = 0;
        }
    }

    /// The next `n` responses sent by `responder` (a canister or the management canister)
    /// to canisters are dropped: best-effort callers get SYS_UNKNOWN, guaranteed-response
    /// callers wait forever.
    pub fn fault_drop_responses(&self, responder: Principal, n: u32) {
        let mut sim = self.sim.borrow_mut();
        sim.response_faults.entry(responder).or_default().drop_next = n;
    }

    /// The next `n` responses sent by `responder` to canisters arrive `rounds` rounds late.
    pub fn fault_delay_responses(&self, responder: Principal, n: u32, rounds: u64) {
        let mut sim = self.sim.borrow_mut();
        let f = sim.response_faults.entry(responder).or_default();
        f.delay_next = n;
        f.delay_rounds = rounds;
    }
}

// ---------------------------------------------------------------- candid helpers

/// Defines the pocket-ic style pair of candid helpers for one kind of call: `$plain` calls as
/// the anonymous principal, `$as_sender` as a given principal, both through `IcSim::$call`.
macro_rules! candid_calls {
    ($kind:literal, $plain:ident, $as_sender:ident, $call:ident) => {
        #[doc = concat!("Calls a candid ", $kind, " method as the anonymous principal.")]
        pub fn $plain<Input, Output>(
            env: &IcSim,
            canister_id: CanisterId,
            method: &str,
            input: Input,
        ) -> Result<Output, RejectResponse>
        where
            Input: ArgumentEncoder,
            Output: for<'a> ArgumentDecoder<'a>,
        {
            $as_sender(env, canister_id, Principal::anonymous(), method, input)
        }

        #[doc = concat!("Calls a candid ", $kind, " method as `sender`.")]
        pub fn $as_sender<Input, Output>(
            env: &IcSim,
            canister_id: CanisterId,
            sender: Principal,
            method: &str,
            input: Input,
        ) -> Result<Output, RejectResponse>
        where
            Input: ArgumentEncoder,
            Output: for<'a> ArgumentDecoder<'a>,
        {
            with_candid(input, |bytes| env.$call(canister_id, sender, method, bytes))
        }
    };
}

candid_calls!("update", update_candid, update_candid_as, update_call);
candid_calls!("query", query_candid, query_candid_as, query_call);

/// Encodes `input`, runs `f`, decodes its reply (panicking on undecodable replies, as pocket-ic).
pub fn with_candid<Input, Output>(
    input: Input,
    f: impl FnOnce(Vec<u8>) -> Result<Vec<u8>, RejectResponse>,
) -> Result<Output, RejectResponse>
where
    Input: ArgumentEncoder,
    Output: for<'a> ArgumentDecoder<'a>,
{
    let bytes = encode_args(input).expect("failed to encode args");
    f(bytes).map(|out| {
        decode_args(&out).unwrap_or_else(|e| {
            panic!(
                "Failed to decode response as candid type {}: {e}",
                std::any::type_name::<Output>()
            )
        })
    })
}
