//! Canister logs (interface spec, "IC method fetch_canister_logs"): `ic0.debug_print` and traps
//! of replicated executions become records with an index and a timestamp, bounded by the
//! canister's log memory, visible as `log_visibility` says, fetched only through query calls.

use std::time::Duration;

use candid::{encode_args, encode_one, Principal};
use ic_sim::management_canister::{
    CanisterLogFilter, CanisterSettings, FetchCanisterLogsArgs, FetchCanisterLogsResult,
    LogVisibility,
};
use ic_sim::{query_candid, update_candid, ErrorCode, IcSim};

fn probe(features: &[&str]) -> Vec<u8> {
    wasm_build::wasm("sim_probe", features)
}

fn install(pic: &IcSim) -> Principal {
    let id = pic.create_canister();
    pic.install_canister(id, probe(&[]), encode_one(None::<u64>).unwrap(), None);
    id
}

fn print(pic: &IcSim, id: Principal, line: &str, trap: bool) {
    let result: Result<(), _> = update_candid(pic, id, "print", (line, trap));
    assert_eq!(result.is_err(), trap);
}

/// (idx, timestamp, content) of the canister's records, as a controller sees them.
fn records(pic: &IcSim, id: Principal) -> Vec<(u64, u64, String)> {
    pic.fetch_canister_logs(id, Principal::anonymous())
        .unwrap()
        .into_iter()
        .map(|r| {
            let content = String::from_utf8(r.content).unwrap();
            (r.idx, r.timestamp_nanos, content)
        })
        .collect()
}

fn set_settings(pic: &IcSim, id: Principal, settings: CanisterSettings) {
    pic.update_canister_settings(id, None, settings).unwrap();
}

#[test]
fn debug_prints_and_traps_of_replicated_executions_are_recorded() {
    let pic = IcSim::new();
    let id = install(&pic);
    assert!(records(&pic, id).is_empty());
    let t0 = pic.get_time().as_nanos_since_unix_epoch();
    print(&pic, id, "first", false);
    pic.advance_time(Duration::from_secs(7));
    let t1 = pic.get_time().as_nanos_since_unix_epoch();
    print(&pic, id, "before the trap", true);
    // A record has the time of the round that executed it: 1 ns after `t0` (a round moves
    // time by 1 ns when time did not move since the previous one), while the round after
    // `advance_time` runs at `t1` itself.
    assert_eq!(
        records(&pic, id),
        vec![
            (0, t0 + 1, "first".to_string()),
            (1, t1, "before the trap".to_string()),
            (2, t1, "[TRAP]: print then trap".to_string()),
        ]
    );
    // A query called as a query is not recorded; the same query in an update call is.
    let () = query_candid(&pic, id, "print_in_query", ("non-replicated",)).unwrap();
    assert_eq!(records(&pic, id).len(), 3);
    let () = update_candid(&pic, id, "print_in_query", ("replicated",)).unwrap();
    // Its round is the next one after `t1`'s, time unmoved since: 1 ns later.
    assert_eq!(records(&pic, id)[3], (3, t1 + 1, "replicated".to_string()));

    // Filters select by index or timestamp, both inclusive.
    let fetch = |filter| {
        let arg = FetchCanisterLogsArgs {
            canister_id: id,
            filter: Some(filter),
        };
        let bytes = pic
            .query_call(
                Principal::management_canister(),
                Principal::anonymous(),
                "fetch_canister_logs",
                encode_one(arg).unwrap(),
            )
            .unwrap();
        let result: FetchCanisterLogsResult = candid::decode_one(&bytes).unwrap();
        result
            .canister_log_records
            .iter()
            .map(|r| r.idx)
            .collect::<Vec<_>>()
    };
    assert_eq!(fetch(CanisterLogFilter::ByIdx { start: 1, end: 2 }), [1, 2]);
    assert_eq!(
        fetch(CanisterLogFilter::ByTimestampNanos { start: t1, end: t1 }),
        [1, 2]
    );
    assert_eq!(
        fetch(CanisterLogFilter::ByTimestampNanos {
            start: t1,
            end: t1 + 1
        }),
        [1, 2, 3]
    );

    // Upgrades keep the log; a reinstall purges it, indices keep counting.
    pic.upgrade_canister(id, probe(&[]), encode_args(()).unwrap(), None)
        .unwrap();
    assert_eq!(records(&pic, id).len(), 4);
    pic.reinstall_canister(id, probe(&[]), encode_one(None::<u64>).unwrap(), None)
        .unwrap();
    assert!(records(&pic, id).is_empty());
    print(&pic, id, "after reinstall", false);
    assert_eq!(records(&pic, id)[0].0, 4);
    let status = pic.canister_status(id, None).unwrap();
    assert_eq!(
        status.memory_metrics.log_memory_store_size,
        candid::Nat::from(16u64 + "after reinstall".len() as u64)
    );
}

