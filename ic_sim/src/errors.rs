//! Reject codes, error codes and the reject response, shaped like the pocket-ic crate's types so
//! that tests written against `pocket_ic::RejectResponse` compile unchanged.
//!
//! Reject codes are those of the interface spec, section "Reject codes"; error codes are the
//! replica's user-facing codes (`IC0xxx`), whose first digit is the reject code.

use std::fmt;

/// A reject code of the interface spec ("Reject codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectCode {
    SysFatal = 1,
    SysTransient = 2,
    DestinationInvalid = 3,
    CanisterReject = 4,
    CanisterError = 5,
    SysUnknown = 6,
}

impl RejectCode {
    /// The code from its number (1-6), as `ic0.msg_reject_code` reports it.
    pub fn from_u32(code: u32) -> Option<Self> {
        Some(match code {
            1 => Self::SysFatal,
            2 => Self::SysTransient,
            3 => Self::DestinationInvalid,
            4 => Self::CanisterReject,
            5 => Self::CanisterError,
            6 => Self::SysUnknown,
            _ => return None,
        })
    }
}

/// The replica's error codes that this simulator produces (a subset of pocket-ic's `ErrorCode`,
/// with the same names and numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    CanisterQueueFull = 201,
    IngressMessageTimeout = 202,
    SubnetOversubscribed = 203,
    StopCanisterRequestTimeout = 206,
    CanisterOutOfCycles = 207,
    CanisterNotFound = 301,
    CanisterSnapshotNotFound = 305,
    InsufficientCyclesForCreateCanister = 403,
    SubnetNotFound = 404,
    CanisterRejectedMessage = 406,
    UnknownManagementMessage = 407,
    InvalidManagementPayload = 408,
    CanisterSnapshotImmutable = 409,
    CanisterTrapped = 502,
    CanisterCalledTrap = 503,
    CanisterContractViolation = 504,
    CanisterInvalidWasm = 505,
    CanisterDidNotReply = 506,
    CanisterOutOfMemory = 507,
    CanisterStopped = 508,
    CanisterStopping = 509,
    CanisterNotStopped = 510,
    CanisterStoppingCancelled = 511,
    CanisterInvalidController = 512,
    CanisterFunctionNotFound = 513,
    CanisterNonEmpty = 514,
    InsufficientCyclesInCall = 520,
    CanisterWasmEngineError = 521,
    CanisterInstructionLimitExceeded = 522,
    QueryCallGraphTooDeep = 525,
    QueryCallGraphTotalInstructionLimitExceeded = 526,
    CompositeQueryCalledInReplicatedMode = 527,
    CanisterMethodNotFound = 536,
    CanisterWasmModuleNotFound = 537,
    DeadlineExpired = 601,
    ResponseDropped = 602,
}

impl ErrorCode {
    /// The reject code this error code belongs to (its first digit).
    pub fn reject_code(self) -> RejectCode {
        RejectCode::from_u32(self as u32 / 100).expect("error codes start with a reject code")
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IC{:04}", *self as u32)
    }
}

/// An unsuccessful call, as pocket-ic reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectResponse {
    pub reject_code: RejectCode,
    pub reject_message: String,
    pub error_code: ErrorCode,
    /// Always `true`: the simulator's replies stand for certified ones.
    pub certified: bool,
}

impl RejectResponse {
    pub(crate) fn new(error_code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            reject_code: error_code.reject_code(),
            reject_message: message.into(),
            error_code,
            certified: true,
        }
    }

    /// A reject that a canister produced with `ic0.msg_reject`.
    pub(crate) fn canister_reject(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::CanisterRejectedMessage, message)
    }
}

impl fmt::Display for RejectResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reject code {:?}, reject message {}, error code {:?}",
            self.reject_code, self.reject_message, self.error_code
        )
    }
}

impl std::error::Error for RejectResponse {}
