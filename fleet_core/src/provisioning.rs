//! Creating user canisters for their owners, and adopting canisters created elsewhere.
//!
//! A creation is recorded (status `Provisioning`) as soon as `create_canister` returns the id,
//! before the code is installed: a failure afterwards leaves a record that the owner's next call
//! resumes, so a paid-for canister is never forgotten.

use crate::access::Caller;
use crate::admission;
use crate::chunk_store::ensure_mirrored_in;
use crate::registry::push_history;
use crate::runtime::{Runtime, NOT_SENT};
use crate::state::{self, CreationGuard, CreationRefused};
use crate::stored::{
    CanisterStatus, RegistryRecord, ReleaseRef, UpgradeEvent, UpgradeOutcome, UpgradePolicy,
};
use crate::subnets;
use crate::wire::InstallMode;
use candid::{Encode, Principal};
use fleet_api::manager::{
    AdoptCanisterArg, AdoptCanisterError, CreateUserCanisterArg, CreateUserCanisterError,
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
) -> Result<RegistryRecord, CreateUserCanisterError> {
    use CreateUserCanisterError as E;
    if caller == Principal::anonymous() {
        return Err(E::AnonymousCaller);
    }
    let manager = rt.self_id();
    let recovery = arg.recovery_principal;
    if is_reserved(recovery, manager) {
        return Err(E::InvalidRecoveryPrincipal);
    }
    let _guard = CreationGuard::acquire(caller).map_err(|refused| match refused {
        CreationRefused::SameOwner => E::InProgress,
        CreationRefused::Busy { in_progress } => E::Busy { in_progress },
    })?;
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
        None => create(rt, caller, recovery, arg.invite.as_deref()).await?,
    };
    install(rt, record).await
}

