//! The per-user app canister: a small notes store in stable memory, owned by one end user.
//!
//! Its controllers are the fleet manager and the owner's recovery principal; it never upgrades
//! itself. An owner who wants a newer release asks the manager ([`request_upgrade`]), which
//! answers at once and upgrades the canister later from a timer, so no call of this canister is
//! outstanding on the manager while the manager stops it.
//!
//! Builds (cargo features): default = release 1.0.0, schema 1; `v2` = release 2.0.0, schema 2,
//! whose `post_upgrade` migrates schema-1 notes. Fault variants for tests of the upgrade
//! pipeline: `fault_post_upgrade_trap`, `fault_stall`, `fault_health`; and `fault_switch`
//! (combines with `v2`), which adds a controller-only switch so that a test makes a release fail
//! on some canisters only (see `src/faults.rs`).
//!
//! State lives in stable structures only (see [`memory`]); there is no `pre_upgrade`, so an
//! upgrade costs nothing before the new module runs.

#[cfg(feature = "fault_switch")]
pub mod faults;
pub mod memory;
pub mod notes;
pub mod state;

use candid::Principal;
use fleet_api::endpoint::{CallKind, Endpoint};
use fleet_api::rollout::method::RequestUpgrade as ManagerRequestUpgrade;
use fleet_api::rollout::{RequestUpgradeArg, RequestUpgradeReply};
use fleet_api::user::{
    FleetHealth, GetNoteReply, ListNotesArg, ListNotesReply, NoteError, NoteWriteReply,
    PendingReleasesError, PendingReleasesReply, PutNoteArg, RequestUpgradeViaManagerError,
    RequestUpgradeViaManagerReply, UpgradeTicket, UserCanisterArg, UserCanisterInfo,
};
use ic_cdk::call::{Call, CallFailed};

fn trap_on_err(result: Result<(), String>) {
    if let Err(message) = result {
        ic_cdk::trap(message);
    }
}

/// Install: requires `Init`. A bad argument traps, so the install fails and nothing is kept.
#[ic_cdk::init]
fn init(arg: UserCanisterArg) {
    match arg {
        UserCanisterArg::Init(init) => trap_on_err(state::install(init, ic_cdk::api::time())),
        UserCanisterArg::Upgrade(_) => ic_cdk::trap("install needs an Init argument"),
    }
}

/// Upgrade: `Upgrade` or no argument at all (then the release sha256 is recorded as unknown,
/// since a canister cannot read its own module hash). `Init` is refused: an upgrade never
/// changes who owns the canister. A trap here makes the IC keep the previous module and state
/// (interface spec, "IC method `install_code`", upgrade mode).
#[ic_cdk::post_upgrade]
fn post_upgrade(arg: Option<UserCanisterArg>) {
    let upgrade = match arg {
        None => None,
        Some(UserCanisterArg::Upgrade(upgrade)) => Some(upgrade),
        Some(UserCanisterArg::Init(_)) => ic_cdk::trap("upgrade takes an Upgrade argument"),
    };
    trap_on_err(state::upgrade(upgrade, ic_cdk::api::time()));
    #[cfg(feature = "fault_post_upgrade_trap")]
    ic_cdk::trap("fault_post_upgrade_trap: post_upgrade fails after migrating");
    // The switch was set through the previous module; the trap undoes the migration too.
    #[cfg(feature = "fault_switch")]
    if faults::get().trap_post_upgrade {
        ic_cdk::trap("fault_switch: trap_post_upgrade is set, post_upgrade fails after migrating");
    }
}

fn owner_only() -> Result<(), Principal> {
    let caller = ic_cdk::api::msg_caller();
    // The owner is never anonymous (checked at install), so this also refuses anonymous calls.
    if state::with(|s| s.config().owner == caller) {
        Ok(())
    } else {
        Err(caller)
    }
}

/// Drops, before it is inducted and paid for, an ingress message this canister would refuse:
/// an update from anyone but its owner, or a declared method whose argument does not decode
/// (interface spec, "Ingress message inspection"). Methods `fleet_api` does not declare (the
/// test-only fault switches) are left to their handlers, as are calls from canisters, which
/// are not inspected: the handlers keep their own checks and typed errors.
#[ic_cdk::inspect_message]
fn inspect_message() {
    let method = ic_cdk::api::msg_method_name();
    let admitted = match fleet_api::user::method::decodes(&method, &ic_cdk::api::msg_arg_data()) {
        Some(false) => false,
        Some(true) => {
            let update = fleet_api::user::method::METHODS
                .iter()
                .any(|(name, kind)| *name == method && *kind == CallKind::Update);
            !update || owner_only().is_ok()
        }
        None => true,
    };
    if admitted {
        ic_cdk::api::accept_message();
    }
}

