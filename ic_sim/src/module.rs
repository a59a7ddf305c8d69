//! Canister modules: decoding (gzip), the export rewrite, compilation once per distinct module,
//! and the module's initial memory image that every canister's heap is stored against.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmi::{Engine, Extern, Linker, Module, Store, Val};

use crate::system_api::{self, Host};

/// Name under which the rewrite exports the module's function table.
pub(crate) const TABLE_EXPORT: &str = "__ic_sim_table";
/// Name under which the rewrite exports the linear memory when the module does not.
pub(crate) const MEMORY_EXPORT: &str = "__ic_sim_memory";
/// Prefix of the names under which the rewrite exports each mutable global.
pub(crate) const GLOBAL_EXPORT_PREFIX: &str = "__ic_sim_global_";

/// Size of a heap or stable memory page as the simulator stores it.
pub(crate) const PAGE_SIZE: usize = 4096;
/// Size of a wasm page (interface spec, "Canister module format").
pub(crate) const WASM_PAGE_SIZE: u64 = 65536;

/// The kinds of exported canister methods (interface spec, "Canister module format").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MethodKind {
    Update,
    Query,
    CompositeQuery,
}

/// A compiled canister module, shared by every canister that runs it.
pub(crate) struct CanisterModule {
    pub hash: [u8; 32],
    pub module: Module,
    pub methods: HashMap<String, MethodKind>,
    pub exports: BTreeSet<String>,
    /// Linear memory right after instantiation (data segments applied).
    pub initial_memory: Arc<Vec<u8>>,
    /// Initial values of the mutable globals, in export order.
    pub initial_globals: Vec<Val>,
    pub global_names: Vec<String>,
    /// The wasm module as installed (decompressed), for snapshots and size reporting.
    pub wasm_len: usize,
    /// The module's bytes as installed (gzipped if it was installed gzipped): what a snapshot
    /// download returns as the canister's wasm (interface spec, "IC method
    /// read_canister_snapshot_data").
    pub installed: Arc<[u8]>,
    /// The `icp:public`/`icp:private` custom sections (interface spec, "Canister module
    /// format").
    pub metadata: crate::metadata::Sections,
    /// Whether an instance's whole state is its memory and mutable globals: no instruction
    /// changes a table or the state of a passive segment, so a used instance whose memory and
    /// globals are overwritten is indistinguishable from a fresh one.
    pub reusable: bool,
}

impl CanisterModule {
    pub fn exports(&self, name: &str) -> bool {
        self.exports.contains(name)
    }
}

/// The process-wide engine and compiled-module cache: many simulators in one test binary (and
/// thousands of canisters within one) share each module's compiled form.
pub(crate) struct ModuleCache {
    pub engine: Engine,
    pub linker: Linker<Host>,
    modules: Mutex<HashMap<[u8; 32], Arc<CanisterModule>>>,
}

pub(crate) fn cache() -> &'static ModuleCache {
    static CACHE: OnceLock<ModuleCache> = OnceLock::new();
    CACHE.get_or_init(|| {
        let mut config = wasmi::Config::default();
        config.consume_fuel(true);
        // The IC's wasm feature set: no threads; bulk memory, sign extension, multi-value and
        // saturating conversions are available to canisters (interface spec, "Canister module
        // format").
        let engine = Engine::new(&config);
        let linker = system_api::linker(&engine);
        ModuleCache {
            engine,
            linker,
            modules: Mutex::new(HashMap::new()),
        }
    })
}

/// Upper bound of a decompressed module (interface spec, "Canister module format": 100 MiB).
pub(crate) const MAX_WASM_SIZE: u64 = 100 << 20;

