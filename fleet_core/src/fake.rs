//! A fake IC for the core's unit tests: one [`Runtime`] that answers the calls the manager makes
//! the way the management canister and a user canister would. Arguments are decoded with the
//! candid crate into the management canister's published types, so the manager's own encoders
//! ([`crate::wire`]) are checked on every call; replies are candid-encoded records holding the
//! fields the manager reads.
//!
//! It also checks the manager's protocol: an upgrade, a snapshot and its load only touch a
//! stopped canister, and a health check only a running one; a breach panics the test.

use crate::runtime::{CallError, CallResult, Runtime, NOT_SENT};
use candid::{CandidType, Decode, Encode, Nat, Principal};
use fleet_api::store_canister::{ForgetReleaseReply, RecordReleaseReply, StoreInit, StoredRelease};
use ic_management_canister_types as mc;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::task::{Context, Poll, Waker};

/// Fee the fake charges for `create_canister`.
pub const CREATE_FEE: u128 = 500_000_000_000;
/// The manager's subnet in the fake.
pub const OWN_SUBNET: Principal = Principal::from_slice(&[0xAA; 29]);
/// Cycles of a canister the fake holds.
pub const CANISTER_CYCLES: u128 = 10_000_000_000_000;

/// The fake's futures never wait, so one poll completes them.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the fake IC's futures are always ready"),
    }
}

/// A canister as the fake IC holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Canister {
    pub controllers: Vec<Principal>,
    pub module_hash: Option<Vec<u8>>,
    /// The argument of its last install or upgrade.
    pub arg: Vec<u8>,
    pub running: bool,
    pub cycles: u128,
    /// Its snapshot: id, and the module it holds.
    pub snapshot: Option<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Every chunk store the fake holds: (store canister, hash) → chunk.
type ChunkStores = BTreeMap<(Principal, Vec<u8>), Vec<u8>>;

/// A reject the fake returns instead of answering.
struct Reject {
    method: &'static str,
    canister: Option<Principal>,
    code: u32,
    message: String,
    /// How many more times; `None` for always.
    times: Option<u32>,
}

/// The fake IC, seen from the manager `self_id`.
pub struct FakeIc {
    self_id: Principal,
    now: Cell<u64>,
    balance: Cell<u128>,
    next_id: Cell<u8>,
    canisters: RefCell<BTreeMap<Principal, Canister>>,
    /// Chunk stores: (store canister, hash) → chunk.
    chunks: RefCell<ChunkStores>,
    /// The subnet of each canister not on [`OWN_SUBNET`].
    subnet_of: RefCell<BTreeMap<Principal, Principal>>,
    /// The app version each module reports in `fleet_health`.
    versions: RefCell<BTreeMap<Vec<u8>, String>>,
    /// Modules whose `fleet_health` reports unhealthy.
    broken: RefCell<BTreeSet<Vec<u8>>>,
    rejects: RefCell<Vec<Reject>>,
    snapshots_taken: Cell<u8>,
    /// Calls answered (or rejected): callee or target canister, method.
    calls: RefCell<Vec<(Principal, &'static str)>>,
    /// Cycles the current message attached and not yet accepted; and those accepted.
    attached: Cell<u128>,
    accepted: Cell<u128>,
    /// What each store canister's code recorded (`record_release`), by version.
    store_records: RefCell<BTreeMap<Principal, BTreeMap<String, StoredRelease>>>,
}

impl FakeIc {
    /// A fake IC at `now` whose manager `self_id` holds `balance` cycles.
    pub fn new(self_id: Principal, now: u64, balance: u128) -> Self {
        FakeIc {
            self_id,
            now: Cell::new(now),
            balance: Cell::new(balance),
            next_id: Cell::new(0),
            canisters: RefCell::default(),
            chunks: RefCell::default(),
            subnet_of: RefCell::default(),
            versions: RefCell::default(),
            broken: RefCell::default(),
            rejects: RefCell::default(),
            snapshots_taken: Cell::new(0),
            calls: RefCell::default(),
            attached: Cell::new(0),
            accepted: Cell::new(0),
            store_records: RefCell::default(),
        }
    }

    /// The next message arrives with `cycles` attached.
    pub fn attach(&self, cycles: u128) {
        self.attached.set(cycles);
        self.accepted.set(0);
    }

    /// Cycles the manager accepted from the current message.
    pub fn accepted(&self) -> u128 {
        self.accepted.get()
    }

    pub fn advance(&self, ns: u64) {
        self.now.set(self.now.get() + ns);
    }

