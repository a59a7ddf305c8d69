//! The user canister on ic_sim, with its real wasm: owner-only notes, install and upgrade
//! arguments, the v1 → v2 schema migration, and the fault variants the upgrade pipeline relies on.

use candid::{encode_args, encode_one, Principal};
use fleet_api::user::method::{
    Delete, Get, GetFleetHealth, Info, List, Put, ReleaseSha256, Version,
};
use fleet_api::user::{
    FleetHealth, ListNotesArg, Note, NoteEntry, NoteError, PutNoteArg, UserCanisterArg,
    UserCanisterInfo, UserInitArg, UserUpgradeArg, MAX_KEY_LEN, MAX_TEXT_LEN,
};
use fleet_tests::{call_on, refused_at_ingress};
use ic_sim::{CanisterId, IcSim};
use sha2::{Digest, Sha256};

const V1: &[&str] = &[];
const V2: &[&str] = &["v2"];

fn principal(n: u8) -> Principal {
    let mut bytes = [n; 29];
    bytes[28] = 0x02;
    Principal::from_slice(&bytes)
}

fn owner() -> Principal {
    principal(1)
}

fn recovery() -> Principal {
    principal(2)
}

fn manager() -> Principal {
    principal(3)
}

fn stranger() -> Principal {
    principal(4)
}

fn wasm(features: &[&str]) -> Vec<u8> {
    wasm_build::wasm("user_canister", features)
}

