//! The `fleet` binary as `cargo install --path fleet_cli` leaves it: run from an empty
//! directory outside the source tree, without cargo's environment, `fleet rehearse` still
//! finds its bundled canisters (embedded at build time) and rehearses a rollout to the end, with
//! no cargo to build them on the PATH.

use std::path::PathBuf;
use std::process::Command;

/// A fresh empty directory outside the workspace.
fn empty_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fleet-installed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating an empty directory");
    dir
}

#[test]
fn an_installed_fleet_rehearses_from_an_empty_directory() {
    let dir = empty_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleet"));
    cmd.current_dir(&dir)
        .args(["--json", "rehearse", "--users", "4", "--notes", "1"]);
    // Nothing of cargo's environment may help it: no CARGO, no manifest dir, no target dir.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CARGO") {
            cmd.env_remove(&key);
        }
    }
    // Nor a cargo on the PATH: a rehearsal that built its canisters at run time would fail.
    cmd.env_remove("FLEET_WASM_DIR").env("PATH", "");
    let out = cmd.output().expect("running fleet");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "fleet rehearse failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON document on stdout");
    assert_eq!(report["phase"], "completed", "{report:#}");
    assert_eq!(report["outcomes"]["upgraded"], 4, "{report:#}");
}
