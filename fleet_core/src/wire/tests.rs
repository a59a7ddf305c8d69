use super::*;
use candid::{CandidType, Encode, Nat};
use ic_management_canister_types as mc;
use serde::Deserialize;

fn id(n: u8, len: usize) -> Principal {
    Principal::from_slice(&vec![n; len])
}

#[test]
fn field_hashes_are_candids() {
    for name in [
        "canister_id",
        "settings",
        "controllers",
        "module_hash",
        "cycles",
        "ok",
    ] {
        assert_eq!(field(name), candid::idl_hash(name), "{name}");
    }
}

#[test]
fn arguments_are_byte_for_byte_candids() {
    for p in [
        id(1, 10),
        id(0xAB, 29),
        Principal::management_canister(),
        id(7, 1),
    ] {
        let record = mc::CanisterIdRecord { canister_id: p };
        assert_eq!(canister_id(&p), Encode!(&record).unwrap());
        for replace in [None, Some(vec![]), Some(vec![9; 40]), Some(vec![1; 200])] {
            let take = mc::TakeCanisterSnapshotArgs {
                canister_id: p,
                replace_snapshot: replace.clone(),
                uninstall_code: None,
                sender_canister_version: None,
            };
            assert_eq!(
                take_snapshot(&p, replace.as_deref()),
                Encode!(&take).unwrap()
            );
            let snapshot = replace.clone().unwrap_or_default();
            let load = mc::LoadCanisterSnapshotArgs {
                canister_id: p,
                snapshot_id: snapshot.clone(),
                sender_canister_version: Some(u64::MAX - 3),
            };
            assert_eq!(
                load_snapshot(&p, &snapshot, u64::MAX - 3),
                Encode!(&load).unwrap()
            );
            let delete = mc::DeleteCanisterSnapshotArgs {
                canister_id: p,
                snapshot_id: snapshot.clone(),
            };
            assert_eq!(delete_snapshot(&p, &snapshot), Encode!(&delete).unwrap());
        }
        for (mode, chunks, arg) in [
            (InstallMode::Upgrade, vec![vec![0xDD; 32]; 3], vec![1, 2, 3]),
            (InstallMode::Install, vec![], vec![]),
            (InstallMode::Upgrade, vec![vec![5; 32]; 200], vec![0; 300]),
        ] {
            let store = id(0xCC, 10);
            let ours = install_chunked(&InstallChunked {
                mode,
                target: p,
                store,
                chunk_hashes: &chunks,
                wasm_module_hash: &[0xEE; 32],
                arg: &arg,
                sender_version: 42,
            });
            let theirs = mc::InstallChunkedCodeArgs {
                mode: match mode {
                    InstallMode::Install => mc::CanisterInstallMode::Install,
                    InstallMode::Upgrade => mc::CanisterInstallMode::Upgrade(None),
                },
                target_canister: p,
                store_canister: Some(store),
                chunk_hashes_list: chunks
                    .iter()
                    .map(|h| mc::ChunkHash { hash: h.clone() })
                    .collect(),
                wasm_module_hash: vec![0xEE; 32],
                arg,
                sender_canister_version: Some(42),
            };
            assert_eq!(ours, Encode!(&theirs).unwrap());
        }
    }
    assert_eq!(NO_ARGS, Encode!().unwrap());
}

