//! One message execution: instantiate the shared compiled module, overlay the canister's heap
//! pages and globals, run one entry point with an instruction budget, and return the new heap
//! as a page diff. A trap returns no heap, so the canister keeps its old state (interface spec,
//! "Abstract behavior": executions are atomic).

use std::sync::Arc;

use wasmi::{Extern, Ref, Store, Val};

use crate::errors::ErrorCode;
use crate::memory::{Page, ZERO_PAGE};
use crate::module::{cache, CanisterModule, MEMORY_EXPORT, PAGE_SIZE, TABLE_EXPORT};
use crate::system_api::{Host, HostTrap};

use std::collections::BTreeMap;

/// A canister's wasm heap: pages that differ from the module's initial image, the heap size,
/// and the values of the mutable globals.
#[derive(Clone, Debug, Default)]
pub(crate) struct Heap {
    pub pages: BTreeMap<u64, Arc<Page>>,
    pub size_bytes: usize,
    pub globals: Vec<Val>,
}

impl Heap {
    /// The heap of a freshly instantiated module.
    pub fn initial(module: &CanisterModule) -> Self {
        Heap {
            pages: BTreeMap::new(),
            size_bytes: module.initial_memory.len(),
            globals: module.initial_globals.clone(),
        }
    }

    /// Bytes held for this heap beyond the shared module image.
    pub fn private_bytes(&self) -> usize {
        self.pages.len() * PAGE_SIZE
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

/// Runs `entry` of `module` over `heap` with `host` as the system state and `fuel` as the
/// instruction limit. With `keep_heap` false (queries, inspection) the heap is not diffed.
pub(crate) fn execute(
    module: &CanisterModule,
    heap: &Heap,
    entry: &Entry,
    host: Host,
    fuel: u64,
    keep_heap: bool,
) -> Outcome {
    execute_here(module, heap, entry, host, fuel, keep_heap)
}

fn execute_here(
    module: &CanisterModule,
    heap: &Heap,
    entry: &Entry,
    mut host: Host,
    fuel: u64,
    keep_heap: bool,
) -> Outcome {
    let cache = cache();
    host.fuel_limit = fuel;
    host.memory = None;
    let mut store = Store::new(&cache.engine, host);
    let _ = store.set_fuel(fuel);
    let engine_error = |store: Store<Host>, message: String| Outcome {
        host: store.into_data(),
        result: Err(HostTrap {
            code: ErrorCode::CanisterWasmEngineError,
            message,
        }),
        instructions: 0,
    };
    let instance = match cache
        .linker
        .instantiate_and_start(&mut store, &module.module)
    {
        Ok(i) => i,
        Err(e) => return engine_error(store, format!("instantiation failed: {e}")),
    };
    let memory = instance
        .get_memory(&store, "memory")
        .or_else(|| instance.get_memory(&store, MEMORY_EXPORT));
    if let Some(memory) = memory {
        let current = memory.data_size(&store);
        if heap.size_bytes > current {
            let extra = ((heap.size_bytes - current) as u64).div_ceil(65536);
            if let Err(e) = memory.grow(&mut store, extra) {
                return engine_error(store, format!("restoring heap size: {e}"));
            }
        }
        let data = memory.data_mut(&mut store);
        for (index, page) in &heap.pages {
            let start = *index as usize * PAGE_SIZE;
            data[start..start + PAGE_SIZE].copy_from_slice(&page[..]);
        }
    }
    for (name, value) in module.global_names.iter().zip(&heap.globals) {
        if let Some(Extern::Global(g)) = instance.get_export(&store, name) {
            let _ = g.set(&mut store, value.clone());
        }
    }
    store.data_mut().memory = memory;

    let call = match entry {
        Entry::Export(name) => match instance.get_func(&store, name) {
            Some(f) => f.call(&mut store, &[], &mut []),
            None => Err(wasmi::Error::host(HostTrap {
                code: ErrorCode::CanisterMethodNotFound,
                message: format!("Canister has no exported function '{name}'"),
            })),
        },
        Entry::Table { index, env } => {
            let table = instance.get_table(&store, TABLE_EXPORT).or_else(|| {
                module
                    .exports
                    .iter()
                    .find_map(|n| match instance.get_export(&store, n) {
                        Some(Extern::Table(t)) => Some(t),
                        _ => None,
                    })
            });
            let func = table.and_then(|t| t.get(&store, u64::from(*index)));
            match func {
                Some(Ref::Func(f)) if f.val().is_some() => {
                    let f = *f.val().expect("checked");
                    f.call(&mut store, &[Val::I32(*env as i32)], &mut [])
                }
                _ => Err(wasmi::Error::host(HostTrap {
                    code: ErrorCode::CanisterTrapped,
                    message: format!(
                        "Canister trapped: table index {index} does not hold a function (callback after the module changed?)"
                    ),
                })),
            }
        }
    };
    let instructions = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    let result = match call {
        Err(e) => Err(trap_of(e, fuel)),
        Ok(()) if !keep_heap => Ok(None),
        Ok(()) => {
            let mut new_heap = Heap {
                pages: heap.pages.clone(),
                size_bytes: 0,
                globals: Vec::with_capacity(module.global_names.len()),
            };
            if let Some(memory) = memory {
                let data = memory.data(&store);
                new_heap.size_bytes = data.len();
                diff_pages(
                    &module.initial_memory,
                    &heap.pages,
                    data,
                    &mut new_heap.pages,
                );
            }
            for name in &module.global_names {
                if let Some(Extern::Global(g)) = instance.get_export(&store, name) {
                    new_heap.globals.push(g.get(&store));
                }
            }
            Ok(Some(new_heap))
        }
    };
    let mut host = store.into_data();
    host.memory = None;
    Outcome {
        host,
        result,
        instructions,
    }
}

/// Records in `out` every page of `data` that differs from what the canister had before
/// (`old`, over `initial`); pages equal to the initial image are dropped from the map.
fn diff_pages(
    initial: &[u8],
    old: &BTreeMap<u64, Arc<Page>>,
    data: &[u8],
    out: &mut BTreeMap<u64, Arc<Page>>,
) {
    let initial_page = |i: usize| -> &[u8] {
        let start = i * PAGE_SIZE;
        if start + PAGE_SIZE <= initial.len() {
            &initial[start..start + PAGE_SIZE]
        } else {
            &ZERO_PAGE[..]
        }
    };
    for (i, current) in data.chunks_exact(PAGE_SIZE).enumerate() {
        let before: &[u8] = match old.get(&(i as u64)) {
            Some(p) => &p[..],
            None => initial_page(i),
        };
        if current != before {
            if current == initial_page(i) {
                out.remove(&(i as u64));
            } else {
                let mut page = [0u8; PAGE_SIZE];
                page.copy_from_slice(current);
                out.insert(i as u64, Arc::new(page));
            }
        }
    }
}