/// Decompresses a gzipped module (magic `1f 8b`); plain modules pass through.
pub(crate) fn decode_wasm(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .take(MAX_WASM_SIZE + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("invalid gzip-compressed module: {e}"))?;
        if out.len() as u64 > MAX_WASM_SIZE {
            return Err("decompressed module exceeds 100 MiB".into());
        }
        Ok(out)
    } else if bytes.starts_with(b"\0asm") {
        Ok(bytes.to_vec())
    } else {
        Err("module is neither a wasm module nor a gzip-compressed one".into())
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Compiles (or fetches from the cache) the module whose raw bytes are `installed`.
/// `installed` may be gzipped; the module hash is that of the bytes as installed, like the IC's.
pub(crate) fn load(installed: &[u8]) -> Result<Arc<CanisterModule>, String> {
    let hash = sha256(installed);
    let cache = cache();
    if let Some(m) = cache.modules.lock().unwrap().get(&hash) {
        return Ok(m.clone());
    }
    let wasm = decode_wasm(installed)?;
    let compiled = Arc::new(compile(hash, installed, &wasm)?);
    cache.modules.lock().unwrap().insert(hash, compiled.clone());
    Ok(compiled)
}

fn compile(hash: [u8; 32], installed: &[u8], wasm: &[u8]) -> Result<CanisterModule, String> {
    let (rewritten, global_names) = rewrite_exports(wasm)?;
    let metadata = crate::metadata::sections(wasm)?;
    let cache = cache();
    let module = Module::new(&cache.engine, &rewritten[..])
        .map_err(|e| format!("Wasm module is invalid: {e}"))?;
    for import in module.imports() {
        if import.module() != "ic0" {
            return Err(format!(
                "Wasm module has an invalid import section. Module imports function '{}' from '{}' that is not exported by the runtime.",
                import.name(),
                import.module()
            ));
        }
        if !system_api::IMPLEMENTED.contains(&import.name()) {
            return Err(format!(
                "Wasm module has an invalid import section. Module imports function 'ic0.{}' that is not implemented by ic_sim.",
                import.name()
            ));
        }
    }
    let mut methods = HashMap::new();
    let mut exports = BTreeSet::new();
    for export in module.exports() {
        let name = export.name().to_string();
        for (prefix, kind) in [
            ("canister_update ", MethodKind::Update),
            ("canister_query ", MethodKind::Query),
            ("canister_composite_query ", MethodKind::CompositeQuery),
        ] {
            if let Some(method) = name.strip_prefix(prefix) {
                if methods.insert(method.to_string(), kind).is_some() {
                    return Err(format!(
                        "Wasm module has an invalid export section. Duplicate function '{method}' exported multiple times with different call types."
                    ));
                }
            }
        }
        exports.insert(name);
    }
    // Instantiate once to capture the initial image.
    let mut store = Store::new(&cache.engine, Host::idle());
    store.set_fuel(u64::MAX).map_err(|e| e.to_string())?;
    let instance = cache
        .linker
        .instantiate_and_start(&mut store, &module)
        .map_err(|e| format!("Wasm module could not be instantiated: {e}"))?;
    let memory = instance
        .get_memory(&store, "memory")
        .or_else(|| instance.get_memory(&store, MEMORY_EXPORT))
        .map(|m| m.data(&store).to_vec())
        .unwrap_or_default();
    let mut initial_globals = Vec::new();
    for name in &global_names {
        match instance.get_export(&store, name) {
            Some(Extern::Global(g)) => initial_globals.push(g.get(&store)),
            _ => return Err(format!("rewritten global export {name} missing")),
        }
    }
    Ok(CanisterModule {
        hash,
        module,
        methods,
        exports,
        initial_memory: Arc::new(memory),
        initial_globals,
        global_names,
        wasm_len: wasm.len(),
        installed: installed.into(),
        metadata,
        reusable: state_is_memory_and_globals(wasm),
    })
}

/// True when no function of `wasm` mutates a table or a segment's state (`table.set`,
/// `table.grow`, `table.fill`, `table.copy`, `table.init`, `elem.drop`, `memory.init`,
/// `data.drop`): the rest of an instance's state is its memory and globals.
fn state_is_memory_and_globals(wasm: &[u8]) -> bool {
    use wasmparser::{Operator, Parser, Payload};
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(payload) = payload else { return false };
        if let Payload::CodeSectionEntry(body) = payload {
            let Ok(mut ops) = body.get_operators_reader() else {
                return false;
            };
            while !ops.eof() {
                match ops.read() {
                    Ok(
                        Operator::TableSet { .. }
                        | Operator::TableGrow { .. }
                        | Operator::TableFill { .. }
                        | Operator::TableCopy { .. }
                        | Operator::TableInit { .. }
                        | Operator::ElemDrop { .. }
                        | Operator::MemoryInit { .. }
                        | Operator::DataDrop { .. },
                    )
                    | Err(_) => return false,
                    Ok(_) => {}
                }
            }
        }
    }
    true
}

pub(crate) fn write_uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_uleb(bytes: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut result = 0u64;
    let mut shift = 0;
    loop {
        let byte = *bytes.get(*pos).ok_or("truncated LEB128")?;
        *pos += 1;
        result |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(result);
        }
        shift += 7;
        if shift > 63 {
            return Err("LEB128 too long".into());
        }
    }
}

fn push_export(out: &mut Vec<u8>, name: &str, kind: u8, index: u32) {
    write_uleb(out, name.len() as u64);
    out.extend_from_slice(name.as_bytes());
    out.push(kind);
    write_uleb(out, u64::from(index));
}

