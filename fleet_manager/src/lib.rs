//! The fleet manager canister: releases of the user canister's wasm, a registry of user
//! canisters, and provisioning of a canister per user whose controllers are exactly the manager
//! and the user's recovery principal.
//!
//! Endpoints here are thin: they read the caller, check its role and hand over to the modules,
//! which keep the logic natively testable. Every update refuses the anonymous principal.

pub mod driver;
pub mod ic;
pub mod metrics;

use candid::Principal;
use fleet_api::endpoint::Endpoint;
use fleet_api::governance::*;
use fleet_api::manager::method::CreateUserCanister;
use fleet_api::manager::*;
use fleet_api::rollout::*;
use fleet_api::user::UpgradeTicket;
use fleet_api::wire::Wire;
use fleet_core::access::{self, Caller};
use fleet_core::{
    admission, chunk_store, governance, provisioning, rate_limit, registry, releases, rollouts,
    state, stored, subnets,
};
use ic::Ic;
use ic_cdk::{init, inspect_message, post_upgrade, pre_upgrade, query, update};

/// The IC as the rollout engine sees it at this message.
pub fn env() -> rollouts::Env {
    rollouts::Env::of(&Ic)
}

fn caller() -> Caller {
    let principal = ic_cdk::api::msg_caller();
    Caller {
        principal,
        is_controller: ic_cdk::api::is_controller(&principal),
    }
}

/// Guard of every update: notices a driver timer that went silent (the manager ran out of
/// cycles, which deactivates its global timer) and re-arms it. Never refuses a call.
fn awake() -> Result<(), String> {
    driver::watchdog();
    Ok(())
}

fn has_role(caller: Caller, role: Role) -> bool {
    state::with(|s| s.operators.has_role(caller, role))
}

/// Drops, before it is inducted and paid for, an ingress message the manager would refuse:
/// one whose argument does not decode as its method's, or whose caller the method's
/// [`access::ingress_rule`] does not admit (interface spec, "Ingress message inspection").
/// The handlers keep their own checks: calls from canisters are not inspected.
#[inspect_message]
fn inspect_message() {
    let method = ic_cdk::api::msg_method_name();
    let arg = ic_cdk::api::msg_arg_data();
    let decodes = fleet_api::manager::method::decodes(&method, &arg)
        .or_else(|| fleet_api::rollout::method::decodes(&method, &arg))
        .or_else(|| fleet_api::governance::method::decodes(&method, &arg));
    if decodes != Some(true) {
        return;
    }
    let caller = caller();
    let admitted = match access::ingress_rule(&method) {
        Some(rule) => rule.admits(caller, |role| has_role(caller, role)),
        None => true,
    } && (method != CreateUserCanister::NAME
        || candid::decode_one::<CreateUserCanisterArg>(&arg)
            .is_ok_and(|a| admission::ingress_admits(&caller.principal, a.invite.as_deref())));
    if admitted {
        ic_cdk::api::accept_message();
    }
}

#[init]
fn init(arg: Option<ManagerInitArg>) {
    let arg = arg.unwrap_or_default();
    if let Some(limit) = arg.creation_limit {
        if !rate_limit::valid(limit.into()) {
            ic_cdk::trap("creation_limit needs capacity >= 1 and refill_period_secs >= 1");
        }
    }
    if arg
        .admins
        .iter()
        .flatten()
        .any(|a| *a == Principal::anonymous())
    {
        ic_cdk::trap("the anonymous principal cannot be an admin");
    }
    if let Some(admission) = &arg.admission {
        if let Err(e) = admission::validate(admission, ic_cdk::api::canister_self()) {
            ic_cdk::trap(format!("invalid admission: {e:?}"));
        }
    }
    if let Some(policy) = &arg.release_policy {
        // Operators are granted below: a quorum is checked against the admins of the arg.
        let admins = arg.admins.as_ref().map_or(0, Vec::len) as u32;
        if policy.quorum == 0
            || policy.quorum > MAX_QUORUM
            || policy.notice_secs > MAX_NOTICE_SECS
            || (policy.quorum > 1 && admins < policy.quorum)
        {
            ic_cdk::trap("invalid release_policy: quorum 1 to 20 reachable by the admins, notice at most 90 days");
        }
    }
    state::with_mut(|s| s.initialize(arg));
}

/// Refuses an upgrade while the rollout engine awaits calls: their callbacks would reach the
/// new module, which cannot run them (interface spec, "IC method `install_code`", upgrade:
/// outstanding callbacks). `drain`, then stopping the manager, makes this never trap.
#[pre_upgrade]
fn pre_upgrade() {
    let calls = driver::calls_in_flight();
    if calls > 0 {
        ic_cdk::trap(format!(
            "refusing to upgrade: the rollout engine awaits {calls} calls; call `drain` until it \
             reports ready, stop the manager, then upgrade"
        ));
    }
}

