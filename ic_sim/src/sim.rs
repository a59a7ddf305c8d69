//! The simulated subnet: canisters, call contexts and callbacks, the message queues, message
//! delivery.
//!
//! Messages produced by an execution go to an outbox and are delivered by the scheduler
//! (`scheduler.rs`) in a later inner round or round (interface spec, "Abstract behavior":
//! message passing is asynchronous). Each delivery is one atomic execution; its effects
//! (state, outgoing calls, response) are committed only when it does not trap.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use candid::Principal;
use ic_management_canister_types::{Change, LogVisibility};

use crate::costs;
use crate::errors::{ErrorCode, RejectCode, RejectResponse};
use crate::exec::{execute, Entry, Heap, Instances, Outcome};
use crate::logs::CanisterLog;
use crate::memory::{PageMap, StableMemory, MAX_STABLE_BYTES};
use crate::module::{CanisterModule, MethodKind, WASM_PAGE_SIZE};
use crate::sender_info::RawSenderInfo;
use crate::snapshots::SnapshotData;
use crate::system_api::{ApiType, Host, HostTrap, IdleParams, Response};

/// Default cycles of a canister created through the provisional API (`create_canister` of
/// [`crate::IcSim`]), as the replica's `default_provisional_cycles_balance`.
pub const DEFAULT_PROVISIONAL_CYCLES: u128 = 100_000_000_000_000;
/// Default freezing threshold: 30 days (interface spec, "Canister settings").
pub(crate) const DEFAULT_FREEZING_THRESHOLD: u64 = 2_592_000;
/// Stop requests fail after 5 minutes (IC configuration `stop_canister_timeout_duration`).
pub(crate) const STOP_TIMEOUT_NANOS: u64 = 5 * 60 * 1_000_000_000;

/// Tunable limits of each simulated subnet (every subnet has all of them). The defaults are
/// those of the replica's application subnet: `SchedulerConfig::application_subnet()` in
/// dfinity/ic `rs/config/src/subnet_config.rs` (named after each field), unless another source
/// is given.
#[derive(Clone, Debug)]
pub struct SimLimits {
    /// Instructions per update message, callback, timer or heartbeat
    /// (`MAX_INSTRUCTIONS_PER_MESSAGE`: 40B).
    pub update_instructions: u64,
    /// Instructions per code installation, pre- and post-upgrade together
    /// (`MAX_INSTRUCTIONS_PER_INSTALL_CODE`: 300B).
    pub install_instructions: u64,
    /// Instructions per query or inspect_message (`MAX_INSTRUCTIONS_PER_MESSAGE_WITHOUT_DTS`:
    /// 5B, the limit of executions that are never sliced).
    pub query_instructions: u64,
    /// Rounds `update_call`/`await_call` wait for a response before giving up.
    pub max_rounds_per_call: u64,
    /// Instructions one round may execute on one core (`MAX_INSTRUCTIONS_PER_ROUND`: 7B). As on
    /// the replica, a core starts a new execution while its budget is positive, and the budget
    /// starts at `round_instructions - max(slice, query) + 1` so that an execution started at
    /// the last moment still ends within `round_instructions` (`execute_round` in
    /// `rs/execution_environment/src/scheduler.rs`).
    pub round_instructions: u64,
    /// Instructions of one slice of a long update, callback, timer or heartbeat execution
    /// (`MAX_INSTRUCTIONS_PER_SLICE`: 2B): deterministic time slicing spreads a longer execution
    /// over `ceil(instructions / slice)` rounds.
    pub slice_instructions: u64,
    /// Instructions of one slice of a long `install_code` (`MAX_INSTRUCTIONS_PER_INSTALL_CODE_SLICE`:
    /// 2B).
    pub install_slice_instructions: u64,
    /// Canisters executing in parallel (`NUMBER_OF_EXECUTION_THREADS`: 4 scheduler cores).
    pub scheduler_cores: usize,
    /// Long (sliced) canister executions that make progress at the same time
    /// (`MAX_PAUSED_EXECUTIONS`: 4).
    pub max_paused_executions: usize,
    /// Long `install_code` executions in progress at the same time: the replica runs install
    /// code messages one after another (`Ic00MethodPermissions::installs_code` in
    /// `rs/execution_environment/src/ic00_permissions.rs`: another one waits while one is
    /// paused).
    pub max_paused_install_code: usize,
    /// Instructions counted against the round for entering and leaving the wasm engine, per
    /// execution (`INSTRUCTION_OVERHEAD_PER_EXECUTION`: 2M).
    pub overhead_per_execution: u64,
    /// Instructions counted against the round per canister that executed on a core
    /// (`INSTRUCTION_OVERHEAD_PER_CANISTER`: 8M).
    pub overhead_per_canister: u64,
    /// Instructions counted against the round per canister of the subnet after each inner round
    /// (`INSTRUCTION_OVERHEAD_PER_CANISTER_FOR_FINALIZATION`: 12 000).
    pub overhead_per_canister_for_finalization: u64,
    /// Management (subnet) messages get `round_instructions / subnet_messages_fraction` per round
    /// on top of the canisters' budget (`SUBNET_MESSAGES_LIMIT_FRACTION`: 16, in the scheduler).
    pub subnet_messages_fraction: u64,
    /// Instructions an `upload_chunk` counts against the round
    /// (`DEFAULT_UPLOAD_CHUNK_INSTRUCTIONS`: 200M).
    pub upload_chunk_instructions: u64,
    /// Instructions taking or loading a snapshot counts against the round and charges to its
    /// canister, plus one per byte of the snapshot
    /// ([`crate::costs::SNAPSHOT_BASELINE_INSTRUCTIONS`]: 2B).
    pub snapshot_instructions: u64,
    /// Messages in the queue from one canister to one callee; each outstanding call holds a
    /// slot until its response is delivered (`DEFAULT_QUEUE_CAPACITY`: 500, in
    /// `rs/replicated_state/src/canister_state/queues.rs`). A call beyond it fails in
    /// `ic0.call_perform` with SYS_TRANSIENT (2).
    pub queue_capacity: usize,
    /// Inner rounds per round at most. The replica sets no count: its inner rounds end when the
    /// round's instructions are spent or nothing executed, which the per-execution and
    /// per-canister overheads bound (`inner_round` in the scheduler). This bound only guards
    /// against a changed budget that would let a ping-pong run forever.
    pub max_inner_rounds: u64,
}

impl Default for SimLimits {
    fn default() -> Self {
        SimLimits {
            update_instructions: 40_000_000_000,
            install_instructions: 300_000_000_000,
            query_instructions: 5_000_000_000,
            max_rounds_per_call: 1_000,
            round_instructions: 7_000_000_000,
            slice_instructions: 2_000_000_000,
            install_slice_instructions: 2_000_000_000,
            scheduler_cores: 4,
            max_paused_executions: 4,
            max_paused_install_code: 1,
            overhead_per_execution: 2_000_000,
            overhead_per_canister: 8_000_000,
            overhead_per_canister_for_finalization: 12_000,
            subnet_messages_fraction: 16,
            upload_chunk_instructions: 200_000_000,
            snapshot_instructions: costs::SNAPSHOT_BASELINE_INSTRUCTIONS,
            queue_capacity: 500,
            max_inner_rounds: 10_000,
        }
    }
}

