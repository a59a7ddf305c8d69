//! Native tests: the checked-in candid interface, and the decoding of manager replies.

use candid::{Encode, Principal};
use fleet_api::rollout::RequestUpgradeError;
use fleet_api::user::*;

use super::*;

// The interface of the release build (the proc macro collects the methods once per crate).
#[cfg(not(any(feature = "fault_stall", feature = "fault_switch")))]
candid::export_service!();

/// The interface this crate exports must be exactly `user_canister.did`; regenerate it with
/// `UPDATE_DID=1 cargo test -p user_canister` after a deliberate change. The `fault_stall` and
/// `fault_switch` builds add methods and are not releases, so they are not compared.
#[cfg(not(any(feature = "fault_stall", feature = "fault_switch")))]
#[test]
fn candid_interface_matches_the_checked_in_did() {
    let exported = __export_service();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("user_canister.did");
    if std::env::var_os("UPDATE_DID").is_some() {
        std::fs::write(&path, &exported).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap();
    assert!(
        exported == checked_in,
        "the exported interface differs from user_canister.did:\n{exported}"
    );
}

/// Every method the release exports is declared in `fleet_api::user::method` with the same name
/// and kind, and nothing is declared that it does not export.
#[cfg(not(any(feature = "fault_stall", feature = "fault_switch")))]
#[test]
fn every_exported_method_is_declared_in_fleet_api() {
    let mut declared: Vec<_> = fleet_api::user::method::METHODS
        .iter()
        .map(|(name, kind)| (name.to_string(), *kind))
        .collect();
    declared.sort();
    assert_eq!(
        declared,
        fleet_api::endpoint::service_methods(&__export_service())
    );
}

fn ticket() -> UpgradeTicket {
    UpgradeTicket {
        ticket: 42,
        canister_id: Principal::from_slice(&[1; 10]),
        target_version: "2.0.0".into(),
    }
}

#[test]
fn manager_ok_reply_decodes_to_the_ticket() {
    let reply: Result<UpgradeTicket, RequestUpgradeError> = Ok(ticket());
    assert_eq!(
        decode_manager_reply(&Encode!(&reply).unwrap()),
        Ok(ticket())
    );
}

#[test]
fn manager_refusal_reaches_the_owner_typed() {
    for error in [
        RequestUpgradeError::Draining,
        RequestUpgradeError::Pinned {
            version: "1.0.0".into(),
        },
    ] {
        let reply: Result<UpgradeTicket, RequestUpgradeError> = Err(error.clone());
        assert_eq!(
            decode_manager_reply(&Encode!(&reply).unwrap()),
            Err(RequestUpgradeViaManagerError::Refused { error })
        );
    }
}

#[test]
fn other_manager_replies_are_bad_replies() {
    for bytes in [
        Encode!(&"hello").unwrap(),
        Encode!().unwrap(),
        b"junk".to_vec(),
    ] {
        assert!(matches!(
            decode_manager_reply(&bytes),
            Err(RequestUpgradeViaManagerError::BadReply { .. })
        ));
    }
}

// State transitions, natively: `DefaultMemoryImpl` is a `VectorMemory` off the IC, and every
// test runs on its own thread, hence on its own fresh memory manager.

use crate::state::{self, Config, Header};
use ic_stable_structures::Cell;
#[cfg(feature = "v2")]
use {
    crate::notes::{NoteKey, Notes},
    ic_stable_structures::BTreeMap,
};

fn principal(n: u8) -> Principal {
    Principal::from_slice(&[n; 29])
}

fn init_arg() -> UserInitArg {
    UserInitArg {
        owner: principal(1),
        recovery_principal: principal(2),
        manager: principal(3),
        release_sha256: vec![9; 32],
    }
}

#[test]
fn install_refuses_anonymous_principals_and_malformed_hashes() {
    let mut arg = init_arg();
    arg.owner = Principal::anonymous();
    assert!(state::install(arg, 1).is_err());
    let mut arg = init_arg();
    arg.recovery_principal = Principal::anonymous();
    assert!(state::install(arg, 1).is_err());
    let mut arg = init_arg();
    arg.release_sha256 = vec![1; 31];
    assert!(state::install(arg, 1).is_err());
    state::install(init_arg(), 1).unwrap();
    state::with(|s| {
        assert_eq!(s.config().owner, principal(1));
        assert_eq!(s.header().schema_version, state::SCHEMA_VERSION);
    });
}

#[test]
fn notes_enforce_their_limits() {
    state::install(init_arg(), 1).unwrap();
    state::with_mut(|s| {
        let notes = &mut s.notes;
        assert_eq!(
            notes.put("".into(), "x".into(), 2),
            Err(NoteError::EmptyKey)
        );
        assert!(matches!(
            notes.put("k".repeat(MAX_KEY_LEN + 1), "x".into(), 2),
            Err(NoteError::KeyTooLong { .. })
        ));
        assert!(matches!(
            notes.put("k".into(), "x".repeat(MAX_TEXT_LEN + 1), 2),
            Err(NoteError::TextTooLong { .. })
        ));
        assert!(notes.is_empty());
        notes
            .put("k".repeat(MAX_KEY_LEN), "x".repeat(MAX_TEXT_LEN), 2)
            .unwrap();
        for i in 1..MAX_NOTES {
            notes.put(format!("{i:05}"), String::new(), 2).unwrap();
        }
        assert_eq!(
            notes.put("one too many".into(), "x".into(), 2),
            Err(NoteError::TooManyNotes { max: MAX_NOTES })
        );
        // Replacing an existing note is still allowed when full.
        notes.put("00001".into(), "replaced".into(), 3).unwrap();
        assert_eq!(notes.len(), MAX_NOTES);
        assert_eq!(notes.list(None, u32::MAX).len(), MAX_NOTES_PAGE as usize);
        assert_eq!(
            notes.delete("absent".into()),
            Err(NoteError::NotFound {
                key: "absent".into()
            })
        );
    });
}

#[test]
fn upgrade_refuses_memory_without_state_and_an_unknown_layout() {
    assert!(state::upgrade(None, 1)
        .unwrap_err()
        .contains("no user canister state"));
    Cell::new(
        crate::memory::get(crate::memory::HEADER),
        Header {
            layout_version: 7,
            schema_version: 1,
        },
    );
    assert!(state::upgrade(None, 1).unwrap_err().contains("layout 7"));
}

#[test]
fn upgrade_refuses_a_newer_schema() {
    state::install(init_arg(), 1).unwrap();
    Cell::new(
        crate::memory::get(crate::memory::HEADER),
        Header {
            layout_version: state::LAYOUT_VERSION,
            schema_version: state::SCHEMA_VERSION + 1,
        },
    );
    let err = state::upgrade(None, 2).unwrap_err();
    assert!(err.contains("newer"), "{err}");
}

#[test]
fn upgrade_records_the_release_and_keeps_the_owner() {
    state::install(init_arg(), 1).unwrap();
    state::with_mut(|s| s.notes.put("a".into(), "b".into(), 1)).unwrap();
    let checksum = state::with(|s| s.notes.checksum());
    state::upgrade(
        Some(UserUpgradeArg {
            release_sha256: vec![5; 32],
        }),
        7,
    )
    .unwrap();
    state::with(|s| {
        let config: &Config = s.config();
        assert_eq!(config.owner, principal(1));
        assert_eq!(config.release_sha256, vec![5; 32]);
        assert_eq!(config.upgraded_at, Some(7));
        assert_eq!(s.notes.checksum(), checksum);
    });
    assert!(state::upgrade(
        Some(UserUpgradeArg {
            release_sha256: vec![5; 3]
        }),
        8
    )
    .is_err());
}

/// Writes the state a 1.0.0 module leaves behind: schema 1 header, config, schema-1 notes.
#[cfg(feature = "v2")]
fn write_schema_1_state(notes: &[(&str, &str)]) {
    Cell::new(
        crate::memory::get(crate::memory::HEADER),
        Header {
            layout_version: state::LAYOUT_VERSION,
            schema_version: 1,
        },
    );
    Cell::new(
        crate::memory::get(crate::memory::CONFIG),
        Config {
            owner: principal(1),
            recovery_principal: principal(2),
            manager: principal(3),
            release_sha256: vec![1; 32],
            installed_at: 1,
            upgraded_at: None,
        },
    );
    let mut v1: BTreeMap<NoteKey, String, crate::memory::Memory> =
        BTreeMap::init(crate::memory::get(crate::memory::NOTES_V1));
    for (key, text) in notes {
        v1.insert(NoteKey(key.to_string()), text.to_string());
    }
}

#[cfg(feature = "v2")]
#[test]
fn v2_migrates_schema_1_notes_keeping_count_and_checksum() {
    let notes: Vec<(String, String)> = (0..500)
        .map(|i| (format!("note-{i:03}"), format!("text {i} ✓")))
        .collect();
    let pairs: Vec<(&str, &str)> = notes
        .iter()
        .map(|(k, t)| (k.as_str(), t.as_str()))
        .collect();
    write_schema_1_state(&pairs);
    let v1_notes = Notes::<String> {
        map: BTreeMap::init(crate::memory::get(crate::memory::NOTES_V1)),
    };
    let (count, checksum) = (v1_notes.len(), v1_notes.checksum());
    assert_eq!(count, 500);

    state::upgrade(None, 42).unwrap();
    state::with(|s| {
        assert_eq!(s.header().schema_version, 2);
        assert_eq!(s.notes.len(), count);
        assert_eq!(s.notes.checksum(), checksum);
        let note = s.notes.get("note-007".into()).unwrap().unwrap();
        assert_eq!(note.text, "text 7 ✓");
        assert_eq!((note.created_at, note.updated_at), (Some(42), Some(42)));
    });
    let v1_after: BTreeMap<NoteKey, String, crate::memory::Memory> =
        BTreeMap::init(crate::memory::get(crate::memory::NOTES_V1));
    assert!(v1_after.is_empty(), "schema-1 notes are moved, not copied");
    // A second upgrade of the same schema migrates nothing again.
    state::upgrade(None, 50).unwrap();
    state::with(|s| {
        let note = s.notes.get("note-007".into()).unwrap().unwrap();
        assert_eq!(note.created_at, Some(42));
        assert_eq!(s.notes.checksum(), checksum);
    });
}

// The test-only fault switch (feature `fault_switch`).

#[cfg(feature = "fault_switch")]
use crate::faults::{self, FaultSwitch};
#[cfg(feature = "fault_switch")]
use ic_stable_structures::{Memory as _, Storable};

/// The switch build exports exactly two methods more than the release; the rest of the
/// interface is compared by the test above in the default build.
#[cfg(feature = "fault_switch")]
#[test]
fn fault_switch_build_exports_set_and_get_faults() {
    candid::export_service!();
    let exported = __export_service();
    assert!(
        exported.contains("get_faults : () -> (FaultSwitch) query;"),
        "{exported}"
    );
    assert!(
        exported.contains("set_faults : (FaultSwitch) -> ("),
        "{exported}"
    );
    assert!(exported.contains("NotAController"), "{exported}");
}

#[cfg(feature = "fault_switch")]
#[test]
fn fault_switch_encoding_round_trips() {
    for switch in [
        FaultSwitch::default(),
        FaultSwitch {
            trap_post_upgrade: true,
            fail_health: false,
            trap_health: true,
        },
        FaultSwitch {
            trap_post_upgrade: false,
            fail_health: true,
            trap_health: false,
        },
    ] {
        assert_eq!(FaultSwitch::from_bytes(switch.to_bytes()), switch);
        assert_eq!(FaultSwitch::from_bytes(switch.into_bytes().into()), switch);
    }
}

#[cfg(feature = "fault_switch")]
#[test]
fn an_unset_fault_switch_reads_all_false_without_allocating_its_memory() {
    assert_eq!(faults::get(), FaultSwitch::default());
    assert_eq!(
        crate::memory::get(crate::memory::FAULT_SWITCH).size(),
        0,
        "reading an unset switch writes nothing"
    );
}

#[cfg(feature = "fault_switch")]
#[test]
fn the_fault_switch_survives_an_upgrade() {
    state::install(init_arg(), 1).unwrap();
    let switch = FaultSwitch {
        trap_post_upgrade: true,
        fail_health: true,
        trap_health: false,
    };
    faults::set(switch);
    state::upgrade(None, 2).unwrap();
    assert_eq!(faults::get(), switch);
    faults::set(FaultSwitch::default());
    assert_eq!(faults::get(), FaultSwitch::default());
}
