//! The manager's state: every structure opened on its own stable memory (see `memory.rs`).
//! Nothing lives only on the heap except in-flight guards and caches. An upgrade may drop them
//! because `pre_upgrade` refuses while the rollout engine awaits calls: the IC can upgrade a
//! running canister, and the replies to its outstanding calls would reach the new module,
//! which cannot run their callbacks (`drain`, then stop the manager, before upgrading it).

use crate::access::Operators;
use crate::admission::{AdmissionState, Allowlist};
use crate::chunk_store::MirrorState;
use crate::governance::Governance;
use crate::memory::{self, Memory, Stored};
use crate::pipeline_log::PipelineLog;
use crate::rate_limit::CreationLimiter;
use crate::registry::Registry;
use crate::stored::{RateLimit, RegistryRecord, ReleaseRef, RolloutCounters, Settings};
use candid::{CandidType, Principal};
use fleet_api::manager::ManagerInitArg;
use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::{StableBTreeMap, StableCell};
use rollout_core::stable::Encoded;
use rollout_core::{RolloutState, SubnetState};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeSet;
use wasm_store::{StoreLimits, StoreMemories, WasmStore};

/// Cycles a new user canister gets unless the init arg says otherwise: enough for a small app
/// to run for months and to pay for its upgrades (interface spec, "Cycles cost").
pub const DEFAULT_USER_CANISTER_CYCLES: u128 = 1_000_000_000_000;

/// Default creation limit: bursts of 10, then one canister every 6 seconds (600 an hour).
pub const DEFAULT_CREATION_LIMIT: RateLimit = RateLimit {
    capacity: 10,
    refill_period_secs: 6,
};

pub struct State {
    pub header: StableCell<u32, Memory>,
    pub settings: StableCell<Stored<Settings>, Memory>,
    pub operators: Operators<Memory>,
    pub creation_bucket: StableCell<CreationLimiter, Memory>,
    pub registry: Registry<Memory>,
    pub mirror: StableCell<Stored<MirrorState>, Memory>,
    pub store: WasmStore<Memory>,
    /// The same bytes as `Stored<RolloutMeta>`, written from the engine's parts without a copy.
    pub rollout_meta: StableCell<Encoded<RolloutMeta>, Memory>,
    pub pipeline_log: PipelineLog<Memory>,
    pub admission: StableCell<Stored<AdmissionState>, Memory>,
    pub allowlist: Allowlist<Memory>,
    pub governance: Governance<Memory>,
    pub subnets: StableCell<Stored<crate::subnets::SubnetsState>, Memory>,
    pub store_module: crate::subnets::StoreModule<Memory>,
    /// The current rollout's subnets, apart from its header (see `memory::ROLLOUT_SUBNETS`).
    rollout_subnets: Memory,
    /// Layout version 2's fleet snapshots: read for a canister whose record holds none yet,
    /// emptied as records take theirs over.
    snapshots_v2: StableBTreeMap<Principal, Stored<FleetSnapshot>, Memory>,
}

/// The rollout engine's small persisted header (one stable cell): the current rollout's
/// driver state, the drain flag, lifetime counters and the pipeline log's bounds. Rewritten
/// after every change; its size depends on the number of waves, not on the fleet.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct RolloutMeta {
    pub next_id: u64,
    /// The latest rollout, finished or not; its records are in the rollout store.
    pub current: Option<RolloutState>,
    pub draining: bool,
    pub counters: RolloutCounters,
    pub log_first: u64,
    pub log_next: u64,
    pub next_ticket: u64,
    /// Timer ticks of the driver so far, which number the pipeline log's entries. `None` in
    /// a header written before ticks were counted; counting then resumes from zero.
    pub timer_ticks: Option<u64>,
}

/// [`RolloutMeta`] as its first shape (tag `0xC1`) stored it, with the engine state's first
/// shape.
#[derive(CandidType, Deserialize)]
pub(crate) struct RolloutMetaV1 {
    next_id: u64,
    current: Option<rollout_core::codec::RolloutStateV1>,
    draining: bool,
    counters: RolloutCounters,
    log_first: u64,
    log_next: u64,
    next_ticket: u64,
    timer_ticks: Option<u64>,
}

