//! Candid on the wire for the calls the manager makes on every upgrade, without the candid
//! crate's serializer and deserializer.
//!
//! Their type machinery (type tables built and compared for every value, subtyping checks,
//! serde visitors) cost the manager about half a million instructions per call, and 1.4M to
//! decode a `canister_status` reply even into three fields. The arguments here have fixed types:
//! each starts with a constant header (magic, type table, argument types) followed by the
//! values, written in the field order candid uses (by field hash). Tests check every encoder
//! byte for byte against the candid crate's encoding of the management canister types.
//!
//! Replies are read by [`Reply`]: a small reader of the candid binary format (interface spec,
//! "Candid": `DIDL`, type table, argument types, values) that accepts any valid type table,
//! reads the fields it is asked for by hash and skips the others, and applies candid's rules for
//! the shapes it reads: a missing or mistyped `opt` field is `None`; extra fields and extra
//! arguments are ignored. It never panics on malformed input, and bounds both nesting depth and
//! the work spent skipping values (a reply may come from a user canister).

use candid::Principal;

const MAGIC: &[u8] = b"DIDL";

/// Header of `record { canister_id : principal }`.
const CANISTER_ID: &[u8] = b"DIDL\x01\x6c\x01\xb3\xc4\xb1\xf2\x04\x68\x01\x00";
/// Header of `take_canister_snapshot`'s argument: `record { replace_snapshot : opt blob;
/// canister_id : principal; uninstall_code : opt bool; sender_canister_version : opt nat64 }`
/// (fields in hash order).
const TAKE_SNAPSHOT: &[u8] = b"DIDL\x05\x6c\x04\xef\xc1\xe4\xcf\x01\x01\xb3\xc4\xb1\xf2\x04\x68\xea\xbb\x9a\xd3\x09\x03\xca\x99\x98\xb4\x0d\x04\x6e\x02\x6d\x7b\x6e\x7e\x6e\x78\x01\x00";
/// Header of `load_canister_snapshot`'s argument: `record { canister_id : principal;
/// sender_canister_version : opt nat64; snapshot_id : blob }`.
const LOAD_SNAPSHOT: &[u8] = b"DIDL\x03\x6c\x03\xb3\xc4\xb1\xf2\x04\x68\xca\x99\x98\xb4\x0d\x01\xb6\xb8\x97\x89\x0f\x02\x6e\x78\x6d\x7b\x01\x00";
/// Header of `delete_canister_snapshot`'s argument: `record { canister_id : principal;
/// snapshot_id : blob }`.
const DELETE_SNAPSHOT: &[u8] =
    b"DIDL\x02\x6c\x02\xb3\xc4\xb1\xf2\x04\x68\xb6\xb8\x97\x89\x0f\x01\x6d\x7b\x01\x00";
/// Header of `install_chunked_code`'s argument: `record { arg : blob; wasm_module_hash : blob;
/// mode : variant { install; upgrade : opt record { skip_pre_upgrade : opt bool;
/// wasm_memory_persistence : opt variant { keep; replace } }; reinstall };
/// chunk_hashes_list : vec record { hash : blob }; target_canister : principal;
/// store_canister : opt principal; sender_canister_version : opt nat64 }`.
const INSTALL_CHUNKED: &[u8] = b"DIDL\x0c\x6c\x07\xd6\xfc\xa7\x02\x01\xa6\xbd\x87\xb1\x04\x01\xe3\xa6\x83\xc3\x04\x02\xef\xf5\xf3\xf0\x06\x08\x95\xe8\xdc\xba\x0a\x68\x85\x83\xb6\xaf\x0b\x0a\xca\x99\x98\xb4\x0d\x0b\x6d\x7b\x6b\x03\xc8\xbb\x8a\x70\x7f\x9c\xe9\xc6\x99\x06\x03\x9b\xaa\xeb\xec\x08\x7f\x6e\x04\x6c\x02\xdc\xea\xae\xfa\x02\x05\xc0\xa0\x9b\xde\x05\x07\x6e\x06\x6b\x02\x85\xa1\x9b\xb8\x04\x7f\xb4\x90\xa1\xd9\x0a\x7f\x6e\x7e\x6d\x09\x6c\x01\xce\xdf\xa0\xa8\x04\x01\x6e\x68\x6e\x78\x01\x00";
/// No arguments.
pub const NO_ARGS: &[u8] = b"DIDL\x00\x00";

