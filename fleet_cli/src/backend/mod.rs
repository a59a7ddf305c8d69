//! The one seam between command logic and an IC: [`Ic`], with typed calls built on it: to the
//! fleet's own canisters through `fleet_api`'s endpoint types ([`Endpoints`]), and to the
//! management canister ([`Management`]).
//!
//! Two implementations: [`agent::AgentIc`] talks to a real network through ic-agent; the
//! embedded simulator backend (`ic_sim`) plugs in behind the same trait, so every command runs
//! unchanged on both.

pub mod agent;
pub mod managed;
pub mod mgmt;
#[cfg(feature = "sim")]
pub mod sim;

use candid::Principal;
use fleet_api::endpoint::{CallKind, Endpoint};
use rollout_core::CallError as Reject;
use serde::Serialize;

pub use mgmt::Management;

/// A call that did not produce a reply. A reject is the pipeline's own
/// [`rollout_core::CallError`], so what the IC said reaches `rollout_core::classify` unchanged;
/// the other two are failures only a client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CallError {
    /// The IC or the canister rejected the call (IC interface spec, "Reject codes": 1
    /// SYS_FATAL, 2 SYS_TRANSIENT, 3 DESTINATION_INVALID, 4 CANISTER_REJECT, 5 CANISTER_ERROR,
    /// 6 SYS_UNKNOWN).
    #[error("rejected (reject code {}{}): {}", reject.reject_code, error_code.as_deref().map(|c| format!(", {c}")).unwrap_or_default(), reject.message)]
    Reject {
        reject: Reject,
        /// The IC's error code such as `IC0512`, when given.
        error_code: Option<String>,
    },
    /// The network could not be reached or answered something that is not a reply.
    #[error("cannot reach the network: {0}")]
    Transport(String),
    /// A reply came back but is not what the method's candid type says.
    #[error("unexpected reply from {method}: {message}")]
    Decode { method: String, message: String },
}

/// SYS_UNKNOWN: what the pipeline is told when the CLI cannot know whether a call took effect.
const SYS_UNKNOWN: u32 = 6;

impl CallError {
    pub fn reject(code: u32, message: impl Into<String>, error_code: Option<String>) -> Self {
        CallError::Reject {
            reject: Reject {
                reject_code: code,
                message: message.into(),
            },
            error_code,
        }
    }

    /// The error as the pipeline classifies it: a reject as it is; a transport or decoding
    /// failure as SYS_UNKNOWN, since the call may or may not have taken effect.
    pub fn to_pipeline(&self) -> Reject {
        match self {
            CallError::Reject { reject, .. } => reject.clone(),
            other => Reject {
                reject_code: SYS_UNKNOWN,
                message: other.to_string(),
            },
        }
    }

    /// True when the rejection says the caller lacks permission (e.g. is not a controller):
    /// CANISTER_REJECT or CANISTER_ERROR whose error code is IC0512 ("not authorized"), or a
    /// message saying so (older replicas omit error codes).
    pub fn is_not_authorized(&self) -> bool {
        match self {
            CallError::Reject { reject, error_code } => {
                error_code.as_deref() == Some("IC0512")
                    || ((reject.reject_code == 4 || reject.reject_code == 5)
                        && (reject.message.contains("controller")
                            || reject.message.contains("authoriz")))
            }
            _ => false,
        }
    }
}

/// A connection to an IC as one sender.
///
/// `canister` may be the management canister (`aaaaa-aa`): the implementation then finds the
/// effective canister id in the argument (IC interface spec, "Effective canister id": the
/// `canister_id` field of the argument record, or `target_canister` for
/// `install_chunked_code`).
pub trait Ic {
    /// An update call; returns the candid-encoded reply.
    fn update(&self, canister: Principal, method: &str, arg: Vec<u8>)
        -> Result<Vec<u8>, CallError>;
    /// A query call; returns the candid-encoded reply.
    fn query(&self, canister: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, CallError>;
    /// The principal calls are sent as.
    fn sender(&self) -> Principal;
    /// Lets `duration` pass between two polls (`rollout status --watch`): a real network is
    /// waited for; a simulator runs its rounds over that much simulated time.
    fn idle(&self, duration: std::time::Duration) {
        std::thread::sleep(duration);
    }
}

/// Calls to the manager and the user canisters, available on every [`Ic`]: a method is named
/// by its [`Endpoint`] type, never by a string.
pub trait Endpoints: Ic {
    /// Calls `E` on `canister`, as a query or an update as `E::KIND` says, and decodes its
    /// reply.
    fn call<E: Endpoint>(&self, canister: Principal, args: E::Args) -> Result<E::Reply, CallError> {
        let decode = |e: candid::Error| CallError::Decode {
            method: E::NAME.to_string(),
            message: e.to_string(),
        };
        let arg = candid::encode_args(args).map_err(decode)?;
        let reply = match E::KIND {
            CallKind::Query => self.query(canister, E::NAME, arg)?,
            CallKind::Update => self.update(canister, E::NAME, arg)?,
        };
        candid::decode_one(&reply).map_err(decode)
    }
}

impl<T: Ic + ?Sized> Endpoints for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_authorized_is_recognised() {
        let e = CallError::reject(
            5,
            "Only controllers of canister x can call ic00 method canister_status",
            Some("IC0512".into()),
        );
        assert!(e.is_not_authorized());
        let other = CallError::reject(5, "trapped", Some("IC0503".into()));
        assert!(!other.is_not_authorized());
    }
}
