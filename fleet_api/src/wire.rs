//! The mapping between the engine's and the store's own types (`rollout_core`, `wasm_store`) and
//! the wire types of the manager's interface (`fleet_api::engine`, `fleet_api::store`).
//!
//! Every mapping names each field and each variant and destructures exhaustively, so a field or
//! variant added on either side stops this module from compiling until someone decides what the
//! interface shows: the interface never changes by accident with the engine.

use crate::engine as api;
use crate::store as api_store;
use candid::Principal;
use rollout_core as eng;
use rollout_core::plan;
use serde_bytes::ByteBuf;

/// Converts a value into its counterpart on the other side of the interface.
pub trait Wire {
    type Out;
    fn wire(self) -> Self::Out;
}

macro_rules! same {
    ($($t:ty),*) => {$(
        impl Wire for $t {
            type Out = $t;
            fn wire(self) -> $t {
                self
            }
        }
    )*};
}
same!(bool, u8, u32, u64, u128, f64, String, Principal, ByteBuf);

impl<T: Wire> Wire for Option<T> {
    type Out = Option<T::Out>;
    fn wire(self) -> Self::Out {
        self.map(Wire::wire)
    }
}

impl<T: Wire> Wire for Vec<T> {
    type Out = Vec<T::Out>;
    fn wire(self) -> Self::Out {
        self.into_iter().map(Wire::wire).collect()
    }
}

impl<A: Wire, B: Wire> Wire for (A, B) {
    type Out = (A::Out, B::Out);
    fn wire(self) -> Self::Out {
        (self.0.wire(), self.1.wire())
    }
}

/// A struct mapped field by field; `==` maps both ways (for types an operator also sends).
macro_rules! structs {
    ($($a:ident::$at:ident $dir:tt $b:ident::$bt:ident { $($f:ident),* $(,)? })*) => {$(
        structs!(@one $a::$at => $b::$bt { $($f),* });
        structs!(@back $dir $a::$at $b::$bt { $($f),* });
    )*};
    (@one $a:ident::$at:ident => $b:ident::$bt:ident { $($f:ident),* }) => {
        impl Wire for $a::$at {
            type Out = $b::$bt;
            fn wire(self) -> $b::$bt {
                let $a::$at { $($f),* } = self;
                $b::$bt { $($f: $f.wire()),* }
            }
        }
    };
    (@back => $($rest:tt)*) => {};
    (@back == $a:ident::$at:ident $b:ident::$bt:ident { $($f:ident),* }) => {
        structs!(@one $b::$bt => $a::$at { $($f),* });
    };
}

/// An enum mapped variant by variant (unit, one-field tuple or struct-like variants).
macro_rules! enums {
    ($($a:ident::$at:ident $dir:tt $b:ident::$bt:ident {
        $($v:ident $(($t:ident))? $({ $($f:ident),* })?),* $(,)?
    })*) => {$(
        enums!(@one $a::$at => $b::$bt { $($v $(($t))? $({ $($f),* })?),* });
        enums!(@back $dir $a::$at $b::$bt { $($v $(($t))? $({ $($f),* })?),* });
    )*};
    (@one $a:ident::$at:ident => $b:ident::$bt:ident {
        $($v:ident $(($t:ident))? $({ $($f:ident),* })?),*
    }) => {
        impl Wire for $a::$at {
            type Out = $b::$bt;
            fn wire(self) -> $b::$bt {
                match self {
                    $($a::$at::$v $(($t))? $({ $($f),* })? =>
                        $b::$bt::$v $(($t.wire()))? $({ $($f: $f.wire()),* })?,)*
                }
            }
        }
    };
    (@back => $($rest:tt)*) => {};
    (@back == $a:ident::$at:ident $b:ident::$bt:ident { $($rest:tt)* }) => {
        enums!(@one $b::$bt => $a::$at { $($rest)* });
    };
}