impl From<RolloutMetaV1> for RolloutMeta {
    fn from(m: RolloutMetaV1) -> Self {
        let RolloutMetaV1 {
            next_id,
            current,
            draining,
            counters,
            log_first,
            log_next,
            next_ticket,
            timer_ticks,
        } = m;
        RolloutMeta {
            next_id,
            current: current.map(Into::into),
            draining,
            counters,
            log_first,
            log_next,
            next_ticket,
            timer_ticks,
        }
    }
}

/// [`RolloutMeta`] by reference: the same fields in the same order, so it encodes to the same
/// bytes.
#[derive(Serialize)]
struct MetaView<'a> {
    next_id: u64,
    current: Option<&'a RolloutState>,
    draining: bool,
    counters: &'a RolloutCounters,
    log_first: u64,
    log_next: u64,
    next_ticket: u64,
    timer_ticks: Option<u64>,
}

impl<'a> MetaView<'a> {
    fn new(meta: &'a RolloutMeta, current: Option<&'a RolloutState>) -> Self {
        // Destructured, so that a field added to `RolloutMeta` fails to compile here.
        let RolloutMeta {
            next_id,
            current: _,
            draining,
            counters,
            log_first,
            log_next,
            next_ticket,
            timer_ticks,
        } = meta;
        MetaView {
            next_id: *next_id,
            current,
            draining: *draining,
            counters,
            log_first: *log_first,
            log_next: *log_next,
            next_ticket: *next_ticket,
            timer_ticks: *timer_ticks,
        }
    }
}

/// Bytes of a subnet's slot in memory 31: a little-endian `u32` length, then the
/// `Stored<RolloutSubnet>` bytes.
const SUBNET_SLOT_BYTES: u64 = 8 << 10;
const WASM_PAGE_BYTES: u64 = 64 << 10;

/// One subnet's state in the current rollout, stored apart from the header.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutSubnet {
    /// The rollout it belongs to: entries of an earlier rollout are not read.
    pub rollout: u64,
    pub state: SubnetState,
}

impl crate::memory::StoredShape for RolloutSubnet {
    const TAG: u8 = 0xC1;
}

/// The subnets' states as last written, kept on the heap beside the engine, so that a step
/// writes only those it changed.
#[derive(Clone, Debug, Default)]
pub struct SavedSubnets {
    pub rollout: Option<u64>,
    pub states: Vec<SubnetState>,
}

/// The snapshot a rollout took before a canister's last upgrade, and the release it holds.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FleetSnapshot {
    pub id: Vec<u8>,
    pub release: Option<ReleaseRef>,
    pub taken_at_ns: u64,
}

fn default_settings() -> Settings {
    Settings {
        user_canister_cycles: DEFAULT_USER_CANISTER_CYCLES,
        creation_limit: DEFAULT_CREATION_LIMIT,
        default_release: None,
        pipeline_cycles_reserve: None,
    }
}

impl State {
    fn open() -> Self {
        let store_memory =
            |offset: u8| memory::get(MemoryId::new(memory::WASM_STORE_BASE + offset));
        State {
            header: StableCell::init(memory::get(memory::HEADER), 0),
            settings: StableCell::init(memory::get(memory::SETTINGS), Stored(default_settings())),
            operators: Operators::init(memory::get(memory::OPERATORS)),
            creation_bucket: StableCell::init(
                memory::get(memory::CREATION_BUCKET),
                CreationLimiter::default(),
            ),
            registry: Registry::init(
                memory::get(memory::REGISTRY),
                memory::get(memory::BY_OWNER),
                memory::get(memory::BY_STATUS),
                memory::get(memory::FLEET_COUNTS),
            ),
            mirror: StableCell::init(
                memory::get(memory::CHUNK_MIRROR),
                Stored(MirrorState::default()),
            ),
            store: WasmStore::init(
                StoreMemories {
                    releases: store_memory(0),
                    uploads: store_memory(1),
                    chunks: store_memory(2),
                    by_sha256: store_memory(3),
                    interfaces: memory::get(memory::RELEASE_INTERFACES),
                },
                StoreLimits::default(),
            ),
            rollout_meta: StableCell::init(
                memory::get(memory::ROLLOUT_META),
                Encoded::new(&RolloutMeta::default()),
            ),
            pipeline_log: PipelineLog::init(
                memory::get(memory::PIPELINE_LOG),
                crate::rollouts::PIPELINE_LOG_CAPACITY,
            ),
            snapshots_v2: StableBTreeMap::init(memory::get(memory::SNAPSHOTS_V2)),
            admission: StableCell::init(
                memory::get(memory::ADMISSION),
                Stored(AdmissionState::default()),
            ),
            allowlist: Allowlist::init(
                memory::get(memory::ALLOWLIST),
                memory::get(memory::INVITES),
            ),
            governance: Governance::init(
                memory::get(memory::GOVERNANCE),
                memory::get(memory::REQUESTS),
            ),
            subnets: StableCell::init(memory::get(memory::SUBNETS), Stored(Default::default())),
            store_module: crate::subnets::StoreModule::init(memory::get(memory::STORE_MODULE)),
            rollout_subnets: memory::get(memory::ROLLOUT_SUBNETS),
        }
    }

