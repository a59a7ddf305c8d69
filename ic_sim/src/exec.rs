//! Message execution: run one entry point of a canister's module over its heap with an
//! instruction budget, and return the new heap as a page diff. A trap returns no heap, so the
//! canister keeps its old state (interface spec, "Abstract behavior": executions are atomic).
//!
//! Instantiating a module and overlaying a canister's pages costs more than running a small
//! message, so the instances of frequently used canisters are kept live ([`Instances`], bounded,
//! with frequency-based admission), and instances no canister holds are reused by later misses.
//! A live instance is used only while its memory and globals are exactly the canister's
//! committed heap: every committed heap has a process-unique id, and the instance records the id
//! it holds, so install, upgrade, reinstall, snapshot load and uninstall (which all replace the
//! heap) invalidate it without further bookkeeping. After a successful execution that does not
//! persist (queries, pre-upgrade) the changed pages and globals are written back; after a trap
//! the instance is dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use candid::Principal;
use wasmi::{Extern, Global, Instance, Memory, Ref, Store, Val};

use crate::errors::ErrorCode;
use crate::memory::{intern, Page, PageMap, StableMemory, ZERO_PAGE};
use crate::module::{cache, CanisterModule, MEMORY_EXPORT, PAGE_SIZE, TABLE_EXPORT};
use crate::system_api::{Host, HostTrap};

/// A canister's wasm heap: pages that differ from the module's initial image, the heap size,
/// and the values of the mutable globals. `id` names this content: a heap produced by an
/// execution or by [`Heap::initial`] gets a new id, clones keep it (0: no module).
#[derive(Clone, Debug, Default)]
pub(crate) struct Heap {
    pub pages: BTreeMap<u64, Arc<Page>>,
    pub size_bytes: usize,
    pub globals: Vec<Val>,
    pub id: u64,
}

fn next_heap_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Heap {
    /// The heap of a freshly instantiated module.
    pub fn initial(module: &CanisterModule) -> Self {
        Heap {
            pages: BTreeMap::new(),
            size_bytes: module.initial_memory.len(),
            globals: module.initial_globals.clone(),
            id: next_heap_id(),
        }
    }

    /// Bytes held for this heap beyond the shared module image.
    pub fn private_bytes(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }

    /// A heap of `size_bytes` whose content is `content` (pages absent from it are zeros), for
    /// `module`: only pages that differ from the module's initial image are kept. Gets a new
    /// id, so no live instance is taken for it.
    pub fn from_content(
        module: &CanisterModule,
        content: &BTreeMap<u64, Arc<Page>>,
        size_bytes: usize,
        globals: Vec<Val>,
    ) -> Self {
        let initial = &module.initial_memory[..];
        let pages_total = size_bytes / PAGE_SIZE;
        let initial_pages = initial.len().div_ceil(PAGE_SIZE).min(pages_total);
        let mut pages = BTreeMap::new();
        let candidates = (0..initial_pages as u64).chain(content.keys().copied());
        for index in candidates {
            if index as usize >= pages_total || pages.contains_key(&index) {
                continue;
            }
            let page = content.get(&index).map_or(&ZERO_PAGE, |p| &**p);
            if page[..] != *initial_page(initial, index as usize) {
                pages.insert(index, intern(page));
            }
        }
        Heap {
            pages,
            size_bytes,
            globals,
            id: next_heap_id(),
        }
    }

    /// `len` bytes of the committed heap from `offset` (the caller checks the bounds).
    pub fn read(&self, initial: &[u8], offset: usize, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let start = pos % PAGE_SIZE;
            let take = (PAGE_SIZE - start).min(end - pos);
            out.extend_from_slice(&self.page(initial, pos / PAGE_SIZE)[start..start + take]);
            pos += take;
        }
        out
    }

    /// The committed content of page `index`.
    fn page<'a>(&'a self, initial: &'a [u8], index: usize) -> &'a [u8] {
        match self.pages.get(&(index as u64)) {
            Some(p) => &p[..],
            None => initial_page(initial, index),
        }
    }
}