fn full_status(module_hash: Option<Vec<u8>>, cycles: Nat) -> mc::CanisterStatusResult {
    mc::CanisterStatusResult {
        status: mc::CanisterStatusType::Running,
        ready_for_migration: false,
        version: 3,
        settings: mc::DefiniteCanisterSettings {
            controllers: vec![id(1, 10), id(2, 29)],
            compute_allocation: Nat::from(0u8),
            memory_allocation: Nat::from(0u8),
            freezing_threshold: Nat::from(2_592_000u64),
            reserved_cycles_limit: Nat::from(5_000_000_000_000u64),
            log_visibility: mc::LogVisibility::AllowedViewers(vec![id(3, 5)]),
            wasm_memory_limit: Nat::from(0u8),
            wasm_memory_threshold: Nat::from(0u8),
            log_memory_limit: Nat::from(4096u32),
            environment_variables: vec![mc::EnvironmentVariable {
                name: "A".into(),
                value: "b".into(),
            }],
        },
        module_hash,
        memory_size: Nat::from(1u8),
        memory_metrics: mc::MemoryMetrics {
            wasm_memory_size: Nat::from(3u8),
            stable_memory_size: Nat::from(3u8),
            global_memory_size: Nat::from(3u8),
            wasm_binary_size: Nat::from(3u8),
            custom_sections_size: Nat::from(3u8),
            canister_history_size: Nat::from(3u8),
            wasm_chunk_store_size: Nat::from(3u8),
            snapshots_size: Nat::from(3u8),
            log_memory_store_size: Nat::from(3u8),
        },
        cycles,
        reserved_cycles: Nat::from(0u8),
        idle_cycles_burned_per_day: Nat::from(77u8),
        query_stats: mc::QueryStats {
            num_calls_total: Nat::from(3u8),
            num_instructions_total: Nat::from(3u8),
            request_payload_bytes_total: Nat::from(3u8),
            response_payload_bytes_total: Nat::from(3u8),
        },
    }
}

#[test]
fn canister_status_reads_the_full_reply() {
    for (hash, cycles) in [
        (Some(vec![7u8; 32]), 1_000_000_000_000u128),
        (None, 0),
        (Some(vec![]), u128::MAX),
    ] {
        let bytes = Encode!(&full_status(hash.clone(), Nat::from(cycles))).unwrap();
        let s = canister_status(&bytes).unwrap();
        assert_eq!(s.controllers, vec![id(1, 10), id(2, 29)]);
        assert_eq!(s.module_hash, hash);
        assert_eq!(s.cycles, cycles);
    }
    // Beyond u128: saturated.
    let huge = Nat::from(u128::MAX) * Nat::from(1000u32);
    let bytes = Encode!(&full_status(None, huge)).unwrap();
    assert_eq!(canister_status(&bytes).unwrap().cycles, u128::MAX);
}

candid::define_function!(Callback : (u8) -> (String) query);
candid::define_service!(Svc : { "f" : Callback::ty() });

#[derive(CandidType, Deserialize)]
struct Extra {
    zzz_new_field: Vec<Option<String>>,
    controllers: Vec<Principal>,
    another: (u8, i64, f64, bool, candid::Reserved, candid::Int),
}

type Numbers = (u16, u32, i8, i16, i32, f32);

/// Fields declared in another order, extra fields of many types, and the type table laid
/// out differently than the management canister's.
#[derive(CandidType, Deserialize)]
struct Reordered {
    cycles: Nat,
    future: Vec<mc::CanisterStatusType>,
    settings: Extra,
    a_func: Callback,
    a_service: Svc,
    nested: Option<Box<Option<Vec<Numbers>>>>,
}

#[test]
fn canister_status_skips_unknown_fields_and_takes_missing_opt_as_none() {
    let reply = Reordered {
        cycles: Nat::from(12u8),
        future: vec![mc::CanisterStatusType::Stopping; 3],
        settings: Extra {
            zzz_new_field: vec![Some("x".into()), None],
            controllers: vec![id(9, 29)],
            another: (1, -5, 2.5, true, candid::Reserved, candid::Int::from(-300)),
        },
        a_func: Callback::new(id(4, 10), "m".into()),
        a_service: Svc::new(id(5, 10)),
        nested: Some(Box::new(Some(vec![(1, 2, -3, -4, -5, 6.0)]))),
    };
    let bytes = Encode!(&reply).unwrap();
    let s = canister_status(&bytes).unwrap();
    assert_eq!(s.controllers, vec![id(9, 29)]);
    assert_eq!(s.module_hash, None, "absent opt field");
    assert_eq!(s.cycles, 12);
}