#[post_upgrade]
fn post_upgrade() {
    // Trapping keeps the previous module and its state (interface spec, "IC method
    // `install_code`": a failed upgrade is rolled back).
    if let Err(e) = state::with_mut(|s| s.upgrade_layout()) {
        ic_cdk::trap(e);
    }
    // Timers do not survive an upgrade; the rollout resumes from stable memory.
    driver::after_upgrade(ic_cdk::api::time());
}

// ---------------------------------------------------------------------------------------------
// Settings and operators
// ---------------------------------------------------------------------------------------------

#[query]
fn get_settings() -> Settings {
    state::with(|s| s.settings()).into()
}

#[update(guard = "awake")]
fn update_settings(update: SettingsUpdate) -> UpdateSettingsReply {
    update_settings_result(update).into()
}

fn update_settings_result(update: SettingsUpdate) -> Result<Settings, UpdateSettingsError> {
    if !has_role(caller(), Role::Admin) {
        return Err(UpdateSettingsError::NotAuthorized);
    }
    if update
        .creation_limit
        .is_some_and(|l| !rate_limit::valid(l.into()))
    {
        return Err(UpdateSettingsError::InvalidRateLimit);
    }
    Ok(state::with_mut(|s| {
        let mut settings = s.settings();
        if let Some(cycles) = update.user_canister_cycles {
            settings.user_canister_cycles = cycles;
        }
        if let Some(limit) = update.creation_limit {
            settings.creation_limit = limit.into();
        }
        if let Some(reserve) = update.pipeline_cycles_reserve {
            settings.pipeline_cycles_reserve = Some(reserve);
        }
        s.set_settings(settings.clone());
        rollouts::settings_changed();
        settings.into()
    }))
}

#[update(guard = "awake")]
fn set_operator(operator: Operator) -> OperatorReply {
    set_operator_result(operator).into()
}

fn set_operator_result(operator: Operator) -> Result<(), OperatorError> {
    if !has_role(caller(), Role::Admin) {
        return Err(OperatorError::NotAuthorized);
    }
    if operator.principal == Principal::anonymous() {
        return Err(OperatorError::AnonymousOperator);
    }
    if operator.roles.is_empty() {
        return Err(OperatorError::NoRoles);
    }
    governance::gate(
        caller().principal,
        RequestAction::SetOperator(operator.clone()),
        ic_cdk::api::time(),
    )
    .map_err(OperatorError::ApprovalRequired)?;
    state::with_mut(|s| s.operators.set(operator.principal, &operator.roles));
    Ok(())
}

#[update(guard = "awake")]
fn remove_operator(principal: Principal) -> OperatorReply {
    remove_operator_result(principal).into()
}

fn remove_operator_result(principal: Principal) -> Result<(), OperatorError> {
    if !has_role(caller(), Role::Admin) {
        return Err(OperatorError::NotAuthorized);
    }
    if !state::with(|s| s.operators.list().iter().any(|o| o.principal == principal)) {
        return Err(OperatorError::UnknownOperator);
    }
    governance::gate(
        caller().principal,
        RequestAction::RemoveOperator(principal),
        ic_cdk::api::time(),
    )
    .map_err(OperatorError::ApprovalRequired)?;
    if state::with_mut(|s| s.operators.remove(&principal)) {
        Ok(())
    } else {
        Err(OperatorError::UnknownOperator)
    }
}

#[query]
fn list_operators() -> ListOperatorsReply {
    list_operators_result().into()
}

