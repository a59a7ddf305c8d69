//! Caller info (interface spec, "Method arguments": `ic0.msg_caller_info_data_*` and
//! `ic0.msg_caller_info_signer_*`), attached to ingress with pocket-ic's
//! `update_call_with_sender_info`.

mod common;

use candid::{decode_one, encode_args, Principal};
use common::{call_raw, install};
use ic_sim::common::rest::RawSenderInfo;
use ic_sim::{update_candid_as, IcSim};

type CallerInfo = (Vec<u8>, Option<Principal>);

fn info(signer: Principal) -> RawSenderInfo {
    RawSenderInfo {
        info: b"attributes".to_vec(),
        signer: signer.as_slice().to_vec(),
    }
}

/// An update method sees the caller info its ingress message carries, data and signer, and so
/// does the callback of a call it makes (the info belongs to the call context); without info,
/// both are empty.
#[test]
fn an_update_and_its_callback_see_the_caller_info() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let signer = install(&pic);
    let user = Principal::self_authenticating(b"user key");
    let reply = pic
        .update_call_with_sender_info(
            probe,
            user,
            "caller_info",
            encode_args(()).unwrap(),
            info(signer),
        )
        .unwrap();
    let (before, after): (CallerInfo, CallerInfo) = candid::decode_args(&reply).unwrap();
    let expected = (b"attributes".to_vec(), Some(signer));
    assert_eq!(before, expected);
    assert_eq!(after, expected);

    let plain: (CallerInfo, CallerInfo) =
        update_candid_as(&pic, probe, user, "caller_info", ()).unwrap();
    assert_eq!(plain, ((vec![], None), (vec![], None)));
}

/// `canister_inspect_message` sees the caller info too: the probe accepts
/// `caller_info_required` only with it.
#[test]
fn inspect_message_sees_the_caller_info() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let signer = install(&pic);
    let user = Principal::self_authenticating(b"user key");
    assert!(
        update_candid_as::<_, (Vec<u8>,)>(&pic, probe, user, "caller_info_required", ()).is_err()
    );
    let reply = pic
        .update_call_with_sender_info(
            probe,
            user,
            "caller_info_required",
            encode_args(()).unwrap(),
            info(signer),
        )
        .unwrap();
    assert_eq!(decode_one::<Vec<u8>>(&reply).unwrap(), b"attributes");
}

/// Calls from canisters carry no caller info (spec: "they always return empty values when the
/// caller is another canister").
#[test]
fn calls_from_canisters_carry_none() {
    let pic = IcSim::new();
    let a = install(&pic);
    let b = install(&pic);
    let reply = call_raw(&pic, a, b, "caller_info", encode_args(()).unwrap(), 0).unwrap();
    let (before, _): (CallerInfo, CallerInfo) = candid::decode_args(&reply).unwrap();
    assert_eq!(before, (vec![], None));
}

/// Caller info is for self-authenticating callers and a canister signer; anything else is
/// refused before the message is accepted.
#[test]
fn sender_info_needs_a_self_authenticating_sender_and_a_canister_signer() {
    let pic = IcSim::new();
    let probe = install(&pic);
    let signer = install(&pic);
    let arg = encode_args(()).unwrap();
    let anonymous = pic.update_call_with_sender_info(
        probe,
        Principal::anonymous(),
        "caller_info",
        arg.clone(),
        info(signer),
    );
    assert!(anonymous
        .unwrap_err()
        .reject_message
        .contains("self-authenticating"));
    let user = Principal::self_authenticating(b"user key");
    let by_user = pic.update_call_with_sender_info(probe, user, "caller_info", arg, info(user));
    assert!(by_user
        .unwrap_err()
        .reject_message
        .contains("not a canister id"));
}
