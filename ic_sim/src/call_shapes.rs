//! Calls with an explicit effective principal, in pocket-ic's shapes
//! (`update_call_with_effective_principal`, `call_candid`, `call_candid_as`).
//!
//! The effective principal routes a call (interface spec, "HTTPS Interface": the effective
//! canister id of a call): a subnet id must name one of the simulator's subnets and a canister
//! id must name an existing canister; for a call to a canister it must be that canister, for
//! a call to the management canister the canister the argument names. A call that cannot be
//! routed is rejected before anything executes.

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::Principal;

use crate::errors::{ErrorCode, RejectResponse};
use crate::management::effective_canister_of;
use crate::{with_candid, CanisterId, IcSim, RawMessageId};

/// Where a call is routed (pocket-ic's `RawEffectivePrincipal`): any subnet, a subnet, or the
/// subnet of a canister, as raw principal bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RawEffectivePrincipal {
    None,
    SubnetId(Vec<u8>),
    CanisterId(Vec<u8>),
}

impl std::fmt::Display for RawEffectivePrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |bytes: &[u8]| {
            Principal::try_from_slice(bytes).map_or_else(|_| format!("{bytes:?}"), |p| p.to_text())
        };
        match self {
            RawEffectivePrincipal::None => write!(f, "None"),
            RawEffectivePrincipal::SubnetId(b) => write!(f, "SubnetId({})", text(b)),
            RawEffectivePrincipal::CanisterId(b) => write!(f, "CanisterId({})", text(b)),
        }
    }
}

fn unroutable(code: ErrorCode, message: String) -> RejectResponse {
    RejectResponse::new(code, message)
}

impl IcSim {
    /// Checks that `effective_principal` routes a call to `canister_id` with `payload`; returns
    /// the subnet it names, if any.
    fn route(
        &self,
        canister_id: CanisterId,
        effective_principal: &RawEffectivePrincipal,
        method: &str,
        payload: &[u8],
    ) -> Result<Option<usize>, RejectResponse> {
        let parse = |bytes: &[u8]| {
            Principal::try_from_slice(bytes).map_err(|e| {
                unroutable(
                    ErrorCode::CanisterNotFound,
                    format!("Invalid effective principal {bytes:?}: {e}"),
                )
            })
        };
        let sim = self.sim.borrow();
        match effective_principal {
            RawEffectivePrincipal::None => Ok(None),
            RawEffectivePrincipal::SubnetId(bytes) => {
                let subnet = parse(bytes)?;
                if let Some(index) = sim.subnets.iter().position(|s| s.id == subnet) {
                    Ok(Some(index))
                } else {
                    Err(unroutable(
                        ErrorCode::SubnetNotFound,
                        format!("Subnet {subnet} not found"),
                    ))
                }
            }
            RawEffectivePrincipal::CanisterId(bytes) => {
                let effective = parse(bytes)?;
                // A management call is routed by the canister its argument names (a creation
                // with a chosen id names none: the id need not exist yet); any other call by
                // its callee, which must exist.
                let target = if canister_id == Principal::management_canister() {
                    effective_canister_of(method, payload).unwrap_or(effective)
                } else {
                    sim.canister(&effective)?;
                    canister_id
                };
                if target == effective {
                    Ok(Some(sim.subnet_of(&effective)))
                } else {
                    Err(unroutable(
                        ErrorCode::CanisterNotFound,
                        format!(
                            "Specified CanisterId {target} does not match effective canister id {effective}"
                        ),
                    ))
                }
            }
        }
    }

    /// Submits an update call routed by `effective_principal` (pocket-ic's
    /// `submit_call_with_effective_principal`).
    pub fn submit_call_with_effective_principal(
        &self,
        canister_id: CanisterId,
        effective_principal: RawEffectivePrincipal,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<RawMessageId, RejectResponse> {
        let subnet = self.route(canister_id, &effective_principal, method, &payload)?;
        // A provisional creation goes to the subnet the effective principal names.
        self.sim.borrow_mut().provisional_subnet = subnet.unwrap_or(0);
        let submitted = self.submit_call(canister_id, sender, method, payload);
        self.sim.borrow_mut().provisional_subnet = 0;
        submitted
    }

    /// An update call routed by `effective_principal`, awaited (pocket-ic's
    /// `update_call_with_effective_principal`).
    pub fn update_call_with_effective_principal(
        &self,
        canister_id: CanisterId,
        effective_principal: RawEffectivePrincipal,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        let id = self.submit_call_with_effective_principal(
            canister_id,
            effective_principal,
            sender,
            method,
            payload,
        )?;
        self.await_call(id)
    }

    /// A query call routed by `effective_principal` (pocket-ic's
    /// `query_call_with_effective_principal`).
    pub fn query_call_with_effective_principal(
        &self,
        canister_id: CanisterId,
        effective_principal: RawEffectivePrincipal,
        sender: Principal,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<Vec<u8>, RejectResponse> {
        self.route(canister_id, &effective_principal, method, &payload)?;
        self.query_call(canister_id, sender, method, payload)
    }
}

/// Calls a candid update method as `sender`, routed by `effective_principal` (pocket-ic's
/// `call_candid_as`).
pub fn call_candid_as<Input, Output>(
    env: &IcSim,
    canister_id: CanisterId,
    effective_principal: RawEffectivePrincipal,
    sender: Principal,
    method: &str,
    input: Input,
) -> Result<Output, RejectResponse>
where
    Input: ArgumentEncoder,
    Output: for<'a> ArgumentDecoder<'a>,
{
    with_candid(input, |payload| {
        env.update_call_with_effective_principal(
            canister_id,
            effective_principal,
            sender,
            method,
            payload,
        )
    })
}

/// Calls a candid update method as the anonymous principal, routed by `effective_principal`
/// (pocket-ic's `call_candid`).
pub fn call_candid<Input, Output>(
    env: &IcSim,
    canister_id: CanisterId,
    effective_principal: RawEffectivePrincipal,
    method: &str,
    input: Input,
) -> Result<Output, RejectResponse>
where
    Input: ArgumentEncoder,
    Output: for<'a> ArgumentDecoder<'a>,
{
    call_candid_as(
        env,
        canister_id,
        effective_principal,
        Principal::anonymous(),
        method,
        input,
    )
}