    pub fn set_balance(&self, cycles: u128) {
        self.balance.set(cycles);
    }

    /// A running canister `id` with these controllers and module.
    pub fn add_canister(
        &self,
        id: Principal,
        controllers: Vec<Principal>,
        module: Option<Vec<u8>>,
    ) {
        self.canisters.borrow_mut().insert(
            id,
            Canister {
                controllers,
                module_hash: module,
                arg: Vec::new(),
                running: true,
                cycles: CANISTER_CYCLES,
                snapshot: None,
            },
        );
    }

    pub fn canister(&self, id: Principal) -> Option<Canister> {
        self.canisters.borrow().get(&id).cloned()
    }

    /// Puts `chunk` into the manager's chunk store, as if uploaded earlier.
    pub fn put_chunk(&self, chunk: Vec<u8>) {
        let hash = Sha256::digest(&chunk).to_vec();
        self.chunks.borrow_mut().insert((self.self_id, hash), chunk);
    }

    /// Chunks in the manager's own chunk store.
    pub fn chunk_count(&self) -> usize {
        self.chunks_of(self.self_id)
    }

    /// Chunks in `store`'s chunk store.
    pub fn chunks_of(&self, store: Principal) -> usize {
        self.chunks
            .borrow()
            .keys()
            .filter(|(s, _)| *s == store)
            .count()
    }

    /// Puts `canister` on `subnet`.
    pub fn set_subnet(&self, canister: Principal, subnet: Principal) {
        self.subnet_of.borrow_mut().insert(canister, subnet);
    }

    /// The subnet of `canister`.
    pub fn subnet(&self, canister: Principal) -> Principal {
        self.subnet_of
            .borrow()
            .get(&canister)
            .copied()
            .unwrap_or(OWN_SUBNET)
    }

