//! A built-in cycles minting canister (CMC) at the mainnet CMC's id, offering its
//! `create_canister` method: the way a canister creates a canister on a subnet of its choice
//! on mainnet, where the management canister's `create_canister` always creates on the
//! caller's own subnet (interface spec, "IC method create_canister").
//!
//! Like the management canister, it is part of the simulator rather than a wasm canister: it
//! has no state, cycles balance or queues, never appears among the canisters (`get_subnet` of
//! its id is `None`), and its id is never handed to a created canister.
//!
//! Timing: on mainnet the CMC lives on the NNS subnet, so every call to it crosses subnets. The
//! simulator treats it as one more subnet that executes its requests at the start of a round,
//! before the application subnets' rounds: a request sent in round r executes (and creates the
//! canister) in round r+1, and its response reaches the caller in round r+2, as a call to a
//! canister of another application subnet (XNet). The CMC's own call to the chosen subnet's
//! management canister is not modelled as a further hop: the creation happens when the CMC
//! executes the request.
//!
//! The candid types are those of the CMC's interface (`rs/nns/cmc/cmc.did` in dfinity/ic) for
//! `create_canister`:
//!
//! ```text
//! type SubnetFilter = record { subnet_type : opt text };
//! type SubnetSelection = variant { Subnet : record { subnet : principal }; Filter : SubnetFilter };
//! type CanisterSettings = record { controllers : opt vec principal; compute_allocation : opt nat;
//!   memory_allocation : opt nat; freezing_threshold : opt nat; reserved_cycles_limit : opt nat;
//!   log_visibility : opt log_visibility; wasm_memory_limit : opt nat;
//!   wasm_memory_threshold : opt nat };
//! type CreateCanisterArg = record { settings : opt CanisterSettings; subnet_type : opt text;
//!   subnet_selection : opt SubnetSelection };
//! type CreateCanisterError = variant { Refunded : record { refund_amount : nat; create_error : text } };
//! create_canister : (CreateCanisterArg) -> (variant { Ok : principal; Err : CreateCanisterError });
//! ```

use candid::{CandidType, Nat, Principal};
use serde::Deserialize;

use crate::costs;
use crate::errors::{ErrorCode, RejectResponse};
use crate::management_canister as mgmt;
use crate::sim::{Message, Request, Sim};

pub use crate::management_canister::LogVisibility;

/// The mainnet cycles minting canister's id, `rkp4c-7iaaa-aaaaa-aaaca-cai` (canister number 4
/// of the NNS subnet's range).
pub const CMC_ID: Principal = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 4, 1, 1]);

/// The only subnet type the simulator has: all its subnets are application subnets.
pub const APPLICATION_SUBNET_TYPE: &str = "application";

/// `SubnetFilter`: selects a subnet by type.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetFilter {
    pub subnet_type: Option<String>,
}

/// `SubnetSelection`: a given subnet, or any subnet that passes a filter.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum SubnetSelection {
    Subnet { subnet: Principal },
    Filter(SubnetFilter),
}

/// The CMC's `CanisterSettings`: the management canister's settings that the CMC passes on.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CanisterSettings {
    pub controllers: Option<Vec<Principal>>,
    pub compute_allocation: Option<Nat>,
    pub memory_allocation: Option<Nat>,
    pub freezing_threshold: Option<Nat>,
    pub reserved_cycles_limit: Option<Nat>,
    pub log_visibility: Option<LogVisibility>,
    pub wasm_memory_limit: Option<Nat>,
    pub wasm_memory_threshold: Option<Nat>,
}

/// `CreateCanisterArg`, the argument of `create_canister`.
#[derive(CandidType, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateCanisterArg {
    pub settings: Option<CanisterSettings>,
    /// The older way to choose a subnet type; only one of it and `subnet_selection` may be set.
    pub subnet_type: Option<String>,
    pub subnet_selection: Option<SubnetSelection>,
}

/// `CreateCanisterError`: the creation failed and the attached cycles went back to the caller.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CreateCanisterError {
    Refunded {
        refund_amount: Nat,
        create_error: String,
    },
}

/// The reply of `create_canister`: `variant { Ok : principal; Err : CreateCanisterError }`.
pub type CreateCanisterResult = Result<Principal, CreateCanisterError>;

impl From<CanisterSettings> for mgmt::CanisterSettings {
    fn from(s: CanisterSettings) -> Self {
        mgmt::CanisterSettings {
            controllers: s.controllers,
            compute_allocation: s.compute_allocation,
            memory_allocation: s.memory_allocation,
            freezing_threshold: s.freezing_threshold,
            reserved_cycles_limit: s.reserved_cycles_limit,
            log_visibility: s.log_visibility,
            wasm_memory_limit: s.wasm_memory_limit,
            wasm_memory_threshold: s.wasm_memory_threshold,
            ..Default::default()
        }
    }
}