impl SimLimits {
    /// Checks the limits a scheduler cannot work with.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("round_instructions", self.round_instructions),
            ("slice_instructions", self.slice_instructions),
            (
                "install_slice_instructions",
                self.install_slice_instructions,
            ),
            ("query_instructions", self.query_instructions),
            ("subnet_messages_fraction", self.subnet_messages_fraction),
            ("max_inner_rounds", self.max_inner_rounds),
            ("scheduler_cores", self.scheduler_cores as u64),
            ("max_paused_executions", self.max_paused_executions as u64),
            (
                "max_paused_install_code",
                self.max_paused_install_code as u64,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(format!("SimLimits::{name} must be positive"));
            }
        }
        if self.round_instructions > i64::MAX as u64 {
            return Err("SimLimits::round_instructions is too large".into());
        }
        Ok(())
    }

    /// The canisters' budget per core at the start of a round (see `round_instructions`).
    pub(crate) fn round_budget(&self) -> i64 {
        let longest = self.slice_instructions.max(self.query_instructions);
        self.round_instructions as i64 - longest.min(self.round_instructions) as i64 + 1
    }

    /// The management messages' budget per round.
    pub(crate) fn subnet_budget(&self) -> i64 {
        (self.round_instructions / self.subnet_messages_fraction) as i64
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Running,
    Stopping,
    Stopped,
}

/// Where a response goes.
#[derive(Clone, Debug)]
pub(crate) enum ReplyTo {
    Ingress(u64),
    Callback {
        canister: Principal,
        callback: u64,
        best_effort: bool,
    },
    /// System tasks (timer, heartbeat) have nobody to answer.
    Nobody,
}

#[derive(Clone, Debug)]
pub(crate) struct CallContext {
    pub origin: ReplyTo,
    pub caller: Principal,
    /// Caller info of the ingress message that opened the context.
    pub caller_info: Option<RawSenderInfo>,
    pub replied: bool,
    pub available: u128,
    pub outstanding: u32,
    pub instructions: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct Callback {
    pub context: u64,
    /// The canister (or `aaaaa-aa`) the call went to: its response slot counts towards the
    /// queue to that callee until the response is delivered.
    pub callee: Principal,
    pub reply: (u32, u32),
    pub reject: (u32, u32),
    pub cleanup: Option<(u32, u32)>,
    pub deadline: Option<u64>,
}

/// Fault injection on one canister (see the crate docs).
#[derive(Clone, Debug, Default)]
pub(crate) struct Faults {
    pub reject_next: u32,
    pub reject_code: Option<RejectCode>,
    pub hold_open: bool,
}

/// Fault injection on responses sent by one principal (canister or management canister).
#[derive(Clone, Debug, Default)]
pub(crate) struct ResponseFaults {
    pub drop_next: u32,
    pub delay_next: u32,
    pub delay_rounds: u64,
}

#[derive(Clone)]
pub(crate) struct Settings {
    pub controllers: Vec<Principal>,
    pub compute_allocation: u64,
    pub memory_allocation: u64,
    pub freezing_threshold: u64,
    pub reserved_cycles_limit: u128,
    pub log_visibility: LogVisibility,
    pub wasm_memory_limit: u64,
    pub wasm_memory_threshold: u64,
    pub log_memory_limit: u64,
    pub environment_variables: Vec<(String, String)>,
}

impl Settings {
    pub fn new(controllers: Vec<Principal>) -> Self {
        Settings {
            controllers,
            compute_allocation: 0,
            memory_allocation: 0,
            freezing_threshold: DEFAULT_FREEZING_THRESHOLD,
            reserved_cycles_limit: 5_000_000_000_000,
            log_visibility: LogVisibility::Controllers,
            wasm_memory_limit: 3 << 30,
            wasm_memory_threshold: 0,
            log_memory_limit: 4096,
            environment_variables: Vec::new(),
        }
    }
}

pub(crate) struct Canister {
    pub id: Principal,
    pub settings: Settings,
    pub status: Status,
    pub stop_requests: Vec<(ReplyTo, u64)>,
    pub cycles: u128,
    pub module: Option<Arc<CanisterModule>>,
    pub heap: Heap,
    pub stable: Arc<PageMap>,
    pub stable_pages: u64,
    pub global_timer: u64,
    pub certified_data: Vec<u8>,
    pub version: u64,
    pub contexts: BTreeMap<u64, CallContext>,
    pub callbacks: HashMap<u64, Callback>,
    pub chunks: BTreeMap<[u8; 32], Vec<u8>>,
    pub snapshots: Vec<SnapshotData>,
    pub history: Vec<Change>,
    pub total_changes: u64,
    pub instructions_total: u64,
    /// Replicated executions (update, callback, timer, heartbeat) that trapped.
    pub traps: u64,
    pub faults: Faults,
    pub log: CanisterLog,
    /// Outstanding calls per callee (each holds a slot of the queue pair, see
    /// [`SimLimits::queue_capacity`]).
    pub calls_out: HashMap<Principal, u32>,
    /// The last round in which the canister executed: the scheduler serves canisters that
    /// waited longest first.
    pub scheduled_round: u64,
}

impl Canister {
    pub fn new(id: Principal, settings: Settings, cycles: u128) -> Self {
        Canister {
            id,
            settings,
            status: Status::Running,
            stop_requests: Vec::new(),
            cycles,
            module: None,
            heap: Heap::default(),
            stable: Arc::new(PageMap::default()),
            stable_pages: 0,
            global_timer: 0,
            certified_data: Vec::new(),
            version: 0,
            contexts: BTreeMap::new(),
            callbacks: HashMap::new(),
            chunks: BTreeMap::new(),
            snapshots: Vec::new(),
            history: Vec::new(),
            total_changes: 0,
            instructions_total: 0,
            traps: 0,
            faults: Faults::default(),
            log: CanisterLog::default(),
            calls_out: HashMap::new(),
            scheduled_round: 0,
        }
    }

    /// Memory the canister is charged for: heap, stable memory, module, chunks, snapshots.
    pub fn memory_bytes(&self) -> u64 {
        let module = self.module.as_ref().map_or(0, |m| m.wasm_len as u64);
        let chunks: usize = self.chunks.values().map(Vec::len).sum();
        let snapshots: u64 = self.snapshots.iter().map(|s| s.size).sum();
        self.heap.size_bytes as u64
            + self.stable_pages * WASM_PAGE_SIZE
            + module
            + chunks as u64
            + snapshots
    }

    /// Cycles the canister must keep; below them it is frozen.
    pub fn freezing_reserve(&self) -> u128 {
        costs::freezing_reserve(self.memory_bytes(), self.settings.freezing_threshold)
    }

    pub fn is_frozen(&self) -> bool {
        self.cycles < self.freezing_reserve() + costs::UPDATE_MESSAGE_FEE
    }

