//! Execution, system API and metering on real ic-cdk wasm (points 1, 2, 6 of the design).

use candid::{encode_one, Principal};
use ic_sim::{query_candid, update_candid, update_candid_as, ErrorCode, IcSim, RejectCode};

fn probe() -> Vec<u8> {
    wasm_build::wasm("sim_probe", &[])
}

fn setup() -> (IcSim, Principal) {
    let pic = IcSim::new();
    let id = pic.create_canister();
    pic.install_canister(id, probe(), encode_one(Some(5u64)).unwrap(), None);
    (pic, id)
}

#[test]
fn init_update_and_query_round_trip() {
    let (pic, id) = setup();
    let (v,): (String,) = query_candid(&pic, id, "version", ()).unwrap();
    assert_eq!(v, "v1");
    let (n,): (u64,) = update_candid(&pic, id, "inc", ()).unwrap();
    assert_eq!(n, 6, "init argument 5, then one increment");
    let (n,): (u64,) = query_candid(&pic, id, "get", ()).unwrap();
    assert_eq!(n, 6);
}