fn leb(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn principal(out: &mut Vec<u8>, p: &Principal) {
    let bytes = p.as_slice();
    out.push(1);
    leb(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn blob(out: &mut Vec<u8>, b: &[u8]) {
    leb(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn opt_nat64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        None => out.push(0),
    }
}

/// `record { canister_id }`: `canister_status`, `start_canister`, `stop_canister`,
/// `deposit_cycles`.
pub fn canister_id(canister: &Principal) -> Vec<u8> {
    let mut out = Vec::with_capacity(CANISTER_ID.len() + 31);
    out.extend_from_slice(CANISTER_ID);
    principal(&mut out, canister);
    out
}

/// `take_canister_snapshot`, replacing `replace` if given.
pub fn take_snapshot(canister: &Principal, replace: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(TAKE_SNAPSHOT.len() + 64);
    out.extend_from_slice(TAKE_SNAPSHOT);
    match replace {
        Some(id) => {
            out.push(1);
            blob(&mut out, id);
        }
        None => out.push(0),
    }
    principal(&mut out, canister);
    out.push(0); // uninstall_code
    out.push(0); // sender_canister_version
    out
}

/// `load_canister_snapshot`.
pub fn load_snapshot(canister: &Principal, snapshot: &[u8], sender_version: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(LOAD_SNAPSHOT.len() + 72);
    out.extend_from_slice(LOAD_SNAPSHOT);
    principal(&mut out, canister);
    opt_nat64(&mut out, Some(sender_version));
    blob(&mut out, snapshot);
    out
}

/// `delete_canister_snapshot`.
pub fn delete_snapshot(canister: &Principal, snapshot: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DELETE_SNAPSHOT.len() + 64);
    out.extend_from_slice(DELETE_SNAPSHOT);
    principal(&mut out, canister);
    blob(&mut out, snapshot);
    out
}

/// How `install_chunked_code` installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallMode {
    Install,
    /// Upgrade with no flags.
    Upgrade,
}

/// `install_chunked_code` of `target` from `store`'s chunk store.
pub struct InstallChunked<'a> {
    pub mode: InstallMode,
    pub target: Principal,
    pub store: Principal,
    pub chunk_hashes: &'a [Vec<u8>],
    pub wasm_module_hash: &'a [u8],
    pub arg: &'a [u8],
    pub sender_version: u64,
}

pub fn install_chunked(a: &InstallChunked) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(INSTALL_CHUNKED.len() + 128 + a.arg.len() + 33 * a.chunk_hashes.len());
    out.extend_from_slice(INSTALL_CHUNKED);
    blob(&mut out, a.arg);
    blob(&mut out, a.wasm_module_hash);
    match a.mode {
        // The variant's cases in hash order: reinstall, upgrade, install.
        InstallMode::Install => out.push(2),
        InstallMode::Upgrade => out.extend_from_slice(&[1, 0]),
    }
    leb(&mut out, a.chunk_hashes.len() as u64);
    for hash in a.chunk_hashes {
        blob(&mut out, hash);
    }
    principal(&mut out, &a.target);
    out.push(1);
    principal(&mut out, &a.store);
    opt_nat64(&mut out, Some(a.sender_version));
    out
}

// ---------------------------------------------------------------------------------------------
// Reading replies
// ---------------------------------------------------------------------------------------------

/// Why a reply did not read as expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Not candid, cut short, or beyond the reader's bounds.
    Malformed(&'static str),
    /// Valid candid of another type than the one expected.
    Mismatch(&'static str),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WireError::Malformed(m) => write!(f, "malformed candid: {m}"),
            WireError::Mismatch(m) => write!(f, "unexpected candid type: {m}"),
        }
    }
}