/// Admits the caller (admission mode, then the provisioning budget), takes a rate-limit
/// token, creates the canister and records it. Whatever refuses or fails gives back what the
/// earlier steps took: the invite, the budget, the token.
async fn create<R: Runtime>(
    rt: &R,
    owner: Principal,
    recovery: Principal,
    invite: Option<&str>,
) -> Result<RegistryRecord, CreateUserCanisterError> {
    use CreateUserCanisterError as E;
    let settings = state::with(|s| s.settings());
    let default = settings
        .default_release
        .clone()
        .ok_or(E::NoDefaultRelease)?;
    check_cycles(rt, settings.user_canister_cycles)?;
    let cost = rt
        .create_canister_fee()
        .saturating_add(settings.user_canister_cycles);
    let admitted = admission::admit(rt, owner, invite, cost).await?;
    let reservation = match admission::reserve(admitted.manager_cost(cost), rt.now_ns()) {
        Ok(r) => r,
        Err(e) => {
            admitted.undo();
            return Err(e);
        }
    };
    let now = rt.now_ns();
    let taken = state::with_mut(|s| {
        let mut bucket = *s.creation_bucket.get();
        let taken = bucket.try_take(settings.creation_limit, now);
        s.creation_bucket.set(bucket);
        taken
    });
    if let Err(retry_after_secs) = taken {
        admitted.undo();
        admission::release(reservation);
        return Err(E::RateLimited { retry_after_secs });
    }
    let refund = || {
        state::with_mut(|s| {
            let mut bucket = *s.creation_bucket.get();
            bucket.refund(settings.creation_limit);
            s.creation_bucket.set(bucket);
        });
        admitted.undo();
        admission::release(reservation);
    };
    // The placement, then the mirror: a chunk store problem then costs no canister.
    let Some((placed, store)) = subnets::place(rt)
        .and_then(|placed| subnets::store_of(rt, Some(placed.subnet)).map(|s| (placed, s)))
    else {
        refund();
        return Err(E::NoSubnetWithRoom);
    };
    if let Err(e) = ensure_mirrored_in(rt, &default.version, &store).await {
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
    let controllers = vec![manager, recovery];
    let created = if store.own {
        rt.create_canister(controllers, settings.user_canister_cycles)
            .await
    } else {
        rt.create_canister_on(store.subnet, controllers, settings.user_canister_cycles)
            .await
    };
    let canister_id = match created {
        Ok(id) => id,
        // Not sent: the manager's queue to the management canister is full (or it could not
        // pay); nothing was created, so the owner may simply try again.
        Err(e) if e.reject_code == NOT_SENT => {
            refund();
            let in_progress = state::creations_in_progress();
            return Err(E::Busy { in_progress });
        }
        Err(e) => {
            refund();
            return Err(E::CreateFailed(e.message));
        }
    };
    // The caller pays only for a canister that exists: the cycles it attached stay available
    // across the awaits of its call, and what is not accepted goes back with the reply
    // (interface spec, `ic0.msg_cycles_accept128`).
    if let admission::Admitted::Paid { cost } = admitted {
        rt.msg_cycles_accept(cost);
    }
    let now = rt.now_ns();
    let record = RegistryRecord {
        snapshot: None,
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
        subnet: Some(store.subnet),
    };
    state::with_mut(|s| s.registry.put(record.clone()));
    subnets::count_registered(rt, store.subnet);
    drop(placed);
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
    mut record: RegistryRecord,
) -> Result<RegistryRecord, CreateUserCanisterError> {
    use CreateUserCanisterError as E;
    let release: ReleaseRef =
        state::with(|s| s.settings().default_release).ok_or(E::NoDefaultRelease)?;
    let store = subnets::store_of(rt, record.subnet).ok_or(E::NoSubnetWithRoom)?;
    let mirrored = ensure_mirrored_in(rt, &release.version, &store)
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
            InstallMode::Install,
            store.canister,
            record.canister_id,
            &mirrored.chunk_hashes,
            &release.sha256,
            &arg,
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
            let message = format!("install_chunked_code: {}", e.message);
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
) -> Result<RegistryRecord, AdoptCanisterError> {
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
    // Access first: a caller without the role learns nothing about the registry. A registered
    // canister's recovery principal is known without a call.
    if !caller_is_deployer {
        if let Some(known) = state::with(|s| s.registry.get(&id)) {
            if known.recovery_principal != caller.principal {
                return Err(E::NotAuthorized);
            }
        }
    }
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
    let subnet = match arg.subnet {
        None => rt.subnet_self(),
        Some(s) => {
            subnets::store_of(rt, Some(s))
                .ok_or(E::UnknownSubnet(s))?
                .subnet
        }
    };
    let _guard = CreationGuard::acquire(owner).map_err(|_| E::InProgress)?;
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
    let mut record = RegistryRecord {
        snapshot: None,
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
        subnet: Some(subnet),
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
    subnets::count_registered(rt, subnet);
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{block_on, FakeIc, CREATE_FEE as FEE};
    use candid::Decode;
    use fleet_api::manager::Settings;
    use sha2::{Digest, Sha256};
    use wasm_store::BeginUpload;

    const MANAGER: Principal = Principal::from_slice(&[9, 9, 9, 9, 9, 9, 9, 9, 1, 1]);

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    fn fake() -> FakeIc {
        FakeIc::new(MANAGER, 1_000, 100 * FEE)
    }

    /// Publishes a minimal module and makes it the default release; returns its sha256.
    fn publish_default(rt: &FakeIc) -> Vec<u8> {
        let module = b"\0asm\x01\0\0\0".to_vec();
        let sha = Sha256::digest(&module).to_vec();
        state::with_mut(|s| {
            s.store
                .begin_upload(
                    BeginUpload {
                        version: "1.0.0".into(),
                        total_size: module.len() as u64,
                        sha256: sha.clone(),
                        notes: String::new(),
                        interface: None,
                    },
                    p(200),
                    0,
                )
                .unwrap();
            s.store.put_chunk("1.0.0", 0, module).unwrap();
            s.store.finalize("1.0.0", 0).unwrap();
        });
        let settings: Settings = block_on(crate::releases::set_default(rt, "1.0.0")).unwrap();
        assert!(settings.default_release.is_some());
        assert_eq!(rt.chunk_count(), 1, "the default release is mirrored");
        sha
    }

    fn arg(recovery: Principal) -> CreateUserCanisterArg {
        CreateUserCanisterArg {
            recovery_principal: recovery,
            invite: None,
        }
    }

    fn set_mode(mode: fleet_api::governance::AdmissionMode, cycles_per_window: u128) {
        use fleet_api::governance::{Admission, ProvisioningBudget};
        crate::admission::set(
            Admission {
                mode,
                budget: ProvisioningBudget {
                    cycles_per_window,
                    window_secs: 3_600,
                },
            },
            MANAGER,
        )
        .unwrap();
    }

    /// An allowlist admits listed principals and single-use invites; an invite whose creation
    /// failed can be used again, one whose creation succeeded cannot.
    #[test]
    fn the_allowlist_admits_listed_principals_and_each_invite_once() {
        use fleet_api::governance::{AdmissionMode, AllowlistUpdate};
        let rt = fake();
        publish_default(&rt);
        set_mode(AdmissionMode::Allowlist, u128::MAX);
        crate::admission::update_allowlist(AllowlistUpdate {
            add: vec![p(1)],
            add_invites: vec![serde_bytes::ByteBuf::from(
                crate::admission::invite_hash("code-1").to_vec(),
            )],
            ..Default::default()
        })
        .unwrap();
        let created = || rt.calls_of("create_canister");
        assert_eq!(
            block_on(create_user_canister(&rt, p(3), arg(p(4)))),
            Err(CreateUserCanisterError::NotAdmitted)
        );
        let with_invite = |code: &str| CreateUserCanisterArg {
            recovery_principal: p(4),
            invite: Some(code.into()),
        };
        assert_eq!(
            block_on(create_user_canister(&rt, p(3), with_invite("code-2"))),
            Err(CreateUserCanisterError::InvalidInvite)
        );
        assert_eq!(created(), 0, "refused callers cost no creation");
        // A failed creation gives the invite back.
        rt.reject("create_canister", None, 5, "out of capacity", Some(1));
        assert!(matches!(
            block_on(create_user_canister(&rt, p(3), with_invite("code-1"))),
            Err(CreateUserCanisterError::CreateFailed(_))
        ));
        assert_eq!(crate::admission::status().invites, 1);
        block_on(create_user_canister(&rt, p(3), with_invite("code-1"))).unwrap();
        assert_eq!(crate::admission::status().invites, 0);
        assert_eq!(
            block_on(create_user_canister(&rt, p(5), with_invite("code-1"))),
            Err(CreateUserCanisterError::InvalidInvite)
        );
        block_on(create_user_canister(&rt, p(1), arg(p(2)))).unwrap();
        assert_eq!(crate::admission::status().refused_not_admitted, 3);
    }

    /// The budget caps what creations spend per window, whoever asks: past it, a typed refusal
    /// and no call to the IC.
    #[test]
    fn the_budget_refuses_creations_past_its_ceiling() {
        use fleet_api::governance::AdmissionMode;
        let rt = fake();
        publish_default(&rt);
        let cost = crate::fake::CREATE_FEE + state::with(|s| s.settings()).user_canister_cycles;
        set_mode(AdmissionMode::Open, 2 * cost);
        for n in 1..=2 {
            block_on(create_user_canister(&rt, p(n), arg(p(100)))).unwrap();
        }
        let refused = block_on(create_user_canister(&rt, p(3), arg(p(100))));
        assert!(
            matches!(refused, Err(CreateUserCanisterError::BudgetExhausted { retry_after_secs }) if retry_after_secs <= 3_600),
            "{refused:?}"
        );
        assert_eq!(rt.calls_of("create_canister"), 2);
        let status = crate::admission::status();
        assert_eq!(
            (status.spent_in_window, status.refused_over_budget),
            (2 * cost, 1)
        );
        // The next window admits again.
        rt.advance(3_600 * 1_000_000_000);
        block_on(create_user_canister(&rt, p(3), arg(p(100)))).unwrap();
    }

    /// `Paid`: only a canister attaching the cost is admitted, and its cycles are accepted only
    /// once the canister exists.
    #[test]
    fn paid_admission_takes_the_cost_from_a_paying_canister_only_on_success() {
        use fleet_api::governance::AdmissionMode;
        let rt = fake();
        publish_default(&rt);
        set_mode(AdmissionMode::Paid, 0);
        let cost = crate::fake::CREATE_FEE + state::with(|s| s.settings()).user_canister_cycles;
        let payer = Principal::from_slice(&[7, 7, 7, 1]);
        rt.attach(cost * 2);
        let user = Principal::self_authenticating(b"a user's public key");
        assert!(
            matches!(
                block_on(create_user_canister(&rt, user, arg(p(2)))),
                Err(CreateUserCanisterError::PaymentRequired { .. })
            ),
            "a user (not a canister) cannot pay"
        );
        rt.attach(cost - 1);
        assert_eq!(
            block_on(create_user_canister(&rt, payer, arg(p(2)))),
            Err(CreateUserCanisterError::PaymentRequired {
                needed: cost,
                attached: cost - 1
            })
        );
        assert_eq!(rt.accepted(), 0);
        rt.attach(cost * 2);
        rt.reject("create_canister", None, 5, "out of capacity", Some(1));
        assert!(block_on(create_user_canister(&rt, payer, arg(p(2)))).is_err());
        assert_eq!(rt.accepted(), 0, "nothing accepted for a failed creation");
        rt.attach(cost * 2);
        block_on(create_user_canister(&rt, payer, arg(p(2)))).unwrap();
        assert_eq!(
            rt.accepted(),
            cost,
            "exactly the cost is kept; the rest goes back"
        );
        assert_eq!(
            crate::admission::status().spent_in_window,
            0,
            "paid creations spend no budget"
        );
    }

    /// An added subnet gets a store canister, created through the CMC on it, controlled by the
    /// manager alone and running the store module, holding the default release, which its
    /// code records; without a store module nothing is created. `Spread` then places
    /// canisters on both subnets, each installed from its own subnet's store (the fake, like
    /// the IC, refuses a store on another subnet), and the registry records each subnet.
    #[test]
    fn an_added_subnet_gets_a_store_and_spread_places_canisters_on_both() {
        use fleet_api::manager::{AddSubnetArg, Placement, SubnetError};
        let rt = fake();
        publish_default(&rt);
        let other = p(77);
        assert_eq!(
            subnets::set_placement(&rt, Placement::Subnet(other)),
            Err(SubnetError::UnknownSubnet(other))
        );
        assert!(matches!(
            subnets::set_placement(&rt, Placement::Fill { max_per_subnet: 0 }),
            Err(SubnetError::InvalidPlacement(_))
        ));
        let add = AddSubnetArg {
            subnet: other,
            store_cycles: 1_000,
        };
        assert_eq!(
            block_on(subnets::add_subnet(&rt, add.clone())),
            Err(SubnetError::NoStoreModule)
        );
        assert_eq!(rt.calls_of("create_canister"), 0, "nothing was created");
        assert!(subnets::store_module_hash().is_none());
        assert_eq!(
            subnets::set_store_module(b"not wasm"),
            Err(fleet_api::manager::SetStoreModuleError::NotWasm)
        );
        let too_large = vec![0; fleet_api::manager::MAX_STORE_MODULE_SIZE as usize + 1];
        assert!(matches!(
            subnets::set_store_module(&too_large),
            Err(fleet_api::manager::SetStoreModuleError::TooLarge { .. })
        ));
        let store_module = b"\0asm\x01\0\0\0store".to_vec();
        let store_hash = subnets::set_store_module(&store_module).unwrap();
        assert_eq!(store_hash, Sha256::digest(&store_module).to_vec());
        assert_eq!(subnets::store_module_hash(), Some(store_hash.clone()));
        let info = block_on(subnets::add_subnet(&rt, add)).unwrap();
        assert_eq!(info.subnet, other);
        assert!(!info.own);
        let store = rt.canister(info.store).expect("the store exists");
        assert_eq!(store.controllers, vec![MANAGER]);
        assert_eq!(
            store.module_hash,
            Some(store_hash),
            "the store runs the store module"
        );
        assert_eq!(
            Decode!(&store.arg, fleet_api::store_canister::StoreInit)
                .unwrap()
                .manager,
            MANAGER
        );
        assert_eq!(rt.subnet(info.store), other);
        assert_eq!(
            rt.chunks_of(info.store),
            1,
            "the default release is mirrored"
        );
        assert_eq!(info.chunk_store.releases.len(), 1);
        let recorded = rt.store_releases(info.store);
        assert_eq!(recorded.len(), 1, "the store's code records the release");
        assert_eq!(recorded[0].version, "1.0.0");
        assert_eq!(
            recorded[0]
                .chunk_hashes
                .iter()
                .map(|h| h.to_vec())
                .collect::<Vec<_>>(),
            info.chunk_store.releases[0].chunk_hashes
        );
        assert_eq!(
            block_on(subnets::add_subnet(
                &rt,
                AddSubnetArg {
                    subnet: other,
                    store_cycles: 0
                }
            )),
            Err(SubnetError::AlreadyAdded)
        );
        subnets::set_placement(&rt, Placement::Spread).unwrap();
        let records: Vec<RegistryRecord> = (1..=4)
            .map(|n| block_on(create_user_canister(&rt, p(n), arg(p(100)))).unwrap())
            .collect();
        for r in &records {
            assert_eq!(r.status, CanisterStatus::Active, "{r:?}");
            assert_eq!(r.subnet, Some(rt.subnet(r.canister_id)));
        }
        let on_other = records.iter().filter(|r| r.subnet == Some(other)).count();
        assert_eq!(on_other, 2, "spread evenly");
        let view = subnets::view(&rt);
        let counts: Vec<u64> = view.subnets.iter().map(|i| i.canisters).collect();
        assert_eq!(counts, vec![2, 2]);
        // `Fill` up to 3: the own subnet takes one more, then the other.
        subnets::set_placement(&rt, Placement::Fill { max_per_subnet: 3 }).unwrap();
        let fifth = block_on(create_user_canister(&rt, p(5), arg(p(100)))).unwrap();
        assert_eq!(fifth.subnet, Some(crate::fake::OWN_SUBNET));
        let sixth = block_on(create_user_canister(&rt, p(6), arg(p(100)))).unwrap();
        assert_eq!(sixth.subnet, Some(other));
        assert_eq!(
            block_on(create_user_canister(&rt, p(7), arg(p(100)))),
            Err(CreateUserCanisterError::NoSubnetWithRoom)
        );
    }

    /// A store that refuses to record a release fails the mirror like a failed upload, with
    /// the method named; the release does not count as mirrored there, so the next mirror
    /// records it without uploading its chunks again.
    #[test]
    fn a_failed_record_in_a_store_is_a_mirror_error_and_is_retried() {
        use fleet_api::manager::{AddSubnetArg, MirrorError, SubnetError};
        let rt = fake();
        publish_default(&rt);
        subnets::set_store_module(b"\0asm\x01\0\0\0").unwrap();
        rt.reject("record_release", None, 5, "store trapped", Some(1));
        let e = block_on(subnets::add_subnet(
            &rt,
            AddSubnetArg {
                subnet: p(77),
                store_cycles: 0,
            },
        ))
        .unwrap_err();
        assert!(
            matches!(&e, SubnetError::Mirror(MirrorError::CallFailed { method, .. }) if method == "record_release"),
            "{e:?}"
        );
        let store = subnets::store_of(&rt, Some(p(77))).expect("the subnet is added");
        assert!(rt.store_releases(store.canister).is_empty());
        assert!(subnets::mirror_of(&store).releases.is_empty());
        let uploads = rt.calls_of("upload_chunk");
        block_on(crate::chunk_store::ensure_mirrored_in(&rt, "1.0.0", &store)).unwrap();
        assert_eq!(
            rt.calls_of("upload_chunk"),
            uploads,
            "the chunks were stored"
        );
        assert_eq!(rt.store_releases(store.canister).len(), 1);
    }

    /// A store created before stores ran code (no module) gets the store module at its first
    /// record, and then lists what it holds.
    #[test]
    fn a_store_without_code_gets_the_store_module_at_its_next_record() {
        let rt = fake();
        publish_default(&rt);
        let module = b"\0asm\x01\0\0\0store".to_vec();
        subnets::set_store_module(&module).unwrap();
        let other = p(77);
        let store = Principal::from_slice(&[0x5A; 10]);
        rt.add_canister(store, vec![MANAGER], None);
        rt.set_subnet(store, other);
        state::with_mut(|s| {
            let mut st = s.subnets_state();
            st.subnets.push(subnets::SubnetStore {
                subnet: other,
                store,
                canisters: 0,
                mirror: Default::default(),
            });
            s.set_subnets_state(st);
        });
        let store_ref = subnets::store_of(&rt, Some(other)).unwrap();
        block_on(crate::chunk_store::ensure_mirrored_in(
            &rt, "1.0.0", &store_ref,
        ))
        .unwrap();
        assert_eq!(
            rt.canister(store).unwrap().module_hash,
            Some(Sha256::digest(&module).to_vec())
        );
        assert_eq!(rt.store_releases(store).len(), 1);
    }

    #[test]
    fn creation_sets_controllers_installs_with_init_arg_and_records() {
        let rt = fake();
        let sha = publish_default(&rt);
        let rec = block_on(create_user_canister(&rt, p(1), arg(p(2)))).unwrap();
        assert_eq!(rec.status, CanisterStatus::Active);
        let c = rt.canister(rec.canister_id).expect("created on the IC");
        assert_eq!(c.controllers, vec![MANAGER, p(2)]);
        assert_eq!(c.module_hash.as_ref(), Some(&sha));
        assert_eq!(
            Decode!(&c.arg, UserCanisterArg).unwrap(),
            UserCanisterArg::Init(UserInitArg {
                owner: p(1),
                recovery_principal: p(2),
                manager: MANAGER,
                release_sha256: sha,
            })
        );
        assert_eq!(state::with(|s| s.registry.by_owner(&p(1))), Some(rec));
    }

    #[test]
    fn a_failed_install_is_recorded_and_the_retry_resumes_the_same_canister() {
        let rt = fake();
        publish_default(&rt);
        rt.reject("install_chunked_code", None, 2, "out of cycles", Some(1));
        let err = block_on(create_user_canister(&rt, p(1), arg(p(2)))).unwrap_err();
        let CreateUserCanisterError::InstallFailed { canister_id, .. } = err else {
            panic!("expected InstallFailed, got {err:?}");
        };
        let rec = state::with(|s| s.registry.get(&canister_id)).unwrap();
        assert_eq!(rec.status, CanisterStatus::Provisioning);
        assert!(rec.last_error.is_some());

        let rec = block_on(create_user_canister(&rt, p(1), arg(p(2)))).unwrap();
        assert_eq!(rec.canister_id, canister_id);
        assert_eq!(rec.status, CanisterStatus::Active);
        assert_eq!(rec.last_error, None);
        assert_eq!(
            rt.calls_of("create_canister"),
            1,
            "no second canister was created"
        );
    }

    #[test]
    fn insufficient_cycles_refuses_before_creating_and_keeps_the_token() {
        let rt = fake();
        publish_default(&rt);
        rt.set_balance(FEE);
        let bucket_before = state::with(|s| *s.creation_bucket.get());
        let err = block_on(create_user_canister(&rt, p(1), arg(p(2)))).unwrap_err();
        assert!(matches!(
            err,
            CreateUserCanisterError::InsufficientCycles { .. }
        ));
        assert_eq!(rt.calls_of("create_canister"), 0);
        assert!(state::with(|s| s.registry.is_empty()));
        assert_eq!(state::with(|s| *s.creation_bucket.get()), bucket_before);
    }

    #[test]
    fn a_concurrent_call_of_the_same_owner_is_refused() {
        let rt = fake();
        publish_default(&rt);
        let _running = CreationGuard::acquire(p(1)).unwrap();
        assert_eq!(
            block_on(create_user_canister(&rt, p(1), arg(p(2)))),
            Err(CreateUserCanisterError::InProgress)
        );
        assert!(state::with(|s| s.registry.is_empty()));
    }

    /// Past the cap on creations awaiting the IC, a creation is refused as busy before it
    /// spends a token or a cycle, and goes through once one finishes.
    #[test]
    fn creations_beyond_the_cap_are_refused_as_busy_and_spend_nothing() {
        let rt = fake();
        publish_default(&rt);
        let others = |i: usize| Principal::from_slice(&[(i >> 8) as u8, i as u8, 7, 7, 7, 7, 7]);
        let mut running: Vec<CreationGuard> = (0..state::MAX_CONCURRENT_CREATIONS)
            .map(|i| CreationGuard::acquire(others(i)).unwrap())
            .collect();
        let bucket_before = state::with(|s| *s.creation_bucket.get());
        let cap = state::MAX_CONCURRENT_CREATIONS as u32;
        assert_eq!(
            block_on(create_user_canister(&rt, p(1), arg(p(2)))),
            Err(CreateUserCanisterError::Busy { in_progress: cap })
        );
        assert_eq!(rt.calls_of("create_canister"), 0);
        assert!(state::with(|s| s.registry.is_empty()));
        assert_eq!(state::with(|s| *s.creation_bucket.get()), bucket_before);
        running.pop();
        let rec = block_on(create_user_canister(&rt, p(1), arg(p(2)))).unwrap();
        assert_eq!(rec.status, CanisterStatus::Active);
    }

    /// A `create_canister` the IC did not take (`ic0.call_perform` failed: the queue to the
    /// management canister is full) is the same busy refusal, with the token given back.
    #[test]
    fn a_creation_the_ic_did_not_take_is_busy_and_gives_the_token_back() {
        let rt = fake();
        publish_default(&rt);
        // One creation per hour: the retry below goes through only if the token came back.
        state::with_mut(|s| {
            let mut settings = s.settings();
            settings.creation_limit = crate::stored::RateLimit {
                capacity: 1,
                refill_period_secs: 3_600,
            };
            s.set_settings(settings);
        });
        rt.reject("create_canister", None, NOT_SENT, "queue full", Some(1));
        assert_eq!(
            block_on(create_user_canister(&rt, p(1), arg(p(2)))),
            Err(CreateUserCanisterError::Busy { in_progress: 1 })
        );
        assert!(state::with(|s| s.registry.is_empty()));
        let rec = block_on(create_user_canister(&rt, p(1), arg(p(2)))).unwrap();
        assert_eq!(rec.status, CanisterStatus::Active);
        assert!(rt.canister(rec.canister_id).is_some());
    }

    fn adopt(
        rt: &FakeIc,
        caller: Principal,
        deployer: bool,
        id: Principal,
    ) -> Result<RegistryRecord, AdoptCanisterError> {
        block_on(adopt_canister(
            rt,
            Caller {
                principal: caller,
                is_controller: false,
            },
            deployer,
            AdoptCanisterArg {
                canister_id: id,
                owner: None,
                subnet: None,
            },
        ))
    }

    #[test]
    fn adoption_checks_controllers_caller_and_module() {
        let rt = fake();
        let sha = publish_default(&rt);
        let good = Principal::from_slice(&[50; 10]);
        let extra = Principal::from_slice(&[51; 10]);
        let unknown_module = Principal::from_slice(&[52; 10]);
        rt.add_canister(good, vec![p(2), MANAGER], Some(sha.clone()));
        rt.add_canister(extra, vec![MANAGER, p(2), p(3)], None);
        rt.add_canister(unknown_module, vec![MANAGER, p(2)], Some(vec![7; 32]));

        assert!(matches!(
            adopt(&rt, p(2), false, extra),
            Err(AdoptCanisterError::InvalidControllers { .. })
        ));
        assert_eq!(
            adopt(&rt, p(9), false, good),
            Err(AdoptCanisterError::NotAuthorized)
        );
        assert!(matches!(
            adopt(&rt, p(2), false, unknown_module),
            Err(AdoptCanisterError::UnknownModule { .. })
        ));
        assert!(state::with(|s| s.registry.is_empty()));

        let rec = adopt(&rt, p(2), false, good).unwrap();
        assert_eq!(rec.owner, p(2));
        assert_eq!(rec.recovery_principal, p(2));
        assert_eq!(rec.current_release.unwrap().sha256, sha);
        assert_eq!(
            adopt(&rt, p(2), true, good),
            Err(AdoptCanisterError::AlreadyRegistered)
        );
        // A caller without the role is refused as such, not told the canister is registered.
        assert_eq!(
            adopt(&rt, p(9), false, good),
            Err(AdoptCanisterError::NotAuthorized)
        );
    }
}