#[test]
fn the_log_is_bounded_by_the_log_memory_limit() {
    let pic = IcSim::new();
    let id = install(&pic);
    set_settings(
        &pic,
        id,
        CanisterSettings {
            log_memory_limit: Some(candid::Nat::from(200u64)),
            ..Default::default()
        },
    );
    for i in 0..20 {
        print(&pic, id, &format!("line {i:02} {}", "x".repeat(20)), false);
    }
    let kept = records(&pic, id);
    let bytes: usize = kept.iter().map(|r| r.2.len() + 16).sum();
    assert!(bytes <= 200, "{bytes} bytes kept");
    assert_eq!(kept.len(), 4, "each record takes 16 + 28 bytes");
    let idx: Vec<u64> = kept.iter().map(|r| r.0).collect();
    assert_eq!(idx, [16, 17, 18, 19], "the oldest records go first");
    // A record larger than the whole log is cut to fit.
    print(&pic, id, &"y".repeat(1000), false);
    let kept = records(&pic, id);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].2.len(), 200 - 16);
}

#[test]
fn log_visibility_decides_who_fetches_and_only_queries_do() {
    let pic = IcSim::new();
    let id = install(&pic);
    print(&pic, id, "secret", false);
    let viewer = Principal::from_slice(&[3; 29]);
    let stranger = Principal::from_slice(&[4; 29]);
    let err = pic.fetch_canister_logs(id, stranger).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterRejectedMessage);
    assert!(err.reject_message.contains("is not allowed"), "{err}");

    let visibility = |v| {
        set_settings(
            &pic,
            id,
            CanisterSettings {
                log_visibility: Some(v),
                ..Default::default()
            },
        )
    };
    visibility(LogVisibility::AllowedViewers(vec![viewer]));
    assert_eq!(pic.fetch_canister_logs(id, viewer).unwrap().len(), 1);
    assert_eq!(
        pic.fetch_canister_logs(id, Principal::anonymous())
            .unwrap()
            .len(),
        1,
        "controllers always may"
    );
    assert!(pic.fetch_canister_logs(id, stranger).is_err());
    visibility(LogVisibility::Public);
    assert_eq!(pic.fetch_canister_logs(id, stranger).unwrap().len(), 1);

    // Not through ingress, not from canisters.
    let arg = encode_one(FetchCanisterLogsArgs {
        canister_id: id,
        filter: None,
    })
    .unwrap();
    let err = pic
        .update_call(
            Principal::management_canister(),
            Principal::anonymous(),
            "fetch_canister_logs",
            arg.clone(),
        )
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterRejectedMessage);
    assert!(err.reject_message.contains("ingress"), "{err}");
    let caller = install(&pic);
    let (result,): (Result<Vec<u8>, (u32, String)>,) = update_candid(
        &pic,
        caller,
        "call_raw",
        (
            Principal::management_canister(),
            "fetch_canister_logs",
            arg,
            0u128,
        ),
    )
    .unwrap();
    let (code, message) = result.unwrap_err();
    assert_eq!(code, 4, "CANISTER_REJECT");
    assert!(message.contains("fetch_canister_logs"), "{message}");
    // Unknown canisters are reported as such.
    let err = pic
        .fetch_canister_logs(Principal::from_slice(&[9; 10]), Principal::anonymous())
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterNotFound);
}
