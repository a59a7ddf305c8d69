//! Operator commands against the fleet manager's candid API: publishing and reading releases,
//! listing the registry, managing operators, and fetching a release for an end user's own
//! upgrade.
//!
//! Every method is called through its `fleet_api` endpoint type ([`Manager::call`]). A reply
//! that can fail is a named `variant { Ok; Err }` with one error enum per endpoint; this module
//! turns those errors into [`CliError`]s that say what to do next ([`Manager::call_ok`]), and
//! never retries on its own: a publish that was interrupted is resumed by running it again,
//! because the manager remembers which chunks it holds.

use std::fmt::Debug;

use candid::Principal;
use fleet_api::endpoint::{Endpoint, Reply};
use fleet_api::manager::method::{
    AbortReleaseUpload, BeginRelease, FinalizeRelease, GetRelease, ListOperators, ListReleases,
    ListUserCanisters, ReleaseChunk, ReleaseUploadStatus, RemoveOperator, SetOperator,
    UploadReleaseChunk,
};
use fleet_api::manager::{
    AbortReleaseUploadError, BeginReleaseError, BeginUpload, CanisterFilter, CanisterStatus,
    FinalizeReleaseError, ListReleasesArg, ListUserCanistersArg, ListUserCanistersError,
    MirrorError, Operator, OperatorError, QueryError, ReleaseChunkArg, ReleaseInterface,
    ReleaseMeta, Role, StoreError, UpgradePolicy, UploadReleaseChunkArg, UploadReleaseChunkError,
    UploadStatus, UserCanister,
};
use fleet_api::rollout::method::{
    Drain, EndDrain, GetRolloutStatus, Metrics, PlanRollout, Rollback, RolloutResults, StartRollout,
};
use fleet_api::rollout::{
    DrainError, DrainStatus, Failure, FleetMetrics, Hold, OpKind, RollbackArg, RollbackError,
    RolloutCanisterResult, RolloutControlError, RolloutControlReply, RolloutPlanArg,
    RolloutPreview, RolloutResultsArg, RolloutStarted, RolloutStatus, StartRolloutError, WaveLabel,
    MAX_ROLLOUT_PAGE,
};
use fleet_api::user::method::GetFleetHealth;
use fleet_api::wire::Wire;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backend::mgmt::MAX_CHUNK_SIZE;
use crate::backend::{CallError, Endpoints, Ic};
use crate::error::CliError;
use crate::progress::Progress;
use crate::wasm::WasmModule;

/// A typed error of a manager endpoint: whether it means "not allowed", and what to tell the
/// operator.
pub trait EndpointError: Debug {
    fn not_authorized(&self) -> bool;
    /// True when the request itself is malformed (exit code 2) rather than refused in the
    /// manager's current state.
    fn bad_input(&self) -> bool {
        false
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

fn store_bad_input(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::InvalidVersion { .. }
            | StoreError::InvalidSha256 { .. }
            | StoreError::EmptyModule
            | StoreError::TooManyChunks { .. }
            | StoreError::ModuleTooLarge { .. }
            | StoreError::NotesTooLong { .. }
            | StoreError::InterfaceTooLong { .. }
            | StoreError::NotWasm { .. }
    )
}

impl EndpointError for StoreError {
    fn not_authorized(&self) -> bool {
        false
    }
    fn bad_input(&self) -> bool {
        store_bad_input(self)
    }
    fn describe(&self) -> String {
        describe_store_error(self)
    }
}

/// The store's own message for a refusal (the wire type carries no text).
fn describe_store_error(e: &StoreError) -> String {
    e.clone().wire().to_string()
}

macro_rules! store_endpoint_error {
    ($($t:ty $({ $($pat:pat => $describe:expr),* })?);* $(;)?) => {$(
        impl EndpointError for $t {
            fn not_authorized(&self) -> bool {
                matches!(self, Self::NotAuthorized)
            }
            fn bad_input(&self) -> bool {
                matches!(self, Self::Store(e) if store_bad_input(e))
            }
            fn describe(&self) -> String {
                match self {
                    Self::NotAuthorized => "not authorized".into(),
                    Self::Store(e) => describe_store_error(e),
                    $($($pat => $describe,)*)?
                }
            }
        }
    )*};
}
store_endpoint_error!(
    BeginReleaseError;
    UploadReleaseChunkError;
    AbortReleaseUploadError;
    FinalizeReleaseError { Self::ApprovalRequired(r) => awaiting_approval(r) };
);

/// What a request made under the release policy's quorum tells the operator.
pub fn awaiting_approval(r: &fleet_api::governance::Request) -> String {
    format!(
        "awaiting approval: request {} has {} of {} approvals; operators holding the {:?} role \
         approve it with `approve_request({})`",
        r.id,
        r.approvals.len(),
        r.quorum,
        r.role,
        r.id
    )
}

impl EndpointError for QueryError {
    fn not_authorized(&self) -> bool {
        true
    }
}

impl EndpointError for OperatorError {
    fn not_authorized(&self) -> bool {
        matches!(self, OperatorError::NotAuthorized)
    }
    fn bad_input(&self) -> bool {
        matches!(
            self,
            OperatorError::AnonymousOperator | OperatorError::NoRoles
        )
    }
    fn describe(&self) -> String {
        match self {
            OperatorError::NotAuthorized => "not authorized".into(),
            OperatorError::AnonymousOperator => {
                "the anonymous principal cannot be an operator".into()
            }
            OperatorError::NoRoles => "an operator needs at least one role".into(),
            OperatorError::UnknownOperator => "no such operator".into(),
            OperatorError::ApprovalRequired(r) => awaiting_approval(r),
        }
    }
}

impl EndpointError for ListUserCanistersError {
    fn not_authorized(&self) -> bool {
        matches!(self, ListUserCanistersError::NotAuthorized)
    }
    fn bad_input(&self) -> bool {
        matches!(self, ListUserCanistersError::UnknownRelease)
    }
    fn describe(&self) -> String {
        match self {
            ListUserCanistersError::NotAuthorized => "not authorized".into(),
            ListUserCanistersError::UnknownRelease => "the manager has no such release".into(),
        }
    }
}

/// One manager, as one caller.
pub struct Manager<'a> {
    pub ic: &'a dyn Ic,
    pub id: Principal,
}

