//! The pipeline log in stable memory: a ring of fixed-size slots, entry `seq` in slot
//! `seq % capacity`. Writing an entry is one write of its slot, where a B-tree insert rewrites a
//! node of a dozen entries; the bounds (`log_first`, `log_next`) are kept in the rollout
//! engine's header, and an entry beyond the capacity simply overwrites the oldest.
//!
//! A slot holds the entry's length (2 bytes, little-endian) and its stored encoding (as
//! `Stored<PipelineLogEntry>`: format tag, then postcard); an entry is at most 75 bytes (a
//! principal is at most 29).

use crate::memory;
use crate::stored::PipelineLogEntry;
use ic_stable_structures::Memory;

/// Bytes per slot.
pub const SLOT: u64 = 128;
const WASM_PAGE: u64 = 64 * 1024;

pub struct PipelineLog<M: Memory> {
    memory: M,
    capacity: u64,
}

impl<M: Memory> PipelineLog<M> {
    /// Opens the log on `memory`, keeping what it holds; `capacity` must stay the same for the
    /// life of the memory.
    pub fn init(memory: M, capacity: u64) -> Self {
        assert!(capacity > 0);
        PipelineLog { memory, capacity }
    }

    fn offset(&self, seq: u64) -> u64 {
        (seq % self.capacity) * SLOT
    }

    /// Writes entry `seq`, replacing entry `seq - capacity`.
    pub fn put(&mut self, seq: u64, entry: &PipelineLogEntry) {
        let bytes = memory::encode_stored(entry);
        let len = u16::try_from(bytes.len())
            .ok()
            .filter(|l| u64::from(*l) + 2 <= SLOT)
            .expect("a pipeline log entry fits its slot");
        let offset = self.offset(seq);
        let end = offset + SLOT;
        let pages = self.memory.size();
        if pages * WASM_PAGE < end {
            let grow = end.div_ceil(WASM_PAGE) - pages;
            assert!(
                self.memory.grow(grow) >= 0,
                "growing the pipeline log's memory"
            );
        }
        let mut slot = Vec::with_capacity(2 + bytes.len());
        slot.extend_from_slice(&len.to_le_bytes());
        slot.extend_from_slice(&bytes);
        self.memory.write(offset, &slot);
    }

    /// Entry `seq`, as written last in its slot: the caller keeps to the bounds of the log.
    pub fn get(&self, seq: u64) -> PipelineLogEntry {
        let offset = self.offset(seq);
        let mut len = [0u8; 2];
        self.memory.read(offset, &mut len);
        let mut bytes = vec![0u8; usize::from(u16::from_le_bytes(len))];
        self.memory.read(offset + 2, &mut bytes);
        memory::decode_stored(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stored::PipelineLogKind;
    use candid::Principal;
    use ic_stable_structures::VectorMemory;
    use rollout_core::{OpKind, Outcome};

    fn entry(n: u64, kind: PipelineLogKind) -> PipelineLogEntry {
        PipelineLogEntry {
            at: u64::MAX - n,
            rollout_id: u64::MAX,
            canister_id: Principal::from_slice(&[n as u8; 29]),
            kind,
            tick: Some(u64::MAX),
        }
    }

    #[test]
    fn entries_read_back_and_the_oldest_are_overwritten_beyond_the_capacity() {
        let memory = VectorMemory::default();
        let mut log = PipelineLog::init(memory.clone(), 3);
        let kinds = [
            PipelineLogKind::Started,
            PipelineLogKind::Left {
                outcome: Some(Outcome::RolledBack),
            },
            PipelineLogKind::Left { outcome: None },
            PipelineLogKind::Reissued {
                op: OpKind::InstallChunked,
            },
        ];
        for (seq, kind) in kinds.iter().enumerate() {
            log.put(seq as u64, &entry(seq as u64, kind.clone()));
        }
        // Entry 0 was replaced by entry 3; 1 to 3 read back, also from a reopened log.
        let reopened = PipelineLog::init(memory, 3);
        for seq in 1..4u64 {
            let expected = entry(seq, kinds[seq as usize].clone());
            assert_eq!(log.get(seq), expected);
            assert_eq!(reopened.get(seq), expected);
        }
        assert_eq!(log.get(0), log.get(3));
    }
}