    /// The rollout header with the current rollout's subnets, wherever they are stored.
    pub fn rollout_meta(&self) -> RolloutMeta {
        let mut meta: RolloutMeta = self.rollout_meta.get().decode();
        if let Some(current) = meta.current.as_mut() {
            if current.subnets.is_empty() {
                current.subnets = self.rollout_subnets(current.id);
            }
        }
        meta
    }

    /// The subnets stored apart for rollout `id`, in their order; none if they belong to
    /// another rollout (or its header holds them inline).
    pub fn rollout_subnets(&self, id: u64) -> Vec<SubnetState> {
        (0..=u8::MAX)
            .map_while(|index| self.rollout_subnet(index))
            .take_while(|s| s.rollout == id)
            .map(|s| s.state)
            .collect()
    }

    fn rollout_subnet(&self, index: u8) -> Option<RolloutSubnet> {
        use ic_stable_structures::Memory as _;
        let offset = u64::from(index) * SUBNET_SLOT_BYTES;
        let size = self.rollout_subnets.size() * WASM_PAGE_BYTES;
        if offset + SUBNET_SLOT_BYTES > size {
            return None;
        }
        let mut len = [0; 4];
        self.rollout_subnets.read(offset, &mut len);
        let len = u32::from_le_bytes(len) as usize;
        if len == 0 {
            return None;
        }
        let mut bytes = vec![0; len];
        self.rollout_subnets.read(offset + 4, &mut bytes);
        Some(memory::decode_stored(&bytes))
    }

    /// Writes the subnets of rollout `id` whose state differs from `saved` (what was written
    /// last, updated here): one slot each, rewritten in place, which costs a write of its
    /// bytes where a B-tree entry would load and store whole nodes. A new rollout's subnets
    /// overwrite the last rollout's; a stale slot after them names another rollout and is
    /// not read.
    pub fn save_rollout_subnets(
        &mut self,
        id: u64,
        subnets: &[SubnetState],
        saved: &mut SavedSubnets,
    ) {
        use ic_stable_structures::Memory as _;
        if saved.rollout != Some(id) {
            *saved = SavedSubnets {
                rollout: Some(id),
                states: Vec::new(),
            };
        }
        for (i, state) in subnets.iter().enumerate() {
            if saved.states.get(i) == Some(state) {
                continue;
            }
            let entry = RolloutSubnet {
                rollout: id,
                state: state.clone(),
            };
            let bytes = memory::encode_stored(&entry);
            // A state holds at most 101 waves (a canary and 100 increasing percentages) of
            // four counts: a few KiB at most.
            assert!(
                bytes.len() as u64 + 4 <= SUBNET_SLOT_BYTES,
                "a subnet's state of {} bytes",
                bytes.len()
            );
            let offset = i as u64 * SUBNET_SLOT_BYTES;
            let needed = (offset + SUBNET_SLOT_BYTES).div_ceil(WASM_PAGE_BYTES);
            let size = self.rollout_subnets.size();
            if needed > size {
                assert!(
                    self.rollout_subnets.grow(needed - size) >= 0,
                    "stable memory exhausted"
                );
            }
            self.rollout_subnets
                .write(offset, &(bytes.len() as u32).to_le_bytes());
            self.rollout_subnets.write(offset + 4, &bytes);
            match saved.states.get_mut(i) {
                Some(s) => *s = state.clone(),
                None => saved.states.push(state.clone()),
            }
        }
    }

