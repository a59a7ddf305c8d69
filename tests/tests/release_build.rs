//! The modules dfx deploys and operators publish (`wasm_build::release`, run by dfx's build
//! command): small enough, gzipped as dfx sends them, to install in one message, with their
//! candid interface readable as metadata; and the dfx projects that build them agree with the
//! workspace.

use std::path::Path;

use candid::{encode_one, Principal};
use fleet_api::manager::ManagerInitArg;
use fleet_api::user::{UserCanisterArg, UserInitArg};
use fleet_tests::ic_sim::IcSim;
use fleet_tests::{sha256, user};
use serde_json::Value;

const MIB: usize = 1024 * 1024;

/// Installs `wasm` with `arg` on a fresh simulator and reads its `candid:service` metadata as
/// a stranger would: public metadata is readable by anyone.
fn candid_metadata(wasm: Vec<u8>, arg: Vec<u8>) -> Vec<u8> {
    let sim = IcSim::new();
    let id = sim.create_canister_with_settings(Some(user(1)), None);
    sim.install_canister(id, wasm, arg, Some(user(1)));
    sim.canister_metadata(id, Some(Principal::anonymous()), "candid:service")
        .expect("public candid:service metadata")
}

/// The argument each canister is installed with: the manager's default settings, a user
/// canister's owner and recovery principal, a store's manager.
fn install_arg(package: &str, wasm: &[u8]) -> Vec<u8> {
    let arg = match package {
        "user_canister" => encode_one(UserCanisterArg::Init(UserInitArg {
            owner: user(2),
            recovery_principal: user(3),
            manager: user(4),
            release_sha256: sha256(wasm),
        })),
        "store_canister" => encode_one(fleet_api::store_canister::StoreInit { manager: user(4) }),
        _ => encode_one(Option::<ManagerInitArg>::None),
    };
    arg.expect("encoding the init argument")
}

fn release(package: &str) -> Vec<u8> {
    wasm_build::release(package).unwrap_or_else(|e| panic!("release build of {package}: {e}"))
}

/// What dfx sends with `"gzip": true` (both dfx.json files set it).
fn gzip(wasm: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(wasm).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// The install message carries the module as dfx sends it, gzipped, and must fit the IC's 2 MiB
/// message limit; the replica decompresses it and accepts at most 30 MiB of module with at
/// most 10 MiB of code (dfinity/ic `rs/embedders/src/wasm_utils`: `MAX_WASM_MODULE_SIZE_BYTES`
/// and the code section limit). The whole module is held under the code limit here.
#[test]
fn release_modules_fit_one_message_gzipped_and_carry_their_candid_interface() {
    for (package, limit) in [
        ("fleet_manager", 2 * MIB),
        ("user_canister", MIB),
        ("store_canister", MIB),
    ] {
        let wasm = release(package);
        let packed = gzip(&wasm);
        eprintln!(
            "{package}: {} bytes, {} gzipped (limit {limit} gzipped, {} uncompressed)",
            wasm.len(),
            packed.len(),
            10 * MIB
        );
        assert!(
            packed.len() <= limit,
            "{package} is {} bytes gzipped, over {limit}",
            packed.len()
        );
        assert!(wasm.len() <= 10 * MIB, "{package} is {} bytes", wasm.len());
        let did = std::fs::read_to_string(wasm_build::did_file(package)).expect("the .did file");
        let did = wasm_build::service_text(&did).into_bytes();
        assert!(
            did.windows(8).any(|w| w == b"service "),
            "the service is kept"
        );
        let arg = install_arg(package, &packed);
        assert_eq!(
            candid_metadata(packed, arg),
            did,
            "{package}'s candid:service, installed gzipped"
        );
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks one dfx project: it declares exactly `package`, built by `canister-wasm` into the
/// `wasm` path it installs, with the crate's checked-in candid file.
fn check_project(dir: &Path, package: &str) -> Value {
    let config = read_json(&dir.join("dfx.json"));
    let canisters = config["canisters"].as_object().expect("canisters");
    let names: Vec<&String> = canisters.keys().collect();
    assert_eq!(names, vec![package], "{}: canisters", dir.display());
    let c = &canisters[package];
    assert_eq!(c["type"], "custom");
    assert_eq!(
        c["gzip"], true,
        "{package}: dfx installs it gzipped, as the size check assumes"
    );
    let wasm = c["wasm"].as_str().expect("wasm path");
    let build = c["build"].as_str().expect("build command");
    assert!(
        build.ends_with(&format!("--bin canister-wasm -- {package} {wasm}")),
        "{package}: the build command writes what dfx installs: {build}"
    );
    let candid = dir.join(c["candid"].as_str().expect("candid path"));
    assert_eq!(
        candid.canonicalize().expect("the candid file exists"),
        wasm_build::did_file(package).canonicalize().expect(".did"),
        "{package}: dfx's candid file is the crate's"
    );
    c.clone()
}

#[test]
fn dfx_deploys_the_manager_and_only_builds_the_user_canister() {
    let root = wasm_build::workspace_root();
    // `dfx deploy` at the root knows only the manager, with its init argument, so a plain
    // deploy never tries to install a user canister without one.
    let manager = check_project(&root, "fleet_manager");
    assert_eq!(manager["init_arg"], "(null)");
    // The user canister is a project of its own, built with `dfx build` there.
    let user = check_project(&root.join("user_canister"), "user_canister");
    assert!(user.get("init_arg").is_none());
}