    /// The module a message to this canister runs: only a running canister with code executes
    /// messages; stopping and stopped canisters reject them (interface spec, "IC method
    /// `stop_canister`").
    pub fn executable_module(
        &self,
        receiver: Principal,
    ) -> Result<Arc<CanisterModule>, RejectResponse> {
        match self.status {
            Status::Running => {}
            Status::Stopping => {
                return Err(RejectResponse::new(
                    ErrorCode::CanisterStopping,
                    format!("Canister {receiver} is stopping"),
                ))
            }
            Status::Stopped => {
                return Err(RejectResponse::new(
                    ErrorCode::CanisterStopped,
                    format!("Canister {receiver} is stopped"),
                ))
            }
        }
        self.module.clone().ok_or_else(|| {
            RejectResponse::new(
                ErrorCode::CanisterWasmModuleNotFound,
                format!("Error from Canister {receiver}: Attempted to execute a message, but the canister contains no Wasm module."),
            )
        })
    }

    pub fn open_call_contexts(&self) -> usize {
        self.contexts.len() + usize::from(self.faults.hold_open)
    }

    pub fn status_code(&self) -> u32 {
        match self.status {
            Status::Running => 1,
            Status::Stopping => 2,
            Status::Stopped => 3,
        }
    }

    /// Appends to the canister's history. A change made by a canister carries the
    /// `sender_canister_version` its call gave (interface spec, "IC method `canister_info`":
    /// `from_canister` records the calling canister's version when it passed one).
    pub fn record_change(
        &mut self,
        time: u64,
        origin: Principal,
        sender_version: Option<u64>,
        details: ic_management_canister_types::ChangeDetails,
    ) {
        use ic_management_canister_types::{ChangeOrigin, FromCanisterRecord, FromUserRecord};
        let origin = if is_canister_id(&origin) {
            ChangeOrigin::FromCanister(FromCanisterRecord {
                canister_id: origin,
                canister_version: sender_version,
            })
        } else {
            ChangeOrigin::FromUser(FromUserRecord { user_id: origin })
        };
        self.total_changes += 1;
        self.history.push(Change {
            timestamp_nanos: time,
            canister_version: self.version,
            origin,
            details: Some(details),
        });
        // The IC keeps the 20 most recent changes (interface spec, "IC method canister_info").
        if self.history.len() > 20 {
            self.history.remove(0);
        }
    }
}

/// Canister ids end in 0x01 (opaque ids, interface spec "Principals").
pub(crate) fn is_canister_id(p: &Principal) -> bool {
    let bytes = p.as_slice();
    bytes.len() == 10 && bytes[9] == 0x01
}

/// The number of a canister id (`canister_id_from_u64`'s inverse).
pub(crate) fn canister_id_to_u64(p: &Principal) -> Option<u64> {
    is_canister_id(p).then(|| u64::from_be_bytes(p.as_slice()[..8].try_into().expect("10 bytes")))
}

/// Canister ids per subnet when there are several: mainnet allocates canister id ranges to
/// subnets in blocks of 2^20 ids, and each subnet here gets one such block, the i-th subnet
/// the i-th block. A single subnet holds the whole id space.
pub(crate) const SUBNET_RANGE_SIZE: u64 = 1 << 20;

/// The scheduler state of one subnet: its own queues, long executions and installations, and
/// canister id range. Every subnet's round has the full budgets of [`SimLimits`]; the canisters
/// themselves live in [`Sim::canisters`], placed on a subnet by their id.
pub(crate) struct Subnet {
    pub id: Principal,
    /// The first and last number of the subnet's canister ids.
    pub range: (u64, u64),
    /// Ids handed out so far, counted from the range's start.
    pub next_canister: u64,
    /// Messages to canisters that are ready to execute (inducted).
    pub queue: VecDeque<Message>,
    /// Requests to the management canister that are ready to execute.
    pub subnet_queue: VecDeque<Request>,
    /// Long executions in progress (deterministic time slicing), by canister.
    pub held: BTreeMap<Principal, crate::scheduler::Held>,
    /// Long `install_code` executions in progress.
    pub held_installs: Vec<crate::scheduler::HeldInstall>,
}

impl Subnet {
    /// Subnet `index` of `count`: the first keeps the id the simulator always had, the others
    /// derive theirs from their index.
    pub fn new(index: usize, count: usize) -> Self {
        let id = if index == 0 {
            Principal::self_authenticating(b"ic_sim application subnet")
        } else {
            Principal::self_authenticating(format!("ic_sim application subnet {index}"))
        };
        let range = if count == 1 {
            (0, u64::MAX)
        } else {
            let start = index as u64 * SUBNET_RANGE_SIZE;
            (start, start + SUBNET_RANGE_SIZE - 1)
        };
        Subnet {
            id,
            range,
            next_canister: 0,
            queue: VecDeque::new(),
            subnet_queue: VecDeque::new(),
            held: BTreeMap::new(),
            held_installs: Vec::new(),
        }
    }
}

pub(crate) fn canister_id_from_u64(n: u64) -> Principal {
    let mut bytes = n.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0x01, 0x01]);
    Principal::from_slice(&bytes)
}