impl<'a> Manager<'a> {
    pub fn new(ic: &'a dyn Ic, id: Principal) -> Self {
        Self { ic, id }
    }

    /// A call that got no reply. The manager's `canister_inspect_message` drops an update
    /// whose caller lacks the role it needs (the IC answers IC0406, "canister rejected the
    /// message"); the CLI always sends a well-formed argument, so that is "not authorized".
    fn call_failed(&self, method: &str) -> impl FnOnce(CallError) -> CliError + '_ {
        let step = format!("{method} on manager {}", self.id);
        let method = method.to_string();
        move |source| match &source {
            CallError::Reject {
                error_code: Some(code),
                ..
            } if code == "IC0406" => CliError::NotAuthorized {
                caller: self.ic.sender(),
                manager: self.id,
                method,
            },
            _ => CliError::Call { step, source },
        }
    }

    /// The [`CliError`] for a refusal `e` of `method`: not authorized, bad input, or refused in
    /// the manager's current state.
    fn refused<E: EndpointError>(&self, method: &str, e: E) -> CliError {
        if e.not_authorized() {
            CliError::NotAuthorized {
                caller: self.ic.sender(),
                manager: self.id,
                method: method.to_string(),
            }
        } else if e.bad_input() {
            CliError::Usage(format!("{method}: {}", e.describe()))
        } else {
            CliError::Refused(format!("{method}: {}", e.describe()))
        }
    }

    /// Calls `E` (a query or an update, as it is declared) and returns its reply as it is.
    pub fn call<E: Endpoint>(&self, args: E::Args) -> Result<E::Reply, CliError> {
        self.ic
            .call::<E>(self.id, args)
            .map_err(self.call_failed(E::NAME))
    }

    /// Calls `E` and turns a refusal into a [`CliError`] ([`Self::refused`]).
    pub fn call_ok<E>(&self, args: E::Args) -> Result<<E::Reply as Reply>::Ok, CliError>
    where
        E: Endpoint,
        E::Reply: Reply,
        <E::Reply as Reply>::Err: EndpointError,
    {
        Reply::into_result(self.call::<E>(args)?).map_err(|e| self.refused(E::NAME, e))
    }
}

// ------------------------------------------------------------------------------------ views

/// A release as shown to operators (hashes in hex).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReleaseView {
    pub version: String,
    pub sha256: String,
    pub size: u64,
    pub uncompressed_size: u64,
    pub gzipped: bool,
    pub chunk_count: u32,
    pub uploader: Principal,
    pub uploaded_at_ns: u64,
    pub notes: String,
}

impl From<&ReleaseMeta> for ReleaseView {
    fn from(m: &ReleaseMeta) -> Self {
        Self {
            version: m.version.clone(),
            sha256: hex::encode(&m.sha256),
            size: m.size,
            uncompressed_size: m.uncompressed_size,
            gzipped: m.gzipped,
            chunk_count: m.chunk_count,
            uploader: m.uploader,
            uploaded_at_ns: m.uploaded_at,
            notes: m.notes.clone(),
        }
    }
}