    /// Stores `meta` with `current` as its current rollout (`meta.current` is ignored), after
    /// every change of the engine: encoded from references, not from a copy of both.
    pub fn save_rollout_meta(&mut self, meta: &RolloutMeta, current: Option<&RolloutState>) {
        self.rollout_meta
            .set(Encoded::encode_as(&MetaView::new(meta, current)));
    }

    pub fn settings(&self) -> Settings {
        self.settings.get().0.clone()
    }

    pub fn set_settings(&mut self, settings: Settings) {
        self.settings.set(Stored(settings));
    }

    pub fn mirror_state(&self) -> MirrorState {
        self.mirror.get().0.clone()
    }

    pub fn set_mirror_state(&mut self, mirror: MirrorState) {
        self.mirror.set(Stored(mirror));
    }

    pub fn subnets_state(&self) -> crate::subnets::SubnetsState {
        self.with_subnets(Clone::clone)
    }

    /// Reads the subnets' state from a copy on the heap, decoded once per module instance and
    /// replaced at each write: the pipeline reads it at every install.
    pub fn with_subnets<T>(&self, f: impl FnOnce(&crate::subnets::SubnetsState) -> T) -> T {
        SUBNETS_CACHE.with(|c| {
            let mut c = c.borrow_mut();
            f(c.get_or_insert_with(|| self.subnets.get().0.clone()))
        })
    }

    pub fn set_subnets_state(&mut self, subnets: crate::subnets::SubnetsState) {
        SUBNETS_CACHE.with(|c| *c.borrow_mut() = Some(subnets.clone()));
        self.subnets.set(Stored(subnets));
    }

    /// The canister's fleet snapshot: the one its record holds, or one layout version 2 kept.
    pub fn fleet_snapshot(&self, record: &RegistryRecord) -> Option<FleetSnapshot> {
        record.snapshot.clone().or_else(|| {
            if self.snapshots_v2.is_empty() {
                return None;
            }
            self.snapshots_v2.get(&record.canister_id).map(|s| s.0)
        })
    }

    /// Sets (or clears) the fleet snapshot in `record`, which the caller writes; a snapshot
    /// layout version 2 kept for it is forgotten, so that it cannot come back.
    pub fn set_fleet_snapshot(
        &mut self,
        record: &mut RegistryRecord,
        snapshot: Option<FleetSnapshot>,
    ) {
        record.snapshot = snapshot;
        self.forget_v2_snapshot(&record.canister_id);
    }

    /// The canister's fleet snapshot was deleted: its record, and layout version 2's map,
    /// forget it.
    pub fn forget_fleet_snapshot(&mut self, canister: &Principal) {
        self.registry.update(canister, |r| r.snapshot = None);
        self.forget_v2_snapshot(canister);
    }

    /// Drops layout version 2's snapshot of `canister`, once its record holds the truth.
    fn forget_v2_snapshot(&mut self, canister: &Principal) {
        if !self.snapshots_v2.is_empty() {
            self.snapshots_v2.remove(canister);
        }
    }

    /// First install: writes the layout version and applies the init arg.
    pub fn initialize(&mut self, arg: ManagerInitArg) {
        self.header.set(memory::LAYOUT_VERSION);
        let mut settings = self.settings();
        if let Some(cycles) = arg.user_canister_cycles {
            settings.user_canister_cycles = cycles;
        }
        if let Some(limit) = arg.creation_limit {
            settings.creation_limit = limit.into();
        }
        self.creation_bucket.set(CreationLimiter::default());
        self.set_settings(settings);
        for admin in arg.admins.unwrap_or_default() {
            self.operators
                .set(admin, &[fleet_api::manager::Role::Admin]);
        }
        if let Some(admission) = arg.admission {
            let mut a = self.admission.get().0.clone();
            a.admission = admission;
            self.admission.set(Stored(a));
        }
        if let Some(policy) = arg.release_policy {
            let mut g = self.governance.get();
            g.policy = policy;
            self.governance.set(g);
        }
    }

    /// Marks the releases the registry's canisters run, and the default release, as used: a
    /// layout that predates the release policy deployed them without one.
    fn mark_deployed_releases_used(&mut self) {
        for sha256 in self.registry.deployed_releases() {
            self.governance.mark_used(&sha256);
        }
        if let Some(default) = self.settings().default_release {
            self.governance.mark_used(&default.sha256);
        }
    }

