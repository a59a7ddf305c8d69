//! The IC an end-to-end scenario runs on, chosen at run time: the embedded `ic_sim` (the
//! default) or a PocketIC server (`FLEET_TEST_BACKEND=pocket-ic`, with `POCKET_IC_BIN` naming
//! the server binary).
//!
//! [`Backend`] holds only what both offer, in types of its own, so a scenario written against
//! it runs unchanged on either. What only the simulator has (fault injection, round counters,
//! instruction meters) stays on `ic_sim::IcSim` and the scenarios that use it stay ic_sim-only.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use candid::{Nat, Principal};
use fleet_api::endpoint::CallKind;
use ic_sim::IcSim;
use pocket_ic::{PocketIc, PocketIcBuilder};

/// Chooses the backend: unset, `ic_sim` or `ic-sim` for the simulator, `pocket-ic` for PocketIC.
pub const BACKEND_ENV: &str = "FLEET_TEST_BACKEND";
/// The PocketIC server binary (pocket-ic's own variable); required by the `pocket-ic` backend,
/// which never downloads a server.
pub const POCKET_IC_BIN_ENV: &str = "POCKET_IC_BIN";

/// A call the IC refused, as either backend reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The reject code (1 = SYS_FATAL … 5 = CANISTER_ERROR).
    pub reject_code: u64,
    /// The replica's error code number (406 for IC0406).
    pub error_code: u64,
    pub message: String,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reject code {}, IC{:04}: {}",
            self.reject_code, self.error_code, self.message
        )
    }
}

impl From<ic_sim::RejectResponse> for Reject {
    fn from(e: ic_sim::RejectResponse) -> Self {
        Reject {
            reject_code: e.reject_code as u64,
            error_code: e.error_code as u64,
            message: e.reject_message,
        }
    }
}

impl From<pocket_ic::RejectResponse> for Reject {
    fn from(e: pocket_ic::RejectResponse) -> Self {
        Reject {
            reject_code: e.reject_code as u64,
            error_code: e.error_code as u64,
            message: e.reject_message,
        }
    }
}

/// An ingress message submitted and not yet awaited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageId {
    pub effective_principal: Principal,
    pub message_id: Vec<u8>,
}

impl From<ic_sim::RawMessageId> for MessageId {
    fn from(m: ic_sim::RawMessageId) -> Self {
        MessageId {
            effective_principal: m.effective_principal,
            message_id: m.message_id,
        }
    }
}

/// Whether a canister runs, as `canister_status` says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Running,
    Stopping,
    Stopped,
}

/// The parts of `canister_status` the scenarios check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub state: RunState,
    pub module_hash: Option<Vec<u8>>,
    pub controllers: Vec<Principal>,
    pub cycles: Nat,
}

/// How [`Backend::install_code`] installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// On an empty canister.
    Install,
    /// Over the installed module, keeping stable memory.
    Upgrade,
}

/// The IC operations the end-to-end scenarios need, as both `ic_sim` and PocketIC offer them.
pub trait Backend {
    /// `ic_sim` or `pocket-ic`, for messages.
    fn name(&self) -> &'static str;
    /// A new canister whose only controller is `controller`.
    fn create_canister(&self, controller: Principal) -> Principal;
    fn add_cycles(&self, canister: Principal, amount: u128) -> u128;
    fn cycle_balance(&self, canister: Principal) -> u128;
    /// Installs `wasm` on an empty canister or upgrades it, as `sender` (of any size: a large
    /// module goes through the chunk store).
    fn install_code(
        &self,
        mode: Mode,
        canister: Principal,
        wasm: Vec<u8>,
        arg: Vec<u8>,
        sender: Principal,
    ) -> Result<(), Reject>;
    /// A query, or an update call as an ingress message executed to its reply.
    fn call(
        &self,
        kind: CallKind,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<Vec<u8>, Reject>;
    /// Submits an ingress message that runs in the next rounds.
    fn submit(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<MessageId, Reject>;
    /// The reply of a submitted message, `None` while it is pending.
    fn ingress_status(&self, message: &MessageId) -> Option<Result<Vec<u8>, Reject>>;
    /// One round.
    fn tick(&self);
    fn advance_time(&self, by: Duration);
    fn controllers(&self, canister: Principal) -> Vec<Principal>;
    /// `canister_status` called by `sender`, who must be a controller.
    fn status(&self, canister: Principal, sender: Principal) -> Result<Status, Reject>;
    /// How many snapshots a canister holds, as `list_canister_snapshots` tells a controller.
    fn snapshot_count(&self, canister: Principal, sender: Principal) -> Result<usize, Reject>;
}

/// Why the backend a run asked for cannot be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// `FLEET_TEST_BACKEND` names no backend.
    Unknown(String),
    /// `pocket-ic` was asked for without `POCKET_IC_BIN`.
    NoServerBinary,
    /// `POCKET_IC_BIN` names no file.
    ServerBinaryMissing(PathBuf),
    /// The server is not one pocket-ic 16 works with: given it, pocket-ic would download one.
    ServerVersion { path: PathBuf, found: String },
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::Unknown(name) => write!(
                f,
                "{BACKEND_ENV}={name:?} is no backend: use ic_sim (the default) or pocket-ic"
            ),
            BackendError::NoServerBinary => write!(
                f,
                "{BACKEND_ENV}=pocket-ic needs {POCKET_IC_BIN_ENV}, the path of a PocketIC \
                 server binary (this project's tests never download one)"
            ),
            BackendError::ServerBinaryMissing(path) => {
                write!(f, "{POCKET_IC_BIN_ENV}={} is not a file", path.display())
            }
            BackendError::ServerVersion { path, found } => write!(
                f,
                "{POCKET_IC_BIN_ENV}={} reports {found:?}, not a {SERVER_NAME} {SERVER_MAJOR}.x \
                 that the pocket-ic crate works with",
                path.display()
            ),
        }
    }
}