/// Whether `m` is a request to the CMC (which message routing carries like a request to
/// another subnet).
pub(crate) fn is_cmc_request(m: &Message) -> bool {
    matches!(m, Message::Request(r) if r.receiver == CMC_ID)
}

/// A refund of `amount` cycles with `error`.
fn refunded(amount: u128, error: impl Into<String>) -> CreateCanisterError {
    CreateCanisterError::Refunded {
        refund_amount: Nat::from(amount),
        create_error: error.into(),
    }
}

impl Sim {
    /// Executes a request to the CMC and sends its response, which reaches a calling canister
    /// a round later (see the module docs). The cycles attached are accepted when the canister
    /// is created (the creation fee is burnt, the rest is the new canister's balance) and
    /// refunded in full otherwise.
    pub(crate) fn deliver_cmc(&mut self, req: Request) {
        let (result, refund) = match req.method.as_str() {
            "create_canister" => match candid::decode_one::<CreateCanisterArg>(&req.arg) {
                Ok(arg) => {
                    let result = self.cmc_create_canister(req.sender, req.cycles, arg);
                    let refund = if result.is_ok() { 0 } else { req.cycles };
                    (Ok(candid::encode_one(&result).expect("encoding")), refund)
                }
                // The CMC's candid decoding traps on a malformed argument.
                Err(e) => (
                    Err(RejectResponse::new(
                        ErrorCode::CanisterTrapped,
                        format!(
                            "Error from Canister {CMC_ID}: Canister called `ic0.trap` with message: \
                             'failed to decode the argument of create_canister: {e}'."
                        ),
                    )),
                    req.cycles,
                ),
            },
            other => (
                Err(RejectResponse::new(
                    ErrorCode::CanisterMethodNotFound,
                    format!(
                        "Error from Canister {CMC_ID}: Canister has no update method '{other}'."
                    ),
                )),
                req.cycles,
            ),
        };
        self.respond(CMC_ID, req.reply_to, result, refund);
    }

    /// `create_canister` of the CMC for `caller` with `cycles` attached.
    fn cmc_create_canister(
        &mut self,
        caller: Principal,
        cycles: u128,
        arg: CreateCanisterArg,
    ) -> CreateCanisterResult {
        // An ingress message carries no cycles, so a user's call ends here, as on mainnet.
        if cycles < costs::CANISTER_CREATION_FEE {
            return Err(refunded(
                cycles,
                format!(
                    "Insufficient cycles attached: creating a canister costs {} cycles, {cycles} \
                     were attached.",
                    costs::CANISTER_CREATION_FEE
                ),
            ));
        }
        let subnet = self.cmc_subnet(&arg).map_err(|e| refunded(cycles, e))?;
        let mut settings = arg.settings.unwrap_or_default();
        // The CMC makes the caller the controller unless the settings name controllers.
        if settings.controllers.is_none() {
            settings.controllers = Some(vec![caller]);
        }
        let active = self.active;
        self.active = subnet;
        // The CMC creates the canister, so the canister's history names it as the origin.
        let created = self.create(
            CMC_ID,
            Some(settings.into()),
            cycles - costs::CANISTER_CREATION_FEE,
        );
        self.active = active;
        created.map_err(|e| {
            refunded(
                cycles,
                format!("Failed to create the canister: {}", e.reject_message),
            )
        })
    }

    /// The index of the subnet a creation goes to: the named subnet, or the application subnet
    /// with the fewest canisters (the first of those in `get_app_subnets` order on a tie).
    fn cmc_subnet(&self, arg: &CreateCanisterArg) -> Result<usize, String> {
        if arg.subnet_type.is_some() && arg.subnet_selection.is_some() {
            return Err(
                "Only one of subnet_type and subnet_selection may be specified.".to_string(),
            );
        }
        let subnet_type = match &arg.subnet_selection {
            Some(SubnetSelection::Subnet { subnet }) => {
                return self
                    .subnets
                    .iter()
                    .position(|s| s.id == *subnet)
                    .ok_or_else(|| {
                        format!("Subnet {subnet} does not exist or the caller may not create canisters on it.")
                    });
            }
            Some(SubnetSelection::Filter(filter)) => filter.subnet_type.as_deref(),
            None => arg.subnet_type.as_deref(),
        };
        if let Some(t) = subnet_type.filter(|t| *t != APPLICATION_SUBNET_TYPE) {
            return Err(format!("Provided subnet type {t} does not exist."));
        }
        let mut counts = vec![0usize; self.subnets.len()];
        for id in self.canisters.keys() {
            counts[self.subnet_of(id)] += 1;
        }
        counts
            .iter()
            .enumerate()
            .min_by_key(|(_, n)| **n)
            .map(|(i, _)| i)
            .ok_or_else(|| "No subnets in which to create a canister.".to_string())
    }
}