    /// After an upgrade: brings a layout this module knows to its own version, or refuses
    /// one it does not know (the caller traps, which keeps the previous module and state).
    pub fn upgrade_layout(&mut self) -> Result<(), String> {
        match *self.header.get() {
            memory::LAYOUT_VERSION => Ok(()),
            2 => {
                self.registry
                    .migrate_counts(memory::get(memory::FLEET_COUNTS_V2));
                self.mark_deployed_releases_used();
                self.header.set(memory::LAYOUT_VERSION);
                Ok(())
            }
            3 => {
                self.mark_deployed_releases_used();
                self.header.set(memory::LAYOUT_VERSION);
                Ok(())
            }
            other => Err(format!(
                "stable memory layout version {other}, this module reads versions 2 to {}",
                memory::LAYOUT_VERSION
            )),
        }
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::open());
    /// Owners whose `create_user_canister` call is awaiting the IC.
    static CREATING: RefCell<BTreeSet<Principal>> = const { RefCell::new(BTreeSet::new()) };
    /// Set while the chunk store is being changed.
    static MIRRORING: RefCell<bool> = const { RefCell::new(false) };
    /// Memory 29, decoded (see [`State::with_subnets`]).
    static SUBNETS_CACHE: RefCell<Option<crate::subnets::SubnetsState>> =
        const { RefCell::new(None) };
}

pub fn with<R>(f: impl FnOnce(&State) -> R) -> R {
    STATE.with(|s| f(&s.borrow()))
}

pub fn with_mut<R>(f: impl FnOnce(&mut State) -> R) -> R {
    STATE.with(|s| f(&mut s.borrow_mut()))
}

/// Marks an owner's creation as running until dropped. Dropping also happens when a callback
/// traps: ic-cdk runs the future's destructors in the cleanup callback, so the marker never
/// outlives the call (interface spec, `ic0.call_on_cleanup`).
pub struct CreationGuard(Principal);

/// Most `create_user_canister` calls awaiting the IC at once. The IC holds at most 500
/// outstanding calls from one canister to another (the replica's queue capacity; beyond it
/// `ic0.call_perform` fails), and the manager's calls to the management canister also carry
/// rollouts, mirroring and provisioning's installs: creations take at most 200 of them.
pub const MAX_CONCURRENT_CREATIONS: usize = 200;

/// Why a creation may not begin now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreationRefused {
    /// This owner's creation is already running.
    SameOwner,
    /// [`MAX_CONCURRENT_CREATIONS`] are running.
    Busy { in_progress: u32 },
}

impl CreationGuard {
    pub fn acquire(owner: Principal) -> Result<Self, CreationRefused> {
        // Decide before building the guard: a guard dropped while the set is borrowed would
        // borrow it again.
        CREATING.with(|c| {
            let mut creating = c.borrow_mut();
            if creating.contains(&owner) {
                return Err(CreationRefused::SameOwner);
            }
            if creating.len() >= MAX_CONCURRENT_CREATIONS {
                return Err(CreationRefused::Busy {
                    in_progress: creating.len() as u32,
                });
            }
            creating.insert(owner);
            Ok(())
        })?;
        Ok(CreationGuard(owner))
    }
}

impl Drop for CreationGuard {
    fn drop(&mut self) {
        CREATING.with(|c| c.borrow_mut().remove(&self.0));
    }
}

/// Number of `create_user_canister` calls awaiting the IC.
pub fn creations_in_progress() -> u32 {
    CREATING.with(|c| c.borrow().len() as u32)
}

/// Exclusive right to change the chunk store until dropped.
pub struct MirrorGuard(());

impl MirrorGuard {
    pub fn acquire() -> Option<Self> {
        MIRRORING.with(|m| {
            let mut busy = m.borrow_mut();
            if *busy {
                None
            } else {
                *busy = true;
                Some(MirrorGuard(()))
            }
        })
    }

    pub fn busy() -> bool {
        MIRRORING.with(|m| *m.borrow())
    }
}

