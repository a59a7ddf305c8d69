//! Canister metadata (interface spec, "IC method canister_metadata", "Canister information",
//! "Canister module format": `icp:public`/`icp:private` custom sections) and subnet information
//! (interface spec, "IC method subnet_info").

use candid::{decode_one, encode_args, encode_one, CandidType, Principal};
use ic_sim::management_canister::{
    CanisterInstallMode, CanisterMetadataArgs, CanisterMetadataResult, SubnetInfoArgs,
    SubnetInfoResult,
};
use ic_sim::{
    update_candid, with_custom_section, ErrorCode, IcSim, REGISTRY_VERSION, REPLICA_VERSION,
};

fn probe() -> Vec<u8> {
    wasm_build::wasm("sim_probe", &[])
}

fn with_metadata() -> Vec<u8> {
    let wasm = with_custom_section(&probe(), "icp:public candid:service", b"service : {}");
    with_custom_section(&wasm, "icp:private secret", b"s3cret")
}

fn install(pic: &IcSim, wasm: Vec<u8>) -> Principal {
    let id = pic.create_canister();
    pic.install_canister(id, wasm, encode_one(None::<u64>).unwrap(), None);
    id
}

/// Calls the management canister from canister `from`: Ok(reply) or Err((reject code, message)).
fn call_from<A: CandidType>(
    pic: &IcSim,
    from: Principal,
    method: &str,
    arg: A,
) -> Result<Vec<u8>, (u32, String)> {
    let (result,): (Result<Vec<u8>, (u32, String)>,) = update_candid(
        pic,
        from,
        "call_raw",
        (
            Principal::management_canister(),
            method,
            encode_one(arg).unwrap(),
            0u128,
        ),
    )
    .unwrap();
    result
}

#[test]
fn public_metadata_is_for_everyone_private_metadata_for_controllers() {
    let pic = IcSim::new();
    let a = install(&pic, with_metadata());
    let stranger = Principal::from_slice(&[5; 29]);
    assert_eq!(
        pic.canister_metadata(a, Some(stranger), "candid:service")
            .unwrap(),
        b"service : {}"
    );
    assert_eq!(pic.canister_metadata(a, None, "secret").unwrap(), b"s3cret");
    let err = pic
        .canister_metadata(a, Some(stranger), "secret")
        .unwrap_err();
    assert_eq!(err.error_code, ErrorCode::CanisterRejectedMessage);
    assert!(err.reject_message.contains("not authorized"), "{err}");
    let err = pic.canister_metadata(a, None, "missing").unwrap_err();
    assert!(err.reject_message.contains("no metadata section"), "{err}");
    let empty = pic.create_canister();
    let err = pic.canister_metadata(empty, None, "secret").unwrap_err();
    assert!(err.reject_message.contains("no Wasm module"), "{err}");
    let status = pic.canister_status(a, None).unwrap();
    assert_eq!(
        status.memory_metrics.custom_sections_size,
        candid::Nat::from(
            "icp:public candid:service".len() - "icp:public ".len()
                + "service : {}".len()
                + "secret".len()
                + "s3cret".len()
        )
    );

    // The management method, from canisters only.
    let b = install(&pic, probe());
    let args = |name: &str| CanisterMetadataArgs {
        canister_id: a,
        name: name.to_string(),
    };
    let reply = call_from(&pic, b, "canister_metadata", args("candid:service")).unwrap();
    let result: CanisterMetadataResult = decode_one(&reply).unwrap();
    assert_eq!(result.value, b"service : {}");
    let (code, message) = call_from(&pic, b, "canister_metadata", args("secret")).unwrap_err();
    assert_eq!(code, 4);
    assert!(message.contains("not authorized"), "{message}");
    pic.set_controllers(a, None, vec![Principal::anonymous(), b])
        .unwrap();
    let reply = call_from(&pic, b, "canister_metadata", args("secret")).unwrap();
    let result: CanisterMetadataResult = decode_one(&reply).unwrap();
    assert_eq!(result.value, b"s3cret");
    let err = pic
        .update_call(
            Principal::management_canister(),
            Principal::anonymous(),
            "canister_metadata",
            encode_one(args("candid:service")).unwrap(),
        )
        .unwrap_err();
    assert!(err.reject_message.contains("Only canisters"), "{err}");
}

#[test]
fn modules_with_invalid_metadata_sections_are_refused() {
    let pic = IcSim::new();
    let id = pic.create_canister();
    let public = with_custom_section(&probe(), "icp:public name", b"1");
    let both = with_custom_section(&public, "icp:private name", b"2");
    let unknown = with_custom_section(&probe(), "icp:other name", b"1");
    for wasm in [both, unknown] {
        let err = pic
            .install_code(
                id,
                CanisterInstallMode::Install,
                wasm,
                encode_args(()).unwrap(),
                None,
            )
            .unwrap_err();
        assert_eq!(err.error_code, ErrorCode::CanisterInvalidWasm, "{err}");
    }
}

#[test]
fn subnet_info_reports_the_simulated_replica() {
    let pic = IcSim::new();
    let a = install(&pic, probe());
    let subnet = pic.get_subnet(a).unwrap();
    let reply = call_from(&pic, a, "subnet_info", SubnetInfoArgs { subnet_id: subnet }).unwrap();
    let info: SubnetInfoResult = decode_one(&reply).unwrap();
    assert_eq!(info.replica_version, REPLICA_VERSION);
    assert_eq!(info.registry_version, REGISTRY_VERSION);
    let (code, message) = call_from(
        &pic,
        a,
        "subnet_info",
        SubnetInfoArgs {
            subnet_id: Principal::from_slice(&[1; 29]),
        },
    )
    .unwrap_err();
    assert_eq!(code, 4);
    assert!(message.contains("not found"), "{message}");
    assert_eq!(pic.get_subnet(Principal::from_slice(&[9; 10])), None);
}