type Result<T> = std::result::Result<T, WireError>;

const NULL: i64 = -1;
const BOOL: i64 = -2;
const NAT: i64 = -3;
const INT: i64 = -4;
const NAT8: i64 = -5;
const NAT16: i64 = -6;
const NAT32: i64 = -7;
const NAT64: i64 = -8;
const INT8: i64 = -9;
const INT16: i64 = -10;
const INT32: i64 = -11;
const INT64: i64 = -12;
const FLOAT32: i64 = -13;
const FLOAT64: i64 = -14;
const TEXT: i64 = -15;
const RESERVED: i64 = -16;
const EMPTY: i64 = -17;
const OPT: i64 = -18;
const VEC: i64 = -19;
const RECORD: i64 = -20;
const VARIANT: i64 = -21;
const FUNC: i64 = -22;
const SERVICE: i64 = -23;
const PRINCIPAL: i64 = -24;

/// Nesting depth the reader follows.
const MAX_DEPTH: u32 = 64;

/// The hash of a field name (candid's `idl_hash`).
pub const fn field(name: &str) -> u32 {
    let bytes = name.as_bytes();
    let mut h: u32 = 0;
    let mut i = 0;
    while i < bytes.len() {
        h = h.wrapping_mul(223).wrapping_add(bytes[i] as u32);
        i += 1;
    }
    h
}

#[derive(Debug)]
enum Entry {
    Opt(i64),
    Vec(i64),
    Record(Vec<(u32, i64)>),
    Variant(Vec<(u32, i64)>),
    Func,
    Service,
}

/// A reply being read: its type table, argument types and a cursor over the values.
pub struct Reply<'a> {
    bytes: &'a [u8],
    pos: usize,
    table: Vec<Entry>,
    args: Vec<i64>,
    /// Values that skipping may still visit: bounds the work on hostile input.
    budget: u64,
}

impl<'a> Reply<'a> {
    /// Reads the header (magic, type table, argument types).
    pub fn new(bytes: &'a [u8]) -> Result<Self> {
        if !bytes.starts_with(MAGIC) {
            return Err(WireError::Malformed("no DIDL magic"));
        }
        let mut r = Reply {
            bytes,
            pos: MAGIC.len(),
            table: Vec::new(),
            args: Vec::new(),
            budget: 10_000 + 4 * bytes.len() as u64,
        };
        let n = r.len()?;
        for _ in 0..n {
            let entry = match r.sleb()? {
                OPT => Entry::Opt(r.type_ref(n)?),
                VEC => Entry::Vec(r.type_ref(n)?),
                op @ (RECORD | VARIANT) => {
                    let count = r.len()?;
                    let mut fields = Vec::with_capacity(count.min(64));
                    for _ in 0..count {
                        let hash = r.uleb()?;
                        let hash = u32::try_from(hash)
                            .map_err(|_| WireError::Malformed("field hash out of range"))?;
                        if fields.last().is_some_and(|(h, _)| *h >= hash) {
                            return Err(WireError::Malformed("fields not in hash order"));
                        }
                        fields.push((hash, r.type_ref(n)?));
                    }
                    if op == RECORD {
                        Entry::Record(fields)
                    } else {
                        Entry::Variant(fields)
                    }
                }
                FUNC => {
                    for _ in 0..2 {
                        let count = r.len()?;
                        for _ in 0..count {
                            r.type_ref(n)?;
                        }
                    }
                    let annotations = r.len()?;
                    r.take(annotations)?;
                    Entry::Func
                }
                SERVICE => {
                    let count = r.len()?;
                    for _ in 0..count {
                        let name = r.len()?;
                        r.take(name)?;
                        r.type_ref(n)?;
                    }
                    Entry::Service
                }
                _ => return Err(WireError::Malformed("unknown type constructor")),
            };
            r.table.push(entry);
        }
        let args = r.len()?;
        for _ in 0..args {
            let t = r.type_ref(n)?;
            r.args.push(t);
        }
        Ok(r)
    }