/// An unfinished upload as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct UploadView {
    pub version: String,
    pub sha256: String,
    pub total_size: u64,
    pub chunk_count: u32,
    pub missing: Vec<u32>,
    pub uploader: Principal,
    pub started_at_ns: u64,
}

impl From<&UploadStatus> for UploadView {
    fn from(s: &UploadStatus) -> Self {
        Self {
            version: s.version.clone(),
            sha256: hex::encode(&s.sha256),
            total_size: s.total_size,
            chunk_count: s.chunk_count,
            missing: s.missing.clone(),
            uploader: s.uploader,
            started_at_ns: s.started_at,
        }
    }
}

/// A registry record as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct CanisterView {
    pub canister_id: Principal,
    pub owner: Principal,
    pub recovery_principal: Principal,
    pub status: String,
    pub release: Option<String>,
    pub release_sha256: Option<String>,
    pub policy: String,
    pub last_error: Option<String>,
    pub updated_at_ns: u64,
}

pub fn status_name(s: CanisterStatus) -> &'static str {
    match s {
        CanisterStatus::Provisioning => "provisioning",
        CanisterStatus::Active => "active",
        CanisterStatus::Upgrading => "upgrading",
        CanisterStatus::Failed => "failed",
        CanisterStatus::RolledBack => "rolled_back",
        CanisterStatus::Detached => "detached",
    }
}