    /// The cycles minting canister's `create_canister` on the subnet the argument selects
    /// (its own candid types; any subnet id but [`OWN_SUBNET`] is another subnet).
    fn cmc(&self, args: &[u8], cycles: u128) -> CallResult<Vec<u8>> {
        self.calls
            .borrow_mut()
            .push((crate::subnets::CMC, "create_canister"));
        if let Some(e) = self.injected("create_canister", crate::subnets::CMC) {
            return Err(e);
        }
        let (subnet, controllers) = crate::subnets::decode_cmc_create_args(args)
            .map_err(|e| reject(5, &format!("argument did not decode: {e}")))?;
        if cycles < CREATE_FEE {
            return Err(reject(4, "create_canister needs the creation fee"));
        }
        self.next_id.set(self.next_id.get() + 1);
        let id = Principal::from_slice(&[self.next_id.get(), 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        self.add_canister(id, controllers, None);
        self.canisters
            .borrow_mut()
            .get_mut(&id)
            .expect("added")
            .cycles = cycles - CREATE_FEE;
        if subnet != OWN_SUBNET {
            self.subnet_of.borrow_mut().insert(id, subnet);
        }
        Ok(crate::subnets::encode_cmc_created(id))
    }

    /// The releases store canister `store` recorded, in the order of their versions' text.
    pub fn store_releases(&self, store: Principal) -> Vec<StoredRelease> {
        self.store_records
            .borrow()
            .get(&store)
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A store canister's methods, as its code answers them: only a store whose module was
    /// installed with the manager as `StoreInit::manager` answers, and only the manager.
    fn store_canister(
        &self,
        id: Principal,
        method: &'static str,
        args: &[u8],
    ) -> CallResult<Vec<u8>> {
        self.calls.borrow_mut().push((id, method));
        if let Some(e) = self.injected(method, id) {
            return Err(e);
        }
        let c = self
            .canister(id)
            .ok_or_else(|| reject(3, "canister not found"))?;
        if c.module_hash.is_none() {
            return Err(reject(5, &format!("{id} has no module installed")));
        }
        let init: StoreInit = decode(&c.arg)?;
        assert_eq!(
            init.manager, self.self_id,
            "the store's manager is the manager"
        );
        let mut records = self.store_records.borrow_mut();
        let records = records.entry(id).or_default();
        match method {
            "record_release" => {
                let r: StoredRelease = decode(args)?;
                assert_eq!(r.module_hash.len(), 32);
                for h in &r.chunk_hashes {
                    assert!(
                        self.chunks.borrow().contains_key(&(id, h.to_vec())),
                        "a release is recorded once all its chunks are stored"
                    );
                }
                records.insert(r.version.clone(), r);
                reply(&RecordReleaseReply::Ok(()))
            }
            "forget_release" => {
                let version: String = decode(args)?;
                reply(&ForgetReleaseReply::Ok(records.remove(&version).is_some()))
            }
            other => Err(reject(5, &format!("the store has no method {other}"))),
        }
    }

    /// `module` reports `version` in `fleet_health`.
    pub fn set_version(&self, module: &[u8], version: &str) {
        self.versions
            .borrow_mut()
            .insert(module.to_vec(), version.to_string());
    }

    /// `module` reports itself unhealthy in `fleet_health`.
    pub fn break_module(&self, module: &[u8]) {
        self.broken.borrow_mut().insert(module.to_vec());
    }

    /// Rejects `method` (of `canister`, or of any) with `code`, `times` times or always.
    pub fn reject(
        &self,
        method: &'static str,
        canister: Option<Principal>,
        code: u32,
        message: &str,
        times: Option<u32>,
    ) {
        self.rejects.borrow_mut().push(Reject {
            method,
            canister,
            code,
            message: message.to_string(),
            times,
        });
    }

    /// How many calls went to (or were about) `canister`.
    pub fn calls_to(&self, canister: Principal) -> usize {
        self.calls
            .borrow()
            .iter()
            .filter(|(c, _)| *c == canister)
            .count()
    }

    /// How many calls of `method` were made.
    pub fn calls_of(&self, method: &str) -> usize {
        self.calls
            .borrow()
            .iter()
            .filter(|(_, m)| *m == method)
            .count()
    }

    fn injected(&self, method: &'static str, canister: Principal) -> Option<CallError> {
        let mut rejects = self.rejects.borrow_mut();
        let i = rejects.iter().position(|r| {
            r.method == method && r.canister.is_none_or(|c| c == canister) && r.times != Some(0)
        })?;
        let r = &mut rejects[i];
        if let Some(n) = r.times.as_mut() {
            *n -= 1;
        }
        Some(reject(r.code, &r.message))
    }

    /// The canister `id`, controlled by the manager.
    fn controlled(&self, id: Principal) -> CallResult<std::cell::RefMut<'_, Canister>> {
        let canisters = self.canisters.borrow_mut();
        match canisters.get(&id) {
            None => Err(reject(3, &format!("canister {id} not found"))),
            Some(c) if !c.controllers.contains(&self.self_id) => {
                Err(reject(5, &format!("only controllers of {id} may call")))
            }
            Some(_) => Ok(std::cell::RefMut::map(canisters, |c| {
                c.get_mut(&id).expect("checked above")
            })),
        }
    }

    fn management(&self, method: &'static str, args: &[u8], cycles: u128) -> CallResult<Vec<u8>> {
        let target = |id: Principal| -> CallResult<Principal> {
            self.calls.borrow_mut().push((id, method));
            match self.injected(method, id) {
                Some(e) => Err(e),
                None => Ok(id),
            }
        };
        match method {
            "create_canister" => {
                let a: mc::CreateCanisterArgs = decode(args)?;
                let fee = CREATE_FEE;
                if cycles < fee {
                    return Err(reject(4, "create_canister needs the creation fee"));
                }
                self.next_id.set(self.next_id.get() + 1);
                let id = Principal::from_slice(&[self.next_id.get(), 0, 0, 0, 0, 0, 0, 0, 1, 1]);
                target(id)?;
                let controllers = a.settings.and_then(|s| s.controllers).unwrap_or_default();
                self.add_canister(id, controllers, None);
                self.canisters
                    .borrow_mut()
                    .get_mut(&id)
                    .expect("added")
                    .cycles = cycles - fee;
                reply(&IdReply { canister_id: id })
            }
            "install_chunked_code" => {
                let a: mc::InstallChunkedCodeArgs = decode(args)?;
                let id = target(a.target_canister)?;
                let store = a.store_canister.unwrap_or(id);
                if self.subnet(store) != self.subnet(id) {
                    return Err(reject(3, "the store canister is on another subnet"));
                }
                let module = {
                    let chunks = self.chunks.borrow();
                    let mut module = Vec::new();
                    for h in &a.chunk_hashes_list {
                        match chunks.get(&(store, h.hash.clone())) {
                            Some(c) => module.extend_from_slice(c),
                            None => return Err(reject(5, "a chunk is not in the store")),
                        }
                    }
                    module
                };
                if Sha256::digest(&module).as_slice() != a.wasm_module_hash.as_slice() {
                    return Err(reject(5, "the chunks do not hash to wasm_module_hash"));
                }
                let mut c = self.controlled(id)?;
                match a.mode {
                    mc::CanisterInstallMode::Install if c.module_hash.is_some() => {
                        return Err(reject(5, "install on a canister with a module"));
                    }
                    mc::CanisterInstallMode::Upgrade(_) => {
                        assert!(!c.running, "upgrades install on a stopped canister");
                        if c.module_hash.is_none() {
                            return Err(reject(5, "upgrade of an empty canister"));
                        }
                    }
                    _ => {}
                }
                c.module_hash = Some(a.wasm_module_hash);
                c.arg = a.arg;
                reply(&())
            }
            "install_code" => {
                let a: mc::InstallCodeArgs = decode(args)?;
                let id = target(a.canister_id)?;
                let mut c = self.controlled(id)?;
                match a.mode {
                    mc::CanisterInstallMode::Install if c.module_hash.is_some() => {
                        return Err(reject(5, "install on a canister with a module"));
                    }
                    mc::CanisterInstallMode::Install => {}
                    _ => return Err(reject(5, "the fake IC installs whole modules only")),
                }
                c.module_hash = Some(Sha256::digest(&a.wasm_module).to_vec());
                c.arg = a.arg;
                reply(&())
            }
            "upload_chunk" => {
                let a: mc::UploadChunkArgs = decode(args)?;
                let store = target(a.canister_id)?;
                if store != self.self_id {
                    drop(self.controlled(store)?);
                }
                let hash = Sha256::digest(&a.chunk).to_vec();
                self.chunks
                    .borrow_mut()
                    .insert((store, hash.clone()), a.chunk);
                reply(&HashReply { hash })
            }
            "clear_chunk_store" => {
                let a: mc::CanisterIdRecord = decode(args)?;
                let store = target(a.canister_id)?;
                self.chunks.borrow_mut().retain(|(s, _), _| *s != store);
                reply(&())
            }
            "canister_status" => {
                let a: mc::CanisterIdRecord = decode(args)?;
                let c = self.controlled(target(a.canister_id)?)?;
                reply(&StatusReply {
                    settings: SettingsReply {
                        controllers: c.controllers.clone(),
                    },
                    module_hash: c.module_hash.clone(),
                    cycles: Nat::from(c.cycles),
                })
            }
            "deposit_cycles" => {
                let a: mc::CanisterIdRecord = decode(args)?;
                let id = target(a.canister_id)?;
                let mut canisters = self.canisters.borrow_mut();
                let c = canisters
                    .get_mut(&id)
                    .ok_or_else(|| reject(3, "canister not found"))?;
                c.cycles += cycles;
                reply(&())
            }
            "stop_canister" | "start_canister" => {
                let a: mc::CanisterIdRecord = decode(args)?;
                let mut c = self.controlled(target(a.canister_id)?)?;
                c.running = method == "start_canister";
                reply(&())
            }
            "take_canister_snapshot" => {
                let a: mc::TakeCanisterSnapshotArgs = decode(args)?;
                let mut c = self.controlled(target(a.canister_id)?)?;
                assert!(!c.running, "snapshots are taken of a stopped canister");
                let held = c.snapshot.as_ref().map(|s| s.0.clone());
                match (&a.replace_snapshot, held) {
                    (Some(r), Some(h)) if *r != h => {
                        return Err(reject(5, "no such snapshot to replace"));
                    }
                    (Some(_), None) => return Err(reject(5, "no such snapshot to replace")),
                    (None, Some(_)) => return Err(reject(5, "the snapshot limit is reached")),
                    _ => {}
                }
                self.snapshots_taken.set(self.snapshots_taken.get() + 1);
                let id = vec![self.snapshots_taken.get(); 4];
                c.snapshot = Some((id.clone(), c.module_hash.clone()));
                reply(&mc::Snapshot {
                    id,
                    taken_at_timestamp: self.now.get(),
                    total_size: 0,
                })
            }
            "load_canister_snapshot" => {
                let a: mc::LoadCanisterSnapshotArgs = decode(args)?;
                let mut c = self.controlled(target(a.canister_id)?)?;
                assert!(!c.running, "snapshots are loaded into a stopped canister");
                let Some((id, module)) = c.snapshot.clone() else {
                    return Err(reject(5, "no such snapshot"));
                };
                if id != a.snapshot_id {
                    return Err(reject(5, "no such snapshot"));
                }
                c.module_hash = module;
                reply(&())
            }
            "delete_canister_snapshot" => {
                let a: mc::DeleteCanisterSnapshotArgs = decode(args)?;
                let mut c = self.controlled(target(a.canister_id)?)?;
                if c.snapshot.as_ref().map(|s| &s.0) != Some(&a.snapshot_id) {
                    return Err(reject(5, "no such snapshot"));
                }
                c.snapshot = None;
                reply(&())
            }
            other => Err(reject(
                5,
                &format!("{other} is not modelled by the fake IC"),
            )),
        }
    }

    /// A user canister's method: `fleet_health` is the only one the manager calls.
    fn user_canister(&self, id: Principal, method: &'static str) -> CallResult<Vec<u8>> {
        self.calls.borrow_mut().push((id, method));
        if let Some(e) = self.injected(method, id) {
            return Err(e);
        }
        let canisters = self.canisters.borrow();
        let c = canisters
            .get(&id)
            .ok_or_else(|| reject(3, "canister not found"))?;
        if method != "fleet_health" {
            return Err(reject(
                5,
                &format!("{method} is not modelled by the fake IC"),
            ));
        }
        assert!(c.running, "fleet_health is asked of a running canister");
        let hash = c
            .module_hash
            .clone()
            .ok_or_else(|| reject(5, "no module"))?;
        let version = self
            .versions
            .borrow()
            .get(&hash)
            .cloned()
            .unwrap_or_else(|| panic!("no version set for module {}", hex::encode(&hash)));
        let ok = !self.broken.borrow().contains(&hash);
        reply(&fleet_api::user::FleetHealth {
            ok,
            version,
            schema_version: 1,
            records: 0,
            checksum: Vec::new(),
            message: (!ok).then(|| "invariant broken".to_string()),
        })
    }
}

impl Runtime for FakeIc {
    fn now_ns(&self) -> u64 {
        self.now.get()
    }

    fn self_id(&self) -> Principal {
        self.self_id
    }

    fn subnet_self(&self) -> Principal {
        OWN_SUBNET
    }

    fn canister_version(&self) -> u64 {
        1
    }

    fn cycles_balance(&self) -> u128 {
        self.balance.get()
    }

    fn liquid_cycles_balance(&self) -> u128 {
        self.balance.get()
    }

    fn create_canister_fee(&self) -> u128 {
        CREATE_FEE
    }

    fn log(&self, line: &str) {
        eprintln!("{line}");
    }

    fn is_controller(&self, _principal: &Principal) -> bool {
        false
    }

    fn msg_cycles_available(&self) -> u128 {
        self.attached.get()
    }

    fn msg_cycles_accept(&self, max: u128) -> u128 {
        let taken = max.min(self.attached.get());
        self.attached.set(self.attached.get() - taken);
        self.accepted.set(self.accepted.get() + taken);
        self.balance.set(self.balance.get() + taken);
        taken
    }

    async fn call(
        &self,
        callee: Principal,
        method: &'static str,
        args: &[u8],
        cycles: u128,
        _timeout_secs: Option<u32>,
    ) -> CallResult<Vec<u8>> {
        // `ic0.call_perform` fails when the caller cannot pay what it attaches.
        let Some(left) = self.balance.get().checked_sub(cycles) else {
            return Err(CallError {
                reject_code: NOT_SENT,
                message: "out of cycles".into(),
            });
        };
        self.balance.set(left);
        let result = if callee == Principal::management_canister() {
            self.management(method, args, cycles)
        } else if callee == crate::subnets::CMC {
            self.cmc(args, cycles)
        } else if matches!(method, "record_release" | "forget_release") {
            self.store_canister(callee, method, args)
        } else {
            self.user_canister(callee, method)
        };
        if result.is_err() {
            // The IC refunds the cycles of a rejected call.
            self.balance.set(self.balance.get() + cycles);
        }
        result
    }
}

#[derive(CandidType)]
struct IdReply {
    canister_id: Principal,
}

#[derive(CandidType)]
struct HashReply {
    hash: Vec<u8>,
}

#[derive(CandidType)]
struct SettingsReply {
    controllers: Vec<Principal>,
}

#[derive(CandidType)]
struct StatusReply {
    settings: SettingsReply,
    module_hash: Option<Vec<u8>>,
    cycles: Nat,
}

fn reject(code: u32, message: &str) -> CallError {
    CallError {
        reject_code: code,
        message: message.to_string(),
    }
}

fn decode<T: CandidType + DeserializeOwned>(args: &[u8]) -> CallResult<T> {
    Decode!(args, T).map_err(|e| reject(5, &format!("argument did not decode: {e}")))
}

fn reply<T: CandidType>(value: &T) -> CallResult<Vec<u8>> {
    Ok(Encode!(value).expect("encoding a fake reply"))
}
