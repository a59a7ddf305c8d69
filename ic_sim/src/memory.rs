//! Sparse page maps for heap and stable memory.
//!
//! A canister's memory is kept as the pages that differ from a base (the module's initial image
//! for the heap, zeros for stable memory). Pages are reference-counted, so snapshots and
//! per-message working copies share them until one side writes, and committed pages are
//! interned by content ([`intern`]), so equal pages of different canisters are held once.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::{Arc, Mutex};

use crate::module::{PAGE_SIZE, WASM_PAGE_SIZE};

pub(crate) type Page = [u8; PAGE_SIZE];

pub(crate) static ZERO_PAGE: Page = [0; PAGE_SIZE];

/// Committed pages by content hash, so that equal pages are held once: thousands of canisters
/// running the same module write the same content to most of the pages they touch (allocator
/// state, data they all initialize alike), and a snapshot or a later commit of an unchanged
/// page then shares it too. Pages no map holds any more are swept when the table has grown by an
/// eighth since the last sweep: messages replace pages all the time, and a sweep costs one pass
/// over the table, so dead pages stay few at an amortized cost of eight entries per insertion.
#[derive(Default)]
struct Interner {
    pages: HashMap<u64, Arc<Page>>,
    kept_after_sweep: usize,
}

static INTERNER: Mutex<Option<Interner>> = Mutex::new(None);

/// Hashes with fixed keys: the same content gets the same hash in every run.
fn content_hash(page: &[u8]) -> u64 {
    BuildHasherDefault::<DefaultHasher>::default().hash_one(page)
}

/// A committed page holding `content`: a page already held with that content, or a new one.
pub(crate) fn intern(content: &[u8]) -> Arc<Page> {
    let hash = content_hash(content);
    let mut guard = INTERNER.lock().unwrap_or_else(|e| e.into_inner());
    let interner = guard.get_or_insert_with(Interner::default);
    if let Some(page) = interner.pages.get(&hash) {
        if page[..] == *content {
            return page.clone();
        }
        // A hash collision: the page is kept unshared.
        return Arc::new(content.try_into().expect("a page"));
    }
    let page: Arc<Page> = Arc::new(content.try_into().expect("a page"));
    interner.pages.insert(hash, page.clone());
    if interner.pages.len()
        > interner.kept_after_sweep + (interner.kept_after_sweep / 8).max(1 << 12)
    {
        interner.pages.retain(|_, p| Arc::strong_count(p) > 1);
        interner.kept_after_sweep = interner.pages.len();
    }
    page
}

/// Pages that differ from the base, by page index.
#[derive(Clone, Default, Debug)]
pub(crate) struct PageMap {
    pub pages: BTreeMap<u64, Arc<Page>>,
}

impl PageMap {
    pub fn get(&self, index: u64) -> Option<&Page> {
        self.pages.get(&index).map(|p| &**p)
    }

    /// Bytes held by the map's pages.
    pub fn bytes(&self) -> usize {
        self.pages.len() * PAGE_SIZE
    }
}

/// Stable memory as one execution sees it: the committed pages plus this execution's writes.
/// Dropping it discards the writes; [`StableMemory::commit`] folds them in.
pub(crate) struct StableMemory {
    base: Arc<PageMap>,
    dirty: HashMap<u64, Box<Page>>,
    size_pages: u64,
}

/// The upper bound of stable memory (interface spec, "Stable memory": 64-bit addressing;
/// the IC limits it to hundreds of GiB).
pub(crate) const MAX_STABLE_BYTES: u64 = 500 << 30;

impl StableMemory {
    pub fn new(base: Arc<PageMap>, size_pages: u64) -> Self {
        Self {
            base,
            dirty: HashMap::new(),
            size_pages,
        }
    }

    pub fn size_pages(&self) -> u64 {
        self.size_pages
    }

    pub fn set_size_pages(&mut self, pages: u64) {
        self.size_pages = pages;
    }

    fn bytes(&self) -> u64 {
        self.size_pages * WASM_PAGE_SIZE
    }

    fn page(&self, index: u64) -> &Page {
        if let Some(p) = self.dirty.get(&index) {
            return p;
        }
        self.base.get(index).unwrap_or(&ZERO_PAGE)
    }

