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

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// Profile used for canister builds; defined in the workspace `Cargo.toml`.
pub const PROFILE: &str = "canister";
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
    static CACHE: OnceLock<Mutex<HashMap<String, Vec<u8>>>> = OnceLock::new();
    let name = variant_name(package, features);
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(bytes) = cache.get(&name) {
        return Ok(bytes.clone());
    }
    let bytes = match std::env::var_os("FLEET_WASM_DIR") {
        Some(dir) => {
            let path = Path::new(&dir).join(format!("{name}.wasm"));
            fs::read(&path).map_err(|e| format!("reading prebuilt {}: {e}", path.display()))?
        }
        None => build_uncached(package, features, &name)?,
    };
    cache.insert(name, bytes.clone());
    Ok(bytes)
}

/// Like [`build`], panicking with the build's error: for tests and benchmarks.
pub fn wasm(package: &str, features: &[&str]) -> Vec<u8> {
    build(package, features).unwrap_or_else(|e| panic!("building {package} {features:?}: {e}"))
}

fn build_uncached(package: &str, features: &[&str], name: &str) -> Result<Vec<u8>, String> {
    let root = workspace_root();
    let target_dir = root.join("target").join("wasm");
    let out_dir = root.join("target").join("wasm-out");
    fs::create_dir_all(&out_dir).map_err(|e| format!("creating {}: {e}", out_dir.display()))?;
    let lock_path = out_dir.join(".lock");
    let lock = File::create(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--quiet", "--locked", "-p", package])
        .args(["--target", TARGET, "--profile", PROFILE])
        .env("CARGO_TARGET_DIR", &target_dir)
        // Flags meant for the host test build must not leak into the wasm build.
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
        .join(PROFILE)
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
}