fn list_operators_result() -> Result<Vec<Operator>, QueryError> {
    let caller = caller();
    state::with(|s| {
        if s.operators.is_operator(caller) {
            Ok(s.operators.list())
        } else {
            Err(QueryError::NotAuthorized)
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Releases
// ---------------------------------------------------------------------------------------------

#[update(guard = "awake")]
fn begin_release(req: BeginUpload) -> BeginReleaseReply {
    begin_release_result(req).into()
}

fn begin_release_result(req: BeginUpload) -> Result<UploadStatus, BeginReleaseError> {
    let caller = caller();
    if !has_role(caller, Role::Releaser) {
        return Err(BeginReleaseError::NotAuthorized);
    }
    releases::begin(req, caller.principal, ic_cdk::api::time()).map_err(BeginReleaseError::Store)
}

#[update(guard = "awake")]
fn upload_release_chunk(arg: UploadReleaseChunkArg) -> UploadReleaseChunkReply {
    upload_release_chunk_result(arg).into()
}

fn upload_release_chunk_result(arg: UploadReleaseChunkArg) -> Result<(), UploadReleaseChunkError> {
    if !has_role(caller(), Role::Releaser) {
        return Err(UploadReleaseChunkError::NotAuthorized);
    }
    state::with_mut(|s| s.store.put_chunk(&arg.version, arg.index, arg.bytes))
        .map_err(|e| UploadReleaseChunkError::Store(e.wire()))
}

#[update(guard = "awake")]
fn abort_release_upload(version: String) -> AbortReleaseUploadReply {
    abort_release_upload_result(version).into()
}

fn abort_release_upload_result(version: String) -> Result<(), AbortReleaseUploadError> {
    if !has_role(caller(), Role::Releaser) {
        return Err(AbortReleaseUploadError::NotAuthorized);
    }
    state::with_mut(|s| s.store.abort_upload(&version))
        .map_err(|e| AbortReleaseUploadError::Store(e.wire()))
}

#[query]
fn release_upload_status(version: String) -> ReleaseUploadStatusReply {
    release_upload_status_result(version).into()
}

fn release_upload_status_result(version: String) -> Result<UploadStatus, StoreError> {
    state::with(|s| s.store.upload_status(&version))
        .map(Wire::wire)
        .map_err(Wire::wire)
}

#[update(guard = "awake")]
async fn finalize_release(version: String) -> FinalizeReleaseReply {
    finalize_release_result(version).await.into()
}

async fn finalize_release_result(
    version: String,
) -> Result<FinalizedRelease, FinalizeReleaseError> {
    let caller = caller();
    if !has_role(caller, Role::Releaser) {
        return Err(FinalizeReleaseError::NotAuthorized);
    }
    // Only an upload in progress can be proposed; the approved request finalizes it.
    state::with(|s| s.store.upload_status(&version))
        .map_err(|e| FinalizeReleaseError::Store(e.wire()))?;
    governance::gate(
        caller.principal,
        RequestAction::PublishRelease(version.clone()),
        ic_cdk::api::time(),
    )
    .map_err(FinalizeReleaseError::ApprovalRequired)?;
    releases::finalize(&Ic, &version).await
}

#[update(guard = "awake")]
async fn mirror_release(version: String) -> MirrorReleaseReply {
    mirror_release_result(version).await.into()
}

async fn mirror_release_result(version: String) -> Result<ChunkStoreStatus, MirrorError> {
    if !has_role(caller(), Role::Releaser) {
        return Err(MirrorError::NotAuthorized);
    }
    chunk_store::ensure_mirrored(&Ic, &version).await?;
    Ok(chunk_store::status())
}

#[update(guard = "awake")]
fn delete_release(version: String) -> DeleteReleaseReply {
    delete_release_result(version).into()
}

fn delete_release_result(version: String) -> Result<ReleaseMeta, DeleteReleaseError> {
    if !has_role(caller(), Role::Releaser) {
        return Err(DeleteReleaseError::NotAuthorized);
    }
    releases::delete(&version)
}

#[update(guard = "awake")]
async fn set_default_release(version: String) -> SetDefaultReleaseReply {
    set_default_release_result(version).await.into()
}

async fn set_default_release_result(version: String) -> Result<Settings, SetDefaultReleaseError> {
    let caller = caller();
    if !has_role(caller, Role::Admin) {
        return Err(SetDefaultReleaseError::NotAuthorized);
    }
    let now = ic_cdk::api::time();
    if releases::default_needs_approval(&version, now)? {
        governance::gate(
            caller.principal,
            RequestAction::SetDefaultRelease(version.clone()),
            now,
        )
        .map_err(SetDefaultReleaseError::ApprovalRequired)?;
    }
    releases::set_default(&Ic, &version).await
}

#[query]
fn list_releases(arg: ListReleasesArg) -> ListReleasesReply {
    list_releases_result(arg).into()
}

fn list_releases_result(arg: ListReleasesArg) -> Result<Vec<ReleaseMeta>, StoreError> {
    state::with(|s| {
        s.store.list(
            arg.start_after.as_deref(),
            arg.limit.unwrap_or(wasm_store::MAX_PAGE),
        )
    })
    .map(Wire::wire)
    .map_err(Wire::wire)
}

#[query]
fn get_release(version: String) -> Option<ReleaseMeta> {
    state::with(|s| s.store.get(&version)).wire()
}

/// A management call on a managed canister, made by the manager for an admin (backups and
/// restores of any canister of the fleet; `fleet_core::manage`).
#[update(guard = "awake")]
async fn manage_canister(arg: ManageCanisterArg) -> ManageCanisterReply {
    fleet_core::manage::manage(&Ic, caller(), arg)
        .await
        .map(serde_bytes::ByteBuf::from)
        .into()
}

/// The interface a finalized release was published with; public like the release itself.
#[query]
fn get_release_interface(version: String) -> Option<ReleaseInterface> {
    state::with(|s| s.store.interface(&version)).wire()
}

/// One chunk of a finalized release. Public, so that an end user can fetch a release and
/// install it through the recovery principal without the manager's help.
#[query]
fn release_chunk(arg: ReleaseChunkArg) -> ReleaseChunkReply {
    release_chunk_result(arg).into()
}

fn release_chunk_result(arg: ReleaseChunkArg) -> Result<serde_bytes::ByteBuf, StoreError> {
    state::with(|s| s.store.chunk(&arg.version, arg.index))
        .map(serde_bytes::ByteBuf::from)
        .map_err(Wire::wire)
}

#[query]
fn store_usage() -> StoreUsage {
    state::with(|s| s.store.usage()).wire()
}

#[query]
fn chunk_store_status() -> ChunkStoreStatus {
    chunk_store::status()
}

// ---------------------------------------------------------------------------------------------
// Provisioning
// ---------------------------------------------------------------------------------------------

#[update(guard = "awake")]
async fn create_user_canister(arg: CreateUserCanisterArg) -> CreateUserCanisterReply {
    create_user_canister_result(arg).await.into()
}

async fn create_user_canister_result(
    arg: CreateUserCanisterArg,
) -> Result<UserCanister, CreateUserCanisterError> {
    provisioning::create_user_canister(&Ic, caller().principal, arg)
        .await
        .map(rollouts::with_status)
}

#[update(guard = "awake")]
async fn adopt_canister(arg: AdoptCanisterArg) -> AdoptCanisterReply {
    adopt_canister_result(arg).await.into()
}

async fn adopt_canister_result(arg: AdoptCanisterArg) -> Result<UserCanister, AdoptCanisterError> {
    let caller = caller();
    let privileged = has_role(caller, Role::Admin) || has_role(caller, Role::Deployer);
    provisioning::adopt_canister(&Ic, caller, privileged, arg)
        .await
        .map(rollouts::with_status)
}

// ---------------------------------------------------------------------------------------------
// Subnets
// ---------------------------------------------------------------------------------------------

#[update(guard = "awake")]
async fn add_subnet(arg: AddSubnetArg) -> AddSubnetReply {
    add_subnet_result(arg).await.into()
}

async fn add_subnet_result(arg: AddSubnetArg) -> Result<SubnetInfo, SubnetError> {
    if !has_role(caller(), Role::Admin) {
        return Err(SubnetError::NotAuthorized);
    }
    subnets::add_subnet(&Ic, arg).await
}

#[update(guard = "awake")]
fn set_placement(placement: Placement) -> SetPlacementReply {
    set_placement_result(placement).into()
}

fn set_placement_result(placement: Placement) -> Result<SubnetsView, SubnetError> {
    if !has_role(caller(), Role::Admin) {
        return Err(SubnetError::NotAuthorized);
    }
    subnets::set_placement(&Ic, placement)
}

#[query]
fn list_subnets() -> SubnetsView {
    subnets::view(&Ic)
}

/// Admin: the module `add_subnet` installs in each new store canister (`store_canister`).
#[update(guard = "awake")]
fn set_store_module(module: serde_bytes::ByteBuf) -> SetStoreModuleReply {
    set_store_module_result(module)
        .map(serde_bytes::ByteBuf::from)
        .into()
}

fn set_store_module_result(module: serde_bytes::ByteBuf) -> Result<Vec<u8>, SetStoreModuleError> {
    if !has_role(caller(), Role::Admin) {
        return Err(SetStoreModuleError::NotAuthorized);
    }
    subnets::set_store_module(&module)
}

/// Admin: every added subnet's store brought to the store module set now (after
/// `set_store_module` changed it, or to install it where an install failed).
#[update(guard = "awake")]
async fn upgrade_stores() -> UpgradeStoresReply {
    upgrade_stores_result().await.into()
}

async fn upgrade_stores_result() -> Result<Vec<StoreUpgrade>, SubnetError> {
    if !has_role(caller(), Role::Admin) {
        return Err(SubnetError::NotAuthorized);
    }
    subnets::upgrade_stores(&Ic).await
}

/// The sha256 of the store module, if one is set: public, as every store's module hash is.
#[query]
fn store_module() -> Option<serde_bytes::ByteBuf> {
    subnets::store_module_hash().map(serde_bytes::ByteBuf::from)
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

/// The caller's own canister, if any.
#[query]
fn my_user_canister() -> Option<UserCanister> {
    let caller = ic_cdk::api::msg_caller();
    if caller == Principal::anonymous() {
        return None;
    }
    state::with(|s| s.registry.by_owner(&caller)).map(rollouts::with_status)
}

#[query]
fn get_user_canister(canister_id: Principal) -> GetUserCanisterReply {
    get_user_canister_result(canister_id).into()
}

fn get_user_canister_result(canister_id: Principal) -> Result<UserCanister, GetUserCanisterError> {
    let caller = caller();
    state::with(|s| {
        let record = s.registry.get(&canister_id);
        let allowed = s.operators.is_operator(caller)
            || record.as_ref().is_some_and(|r| {
                caller.principal != Principal::anonymous()
                    && (r.owner == caller.principal || r.recovery_principal == caller.principal)
            });
        match (allowed, record) {
            (false, _) => Err(GetUserCanisterError::NotAuthorized),
            (true, None) => Err(GetUserCanisterError::NotFound),
            (true, Some(r)) => Ok(r),
        }
    })
    .map(rollouts::with_status)
}

#[query]
fn list_user_canisters(arg: ListUserCanistersArg) -> ListUserCanistersReply {
    list_user_canisters_result(arg).into()
}

fn list_user_canisters_result(
    arg: ListUserCanistersArg,
) -> Result<UserCanisterPage, ListUserCanistersError> {
    let caller = caller();
    let filter = state::with(|s| {
        if !s.operators.is_operator(caller) {
            return Err(ListUserCanistersError::NotAuthorized);
        }
        let filter = match arg.filter {
            CanisterFilter::All => registry::Filter::All,
            CanisterFilter::Owner(owner) => registry::Filter::Owner(owner),
            CanisterFilter::Status(status) => registry::Filter::Status(status.into()),
            CanisterFilter::Release(version) => {
                let meta = s
                    .store
                    .get(&version)
                    .ok_or(ListUserCanistersError::UnknownRelease)?;
                let sha: [u8; 32] = meta
                    .sha256
                    .as_slice()
                    .try_into()
                    .map_err(|_| ListUserCanistersError::UnknownRelease)?;
                registry::Filter::Release(sha)
            }
        };
        Ok(filter)
    })?;
    let page = match filter {
        // Not a stored status: the canisters whose pipeline is in flight.
        registry::Filter::Status(stored::CanisterStatus::Upgrading) => {
            let limit = registry::page_limit(arg.limit);
            let ids = rollouts::upgrading_page(arg.start_after, limit + 1);
            state::with(|s| s.registry.page_of(ids, limit))
        }
        // The stored status, less the canisters that answer as upgrading.
        registry::Filter::Status(_) => state::with(|s| {
            s.registry
                .page_where(&filter, arg.start_after, arg.limit, |id| {
                    !rollouts::upgrading(id)
                })
        }),
        _ => state::with(|s| s.registry.page(&filter, arg.start_after, arg.limit)),
    };
    Ok(UserCanisterPage {
        canisters: page
            .canisters
            .into_iter()
            .map(rollouts::with_status)
            .collect(),
        next: page.next,
    })
}

#[query]
fn user_canister_count() -> u64 {
    state::with(|s| s.registry.len())
}

#[update(guard = "awake")]
fn set_upgrade_policy(arg: SetUpgradePolicyArg) -> SetUpgradePolicyReply {
    set_upgrade_policy_result(arg).into()
}

fn set_upgrade_policy_result(
    arg: SetUpgradePolicyArg,
) -> Result<UserCanister, SetUpgradePolicyError> {
    let caller = caller();
    let deployer = has_role(caller, Role::Deployer);
    state::with_mut(|s| {
        let mut record = s
            .registry
            .get(&arg.canister_id)
            .ok_or(SetUpgradePolicyError::NotFound)?;
        let is_owner =
            caller.principal != Principal::anonymous() && record.owner == caller.principal;
        if !deployer && !is_owner {
            return Err(SetUpgradePolicyError::NotAuthorized);
        }
        if let UpgradePolicy::Pinned(version) = &arg.policy {
            if s.store.get(version).is_none() {
                return Err(SetUpgradePolicyError::UnknownRelease);
            }
        }
        record.policy = arg.policy.into();
        record.updated_at_ns = ic_cdk::api::time();
        s.registry.put(record.clone());
        Ok(record)
    })
    .map(rollouts::with_status)
}

// ---------------------------------------------------------------------------------------------
// Rollouts
// ---------------------------------------------------------------------------------------------

fn is_deployer(caller: Caller) -> bool {
    has_role(caller, Role::Deployer)
}

fn operators_only<T>(f: impl FnOnce() -> T) -> Result<T, QueryError> {
    if state::with(|s| s.operators.is_operator(caller())) {
        Ok(f())
    } else {
        Err(QueryError::NotAuthorized)
    }
}

/// Starts a staged rollout of a release to the fleet. The target is mirrored into the chunk
/// store first; the cohort is selected from the registry when the plan is accepted.
#[update(guard = "awake")]
async fn start_rollout(plan: RolloutPlanArg) -> StartRolloutReply {
    start_rollout_result(plan).await.into()
}

async fn start_rollout_result(plan: RolloutPlanArg) -> Result<RolloutStarted, StartRolloutError> {
    let caller = caller();
    if !is_deployer(caller) {
        return Err(StartRolloutError::NotAuthorized);
    }
    // A plan that can never start is refused as such, whatever else runs.
    rollouts::to_plan(&plan)?;
    if rollouts::needs_approval(&plan) {
        rollouts::check_notice(&plan, ic_cdk::api::time())?;
        governance::gate(
            caller.principal,
            RequestAction::StartRollout(Box::new(plan.clone())),
            ic_cdk::api::time(),
        )
        .map_err(StartRolloutError::ApprovalRequired)?;
    }
    let started = rollouts::start_plan(&Ic, &plan).await?;
    driver::ensure_timer();
    Ok(started)
}

/// Previews `start_rollout` with the same plan and changes nothing: the waves it would start,
/// the plan as it would run and the manager's cycles, for a dry run and its cost estimate.
/// Deployers only, with `start_rollout`'s errors.
#[query]
fn plan_rollout(plan: RolloutPlanArg) -> PlanRolloutReply {
    if is_deployer(caller()) {
        rollouts::preview(&Ic, &plan)
    } else {
        Err(StartRolloutError::NotAuthorized)
    }
    .into()
}

#[update(guard = "awake")]
fn pause_rollout() -> RolloutControlReply {
    pause_rollout_result().into()
}

fn pause_rollout_result() -> Result<RolloutStatus, RolloutControlError> {
    if !is_deployer(caller()) {
        return Err(RolloutControlError::NotAuthorized);
    }
    rollouts::pause(ic_cdk::api::time())
}

/// Resumes a paused or halted rollout. It does not end a drain (`end_drain` does).
#[update(guard = "awake")]
fn resume_rollout() -> RolloutControlReply {
    resume_rollout_result().into()
}

fn resume_rollout_result() -> Result<RolloutStatus, RolloutControlError> {
    if !is_deployer(caller()) {
        return Err(RolloutControlError::NotAuthorized);
    }
    let status = rollouts::resume(ic_cdk::api::time());
    driver::ensure_timer();
    status
}

/// Drops pending canisters; in-flight ones finish or are brought back to running.
#[update(guard = "awake")]
fn abort_rollout() -> RolloutControlReply {
    abort_rollout_result().into()
}

fn abort_rollout_result() -> Result<RolloutStatus, RolloutControlError> {
    if !is_deployer(caller()) {
        return Err(RolloutControlError::NotAuthorized);
    }
    let status = rollouts::abort(ic_cdk::api::time());
    driver::ensure_timer();
    status
}

/// Undoes a rollout: a new rollout back to an earlier release, or snapshot restores.
#[update(guard = "awake")]
async fn rollback(arg: RollbackArg) -> RollbackReply {
    rollback_result(arg).await.into()
}

async fn rollback_result(arg: RollbackArg) -> Result<RolloutStarted, RollbackError> {
    if !is_deployer(caller()) {
        return Err(RollbackError::NotAuthorized);
    }
    let busy = |b| match b {
        rollouts::Busy::Active { id, phase } => RollbackError::RolloutActive {
            id,
            phase: phase.wire(),
        },
        rollouts::Busy::Draining => RollbackError::Draining,
    };
    rollouts::check_idle().map_err(busy)?;
    let started = match arg {
        RollbackArg::ToRelease { to_version, limits } => {
            let (last, last_limits) = rollouts::last_target().ok_or(RollbackError::NoRollout)?;
            let from = state::with(|s| s.store.get_by_sha256(&last.module_hash))
                .ok_or(RollbackError::NoRollout)?;
            let mut plan = RolloutPlanArg::to(&to_version);
            // A release no rollout has used goes through the release policy like any first
            // rollout to it: where the policy would hold it (a quorum, a notice still
            // running), the rollback is refused and `start_rollout` makes the request.
            if rollouts::needs_approval(&plan)
                && (governance::policy().quorum > 1
                    || rollouts::check_notice(&plan, ic_cdk::api::time()).is_err())
            {
                return Err(RollbackError::NewRelease {
                    version: to_version,
                });
            }
            plan.from_version = Some(from.version);
            plan.canary = Some(Canary::None);
            plan.waves_percent = Some(vec![100]);
            plan.bake_secs = Some(0);
            plan.limits = Some(limits.unwrap_or_else(|| last_limits.wire()));
            let core_plan = rollouts::to_plan(&plan).map_err(|e| match e {
                StartRolloutError::UnknownRelease { version } => {
                    RollbackError::UnknownRelease { version }
                }
                StartRolloutError::Plan(p) => RollbackError::Plan(p),
                _ => RollbackError::NoRollout,
            })?;
            chunk_store::ensure_mirrored(&Ic, &to_version)
                .await
                .map_err(RollbackError::Mirror)?;
            rollouts::check_idle().map_err(busy)?;
            let cohort =
                rollouts::select_cohort(&core_plan).map_err(|e| RollbackError::Plan(e.wire()))?;
            rollouts::start(&core_plan, cohort, env())
        }
        RollbackArg::RestoreSnapshots { canisters, limits } => {
            let plan = rollouts::restore_plan(&canisters, limits)?;
            rollouts::start_restore(plan, env()).map_err(|e| match e {
                rollouts::PlanErrorOrBusy::Plan(p) => RollbackError::Plan(p.wire()),
                rollouts::PlanErrorOrBusy::Busy(b) => busy(b),
            })?
        }
    };
    driver::ensure_timer();
    Ok(started)
}

/// Pauses every rollout activity for the manager's own upgrade and reports when nothing is
/// in flight; call it until `ready`, then stop, upgrade and start the manager, and resume.
#[update(guard = "awake")]
fn drain() -> DrainReply {
    drain_result().into()
}

fn drain_result() -> Result<DrainStatus, DrainError> {
    let caller = caller();
    if !has_role(caller, Role::Admin) && !is_deployer(caller) {
        return Err(DrainError::NotAuthorized);
    }
    let (draining, pipelines_in_flight) = rollouts::drain(env());
    Ok(drain_status(draining, pipelines_in_flight))
}

/// Ends a drain after the manager's upgrade: new pipelines start again in whatever phase the
/// rollout is (a paused or halted rollout stays so; `resume_rollout` is a separate decision).
#[update(guard = "awake")]
fn end_drain() -> DrainReply {
    end_drain_result().into()
}

fn end_drain_result() -> Result<DrainStatus, DrainError> {
    let caller = caller();
    if !has_role(caller, Role::Admin) && !is_deployer(caller) {
        return Err(DrainError::NotAuthorized);
    }
    let (draining, pipelines_in_flight) = rollouts::end_drain(env());
    driver::ensure_timer();
    Ok(drain_status(draining, pipelines_in_flight))
}

fn drain_status(draining: bool, pipelines_in_flight: u64) -> DrainStatus {
    let calls_in_flight = driver::calls_in_flight();
    DrainStatus {
        draining,
        calls_in_flight,
        pipelines_in_flight,
        ready: draining && calls_in_flight == 0 && pipelines_in_flight == 0,
    }
}

#[query]
fn rollout_status() -> RolloutStatusReply {
    rollout_status_result().into()
}

fn rollout_status_result() -> Result<Option<RolloutStatus>, QueryError> {
    operators_only(|| rollouts::status(ic_cdk::api::time()))
}

#[query]
fn rollout_results(arg: RolloutResultsArg) -> RolloutResultsReply {
    rollout_results_result(arg).into()
}

fn rollout_results_result(
    arg: RolloutResultsArg,
) -> Result<Option<RolloutResultsPage>, QueryError> {
    operators_only(|| rollouts::results(arg))
}

#[query]
fn rollout_events(arg: LogPageArg) -> RolloutEventsReply {
    rollout_events_result(arg).into()
}

fn rollout_events_result(arg: LogPageArg) -> Result<Option<RolloutEventsPage>, QueryError> {
    operators_only(|| rollouts::events(arg))
}

#[query]
fn pipeline_log(arg: LogPageArg) -> PipelineLogReply {
    pipeline_log_result(arg).into()
}

fn pipeline_log_result(arg: LogPageArg) -> Result<PipelineLogPage, QueryError> {
    operators_only(|| rollouts::pipeline_log(arg))
}

/// Aggregate figures only (counts, counters, the rollout's status, cycles, tick cost): public,
/// like `GET /metrics`, which scrapers read through the HTTP gateway without an identity. Per
/// canister details stay with operators (`rollout_results`, `list_user_canisters`).
#[query]
fn metrics() -> FleetMetrics {
    metrics::collect()
}

/// `GET /metrics` in Prometheus text format, for scrapers through the HTTP gateway. Public,
/// like `metrics` and the other aggregate queries (`user_canister_count`, `store_usage`).
#[query]
fn http_request(req: HttpRequest) -> HttpResponse {
    let path = req.url.split('?').next().unwrap_or("");
    let text = |status_code, body: String| HttpResponse {
        status_code,
        headers: vec![(
            "content-type".to_string(),
            "text/plain; version=0.0.4; charset=utf-8".to_string(),
        )],
        body: body.into_bytes(),
    };
    match (req.method.as_str(), path) {
        ("GET", "/metrics") => text(200, metrics::prometheus(&metrics::collect())),
        ("GET", _) => text(404, "not found\n".into()),
        _ => text(405, "method not allowed\n".into()),
    }
}

/// An owner, or the user canister itself, asks for an upgrade (to `target_version`, or to the
/// running rollout's target, or to the default release). Answered at once: the pipeline runs
/// from the manager's timer, so the canister never waits on the manager while being stopped.
#[update(guard = "awake")]
fn request_upgrade(arg: RequestUpgradeArg) -> RequestUpgradeReply {
    request_upgrade_result(arg).into()
}

fn request_upgrade_result(arg: RequestUpgradeArg) -> Result<UpgradeTicket, RequestUpgradeError> {
    let ticket = rollouts::request_upgrade(
        ic_cdk::api::msg_caller(),
        arg.canister_id,
        arg.target_version,
        env(),
    )?;
    driver::ensure_timer();
    Ok(ticket)
}

// ---------------------------------------------------------------------------------------------
// Admission and the release policy
// ---------------------------------------------------------------------------------------------

#[query]
fn get_admission() -> AdmissionStatus {
    admission::status()
}

#[update(guard = "awake")]
fn set_admission(arg: Admission) -> AdmissionReply {
    set_admission_result(arg).into()
}

fn set_admission_result(arg: Admission) -> Result<AdmissionStatus, AdmissionError> {
    if !has_role(caller(), Role::Admin) {
        return Err(AdmissionError::NotAuthorized);
    }
    admission::set(arg, ic_cdk::api::canister_self())
}

#[update(guard = "awake")]
fn update_allowlist(arg: AllowlistUpdate) -> AdmissionReply {
    update_allowlist_result(arg).into()
}

fn update_allowlist_result(arg: AllowlistUpdate) -> Result<AdmissionStatus, AdmissionError> {
    if !has_role(caller(), Role::Admin) {
        return Err(AdmissionError::NotAuthorized);
    }
    admission::update_allowlist(arg)
}

#[query]
fn get_release_policy() -> ReleasePolicy {
    governance::policy()
}

/// Changing the policy needs the policy itself: under a quorum it is a request.
#[update(guard = "awake")]
fn set_release_policy(policy: ReleasePolicy) -> SetReleasePolicyReply {
    set_release_policy_result(policy).into()
}

fn set_release_policy_result(
    policy: ReleasePolicy,
) -> Result<ReleasePolicy, SetReleasePolicyError> {
    let caller = caller();
    if !has_role(caller, Role::Admin) {
        return Err(SetReleasePolicyError::NotAuthorized);
    }
    governance::validate(&policy)?;
    governance::gate(
        caller.principal,
        RequestAction::SetReleasePolicy(policy),
        ic_cdk::api::time(),
    )
    .map_err(SetReleasePolicyError::ApprovalRequired)?;
    governance::apply_policy(policy);
    Ok(policy)
}

/// An emergency: ends the notice of a release sooner. Under a quorum, a request of admins.
#[update(guard = "awake")]
fn shorten_notice(version: String, notice_secs: u64) -> ShortenNoticeReply {
    shorten_notice_result(version, notice_secs).into()
}

fn shorten_notice_result(
    version: String,
    notice_secs: u64,
) -> Result<PendingRelease, ShortenNoticeError> {
    let caller = caller();
    if !has_role(caller, Role::Admin) {
        return Err(ShortenNoticeError::NotAuthorized);
    }
    let meta = state::with(|s| s.store.get(&version)).ok_or(ShortenNoticeError::UnknownRelease)?;
    if notice_secs > governance::policy().notice_secs {
        return Err(ShortenNoticeError::InvalidNotice);
    }
    governance::gate(
        caller.principal,
        RequestAction::ShortenNotice {
            version: version.clone(),
            notice_secs,
        },
        ic_cdk::api::time(),
    )
    .map_err(ShortenNoticeError::ApprovalRequired)?;
    governance::apply_notice(&meta.sha256, notice_secs);
    pending_release_of(&meta.sha256).ok_or(ShortenNoticeError::UnknownRelease)
}

fn pending_release_of(sha256: &[u8]) -> Option<PendingRelease> {
    governance::pending_releases()
        .into_iter()
        .find(|p| p.sha256.as_slice() == sha256)
}

/// Approves a request; the approval that completes the quorum runs its action.
#[update(guard = "awake")]
async fn approve_request(id: u64) -> ApproveRequestReply {
    approve_request_result(id).await.into()
}

async fn approve_request_result(id: u64) -> Result<Request, ApproveRequestError> {
    let (request, approved) = governance::approve(&Ic, caller(), id)?;
    if !approved {
        return Ok(request);
    }
    let outcome = governance::execute(&Ic, &request.action).await;
    if outcome.is_ok() && matches!(request.action, RequestAction::StartRollout(_)) {
        driver::ensure_timer();
    }
    Ok(governance::finish(id, outcome, ic_cdk::api::time()).unwrap_or(request))
}

#[update(guard = "awake")]
fn cancel_request(id: u64) -> CancelRequestReply {
    governance::cancel(caller(), id, ic_cdk::api::time()).into()
}

#[query]
fn list_requests(arg: ListRequestsArg) -> ListRequestsReply {
    operators_only(|| governance::list(&arg)).into()
}

/// Published releases no rollout has used yet, and when a rollout to each may start: what
/// users and their canisters check to see code coming.
#[query]
fn pending_releases() -> Vec<PendingRelease> {
    governance::pending_releases()
}

ic_cdk::export_candid!();

#[cfg(test)]
mod candid_tests {
    /// The checked-in `fleet_manager.did` is the contract clients are built against: fail when
    /// the interface the code exports differs from it. `UPDATE_DID=1 cargo test` rewrites it.
    #[test]
    fn did_file_matches_exported_interface() {
        let exported = super::__export_service();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fleet_manager.did");
        if std::env::var_os("UPDATE_DID").is_some() {
            std::fs::write(path, &exported).expect("writing fleet_manager.did");
        }
        let checked_in = std::fs::read_to_string(path).expect("reading fleet_manager.did");
        assert!(
            checked_in == exported,
            "fleet_manager.did differs from the exported interface; run \
             `UPDATE_DID=1 cargo test -p fleet_manager did_file` and review the diff.\n\
             exported:\n{exported}"
        );
    }

    /// Every method the manager exports is declared in `fleet_api` with the same name and kind
    /// (the types clients call it through), and nothing is declared that it does not export.
    #[test]
    fn every_exported_method_is_declared_in_fleet_api() {
        use fleet_api::endpoint::service_methods;
        let mut declared: Vec<_> = fleet_api::manager::method::METHODS
            .iter()
            .chain(fleet_api::rollout::method::METHODS)
            .chain(fleet_api::governance::method::METHODS)
            .map(|(name, kind)| (name.to_string(), *kind))
            .collect();
        declared.sort();
        assert_eq!(declared, service_methods(&super::__export_service()));
    }
}
