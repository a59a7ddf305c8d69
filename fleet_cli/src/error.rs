//! Every failure of a command, and the exit code it maps to.

use candid::Principal;

use crate::backend::CallError;
use crate::identity::IdentityError;
use crate::phrase::PhraseError;
use crate::wasm::WasmError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Phrase(#[from] PhraseError),
    #[error(transparent)]
    Identity(#[from] IdentityError),
    #[error(transparent)]
    Wasm(#[from] WasmError),
    #[error("{sender} is not a controller of {canister}: {source}")]
    NotController {
        canister: Principal,
        sender: Principal,
        source: CallError,
    },
    #[error("{step} failed: {source}")]
    Call { step: String, source: CallError },
    #[error("the install was refused, the canister keeps its previous module and was started again: {source}")]
    InstallFailed { source: CallError },
    #[error("the health check failed ({reason}); the canister was restored from the snapshot taken before the upgrade")]
    RolledBack { reason: String },
    #[error("{what}; restoring the snapshot also failed ({rollback_error}): run `fleet recovery rollback` and `fleet recovery status`")]
    RollbackFailed {
        what: String,
        rollback_error: String,
    },
    #[error("{canister} has no snapshot to roll back to")]
    NoSnapshot { canister: Principal },
    #[error("refused: {0}")]
    Refused(String),
    #[error("{caller} is not allowed to call {method} on manager {manager}: ask an admin to grant the role (`fleet operators add`)")]
    NotAuthorized {
        caller: Principal,
        manager: Principal,
        method: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Io(String),
}

impl CliError {
    /// Process exit code: 2 bad input, 3 not a controller, 4 network or call failure,
    /// 5 install refused (nothing changed), 6 rolled back after a failed health check,
    /// 7 rollback failed (needs attention), 8 refused or not confirmed, 9 nothing to roll back,
    /// 3 also when the manager refuses the caller's role, 10 no such release, operator or record.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_)
            | CliError::Phrase(_)
            | CliError::Identity(_)
            | CliError::Wasm(_)
            | CliError::Io(_) => 2,
            CliError::NotController { .. } | CliError::NotAuthorized { .. } => 3,
            CliError::Call { .. } => 4,
            CliError::InstallFailed { .. } => 5,
            CliError::RolledBack { .. } => 6,
            CliError::RollbackFailed { .. } => 7,
            CliError::Refused(_) => 8,
            CliError::NoSnapshot { .. } => 9,
            CliError::NotFound(_) => 10,
        }
    }

    /// Short machine-readable name for `--json` output.
    pub fn kind(&self) -> &'static str {
        match self {
            CliError::Usage(_) => "usage",
            CliError::Phrase(_) => "phrase",
            CliError::Identity(_) => "identity",
            CliError::Wasm(_) => "wasm",
            CliError::NotController { .. } => "not_controller",
            CliError::Call { .. } => "call_failed",
            CliError::InstallFailed { .. } => "install_failed",
            CliError::RolledBack { .. } => "rolled_back",
            CliError::RollbackFailed { .. } => "rollback_failed",
            CliError::NoSnapshot { .. } => "no_snapshot",
            CliError::Refused(_) => "refused",
            CliError::NotAuthorized { .. } => "not_authorized",
            CliError::NotFound(_) => "not_found",
            CliError::Io(_) => "io",
        }
    }
}
