//! pocket-ic's call shapes with an effective principal: `call_candid`, `call_candid_as` and
//! `update_call_with_effective_principal` route a call by the effective canister id or subnet
//! (interface spec, "HTTPS Interface": effective canister id), and reject a call that the
//! effective principal does not route to its callee before anything executes.

mod common;

use candid::{encode_one, Principal};
use common::install;
use ic_sim::common::rest::RawEffectivePrincipal;
use ic_sim::management_canister::CanisterIdRecord;
use ic_sim::{call_candid, call_candid_as, query_candid, ErrorCode, IcSim};

fn canister(id: Principal) -> RawEffectivePrincipal {
    RawEffectivePrincipal::CanisterId(id.as_slice().to_vec())
}

fn counter(pic: &IcSim, id: Principal) -> u64 {
    let (n,): (u64,) = query_candid(pic, id, "get", ()).unwrap();
    n
}

/// A call whose effective canister is its callee, or with no effective principal, or with the
/// canister's subnet, executes; another canister, an unknown subnet or bytes that are no
/// principal are rejected and the callee does not run.
#[test]
fn calls_run_only_where_the_effective_principal_routes_them() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    let (n,): (u64,) = call_candid(&pic, a, canister(a), "inc", ()).unwrap();
    assert_eq!(n, 1);
    let (n,): (u64,) = call_candid(&pic, a, RawEffectivePrincipal::None, "inc", ()).unwrap();
    assert_eq!(n, 2);
    let subnet = pic.get_subnet(a).unwrap();
    let user = Principal::self_authenticating(b"user");
    let (n,): (u64,) = call_candid_as(
        &pic,
        a,
        RawEffectivePrincipal::SubnetId(subnet.as_slice().to_vec()),
        user,
        "inc",
        (),
    )
    .unwrap();
    assert_eq!(n, 3);

    let err = call_candid::<_, (u64,)>(&pic, a, canister(b), "inc", ()).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterNotFound);
    assert!(err.reject_message.contains("does not match"), "{err}");
    let elsewhere =
        RawEffectivePrincipal::SubnetId(Principal::self_authenticating(b"x").as_slice().to_vec());
    let err = call_candid::<_, (u64,)>(&pic, a, elsewhere, "inc", ()).unwrap_err();
    assert_eq!(err.error_code, ErrorCode::SubnetNotFound);
    let garbage = RawEffectivePrincipal::CanisterId(vec![0; 40]);
    assert!(call_candid::<_, (u64,)>(&pic, a, garbage, "inc", ()).is_err());
    assert_eq!(counter(&pic, a), 3);
    assert_eq!(counter(&pic, b), 0);
}

/// A management call is routed by the canister its argument names: the effective canister must
/// be that one.
#[test]
fn management_calls_are_routed_by_the_canister_they_name() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    let arg = encode_one(CanisterIdRecord { canister_id: a }).unwrap();
    let aaaaa = Principal::management_canister();
    pic.update_call_with_effective_principal(
        aaaaa,
        canister(a),
        Principal::anonymous(),
        "canister_status",
        arg.clone(),
    )
    .unwrap();
    let err = pic
        .update_call_with_effective_principal(
            aaaaa,
            canister(b),
            Principal::anonymous(),
            "canister_status",
            arg,
        )
        .unwrap_err();
    assert!(err.reject_message.contains("does not match"), "{err}");
}
