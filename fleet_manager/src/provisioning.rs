//! Creating user canisters for their owners, and adopting canisters created elsewhere.
//!
//! A creation is recorded (status `Provisioning`) as soon as `create_canister` returns the id,
//! before the code is installed: a failure afterwards leaves a record that the owner's next call
//! resumes, so a paid-for canister is never forgotten.

use crate::access::Caller;
use crate::chunk_store::ensure_mirrored;
use crate::mgmt::Runtime;
use crate::registry::push_history;
use crate::state::{self, CreationGuard};
use candid::{Encode, Principal};
use fleet_api::manager::{
    AdoptCanisterArg, AdoptCanisterError, CanisterStatus, CreateUserCanisterArg,
    CreateUserCanisterError, ReleaseRef, UpgradeEvent, UpgradeOutcome, UpgradePolicy, UserCanister,
};
use fleet_api::user::{UserCanisterArg, UserInitArg};

/// Principals that can never own or recover a user canister: nobody holds the anonymous
/// principal's key, and the manager or the management canister as a second controller would
/// leave the owner without a way to recover.
fn is_reserved(principal: Principal, manager: Principal) -> bool {
    principal == Principal::anonymous()
        || principal == manager
        || principal == Principal::management_canister()
}

pub async fn create_user_canister<R: Runtime>(
    rt: &R,
    caller: Principal,
    arg: CreateUserCanisterArg,
) -> Result<UserCanister, CreateUserCanisterError> {
    use CreateUserCanisterError as E;
    if caller == Principal::anonymous() {
        return Err(E::AnonymousCaller);
    }
    let manager = rt.self_id();
    let recovery = arg.recovery_principal;
    if is_reserved(recovery, manager) {
        return Err(E::InvalidRecoveryPrincipal);
    }
    let _guard = CreationGuard::acquire(caller).ok_or(E::InProgress)?;
    let record = match state::with(|s| s.registry.by_owner(&caller)) {
        Some(existing) => {
            if existing.recovery_principal != recovery {
                return Err(E::RecoveryPrincipalMismatch {
                    existing: existing.recovery_principal,
                });
            }
            if existing.status != CanisterStatus::Provisioning {
                return Ok(existing);
            }
            existing
        }
        None => create(rt, caller, recovery).await?,
    };
    install(rt, record).await
}

/// Takes a rate-limit token, creates the canister and records it.
async fn create<R: Runtime>(
    rt: &R,
    owner: Principal,
    recovery: Principal,
) -> Result<UserCanister, CreateUserCanisterError> {
    use CreateUserCanisterError as E;
    let settings = state::with(|s| s.settings());
    let default = settings
        .default_release
        .clone()
        .ok_or(E::NoDefaultRelease)?;
    check_cycles(rt, settings.user_canister_cycles)?;
    let now = rt.now_ns();
    state::with_mut(|s| {
        let mut bucket = *s.creation_bucket.get();
        let taken = bucket.try_take(settings.creation_limit, now);
        s.creation_bucket.set(bucket);
        taken.map_err(|retry_after_secs| E::RateLimited { retry_after_secs })
    })?;
    let refund = || {
        state::with_mut(|s| {
            let mut bucket = *s.creation_bucket.get();
            bucket.refund(settings.creation_limit);
            s.creation_bucket.set(bucket);
        })
    };
    // Mirror first: a chunk store problem then costs no canister.
    if let Err(e) = ensure_mirrored(rt, &default.version).await {
        refund();
        return Err(E::Mirror(e));
    }
    // The balance may have changed while mirroring; attaching more cycles than the balance
    // would trap (interface spec, `ic0.call_cycles_add128`).
    if let Err(e) = check_cycles(rt, settings.user_canister_cycles) {
        refund();
        return Err(e);
    }
    let manager = rt.self_id();
    let canister_id = match rt
        .create_canister(vec![manager, recovery], settings.user_canister_cycles)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            refund();
            return Err(E::CreateFailed(e.message));
        }
    };
    let now = rt.now_ns();
    let record = UserCanister {
        canister_id,
        owner,
        recovery_principal: recovery,
        current_release: None,
        policy: UpgradePolicy::Auto,
        status: CanisterStatus::Provisioning,
        last_error: None,
        history: vec![],
        created_at_ns: now,
        updated_at_ns: now,
    };
    state::with_mut(|s| s.registry.put(record.clone()));
    Ok(record)
}

fn check_cycles<R: Runtime>(rt: &R, user_cycles: u128) -> Result<(), CreateUserCanisterError> {
    let needed = rt.create_canister_fee().saturating_add(user_cycles);
    let available = rt.cycles_balance();
    if available < needed {
        return Err(CreateUserCanisterError::InsufficientCycles { available, needed });
    }
    Ok(())
}