impl Drop for MirrorGuard {
    fn drop(&mut self) {
        MIRRORING.with(|m| *m.borrow_mut() = false);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ic_stable_structures::Storable;
    use rollout_core::{FleetCanister, MemStore, Release, Rollout, RolloutPlan, UpgradePolicy};

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 10])
    }

    /// The driver state of a rollout of three canisters, after its first tick.
    pub(crate) fn rollout_in_flight() -> RolloutState {
        let plan = RolloutPlan::new(Release {
            module_hash: vec![2; 32],
            version: "2.0.0".into(),
        });
        let fleet: Vec<FleetCanister> = (1..=3)
            .map(|n| FleetCanister {
                id: p(n),
                policy: UpgradePolicy::Auto,
                module_hash: Some(vec![1; 32]),
                recovery: p(200),
                snapshot: None,
                subnet: None,
            })
            .collect();
        let cohort = rollout_core::plan::select(&plan, &fleet).unwrap();
        let mut rollout = Rollout::start(7, p(201), &plan, cohort, MemStore::new(), 5).unwrap();
        rollout.tick(10);
        rollout.state().clone()
    }

    /// A snapshot kept by layout version 2 is found for a record that holds none, and is
    /// forgotten once the record takes one (or is cleared), so that it cannot come back.
    #[test]
    fn fleet_snapshots_of_the_earlier_layout_are_read_until_replaced() {
        use crate::stored::{CanisterStatus, UpgradePolicy};
        let snapshot = |n: u8| FleetSnapshot {
            id: vec![n; 4],
            release: None,
            taken_at_ns: u64::from(n),
        };
        with_mut(|s| {
            let record = RegistryRecord {
                canister_id: p(1),
                owner: p(2),
                recovery_principal: p(3),
                current_release: None,
                policy: UpgradePolicy::Auto,
                status: CanisterStatus::Active,
                last_error: None,
                history: vec![],
                created_at_ns: 0,
                updated_at_ns: 0,
                snapshot: None,
                subnet: None,
            };
            assert_eq!(s.fleet_snapshot(&record), None);
            s.snapshots_v2.insert(p(1), Stored(snapshot(1)));
            assert_eq!(s.fleet_snapshot(&record), Some(snapshot(1)));
            let mut newer = record.clone();
            s.set_fleet_snapshot(&mut newer, Some(snapshot(2)));
            assert_eq!(s.fleet_snapshot(&newer), Some(snapshot(2)));
            assert!(s.snapshots_v2.is_empty());
            s.snapshots_v2.insert(p(1), Stored(snapshot(1)));
            let mut cleared = newer;
            s.set_fleet_snapshot(&mut cleared, None);
            assert_eq!(s.fleet_snapshot(&cleared), None);
        });
    }

    /// A layout newer than this module's is refused, so that a downgrade traps in
    /// `post_upgrade` (and the IC keeps the newer module) instead of dropping what the older
    /// module does not know, such as the release policy.
    #[test]
    fn a_newer_layout_is_refused_and_a_layout_3_gains_the_release_policy_defaults() {
        with_mut(|s| {
            s.header.set(memory::LAYOUT_VERSION + 1);
            assert!(s.upgrade_layout().is_err());
            s.header.set(3);
            assert_eq!(s.upgrade_layout(), Ok(()));
            assert_eq!(*s.header.get(), memory::LAYOUT_VERSION);
            assert_eq!(s.governance.policy(), Default::default());
        });
    }

    #[test]
    fn the_header_is_stored_from_references_as_the_header_itself() {
        let mut meta = RolloutMeta {
            next_id: 8,
            current: None,
            draining: true,
            counters: RolloutCounters {
                calls_issued: 3,
                cycles_topped_up: u128::MAX,
                deferred: Some(2),
                ..Default::default()
            },
            log_first: 4,
            log_next: 9,
            next_ticket: 11,
            timer_ticks: Some(12),
        };
        let state = &rollout_in_flight();
        let from_view = Encoded::<RolloutMeta>::encode_as(&MetaView::new(&meta, Some(state)));
        meta.current = Some(state.clone());
        assert_eq!(from_view.to_bytes(), Stored(meta.clone()).to_bytes());
        assert_eq!(from_view.decode(), meta);
        let without = Encoded::<RolloutMeta>::encode_as(&MetaView::new(&meta, None));
        meta.current = None;
        assert_eq!(without.to_bytes(), Stored(meta).to_bytes());
    }
}