structs! {
    eng::CallError => api::CallError { reject_code, message }
    eng::CohortSummary => api::CohortSummary {
        offered, selected, excluded, not_included, manual, pinned, already_on_target,
        other_release,
    }
    eng::CyclesPolicy == api::CyclesPolicy { min_cycles, top_up_to, budget }
    eng::DeferralCounts => api::DeferralCounts { environment, manager }
    eng::Event => api::Event { at, kind }
    eng::Limits == api::Limits {
        max_in_flight, starts_per_minute, burst, max_starts_per_tick, per_subnet,
    }
    plan::SubnetLimits == api::SubnetLimits { max_in_flight, starts_per_minute, burst }
    eng::SubnetProgress => api::SubnetProgress {
        subnet, total, done, failed, rolled_back, deferred, in_flight, pending, busy, halted,
    }
    eng::Release => api::Release { module_hash, version }
    eng::RetryPolicy == api::RetryPolicy { stop_attempts, backoff_base_ns, backoff_max_ns }
    eng::StateCounts => api::StateCounts {
        pending, in_flight, busy, done, restored, rolled_back, failed, skipped, cancelled,
        deferred,
    }
    eng::WaveProgress => api::WaveProgress {
        label, size, started, outcomes, opened_at, completed_at,
    }
}

enums! {
    eng::AfterStart => api::AfterStart {
        HealthCheck, Busy, Fail, RolledBack, Cancel, RetryRestore,
    }
    eng::Canary == api::Canary { None, Count(n), List(canisters) }
    eng::EventKind => api::EventKind {
        Started { canisters },
        WaveOpened { wave, label, size },
        WaveCompleted { wave, failures },
        Paused,
        Resumed,
        Halted(reason),
        Held(hold),
        HoldLifted,
        AbortRequested,
        Aborted,
        Completed,
        CanisterFinished { canister, outcome, failure },
        StartRetrying { canister, error },
        Requested { canister, ticket },
        SnapshotDeleteFailed { canister, error },
        SubnetHalted { subnet, reason },
    }
    eng::Failure => api::Failure {
        ManagerNotController,
        RecoveryControllerMissing,
        ModuleHashMismatch { expected, found },
        AlreadyOnTarget,
        LowCycles { balance, needed },
        CallFailed { op, error },
        StopTimedOut { attempts },
        ManagerCall { op, error },
        InstallFailed(error),
        Unhealthy { version, message },
        UnhealthyNoSnapshot { version, message },
        RestoreFailed { op, error },
    }
    eng::HaltReason => api::HaltReason {
        WaveFailureThreshold { wave, failed, size },
        ConsecutiveFailures { count },
        SubnetWaveFailureThreshold { subnet, wave, failed, size },
        SubnetConsecutiveFailures { subnet, count },
    }
    plan::HaltScope == api::HaltScope { Fleet, Subnet }
    plan::HashField => api::HashField { Target, From }
    eng::Hold => api::Hold {
        Draining,
        ManagerLowCycles { liquid, needed },
        ManagerFaults { count, until },
    }
    eng::Ineligible => api::Ineligible { NotInFleet, Pinned, AlreadyOnTarget, OtherRelease }
    eng::Job => api::Job { Upgrade, Restore }
    plan::LimitName => api::LimitName {
        MaxInFlight, StartsPerMinute, Burst, MaxStartsPerTick, SubnetMaxInFlight,
        SubnetStartsPerMinute, SubnetBurst,
    }
    plan::ListName => api::ListName { Include, Exclude, Canary }
    eng::OpKind => api::OpKind {
        CanisterStatus, TopUp, Stop, Start, TakeSnapshot, InstallChunked, HealthCheck,
        LoadSnapshot, DeleteSnapshot,
    }
    eng::Outcome => api::Outcome {
        Done, Restored, RolledBack, Failed, Skipped, Cancelled, Deferred,
    }
    eng::Phase => api::Phase { Running, Paused, Halted(reason), Aborting, Aborted, Completed }
    eng::PlanError => api::PlanError {
        InvalidModuleHash { field, len },
        EmptyVersion,
        FromEqualsTarget,
        NoWaves,
        WavePercentOutOfRange { index, percent },
        WavesNotIncreasing { index },
        LastWaveNotFull { percent },
        CanaryCountZero,
        EmptyCanaryList,
        DuplicateInList { list, canister },
        ListOverlap { canister },
        ZeroLimit { limit },
        ThresholdOutOfRange { percent },
        TopUpBelowMinimum,
        InvalidRetry,
        InvalidStopDeadline,
        CanaryNotEligible { canister, reason },
        DuplicateCanister { canister },
        EmptyCohort,
        NoSnapshot { canister },
        TooManySubnets { count, max },
        SubnetLimitAboveOverall { limit },
    }
    eng::Step => api::Step {
        Pending,
        Precheck,
        ToppingUp { cycles },
        Stopping,
        Snapshotting,
        Installing,
        Starting { then },
        HealthCheck,
        RestoringStop,
        RestoringLoad,
        Busy,
        Finished(outcome),
    }
    eng::WaveLabel => api::WaveLabel { Canary, Percent(percent) }
}