/// Installs the default release into a `Provisioning` canister and marks it `Active`.
async fn install<R: Runtime>(
    rt: &R,
    mut record: UserCanister,
) -> Result<UserCanister, CreateUserCanisterError> {
    use CreateUserCanisterError as E;
    let release: ReleaseRef =
        state::with(|s| s.settings().default_release).ok_or(E::NoDefaultRelease)?;
    let mirrored = ensure_mirrored(rt, &release.version)
        .await
        .map_err(E::Mirror)?;
    let init = UserCanisterArg::Init(UserInitArg {
        owner: record.owner,
        recovery_principal: record.recovery_principal,
        manager: rt.self_id(),
        release_sha256: release.sha256.clone(),
    });
    let arg = Encode!(&init).expect("encoding the user canister init arg");
    let result = rt
        .install_chunked(
            record.canister_id,
            mirrored.chunk_hashes,
            release.sha256.clone(),
            arg,
        )
        .await;
    let now = rt.now_ns();
    // Re-read: the record may have changed while the install was awaited.
    if let Some(latest) = state::with(|s| s.registry.get(&record.canister_id)) {
        record = latest;
    }
    record.updated_at_ns = now;
    match result {
        Ok(()) => {
            record.status = CanisterStatus::Active;
            record.last_error = None;
            let from = record.current_release.clone();
            push_history(
                &mut record,
                UpgradeEvent {
                    at_ns: now,
                    from,
                    to: release.clone(),
                    outcome: UpgradeOutcome::Installed,
                },
            );
            record.current_release = Some(release);
            state::with_mut(|s| s.registry.put(record.clone()));
            Ok(record)
        }
        Err(e) => {
            let message = format!("{}: {}", e.method, e.message);
            record.last_error = Some(message.clone());
            state::with_mut(|s| s.registry.put(record.clone()));
            Err(E::InstallFailed {
                canister_id: record.canister_id,
                message,
            })
        }
    }
}

/// Registers a canister created elsewhere whose controllers are exactly the manager and one
/// recovery principal, and that runs a published release.
pub async fn adopt_canister<R: Runtime>(
    rt: &R,
    caller: Caller,
    caller_is_deployer: bool,
    arg: AdoptCanisterArg,
) -> Result<UserCanister, AdoptCanisterError> {
    use AdoptCanisterError as E;
    if caller.principal == Principal::anonymous() {
        return Err(E::AnonymousCaller);
    }
    let manager = rt.self_id();
    let owner = arg.owner.unwrap_or(caller.principal);
    if is_reserved(owner, manager) {
        return Err(E::InvalidOwner);
    }
    let id = arg.canister_id;
    let check_free = || {
        state::with(|s| {
            if s.registry.get(&id).is_some() {
                return Err(E::AlreadyRegistered);
            }
            match s.registry.by_owner(&owner) {
                Some(c) => Err(E::OwnerHasCanister {
                    canister_id: c.canister_id,
                }),
                None => Ok(()),
            }
        })
    };
    check_free()?;
    let _guard = CreationGuard::acquire(owner).ok_or(E::InProgress)?;
    let status = rt
        .canister_status(id)
        .await
        .map_err(|e| E::StatusFailed(e.message))?;
    let recovery = match status.controllers.as_slice() {
        [a, b] if *a == manager && !is_reserved(*b, manager) => *b,
        [a, b] if *b == manager && !is_reserved(*a, manager) => *a,
        _ => {
            return Err(E::InvalidControllers {
                controllers: status.controllers,
            })
        }
    };
    if !caller_is_deployer && caller.principal != recovery {
        return Err(E::NotAuthorized);
    }
    let release = status
        .module_hash
        .as_deref()
        .and_then(|hash| state::with(|s| s.store.get_by_sha256(hash)))
        .map(|meta| ReleaseRef {
            version: meta.version,
            sha256: meta.sha256,
        })
        .ok_or(E::UnknownModule {
            module_hash: status.module_hash.clone(),
        })?;
    // Another call may have registered the canister or the owner while we awaited.
    check_free()?;
    let now = rt.now_ns();
    let mut record = UserCanister {
        canister_id: id,
        owner,
        recovery_principal: recovery,
        current_release: Some(release.clone()),
        policy: UpgradePolicy::Auto,
        status: CanisterStatus::Active,
        last_error: None,
        history: vec![],
        created_at_ns: now,
        updated_at_ns: now,
    };
    push_history(
        &mut record,
        UpgradeEvent {
            at_ns: now,
            from: None,
            to: release,
            outcome: UpgradeOutcome::Adopted,
        },
    );
    state::with_mut(|s| s.registry.put(record.clone()));
    Ok(record)
}
