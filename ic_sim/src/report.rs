//! What the simulator holds, by category, for finding where memory goes as a fleet grows (see
//! [`crate::IcSim::memory_report`]). Pages are counted twice: as every canister and snapshot
//! references them, and once per distinct page in memory (pages are shared by reference).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::memory::Page;
use crate::module::PAGE_SIZE;
use crate::sim::Sim;

/// Figures of one [`crate::IcSim`], summed over its canisters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    pub canisters: usize,
    /// Heap pages differing from the module image, as referenced by canisters.
    pub heap_pages: usize,
    /// Stable memory pages differing from zeros, as referenced by canisters.
    pub stable_pages: usize,
    /// Heap and stable pages of the canister that references the most (a manager's records).
    pub largest_canister_pages: usize,
    pub snapshots: usize,
    /// Heap and stable pages referenced by snapshots.
    pub snapshot_pages: usize,
    /// Distinct pages over canisters and snapshots (what the referenced pages occupy).
    pub distinct_pages: usize,
    /// Distinct page contents among them (by content hash): what sharing equal pages would hold.
    pub distinct_contents: usize,
    /// Chunk store bytes of canisters and snapshots.
    pub chunk_bytes: usize,
    /// Distinct modules installed, and their bytes: installed wasm plus initial memory image.
    pub modules: usize,
    pub module_bytes: usize,
    pub log_bytes: usize,
    pub history_changes: usize,
    pub call_contexts: usize,
    pub callbacks: usize,
    /// Ingress statuses kept, of which completed (holding a reply or reject).
    pub ingress_statuses: usize,
    pub ingress_completed: usize,
    pub ingress_reply_bytes: usize,
    /// Messages queued, delayed or in the outbox, over subnets.
    pub messages_queued: usize,
    pub live_instances: usize,
    pub live_instance_bytes: usize,
    /// Canisters with an execution count kept by the instance cache.
    pub instance_counts: usize,
}

impl MemoryReport {
    /// Bytes of the distinct pages.
    pub fn page_bytes(&self) -> usize {
        self.distinct_pages * PAGE_SIZE
    }
}

impl fmt::Display for MemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.canisters.max(1);
        let per = |bytes: usize| bytes as f64 / n as f64 / 1024.0;
        let p = PAGE_SIZE;
        writeln!(f, "{} canisters (KiB per canister):", self.canisters)?;
        writeln!(
            f,
            "  heap pages referenced {} ({:.1}), stable pages {} ({:.1}), snapshots {} with {} pages ({:.1})",
            self.heap_pages,
            per(self.heap_pages * p),
            self.stable_pages,
            per(self.stable_pages * p),
            self.snapshots,
            self.snapshot_pages,
            per(self.snapshot_pages * p)
        )?;
        writeln!(
            f,
            "  distinct pages {} ({:.1}), distinct contents {} ({:.1}); chunks {:.1}; modules {} ({} KiB in all); logs {:.1}",
            self.distinct_pages,
            per(self.page_bytes()),
            self.distinct_contents,
            per(self.distinct_contents * p),
            per(self.chunk_bytes),
            self.modules,
            self.module_bytes / 1024,
            per(self.log_bytes)
        )?;
        writeln!(
            f,
            "  largest canister {} pages; history changes {}, call contexts {}, callbacks {}, messages queued {}",
            self.largest_canister_pages,
            self.history_changes,
            self.call_contexts,
            self.callbacks,
            self.messages_queued
        )?;
        write!(
            f,
            "  ingress statuses {} ({} completed, {} reply bytes); live instances {} ({} MiB); instance counts {}",
            self.ingress_statuses,
            self.ingress_completed,
            self.ingress_reply_bytes,
            self.live_instances,
            self.live_instance_bytes >> 20,
            self.instance_counts
        )
    }
}

impl Sim {
    pub fn memory_report(&self) -> MemoryReport {
        let mut r = MemoryReport {
            canisters: self.canisters.len(),
            ..Default::default()
        };
        let mut pages: HashMap<*const Page, &Arc<Page>> = HashMap::new();
        let mut modules: HashMap<*const crate::module::CanisterModule, usize> = HashMap::new();
        let mut module = |m: &Arc<crate::module::CanisterModule>| {
            modules.insert(Arc::as_ptr(m), m.installed.len() + m.initial_memory.len());
        };
        for c in self.canisters.values() {
            r.heap_pages += c.heap.pages.len();
            r.largest_canister_pages = r
                .largest_canister_pages
                .max(c.heap.pages.len() + c.stable.pages.len());
            r.stable_pages += c.stable.pages.len();
            add(&mut pages, c.heap.pages.values());
            add(&mut pages, c.stable.pages.values());
            r.chunk_bytes += c.chunks.values().map(Vec::len).sum::<usize>();
            r.log_bytes += c.log.bytes();
            r.history_changes += c.history.len();
            r.call_contexts += c.contexts.len();
            r.callbacks += c.callbacks.len();
            r.snapshots += c.snapshots.len();
            for s in &c.snapshots {
                r.snapshot_pages += s.heap.pages.len() + s.stable.pages.len();
                add(&mut pages, s.heap.pages.values());
                add(&mut pages, s.stable.pages.values());
                r.chunk_bytes += s.chunks.values().map(Vec::len).sum::<usize>();
                s.module.iter().for_each(&mut module);
            }
            c.module.iter().for_each(&mut module);
        }
        r.distinct_pages = pages.len();
        r.distinct_contents = pages
            .values()
            .map(|p| {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                p.hash(&mut h);
                h.finish()
            })
            .collect::<HashSet<u64>>()
            .len();
        r.modules = modules.len();
        r.module_bytes = modules.values().sum();
        r.ingress_statuses = self.ingress.len();
        for status in self.ingress.values().flatten() {
            r.ingress_completed += 1;
            r.ingress_reply_bytes += status.as_ref().map_or(0, Vec::len);
        }
        r.messages_queued = self.outbox.len()
            + self.delayed.len()
            + self
                .subnets
                .iter()
                .map(|s| s.queue.len() + s.subnet_queue.len())
                .sum::<usize>();
        r.live_instances = self.instances.len();
        r.live_instance_bytes = self.instances.bytes();
        r.instance_counts = self.instances.counted();
        r
    }
}

fn add<'a>(
    pages: &mut HashMap<*const Page, &'a Arc<Page>>,
    from: impl Iterator<Item = &'a Arc<Page>>,
) {
    for p in from {
        pages.insert(Arc::as_ptr(p), p);
    }
}