fn sha(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

fn init_arg(module: &[u8]) -> Vec<u8> {
    encode_one(UserCanisterArg::Init(UserInitArg {
        owner: owner(),
        recovery_principal: recovery(),
        manager: manager(),
        release_sha256: sha(module),
    }))
    .unwrap()
}

fn upgrade_arg(module: &[u8]) -> Vec<u8> {
    encode_one(UserCanisterArg::Upgrade(UserUpgradeArg {
        release_sha256: sha(module),
    }))
    .unwrap()
}

/// A canister running `features`, installed as the manager would, holding no notes.
fn install(features: &[&str]) -> (IcSim, CanisterId) {
    let sim = IcSim::new();
    let id = sim.create_canister();
    sim.add_cycles(id, 10_000_000_000_000);
    let module = wasm(features);
    sim.install_canister(id, module.clone(), init_arg(&module), None);
    (sim, id)
}

fn put(
    sim: &IcSim,
    id: CanisterId,
    caller: Principal,
    key: &str,
    text: &str,
) -> Result<(), NoteError> {
    let arg = PutNoteArg {
        key: key.to_string(),
        text: text.to_string(),
    };
    call_on::<Put>(sim, id, caller, (arg,)).into_result()
}

fn get(
    sim: &IcSim,
    id: CanisterId,
    caller: Principal,
    key: &str,
) -> Result<Option<Note>, NoteError> {
    call_on::<Get>(sim, id, caller, (key.to_string(),)).into_result()
}

fn list(sim: &IcSim, id: CanisterId, after: Option<&str>, limit: u32) -> Vec<NoteEntry> {
    let arg = ListNotesArg {
        start_after: after.map(str::to_string),
        limit,
    };
    call_on::<List>(sim, id, owner(), (arg,))
        .into_result()
        .unwrap()
}

fn delete(sim: &IcSim, id: CanisterId, caller: Principal, key: &str) -> Result<(), NoteError> {
    call_on::<Delete>(sim, id, caller, (key.to_string(),)).into_result()
}

fn health(sim: &IcSim, id: CanisterId) -> FleetHealth {
    call_on::<GetFleetHealth>(sim, id, manager(), ())
}

fn info(sim: &IcSim, id: CanisterId) -> UserCanisterInfo {
    call_on::<Info>(sim, id, stranger(), ())
}

fn version(sim: &IcSim, id: CanisterId) -> String {
    call_on::<Version>(sim, id, stranger(), ())
}

/// The checksum `fleet_health` documents, computed independently: sha256 over
/// `len(key) u32 LE | key | len(text) u32 LE | text` in key order.
fn expected_checksum(notes: &[(&str, &str)]) -> Vec<u8> {
    let mut notes = notes.to_vec();
    notes.sort();
    let mut hasher = Sha256::new();
    for (key, text) in notes {
        hasher.update((key.len() as u32).to_le_bytes());
        hasher.update(key.as_bytes());
        hasher.update((text.len() as u32).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    hasher.finalize().to_vec()
}

const NOTES: [(&str, &str); 4] = [
    ("groceries", "milk, eggs"),
    ("ideas/1", "a canister per user"),
    ("ideas/2", "ünïcödé ✓"),
    ("todo", "upgrade the fleet"),
];

fn with_notes(features: &[&str]) -> (IcSim, CanisterId) {
    let (sim, id) = install(features);
    for (key, text) in NOTES {
        put(&sim, id, owner(), key, text).unwrap();
    }
    (sim, id)
}

#[test]
fn v1_installs_with_the_init_argument_and_serves_its_owner() {
    let (sim, id) = with_notes(V1);
    let module = wasm(V1);
    let info = info(&sim, id);
    assert_eq!(info.owner, owner());
    assert_eq!(info.recovery_principal, recovery());
    assert_eq!(info.manager, manager());
    assert_eq!(info.release_sha256, sha(&module));
    assert_eq!(info.version, "1.0.0");
    assert_eq!(info.schema_version, 1);
    assert_eq!(info.upgraded_at, None);
    assert_eq!(version(&sim, id), "1.0.0");
    let release = call_on::<ReleaseSha256>(&sim, id, stranger(), ());
    assert_eq!(release.into_vec(), sha(&module));

    assert_eq!(
        get(&sim, id, owner(), "todo").unwrap(),
        Some(Note {
            text: "upgrade the fleet".into(),
            created_at: None,
            updated_at: None
        })
    );
    assert_eq!(get(&sim, id, owner(), "missing").unwrap(), None);
    let keys = |page: Vec<NoteEntry>| page.into_iter().map(|e| e.key).collect::<Vec<_>>();
    assert_eq!(keys(list(&sim, id, None, 2)), ["groceries", "ideas/1"]);
    assert_eq!(
        keys(list(&sim, id, Some("ideas/1"), 10)),
        ["ideas/2", "todo"]
    );

    let report = health(&sim, id);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.version, "1.0.0");
    assert_eq!(report.schema_version, 1);
    assert_eq!(report.records, NOTES.len() as u64);
    assert_eq!(report.checksum, expected_checksum(&NOTES));

    delete(&sim, id, owner(), "todo").unwrap();
    assert_eq!(health(&sim, id).checksum, expected_checksum(&NOTES[..3]));
}

#[test]
fn non_owners_and_bad_input_are_refused_without_changes() {
    let (sim, id) = with_notes(V1);
    let before = health(&sim, id);
    for caller in [stranger(), Principal::anonymous(), recovery(), manager()] {
        // Writes from anyone but the owner are dropped before they are paid for; reads are
        // answered with the typed refusal.
        let arg = PutNoteArg {
            key: "todo".into(),
            text: "overwritten".into(),
        };
        refused_at_ingress::<Put>(&sim, id, caller, (arg,));
        refused_at_ingress::<Delete>(&sim, id, caller, ("todo".into(),));
        assert_eq!(
            get(&sim, id, caller, "todo"),
            Err(NoteError::NotOwner { caller })
        );
    }
    let long_key = "k".repeat(MAX_KEY_LEN + 1);
    assert_eq!(
        put(&sim, id, owner(), &long_key, "x"),
        Err(NoteError::KeyTooLong {
            len: MAX_KEY_LEN as u64 + 1,
            max: MAX_KEY_LEN as u64
        })
    );
    assert_eq!(
        put(&sim, id, owner(), "todo", &"t".repeat(MAX_TEXT_LEN + 1)),
        Err(NoteError::TextTooLong {
            len: MAX_TEXT_LEN as u64 + 1,
            max: MAX_TEXT_LEN as u64
        })
    );
    assert_eq!(put(&sim, id, owner(), "", "x"), Err(NoteError::EmptyKey));
    assert_eq!(
        delete(&sim, id, owner(), "nope"),
        Err(NoteError::NotFound { key: "nope".into() })
    );
    assert_eq!(health(&sim, id), before);
}

#[test]
fn install_refuses_an_anonymous_owner_and_an_upgrade_argument() {
    let sim = IcSim::new();
    let id = sim.create_canister();
    sim.add_cycles(id, 10_000_000_000_000);
    let module = wasm(V1);
    let anonymous_owner = encode_one(UserCanisterArg::Init(UserInitArg {
        owner: Principal::anonymous(),
        recovery_principal: recovery(),
        manager: manager(),
        release_sha256: sha(&module),
    }))
    .unwrap();
    for arg in [
        anonymous_owner,
        upgrade_arg(&module),
        encode_args(()).unwrap(),
    ] {
        let mode = ic_sim::management_canister::CanisterInstallMode::Install;
        assert!(sim
            .install_code(id, mode, module.clone(), arg, None)
            .is_err());
    }
    let status = sim.canister_status(id, None).unwrap();
    assert_eq!(status.module_hash, None, "a refused install leaves no code");
}

#[test]
fn upgrade_v1_to_v2_migrates_the_notes_and_keeps_their_content() {
    let (sim, id) = with_notes(V1);
    let before = health(&sim, id);
    let v2 = wasm(V2);
    sim.upgrade_canister(id, v2.clone(), upgrade_arg(&v2), None)
        .unwrap();

    let after = health(&sim, id);
    assert!(after.ok, "{after:?}");
    assert_eq!(after.version, "2.0.0");
    assert_eq!(after.schema_version, 2);
    assert_eq!(after.records, before.records);
    assert_eq!(after.checksum, before.checksum);
    assert_eq!(after.checksum, expected_checksum(&NOTES));
    let info = info(&sim, id);
    assert_eq!(info.schema_version, 2);
    assert_eq!(info.release_sha256, sha(&v2));
    assert_eq!(info.owner, owner());
    assert!(info.upgraded_at.is_some());

    // Schema 2 notes carry times: the migration's for old notes, the write's for new ones.
    let migrated = get(&sim, id, owner(), "ideas/2").unwrap().unwrap();
    assert_eq!(migrated.text, "ünïcödé ✓");
    assert_eq!(migrated.created_at, info.upgraded_at);
    assert_eq!(migrated.updated_at, info.upgraded_at);
    sim.advance_time(std::time::Duration::from_secs(60));
    put(&sim, id, owner(), "ideas/2", "edited").unwrap();
    let edited = get(&sim, id, owner(), "ideas/2").unwrap().unwrap();
    assert_eq!(edited.created_at, migrated.created_at);
    assert!(edited.updated_at > migrated.updated_at);
    // Writes stay owner-only after the upgrade.
    let arg = PutNoteArg {
        key: "x".into(),
        text: "y".into(),
    };
    refused_at_ingress::<Put>(&sim, id, stranger(), (arg,));
}

#[test]
fn upgrade_without_an_argument_keeps_the_state_and_forgets_the_release_hash() {
    let (sim, id) = with_notes(V1);
    let before = health(&sim, id);
    sim.upgrade_canister(id, wasm(V2), encode_args(()).unwrap(), None)
        .unwrap();
    let after = health(&sim, id);
    assert_eq!(
        (after.records, after.checksum),
        (before.records, before.checksum.clone())
    );
    assert_eq!(info(&sim, id).release_sha256, Vec::<u8>::new());
    // The same module again (schema 2 → 2) changes nothing either.
    sim.upgrade_canister(id, wasm(V2), encode_args(()).unwrap(), None)
        .unwrap();
    assert_eq!(health(&sim, id).checksum, before.checksum);
}

#[test]
fn post_upgrade_trap_leaves_v1_and_its_notes_in_place() {
    let (sim, id) = with_notes(V1);
    let before = health(&sim, id);
    let faulty = wasm(&["v2", "fault_post_upgrade_trap"]);
    let err = sim
        .upgrade_canister(id, faulty.clone(), upgrade_arg(&faulty), None)
        .unwrap_err();
    assert!(
        err.reject_message.contains("fault_post_upgrade_trap"),
        "{err:?}"
    );
    assert_eq!(version(&sim, id), "1.0.0");
    assert_eq!(health(&sim, id), before);
    assert_eq!(info(&sim, id).release_sha256, sha(&wasm(V1)));
    // Nothing was half-migrated: a good upgrade still finds schema-1 notes.
    let v2 = wasm(V2);
    sim.upgrade_canister(id, v2.clone(), upgrade_arg(&v2), None)
        .unwrap();
    let after = health(&sim, id);
    assert_eq!(after.schema_version, 2);
    assert_eq!(after.checksum, before.checksum);
}

#[test]
fn downgrade_from_schema_2_is_refused() {
    let (sim, id) = with_notes(V1);
    let v2 = wasm(V2);
    sim.upgrade_canister(id, v2.clone(), upgrade_arg(&v2), None)
        .unwrap();
    let before = health(&sim, id);
    let v1 = wasm(V1);
    assert!(sim
        .upgrade_canister(id, v1.clone(), upgrade_arg(&v1), None)
        .is_err());
    assert_eq!(health(&sim, id), before);
    assert_eq!(version(&sim, id), "2.0.0");
}

#[test]
fn fault_health_reports_not_ok_with_its_data_intact() {
    let (sim, id) = with_notes(V1);
    let before = health(&sim, id);
    let faulty = wasm(&["v2", "fault_health"]);
    sim.upgrade_canister(id, faulty.clone(), upgrade_arg(&faulty), None)
        .unwrap();
    let after = health(&sim, id);
    assert!(!after.ok);
    assert!(after.message.unwrap().contains("fault_health"));
    assert_eq!(after.version, "2.0.0");
    assert_eq!(after.checksum, before.checksum);
}

#[test]
fn fault_stall_keeps_stop_canister_from_completing() {
    use ic_sim::management_canister::{CanisterIdRecord, CanisterStatusType};
    let (sim, id) = with_notes(&["fault_stall"]);
    // `stall` exists only in `fault_stall` builds, so no endpoint type declares it.
    let stall = sim
        .submit_call(id, owner(), "stall", encode_args(()).unwrap())
        .unwrap();
    for _ in 0..5 {
        sim.tick();
    }
    assert_eq!(sim.ingress_status(&stall), None, "stall never replies");
    // A management canister method: submitted raw, so that the test sees it still pending.
    let stop = sim
        .submit_call(
            Principal::management_canister(),
            Principal::anonymous(),
            "stop_canister",
            encode_one(CanisterIdRecord { canister_id: id }).unwrap(),
        )
        .unwrap();
    for _ in 0..20 {
        sim.tick();
    }
    assert_eq!(sim.ingress_status(&stop), None, "stop waits for the call");
    let status = sim.canister_status(id, None).unwrap();
    assert_eq!(status.status, CanisterStatusType::Stopping);
}