impl From<&UserCanister> for CanisterView {
    fn from(c: &UserCanister) -> Self {
        Self {
            canister_id: c.canister_id,
            owner: c.owner,
            recovery_principal: c.recovery_principal,
            status: status_name(c.status).to_string(),
            release: c.current_release.as_ref().map(|r| r.version.clone()),
            release_sha256: c.current_release.as_ref().map(|r| hex::encode(&r.sha256)),
            policy: match &c.policy {
                UpgradePolicy::Auto => "auto".into(),
                UpgradePolicy::Manual => "manual".into(),
                UpgradePolicy::Pinned(v) => format!("pinned {v}"),
            },
            last_error: c.last_error.clone(),
            updated_at_ns: c.updated_at_ns,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OperatorView {
    pub principal: Principal,
    pub roles: Vec<&'static str>,
}

pub fn role_name(r: Role) -> &'static str {
    match r {
        Role::Admin => "admin",
        Role::Releaser => "releaser",
        Role::Deployer => "deployer",
    }
}

impl From<&Operator> for OperatorView {
    fn from(o: &Operator) -> Self {
        Self {
            principal: o.principal,
            roles: o.roles.iter().copied().map(role_name).collect(),
        }
    }
}

// ---------------------------------------------------------------------------------- releases

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishOutcome {
    Published,
    /// The manager already holds this version with this module.
    AlreadyPublished,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    pub outcome: PublishOutcome,
    pub release: ReleaseView,
    /// True when an interrupted upload of the same module was continued.
    pub resumed: bool,
    /// Chunks sent by this run (the others were already on the manager).
    pub chunks_sent: usize,
    /// Why the release is not yet in the manager's IC chunk store, if it is not; the manager
    /// mirrors it again when it is needed.
    pub mirror_error: Option<String>,
}

/// Publishes `module` as `version`: begins an upload, or continues the unfinished upload of
/// the same module, sends the chunks the manager lacks, and finalizes. The manager verifies
/// the sha256 over the whole module; the CLI checks the finalized release is the file's.
pub fn publish(
    m: &Manager,
    module: &WasmModule,
    version: &str,
    notes: &str,
    interface: Option<ReleaseInterface>,
    progress: &mut dyn Progress,
) -> Result<PublishReport, CliError> {
    let sha = module.sha256.to_vec();
    let size = module.bytes.len() as u64;
    progress.step("asking the manager for an unfinished upload");
    let pending = m
        .call::<ReleaseUploadStatus>((version.to_string(),))?
        .into_result();
    let (status, resumed) = match pending {
        Ok(st) if st.sha256 == sha && st.total_size == size => (st, true),
        Ok(st) => {
            return Err(CliError::Refused(format!(
                "an upload of version {version} with another module (sha256 {}) is unfinished: publish that file again to complete it, or cancel it with `fleet release abort {version}`",
                hex::encode(&st.sha256)
            )))
        }
        Err(e) if store_bad_input(&e) => return Err(m.refused(ReleaseUploadStatus::NAME, e)),
        Err(_) => {
            let begin = m.call::<BeginRelease>((BeginUpload {
                version: version.to_string(),
                total_size: size,
                sha256: sha.clone(),
                notes: notes.to_string(),
                interface,
            },))?;
            match begin.into_result() {
                Ok(st) => (st, false),
                Err(BeginReleaseError::Store(StoreError::AlreadyExists { .. })) => {
                    let meta = get_release(m, version)?.ok_or_else(|| {
                        CliError::Refused(format!(
                            "the manager says {version} exists but does not return it"
                        ))
                    })?;
                    return Ok(PublishReport {
                        outcome: PublishOutcome::AlreadyPublished,
                        release: (&meta).into(),
                        resumed: false,
                        chunks_sent: 0,
                        mirror_error: None,
                    });
                }
                Err(e) => return Err(m.refused(BeginRelease::NAME, e)),
            }
        }
    };
    if status.chunk_count as usize != module.chunk_count() {
        return Err(CliError::Refused(format!(
            "the manager expects {} chunks for {size} bytes, this CLI sends {} of {MAX_CHUNK_SIZE} bytes",
            status.chunk_count,
            module.chunk_count()
        )));
    }
    let total = module.chunk_count();
    let mut done = total - status.missing.len();
    progress.step(&format!("uploading {version}"));
    progress.chunk_uploaded(done, total);
    for &index in &status.missing {
        let start = index as usize * MAX_CHUNK_SIZE;
        let chunk = module
            .bytes
            .get(start..(start + MAX_CHUNK_SIZE).min(module.bytes.len()))
            .ok_or_else(|| {
                CliError::Refused(format!("the manager asks for chunk {index}, past the end"))
            })?;
        let sent = m
            .call::<UploadReleaseChunk>((UploadReleaseChunkArg {
                version: version.to_string(),
                index,
                bytes: chunk.to_vec(),
            },))
            .map_err(|e| match e {
                CliError::Call { step, source } => CliError::Call {
                    step: format!(
                        "{step} (chunk {}/{total}; run the same command again to resume)",
                        index + 1
                    ),
                    source,
                },
                other => other,
            })?;
        sent.into_result()
            .map_err(|e| m.refused(UploadReleaseChunk::NAME, e))?;
        done += 1;
        progress.chunk_uploaded(done, total);
    }
    progress.step("finalizing");
    let finalized = match m
        .call::<FinalizeRelease>((version.to_string(),))?
        .into_result()
    {
        Ok(f) => f,
        Err(e @ FinalizeReleaseError::Store(StoreError::HashMismatch { .. })) => {
            // The chunks on the manager are not this file's; a resume cannot repair that, and
            // the upload would keep its reservation: discard it so the next publish starts clean.
            let aborted = m
                .call::<AbortReleaseUpload>((version.to_string(),))
                .is_ok_and(|r| r.into_result().is_ok());
            return Err(CliError::Refused(format!(
                "finalize_release: {}; {}",
                e.describe(),
                if aborted {
                    "the upload was discarded, publish again"
                } else {
                    "the upload stays reserved: run `fleet release abort` first"
                }
            )));
        }
        Err(e) => return Err(m.refused(FinalizeRelease::NAME, e)),
    };
    if finalized.release.sha256 != sha {
        return Err(CliError::Refused(format!(
            "the manager finalized {version} with sha256 {}, not the file's {}",
            hex::encode(&finalized.release.sha256),
            hex::encode(&sha)
        )));
    }
    Ok(PublishReport {
        outcome: PublishOutcome::Published,
        release: (&finalized.release).into(),
        resumed,
        chunks_sent: status.missing.len(),
        mirror_error: finalized.mirror_error.as_ref().map(describe_mirror_error),
    })
}

fn describe_mirror_error(e: &MirrorError) -> String {
    match e {
        MirrorError::NotAuthorized => "not authorized".into(),
        MirrorError::UnknownRelease => "unknown release".into(),
        MirrorError::Busy => "the chunk store is busy".into(),
        MirrorError::DoesNotFit { needed, capacity } => {
            format!("needs {needed} chunks, the chunk store holds {capacity}")
        }
        MirrorError::CallFailed { method, message } => format!("{method} failed: {message}"),
    }
}

/// Cancels the unfinished upload of `version`.
pub fn abort_upload(m: &Manager, version: &str) -> Result<(), CliError> {
    m.call_ok::<AbortReleaseUpload>((version.to_string(),))
}

pub fn get_release(m: &Manager, version: &str) -> Result<Option<ReleaseMeta>, CliError> {
    m.call::<GetRelease>((version.to_string(),))
}

/// What `release show` finds under a version: a release, an unfinished upload, or nothing.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReleaseState {
    Finalized(ReleaseView),
    Uploading(UploadView),
}

pub fn show_release(m: &Manager, version: &str) -> Result<ReleaseState, CliError> {
    if let Some(meta) = get_release(m, version)? {
        return Ok(ReleaseState::Finalized((&meta).into()));
    }
    let pending = m
        .call::<ReleaseUploadStatus>((version.to_string(),))?
        .into_result();
    match pending {
        Ok(st) => Ok(ReleaseState::Uploading((&st).into())),
        Err(e) if store_bad_input(&e) => Err(m.refused(GetRelease::NAME, e)),
        Err(_) => Err(CliError::NotFound(format!(
            "manager {} has no release {version}",
            m.id
        ))),
    }
}

/// Every finalized release, oldest version first, page by page.
pub fn list_releases(m: &Manager) -> Result<Vec<ReleaseMeta>, CliError> {
    let mut all: Vec<ReleaseMeta> = Vec::new();
    loop {
        let page = m.call_ok::<ListReleases>((ListReleasesArg {
            start_after: all.last().map(|r| r.version.clone()),
            limit: None,
        },))?;
        if page.is_empty() {
            return Ok(all);
        }
        all.extend(page);
    }
}

/// Downloads release `version` from the manager's public `release_chunk` query, checking each
/// chunk against the release's chunk hashes and the whole module against its sha256 and, when
/// given, `expected_sha256` (which does not rely on the manager's word).
pub fn download_release(
    m: &Manager,
    version: &str,
    expected_sha256: Option<[u8; 32]>,
    progress: &mut dyn Progress,
) -> Result<(ReleaseMeta, WasmModule), CliError> {
    progress.step(&format!("downloading release {version}"));
    let meta = get_release(m, version)?
        .ok_or_else(|| CliError::NotFound(format!("manager {} has no release {version}", m.id)))?;
    let corrupt = |message: String| CliError::Call {
        step: format!("downloading release {version}"),
        source: CallError::Decode {
            method: ReleaseChunk::NAME.into(),
            message,
        },
    };
    if meta.chunk_hashes.len() != meta.chunk_count as usize {
        return Err(corrupt(format!(
            "{} chunk hashes for {} chunks",
            meta.chunk_hashes.len(),
            meta.chunk_count
        )));
    }
    let mut bytes = Vec::with_capacity(meta.size.min(crate::wasm::MAX_WASM_SIZE) as usize);
    for index in 0..meta.chunk_count {
        let chunk = m.call_ok::<ReleaseChunk>((ReleaseChunkArg {
            version: version.to_string(),
            index,
        },))?;
        if Sha256::digest(&chunk)[..] != meta.chunk_hashes[index as usize][..] {
            return Err(corrupt(format!(
                "chunk {index} does not match its published hash"
            )));
        }
        bytes.extend_from_slice(&chunk);
        progress.chunk_uploaded(index as usize + 1, meta.chunk_count as usize);
    }
    if bytes.len() as u64 != meta.size {
        return Err(corrupt(format!(
            "{} bytes received, the release has {}",
            bytes.len(),
            meta.size
        )));
    }
    let published: [u8; 32] = meta.sha256.as_slice().try_into().map_err(|_| {
        corrupt(format!(
            "the release's sha256 has {} bytes",
            meta.sha256.len()
        ))
    })?;
    if let Some(expected) = expected_sha256 {
        if expected != published {
            return Err(CliError::Wasm(crate::wasm::WasmError::HashMismatch {
                path: format!("release {version}"),
                expected: hex::encode(expected),
                actual: hex::encode(published),
            }));
        }
    }
    let module = WasmModule::from_bytes(bytes, &format!("release {version}"), None)?;
    if module.sha256 != published {
        return Err(corrupt(format!(
            "the downloaded module's sha256 is {}, the release's {}",
            hex::encode(module.sha256),
            hex::encode(published)
        )));
    }
    Ok((meta, module))
}

// -------------------------------------------------------------------------------- canisters

/// Registry records matching `filter`, at most `limit` of them, page by page.
pub fn list_canisters(
    m: &Manager,
    filter: CanisterFilter,
    limit: Option<usize>,
) -> Result<Vec<UserCanister>, CliError> {
    let mut all = Vec::new();
    let mut start_after = None;
    loop {
        let page = m.call_ok::<ListUserCanisters>((ListUserCanistersArg {
            filter: filter.clone(),
            start_after,
            limit: None,
        },))?;
        all.extend(page.canisters);
        if let Some(limit) = limit {
            if all.len() >= limit {
                all.truncate(limit);
                return Ok(all);
            }
        }
        match page.next {
            Some(next) => start_after = Some(next),
            None => return Ok(all),
        }
    }
}

// -------------------------------------------------------------------------------- operators

pub fn list_operators(m: &Manager) -> Result<Vec<Operator>, CliError> {
    m.call_ok::<ListOperators>(())
}

/// Grants `roles` to `principal`, keeping the roles it already has.
pub fn add_operator(
    m: &Manager,
    principal: Principal,
    roles: &[Role],
) -> Result<Operator, CliError> {
    if roles.is_empty() {
        return Err(CliError::Usage("give at least one --role".into()));
    }
    let mut all: Vec<Role> = list_operators(m)?
        .into_iter()
        .find(|o| o.principal == principal)
        .map(|o| o.roles)
        .unwrap_or_default();
    all.extend_from_slice(roles);
    all.sort();
    all.dedup();
    let operator = Operator {
        principal,
        roles: all,
    };
    m.call_ok::<SetOperator>((operator.clone(),))?;
    Ok(operator)
}

/// Revokes `roles` from `principal`, or every role (the operator is removed) when `roles` is
/// empty or nothing would be left. Returns the roles it keeps.
pub fn remove_operator(
    m: &Manager,
    principal: Principal,
    roles: &[Role],
) -> Result<Vec<Role>, CliError> {
    let current = list_operators(m)?
        .into_iter()
        .find(|o| o.principal == principal)
        .ok_or_else(|| CliError::NotFound(format!("{principal} is not an operator")))?;
    let kept: Vec<Role> = current
        .roles
        .iter()
        .copied()
        .filter(|r| !roles.is_empty() && !roles.contains(r))
        .collect();
    if kept.is_empty() {
        m.call_ok::<RemoveOperator>((principal,))?;
    } else {
        m.call_ok::<SetOperator>((Operator {
            principal,
            roles: kept.clone(),
        },))?;
    }
    Ok(kept)
}

// ------------------------------------------------------------------------------ subnets

impl EndpointError for fleet_api::manager::SubnetError {
    fn not_authorized(&self) -> bool {
        matches!(self, Self::NotAuthorized)
    }
    fn bad_input(&self) -> bool {
        matches!(
            self,
            Self::UnknownSubnet(_) | Self::InvalidPlacement(_) | Self::AlreadyAdded
        )
    }
    fn describe(&self) -> String {
        match self {
            Self::NotAuthorized => "not authorized".into(),
            Self::AlreadyAdded => "the manager uses this subnet already".into(),
            Self::TooManySubnets { max } => {
                format!("the manager uses {max} subnets besides its own already")
            }
            Self::UnknownSubnet(s) => format!("subnet {s} is not one the manager uses"),
            Self::InvalidPlacement(why) => why.clone(),
            Self::InsufficientCycles { available, needed } => {
                format!("the manager has {available} cycles, the store needs {needed}")
            }
            Self::NoStoreModule => "the manager has no store module (set_store_module)".into(),
            Self::CreateFailed(why) => format!("creating the store canister failed: {why}"),
            Self::StoreInstallFailed { store, message } => format!(
                "installing the store module in the new store canister {store} failed (the \
                 subnet is added; the manager installs the module when it next records a \
                 release in the store, e.g. at the next rollout's start): {message}"
            ),
            Self::Mirror(e) => {
                format!("the subnet is added, mirroring into its store failed: {e:?}")
            }
        }
    }
}

impl EndpointError for fleet_api::manager::SetStoreModuleError {
    fn not_authorized(&self) -> bool {
        matches!(self, Self::NotAuthorized)
    }
    fn bad_input(&self) -> bool {
        !self.not_authorized()
    }
    fn describe(&self) -> String {
        match self {
            Self::NotAuthorized => "not authorized".into(),
            Self::NotWasm => "the store module is neither wasm nor gzipped wasm".into(),
            Self::TooLarge { size, max } => {
                format!("the store module has {size} bytes, at most {max} are taken")
            }
        }
    }
}

// ---------------------------------------------------------------- admission and the policy

impl EndpointError for fleet_api::governance::AdmissionError {
    fn not_authorized(&self) -> bool {
        matches!(self, Self::NotAuthorized)
    }
    fn bad_input(&self) -> bool {
        !self.not_authorized()
    }
}

/// A refusal that may instead be a request awaiting approval under the release policy.
macro_rules! governed_error {
    ($($t:ty: $bad:pat),* $(,)?) => {$(
        impl EndpointError for $t {
            fn not_authorized(&self) -> bool {
                matches!(self, Self::NotAuthorized)
            }
            fn bad_input(&self) -> bool {
                matches!(self, $bad)
            }
            fn describe(&self) -> String {
                match self {
                    Self::ApprovalRequired(r) => awaiting_approval(r),
                    other => format!("{other:?}"),
                }
            }
        }
    )*};
}
governed_error! {
    fleet_api::governance::SetReleasePolicyError: Self::InvalidPolicy,
    fleet_api::governance::ShortenNoticeError: Self::UnknownRelease | Self::InvalidNotice,
}

impl EndpointError for fleet_api::governance::ApproveRequestError {
    fn not_authorized(&self) -> bool {
        matches!(self, Self::NotAuthorized)
    }
}

impl EndpointError for fleet_api::governance::CancelRequestError {
    fn not_authorized(&self) -> bool {
        matches!(self, Self::NotAuthorized)
    }
}

// --------------------------------------------------------------------------------- rollouts

impl EndpointError for StartRolloutError {
    fn not_authorized(&self) -> bool {
        matches!(self, StartRolloutError::NotAuthorized)
    }
    fn bad_input(&self) -> bool {
        matches!(
            self,
            StartRolloutError::UnknownRelease { .. } | StartRolloutError::Plan(_)
        )
    }
}

impl EndpointError for RollbackError {
    fn not_authorized(&self) -> bool {
        matches!(self, RollbackError::NotAuthorized)
    }
    fn bad_input(&self) -> bool {
        matches!(
            self,
            RollbackError::UnknownRelease { .. }
                | RollbackError::UnknownCanister { .. }
                | RollbackError::Plan(_)
        )
    }
}

impl EndpointError for RolloutControlError {
    fn not_authorized(&self) -> bool {
        matches!(self, RolloutControlError::NotAuthorized)
    }
}

impl EndpointError for DrainError {
    fn not_authorized(&self) -> bool {
        matches!(self, DrainError::NotAuthorized)
    }
}

/// Starts a rollout of `plan` (built and validated by [`crate::plan::PlanArgs::to_plan`]).
/// A plan the manager refuses is a usage error naming the problem.
pub fn start_rollout(m: &Manager, plan: &RolloutPlanArg) -> Result<RolloutStarted, CliError> {
    m.call::<StartRollout>((plan.clone(),))?
        .into_result()
        .map_err(|e| start_error(m, StartRollout::NAME, plan, e))
}

/// What `start_rollout` would start with `plan`, and the manager's cycles; starts nothing.
pub fn plan_rollout(m: &Manager, plan: &RolloutPlanArg) -> Result<RolloutPreview, CliError> {
    m.call::<PlanRollout>((plan.clone(),))?
        .into_result()
        .map_err(|e| start_error(m, PlanRollout::NAME, plan, e))
}

/// A refused start (or preview) of `plan`: a plan the manager refuses is a usage error naming
/// the problem.
fn start_error(m: &Manager, method: &str, plan: &RolloutPlanArg, e: StartRolloutError) -> CliError {
    match e {
        StartRolloutError::Plan(e) => crate::plan::plan_error(e),
        StartRolloutError::UnknownRelease { version } => CliError::Usage(format!(
            "{method}: manager {} has no release {version}",
            m.id
        )),
        StartRolloutError::RolloutActive { id, phase } => CliError::Refused(format!(
            "{method}: rollout {id} is still {phase:?}; abort it or wait until it ends"
        )),
        StartRolloutError::ApprovalRequired(r) => CliError::Refused(format!(
            "{method} to {}: {}",
            plan.target_version,
            awaiting_approval(&r)
        )),
        e => m.refused(method, e),
    }
}

/// The current (or last) rollout, if any.
pub fn rollout_status(m: &Manager) -> Result<Option<RolloutStatus>, CliError> {
    m.call_ok::<GetRolloutStatus>(())
}

/// `E`: `PauseRollout`, `ResumeRollout` or `AbortRollout`.
pub fn control_rollout<E>(m: &Manager) -> Result<RolloutStatus, CliError>
where
    E: Endpoint<Args = (), Reply = RolloutControlReply>,
{
    m.call_ok::<E>(())
}

/// Undoes the last rollout: a new rollout back to an earlier release, or snapshot restores.
pub fn rollback_rollout(m: &Manager, arg: &RollbackArg) -> Result<RolloutStarted, CliError> {
    match m.call::<Rollback>((arg.clone(),))?.into_result() {
        Ok(started) => Ok(started),
        Err(RollbackError::Plan(e)) => Err(crate::plan::plan_error(e)),
        Err(e) => Err(m.refused(Rollback::NAME, e)),
    }
}

/// Pauses every rollout activity for the manager's own upgrade; `ready` once nothing is in
/// flight.
pub fn drain(m: &Manager) -> Result<DrainStatus, CliError> {
    m.call_ok::<Drain>(())
}

pub fn end_drain(m: &Manager) -> Result<DrainStatus, CliError> {
    m.call_ok::<EndDrain>(())
}

/// Every per-canister result of the current rollout, page by page.
pub fn rollout_results(m: &Manager) -> Result<Vec<RolloutCanisterResult>, CliError> {
    let mut out = Vec::new();
    let mut start_after = None;
    loop {
        let page = m.call_ok::<RolloutResults>((RolloutResultsArg {
            start_after,
            limit: Some(MAX_ROLLOUT_PAGE),
        },))?;
        let Some(page) = page else {
            return Ok(out);
        };
        out.extend(page.results);
        match page.next {
            Some(next) => start_after = Some(next),
            None => return Ok(out),
        }
    }
}

/// The manager's metrics (counters, rollout, tick instructions).
pub fn metrics(m: &Manager) -> Result<FleetMetrics, CliError> {
    m.call::<Metrics>(())
}

/// A rollout status as JSON, with the target's module hash in hex.
pub fn rollout_json(s: &RolloutStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or(serde_json::Value::Null);
    v["target"]["module_hash"] = serde_json::Value::String(hex::encode(&s.target.module_hash));
    v
}

/// The name of the management call (or query) an operation of a pipeline stands for, as
/// errors report it.
pub fn op_name(op: OpKind) -> &'static str {
    match op {
        OpKind::CanisterStatus => "canister_status",
        OpKind::TopUp => "deposit_cycles",
        OpKind::Stop => "stop_canister",
        OpKind::Start => "start_canister",
        OpKind::TakeSnapshot => "take_canister_snapshot",
        OpKind::InstallChunked => "install_chunked_code",
        OpKind::HealthCheck => GetFleetHealth::NAME,
        OpKind::LoadSnapshot => "load_canister_snapshot",
        OpKind::DeleteSnapshot => "delete_canister_snapshot",
    }
}