impl std::error::Error for BackendError {}

/// Which backend a run asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Sim,
    PocketIc(PathBuf),
}

/// What a server the pocket-ic crate 16 works with prints for `--version` (16.0.0 to 17).
const SERVER_NAME: &str = "pocket-ic-server";
const SERVER_MAJOR: &str = "16";

/// Checks the server's version before pocket-ic does: pocket-ic answers an unusable binary by
/// downloading a server, which this project's tests must never do.
fn check_server(path: &Path) -> Result<(), BackendError> {
    let output = std::process::Command::new(path).arg("--version").output();
    let found = match output {
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        Err(e) => e.to_string(),
    };
    let expected = format!("{SERVER_NAME} {SERVER_MAJOR}.");
    if found.starts_with(&expected) {
        Ok(())
    } else {
        Err(BackendError::ServerVersion {
            path: path.to_path_buf(),
            found,
        })
    }
}

/// Reads the choice from the two variables' values (passed in, so it can be tested).
pub fn choose(backend: Option<&str>, server: Option<PathBuf>) -> Result<Choice, BackendError> {
    match backend.map(str::trim) {
        None | Some("") | Some("ic_sim") | Some("ic-sim") => Ok(Choice::Sim),
        Some("pocket-ic") | Some("pocket_ic") => {
            let path = server.ok_or(BackendError::NoServerBinary)?;
            if path.is_file() {
                Ok(Choice::PocketIc(path))
            } else {
                Err(BackendError::ServerBinaryMissing(path))
            }
        }
        Some(other) => Err(BackendError::Unknown(other.to_string())),
    }
}

/// The backend the environment asks for, fresh: a new simulator or a new PocketIC instance
/// with one application subnet.
pub fn from_env() -> Result<Box<dyn Backend>, BackendError> {
    let backend = std::env::var(BACKEND_ENV).ok();
    let server = std::env::var_os(POCKET_IC_BIN_ENV).map(PathBuf::from);
    Ok(match choose(backend.as_deref(), server)? {
        Choice::Sim => Box::new(IcSim::new()),
        Choice::PocketIc(path) => {
            check_server(&path)?;
            Box::new(
                PocketIcBuilder::new()
                    .with_application_subnet()
                    .with_server_binary(path)
                    .build(),
            )
        }
    })
}

/// Like [`from_env`], panicking with its message: for tests.
pub fn for_test() -> Box<dyn Backend> {
    from_env().unwrap_or_else(|e| panic!("{e}"))
}

