//! The fleet manager's interface: argument, record and error types of its endpoints.
//!
//! Every update endpoint returns `Result<_, E>` with one error enum per endpoint (a candid
//! variant), so that callers can match on what went wrong; bad input changes nothing.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

/// Most records one page of a paginated query returns; larger `limit`s are clamped to it.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Capacity of a canister's IC chunk store (interface spec, "IC method `upload_chunk`").
pub const CHUNK_STORE_CAPACITY: u32 = 100;

/// Largest chunk the IC chunk store accepts: 1 MiB (interface spec, "IC method `upload_chunk`").
pub const IC_CHUNK_SIZE: u64 = 1024 * 1024;

/// Upgrade events kept per user canister; older ones are dropped first.
pub const MAX_HISTORY: usize = 10;

// ---------------------------------------------------------------------------------------------
// Init and settings
// ---------------------------------------------------------------------------------------------

/// Argument of the manager's `init`. Every field has a default, so `null` installs a working
/// manager whose only administrators are its controllers.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ManagerInitArg {
    /// Operators granted the `Admin` role at install.
    pub admins: Option<Vec<Principal>>,
    /// Cycles each new user canister receives on top of the creation fee.
    pub user_canister_cycles: Option<u128>,
    /// Token bucket limiting `create_user_canister`.
    pub creation_limit: Option<RateLimit>,
    /// Who may get a canister, and the provisioning budget (default: open, within
    /// [`crate::governance::DEFAULT_PROVISIONING_BUDGET`]).
    pub admission: Option<crate::governance::Admission>,
    /// Quorum and notice for code reaching the fleet (default: quorum 1, no notice).
    pub release_policy: Option<crate::governance::ReleasePolicy>,
}

/// A token bucket: at most `capacity` creations at once, one more token every
/// `refill_period_secs` seconds.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub capacity: u32,
    pub refill_period_secs: u64,
}

/// The manager's settings, readable by everyone.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub user_canister_cycles: u128,
    pub creation_limit: RateLimit,
    /// Release installed into newly created user canisters.
    pub default_release: Option<ReleaseRef>,
    /// Cycles the manager keeps for finishing each pipeline in flight (every call of it, and
    /// the prepaid execution of each reply); no pipeline starts that this reserve does not
    /// cover. `None`: [`DEFAULT_PIPELINE_CYCLES_RESERVE`].
    pub pipeline_cycles_reserve: Option<u128>,
}

/// Default reserve per pipeline: on the IC each outstanding call prepays the execution of its
/// reply at the message instruction limit (about 16B cycles on a 13-node subnet), plus the
/// pipeline's call fees and callbacks.
pub const DEFAULT_PIPELINE_CYCLES_RESERVE: u128 = 20_000_000_000;

/// Partial update of [`Settings`]; `None` keeps a value.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct SettingsUpdate {
    pub user_canister_cycles: Option<u128>,
    pub creation_limit: Option<RateLimit>,
    pub pipeline_cycles_reserve: Option<u128>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum UpdateSettingsError {
    NotAuthorized,
    /// A rate limit needs a capacity of at least one and a refill period of at least one second.
    InvalidRateLimit,
}

// ---------------------------------------------------------------------------------------------
// Operators
// ---------------------------------------------------------------------------------------------

/// What an operator may do. The canister's controllers hold every role.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Role {
    /// Manages operators and settings, sets the default release.
    Admin,
    /// Publishes releases.
    Releaser,
    /// Runs rollouts and manages user canisters' upgrade policies.
    Deployer,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub principal: Principal,
    pub roles: Vec<Role>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum OperatorError {
    NotAuthorized,
    /// Under a release policy's quorum, operator changes are requests; this one runs once
    /// approved.
    ApprovalRequired(Box<crate::governance::Request>),
    /// The anonymous principal cannot be an operator.
    AnonymousOperator,
    /// An operator needs at least one role; use `remove_operator` to revoke all.
    NoRoles,
    UnknownOperator,
}

/// Refusal of a query restricted to operators.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    NotAuthorized,
}

// ---------------------------------------------------------------------------------------------
// Releases
// ---------------------------------------------------------------------------------------------

/// A release as registry records and settings refer to it.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct ReleaseRef {
    pub version: String,
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------
// IC chunk store mirror
// ---------------------------------------------------------------------------------------------