/// How a pipeline failed, with what the IC said.
pub fn failure_text(f: &Failure) -> String {
    match f {
        Failure::CallFailed { op, error }
        | Failure::ManagerCall { op, error }
        | Failure::RestoreFailed {
            op,
            error: Some(error),
        } => format!("{}: {}", op_name(*op), error.message),
        Failure::RestoreFailed { op, error: None } => {
            format!("{} did not succeed", op_name(*op))
        }
        Failure::InstallFailed(error) => {
            format!("{}: {}", op_name(OpKind::InstallChunked), error.message)
        }
        other => format!("{other:?}"),
    }
}

/// The name of a stage: `canary` or `10%`.
pub fn wave_name(label: &WaveLabel) -> String {
    match label {
        WaveLabel::Canary => "canary".into(),
        WaveLabel::Percent(p) => format!("{p}%"),
    }
}

/// One line per rollout state for people.
pub fn rollout_text(s: &RolloutStatus) -> String {
    let c = &s.counts;
    format!(
        "rollout {} to {}: {:?}{}\n  done {}, failed {}, rolled back {}, in flight {}, pending {}, skipped {}, cancelled {}, deferred {} (waiting {}; environment {}, manager {})\n  wave {}/{}{}",
        s.id,
        s.target.version,
        s.phase,
        s.hold.as_ref().map(hold_text).unwrap_or_default(),
        c.done,
        c.failed,
        c.rolled_back,
        c.in_flight,
        c.pending,
        c.skipped,
        c.cancelled,
        c.deferred(),
        c.busy,
        s.deferrals.environment,
        s.deferrals.manager,
        (s.current_wave as usize + 1).min(s.waves.len().max(1)),
        s.waves.len(),
        s.eta_ns
            .map(|eta| format!(", about {} s left", eta / 1_000_000_000))
            .unwrap_or_default()
    ) + &subnets_text(s)
}

