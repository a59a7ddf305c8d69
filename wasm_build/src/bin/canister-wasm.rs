//! `canister-wasm <package> <out.wasm>`: writes the deployable module of a canister crate of
//! this workspace (`wasm_build::release`: the small `canister-release` profile, candid interface
//! embedded). dfx runs it as the build command of its `custom` canisters.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [package, out] = args.as_slice() else {
        eprintln!("usage: canister-wasm <package> <out.wasm>");
        return ExitCode::from(2);
    };
    let out = PathBuf::from(out);
    let written = wasm_build::release(package).and_then(|wasm| {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::write(&out, &wasm).map_err(|e| format!("writing {}: {e}", out.display()))?;
        Ok(wasm.len())
    });
    match written {
        Ok(bytes) => {
            eprintln!("{package}: {bytes} bytes -> {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("canister-wasm: {e}");
            ExitCode::FAILURE
        }
    }
}