#[derive(Clone, Debug)]
pub(crate) struct Request {
    pub sender: Principal,
    pub receiver: Principal,
    pub method: String,
    pub arg: Vec<u8>,
    pub cycles: u128,
    pub reply_to: ReplyTo,
    pub deadline: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct ResponseMsg {
    pub receiver: Principal,
    pub callback: u64,
    pub result: Result<Vec<u8>, RejectResponse>,
    pub refund: u128,
}

#[derive(Clone, Debug)]
pub(crate) enum Message {
    Request(Request),
    Response(ResponseMsg),
}

pub(crate) struct Sim {
    pub limits: SimLimits,
    pub print_logs: bool,
    pub time: u64,
    pub round: u64,
    /// The application subnets, each with its own queues and scheduler state.
    pub subnets: Vec<Subnet>,
    /// The subnet whose round is running (or, between rounds, the subnet a message produced now
    /// comes from).
    pub active: usize,
    /// The subnet a provisional creation by ingress goes to (pocket-ic routes it by its
    /// effective canister id).
    pub provisional_subnet: usize,
    /// Set while `create_canister_on_subnet` runs: its subnet holds even for a canister
    /// sender, whose own subnet a provisional creation would otherwise go to.
    pub provisional_forced: bool,
    /// The instance's root key: it signs certificates of every subnet's state (no per-subnet
    /// key and delegation are modelled).
    pub root_key: Arc<crate::certification::RootKey>,
    pub canisters: BTreeMap<Principal, Canister>,
    /// Messages produced in the current inner round: the subnet that produced them, whether
    /// they are inducted within the round (between canisters of that subnet) or only at the
    /// end of the round (to and from the management canister, and to other subnets).
    pub outbox: Vec<(usize, bool, Message)>,
    /// Messages held back until a round: by fault injection, and messages between subnets
    /// (XNet), which reach the other subnet in the next round.
    pub delayed: Vec<(u64, Message)>,
    /// A long installation just computed by `install`, to be held by the management dispatch.
    pub install_hold: Option<crate::management::InstallWork>,
    /// Instructions the management message being executed counts against the round.
    pub mgmt_instructions: u64,
    /// Time added by a round when time was not moved since the previous round.
    pub round_nanos: u64,
    /// The time of the previous round.
    pub last_round_time: u64,
    /// Statuses of ingress messages: `None` while processing, then the reply or reject until
    /// [`INGRESS_STATUS_RETENTION_NANOS`] after completion; an id below `next_ingress` that is
    /// absent is `done` (see [`Sim::expire_ingress`]).
    pub ingress: HashMap<u64, Option<Result<Vec<u8>, RejectResponse>>>,
    /// Completed ingress messages in completion order, with their completion time.
    pub ingress_completed: VecDeque<(u64, u64)>,
    pub next_ingress: u64,
    pub next_callback: u64,
    pub next_context: u64,
    pub next_snapshot: u64,
    pub rand_counter: u64,
    pub response_faults: HashMap<Principal, ResponseFaults>,
    /// Management calls about a canister (by its id in the argument) to reject: (count, code).
    pub management_faults: HashMap<Principal, (u32, RejectCode)>,
    /// Best-effort callbacks with their deadline: (deadline, canister, callback).
    pub best_effort: Vec<(u64, Principal, u64)>,
    /// `sender_canister_version` of the management call being executed, if its caller is a
    /// canister that gave one: canister history records it.
    pub sender_version: Option<u64>,
    /// Live instances of recently used canisters.
    pub instances: Instances,
    /// HTTP outcalls waiting for a mocked response.
    pub outcalls: crate::http_outcalls::Outcalls,
    /// Caller info of ingress messages not yet executed, by ingress id.
    pub sender_infos: HashMap<u64, RawSenderInfo>,
    /// Every canister that may have a heartbeat or a global timer to run: added when its module
    /// exports `canister_heartbeat` or its timer is set, dropped by the round that finds
    /// neither. A round looks at these instead of at every canister of its subnet.
    pub system_tasks: BTreeSet<Principal>,
    /// Every canister a stop request made `Stopping`, dropped once it is not: the round that
    /// stops canisters looks at these instead of at every canister of its subnet.
    pub stopping: BTreeSet<Principal>,
}

/// How long a completed ingress message's reply stays readable: the replica's
/// `MAX_INGRESS_TTL` (5 minutes), after which its request status is `done` (interface spec,
/// "Request status").
pub(crate) const INGRESS_STATUS_RETENTION_NANOS: u64 = 5 * 60 * 1_000_000_000;

/// What reading a `done` request yields: the IC no longer holds its reply.
pub(crate) fn ingress_done() -> RejectResponse {
    RejectResponse::new(
        ErrorCode::IngressMessageTimeout,
        "the request's status is done: its reply is no longer available (the IC keeps it \
         for 5 minutes after completion)",
    )
}

/// The candid encoding of `()`.
pub(crate) fn empty_reply() -> Vec<u8> {
    candid::encode_args(()).expect("encoding ()")
}

/// An injected reject with `code`, under an error code of that reject code.
pub(crate) fn injected_reject(code: RejectCode, message: String) -> RejectResponse {
    let error = match code {
        RejectCode::SysFatal | RejectCode::SysTransient => ErrorCode::CanisterQueueFull,
        RejectCode::DestinationInvalid => ErrorCode::CanisterNotFound,
        RejectCode::CanisterReject => ErrorCode::CanisterRejectedMessage,
        RejectCode::CanisterError => ErrorCode::CanisterTrapped,
        RejectCode::SysUnknown => ErrorCode::DeadlineExpired,
    };
    let mut r = RejectResponse::new(error, message);
    r.reject_code = code;
    r
}

/// The reject a trap turns into (interface spec, "Reject codes": CANISTER_ERROR), with the
/// replica's message shapes.
pub(crate) fn trap_reject(canister: &Principal, trap: &HostTrap) -> RejectResponse {
    let message = match trap.code {
        ErrorCode::CanisterCalledTrap => format!(
            "Error from Canister {canister}: Canister called `ic0.trap` with message: '{}'.",
            trap.message
        ),
        ErrorCode::CanisterContractViolation => format!(
            "Error from Canister {canister}: Canister violated contract: {}.",
            trap.message
        ),
        _ => format!("Error from Canister {canister}: {}.", trap.message),
    };
    RejectResponse::new(trap.code, message)
}

/// The reject of a callback that trapped, and whose cleanup trapped too if `cleanup` is set: as
/// the replica reports it, the callback's error code with both messages.
pub(crate) fn callback_trap_reject(
    canister: &Principal,
    trap: &HostTrap,
    cleanup: Option<&HostTrap>,
) -> RejectResponse {
    let mut reject = trap_reject(canister, trap);
    if let Some(cleanup) = cleanup {
        reject.reject_message = format!(
            "{}\n\ncall_on_cleanup also failed:\n\n{}",
            reject.reject_message,
            trap_reject(canister, cleanup).reject_message
        );
    }
    reject
}

impl Sim {
    pub fn new(limits: SimLimits, time: u64, print_logs: bool) -> Self {
        Sim {
            limits,
            print_logs,
            time,
            round: 0,
            subnets: vec![Subnet::new(0, 1)],
            active: 0,
            provisional_subnet: 0,
            provisional_forced: false,
            root_key: Arc::new(crate::certification::RootKey::from_seed([0; 32])),
            canisters: BTreeMap::new(),
            outbox: Vec::new(),
            delayed: Vec::new(),
            install_hold: None,
            mgmt_instructions: 0,
            round_nanos: crate::scheduler::POCKET_IC_ROUND_NANOS,
            last_round_time: time,
            ingress: HashMap::new(),
            ingress_completed: VecDeque::new(),
            next_ingress: 0,
            next_callback: 0,
            next_context: 0,
            next_snapshot: 0,
            rand_counter: 0,
            response_faults: HashMap::new(),
            management_faults: HashMap::new(),
            sender_version: None,
            best_effort: Vec::new(),
            instances: Instances::new(
                crate::exec::DEFAULT_LIVE_INSTANCES,
                crate::exec::DEFAULT_LIVE_BYTES,
            ),
            outcalls: Default::default(),
            sender_infos: HashMap::new(),
            system_tasks: BTreeSet::new(),
            stopping: BTreeSet::new(),
        }
    }

    pub fn canister(&self, id: &Principal) -> Result<&Canister, RejectResponse> {
        self.canisters.get(id).ok_or_else(|| {
            RejectResponse::new(
                ErrorCode::CanisterNotFound,
                format!("Canister {id} not found"),
            )
        })
    }

    /// The next free canister id of the active subnet's range.
    pub fn new_canister_id(&mut self) -> Result<Principal, RejectResponse> {
        let subnet = &mut self.subnets[self.active];
        loop {
            let n = subnet.range.0.checked_add(subnet.next_canister);
            let Some(n) = n.filter(|n| *n <= subnet.range.1) else {
                return Err(RejectResponse::new(
                    ErrorCode::SubnetOversubscribed,
                    format!("Subnet {} has no canister ids left", subnet.id),
                ));
            };
            let id = canister_id_from_u64(n);
            subnet.next_canister += 1;
            // The built-in CMC's id lies in the first subnet's range but is never handed out.
            if !self.canisters.contains_key(&id) && id != crate::cmc::CMC_ID {
                return Ok(id);
            }
        }
    }

