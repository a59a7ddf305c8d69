//! Caller info (interface spec, "Method arguments": `ic0.msg_caller_info_data_*` and
//! `ic0.msg_caller_info_signer_*`): auxiliary data about a user that the canister whose
//! canister signature authenticates the user issues, attached to an ingress message. pocket-ic
//! attaches it with `update_call_with_sender_info` and a `RawSenderInfo`; like PocketIC, the
//! simulator does not verify the signature over it.
//!
//! The info belongs to the call context of the ingress message: its update method, its
//! callbacks and cleanup, and `canister_inspect_message` see it; calls from canisters and
//! system tasks carry none.

use candid::Principal;

use crate::errors::{ErrorCode, RejectResponse};
use crate::{CanisterId, IcSim, RawMessageId};

/// Caller info attached to an ingress message (pocket-ic's `RawSenderInfo`): the data and the
/// id of the canister that signed it, as raw principal bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawSenderInfo {
    pub info: Vec<u8>,
    pub signer: Vec<u8>,
}

/// Caller info is only for callers authenticated by a canister signature, which are
/// self-authenticating principals (interface spec: "These functions can only return non-empty
/// values if the caller is a self-authenticating principal"); the signer is a canister id.
fn check(sender: &Principal, info: &RawSenderInfo) -> Result<(), RejectResponse> {
    let invalid = |why: String| {
        RejectResponse::new(
            ErrorCode::CanisterRejectedMessage,
            format!("Invalid sender info: {why}"),
        )
    };
    let bytes = sender.as_slice();
    if bytes.len() != 29 || bytes[28] != 0x02 {
        return Err(invalid(format!(
            "the sender {sender} is not a self-authenticating principal"
        )));
    }
    let signer = Principal::try_from_slice(&info.signer)
        .map_err(|e| invalid(format!("the signer is not a principal: {e}")))?;
    if !crate::sim::is_canister_id(&signer) {
        return Err(invalid(format!("the signer {signer} is not a canister id")));
    }
    Ok(())
}

impl IcSim {
    /// Submits an update call that carries caller info.
    pub fn submit_call_with_sender_info(
        &self,
        canister_id: CanisterId,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
        sender_info: RawSenderInfo,
    ) -> Result<RawMessageId, RejectResponse> {
        check(&sender, &sender_info)?;
        let id = self.sim.borrow_mut().submit(
            canister_id,
            sender,
            method,
            payload,
            Some(sender_info),
        )?;
        Ok(RawMessageId {
            effective_principal: canister_id,
            message_id: id.to_be_bytes().to_vec(),
        })
    }

    /// An update call that carries caller info, awaited (pocket-ic's
    /// `update_call_with_sender_info`).
    pub fn update_call_with_sender_info(
        &self,
        canister_id: CanisterId,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
        sender_info: RawSenderInfo,
    ) -> Result<Vec<u8>, RejectResponse> {
        let id =
            self.submit_call_with_sender_info(canister_id, sender, method, payload, sender_info)?;
        self.await_call(id)
    }
}
