//! Builds the canisters `fleet rehearse` bundles (with the `sim` feature) and embeds them in the
//! binary, so that an installed `fleet` rehearses from any directory, on a machine without cargo
//! or this source tree. The modules are built through `wasm_build` into the workspace's own
//! `target/wasm` (not cargo's target dir for this build, whose lock the outer cargo holds), the
//! same `canister` builds the tests run.

use std::path::PathBuf;

/// Every module the rehearsal may need: the releases with and without the test-only
/// `fault_switch` (`--faults`), the manager, and the store canister (`--subnets`, and the
/// store module `fleet subnets add` sets when the manager has none).
#[cfg(feature = "sim")]
const BUNDLED: &[(&str, &[&str])] = &[
    ("user_canister", &[]),
    ("user_canister", &["v2"]),
    ("user_canister", &["fault_switch"]),
    ("user_canister", &["v2", "fault_switch"]),
    ("fleet_manager", &[]),
    ("store_canister", &[]),
];

/// The crates whose change changes a bundled module.
#[cfg(feature = "sim")]
const SOURCES: &[&str] = &[
    "fleet_manager",
    "user_canister",
    "store_canister",
    "fleet_api",
    "fleet_core",
    "rollout_core",
    "wasm_store",
    "Cargo.toml",
    "Cargo.lock",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FLEET_WASM_DIR");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut table = String::from("&[\n");
    embed(&out_dir, &mut table);
    table.push(']');
    std::fs::write(out_dir.join("bundled.rs"), table).expect("writing bundled.rs");
}

#[cfg(feature = "sim")]
fn embed(out_dir: &std::path::Path, table: &mut String) {
    use std::fmt::Write as _;
    let root = wasm_build::workspace_root();
    for source in SOURCES {
        println!("cargo:rerun-if-changed={}", root.join(source).display());
    }
    for (package, features) in BUNDLED {
        let name = wasm_build::variant_name(package, features);
        let wasm = wasm_build::build(package, features).unwrap_or_else(|e| {
            // A build script reports failure by panicking; the message is cargo's error.
            panic!("building the bundled {name} for `fleet rehearse`: {e}")
        });
        let path = out_dir.join(format!("{name}.wasm"));
        std::fs::write(&path, wasm).expect("writing a bundled module");
        writeln!(
            table,
            "    ({name:?}, include_bytes!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
}

#[cfg(not(feature = "sim"))]
fn embed(_: &std::path::Path, _: &mut String) {}