/// A release mirrored into the manager's IC chunk store.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MirroredRelease {
    pub release: ReleaseRef,
    /// sha256 of each ≤ 1 MiB slice of the module, in order: the `chunk_hashes_list` of
    /// `install_chunked_code`.
    pub chunk_hashes: Vec<Vec<u8>>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChunkStoreStatus {
    pub capacity: u32,
    /// Distinct chunks stored (the IC store deduplicates equal chunks).
    pub used: u32,
    pub releases: Vec<MirroredRelease>,
    /// True while a mirroring operation runs; other mirroring requests are refused meanwhile.
    pub busy: bool,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum MirrorError {
    NotAuthorized,
    UnknownRelease,
    /// Another mirroring operation is running; retry later.
    Busy,
    /// Even after clearing the store, the releases still needed (default release, rollout
    /// targets) plus this one need more chunks than the store holds.
    DoesNotFit {
        needed: u32,
        capacity: u32,
    },
    /// A management canister call failed; the mirror records only what was confirmed.
    CallFailed {
        method: String,
        message: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Registry
// ---------------------------------------------------------------------------------------------

/// Lifecycle of a user canister in the registry.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum CanisterStatus {
    /// Created, code not yet installed; `create_user_canister` by the owner resumes it.
    Provisioning,
    /// Running a release recorded in `current_release`.
    Active,
    /// An upgrade is in progress.
    Upgrading,
    /// The last operation failed; see `last_error`.
    Failed,
    /// The last upgrade failed its health check and was rolled back to the snapshot.
    RolledBack,
    /// The manager no longer manages the canister (for example the owner removed it as a
    /// controller).
    Detached,
}

impl CanisterStatus {
    pub const ALL: [CanisterStatus; 6] = [
        CanisterStatus::Provisioning,
        CanisterStatus::Active,
        CanisterStatus::Upgrading,
        CanisterStatus::Failed,
        CanisterStatus::RolledBack,
        CanisterStatus::Detached,
    ];
}

/// How rollouts treat a user canister.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub enum UpgradePolicy {
    /// Included in every rollout.
    #[default]
    Auto,
    /// Upgraded only when its owner asks.
    Manual,
    /// Kept on this version.
    Pinned(String),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum UpgradeOutcome {
    /// First install by `create_user_canister`.
    Installed,
    /// Registered by `adopt_canister` with the module it already ran.
    Adopted,
    Upgraded,
    Failed(String),
    RolledBack(String),
    /// A restore loaded the snapshot taken before the previous upgrade.
    Restored,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpgradeEvent {
    pub at_ns: u64,
    pub from: Option<ReleaseRef>,
    pub to: ReleaseRef,
    pub outcome: UpgradeOutcome,
}

/// One registry record.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UserCanister {
    pub canister_id: Principal,
    pub owner: Principal,
    pub recovery_principal: Principal,
    pub current_release: Option<ReleaseRef>,
    pub policy: UpgradePolicy,
    pub status: CanisterStatus,
    pub last_error: Option<String>,
    /// The last [`MAX_HISTORY`] upgrade events, oldest first.
    pub history: Vec<UpgradeEvent>,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
    /// The subnet the canister lives on; `None` for a canister registered before the manager
    /// recorded subnets, which is on the manager's own subnet.
    pub subnet: Option<Principal>,
}

/// Which records `list_user_canisters` pages through.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CanisterFilter {
    All,
    Owner(Principal),
    /// Canisters whose current release has this version. There is no index by release: a
    /// page reads at most 10,000 records of the registry, so it may hold fewer than `limit`
    /// canisters, or none, and still have a `next`.
    Release(String),
    Status(CanisterStatus),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ListUserCanistersArg {
    pub filter: CanisterFilter,
    /// Canister id of the last record of the previous page.
    pub start_after: Option<Principal>,
    /// At most [`MAX_PAGE_SIZE`]; default 100.
    pub limit: Option<u32>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UserCanisterPage {
    pub canisters: Vec<UserCanister>,
    /// Pass as `start_after` to get the next page; `None` on the last page.
    pub next: Option<Principal>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum GetUserCanisterError {
    /// Only operators, the owner and the recovery principal may read a record.
    NotAuthorized,
    NotFound,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SetUpgradePolicyArg {
    pub canister_id: Principal,
    pub policy: UpgradePolicy,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum SetUpgradePolicyError {
    /// Only the owner and deployers may change the policy.
    NotAuthorized,
    NotFound,
    /// `Pinned` names a version that is not a finalized release.
    UnknownRelease,
}

// ---------------------------------------------------------------------------------------------
// Provisioning
// ---------------------------------------------------------------------------------------------

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CreateUserCanisterArg {
    /// Second controller of the new canister, derived from the owner's recovery phrase.
    pub recovery_principal: Principal,
    /// An invite code, under the `Allowlist` admission mode.
    pub invite: Option<String>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum CreateUserCanisterError {
    AnonymousCaller,
    /// The recovery principal is anonymous, the manager or the management canister.
    InvalidRecoveryPrincipal,
    /// The caller already has a canister, recovered by another principal.
    RecoveryPrincipalMismatch {
        existing: Principal,
    },
    /// Another `create_user_canister` call of this owner is running.
    InProgress,
    /// The manager is creating as many canisters as it can at once (`in_progress`), or the IC
    /// did not take its `create_canister` call (its queue to the management canister was
    /// full). Nothing was created or recorded and no rate-limit token was spent: try again
    /// shortly.
    Busy {
        in_progress: u32,
    },
    /// The creation rate limit is exhausted; a token is available after this many seconds.
    RateLimited {
        retry_after_secs: u64,
    },
    NoDefaultRelease,
    /// The manager cannot pay creation fee plus the user canister's cycles.
    InsufficientCycles {
        available: u128,
        needed: u128,
    },
    /// The default release could not be put into the manager's chunk store.
    Mirror(MirrorError),
    /// `create_canister` failed; nothing was recorded.
    CreateFailed(String),
    /// The canister exists and is recorded as `Provisioning`; calling again resumes.
    InstallFailed {
        canister_id: Principal,
        message: String,
    },
    /// The admission mode does not admit the caller: not on the allowlist and no invite, or
    /// the approver said no.
    NotAdmitted,
    /// The invite code is unknown or used.
    InvalidInvite,
    /// The approver canister did not answer `true` or `false` in time; nothing was created.
    ApproverFailed(String),
    /// Under the `Paid` mode the caller must be a canister attaching at least `needed` cycles.
    PaymentRequired {
        needed: u128,
        attached: u128,
    },
    /// The provisioning budget of this window is spent; the next window opens after this many
    /// seconds.
    BudgetExhausted {
        retry_after_secs: u64,
    },
    /// Under the `Fill` placement every subnet holds its limit of canisters.
    NoSubnetWithRoom,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AdoptCanisterArg {
    pub canister_id: Principal,
    /// The owner to record; default: the caller.
    pub owner: Option<Principal>,
    /// The subnet the canister lives on, when it is not the manager's own: one the manager
    /// uses (`add_subnet`), whose store its upgrades install from. A canister cannot learn
    /// another's subnet, so the adopter names it.
    pub subnet: Option<Principal>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AdoptCanisterError {
    AnonymousCaller,
    /// Only admins, deployers and the canister's recovery principal (a controller, so it proves
    /// control) may adopt a canister.
    NotAuthorized,
    /// The owner is anonymous, the manager or the management canister.
    InvalidOwner,
    /// Another creation or adoption for this owner is running, or the manager is running as
    /// many as it takes at once (`create_user_canister`'s `Busy`): try again shortly.
    InProgress,
    AlreadyRegistered,
    OwnerHasCanister {
        canister_id: Principal,
    },
    /// `canister_status` failed, usually because the manager is not a controller.
    StatusFailed(String),
    /// Controllers must be exactly the manager and one recovery principal.
    InvalidControllers {
        controllers: Vec<Principal>,
    },
    /// The installed module is not a finalized release (or there is no module).
    UnknownModule {
        module_hash: Option<Vec<u8>>,
    },
    /// The named subnet is not one the manager uses (`add_subnet` first).
    UnknownSubnet(Principal),
}

// ---------------------------------------------------------------------------------------------
// Subnets
// ---------------------------------------------------------------------------------------------

/// Most subnets a manager provisions on besides its own.
pub const MAX_SUBNETS: usize = 8;

/// Where `create_user_canister` places a new canister. The manager's own subnet comes first,
/// then the added subnets in the order they were added.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The manager's own subnet only (the default).
    OwnSubnet,
    /// Each subnet up to this many canisters, then the next one.
    Fill { max_per_subnet: u64 },
    /// The subnet with the fewest canisters (ties: the earlier one).
    Spread,
    /// Always this subnet (the manager's own or an added one).
    Subnet(Principal),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AddSubnetArg {
    pub subnet: Principal,
    /// Cycles the new store canister receives, on top of what creating it costs.
    pub store_cycles: u128,
}

/// One subnet the fleet uses, and the store canister installs there take their chunks from.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubnetInfo {
    pub subnet: Principal,
    /// The canister whose IC chunk store holds the releases for this subnet: the manager
    /// itself on its own subnet, else a store canister the manager alone controls, running the
    /// store module (`set_store_module`), whose public `releases` query lists what its chunk
    /// store holds (`install_chunked_code` takes chunks only from a store on the target's
    /// subnet; [`crate::store_canister`]).
    pub store: Principal,
    /// True for the manager's own subnet.
    pub own: bool,
    /// Registered canisters on this subnet.
    pub canisters: u64,
    pub chunk_store: ChunkStoreStatus,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubnetsView {
    pub placement: Placement,
    /// The manager's own subnet first.
    pub subnets: Vec<SubnetInfo>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum SubnetError {
    NotAuthorized,
    /// The subnet is the manager's own, was added already, or another call is adding it.
    AlreadyAdded,
    TooManySubnets {
        max: u32,
    },
    /// Not a subnet the manager uses.
    UnknownSubnet(Principal),
    /// `Fill` with a limit of 0.
    InvalidPlacement(String),
    InsufficientCycles {
        available: u128,
        needed: u128,
    },
    /// No store module is set (`set_store_module`): nothing was created.
    NoStoreModule,
    /// The cycles minting canister did not create the store canister (cycles refunded).
    CreateFailed(String),
    /// The store canister was created but the store module could not be installed in it. The
    /// subnet is added with `store`, whose chunk store serves installs without the module; the
    /// manager installs the module (the one set then) when it next records a release there.
    StoreInstallFailed {
        store: Principal,
        message: String,
    },
    /// Mirroring the releases still needed into the new store failed; the subnet is added and
    /// the store is filled again when a release is needed there.
    Mirror(MirrorError),
}

/// What `upgrade_stores` did with one added subnet's store.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoreUpgrade {
    pub subnet: Principal,
    pub store: Principal,
    pub outcome: StoreUpgradeOutcome,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum StoreUpgradeOutcome {
    /// It ran the store module already.
    Current,
    /// Upgraded to the store module (mode `upgrade`: its recorded releases are kept).
    Upgraded,
    /// It had no module (its install had failed); the store module is installed.
    Installed,
    /// Its status could not be read, or the IC refused the install; it keeps what it ran.
    Failed(String),
}

/// Largest store module `set_store_module` takes: it travels whole in the `install_code` call
/// to each new store, and an inter-canister call carries at most 2 MiB (interface spec,
/// "Resource limits"), with room left for the rest of the argument.
pub const MAX_STORE_MODULE_SIZE: u64 = 1_900_000;

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum SetStoreModuleError {
    NotAuthorized,
    /// Neither wasm (`\0asm`) nor gzip (`1f 8b`) magic bytes.
    NotWasm,
    TooLarge {
        size: u64,
        max: u64,
    },
}

// ---------------------------------------------------------------------------------------------
// Release endpoints (the release types are in [`crate::store`], re-exported here)
// ---------------------------------------------------------------------------------------------

pub use crate::store::*;

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadReleaseChunkArg {
    pub version: String,
    pub index: u32,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReleaseChunkArg {
    pub version: String,
    pub index: u32,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ListReleasesArg {
    /// Version of the last release of the previous page.
    pub start_after: Option<String>,
    /// At most 100; default 100.
    pub limit: Option<u32>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum BeginReleaseError {
    NotAuthorized,
    Store(StoreError),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum UploadReleaseChunkError {
    NotAuthorized,
    Store(StoreError),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AbortReleaseUploadError {
    NotAuthorized,
    Store(StoreError),
}

/// A finalized release and whether it could be mirrored into the chunk store right away.
/// A release that is not mirrored is mirrored again when it is needed (`mirror_release`,
/// `set_default_release`, provisioning).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FinalizedRelease {
    pub release: ReleaseMeta,
    pub mirror_error: Option<MirrorError>,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum FinalizeReleaseError {
    NotAuthorized,
    Store(StoreError),
    /// Under a release policy's quorum, publishing is a request; the upload is finalized once
    /// it is approved.
    ApprovalRequired(Box<crate::governance::Request>),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum DeleteReleaseError {
    NotAuthorized,
    /// Deleting the release the chunk store is being filled with would corrupt the mirror.
    Busy,
    Store(StoreError),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum SetDefaultReleaseError {
    NotAuthorized,
    UnknownRelease,
    /// The release could not be put into the chunk store; the default is unchanged.
    Mirror(MirrorError),
    /// No rollout has used the release yet and its notice runs until `may_start_at_ns`.
    NoticePeriod {
        may_start_at_ns: u64,
    },
    /// Under a release policy's quorum, making a release no rollout has used the default is a
    /// request; it runs once approved.
    ApprovalRequired(Box<crate::governance::Request>),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ListUserCanistersError {
    NotAuthorized,
    UnknownRelease,
}

/// Argument of `manage_canister`: one call to the management canister about a managed
/// canister (`canister_id` of the argument), made by the manager, its controller, for an
/// admin: how `fleet canisters backup` and `restore` take, download, upload and load a managed
/// canister's snapshots without holding a controller key of their own.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ManageCanisterArg {
    /// One of [`MANAGE_CANISTER_METHODS`].
    pub method: String,
    /// The method's candid-encoded argument, as the management canister takes it.
    #[serde(with = "serde_bytes")]
    pub arg: Vec<u8>,
}

/// The management methods `manage_canister` forwards: stopping and starting, status, and the
/// snapshot methods (interface spec, "IC method `take_canister_snapshot`" and the snapshot
/// data methods after it). Nothing that changes controllers, settings or code directly.
pub const MANAGE_CANISTER_METHODS: &[&str] = &[
    "stop_canister",
    "start_canister",
    "canister_status",
    "take_canister_snapshot",
    "load_canister_snapshot",
    "list_canister_snapshots",
    "delete_canister_snapshot",
    "read_canister_snapshot_metadata",
    "read_canister_snapshot_data",
    "upload_canister_snapshot_metadata",
    "upload_canister_snapshot_data",
];

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ManageCanisterError {
    NotAuthorized,
    MethodNotAllowed {
        method: String,
    },
    /// The argument does not decode as a record with a `canister_id`.
    BadArgument {
        reason: String,
    },
    /// Not in the registry, or detached: the manager acts only on the canisters it manages.
    NotManaged {
        canister: Principal,
    },
    /// A rollout's pipeline is working on the canister; try again when it is done.
    InFlight {
        canister: Principal,
    },
    /// The management canister refused the call.
    Rejected(crate::engine::CallError),
}

// ---------------------------------------------------------------------------------------------
// Replies and methods
// ---------------------------------------------------------------------------------------------

crate::endpoint::reply! {
    UpdateSettingsReply(Settings, UpdateSettingsError);
    /// Reply of `set_operator` and `remove_operator`.
    OperatorReply((), OperatorError);
    ListOperatorsReply(Vec<Operator>, QueryError);
    BeginReleaseReply(UploadStatus, BeginReleaseError);
    UploadReleaseChunkReply((), UploadReleaseChunkError);
    AbortReleaseUploadReply((), AbortReleaseUploadError);
    ReleaseUploadStatusReply(UploadStatus, StoreError);
    FinalizeReleaseReply(FinalizedRelease, FinalizeReleaseError);
    MirrorReleaseReply(ChunkStoreStatus, MirrorError);
    DeleteReleaseReply(ReleaseMeta, DeleteReleaseError);
    SetDefaultReleaseReply(Settings, SetDefaultReleaseError);
    ListReleasesReply(Vec<ReleaseMeta>, StoreError);
    ReleaseChunkReply(serde_bytes::ByteBuf, StoreError);
    ManageCanisterReply(serde_bytes::ByteBuf, ManageCanisterError);
    CreateUserCanisterReply(UserCanister, CreateUserCanisterError);
    AdoptCanisterReply(UserCanister, AdoptCanisterError);
    GetUserCanisterReply(UserCanister, GetUserCanisterError);
    ListUserCanistersReply(UserCanisterPage, ListUserCanistersError);
    SetUpgradePolicyReply(UserCanister, SetUpgradePolicyError);
    AddSubnetReply(SubnetInfo, SubnetError);
    SetPlacementReply(SubnetsView, SubnetError);
    /// The sha256 of the store module now set.
    SetStoreModuleReply(serde_bytes::ByteBuf, SetStoreModuleError);
    /// Each added subnet's store, in the order added.
    UpgradeStoresReply(Vec<StoreUpgrade>, SubnetError);
}

/// The manager's settings, operators, releases and registry methods; the rollout methods are
/// in [`crate::rollout::method`].
pub mod method {
    use super::*;
    use candid::Principal;

    crate::endpoint::endpoints! {
        query GetSettings = "get_settings" () -> Settings;
        update UpdateSettings = "update_settings" (SettingsUpdate) -> UpdateSettingsReply;
        update SetOperator = "set_operator" (Operator) -> OperatorReply;
        update RemoveOperator = "remove_operator" (Principal) -> OperatorReply;
        query ListOperators = "list_operators" () -> ListOperatorsReply;
        update BeginRelease = "begin_release" (BeginUpload) -> BeginReleaseReply;
        update UploadReleaseChunk = "upload_release_chunk" (UploadReleaseChunkArg)
            -> UploadReleaseChunkReply;
        update AbortReleaseUpload = "abort_release_upload" (String) -> AbortReleaseUploadReply;
        query ReleaseUploadStatus = "release_upload_status" (String) -> ReleaseUploadStatusReply;
        update FinalizeRelease = "finalize_release" (String) -> FinalizeReleaseReply;
        update MirrorRelease = "mirror_release" (String) -> MirrorReleaseReply;
        update DeleteRelease = "delete_release" (String) -> DeleteReleaseReply;
        update SetDefaultRelease = "set_default_release" (String) -> SetDefaultReleaseReply;
        query ListReleases = "list_releases" (ListReleasesArg) -> ListReleasesReply;
        query GetRelease = "get_release" (String) -> Option<ReleaseMeta>;
        query GetReleaseInterface = "get_release_interface" (String)
            -> Option<ReleaseInterface>;
        query ReleaseChunk = "release_chunk" (ReleaseChunkArg) -> ReleaseChunkReply;
        update ManageCanister = "manage_canister" (ManageCanisterArg) -> ManageCanisterReply;
        query StoreUsageQuery = "store_usage" () -> StoreUsage;
        query ChunkStoreStatusQuery = "chunk_store_status" () -> ChunkStoreStatus;
        update CreateUserCanister = "create_user_canister" (CreateUserCanisterArg)
            -> CreateUserCanisterReply;
        update AdoptCanister = "adopt_canister" (AdoptCanisterArg) -> AdoptCanisterReply;
        query MyUserCanister = "my_user_canister" () -> Option<UserCanister>;
        query GetUserCanister = "get_user_canister" (Principal) -> GetUserCanisterReply;
        query ListUserCanisters = "list_user_canisters" (ListUserCanistersArg)
            -> ListUserCanistersReply;
        query UserCanisterCount = "user_canister_count" () -> u64;
        update SetUpgradePolicy = "set_upgrade_policy" (SetUpgradePolicyArg)
            -> SetUpgradePolicyReply;
        update AddSubnet = "add_subnet" (AddSubnetArg) -> AddSubnetReply;
        update SetPlacement = "set_placement" (Placement) -> SetPlacementReply;
        query ListSubnets = "list_subnets" () -> SubnetsView;
        /// Admin: the module `add_subnet` installs in each new store canister.
        update SetStoreModule = "set_store_module" (serde_bytes::ByteBuf) -> SetStoreModuleReply;
        /// The sha256 of the store module, if one is set.
        query StoreModule = "store_module" () -> Option<serde_bytes::ByteBuf>;
        /// Admin: brings every added subnet's store to the store module set now.
        update UpgradeStores = "upgrade_stores" () -> UpgradeStoresReply;
    }
}