    /// The index of the subnet whose range holds `id`. With one subnet that is every id; with
    /// several, an id outside every range (not a canister id, or never allocated) is placed on
    /// the first subnet, which rejects messages to it as to any missing canister.
    pub fn subnet_of(&self, id: &Principal) -> usize {
        if self.subnets.len() == 1 {
            return 0;
        }
        canister_id_to_u64(id)
            .map(|n| (n / SUBNET_RANGE_SIZE) as usize)
            .filter(|i| *i < self.subnets.len())
            .unwrap_or(0)
    }

    /// The canisters of the active subnet (every canister when there is one subnet).
    pub fn active_canisters(&self) -> impl Iterator<Item = &Canister> + '_ {
        self.canisters.range(self.active_range()).map(|(_, c)| c)
    }

    /// The ids of the active subnet's canisters (all ids when there is one subnet).
    pub fn active_range(&self) -> (std::ops::Bound<Principal>, std::ops::Bound<Principal>) {
        use std::ops::Bound;
        if self.subnets.len() == 1 {
            (Bound::Unbounded, Bound::Unbounded)
        } else {
            let (lo, hi) = self.subnets[self.active].range;
            (
                Bound::Included(canister_id_from_u64(lo)),
                Bound::Included(canister_id_from_u64(hi)),
            )
        }
    }

    /// Notes that `id`'s module or timer changed: it may have system tasks now.
    pub(crate) fn may_have_system_tasks(&mut self, id: Principal) {
        let Some(c) = self.canisters.get(&id) else {
            return;
        };
        let heartbeat = c
            .module
            .as_ref()
            .is_some_and(|m| m.exports("canister_heartbeat"));
        if heartbeat || c.global_timer != 0 {
            self.system_tasks.insert(id);
        }
    }

    /// Whether `id` lies in the canister id range of some subnet.
    pub fn in_some_range(&self, id: &Principal) -> bool {
        self.subnets.len() == 1
            || canister_id_to_u64(id)
                .is_some_and(|n| n / SUBNET_RANGE_SIZE < self.subnets.len() as u64)
    }

    /// The subnet a message goes to: a canister's own; for a request to the management
    /// canister, that of the canister its argument names, else the calling canister's (the
    /// interface spec's routing of `aaaaa-aa` calls by effective canister id), else the
    /// subnet provisional creations by ingress go to.
    pub fn destination(&self, m: &Message) -> usize {
        if self.subnets.len() == 1 {
            return 0;
        }
        match m {
            Message::Response(r) => self.subnet_of(&r.receiver),
            Message::Request(r) if r.receiver == Principal::management_canister() => {
                match crate::management::effective_canister(r) {
                    Some(target) if self.canisters.contains_key(&target) => self.subnet_of(&target),
                    // `create_canister_on_subnet` names the subnet whoever the sender is.
                    _ if self.provisional_forced => self.provisional_subnet,
                    _ if is_canister_id(&r.sender) => self.subnet_of(&r.sender),
                    _ => self.provisional_subnet,
                }
            }
            Message::Request(r) => self.subnet_of(&r.receiver),
        }
    }

    /// The host state for an execution on canister `c`.
    pub fn host_for(&self, c: &Canister, api: ApiType, caller: Principal) -> Host {
        let mut h = Host::new(IdleParams);
        h.api = api;
        h.canister_id = c.id;
        h.caller = caller;
        h.balance = c.cycles;
        h.frozen_reserve = c.freezing_reserve();
        h.time = self.time;
        h.canister_version = c.version;
        h.status = c.status_code();
        h.controllers = c.settings.controllers.clone();
        h.subnet = self.subnets[self.subnet_of(&c.id)].id;
        h.stable = StableMemory::new(c.stable.clone(), c.stable_pages);
        h.max_stable_pages = MAX_STABLE_BYTES / WASM_PAGE_SIZE;
        h.global_timer = c.global_timer;
        h.certified_data = c.certified_data.clone();
        h.root_key = Some(self.root_key.clone());
        h.env_vars = c.settings.environment_variables.clone();
        h.call_slots = c.calls_out.clone();
        h.queue_capacity = self.limits.queue_capacity;
        h
    }

    pub(crate) fn print(&self, canister: &Principal, logs: &[Vec<u8>]) {
        if self.print_logs {
            for line in logs {
                eprintln!("[Canister {canister}] {}", String::from_utf8_lossy(line));
            }
        }
    }

    /// Commits a successful execution's state to the canister (heap, stable memory, cycles,
    /// timer, certified data) and charges for it; a failed one is only charged.
    fn settle(&mut self, id: &Principal, out: &mut Outcome, persist: bool) {
        self.record_logs(id, &out.host.logs, out.result.as_ref().err());
        let Some(c) = self.canisters.get_mut(id) else {
            return;
        };
        c.instructions_total += out.instructions;
        let fee = costs::execution_fee(out.instructions);
        match &mut out.result {
            Ok(_) if persist => {
                c.stable_pages = out.commit_memory(&mut c.heap, &mut c.stable);
                c.cycles = out.host.balance;
                c.global_timer = out.host.global_timer;
                c.certified_data = std::mem::take(&mut out.host.certified_data);
                c.version += 1;
                if c.global_timer != 0 {
                    self.system_tasks.insert(*id);
                }
            }
            _ => {}
        }
        c.cycles = c.cycles.saturating_sub(fee);
    }

    // ---------------------------------------------------------------- executions

    /// Runs a system task (`canister_heartbeat`, `canister_global_timer`); returns the
    /// instructions it counts against this round.
    pub(crate) fn run_system_task(&mut self, id: Principal, export: &str) -> u64 {
        let c = &self.canisters[&id];
        if c.is_frozen() {
            return 0;
        }
        let module = c.module.clone().expect("checked by caller");
        let ctx_id = self.new_context(
            id,
            CallContext {
                origin: ReplyTo::Nobody,
                caller: Principal::management_canister(),
                caller_info: None,
                replied: false,
                available: 0,
                outstanding: 0,
                instructions: 0,
            },
        );
        let c = &self.canisters[&id];
        let host = self.host_for(c, ApiType::SystemTask, Principal::management_canister());
        let out = execute(
            &mut self.instances,
            id,
            &module,
            &c.heap,
            &Entry::Export(export.to_string()),
            host,
            self.limits.update_instructions,
            true,
        );
        self.complete(id, ctx_id, out, true, None)
    }

    fn new_context(&mut self, canister: Principal, ctx: CallContext) -> u64 {
        let id = self.next_context;
        self.next_context += 1;
        self.canisters
            .get_mut(&canister)
            .expect("canister exists")
            .contexts
            .insert(id, ctx);
        id
    }

