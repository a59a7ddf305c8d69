//! Builds a canister crate of this workspace to `wasm32-unknown-unknown` and returns the module.
//!
//! Tests, benchmarks and `fleet rehearse` run the real canister wasm. Building it through one
//! function keeps a single shared target dir (`target/wasm`), so the canister dependencies are
//! compiled once for all test binaries, and each variant (a set of cargo features) is copied to
//! its own file under `target/wasm-out` while a file lock is held, so that concurrent test
//! processes building different variants of one crate never read each other's output.
//!
//! Set `FLEET_WASM_DIR` to a folder of prebuilt modules named `<crate>[-<feature>+<feature>].wasm`
//! to skip the build (for example on a machine without the wasm32 target).
//!
//! [`release`] builds the modules that are deployed (by dfx, or published as a release): the
//! small `canister-release` profile, with the crate's candid interface embedded as the public
//! `candid:service` metadata, so that tools read the interface from the module. The tests keep
//! the faster-to-build `canister` profile.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Profile used for canister builds; defined in the workspace `Cargo.toml`.
pub const PROFILE: &str = "canister";
/// Profile of the modules that are deployed: optimised for size, one codegen unit, LTO.
pub const RELEASE_PROFILE: &str = "canister-release";
/// The metadata section that carries a module's candid interface (interface spec, "Canister
/// module format": `icp:public <name>` custom sections).
pub const CANDID_SECTION: &str = "icp:public candid:service";
const TARGET: &str = "wasm32-unknown-unknown";

/// The workspace root (the parent of this crate's folder).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("wasm_build lives one level below the workspace root")
        .to_path_buf()
}

/// File name stem of a variant: `user_canister` or `user_canister-v2+fault_health`.
pub fn variant_name(package: &str, features: &[&str]) -> String {
    let mut features: Vec<&str> = features.to_vec();
    features.sort_unstable();
    features.dedup();
    if features.is_empty() {
        package.to_string()
    } else {
        format!("{package}-{}", features.join("+"))
    }
}

/// Builds `package` with `features` (once per process) and returns the wasm module bytes.
pub fn build(package: &str, features: &[&str]) -> Result<Vec<u8>, String> {
    build_with_profile(package, features, PROFILE)
}

/// Builds `package` with `features` and cargo profile `profile` (once per process). Prebuilt
/// modules (`FLEET_WASM_DIR`) stand for the [`PROFILE`] build only.
pub fn build_with_profile(
    package: &str,
    features: &[&str],
    profile: &str,
) -> Result<Vec<u8>, String> {
    /// Modules built by this process, by (variant name, profile).
    type Built = HashMap<(String, String), Vec<u8>>;
    static CACHE: OnceLock<Mutex<Built>> = OnceLock::new();
    let name = variant_name(package, features);
    let key = (name.clone(), profile.to_string());
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(bytes) = cache.get(&key) {
        return Ok(bytes.clone());
    }
    let bytes = match std::env::var_os("FLEET_WASM_DIR") {
        Some(dir) if profile == PROFILE => {
            let path = Path::new(&dir).join(format!("{name}.wasm"));
            fs::read(&path).map_err(|e| format!("reading prebuilt {}: {e}", path.display()))?
        }
        _ => build_uncached(package, features, &name, profile)?,
    };
    cache.insert(key, bytes.clone());
    Ok(bytes)
}

/// The deployable module of `package`: built with [`RELEASE_PROFILE`], shrunk by binaryen's
/// `wasm-opt -Oz` ([`WASM_OPT`]), with the crate's `<package>/<package>.did` embedded as
/// [`CANDID_SECTION`] ([`service_text`]).
pub fn release(package: &str) -> Result<Vec<u8>, String> {
    let did_path = did_file(package);
    let did = fs::read_to_string(&did_path)
        .map_err(|e| format!("reading {}: {e}", did_path.display()))?;
    let did = service_text(&did);
    let wasm = build_with_profile(package, &[], RELEASE_PROFILE)?;
    let out_dir = workspace_root()
        .join("target")
        .join("wasm-out")
        .join(RELEASE_PROFILE);
    let wasm = optimize(&wasm, &out_dir.join(format!("{package}.wasm")))?;
    Ok(with_custom_section(&wasm, CANDID_SECTION, did.as_bytes()))
}

/// The `.did` text as embedded in a deployable module: the same interface without its comment
/// lines, which tools reading `candid:service` do not need and the module cannot spare (the
/// manager's documentation comments are half its `.did`, and every byte is installed).
pub fn service_text(did: &str) -> String {
    did.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Names binaryen's `wasm-opt` when it is not `wasm-opt` on the `PATH`.
pub const WASM_OPT: &str = "WASM_OPT";

/// The wasm features rustc's `wasm32-unknown-unknown` emits, which wasm-opt must accept (the
/// stripped module has no `target_features` section to detect them from).
const WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-nontrapping-float-to-int",
    "--enable-multivalue",
    "--enable-reference-types",
];