/// Rewrites the export section so that the function table, the memory and every mutable global
/// are exported. rustc does not export the table, but the IC invokes callbacks by table index
/// (interface spec, "Callbacks": `ic0.call_new` takes `reply_fun`, a table index); the globals
/// are exported so that the simulator can persist them between messages like the IC does.
/// Only the export section changes: the code section and all indices stay as they are.
pub(crate) fn rewrite_exports(wasm: &[u8]) -> Result<(Vec<u8>, Vec<String>), String> {
    use wasmparser::{ExternalKind, Parser, Payload, TypeRef};
    let mut imported_globals = 0u32;
    let mut imported_tables = 0u32;
    let mut imported_memories = 0u32;
    let mut defined_tables = 0u32;
    let mut defined_memories = 0u32;
    let mut mutable_globals = Vec::new();
    let mut exported = std::collections::HashSet::new();
    let mut export_range = None;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| format!("Wasm module is invalid: {e}"))? {
            Payload::ImportSection(reader) => {
                for import in reader {
                    match import.map_err(|e| e.to_string())?.ty {
                        TypeRef::Global(_) => imported_globals += 1,
                        TypeRef::Table(_) => imported_tables += 1,
                        TypeRef::Memory(_) => imported_memories += 1,
                        _ => {}
                    }
                }
            }
            Payload::TableSection(reader) => defined_tables = reader.count(),
            Payload::MemorySection(reader) => defined_memories = reader.count(),
            Payload::GlobalSection(reader) => {
                for (i, global) in reader.into_iter().enumerate() {
                    let global = global.map_err(|e| e.to_string())?;
                    if global.ty.mutable {
                        mutable_globals.push(imported_globals + i as u32);
                    }
                }
            }
            Payload::ExportSection(reader) => {
                export_range = Some(reader.range());
                for export in reader {
                    let export = export.map_err(|e| e.to_string())?;
                    let kind = match export.kind {
                        ExternalKind::Table => 1u8,
                        ExternalKind::Memory => 2,
                        _ => 0,
                    };
                    exported.insert((kind, export.index));
                }
            }
            _ => {}
        }
    }
    if imported_tables + imported_memories > 0 {
        return Err(
            "Wasm module has an invalid import section: only functions may be imported from ic0"
                .into(),
        );
    }
    let mut extra = Vec::new();
    let mut count = 0u64;
    if defined_tables > 0 && !exported.contains(&(1, 0)) {
        push_export(&mut extra, TABLE_EXPORT, 0x01, 0);
        count += 1;
    }
    if defined_memories > 0 && !exported.contains(&(2, 0)) {
        push_export(&mut extra, MEMORY_EXPORT, 0x02, 0);
        count += 1;
    }
    let mut global_names = Vec::new();
    for index in mutable_globals {
        let name = format!("{GLOBAL_EXPORT_PREFIX}{index}");
        push_export(&mut extra, &name, 0x03, index);
        global_names.push(name);
        count += 1;
    }
    let mut out = Vec::with_capacity(wasm.len() + extra.len() + 16);
    match export_range {
        Some(range) => {
            // Walk back from the payload to the section header: id byte and size LEB.
            let mut pos = range.start;
            let existing = read_uleb(wasm, &mut pos)?;
            let entries = &wasm[pos..range.end];
            let mut payload = Vec::with_capacity(entries.len() + extra.len() + 5);
            write_uleb(&mut payload, existing + count);
            payload.extend_from_slice(entries);
            payload.extend_from_slice(&extra);
            let header_start = section_header_start(wasm, range.start)?;
            out.extend_from_slice(&wasm[..header_start]);
            out.push(7);
            write_uleb(&mut out, payload.len() as u64);
            out.extend_from_slice(&payload);
            out.extend_from_slice(&wasm[range.end..]);
        }
        None => {
            let mut payload = Vec::new();
            write_uleb(&mut payload, count);
            payload.extend_from_slice(&extra);
            let insert_at = export_insert_position(wasm)?;
            out.extend_from_slice(&wasm[..insert_at]);
            out.push(7);
            write_uleb(&mut out, payload.len() as u64);
            out.extend_from_slice(&payload);
            out.extend_from_slice(&wasm[insert_at..]);
        }
    }
    Ok((out, global_names))
}

/// Finds where the section whose payload starts at `payload_start` begins, by walking the
/// section headers from the module header.
fn section_header_start(wasm: &[u8], payload_start: usize) -> Result<usize, String> {
    let mut pos = 8;
    while pos < wasm.len() {
        let start = pos;
        pos += 1;
        let size = read_uleb(wasm, &mut pos)? as usize;
        if pos == payload_start {
            return Ok(start);
        }
        pos += size;
    }
    Err("export section not found".into())
}

/// Where a new export section goes: before the first section that must follow it (start,
/// element, data count, code, data), skipping custom sections' positions.
fn export_insert_position(wasm: &[u8]) -> Result<usize, String> {
    let mut pos = 8;
    while pos < wasm.len() {
        let start = pos;
        let id = wasm[pos];
        pos += 1;
        let size = read_uleb(wasm, &mut pos)? as usize;
        if matches!(id, 8..=12) {
            return Ok(start);
        }
        pos += size;
    }
    Ok(wasm.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uleb_round_trips() {
        for v in [0u64, 1, 127, 128, 300, 1 << 32, u64::MAX >> 1] {
            let mut buf = Vec::new();
            write_uleb(&mut buf, v);
            let mut pos = 0;
            assert_eq!(read_uleb(&buf, &mut pos).unwrap(), v);
            assert_eq!(pos, buf.len());
        }
    }

    #[test]
    fn gzip_modules_are_decoded_and_garbage_rejected() {
        use std::io::Write;
        let wasm = b"\0asm\x01\0\0\0".to_vec();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&wasm).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(decode_wasm(&gz).unwrap(), wasm);
        assert_eq!(decode_wasm(&wasm).unwrap(), wasm);
        assert!(decode_wasm(b"hello").is_err());
    }
}