fn notes_owner_only() -> Result<(), NoteError> {
    owner_only().map_err(|caller| NoteError::NotOwner { caller })
}

/// Creates or replaces a note. Owner only.
#[ic_cdk::update]
fn put(arg: PutNoteArg) -> NoteWriteReply {
    notes_owner_only()
        .and_then(|()| {
            let now = ic_cdk::api::time();
            state::with_mut(|s| s.notes.put(arg.key, arg.text, now))
        })
        .into()
}

/// Deletes a note. Owner only.
#[ic_cdk::update]
fn delete(key: String) -> NoteWriteReply {
    notes_owner_only()
        .and_then(|()| state::with_mut(|s| s.notes.delete(key)))
        .into()
}

/// Reads a note. Owner only: notes are private.
#[ic_cdk::query]
fn get(key: String) -> GetNoteReply {
    notes_owner_only()
        .and_then(|()| state::with(|s| s.notes.get(key)))
        .into()
}

/// Notes in key order after `start_after`, at most 100 per page. Owner only.
#[ic_cdk::query]
fn list(arg: ListNotesArg) -> ListNotesReply {
    notes_owner_only()
        .map(|()| state::with(|s| s.notes.list(arg.start_after, arg.limit)))
        .into()
}

/// The app version compiled into the running module.
#[ic_cdk::query]
fn version() -> String {
    state::APP_VERSION.to_string()
}

/// sha256 of the running release as given by the last install or upgrade (empty if unknown).
#[ic_cdk::query]
fn release_sha256() -> serde_bytes::ByteBuf {
    serde_bytes::ByteBuf::from(state::with(|s| s.config().release_sha256.clone()))
}

#[ic_cdk::query]
fn owner() -> Principal {
    state::with(|s| s.config().owner)
}

#[ic_cdk::query]
fn info() -> UserCanisterInfo {
    state::with(|s| {
        let config = s.config();
        UserCanisterInfo {
            owner: config.owner,
            recovery_principal: config.recovery_principal,
            manager: config.manager,
            release_sha256: config.release_sha256.clone(),
            version: state::APP_VERSION.to_string(),
            schema_version: s.header().schema_version,
            installed_at: config.installed_at,
            upgraded_at: config.upgraded_at,
        }
    })
}

/// The manager's post-upgrade check: the running version, and that the state is readable under
/// this build's schema (record count and a checksum over the notes' logical content).
#[ic_cdk::query]
fn fleet_health() -> FleetHealth {
    #[cfg(feature = "fault_switch")]
    let switch = faults::get();
    #[cfg(feature = "fault_switch")]
    if switch.trap_health {
        ic_cdk::trap("fault_switch: trap_health is set, fleet_health traps");
    }
    state::with(|s| {
        let header = s.header();
        let mut problems = Vec::new();
        if header.schema_version != state::SCHEMA_VERSION {
            problems.push(format!(
                "stable schema {} but this release writes {}",
                header.schema_version,
                state::SCHEMA_VERSION
            ));
        }
        if header.layout_version != state::LAYOUT_VERSION {
            problems.push(format!("stable layout {}", header.layout_version));
        }
        if cfg!(feature = "fault_health") {
            problems.push("fault_health: this build reports itself unhealthy".to_string());
        }
        #[cfg(feature = "fault_switch")]
        if switch.fail_health {
            problems.push("fault_switch: fail_health is set".to_string());
        }
        FleetHealth {
            ok: problems.is_empty(),
            version: state::APP_VERSION.to_string(),
            schema_version: header.schema_version,
            records: s.notes.len(),
            checksum: s.notes.checksum(),
            message: (!problems.is_empty()).then(|| problems.join("; ")),
        }
    })
}

/// Asks the manager to upgrade this canister (to `target_version`, or to the manager's current
/// release). Owner only. The manager's `request_upgrade` answers at once with a ticket or its
/// typed refusal.
#[ic_cdk::update]
async fn request_upgrade(target_version: Option<String>) -> RequestUpgradeViaManagerReply {
    ask_manager_for_upgrade(target_version).await.into()
}