/// binaryen from npm, when no `wasm-opt` is installed: the same optimiser compiled to
/// JavaScript, run by Node (slower, but only Node and the npm registry are needed).
const NPM_BINARYEN: &str = "binaryen@125.0.0";

/// `wasm-opt -Oz` over `wasm` (written to `input`, read back from beside it): rustc's size
/// optimisation alone leaves the manager a fifth larger, and the gzipped module must fit a message.
/// Runs `$WASM_OPT`, else `wasm-opt` from the `PATH`, else [`NPM_BINARYEN`]'s through `npx`.
fn optimize(wasm: &[u8], input: &Path) -> Result<Vec<u8>, String> {
    let output = input.with_extension("opt.wasm");
    fs::write(input, wasm).map_err(|e| format!("writing {}: {e}", input.display()))?;
    let with_args = |mut cmd: Command| {
        cmd.arg("-Oz")
            .args(WASM_FEATURES)
            .arg(input)
            .arg("-o")
            .arg(&output);
        cmd
    };
    let run = match std::env::var_os(WASM_OPT) {
        Some(tool) => with_args(Command::new(tool)).output(),
        None => match with_args(Command::new("wasm-opt")).output() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut npx = Command::new("npx");
                npx.args(["--yes", "--package", NPM_BINARYEN, "--", "wasm-opt"]);
                with_args(npx).output()
            }
            other => other,
        },
    }
    .map_err(|e| {
        format!("running binaryen's wasm-opt (install binaryen or Node, or set {WASM_OPT}): {e}")
    })?;
    if !run.status.success() {
        return Err(format!(
            "wasm-opt -Oz {} failed:\n{}",
            input.display(),
            String::from_utf8_lossy(&run.stderr)
        ));
    }
    fs::read(&output).map_err(|e| format!("reading {}: {e}", output.display()))
}

/// The checked-in candid interface of a canister crate.
pub fn did_file(package: &str) -> PathBuf {
    workspace_root()
        .join(package)
        .join(format!("{package}.did"))
}

/// `wasm` with a custom section `name` holding `payload` appended. A custom section may come
/// anywhere in a module, and runtimes ignore those they do not know.
pub fn with_custom_section(wasm: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(name.len() + payload.len() + 10);
    leb128(&mut body, name.len() as u64);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = Vec::with_capacity(wasm.len() + body.len() + 10);
    out.extend_from_slice(wasm);
    out.push(0); // custom section id
    leb128(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Like [`build`], panicking with the build's error: for tests and benchmarks.
pub fn wasm(package: &str, features: &[&str]) -> Vec<u8> {
    build(package, features).unwrap_or_else(|e| panic!("building {package} {features:?}: {e}"))
}

fn build_uncached(
    package: &str,
    features: &[&str],
    name: &str,
    profile: &str,
) -> Result<Vec<u8>, String> {
    let root = workspace_root();
    let target_dir = root.join("target").join("wasm");
    let mut out_dir = root.join("target").join("wasm-out");
    if profile != PROFILE {
        out_dir = out_dir.join(profile);
    }
    fs::create_dir_all(&out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let lock_path = out_dir.join(".lock");
    let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--quiet", "--locked", "-p", package])
        .args(["--target", TARGET, "--profile", profile])
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags and wrappers meant for the host build (clippy's among them, when a build
        // script builds the canisters under `cargo clippy`) must not leak into the wasm build.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .env_remove("CLIPPY_CONF_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("CARGO_MAKEFLAGS")
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS");
    if !features.is_empty() {
        cmd.args(["--features", &features.join(",")]);
    }
    let output = cmd
        .output()
        .map_err(|e| format!("running cargo build for {package}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "cargo build -p {package} --target {TARGET} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let artifact = target_dir
        .join(TARGET)
        .join(profile)
        .join(format!("{}.wasm", package.replace('-', "_")));
    let bytes = fs::read(&artifact).map_err(|e| format!("reading {}: {e}", artifact.display()))?;
    let out = out_dir.join(format!("{name}.wasm"));
    fs::write(&out, &bytes).map_err(|e| format!("writing {}: {e}", out.display()))?;
    drop(lock);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_are_order_independent() {
        assert_eq!(variant_name("uc", &[]), "uc");
        assert_eq!(variant_name("uc", &["v2", "a"]), "uc-a+v2");
        assert_eq!(variant_name("uc", &["a", "v2", "a"]), "uc-a+v2");
    }

    #[test]
    fn a_custom_section_is_appended_with_its_name_and_size() {
        let header = b"\0asm\x01\0\0\0";
        let out = with_custom_section(header, "icp:public x", &[7; 200]);
        assert_eq!(&out[..8], header);
        // id 0, size 1 + 12 + 200 = 213 as LEB128 (0xd5 0x01), name length 12, name, payload.
        assert_eq!(&out[8..12], &[0, 0xd5, 0x01, 12]);
        assert_eq!(&out[12..24], b"icp:public x");
        assert_eq!(&out[24..], &[7; 200]);
    }
}