    fn check(&self, offset: u64, size: u64) -> Result<(), String> {
        match offset.checked_add(size) {
            Some(end) if end <= self.bytes() => Ok(()),
            _ => Err(format!(
                "stable memory out of bounds: {size} bytes at {offset} (stable memory size {})",
                self.bytes()
            )),
        }
    }

    pub fn read(&self, offset: u64, size: u64) -> Result<Vec<u8>, String> {
        self.check(offset, size)?;
        let mut out = Vec::with_capacity(size as usize);
        let mut pos = offset;
        let end = offset + size;
        while pos < end {
            let index = pos / PAGE_SIZE as u64;
            let start = (pos % PAGE_SIZE as u64) as usize;
            let len = ((PAGE_SIZE - start) as u64).min(end - pos) as usize;
            out.extend_from_slice(&self.page(index)[start..start + len]);
            pos += len as u64;
        }
        Ok(out)
    }

    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        self.check(offset, data.len() as u64)?;
        let mut pos = offset;
        let mut rest = data;
        while !rest.is_empty() {
            let index = pos / PAGE_SIZE as u64;
            let start = (pos % PAGE_SIZE as u64) as usize;
            let len = (PAGE_SIZE - start).min(rest.len());
            let base = &self.base;
            let page = self
                .dirty
                .entry(index)
                .or_insert_with(|| Box::new(*base.get(index).unwrap_or(&ZERO_PAGE)));
            page[start..start + len].copy_from_slice(&rest[..len]);
            rest = &rest[len..];
            pos += len as u64;
        }
        Ok(())
    }

    /// Folds this execution's writes into `target` (the canister's committed stable memory)
    /// and returns the new size in wasm pages. Pages written back to zeros are dropped.
    pub fn commit(self, target: &mut Arc<PageMap>) -> u64 {
        let size = self.size_pages;
        let dirty = self.dirty;
        drop(self.base);
        if !dirty.is_empty() {
            let map = Arc::make_mut(target);
            for (index, page) in dirty {
                if *page == ZERO_PAGE {
                    map.pages.remove(&index);
                } else {
                    map.pages.insert(index, intern(&page[..]));
                }
            }
        }
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_writes_span_pages_and_commit_sparsely() {
        let mut committed = Arc::new(PageMap::default());
        let mut mem = StableMemory::new(committed.clone(), 1);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8 + 1).collect();
        mem.write(100, &data).unwrap();
        assert_eq!(mem.read(100, 10_000).unwrap(), data);
        assert_eq!(mem.read(0, 100).unwrap(), vec![0; 100]);
        assert!(mem.read(WASM_PAGE_SIZE - 1, 2).is_err());
        assert_eq!(mem.commit(&mut committed), 1);
        // 10 000 bytes from offset 100 touch pages 0, 1 and 2 only.
        assert_eq!(committed.pages.len(), 3);
        let again = StableMemory::new(committed.clone(), 1);
        assert_eq!(again.read(100, 10_000).unwrap(), data);
    }

    #[test]
    fn equal_pages_committed_by_two_canisters_are_held_once() {
        let data: Vec<u8> = (0..2 * PAGE_SIZE as u32)
            .map(|i| (i % 253) as u8 + 1)
            .collect();
        let (mut a, mut b) = (Arc::new(PageMap::default()), Arc::new(PageMap::default()));
        for map in [&mut a, &mut b] {
            let mut mem = StableMemory::new(map.clone(), 1);
            mem.write(0, &data).unwrap();
            mem.commit(map);
        }
        assert_eq!((a.pages.len(), b.pages.len()), (2, 2));
        for index in 0..2 {
            assert!(Arc::ptr_eq(&a.pages[&index], &b.pages[&index]));
        }
        // Different content is never shared.
        assert!(!Arc::ptr_eq(&a.pages[&0], &a.pages[&1]));
    }

    #[test]
    fn uncommitted_writes_leave_the_base_untouched() {
        let committed = Arc::new(PageMap::default());
        let mut mem = StableMemory::new(committed.clone(), 1);
        mem.write(0, &[7; 8]).unwrap();
        drop(mem);
        assert!(committed.pages.is_empty());
    }
}
