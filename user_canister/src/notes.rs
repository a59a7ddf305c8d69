//! The notes store and its record layouts.
//!
//! Schema 1 stores a note as its UTF-8 text. Schema 2 (feature `v2`) stores
//! `created_at: u64 LE | updated_at: u64 LE | text` in another memory, filled from schema 1 by
//! [`migrate_v1_to_v2`]. Both schemas present the same logical content (key, text), over which
//! [`Notes::checksum`] is computed, so the checksum is equal before and after the migration.

use std::borrow::Cow;

use fleet_api::user::{
    Note, NoteEntry, NoteError, MAX_KEY_LEN, MAX_NOTES, MAX_NOTES_PAGE, MAX_TEXT_LEN,
};
use ic_stable_structures::storable::{Bound, Storable};
use ic_stable_structures::BTreeMap;
use sha2::{Digest, Sha256};

use crate::memory::{self, Memory};

/// A note key: non-empty UTF-8 of at most [`MAX_KEY_LEN`] bytes, bounded so that it can be a
/// stable B-tree key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct NoteKey(pub String);

impl NoteKey {
    pub fn new(key: String) -> Result<Self, NoteError> {
        if key.is_empty() {
            return Err(NoteError::EmptyKey);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(NoteError::KeyTooLong {
                len: key.len() as u64,
                max: MAX_KEY_LEN as u64,
            });
        }
        Ok(NoteKey(key))
    }
}

impl Storable for NoteKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.0.as_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        self.0.into_bytes()
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        NoteKey(String::from_utf8(bytes.into_owned()).expect("stored key is utf-8"))
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: MAX_KEY_LEN as u32,
        is_fixed_size: false,
    };
}

/// A note as one schema lays it out in stable memory.
pub trait StoredNote: Storable + Sized {
    fn text(&self) -> &str;
    fn to_note(&self) -> Note;
    /// The stored form of `text` written at `now`, replacing `previous` if any.
    fn write(previous: Option<Self>, text: String, now: u64) -> Self;
}

/// Schema 1: the text alone (`String`'s own `Storable` encoding, UTF-8 bytes).
impl StoredNote for String {
    fn text(&self) -> &str {
        self
    }

    fn to_note(&self) -> Note {
        Note {
            text: self.clone(),
            created_at: None,
            updated_at: None,
        }
    }

    fn write(_: Option<Self>, text: String, _: u64) -> Self {
        text
    }
}

/// Schema 2: text with creation and last-update times.
#[cfg(feature = "v2")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteV2 {
    pub text: String,
    pub created_at: u64,
    pub updated_at: u64,
}

#[cfg(feature = "v2")]
impl Storable for NoteV2 {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone().into_bytes())
    }

    fn into_bytes(self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16 + self.text.len());
        bytes.extend_from_slice(&self.created_at.to_le_bytes());
        bytes.extend_from_slice(&self.updated_at.to_le_bytes());
        bytes.extend_from_slice(self.text.as_bytes());
        bytes
    }

    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        NoteV2 {
            created_at: word(0),
            updated_at: word(8),
            text: String::from_utf8(bytes[16..].to_vec()).expect("stored text is utf-8"),
        }
    }

    const BOUND: Bound = Bound::Bounded {
        max_size: 16 + MAX_TEXT_LEN as u32,
        is_fixed_size: false,
    };
}

#[cfg(feature = "v2")]
impl StoredNote for NoteV2 {
    fn text(&self) -> &str {
        &self.text
    }

    fn to_note(&self) -> Note {
        Note {
            text: self.text.clone(),
            created_at: Some(self.created_at),
            updated_at: Some(self.updated_at),
        }
    }

    fn write(previous: Option<Self>, text: String, now: u64) -> Self {
        NoteV2 {
            text,
            created_at: previous.map_or(now, |p| p.created_at),
            updated_at: now,
        }
    }
}

/// The layout this build writes.
#[cfg(not(feature = "v2"))]
pub type Current = String;
#[cfg(feature = "v2")]
pub type Current = NoteV2;