    /// The type of the first argument, to read with the methods below.
    pub fn first_arg(&self) -> Result<i64> {
        self.args
            .first()
            .copied()
            .ok_or(WireError::Mismatch("no argument in the reply"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(WireError::Malformed("cut short"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn uleb(&mut self) -> Result<u64> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift == 63 && b > 1 || shift > 63 {
                return Err(WireError::Malformed("leb128 overflow"));
            }
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
            shift += 7;
        }
    }

    fn sleb(&mut self) -> Result<i64> {
        let mut n: i64 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift > 56 {
                return Err(WireError::Malformed("sleb128 overflow"));
            }
            n |= i64::from(b & 0x7f) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                if b & 0x40 != 0 {
                    n |= -1i64 << shift;
                }
                return Ok(n);
            }
        }
    }

    /// A length: at most what is left of the message (each element takes a byte at least,
    /// except those skipped against the budget).
    fn len(&mut self) -> Result<usize> {
        let n = self.uleb()?;
        usize::try_from(n).map_err(|_| WireError::Malformed("length out of range"))
    }

    fn type_ref(&mut self, table_len: usize) -> Result<i64> {
        let t = self.sleb()?;
        match t {
            t if t >= 0 && (t as u64) < table_len as u64 => Ok(t),
            PRINCIPAL..=NULL => Ok(t),
            _ => Err(WireError::Malformed("type reference out of range")),
        }
    }

    fn entry(&self, t: i64) -> Option<&Entry> {
        usize::try_from(t).ok().and_then(|i| self.table.get(i))
    }

    /// Skips one value of type `t`.
    fn skip(&mut self, t: i64, depth: u32) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(WireError::Malformed("nested too deep"));
        }
        self.budget = self
            .budget
            .checked_sub(1)
            .ok_or(WireError::Malformed("too many values"))?;
        match t {
            NULL | RESERVED => {}
            BOOL | NAT8 | INT8 => {
                self.take(1)?;
            }
            NAT16 | INT16 => {
                self.take(2)?;
            }
            NAT32 | INT32 | FLOAT32 => {
                self.take(4)?;
            }
            NAT64 | INT64 | FLOAT64 => {
                self.take(8)?;
            }
            NAT | INT => while self.byte()? & 0x80 != 0 {},
            TEXT => {
                let n = self.len()?;
                self.take(n)?;
            }
            PRINCIPAL => {
                self.principal_value()?;
            }
            EMPTY => return Err(WireError::Malformed("a value of type empty")),
            _ => match self.entry(t) {
                Some(Entry::Opt(inner)) => {
                    let inner = *inner;
                    match self.byte()? {
                        0 => {}
                        1 => self.skip(inner, depth + 1)?,
                        _ => return Err(WireError::Malformed("opt flag")),
                    }
                }
                Some(Entry::Vec(inner)) => {
                    let inner = *inner;
                    let n = self.len()?;
                    if matches!(inner, NAT8 | INT8) {
                        self.take(n)?;
                    } else {
                        for _ in 0..n {
                            self.skip(inner, depth + 1)?;
                        }
                    }
                }
                Some(Entry::Record(fields)) => {
                    let types: Vec<i64> = fields.iter().map(|f| f.1).collect();
                    for ty in types {
                        self.skip(ty, depth + 1)?;
                    }
                }
                Some(Entry::Variant(_)) => {
                    let index = self.len()?;
                    let ty = match self.entry(t) {
                        Some(Entry::Variant(fields)) => fields.get(index).map(|f| f.1),
                        _ => None,
                    }
                    .ok_or(WireError::Malformed("variant index out of range"))?;
                    self.skip(ty, depth + 1)?;
                }
                Some(Entry::Func) => {
                    if self.byte()? != 1 {
                        return Err(WireError::Malformed("opaque function reference"));
                    }
                    self.principal_value()?;
                    let n = self.len()?;
                    self.take(n)?;
                }
                Some(Entry::Service) => {
                    self.principal_value()?;
                }
                None => return Err(WireError::Malformed("type reference out of range")),
            },
        }
        Ok(())
    }

    fn principal_value(&mut self) -> Result<Principal> {
        if self.byte()? != 1 {
            return Err(WireError::Malformed("opaque principal reference"));
        }
        let n = self.len()?;
        if n > 29 {
            return Err(WireError::Malformed("principal longer than 29 bytes"));
        }
        Ok(Principal::from_slice(self.take(n)?))
    }

    /// Reads a record of type `t`, giving each field's hash and type to `on_field`, which
    /// reads the value and returns true, or returns false to have it skipped.
    pub fn record(
        &mut self,
        t: i64,
        mut on_field: impl FnMut(&mut Self, u32, i64) -> Result<bool>,
    ) -> Result<()> {
        let Some(Entry::Record(fields)) = self.entry(t) else {
            return Err(WireError::Mismatch("expected a record"));
        };
        let fields = fields.clone();
        for (hash, ty) in fields {
            if !on_field(self, hash, ty)? {
                self.skip(ty, 1)?;
            }
        }
        Ok(())
    }

    pub fn bool(&mut self, t: i64) -> Result<bool> {
        if t != BOOL {
            return Err(WireError::Mismatch("expected bool"));
        }
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Malformed("bool value")),
        }
    }

    /// A `nat`, saturated at `u128::MAX`.
    pub fn nat(&mut self, t: i64) -> Result<u128> {
        if t != NAT {
            return Err(WireError::Mismatch("expected nat"));
        }
        let mut n: u128 = 0;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            let part = u128::from(b & 0x7f);
            if shift < 128 {
                let shifted = part << shift;
                if shifted >> shift != part {
                    n = u128::MAX;
                } else {
                    n = n.saturating_add(shifted);
                }
            } else if part != 0 {
                n = u128::MAX;
            }
            if b & 0x80 == 0 {
                return Ok(n);
            }
            shift = shift.saturating_add(7);
        }
    }

    pub fn text(&mut self, t: i64) -> Result<String> {
        if t != TEXT {
            return Err(WireError::Mismatch("expected text"));
        }
        let n = self.len()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| WireError::Malformed("text not UTF-8"))
    }

    pub fn principal(&mut self, t: i64) -> Result<Principal> {
        if t != PRINCIPAL {
            return Err(WireError::Mismatch("expected principal"));
        }
        self.principal_value()
    }

    /// A `blob` (`vec nat8`).
    pub fn blob(&mut self, t: i64) -> Result<Vec<u8>> {
        if !matches!(self.entry(t), Some(Entry::Vec(NAT8))) {
            return Err(WireError::Mismatch("expected blob"));
        }
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }

    /// A `vec` of elements read by `element`.
    pub fn vec<T>(
        &mut self,
        t: i64,
        mut element: impl FnMut(&mut Self, i64) -> Result<T>,
    ) -> Result<Vec<T>> {
        let Some(Entry::Vec(inner)) = self.entry(t) else {
            return Err(WireError::Mismatch("expected vec"));
        };
        let inner = *inner;
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(self.bytes.len() - self.pos));
        for _ in 0..n {
            out.push(element(self, inner)?);
        }
        Ok(out)
    }

    /// An `opt` read by `value`, with candid's rules: `null`, `reserved` and a value of
    /// another type read as `None`; a value of the expected type outside an `opt` as `Some`.
    pub fn opt<T>(
        &mut self,
        t: i64,
        mut value: impl FnMut(&mut Self, i64) -> Result<T>,
    ) -> Result<Option<T>> {
        let inner = match (t, self.entry(t)) {
            (NULL | RESERVED, _) => return Ok(None),
            (_, Some(Entry::Opt(inner))) => {
                let inner = *inner;
                match self.byte()? {
                    0 => return Ok(None),
                    1 => inner,
                    _ => return Err(WireError::Malformed("opt flag")),
                }
            }
            _ => t,
        };
        let start = self.pos;
        match value(self, inner) {
            Ok(v) => Ok(Some(v)),
            Err(WireError::Mismatch(_)) if self.pos == start => {
                // Another type: `None`, after skipping the value (inside an opt) or the
                // value standing for it.
                self.skip(inner, 1)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Reads the first argument of `bytes` as a record, handing its fields to `on_field` as
/// [`Reply::record`] does.
pub fn read_record(
    bytes: &[u8],
    on_field: impl FnMut(&mut Reply, u32, i64) -> Result<bool>,
) -> Result<()> {
    let mut r = Reply::new(bytes)?;
    let t = r.first_arg()?;
    r.record(t, on_field)
}

/// What the precheck reads of a `canister_status` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub controllers: Vec<Principal>,
    pub module_hash: Option<Vec<u8>>,
    pub cycles: u128,
}

pub fn canister_status(bytes: &[u8]) -> Result<Status> {
    const SETTINGS: u32 = field("settings");
    const CONTROLLERS: u32 = field("controllers");
    const MODULE_HASH: u32 = field("module_hash");
    const CYCLES: u32 = field("cycles");
    let mut controllers = None;
    let mut module_hash = None;
    let mut cycles = None;
    read_record(bytes, |r, hash, ty| match hash {
        SETTINGS => {
            r.record(ty, |r, hash, ty| {
                if hash == CONTROLLERS {
                    controllers = Some(r.vec(ty, |r, t| r.principal(t))?);
                    Ok(true)
                } else {
                    Ok(false)
                }
            })?;
            Ok(true)
        }
        MODULE_HASH => {
            module_hash = Some(r.opt(ty, |r, t| r.blob(t))?);
            Ok(true)
        }
        CYCLES => {
            cycles = Some(r.nat(ty)?);
            Ok(true)
        }
        _ => Ok(false),
    })?;
    Ok(Status {
        controllers: controllers.ok_or(WireError::Mismatch("no settings.controllers"))?,
        module_hash: module_hash.flatten(),
        cycles: cycles.ok_or(WireError::Mismatch("no cycles"))?,
    })
}

/// The field `name` of a record, read by `read`.
fn one_field<T>(
    bytes: &[u8],
    name: u32,
    mut read: impl FnMut(&mut Reply, i64) -> Result<T>,
) -> Result<T> {
    let mut found = None;
    read_record(bytes, |r, hash, ty| {
        if hash != name {
            return Ok(false);
        }
        found = Some(read(r, ty)?);
        Ok(true)
    })?;
    found.ok_or(WireError::Mismatch("a field is missing"))
}

/// A record's `blob` field `name`: the snapshot id of `take_canister_snapshot`'s reply
/// (`id`), the hash of `upload_chunk`'s (`hash`).
pub fn blob_field(bytes: &[u8], name: u32) -> Result<Vec<u8>> {
    one_field(bytes, name, |r, t| r.blob(t))
}

/// `record { canister_id : principal }`: `create_canister`'s reply.
pub fn canister_id_reply(bytes: &[u8]) -> Result<Principal> {
    one_field(bytes, field("canister_id"), |r, t| r.principal(t))
}

/// What the pipeline reads of a `fleet_health` reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub ok: bool,
    pub version: String,
    pub message: Option<String>,
}

pub fn health(bytes: &[u8]) -> Result<Health> {
    const OK: u32 = field("ok");
    const VERSION: u32 = field("version");
    const MESSAGE: u32 = field("message");
    let (mut ok, mut version, mut message) = (None, None, None);
    read_record(bytes, |r, hash, ty| {
        match hash {
            OK => ok = Some(r.bool(ty)?),
            VERSION => version = Some(r.text(ty)?),
            MESSAGE => message = Some(r.opt(ty, |r, t| r.text(t))?),
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(Health {
        ok: ok.ok_or(WireError::Mismatch("no ok"))?,
        version: version.ok_or(WireError::Mismatch("no version"))?,
        message: message.flatten(),
    })
}

#[cfg(test)]
mod tests;