    /// Routes a response to whoever waits for it, applying response faults of `from`.
    pub fn respond(
        &mut self,
        from: Principal,
        to: ReplyTo,
        mut result: Result<Vec<u8>, RejectResponse>,
        refund: u128,
    ) {
        match to {
            ReplyTo::Nobody => {}
            ReplyTo::Ingress(id) => {
                self.ingress.insert(id, Some(result));
                self.ingress_completed.push_back((self.time, id));
            }
            ReplyTo::Callback {
                canister,
                callback,
                best_effort,
            } => {
                let mut delay = None;
                if let Some(f) = self.response_faults.get_mut(&from) {
                    if f.drop_next > 0 {
                        f.drop_next -= 1;
                        if !best_effort {
                            // A guaranteed response that is lost leaves the callback waiting.
                            return;
                        }
                        result = Err(RejectResponse::new(
                            ErrorCode::ResponseDropped,
                            "Response dropped",
                        ));
                    } else if f.delay_next > 0 {
                        f.delay_next -= 1;
                        delay = Some(f.delay_rounds);
                    }
                }
                let msg = Message::Response(ResponseMsg {
                    receiver: canister,
                    callback,
                    result,
                    refund,
                });
                match delay {
                    Some(rounds) => self.delayed.push((self.round + rounds.max(1), msg)),
                    // The CMC's responses cross subnets: they reach the caller's subnet in the
                    // next round (see `crate::cmc`).
                    None if from == crate::cmc::CMC_ID => self.delayed.push((self.round + 1, msg)),
                    // Responses between canisters of one subnet are inducted within the round;
                    // those of the management canister go through message routing, to the next
                    // round, and those to another subnet too (see `Sim::induct`). The
                    // management canister answers from the subnet that executed the request.
                    None => {
                        let src = if from == Principal::management_canister() {
                            self.active
                        } else {
                            self.subnet_of(&from)
                        };
                        let local = from != Principal::management_canister()
                            && self.subnet_of(&canister) == src;
                        self.outbox.push((src, local, msg))
                    }
                }
            }
        }
    }

    /// Checks that `receiver` can take a message now.
    fn admit(&mut self, receiver: &Principal) -> Result<Arc<CanisterModule>, RejectResponse> {
        let c = self.canisters.get_mut(receiver).ok_or_else(|| {
            RejectResponse::new(
                ErrorCode::CanisterNotFound,
                format!("Canister {receiver} not found"),
            )
        })?;
        if c.faults.reject_next > 0 {
            c.faults.reject_next -= 1;
            let code = c.faults.reject_code.unwrap_or(RejectCode::SysTransient);
            return Err(injected_reject(
                code,
                format!("Injected fault: canister {receiver} rejects this call"),
            ));
        }
        let module = c.executable_module(*receiver)?;
        if c.is_frozen() {
            return Err(RejectResponse::new(
                ErrorCode::CanisterOutOfCycles,
                format!(
                    "Canister {receiver} is out of cycles: please top up the canister with at least {} additional cycles",
                    (c.freezing_reserve() + costs::UPDATE_MESSAGE_FEE).saturating_sub(c.cycles)
                ),
            ));
        }
        Ok(module)
    }

    /// Executes a request to a canister; returns the instructions it counts against this
    /// round (0 when it was rejected without executing).
    pub fn deliver_request(&mut self, req: Request) -> u64 {
        let caller_info = match req.reply_to {
            ReplyTo::Ingress(id) => self.sender_infos.remove(&id),
            _ => None,
        };
        let module = match self.admit(&req.receiver) {
            Ok(m) => m,
            Err(e) => {
                self.respond(req.receiver, req.reply_to, Err(e), req.cycles);
                return 0;
            }
        };
        let (export, api) = match module.methods.get(&req.method) {
            Some(MethodKind::Update) => {
                (format!("canister_update {}", req.method), ApiType::Update)
            }
            Some(MethodKind::Query) => (
                format!("canister_query {}", req.method),
                ApiType::ReplicatedQuery,
            ),
            Some(MethodKind::CompositeQuery) => {
                let e = RejectResponse::new(
                    ErrorCode::CompositeQueryCalledInReplicatedMode,
                    format!("Error from Canister {}: Composite query cannot be called in replicated mode", req.receiver),
                );
                self.respond(req.receiver, req.reply_to, Err(e), req.cycles);
                return 0;
            }
            None => {
                let e = RejectResponse::new(
                    ErrorCode::CanisterMethodNotFound,
                    format!(
                        "Error from Canister {}: Canister has no update method '{}'.",
                        req.receiver, req.method
                    ),
                );
                self.respond(req.receiver, req.reply_to, Err(e), req.cycles);
                return 0;
            }
        };
        let ctx_id = self.new_context(
            req.receiver,
            CallContext {
                origin: req.reply_to,
                caller: req.sender,
                caller_info: caller_info.clone(),
                replied: false,
                available: req.cycles,
                outstanding: 0,
                instructions: 0,
            },
        );
        let c = &self.canisters[&req.receiver];
        let mut host = self.host_for(c, api, req.sender);
        host.caller_info = caller_info;
        host.arg = req.arg;
        host.cycles_available = req.cycles;
        host.deadline = req.deadline;
        let persist = api == ApiType::Update;
        let out = execute(
            &mut self.instances,
            req.receiver,
            &module,
            &c.heap,
            &Entry::Export(export),
            host,
            self.limits.update_instructions,
            persist,
        );
        self.complete(req.receiver, ctx_id, out, persist, None)
    }

    /// Delivers a response and runs its callback; returns the instructions it counts against
    /// this round.
    pub fn deliver_response(&mut self, resp: ResponseMsg) -> u64 {
        let id = resp.receiver;
        let Some(c) = self.canisters.get_mut(&id) else {
            return 0;
        };
        c.cycles += resp.refund;
        let Some(cb) = c.callbacks.remove(&resp.callback) else {
            return 0;
        };
        if let Some(n) = c.calls_out.get_mut(&cb.callee) {
            *n -= 1;
            if *n == 0 {
                c.calls_out.remove(&cb.callee);
            }
        }
        let Some(ctx) = c.contexts.get_mut(&cb.context) else {
            return 0;
        };
        ctx.outstanding -= 1;
        let ctx = ctx.clone();
        let (fun, env) = if resp.result.is_ok() {
            cb.reply
        } else {
            cb.reject
        };
        let module = match &c.module {
            Some(m) if fun != u32::MAX => m.clone(),
            // No module any more, or a one-way call (`ic0.call_new` with an invalid table
            // index, as ic-cdk's notify uses): no callback runs.
            _ => {
                self.close_if_done(id, cb.context, None);
                return 0;
            }
        };
        let (api, arg, code, message) = match resp.result {
            Ok(bytes) => (ApiType::ReplyCallback, bytes, 0, String::new()),
            Err(r) => (
                ApiType::RejectCallback,
                Vec::new(),
                r.reject_code as u32,
                r.reject_message,
            ),
        };
        let c = &self.canisters[&id];
        let mut host = self.host_for(c, api, ctx.caller);
        host.caller_info = ctx.caller_info;
        host.arg = arg;
        host.reject_code = code;
        host.reject_message = message;
        host.cycles_refunded = resp.refund;
        host.cycles_available = ctx.available;
        host.replied = ctx.replied;
        host.context_instructions = ctx.instructions;
        // A callback sees the deadline of the call it answers: that of a best-effort call,
        // 0 for a guaranteed-response one (interface spec, "ic0.msg_deadline").
        host.deadline = cb.deadline.unwrap_or(0);
        let out = execute(
            &mut self.instances,
            id,
            &module,
            &c.heap,
            &Entry::Table { index: fun, env },
            host,
            self.limits.update_instructions,
            true,
        );
        self.complete(id, cb.context, out, true, cb.cleanup)
    }