/// The status; the wire's `subnets` is optional, so that a client decodes the status of a
/// manager from before subnets (candid decodes a missing field only as `opt`).
impl Wire for eng::RolloutStatus {
    type Out = api::RolloutStatus;
    fn wire(self) -> api::RolloutStatus {
        let eng::RolloutStatus {
            id,
            job,
            phase,
            target,
            counts,
            waves,
            requests,
            current_wave,
            next_wave_at,
            rate_per_minute,
            eta_ns,
            top_up_spent,
            created_at,
            finished_at,
            hold,
            deferrals,
            stop_deadline_ns,
            limits,
            failure,
            subnets,
        } = self;
        api::RolloutStatus {
            id: id.wire(),
            job: job.wire(),
            phase: phase.wire(),
            target: target.wire(),
            counts: counts.wire(),
            waves: waves.wire(),
            requests: requests.wire(),
            current_wave: current_wave.wire(),
            next_wave_at: next_wave_at.wire(),
            rate_per_minute: rate_per_minute.wire(),
            eta_ns: eta_ns.wire(),
            top_up_spent: top_up_spent.wire(),
            created_at: created_at.wire(),
            finished_at: finished_at.wire(),
            hold: hold.wire(),
            deferrals: deferrals.wire(),
            stop_deadline_ns: stop_deadline_ns.wire(),
            limits: limits.wire(),
            failure: failure.wire(),
            subnets: Some(subnets.wire()),
        }
    }
}

/// The failure policy both ways: the wire's `halt_scope` is optional, so that plans of clients
/// that do not know it keep today's scope.
impl Wire for eng::FailurePolicy {
    type Out = api::FailurePolicy;
    fn wire(self) -> api::FailurePolicy {
        let eng::FailurePolicy {
            max_failed_percent,
            max_consecutive_failures,
            halt_scope,
        } = self;
        api::FailurePolicy {
            max_failed_percent,
            max_consecutive_failures,
            halt_scope: Some(halt_scope.wire()),
        }
    }
}

impl Wire for api::FailurePolicy {
    type Out = eng::FailurePolicy;
    fn wire(self) -> eng::FailurePolicy {
        let api::FailurePolicy {
            max_failed_percent,
            max_consecutive_failures,
            halt_scope,
        } = self;
        eng::FailurePolicy {
            max_failed_percent,
            max_consecutive_failures,
            halt_scope: halt_scope.map(Wire::wire).unwrap_or_default(),
        }
    }
}

use wasm_store as store;

structs! {
    store::BeginUpload == api_store::BeginUpload { version, total_size, sha256, notes, interface }
    store::ReleaseInterface == api_store::ReleaseInterface { service, breaking_change }
    store::StoreLimits => api_store::StoreLimits { max_releases, max_total_bytes }
    store::ReleaseMeta => api_store::ReleaseMeta {
        version, sha256, size, uncompressed_size, chunk_count, chunk_hashes, uploaded_at,
        uploader, notes, gzipped,
    }
    store::StoreUsage => api_store::StoreUsage { releases, uploads, bytes, limits }
    store::UploadStatus => api_store::UploadStatus {
        version, sha256, total_size, chunk_count, missing, received_bytes, uploader, notes,
        started_at,
    }
}