/// One line per subnet, when the rollout spans several.
fn subnets_text(s: &RolloutStatus) -> String {
    let subnets = s.subnets.as_deref().unwrap_or_default();
    if subnets.len() < 2 {
        return String::new();
    }
    subnets
        .iter()
        .map(|p| {
            format!(
                "\n  subnet {}: done {} of {}, failed {}, rolled back {}, deferred {}, in flight {}, pending {}{}",
                p.subnet
                    .map(|s| s.to_text())
                    .unwrap_or_else(|| "(the manager's)".into()),
                p.done,
                p.total,
                p.failed,
                p.rolled_back,
                p.deferred,
                p.in_flight,
                p.pending,
                p.halted
                    .as_ref()
                    .map(|h| format!(", halted: {h:?}"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// Why no pipeline starts although the rollout runs.
pub fn hold_text(h: &Hold) -> String {
    match h {
        Hold::Draining => ", held: the manager is draining".into(),
        Hold::ManagerLowCycles { liquid, needed } => format!(
            ", held: ManagerLowCycles (liquid {liquid} cycles, {needed} needed to start one more)"
        ),
        Hold::ManagerFaults { count, until } => format!(
            ", held: ManagerFaults ({count} manager-side failures in a row; retrying at {until})"
        ),
    }
}