    /// Settles an execution within call context `ctx_id`: commits state, sends its calls and
    /// response, runs the cleanup callback after a trap, and closes the context when done.
    pub(crate) fn finish(
        &mut self,
        id: Principal,
        ctx_id: u64,
        mut out: Outcome,
        persist: bool,
        cleanup: Option<(u32, u32)>,
    ) {
        self.settle(&id, &mut out, persist);
        let trap = out.result.as_ref().err().cloned();
        if let Some(c) = self.canisters.get_mut(&id) {
            if let Some(ctx) = c.contexts.get_mut(&ctx_id) {
                ctx.instructions += out.instructions;
            }
            c.traps += u64::from(trap.is_some());
        }
        match trap {
            None => {
                let calls = std::mem::take(&mut out.host.calls);
                for call in calls {
                    self.send_call(id, ctx_id, call);
                }
                let accepted = out.host.cycles_accepted;
                let response = out.host.response.take();
                let Some(c) = self.canisters.get_mut(&id) else {
                    return;
                };
                let Some(ctx) = c.contexts.get_mut(&ctx_id) else {
                    return;
                };
                ctx.available -= accepted.min(ctx.available);
                if let Some(response) = response {
                    ctx.replied = true;
                    let refund = std::mem::take(&mut ctx.available);
                    let origin = ctx.origin.clone();
                    let result = match response {
                        Response::Reply(bytes) => Ok(bytes),
                        Response::Reject(message) => Err(RejectResponse::canister_reject(message)),
                    };
                    self.respond(id, origin, result, refund);
                }
                self.close_if_done(id, ctx_id, None);
            }
            Some(trap) => {
                let cleanup_trap =
                    cleanup.and_then(|(fun, env)| self.run_cleanup(id, ctx_id, fun, env));
                let reject = callback_trap_reject(&id, &trap, cleanup_trap.as_ref());
                self.close_if_done(id, ctx_id, Some(reject));
            }
        }
    }

    /// Runs a cleanup callback after a trap; returns its own trap, if it trapped too.
    fn run_cleanup(&mut self, id: Principal, ctx_id: u64, fun: u32, env: u32) -> Option<HostTrap> {
        let c = self.canisters.get(&id)?;
        let module = c.module.clone()?;
        let ctx = c.contexts.get(&ctx_id);
        let caller = ctx.map_or(id, |ctx| ctx.caller);
        let mut host = self.host_for(c, ApiType::Cleanup, caller);
        host.caller_info = ctx.and_then(|ctx| ctx.caller_info.clone());
        let mut out = execute(
            &mut self.instances,
            id,
            &module,
            &c.heap,
            &Entry::Table { index: fun, env },
            host,
            self.limits.update_instructions,
            true,
        );
        self.settle(&id, &mut out, true);
        out.result.err()
    }

    fn send_call(&mut self, from: Principal, ctx_id: u64, call: crate::system_api::OutgoingCall) {
        let callback = self.next_callback;
        self.next_callback += 1;
        let deadline = call
            .timeout_seconds
            .map(|s| self.time + u64::from(s) * 1_000_000_000);
        let c = self.canisters.get_mut(&from).expect("caller exists");
        *c.calls_out.entry(call.callee).or_default() += 1;
        c.callbacks.insert(
            callback,
            Callback {
                context: ctx_id,
                callee: call.callee,
                reply: call.reply,
                reject: call.reject,
                cleanup: call.cleanup,
                deadline,
            },
        );
        if let Some(ctx) = c.contexts.get_mut(&ctx_id) {
            ctx.outstanding += 1;
        }
        if let Some(d) = deadline {
            self.best_effort.push((d, from, callback));
        }
        let request = Message::Request(Request {
            sender: from,
            receiver: call.callee,
            method: call.method,
            arg: call.arg,
            cycles: call.cycles,
            reply_to: ReplyTo::Callback {
                canister: from,
                callback,
                best_effort: deadline.is_some(),
            },
            deadline: deadline.unwrap_or(0),
        });
        // Requests to the management canister go through message routing (the scheduler
        // inducts only messages between canisters of one subnet within a round).
        let src = self.subnet_of(&from);
        let local = call.callee != Principal::management_canister()
            && call.callee != crate::cmc::CMC_ID
            && self.destination(&request) == src;
        self.outbox.push((src, local, request));
    }

    /// Closes a call context that has no outstanding calls left. A context closed without a
    /// response is answered with CANISTER_ERROR (interface spec, "Call context").
    fn close_if_done(&mut self, id: Principal, ctx_id: u64, trap: Option<RejectResponse>) {
        let Some(c) = self.canisters.get_mut(&id) else {
            return;
        };
        let Some(ctx) = c.contexts.get(&ctx_id) else {
            return;
        };
        if ctx.outstanding > 0 {
            return;
        }
        let ctx = c.contexts.remove(&ctx_id).expect("present");
        if !ctx.replied {
            let reject = trap.unwrap_or_else(|| {
                RejectResponse::new(
                    ErrorCode::CanisterDidNotReply,
                    format!("Error from Canister {id}: Canister did not produce a response."),
                )
            });
            self.respond(id, ctx.origin, Err(reject), ctx.available);
        }
    }

