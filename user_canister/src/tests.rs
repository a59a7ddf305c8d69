//! Native tests: the checked-in candid interface, and the decoding of manager replies.

use candid::{CandidType, Encode, Principal};
use fleet_api::user::*;

use super::*;

/// The interface this crate exports must be exactly `user_canister.did`; regenerate it with
/// `UPDATE_DID=1 cargo test -p user_canister` after a deliberate change. The `fault_stall` build
/// adds `stall` and is not a release, so it is not compared.
#[cfg(not(feature = "fault_stall"))]
#[test]
fn candid_interface_matches_the_checked_in_did() {
    candid::export_service!();
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

#[derive(CandidType)]
enum ManagerError {
    NotRegistered { canister: Principal },
    Busy,
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
    let reply: Result<UpgradeTicket, ManagerError> = Ok(ticket());
    assert_eq!(
        decode_manager_reply(&Encode!(&reply).unwrap()),
        Ok(ticket())
    );
}

/// The manager's error type is not known here; candid's wire format carries field ids (hashes of
/// the names), so the rendering shows ids and the payload values.
#[test]
fn manager_err_reply_is_rendered_whatever_its_type() {
    let refused = |reply: Result<UpgradeTicket, ManagerError>| match decode_manager_reply(
        &Encode!(&reply).unwrap(),
    ) {
        Err(RequestUpgradeViaManagerError::Refused { error }) => error,
        other => panic!("expected Refused, got {other:?}"),
    };
    let canister = Principal::from_slice(&[1; 10]);
    let not_registered = refused(Err(ManagerError::NotRegistered { canister }));
    assert!(not_registered.starts_with("variant {"), "{not_registered}");
    assert!(
        not_registered.contains(&canister.to_text()),
        "{not_registered}"
    );
    let busy = refused(Err(ManagerError::Busy));
    assert!(busy.starts_with("variant {"), "{busy}");
    assert_ne!(busy, not_registered);
    let text: Result<UpgradeTicket, String> = Err("paused".into());
    assert_eq!(
        decode_manager_reply(&Encode!(&text).unwrap()),
        Err(RequestUpgradeViaManagerError::Refused {
            error: "\"paused\"".into()
        })
    );
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