fn initial_page(initial: &[u8], index: usize) -> &[u8] {
    let start = index * PAGE_SIZE;
    if start + PAGE_SIZE <= initial.len() {
        &initial[start..start + PAGE_SIZE]
    } else {
        &ZERO_PAGE[..]
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub(crate) enum Entry {
    /// An exported function, e.g. `canister_update foo`.
    Export(String),
    /// A callback: table index and environment (interface spec, "Callbacks").
    Table { index: u32, env: u32 },
}

/// The outcome of one execution.
pub(crate) struct Outcome {
    pub host: Host,
    pub result: Result<Option<Heap>, HostTrap>,
    pub instructions: u64,
}

impl Outcome {
    /// Moves a successful execution's heap (if it kept one) and stable memory writes into
    /// `heap` and `stable`; returns the stable memory size in wasm pages.
    pub fn commit_memory(&mut self, heap: &mut Heap, stable: &mut Arc<PageMap>) -> u64 {
        if let Ok(Some(new)) = &mut self.result {
            *heap = std::mem::take(new);
        }
        let writes = std::mem::replace(
            &mut self.host.stable,
            StableMemory::new(Arc::new(PageMap::default()), 0),
        );
        writes.commit(stable)
    }
}

/// Default bound of [`Instances`]: live instances kept.
pub(crate) const DEFAULT_LIVE_INSTANCES: usize = 128;
/// Default bound of [`Instances`]: bytes of linear memory held by live instances.
pub(crate) const DEFAULT_LIVE_BYTES: usize = 512 << 20;
/// Spare instances kept for reuse (see [`Instances::instantiate`]).
const MAX_SPARES: usize = 4;

/// A module instance whose memory and globals equal the committed heap `heap_id`.
struct Live {
    store: Store<Host>,
    instance: Instance,
    memory: Option<Memory>,
    globals: Vec<Global>,
    module: Arc<CanisterModule>,
    heap_id: u64,
    last_used: u64,
}

impl Live {
    /// Instantiates `module` and overlays `heap`.
    fn new(module: &Arc<CanisterModule>, heap: &Heap) -> Result<Live, String> {
        let cache = cache();
        let mut store = Store::new(&cache.engine, Host::idle());
        let _ = store.set_fuel(u64::MAX);
        let instance = cache
            .linker
            .instantiate_and_start(&mut store, &module.module)
            .map_err(|e| format!("instantiation failed: {e}"))?;
        let memory = instance
            .get_memory(&store, "memory")
            .or_else(|| instance.get_memory(&store, MEMORY_EXPORT));
        if let Some(memory) = memory {
            let current = memory.data_size(&store);
            if heap.size_bytes > current {
                let extra = ((heap.size_bytes - current) as u64).div_ceil(65536);
                memory
                    .grow(&mut store, extra)
                    .map_err(|e| format!("restoring heap size: {e}"))?;
            }
            let data = memory.data_mut(&mut store);
            for (index, page) in &heap.pages {
                let start = *index as usize * PAGE_SIZE;
                data[start..start + PAGE_SIZE].copy_from_slice(&page[..]);
            }
        }
        let mut globals = Vec::with_capacity(module.global_names.len());
        for name in &module.global_names {
            match instance.get_export(&store, name) {
                Some(Extern::Global(g)) => globals.push(g),
                _ => return Err(format!("global export {name} missing")),
            }
        }
        for (g, value) in globals.iter().zip(&heap.globals) {
            g.set(&mut store, value.clone())
                .map_err(|e| format!("restoring global: {e}"))?;
        }
        Ok(Live {
            store,
            instance,
            memory,
            globals,
            module: module.clone(),
            heap_id: heap.id,
            last_used: 0,
        })
    }

    fn memory_bytes(&self) -> usize {
        self.memory.map_or(0, |m| m.data_size(&self.store))
    }

    /// Makes this instance of `self.module` hold `heap` as a fresh instantiation overlaid with
    /// it would: every byte of memory and every mutable global is overwritten. Only for modules
    /// whose instance state is nothing else ([`CanisterModule::reusable`]). Returns false when
    /// the memory is already larger than the heap (wasm memories do not shrink).
    fn reset(&mut self, heap: &Heap) -> bool {
        if !self.module.reusable || self.memory_bytes() > heap.size_bytes {
            return false;
        }
        if let Some(memory) = self.memory {
            let current = memory.data_size(&self.store);
            if heap.size_bytes > current {
                let extra = ((heap.size_bytes - current) as u64).div_ceil(65536);
                if memory.grow(&mut self.store, extra).is_err() {
                    return false;
                }
            }
            let initial = &self.module.initial_memory[..];
            let data = memory.data_mut(&mut self.store);
            let image = initial.len().min(data.len());
            data[..image].copy_from_slice(&initial[..image]);
            data[image..].fill(0);
            for (index, page) in &heap.pages {
                let start = *index as usize * PAGE_SIZE;
                data[start..start + PAGE_SIZE].copy_from_slice(&page[..]);
            }
        }
        for (g, value) in self.globals.iter().zip(&heap.globals) {
            if g.set(&mut self.store, value.clone()).is_err() {
                return false;
            }
        }
        self.heap_id = heap.id;
        true
    }

    /// Indices of the pages of the live memory that differ from the committed `heap`.
    fn changed_pages(&self, initial: &[u8], heap: &Heap) -> Vec<usize> {
        let Some(memory) = self.memory else {
            return Vec::new();
        };
        memory
            .data(&self.store)
            .chunks_exact(PAGE_SIZE)
            .enumerate()
            .filter(|(i, current)| *current != heap.page(initial, *i))
            .map(|(i, _)| i)
            .collect()
    }

    /// The heap the live instance now holds: `heap` with the `changed` pages replaced.
    fn committed(&self, initial: &[u8], heap: &Heap, changed: &[usize]) -> Heap {
        let mut new_heap = Heap {
            pages: heap.pages.clone(),
            size_bytes: self.memory_bytes(),
            globals: self.globals.iter().map(|g| g.get(&self.store)).collect(),
            id: next_heap_id(),
        };
        if let Some(memory) = self.memory {
            let data = memory.data(&self.store);
            for &i in changed {
                let current = &data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE];
                if current == initial_page(initial, i) {
                    new_heap.pages.remove(&(i as u64));
                } else {
                    new_heap.pages.insert(i as u64, intern(current));
                }
            }
        }
        new_heap
    }

    /// Writes the committed `heap` back over the `changed` pages and the globals. Returns false
    /// when that is impossible (the memory grew: wasm memories do not shrink).
    fn restore(&mut self, initial: &[u8], heap: &Heap, changed: &[usize]) -> bool {
        if self.memory_bytes() != heap.size_bytes {
            return false;
        }
        if let Some(memory) = self.memory {
            let data = memory.data_mut(&mut self.store);
            for &i in changed {
                data[i * PAGE_SIZE..(i + 1) * PAGE_SIZE].copy_from_slice(heap.page(initial, i));
            }
        }
        for (g, value) in self.globals.iter().zip(&heap.globals) {
            if g.set(&mut self.store, value.clone()).is_err() {
                return false;
            }
        }
        self.heap_id = heap.id;
        true
    }
}

/// Live instances of recently used canisters, bounded in number and in linear-memory bytes.
///
/// Admission is frequency based: while the cache has room every executed canister is kept;
/// once it is full a canister is kept only if it was executed more often recently than the
/// least recently used live one, which it then replaces. A sweep over more canisters than the
/// cache holds (every canister touched once or twice in turn) therefore leaves the cached set
/// alone and pays only the instantiation, never an eviction, while a canister that receives
/// messages constantly (a manager among its user canisters) wins its place and stays. Access
/// counts are halved every [`Instances::window`] executions, so old popularity fades.
pub(crate) struct Instances {
    live: HashMap<Principal, Live>,
    max_instances: usize,
    max_bytes: usize,
    bytes: usize,
    clock: u64,
    /// Recent executions per canister (halved every `window` executions).
    counts: HashMap<Principal, u32>,
    /// Used instances of reusable modules not held for any canister, most recent last: a miss
    /// overwrites one instead of instantiating (and allocating) afresh.
    spares: Vec<Live>,
    executions: u64,
    /// Executions that found a live instance / that had to instantiate.
    pub hits: u64,
    pub misses: u64,
}

impl Instances {
    pub fn new(max_instances: usize, max_bytes: usize) -> Self {
        Instances {
            live: HashMap::new(),
            max_instances,
            max_bytes,
            bytes: 0,
            clock: 0,
            counts: HashMap::new(),
            spares: Vec::new(),
            executions: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// Number of live instances.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Bytes of linear memory held by live instances.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Canisters whose recent executions are counted.
    pub fn counted(&self) -> usize {
        self.counts.len()
    }

    /// Executions between two halvings of the access counts.
    fn window(&self) -> u64 {
        (self.max_instances as u64 * 8).max(1024)
    }

    /// Drops the live instance of `canister` (e.g. when it is deleted).
    pub fn forget(&mut self, canister: &Principal) {
        self.evict(canister);
        self.counts.remove(canister);
    }

    fn evict(&mut self, canister: &Principal) {
        if let Some(live) = self.live.remove(canister) {
            self.bytes -= live.memory_bytes();
            self.keep_spare(live);
        }
    }

    /// Keeps `live`, no longer held for any canister, for reuse by a later miss.
    fn keep_spare(&mut self, live: Live) {
        if self.max_instances == 0 || !live.module.reusable {
            return;
        }
        if self.spares.len() >= MAX_SPARES {
            self.spares.remove(0);
        }
        self.spares.push(live);
    }

    /// An instance of `module` holding `heap`: a spare one overwritten, or a new one.
    fn instantiate(&mut self, module: &Arc<CanisterModule>, heap: &Heap) -> Result<Live, String> {
        if let Some(i) = self
            .spares
            .iter()
            .rposition(|l| Arc::ptr_eq(&l.module, module))
        {
            let mut live = self.spares.swap_remove(i);
            if live.reset(heap) {
                return Ok(live);
            }
        }
        Live::new(module, heap)
    }

    /// Counts one execution of `canister`.
    fn touch(&mut self, canister: &Principal) {
        if self.max_instances == 0 {
            return;
        }
        let count = self.counts.entry(*canister).or_insert(0);
        *count = count.saturating_add(1);
        self.executions += 1;
        if self.executions.is_multiple_of(self.window()) {
            self.counts.retain(|_, n| {
                *n /= 2;
                *n > 0
            });
        }
    }

    /// The least recently used live instance.
    fn oldest(&self) -> Option<Principal> {
        self.live
            .iter()
            .min_by_key(|(_, l)| l.last_used)
            .map(|(id, _)| *id)
    }

    /// Whether an instance of `canister` holding `bytes` of memory should be kept (`canister`'s
    /// own instance is not in the cache while it executes).
    fn admits(&self, canister: &Principal, bytes: usize) -> bool {
        if self.max_instances == 0 {
            return false;
        }
        if self.live.len() < self.max_instances && self.bytes + bytes <= self.max_bytes {
            return true;
        }
        let count = |id: &Principal| self.counts.get(id).copied().unwrap_or(0);
        match self.oldest() {
            Some(victim) => count(canister) > count(&victim),
            // An empty cache whose byte bound is smaller than one instance keeps that one.
            None => true,
        }
    }

    /// The live instance of `canister` if it holds `heap` of `module`; a stale one is dropped.
    fn take(
        &mut self,
        canister: &Principal,
        module: &Arc<CanisterModule>,
        heap: &Heap,
    ) -> Option<Live> {
        let live = self.live.remove(canister)?;
        self.bytes -= live.memory_bytes();
        if heap.id != 0 && live.heap_id == heap.id && Arc::ptr_eq(&live.module, module) {
            Some(live)
        } else {
            self.keep_spare(live);
            None
        }
    }

    fn put(&mut self, canister: Principal, mut live: Live) {
        if self.max_instances == 0 || live.heap_id == 0 {
            return;
        }
        self.clock += 1;
        live.last_used = self.clock;
        self.bytes += live.memory_bytes();
        self.live.insert(canister, live);
        while self.live.len() > self.max_instances
            || (self.bytes > self.max_bytes && self.live.len() > 1)
        {
            let oldest = self.oldest().expect("not empty");
            self.evict(&oldest);
        }
    }
}

fn trap_of(err: wasmi::Error, limit: u64) -> HostTrap {
    if let Some(trap) = err.downcast_ref::<HostTrap>() {
        return trap.clone();
    }
    if let Some(code) = err.as_trap_code() {
        if code == wasmi::TrapCode::OutOfFuel {
            return HostTrap {
                code: ErrorCode::CanisterInstructionLimitExceeded,
                message: format!(
                    "Canister exceeded the limit of {limit} instructions for single message execution."
                ),
            };
        }
        return HostTrap {
            code: ErrorCode::CanisterTrapped,
            message: format!("Canister trapped: {code}"),
        };
    }
    HostTrap {
        code: ErrorCode::CanisterTrapped,
        message: format!("Canister trapped: {err}"),
    }
}

/// Runs `entry` of `module` over `heap` (the committed heap of `canister`) with `host` as the
/// system state and `fuel` as the instruction limit. With `keep_heap` false (queries,
/// inspection, pre-upgrade) the heap is left as it was.
#[allow(clippy::too_many_arguments)]
pub(crate) fn execute(
    instances: &mut Instances,
    canister: Principal,
    module: &Arc<CanisterModule>,
    heap: &Heap,
    entry: &Entry,
    mut host: Host,
    fuel: u64,
    keep_heap: bool,
) -> Outcome {
    instances.touch(&canister);
    let (mut live, hit) = match instances.take(&canister, module, heap) {
        Some(live) => {
            instances.hits += 1;
            (live, true)
        }
        None => {
            instances.misses += 1;
            match instances.instantiate(module, heap) {
                Ok(live) => (live, false),
                Err(message) => {
                    return Outcome {
                        host,
                        result: Err(HostTrap {
                            code: ErrorCode::CanisterWasmEngineError,
                            message,
                        }),
                        instructions: 0,
                    }
                }
            }
        }
    };
    host.fuel_limit = fuel;
    host.memory = live.memory;
    *live.store.data_mut() = host;
    let _ = live.store.set_fuel(fuel);
    let call = run(&mut live, module, entry);
    let instructions = fuel.saturating_sub(live.store.get_fuel().unwrap_or(0));
    let mut host = std::mem::replace(live.store.data_mut(), Host::idle());
    host.memory = None;
    // A canister that just got its place keeps it; otherwise the cache decides.
    let keep = hit || instances.admits(&canister, live.memory_bytes());
    let result = match call {
        // The instance may hold a partial write: drop it.
        Err(e) => Err(trap_of(e, fuel)),
        Ok(()) if !keep_heap && !keep => {
            instances.keep_spare(live);
            Ok(None)
        }
        Ok(()) => {
            let initial = &module.initial_memory[..];
            let changed = live.changed_pages(initial, heap);
            if keep_heap {
                let new_heap = live.committed(initial, heap, &changed);
                live.heap_id = new_heap.id;
                if keep {
                    instances.put(canister, live);
                } else {
                    instances.keep_spare(live);
                }
                Ok(Some(new_heap))
            } else {
                if live.restore(initial, heap, &changed) {
                    instances.put(canister, live);
                } else {
                    instances.keep_spare(live);
                }
                Ok(None)
            }
        }
    };
    Outcome {
        host,
        result,
        instructions,
    }
}

fn run(live: &mut Live, module: &CanisterModule, entry: &Entry) -> Result<(), wasmi::Error> {
    let instance = live.instance;
    let store = &mut live.store;
    match entry {
        Entry::Export(name) => match instance.get_func(&*store, name) {
            Some(f) => f.call(store, &[], &mut []),
            None => Err(wasmi::Error::host(HostTrap {
                code: ErrorCode::CanisterMethodNotFound,
                message: format!("Canister has no exported function '{name}'"),
            })),
        },
        Entry::Table { index, env } => {
            let table = instance.get_table(&*store, TABLE_EXPORT).or_else(|| {
                module
                    .exports
                    .iter()
                    .find_map(|n| match instance.get_export(&*store, n) {
                        Some(Extern::Table(t)) => Some(t),
                        _ => None,
                    })
            });
            let func = table.and_then(|t| t.get(&*store, u64::from(*index)));
            match func {
                Some(Ref::Func(f)) if f.val().is_some() => {
                    let f = *f.val().expect("checked");
                    f.call(store, &[Val::I32(*env as i32)], &mut [])
                }
                _ => Err(wasmi::Error::host(HostTrap {
                    code: ErrorCode::CanisterTrapped,
                    message: format!(
                        "Canister trapped: table index {index} does not hold a function (callback after the module changed?)"
                    ),
                })),
            }
        }
    }
}