async fn ask_manager_for_upgrade(
    target_version: Option<String>,
) -> Result<UpgradeTicket, RequestUpgradeViaManagerError> {
    owner_only().map_err(|caller| RequestUpgradeViaManagerError::NotOwner { caller })?;
    let manager = state::with(|s| s.config().manager);
    // `None` canister id: the manager takes the caller, i.e. this canister.
    let arg = RequestUpgradeArg {
        canister_id: None,
        target_version,
    };
    let reply = Call::unbounded_wait(manager, ManagerRequestUpgrade::NAME)
        .with_arg(&arg)
        .await
        .map_err(|e| match e {
            CallFailed::CallRejected(rejected) => RequestUpgradeViaManagerError::CallFailed {
                reject_code: rejected.raw_reject_code(),
                message: rejected.reject_message().to_string(),
            },
            other => RequestUpgradeViaManagerError::CallFailed {
                reject_code: 0,
                message: other.to_string(),
            },
        })?;
    decode_manager_reply(&reply.into_bytes())
}

/// The manager's pending releases, read through a composite query so the owner learns from
/// their own canister what code may reach it, and from when (interface spec, "Composite query
/// calls": same subnet only).
#[ic_cdk::query(composite = true)]
async fn pending_releases() -> PendingReleasesReply {
    let manager = state::with(|s| s.config().manager);
    let reply = Call::unbounded_wait(
        manager,
        fleet_api::governance::method::PendingReleases::NAME,
    )
    .await
    .map_err(|e| PendingReleasesError::ManagerUnreachable {
        reject_code: match &e {
            CallFailed::CallRejected(r) => r.raw_reject_code(),
            _ => 0,
        },
        message: e.to_string(),
    });
    reply
        .and_then(|r| {
            r.candid::<Vec<fleet_api::governance::PendingRelease>>()
                .map_err(|e| PendingReleasesError::ManagerUnreachable {
                    reject_code: 0,
                    message: e.to_string(),
                })
        })
        .into()
}

/// Decodes the manager's `request_upgrade` reply: `variant { Ok: UpgradeTicket; Err:
/// RequestUpgradeError }`, both types from `fleet_api`, so a refusal reaches the owner typed.
pub fn decode_manager_reply(bytes: &[u8]) -> Result<UpgradeTicket, RequestUpgradeViaManagerError> {
    match candid::decode_one::<RequestUpgradeReply>(bytes).map(RequestUpgradeReply::into_result) {
        Ok(Ok(ticket)) => Ok(ticket),
        Ok(Err(error)) => Err(RequestUpgradeViaManagerError::Refused { error }),
        Err(e) => Err(RequestUpgradeViaManagerError::BadReply {
            message: e.to_string(),
        }),
    }
}

/// Fault variant: never replies while the canister runs, so `stop_canister` cannot complete
/// (it waits for open call contexts; interface spec, "IC method `stop_canister`"). It keeps an
/// outgoing call pending at all times: calls to the management canister's `raw_rand` go on even
/// while the canister is stopping, when calls to itself would be rejected.
#[cfg(feature = "fault_stall")]
#[ic_cdk::update]
async fn stall() {
    owner_only().unwrap_or_else(|caller| ic_cdk::trap(format!("{caller} is not the owner")));
    loop {
        let _ = Call::unbounded_wait(Principal::management_canister(), "raw_rand").await;
    }
}

/// Test builds only: sets this canister's fault switch, read by `post_upgrade` and
/// `fleet_health` of this and every later `fault_switch` module. Controllers only, so that a
/// test acts as the manager or the recovery principal would, and the owner cannot break it.
#[cfg(feature = "fault_switch")]
#[ic_cdk::update]
fn set_faults(switch: faults::FaultSwitch) -> Result<(), faults::SetFaultsError> {
    if !ic_cdk::api::is_controller(&ic_cdk::api::msg_caller()) {
        return Err(faults::SetFaultsError::NotAController);
    }
    faults::set(switch);
    Ok(())
}

/// Test builds only: the fault switch as stored (all false if never set).
#[cfg(feature = "fault_switch")]
#[ic_cdk::query]
fn get_faults() -> faults::FaultSwitch {
    faults::get()
}

#[cfg(test)]
mod tests;
