//! A canister module read from a file and checked before anything is sent to the IC.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::backend::mgmt::MAX_CHUNK_SIZE;

/// Wasm module magic and version 1 (WebAssembly core spec, "Binary format: modules").
pub(crate) const WASM_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Largest uncompressed module the IC accepts (IC interface spec, "ic_install_code": 100 MiB
/// for chunked installs).
pub const MAX_WASM_SIZE: u64 = 100 * 1024 * 1024;
/// A chunk store holds at most 100 chunks (IC interface spec, "ic_upload_chunk").
pub const MAX_CHUNKS: usize = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WasmError {
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path} is not a wasm module (no \\0asm version 1 header, plain or gzipped)")]
    NotWasm { path: String },
    #[error("{path} is gzip but its content is not a wasm module")]
    GzipNotWasm { path: String },
    #[error("{path} is larger than the IC's limit of {MAX_WASM_SIZE} bytes uncompressed")]
    TooLarge { path: String },
    #[error("sha256 of {path} is {actual}, not the expected {expected}")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("expected sha256 `{0}` is not 64 hex digits")]
    BadHash(String),
}

/// A checked module: the bytes as installed (gzip stays gzip: the IC decompresses it and
/// reports the hash of what was uploaded as the module hash).
#[derive(Debug, Clone)]
pub struct WasmModule {
    pub bytes: Vec<u8>,
    pub sha256: [u8; 32],
    pub gzipped: bool,
}

impl WasmModule {
    /// Reads `path`, checks the wasm header (also inside gzip), the size limit and, when
    /// given, the expected sha256 (hex).
    pub fn read(path: &Path, expected_sha256: Option<&str>) -> Result<Self, WasmError> {
        let expected = expected_sha256.map(parse_sha256).transpose()?;
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| WasmError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        Self::from_bytes(bytes, &shown, expected)
    }

    pub fn from_bytes(
        bytes: Vec<u8>,
        path: &str,
        expected: Option<[u8; 32]>,
    ) -> Result<Self, WasmError> {
        if bytes.len() as u64 > MAX_WASM_SIZE {
            return Err(WasmError::TooLarge { path: path.into() });
        }
        let gzipped = bytes.starts_with(&GZIP_MAGIC);
        if gzipped {
            check_gzip(&bytes, path)?;
        } else if !bytes.starts_with(&WASM_HEADER) {
            return Err(WasmError::NotWasm { path: path.into() });
        }
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(expected) = expected {
            if expected != sha256 {
                return Err(WasmError::HashMismatch {
                    path: path.into(),
                    expected: hex::encode(expected),
                    actual: hex::encode(sha256),
                });
            }
        }
        Ok(Self {
            bytes,
            sha256,
            gzipped,
        })
    }

    /// The upload chunks, each at most 1 MiB.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.bytes.chunks(MAX_CHUNK_SIZE)
    }

    pub fn chunk_count(&self) -> usize {
        self.bytes.len().div_ceil(MAX_CHUNK_SIZE)
    }

    /// The content of the canister metadata section `name` (a custom section named
    /// `icp:public <name>` or `icp:private <name>`; interface spec, "Canister module format").
    pub fn metadata(&self, name: &str) -> Option<Vec<u8>> {
        let mut wasm = Vec::new();
        let plain = if self.gzipped {
            flate2::read::GzDecoder::new(&self.bytes[..])
                .take(MAX_WASM_SIZE)
                .read_to_end(&mut wasm)
                .ok()?;
            &wasm[..]
        } else {
            &self.bytes[..]
        };
        let found = custom_sections(plain)
            .find(|(section, _)| {
                section.strip_prefix("icp:public ") == Some(name)
                    || section.strip_prefix("icp:private ") == Some(name)
            })
            .map(|(_, content)| content.to_vec());
        found
    }
}

/// The custom sections (id 0) of a wasm module, as (name, content); iteration stops at the
/// first malformed section (WebAssembly core spec, "Binary format: sections").
fn custom_sections(wasm: &[u8]) -> impl Iterator<Item = (String, &[u8])> {
    let mut rest = wasm.get(WASM_HEADER.len()..).unwrap_or_default();
    std::iter::from_fn(move || loop {
        let (&id, after_id) = rest.split_first()?;
        let (size, after_size) = leb128_u32(after_id)?;
        let body = after_size.get(..size as usize)?;
        rest = &after_size[size as usize..];
        if id == 0 {
            let (name_len, after_len) = leb128_u32(body)?;
            let name = after_len.get(..name_len as usize)?;
            let content = &after_len[name_len as usize..];
            return Some((String::from_utf8_lossy(name).into_owned(), content));
        }
    })
}