    /// Best-effort calls whose deadline passed are answered with SYS_UNKNOWN (interface spec,
    /// "Best-effort responses").
    pub(crate) fn expire_best_effort(&mut self) {
        let now = self.time;
        let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.best_effort)
            .into_iter()
            .partition(|(d, _, _)| *d <= now);
        self.best_effort = live;
        let mut later = Vec::new();
        for (deadline, canister, callback) in expired {
            // Each subnet expires its own canisters' callbacks in its round.
            if self.subnet_of(&canister) != self.active {
                later.push((deadline, canister, callback));
                continue;
            }
            let waiting = self
                .canisters
                .get(&canister)
                .is_some_and(|c| c.callbacks.contains_key(&callback));
            if waiting {
                self.enqueue(Message::Response(ResponseMsg {
                    receiver: canister,
                    callback,
                    result: Err(RejectResponse::new(
                        ErrorCode::DeadlineExpired,
                        "Request timed out.",
                    )),
                    refund: 0,
                }));
            }
        }
        self.best_effort.extend(later);
    }

    /// Stopping canisters become stopped once no call context is open; stop requests older
    /// than 5 minutes are rejected with SYS_TRANSIENT and the canister stays stopping.
    pub(crate) fn progress_stops(&mut self) {
        let now = self.time;
        let candidates: Vec<Principal> =
            self.stopping.range(self.active_range()).copied().collect();
        for id in candidates {
            let Some(c) = self
                .canisters
                .get_mut(&id)
                .filter(|c| c.status == Status::Stopping)
            else {
                self.stopping.remove(&id);
                continue;
            };
            if c.open_call_contexts() == 0 {
                self.stopping.remove(&id);
                c.status = Status::Stopped;
                c.version += 1;
                for (reply_to, _) in std::mem::take(&mut c.stop_requests) {
                    self.respond(
                        Principal::management_canister(),
                        reply_to,
                        Ok(empty_reply()),
                        0,
                    );
                }
            } else {
                let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut c.stop_requests)
                    .into_iter()
                    .partition(|(_, deadline)| *deadline <= now);
                c.stop_requests = live;
                for (reply_to, _) in expired {
                    let e = RejectResponse::new(
                        ErrorCode::StopCanisterRequestTimeout,
                        format!("Stop canister request timed out for canister {id}"),
                    );
                    self.respond(Principal::management_canister(), reply_to, Err(e), 0);
                }
            }
        }
    }

    // ---------------------------------------------------------------- ingress and queries

    /// Accepts an ingress message (interface spec, "Request submission"): checks the target
    /// and runs `canister_inspect_message`, then queues it for the next round.
    pub fn submit(
        &mut self,
        receiver: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
        sender_info: Option<RawSenderInfo>,
    ) -> Result<u64, RejectResponse> {
        if receiver == Principal::management_canister() {
            self.check_management_ingress(sender, method, &arg)?;
        } else if receiver == crate::cmc::CMC_ID {
            // The CMC takes ingress messages; it executes them in the next round, as it
            // executes requests from canisters (see `crate::cmc`).
        } else {
            let c = self.canister(&receiver)?;
            let module = c.module.clone().ok_or_else(|| {
                RejectResponse::new(
                    ErrorCode::CanisterWasmModuleNotFound,
                    format!("Error from Canister {receiver}: Attempted to execute a message, but the canister contains no Wasm module."),
                )
            })?;
            if c.is_frozen() {
                return Err(RejectResponse::new(
                    ErrorCode::CanisterOutOfCycles,
                    format!("Canister {receiver} is out of cycles"),
                ));
            }
            if module.exports("canister_inspect_message") {
                let mut host = self.host_for(c, ApiType::InspectMessage, sender);
                host.caller_info = sender_info.clone();
                host.method_name = method.to_string();
                host.arg = arg.clone();
                let c = &self.canisters[&receiver];
                let out = execute(
                    &mut self.instances,
                    receiver,
                    &module,
                    &c.heap,
                    &Entry::Export("canister_inspect_message".into()),
                    host,
                    self.limits.query_instructions,
                    false,
                );
                self.print(&receiver, &out.host.logs);
                match out.result {
                    Err(trap) => return Err(trap_reject(&receiver, &trap)),
                    Ok(_) if !out.host.accepted_message => {
                        return Err(RejectResponse::new(
                            ErrorCode::CanisterRejectedMessage,
                            format!(
                                "Error from Canister {receiver}: Canister rejected the message"
                            ),
                        ))
                    }
                    Ok(_) => {}
                }
            }
        }
        if let Some(c) = self.canisters.get_mut(&receiver) {
            let fee = costs::ingress_induction_fee(method.len() as u64, arg.len() as u64);
            c.cycles = c.cycles.saturating_sub(fee);
        }
        let id = self.next_ingress;
        self.next_ingress += 1;
        self.ingress.insert(id, None);
        let canister =
            receiver != Principal::management_canister() && receiver != crate::cmc::CMC_ID;
        if let Some(info) = sender_info.filter(|_| canister) {
            self.sender_infos.insert(id, info);
        }
        let request = Message::Request(Request {
            sender,
            receiver,
            method: method.to_string(),
            arg,
            cycles: 0,
            reply_to: ReplyTo::Ingress(id),
            deadline: 0,
        });
        if receiver == crate::cmc::CMC_ID {
            self.delayed.push((self.round + 1, request));
        } else {
            self.enqueue(request);
        }
        Ok(id)
    }

    /// A query call: executed at once on the current state, never persisted.
    pub fn query(
        &mut self,
        receiver: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let c = self.canister(&receiver)?;
        let module = c.executable_module(receiver)?;
        let export = match module.methods.get(method) {
            Some(MethodKind::Query) => format!("canister_query {method}"),
            Some(MethodKind::CompositeQuery) => {
                return self.composite_query((receiver, sender), method, arg)
            }
            // Update methods are not callable as queries on the IC's query path either.
            _ => {
                return Err(RejectResponse::new(
                    ErrorCode::CanisterMethodNotFound,
                    format!(
                        "Error from Canister {receiver}: Canister has no query method '{method}'."
                    ),
                ))
            }
        };
        let mut host = self.host_for(c, ApiType::NonReplicatedQuery, sender);
        host.arg = arg;
        host.data_certificate = self.query_call_certificate(&receiver, &module);
        let c = &self.canisters[&receiver];
        let out = execute(
            &mut self.instances,
            receiver,
            &module,
            &c.heap,
            &Entry::Export(export),
            host,
            self.limits.query_instructions,
            false,
        );
        self.print(&receiver, &out.host.logs);
        if let Some(c) = self.canisters.get_mut(&receiver) {
            c.instructions_total += out.instructions;
        }
        match out.result {
            Err(trap) => Err(trap_reject(&receiver, &trap)),
            Ok(_) => match out.host.response {
                Some(Response::Reply(bytes)) => Ok(bytes),
                Some(Response::Reject(message)) => Err(RejectResponse::canister_reject(message)),
                None => Err(RejectResponse::new(
                    ErrorCode::CanisterDidNotReply,
                    format!("Error from Canister {receiver}: Canister did not produce a response."),
                )),
            },
        }
    }

    /// Forgets the replies of ingress messages completed more than
    /// [`INGRESS_STATUS_RETENTION_NANOS`] ago: their status is `done` from then on (interface
    /// spec, "Request status": the IC keeps a completed request's status for a limited time,
    /// then reports `done` without the reply).
    pub fn expire_ingress(&mut self) {
        while let Some(&(at, id)) = self.ingress_completed.front() {
            if at.saturating_add(INGRESS_STATUS_RETENTION_NANOS) > self.time {
                break;
            }
            self.ingress_completed.pop_front();
            self.ingress.remove(&id);
        }
        if self.ingress.capacity() > 64 && self.ingress.capacity() > 4 * self.ingress.len() {
            self.ingress.shrink_to_fit();
        }
    }

    /// The status of ingress message `id`: `None` while it is processing (or unknown), its
    /// result once completed, and a reject once it is `done` (its reply forgotten).
    pub fn ingress_status(&self, id: u64) -> Option<Result<Vec<u8>, RejectResponse>> {
        match self.ingress.get(&id) {
            Some(status) => status.clone(),
            None if id < self.next_ingress => Some(Err(ingress_done())),
            None => None,
        }
    }

    /// Ticks until ingress message `id` has a result.
    pub fn await_ingress(&mut self, id: u64) -> Result<Vec<u8>, RejectResponse> {
        for _ in 0..=self.limits.max_rounds_per_call {
            if let Some(Some(_)) = self.ingress.get(&id) {
                return self.ingress.remove(&id).flatten().expect("checked");
            }
            if !self.ingress.contains_key(&id) {
                if id < self.next_ingress {
                    return Err(ingress_done());
                }
                return Err(RejectResponse::new(
                    ErrorCode::IngressMessageTimeout,
                    "unknown message id",
                ));
            }
            self.tick();
        }
        Err(RejectResponse::new(
            ErrorCode::IngressMessageTimeout,
            format!(
                "Message did not complete within {} rounds",
                self.limits.max_rounds_per_call
            ),
        ))
    }
}