/// The methods both backends offer under the same names and shapes (pocket-ic's, which
/// `ic_sim` mirrors); `Self::` picks each type's own inherent method.
macro_rules! same_on_both {
    ($name:literal, $status_type:path) => {
        fn name(&self) -> &'static str {
            $name
        }

        fn create_canister(&self, controller: Principal) -> Principal {
            self.create_canister_with_settings(Some(controller), None)
        }

        fn add_cycles(&self, canister: Principal, amount: u128) -> u128 {
            Self::add_cycles(self, canister, amount)
        }

        fn cycle_balance(&self, canister: Principal) -> u128 {
            Self::cycle_balance(self, canister)
        }

        fn install_code(
            &self,
            mode: Mode,
            canister: Principal,
            wasm: Vec<u8>,
            arg: Vec<u8>,
            sender: Principal,
        ) -> Result<(), Reject> {
            match mode {
                // pocket-ic's `install_canister` panics on a reject; a reinstall of an empty
                // canister is the same install and returns it.
                Mode::Install => self.reinstall_canister(canister, wasm, arg, Some(sender)),
                Mode::Upgrade => self.upgrade_canister(canister, wasm, arg, Some(sender)),
            }
            .map_err(Reject::from)
        }

        fn call(
            &self,
            kind: CallKind,
            canister: Principal,
            sender: Principal,
            method: &str,
            arg: Vec<u8>,
        ) -> Result<Vec<u8>, Reject> {
            match kind {
                CallKind::Query => self.query_call(canister, sender, method, arg),
                CallKind::Update => self.update_call(canister, sender, method, arg),
            }
            .map_err(Reject::from)
        }

        fn tick(&self) {
            Self::tick(self)
        }

        fn advance_time(&self, by: Duration) {
            Self::advance_time(self, by)
        }

        fn controllers(&self, canister: Principal) -> Vec<Principal> {
            self.get_controllers(canister)
        }

        fn status(&self, canister: Principal, sender: Principal) -> Result<Status, Reject> {
            use $status_type as S;
            let s = self.canister_status(canister, Some(sender))?;
            Ok(Status {
                state: match s.status {
                    S::Running => RunState::Running,
                    S::Stopping => RunState::Stopping,
                    S::Stopped => RunState::Stopped,
                },
                module_hash: s.module_hash,
                controllers: s.settings.controllers,
                cycles: s.cycles,
            })
        }

        fn snapshot_count(&self, canister: Principal, sender: Principal) -> Result<usize, Reject> {
            Ok(self.list_canister_snapshots(canister, Some(sender))?.len())
        }
    };
}

impl Backend for IcSim {
    same_on_both!("ic_sim", ic_sim::management_canister::CanisterStatusType);

    fn submit(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<MessageId, Reject> {
        self.submit_call(canister, sender, method, arg)
            .map(MessageId::from)
            .map_err(Reject::from)
    }

    fn ingress_status(&self, message: &MessageId) -> Option<Result<Vec<u8>, Reject>> {
        let raw = ic_sim::RawMessageId {
            effective_principal: message.effective_principal,
            message_id: message.message_id.clone(),
        };
        IcSim::ingress_status(self, &raw).map(|r| r.map_err(Reject::from))
    }
}

impl Backend for PocketIc {
    same_on_both!("pocket-ic", pocket_ic_mgmt::CanisterStatusType);

    fn submit(
        &self,
        canister: Principal,
        sender: Principal,
        method: &str,
        arg: Vec<u8>,
    ) -> Result<MessageId, Reject> {
        let m = self
            .submit_call(canister, sender, method, arg)
            .map_err(Reject::from)?;
        Ok(MessageId {
            effective_principal: principal_of(&m.effective_principal),
            message_id: m.message_id,
        })
    }

    fn ingress_status(&self, message: &MessageId) -> Option<Result<Vec<u8>, Reject>> {
        let raw = pocket_ic::common::rest::RawMessageId {
            effective_principal: pocket_ic::common::rest::RawEffectivePrincipal::CanisterId(
                message.effective_principal.as_slice().to_vec(),
            ),
            message_id: message.message_id.clone(),
        };
        PocketIc::ingress_status(self, raw).map(|r| r.map_err(Reject::from))
    }
}

/// The canister a message went to: ingress messages in these scenarios always name one.
fn principal_of(effective: &pocket_ic::common::rest::RawEffectivePrincipal) -> Principal {
    use pocket_ic::common::rest::RawEffectivePrincipal as E;
    match effective {
        E::CanisterId(bytes) => Principal::from_slice(bytes),
        E::SubnetId(bytes) => Principal::from_slice(bytes),
        E::None => Principal::management_canister(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulator_is_the_default_and_pocket_ic_needs_its_server() {
        assert_eq!(choose(None, None), Ok(Choice::Sim));
        assert_eq!(choose(Some("ic_sim"), None), Ok(Choice::Sim));
        assert_eq!(
            choose(Some("pocket-ic"), None),
            Err(BackendError::NoServerBinary)
        );
        let missing = PathBuf::from("/nonexistent/pocket-ic");
        assert_eq!(
            choose(Some("pocket-ic"), Some(missing.clone())),
            Err(BackendError::ServerBinaryMissing(missing))
        );
        let this = std::env::current_exe().expect("the test binary");
        assert_eq!(
            choose(Some("pocket-ic"), Some(this.clone())),
            Ok(Choice::PocketIc(this.clone()))
        );
        assert!(matches!(
            choose(Some("replica"), None),
            Err(BackendError::Unknown(_))
        ));
        // A file that is not a PocketIC server is refused before pocket-ic would replace it
        // with a download.
        assert!(matches!(
            check_server(&this),
            Err(BackendError::ServerVersion { .. })
        ));
        assert!(BackendError::NoServerBinary
            .to_string()
            .contains(POCKET_IC_BIN_ENV));
    }
}