/// An unsigned LEB128 number of at most 32 bits, and the bytes after it.
fn leb128_u32(bytes: &[u8]) -> Option<(u32, &[u8])> {
    let mut value = 0u32;
    for (i, &b) in bytes.iter().enumerate().take(5) {
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

/// Parses 64 hex digits.
pub fn parse_sha256(text: &str) -> Result<[u8; 32], WasmError> {
    let bytes = hex::decode(text.trim()).map_err(|_| WasmError::BadHash(text.into()))?;
    bytes
        .try_into()
        .map_err(|_| WasmError::BadHash(text.into()))
}

/// Decompresses to check the header and the uncompressed size limit without keeping the
/// output.
fn check_gzip(bytes: &[u8], path: &str) -> Result<(), WasmError> {
    let mut decoder = flate2::read::GzDecoder::new(bytes);
    let mut header = [0u8; 8];
    decoder
        .read_exact(&mut header)
        .map_err(|_| WasmError::GzipNotWasm { path: path.into() })?;
    if header != WASM_HEADER {
        return Err(WasmError::GzipNotWasm { path: path.into() });
    }
    let rest = std::io::copy(&mut decoder.take(MAX_WASM_SIZE), &mut std::io::sink())
        .map_err(|_| WasmError::GzipNotWasm { path: path.into() })?;
    if rest + 8 > MAX_WASM_SIZE {
        return Err(WasmError::TooLarge { path: path.into() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn module(len: usize) -> Vec<u8> {
        let mut m = WASM_HEADER.to_vec();
        m.resize(len, 7);
        m
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn plain_and_gzipped_wasm_are_accepted_and_hashed_as_given() {
        let plain = WasmModule::from_bytes(module(100), "a.wasm", None).unwrap();
        assert!(!plain.gzipped);
        assert_eq!(plain.sha256, <[u8; 32]>::from(Sha256::digest(module(100))));
        let gz = gzip(&module(100));
        let packed = WasmModule::from_bytes(gz.clone(), "a.wasm.gz", None).unwrap();
        assert!(packed.gzipped);
        assert_eq!(packed.sha256, <[u8; 32]>::from(Sha256::digest(&gz)));
    }

    #[test]
    fn non_wasm_is_refused_plain_and_inside_gzip() {
        assert_eq!(
            WasmModule::from_bytes(b"#!/bin/sh\n".to_vec(), "x", None).unwrap_err(),
            WasmError::NotWasm { path: "x".into() }
        );
        assert_eq!(
            WasmModule::from_bytes(gzip(b"hello world"), "x", None).unwrap_err(),
            WasmError::GzipNotWasm { path: "x".into() }
        );
        // Truncated gzip stream.
        let gz = gzip(&module(5000));
        assert!(WasmModule::from_bytes(gz[..12].to_vec(), "x", None).is_err());
    }

    #[test]
    fn expected_hash_must_match() {
        let bytes = module(64);
        let right: [u8; 32] = Sha256::digest(&bytes).into();
        assert!(WasmModule::from_bytes(bytes.clone(), "x", Some(right)).is_ok());
        let err = WasmModule::from_bytes(bytes, "x", Some([0; 32])).unwrap_err();
        assert!(matches!(err, WasmError::HashMismatch { .. }), "{err}");
        assert!(parse_sha256("abc").is_err());
        assert!(parse_sha256(&"zz".repeat(32)).is_err());
        assert_eq!(parse_sha256(&"01".repeat(32)).unwrap(), [1; 32]);
    }

    #[test]
    fn chunks_are_at_most_one_mebibyte() {
        let m = WasmModule::from_bytes(module(2 * MAX_CHUNK_SIZE + 5), "x", None).unwrap();
        let sizes: Vec<usize> = m.chunks().map(<[u8]>::len).collect();
        assert_eq!(sizes, vec![MAX_CHUNK_SIZE, MAX_CHUNK_SIZE, 5]);
        assert_eq!(m.chunk_count(), 3);
    }

    /// A module with custom sections `(name, content)` after a type section.
    fn with_sections(sections: &[(&str, &[u8])]) -> Vec<u8> {
        let mut m = WASM_HEADER.to_vec();
        m.extend([1, 1, 0]); // type section: no types
        for (name, content) in sections {
            let mut body = vec![name.len() as u8];
            body.extend(name.as_bytes());
            body.extend(*content);
            m.push(0);
            m.push(body.len() as u8);
            m.extend(body);
        }
        m
    }

    #[test]
    fn metadata_is_read_from_public_and_private_sections_plain_and_gzipped() {
        let service = b"service : { ping : () -> () }";
        let bytes = with_sections(&[("name", b"x"), ("icp:public candid:service", service)]);
        let plain = WasmModule::from_bytes(bytes.clone(), "x", None).unwrap();
        assert_eq!(plain.metadata("candid:service").unwrap(), service);
        assert_eq!(plain.metadata("candid:args"), None);
        let packed = WasmModule::from_bytes(gzip(&bytes), "x", None).unwrap();
        assert_eq!(packed.metadata("candid:service").unwrap(), service);
        let private = with_sections(&[("icp:private candid:service", service)]);
        let private = WasmModule::from_bytes(private, "x", None).unwrap();
        assert_eq!(private.metadata("candid:service").unwrap(), service);
        // A section whose size runs past the end ends the search instead of panicking.
        let mut cut = with_sections(&[("icp:public candid:service", service)]);
        cut.truncate(cut.len() - 3);
        let cut = WasmModule::from_bytes(cut, "x", None).unwrap();
        assert_eq!(cut.metadata("candid:service"), None);
    }
}