/// Memory of the layout this build writes.
#[cfg(not(feature = "v2"))]
const CURRENT_MEMORY: ic_stable_structures::memory_manager::MemoryId = memory::NOTES_V1;
#[cfg(feature = "v2")]
const CURRENT_MEMORY: ic_stable_structures::memory_manager::MemoryId = memory::NOTES_V2;

pub struct Notes<V: StoredNote = Current> {
    pub(crate) map: BTreeMap<NoteKey, V, Memory>,
}

impl Notes {
    /// Opens the notes of the schema this build writes (creating the map when empty).
    pub fn open() -> Self {
        Notes {
            map: BTreeMap::init(memory::get(CURRENT_MEMORY)),
        }
    }
}

impl<V: StoredNote> Notes<V> {
    pub fn get(&self, key: String) -> Result<Option<Note>, NoteError> {
        let key = NoteKey::new(key)?;
        Ok(self.map.get(&key).map(|v| v.to_note()))
    }

    pub fn put(&mut self, key: String, text: String, now: u64) -> Result<(), NoteError> {
        let key = NoteKey::new(key)?;
        if text.len() > MAX_TEXT_LEN {
            return Err(NoteError::TextTooLong {
                len: text.len() as u64,
                max: MAX_TEXT_LEN as u64,
            });
        }
        let previous = self.map.get(&key);
        if previous.is_none() && self.map.len() >= MAX_NOTES {
            return Err(NoteError::TooManyNotes { max: MAX_NOTES });
        }
        self.map.insert(key, V::write(previous, text, now));
        Ok(())
    }

    pub fn delete(&mut self, key: String) -> Result<(), NoteError> {
        let key = NoteKey::new(key)?;
        match self.map.remove(&key) {
            Some(_) => Ok(()),
            None => Err(NoteError::NotFound { key: key.0 }),
        }
    }

    /// Notes in key order after `start_after` (exclusive; it need not exist), at most
    /// `min(limit, MAX_NOTES_PAGE)`.
    pub fn list(&self, start_after: Option<String>, limit: u32) -> Vec<NoteEntry> {
        use std::ops::Bound::{Excluded, Unbounded};
        let limit = limit.min(MAX_NOTES_PAGE) as usize;
        let start = match start_after {
            Some(after) => Excluded(NoteKey(after)),
            None => Unbounded,
        };
        self.map
            .range((start, Unbounded))
            .take(limit)
            .map(|entry| NoteEntry {
                key: entry.key().0.clone(),
                note: entry.value().to_note(),
            })
            .collect()
    }

    pub fn len(&self) -> u64 {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// sha256 over every note in key order, each as `len(key) u32 LE | key | len(text) u32 LE |
    /// text`: the logical content, independent of the record layout. At [`MAX_NOTES`] notes of
    /// the largest size this hashes about 40 MiB, well within a query's 5B instructions.
    pub fn checksum(&self) -> Vec<u8> {
        let mut hasher = Sha256::new();
        for entry in self.map.iter() {
            let key = entry.key().0.as_bytes();
            let value = entry.value();
            let text = value.text().as_bytes();
            hasher.update((key.len() as u32).to_le_bytes());
            hasher.update(key);
            hasher.update((text.len() as u32).to_le_bytes());
            hasher.update(text);
        }
        hasher.finalize().to_vec()
    }
}

/// Moves every schema-1 note into the schema-2 map, stamped with `now`, and empties the
/// schema-1 map. At most [`MAX_NOTES`] notes, so it fits in the 300B instructions of an
/// install (interface spec, "Resource limits"). Returns the number of notes moved.
#[cfg(feature = "v2")]
pub fn migrate_v1_to_v2(now: u64) -> u64 {
    let mut v1: BTreeMap<NoteKey, String, Memory> = BTreeMap::init(memory::get(memory::NOTES_V1));
    let mut v2: BTreeMap<NoteKey, NoteV2, Memory> = BTreeMap::init(memory::get(memory::NOTES_V2));
    let mut moved = 0;
    for entry in v1.iter() {
        let note = NoteV2 {
            text: entry.value(),
            created_at: now,
            updated_at: now,
        };
        v2.insert(entry.key().clone(), note);
        moved += 1;
    }
    v1.clear_new();
    moved
}
