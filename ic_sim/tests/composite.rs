//! Composite queries (interface spec, "Composite queries"; "Overview of imports"): a
//! composite query calls query and composite query methods of canisters on its subnet, its
//! callbacks see its own state, nothing persists, and the replica's depth and instruction
//! limits of the call graph hold.

use candid::{decode_one, encode_args, encode_one, Principal};
use ic_sim::{query_candid, update_candid, ErrorCode, IcSim, MAX_QUERY_CALL_DEPTH};

fn probe(pic: &IcSim, counter: u64) -> Principal {
    let id = pic.create_canister();
    let wasm = wasm_build::wasm("sim_probe", &[]);
    pic.install_canister(id, wasm, encode_one(Some(counter)).unwrap(), None);
    id
}

type Answer = (Result<Vec<u8>, (u32, String)>, u64);

fn composite_call(pic: &IcSim, from: Principal, to: Principal, method: &str) -> Answer {
    composite_call_with(pic, from, to, method, encode_args(()).unwrap())
}

fn composite_call_with(
    pic: &IcSim,
    from: Principal,
    to: Principal,
    method: &str,
    arg: Vec<u8>,
) -> Answer {
    query_candid(pic, from, "composite_call", (to, method, arg)).unwrap()
}

#[test]
fn a_composite_query_reads_other_canisters_and_keeps_nothing() {
    let pic = IcSim::new();
    let a = probe(&pic, 1);
    let others = [probe(&pic, 10), probe(&pic, 100), probe(&pic, 1000)];
    let (sum,): (Result<u64, (u32, String)>,) =
        query_candid(&pic, a, "sum_counters", (others.to_vec(),)).unwrap();
    assert_eq!(sum, Ok(1111));

    // The callback runs on the state the method left (+1000), and none of it persists.
    let (reply, seen) = composite_call(&pic, a, others[0], "get");
    let value: u64 = decode_one(&reply.unwrap()).unwrap();
    assert_eq!(value, 10);
    assert_eq!(seen, 1001);
    let (n,): (u64,) = query_candid(&pic, a, "get", ()).unwrap();
    assert_eq!(n, 1, "nothing persists");
    // A composite query may call a composite query.
    let empty = encode_one(Vec::<Principal>::new()).unwrap();
    let (reply, _) = composite_call_with(&pic, a, others[1], "chain", empty);
    let depth: Result<u64, (u32, String)> = decode_one(&reply.unwrap()).unwrap();
    assert_eq!(depth, Ok(0));
}

#[test]
fn calls_a_composite_query_cannot_make_are_rejected_into_its_callback() {
    let pic = IcSim::new();
    let a = probe(&pic, 1);
    let b = probe(&pic, 2);
    // Update methods are not callable from queries.
    let (reply, _) = composite_call(&pic, a, b, "inc");
    let (code, message) = reply.unwrap_err();
    assert_eq!(code, 5);
    assert!(message.contains("no query method 'inc'"), "{message}");
    let (n,): (u64,) = query_candid(&pic, b, "get", ()).unwrap();
    assert_eq!(n, 2);
    // Unknown canisters, the management canister.
    let (reply, _) = composite_call(&pic, a, Principal::from_slice(&[9; 10]), "get");
    assert_eq!(reply.unwrap_err().0, 3);
    let (reply, _) = composite_call(&pic, a, Principal::management_canister(), "raw_rand");
    let (code, message) = reply.unwrap_err();
    assert_eq!(code, 4);
    assert!(message.contains("raw_rand"), "{message}");
    // A trapping callee answers with CANISTER_ERROR.
    let (reply, _) = composite_call(&pic, a, b, "memory_digest_missing");
    assert_eq!(reply.unwrap_err().0, 5);
    // A stopped callee rejects.
    pic.stop_canister(b, None).unwrap();
    let (reply, _) = composite_call(&pic, a, b, "get");
    let (code, message) = reply.unwrap_err();
    assert_eq!(code, 5);
    assert!(message.contains("stopped"), "{message}");
    // Composite queries run only as queries: not in an update call.
    let err = update_candid::<_, (Result<u64, (u32, String)>,)>(
        &pic,
        a,
        "sum_counters",
        (Vec::<Principal>::new(),),
    )
    .unwrap_err();
    assert_eq!(
        err.error_code,
        ErrorCode::CompositeQueryCalledInReplicatedMode
    );
}

#[test]
fn the_call_graph_is_bounded_in_depth_and_instructions() {
    let pic = IcSim::new();
    let a = probe(&pic, 0);
    let b = probe(&pic, 1);
    // `a` is at depth 0; the canister at depth MAX_QUERY_CALL_DEPTH may answer but not call.
    let path = vec![b; MAX_QUERY_CALL_DEPTH];
    let (depth,): (Result<u64, (u32, String)>,) = query_candid(&pic, a, "chain", (path,)).unwrap();
    assert_eq!(depth, Ok(MAX_QUERY_CALL_DEPTH as u64));
    let path = vec![b; MAX_QUERY_CALL_DEPTH + 1];
    let err =
        query_candid::<_, (Result<u64, (u32, String)>,)>(&pic, a, "chain", (path,)).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::QueryCallGraphTooDeep);

    // Every call costs 50M instructions of the graph's 5B: about 100 calls fit.
    let (sum,): (Result<u64, (u32, String)>,) =
        query_candid(&pic, a, "sum_counters", (vec![b; 98],)).unwrap();
    assert_eq!(sum, Ok(98));
    let err =
        query_candid::<_, (Result<u64, (u32, String)>,)>(&pic, a, "sum_counters", (vec![b; 101],))
            .unwrap_err();
    assert_eq!(
        err.error_code,
        ErrorCode::QueryCallGraphTotalInstructionLimitExceeded
    );
}