enums! {
    store::StoreError == api_store::StoreError {
        InvalidVersion { version, reason },
        InvalidSha256 { len },
        EmptyModule,
        TooManyChunks { chunks, max },
        ModuleTooLarge { size, max },
        NotesTooLong { len, max },
        InterfaceTooLong { field, len, max },
        VersionExists { version, sha256 },
        AlreadyExists { version },
        ContentExists { version },
        StoreFull { releases, max_releases, bytes, requested, max_bytes },
        UnknownUpload { version },
        NotFound { version },
        Finalized { version },
        UploadInProgress { version },
        ChunkIndexOutOfRange { index, chunk_count },
        ChunkTooLarge { len, max },
        ChunkSizeMismatch { index, expected, actual },
        ChunkConflict { index },
        MissingChunks { missing },
        HashMismatch { expected, actual },
        NotWasm { reason },
        InUse { version },
    }
}

/// Applies an operator's plan to `plan`, the engine's plan holding the defaults: every option but
/// the releases, which the manager resolves from its store by version (and the CLI's offline check
/// leaves as placeholders). One function for both, so they cannot disagree on a plan.
pub fn apply_plan_options(arg: &crate::rollout::RolloutPlanArg, plan: &mut eng::RolloutPlan) {
    plan.include = arg.include.clone();
    if let Some(exclude) = &arg.exclude {
        plan.exclude = exclude.clone();
    }
    if let Some(canary) = &arg.canary {
        plan.canary = canary.clone().wire();
    }
    if let Some(waves) = &arg.waves_percent {
        plan.waves_percent = waves.clone();
    }
    if let Some(bake) = arg.bake_secs {
        plan.bake_ns = bake.saturating_mul(eng::SECOND);
    }
    if let Some(limits) = &arg.limits {
        plan.limits = limits.clone().wire();
    }
    if let Some(failure) = &arg.failure {
        plan.failure = failure.clone().wire();
    }
    if let Some(take) = arg.take_snapshot {
        plan.snapshot.take = take;
    }
    if let Some(keep) = arg.keep_snapshot_secs {
        plan.snapshot.keep_ns = (keep > 0).then(|| keep.saturating_mul(eng::SECOND));
    }
    if let Some(cycles) = &arg.cycles {
        plan.cycles = cycles.clone().wire();
    }
    if let Some(retry) = &arg.retry {
        plan.retry = retry.clone().wire();
    }
    if let Some(secs) = arg.stop_deadline_secs {
        plan.stop_deadline_ns = (secs > 0).then(|| secs.saturating_mul(eng::SECOND));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan's policies go to the engine and come back unchanged, and a status read from the
    /// engine keeps every figure on the wire.
    #[test]
    fn values_keep_every_field_across_the_interface() {
        let limits = api::Limits {
            max_in_flight: 7,
            starts_per_minute: 11,
            burst: 13,
            max_starts_per_tick: 17,
            per_subnet: Some(api::SubnetLimits {
                max_in_flight: 2,
                starts_per_minute: 3,
                burst: 4,
            }),
        };
        let core: eng::Limits = limits.clone().wire();
        assert_eq!(core.max_in_flight, 7);
        assert_eq!(core.max_starts_per_tick, 17);
        assert_eq!(core.per_subnet.as_ref().map(|l| l.burst), Some(4));
        assert_eq!(core.wire(), limits);
        // A policy without a halt scope keeps the fleet's; one with it keeps it.
        let mut failure = api::FailurePolicy {
            max_failed_percent: 5,
            max_consecutive_failures: 2,
            halt_scope: None,
        };
        let core: eng::FailurePolicy = failure.clone().wire();
        assert_eq!(core.halt_scope, eng::HaltScope::Fleet);
        failure.halt_scope = Some(api::HaltScope::Subnet);
        assert_eq!(failure.clone().wire().wire(), failure);
        let canary = api::Canary::List(vec![Principal::from_slice(&[9; 10])]);
        assert_eq!(canary.clone().wire().wire(), canary);
        let failure = eng::Failure::Unhealthy {
            version: Some("2.0.0".into()),
            message: None,
        };
        assert_eq!(
            failure.wire(),
            api::Failure::Unhealthy {
                version: Some("2.0.0".into()),
                message: None
            }
        );
        let phase = eng::Phase::Halted(eng::HaltReason::ConsecutiveFailures { count: 3 });
        assert_eq!(
            phase.wire(),
            api::Phase::Halted(api::HaltReason::ConsecutiveFailures { count: 3 })
        );
    }
}