#[test]
fn opt_fields_of_another_type_read_as_none_and_bare_values_as_some() {
    #[derive(CandidType, Deserialize)]
    struct Settings {
        controllers: Vec<Principal>,
    }
    #[derive(CandidType, Deserialize)]
    struct Odd<H: CandidType> {
        settings: Settings,
        module_hash: H,
        cycles: Nat,
    }
    let settings = || Settings {
        controllers: vec![],
    };
    let bare = Encode!(&Odd {
        settings: settings(),
        module_hash: serde_bytes::ByteBuf::from(vec![1, 2]),
        cycles: Nat::from(1u8),
    })
    .unwrap();
    assert_eq!(
        canister_status(&bare).unwrap().module_hash,
        Some(vec![1, 2])
    );
    let wrong = Encode!(&Odd {
        settings: settings(),
        module_hash: Some("text".to_string()),
        cycles: Nat::from(1u8),
    })
    .unwrap();
    assert_eq!(canister_status(&wrong).unwrap().module_hash, None);
    let null = Encode!(&Odd {
        settings: settings(),
        module_hash: (),
        cycles: Nat::from(1u8),
    })
    .unwrap();
    assert_eq!(canister_status(&null).unwrap().module_hash, None);
    // A required field of another type is refused.
    #[derive(CandidType, Deserialize)]
    struct BadCycles {
        settings: Settings,
        cycles: u64,
    }
    let bad = Encode!(&BadCycles {
        settings: settings(),
        cycles: 1
    })
    .unwrap();
    assert!(matches!(canister_status(&bad), Err(WireError::Mismatch(_))));
}

#[test]
fn snapshot_health_and_create_replies() {
    let snapshot = mc::Snapshot {
        id: vec![1, 2, 3, 4],
        taken_at_timestamp: 5,
        total_size: 6,
    };
    let bytes = Encode!(&snapshot).unwrap();
    assert_eq!(blob_field(&bytes, field("id")).unwrap(), vec![1, 2, 3, 4]);
    let chunk = mc::ChunkHash { hash: vec![8; 32] };
    assert_eq!(
        blob_field(&Encode!(&chunk).unwrap(), field("hash")).unwrap(),
        vec![8; 32]
    );
    let created = mc::CanisterIdRecord {
        canister_id: id(3, 10),
    };
    assert_eq!(
        canister_id_reply(&Encode!(&created).unwrap()).unwrap(),
        id(3, 10)
    );
    for message in [None, Some("disk on fire".to_string())] {
        let h = fleet_api::user::FleetHealth {
            ok: message.is_none(),
            version: "2.0.0".into(),
            schema_version: 2,
            records: 10,
            checksum: vec![0; 32],
            message: message.clone(),
        };
        let read = health(&Encode!(&h).unwrap()).unwrap();
        assert_eq!(
            read,
            Health {
                ok: message.is_none(),
                version: "2.0.0".into(),
                message
            }
        );
    }
    // An extra argument is ignored; a missing one refused.
    let two = Encode!(&snapshot, &7u8).unwrap();
    assert_eq!(blob_field(&two, field("id")).unwrap(), vec![1, 2, 3, 4]);
    assert!(blob_field(NO_ARGS, field("id")).is_err());
}

#[test]
fn malformed_and_hostile_input_is_refused_without_panicking() {
    let bytes = Encode!(&full_status(Some(vec![7; 32]), Nat::from(5u8))).unwrap();
    for end in 0..bytes.len() {
        assert!(canister_status(&bytes[..end]).is_err(), "cut at {end}");
    }
    // Every single-byte corruption either reads or is refused; none panics.
    for i in 0..bytes.len() {
        for b in [0x00, 0x7f, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] = b;
            let _ = canister_status(&bad);
        }
    }
    // A vec of a billion nulls is a few bytes long: refused by the skipping budget.
    #[derive(CandidType, Deserialize)]
    struct Nulls {
        n: Vec<()>,
    }
    let mut hostile = Encode!(&Nulls { n: vec![] }).unwrap();
    hostile.pop();
    hostile.extend_from_slice(&[0x80, 0x94, 0xeb, 0xdc, 0x03]);
    assert!(matches!(
        canister_status(&hostile),
        Err(WireError::Malformed(_))
    ));
    // A type that refers to itself without data: refused by the depth bound.
    let looping = b"DIDL\x01\x6c\x01\x00\x00\x01\x00";
    assert!(matches!(
        canister_status(looping),
        Err(WireError::Malformed(_))
    ));
    assert!(canister_status(b"DIDM\x00\x00").is_err());
}
