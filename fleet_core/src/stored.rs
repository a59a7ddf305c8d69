//! The manager's stored records: the shapes it writes to stable memory, kept apart from the
//! wire types of its interface (`fleet_api`), so that the interface can change without
//! changing what every manager has stored, and the reverse.
//!
//! Each type here is written with its format tag ([`StoredShape::TAG`]); a type that changes
//! shape takes a new tag and reads its previous shape in [`StoredShape::from_older`]. The first
//! shapes are those the wire types had when the manager stored them directly: same fields in
//! the same order, same variants in the same order, same names. So values written by that
//! layout (tag `0xC1` then postcard, or candid beginning with `DIDL`) decode unchanged.
//!
//! The conversions to and from the wire types destructure every field and match every variant:
//! a field or variant added on either side stops this module from compiling until someone
//! decides how it is stored. They are used where the interface is: endpoints, queries, metrics.

use crate::memory::StoredShape;
use candid::{CandidType, Principal};
use fleet_api::manager as api;
use fleet_api::rollout as api_rollout;
use rollout_core::codec::COMPACT_V1;
use rollout_core::{OpKind, Outcome};
use serde::{Deserialize, Serialize};

/// A release as the registry, the settings, the mirror and the snapshots refer to it.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub struct ReleaseRef {
    pub version: String,
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
}

/// The creation rate limit: a token bucket of `capacity`, one token every
/// `refill_period_secs` seconds.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub capacity: u32,
    pub refill_period_secs: u64,
}

/// The manager's settings (memory 1).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub user_canister_cycles: u128,
    pub creation_limit: RateLimit,
    pub default_release: Option<ReleaseRef>,
    /// `None`: the interface's default reserve.
    pub pipeline_cycles_reserve: Option<u128>,
}

/// Lifecycle of a registry record; the registry's status index keys on it.
#[derive(
    CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum CanisterStatus {
    Provisioning,
    Active,
    Upgrading,
    Failed,
    RolledBack,
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

/// How rollouts treat a registered canister.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum UpgradePolicy {
    Auto,
    Manual,
    /// Kept on this version.
    Pinned(String),
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum UpgradeOutcome {
    Installed,
    Adopted,
    Upgraded,
    Failed(String),
    RolledBack(String),
    Restored,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UpgradeEvent {
    pub at_ns: u64,
    pub from: Option<ReleaseRef>,
    pub to: ReleaseRef,
    pub outcome: UpgradeOutcome,
}

/// One registry record (memory 4).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RegistryRecord {
    pub canister_id: Principal,
    pub owner: Principal,
    pub recovery_principal: Principal,
    pub current_release: Option<ReleaseRef>,
    pub policy: UpgradePolicy,
    pub status: CanisterStatus,
    pub last_error: Option<String>,
    /// The last [`api::MAX_HISTORY`] upgrade events, oldest first.
    pub history: Vec<UpgradeEvent>,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
    /// The snapshot a rollout took before the canister's last upgrade, to roll back to. Kept
    /// in the record, which every finished upgrade writes anyway, rather than in a map of its
    /// own that would cost another B-tree write per upgrade.
    pub snapshot: Option<crate::state::FleetSnapshot>,
    /// The canister's subnet; `None` for a record written before subnets were recorded (the
    /// manager's own subnet then).
    pub subnet: Option<Principal>,
}

/// Tag of [`RegistryRecord`]'s shape with its snapshot.
pub const REGISTRY_RECORD_V2: u8 = 0xC2;
/// Tag of [`RegistryRecord`]'s shape with its subnet.
pub const REGISTRY_RECORD_V3: u8 = 0xC3;

/// Decodes the postcard bytes of a shape that lacks only a trailing `Option` field as the
/// shape that has it, `None`: postcard writes `None` as one zero byte, and nothing else.
fn with_trailing_none<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let mut extended = Vec::with_capacity(bytes.len() + 1);
    extended.extend_from_slice(bytes);
    extended.push(0);
    postcard::from_bytes(&extended).ok()
}

/// A release mirrored into the IC chunk store (inside memory 8's `MirrorState`).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MirroredRelease {
    pub release: ReleaseRef,
    /// sha256 of each ≤ 1 MiB slice of the module, in order.
    pub chunk_hashes: Vec<Vec<u8>>,
}

/// What the pipeline log records; outcomes and calls in the engine's own types.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum PipelineLogKind {
    Started,
    Left { outcome: Option<Outcome> },
    Reissued { op: OpKind },
}

/// One pipeline log entry (memory 13).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PipelineLogEntry {
    pub at: u64,
    pub rollout_id: u64,
    pub canister_id: Principal,
    pub kind: PipelineLogKind,
    /// `None` in entries written before timer ticks were numbered.
    pub tick: Option<u64>,
}

/// Counters over the manager's lifetime, inside the rollout header (memory 9).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutCounters {
    pub rollouts_started: u64,
    pub pipelines_started: u64,
    pub upgraded: u64,
    pub restored: u64,
    pub rolled_back: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
    pub calls_issued: u64,
    pub calls_failed: u64,
    /// Argument bytes of every call the rollout engine sent.
    pub bytes_sent: u64,
    pub cycles_topped_up: u128,
    pub upgrade_requests: u64,
    /// Canisters that ended a rollout deferred (environment or manager), not failed; `None`
    /// until the first.
    pub deferred: Option<u64>,
}

impl StoredShape for Settings {
    const TAG: u8 = COMPACT_V1;
}

impl StoredShape for RegistryRecord {
    const TAG: u8 = REGISTRY_RECORD_V3;

    /// The first shape is the wire record's as it was then, field for field (without a
    /// snapshot or a subnet); the second is this one without the subnet, its last field.
    fn from_older(tag: u8, bytes: &[u8]) -> Option<Self> {
        match tag {
            COMPACT_V1 => with_trailing_none::<api::UserCanister>(bytes).map(|mut record| {
                record.subnet = None;
                Convert::convert(record)
            }),
            REGISTRY_RECORD_V2 => with_trailing_none(bytes),
            _ => None,
        }
    }
}

impl StoredShape for PipelineLogEntry {
    const TAG: u8 = COMPACT_V1;
}

impl StoredShape for crate::chunk_store::MirrorState {
    const TAG: u8 = COMPACT_V1;
}

impl StoredShape for crate::state::FleetSnapshot {
    const TAG: u8 = COMPACT_V1;
}

// ---------------------------------------------------------------------------------------------
// Conversions to and from the wire types
// ---------------------------------------------------------------------------------------------

/// A value's counterpart on the other side of the storage seam: field types convert one by
/// one, and `Option`s and `Vec`s element by element.
trait Convert<T> {
    fn convert(self) -> T;
}

macro_rules! same {
    ($($t:ty),*) => {$(
        impl Convert<$t> for $t {
            fn convert(self) -> $t {
                self
            }
        }
    )*};
}
same!(u8, u32, u64, u128, String, Principal);

impl<A: Convert<B>, B> Convert<Option<B>> for Option<A> {
    fn convert(self) -> Option<B> {
        self.map(Convert::convert)
    }
}

impl<A: Convert<B>, B> Convert<Vec<B>> for Vec<A> {
    fn convert(self) -> Vec<B> {
        self.into_iter().map(Convert::convert).collect()
    }
}

/// `Convert` both ways between `$a` and `$b`.
macro_rules! both_ways {
    ($a:ty, $b:ty, |$x:ident| $to_b:expr, |$y:ident| $to_a:expr) => {
        impl Convert<$b> for $a {
            fn convert(self) -> $b {
                let $x = self;
                $to_b
            }
        }
        impl Convert<$a> for $b {
            fn convert(self) -> $a {
                let $y = self;
                $to_a
            }
        }
    };
}

/// `From` both ways, for the conversions the endpoints make.
macro_rules! from_both_ways {
    ($($a:ty => $b:ty),* $(,)?) => {$(
        impl From<$a> for $b {
            fn from(x: $a) -> $b {
                x.convert()
            }
        }
        impl From<$b> for $a {
            fn from(y: $b) -> $a {
                y.convert()
            }
        }
    )*};
}

/// Structs mapped field by field, destructured so that a field added on either side does not
/// compile until it is mapped. Fields after `stored:` exist on the stored side only: the
/// interface does not show them, and a record made from the interface's takes their default.
macro_rules! structs {
    ($($a:ident::$at:ident <=> $b:ident::$bt:ident {
        $($f:ident),* $(,)? $(; stored: $($s:ident = $default:expr),* $(,)?)?
    })*) => {$(
        both_ways!(
            $a::$at,
            $b::$bt,
            |x| {
                let $a::$at { $($f,)* $($($s: _,)*)? } = x;
                $b::$bt { $($f: $f.convert()),* }
            },
            |y| {
                let $b::$bt { $($f),* } = y;
                $a::$at { $($f: $f.convert(),)* $($($s: $default,)*)? }
            }
        );
    )*};
}

/// Enums mapped variant by variant (unit, one-field tuple or struct-like variants).
macro_rules! enums {
    ($($a:ident::$at:ident <=> $b:ident::$bt:ident {
        $($v:ident $(($t:ident))? $({ $($f:ident),* })?),* $(,)?
    })*) => {$(
        both_ways!(
            $a::$at,
            $b::$bt,
            |x| match x {
                $($a::$at::$v $(($t))? $({ $($f),* })? =>
                    $b::$bt::$v $(($t.convert()))? $({ $($f: $f.convert()),* })?,)*
            },
            |y| match y {
                $($b::$bt::$v $(($t))? $({ $($f),* })? =>
                    $a::$at::$v $(($t.convert()))? $({ $($f: $f.convert()),* })?,)*
            }
        );
    )*};
}

// This module and the engine, for the macros' `module::Type` paths.
use crate::stored;
use rollout_core as eng;

structs! {
    stored::ReleaseRef <=> api::ReleaseRef { version, sha256 }
    stored::RateLimit <=> api::RateLimit { capacity, refill_period_secs }
    stored::Settings <=> api::Settings {
        user_canister_cycles, creation_limit, default_release, pipeline_cycles_reserve,
    }
    stored::UpgradeEvent <=> api::UpgradeEvent { at_ns, from, to, outcome }
    stored::RegistryRecord <=> api::UserCanister {
        canister_id, owner, recovery_principal, current_release, policy, status, last_error,
        history, created_at_ns, updated_at_ns, subnet; stored: snapshot = None,
    }
    stored::MirroredRelease <=> api::MirroredRelease { release, chunk_hashes }
    stored::PipelineLogEntry <=> api_rollout::PipelineLogEntry {
        at, rollout_id, canister_id, kind, tick,
    }
    stored::RolloutCounters <=> api_rollout::RolloutCounters {
        rollouts_started, pipelines_started, upgraded, restored, rolled_back, failed, skipped,
        cancelled, calls_issued, calls_failed, bytes_sent, cycles_topped_up, upgrade_requests,
        deferred,
    }
}

enums! {
    stored::CanisterStatus <=> api::CanisterStatus {
        Provisioning, Active, Upgrading, Failed, RolledBack, Detached,
    }
    stored::UpgradePolicy <=> api::UpgradePolicy { Auto, Manual, Pinned(version) }
    stored::UpgradeOutcome <=> api::UpgradeOutcome {
        Installed, Adopted, Upgraded, Failed(why), RolledBack(why), Restored,
    }
    stored::PipelineLogKind <=> api_rollout::PipelineLogKind {
        Started, Left { outcome }, Reissued { op },
    }
    eng::Outcome <=> api_rollout::Outcome {
        Done, Restored, RolledBack, Failed, Skipped, Cancelled, Deferred,
    }
    eng::OpKind <=> api_rollout::OpKind {
        CanisterStatus, TopUp, Stop, Start, TakeSnapshot, InstallChunked, HealthCheck,
        LoadSnapshot, DeleteSnapshot,
    }
}

from_both_ways! {
    RegistryRecord => api::UserCanister,
    ReleaseRef => api::ReleaseRef,
    RateLimit => api::RateLimit,
    Settings => api::Settings,
    CanisterStatus => api::CanisterStatus,
    UpgradePolicy => api::UpgradePolicy,
    UpgradeOutcome => api::UpgradeOutcome,
    UpgradeEvent => api::UpgradeEvent,
    MirroredRelease => api::MirroredRelease,
    PipelineLogKind => api_rollout::PipelineLogKind,
    PipelineLogEntry => api_rollout::PipelineLogEntry,
    RolloutCounters => api_rollout::RolloutCounters,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk_store::MirrorState;
    use crate::memory::Stored;
    use crate::state::{FleetSnapshot, RolloutMeta};
    use ic_stable_structures::Storable;
    use std::borrow::Cow;
    use std::fmt::Debug;

    fn p(n: u8) -> Principal {
        Principal::from_slice(&[n; 29])
    }

    fn release(n: u8) -> api::ReleaseRef {
        api::ReleaseRef {
            version: format!("1.{n}.0"),
            sha256: vec![n; 32],
        }
    }

    /// Bytes written by the earlier layout, which stored `wire` itself: compact (tag `0xC1`,
    /// then postcard) and candid. Both decode to `expected`, and the stored type writes the
    /// same compact bytes again.
    fn reads_bytes_of_the_wire_layout<W, S>(wire: &W, expected: &S)
    where
        W: Serialize + CandidType,
        S: StoredShape + Clone + PartialEq + Debug,
    {
        let compact = rollout_core::codec::encode(wire);
        assert_eq!(compact[0], COMPACT_V1);
        assert_eq!(
            &Stored::<S>::from_bytes(Cow::Borrowed(&compact)).0,
            expected
        );
        assert_eq!(Stored(expected.clone()).to_bytes().as_ref(), &compact[..]);
        let candid = candid::encode_one(wire).expect("candid");
        assert_eq!(&Stored::<S>::from_bytes(Cow::Owned(candid)).0, expected);
    }

    fn settings() -> Vec<api::Settings> {
        vec![
            api::Settings {
                user_canister_cycles: 1_000_000_000_000,
                creation_limit: api::RateLimit {
                    capacity: 10,
                    refill_period_secs: 6,
                },
                default_release: None,
                pipeline_cycles_reserve: None,
            },
            api::Settings {
                user_canister_cycles: u128::MAX,
                creation_limit: api::RateLimit {
                    capacity: 1,
                    refill_period_secs: u64::MAX,
                },
                default_release: Some(release(3)),
                pipeline_cycles_reserve: Some(20_000_000_000),
            },
        ]
    }

    /// A record per status and per policy, with every upgrade outcome in its history.
    fn records() -> Vec<api::UserCanister> {
        let outcomes = [
            api::UpgradeOutcome::Installed,
            api::UpgradeOutcome::Adopted,
            api::UpgradeOutcome::Upgraded,
            api::UpgradeOutcome::Failed("unhealthy".into()),
            api::UpgradeOutcome::RolledBack("trapped".into()),
            api::UpgradeOutcome::Restored,
        ];
        let history: Vec<api::UpgradeEvent> = outcomes
            .into_iter()
            .enumerate()
            .map(|(n, outcome)| api::UpgradeEvent {
                at_ns: n as u64 * 1_000,
                from: (n > 0).then(|| release(n as u8)),
                to: release(n as u8 + 1),
                outcome,
            })
            .collect();
        let policies = [
            api::UpgradePolicy::Auto,
            api::UpgradePolicy::Manual,
            api::UpgradePolicy::Pinned("1.2.0".into()),
        ];
        api::CanisterStatus::ALL
            .into_iter()
            .enumerate()
            .map(|(n, status)| api::UserCanister {
                canister_id: Principal::from_slice(&[n as u8, 0, 0, 0, 0, 0, 0, 0, 1, 1]),
                owner: p(n as u8),
                recovery_principal: p(100 + n as u8),
                current_release: (n % 2 == 0).then(|| release(n as u8)),
                policy: policies[n % policies.len()].clone(),
                status,
                last_error: (n % 3 == 0).then(|| format!("error {n}")),
                history: history[..n].to_vec(),
                created_at_ns: 1_700_000_000_000_000_000 + n as u64,
                updated_at_ns: u64::MAX - n as u64,
                subnet: None,
            })
            .collect()
    }

    fn log_entries() -> Vec<api_rollout::PipelineLogEntry> {
        use api_rollout::{OpKind as Op, Outcome as O, PipelineLogKind as K};
        let mut kinds = vec![K::Started, K::Left { outcome: None }];
        kinds.extend(
            [
                O::Done,
                O::Restored,
                O::RolledBack,
                O::Failed,
                O::Skipped,
                O::Cancelled,
                O::Deferred,
            ]
            .map(|o| K::Left { outcome: Some(o) }),
        );
        kinds.extend(
            [
                Op::CanisterStatus,
                Op::TopUp,
                Op::Stop,
                Op::Start,
                Op::TakeSnapshot,
                Op::InstallChunked,
                Op::HealthCheck,
                Op::LoadSnapshot,
                Op::DeleteSnapshot,
            ]
            .map(|op| K::Reissued { op }),
        );
        kinds
            .into_iter()
            .enumerate()
            .map(|(n, kind)| api_rollout::PipelineLogEntry {
                at: 1_700_000_000_000_000_000 + n as u64,
                rollout_id: n as u64 / 3,
                canister_id: p(n as u8),
                kind,
                tick: (n % 2 == 1).then_some(n as u64),
            })
            .collect()
    }

    fn mirrored() -> Vec<api::MirroredRelease> {
        (1..4)
            .map(|n| api::MirroredRelease {
                release: release(n),
                chunk_hashes: (0..n).map(|c| vec![c; 32]).collect(),
            })
            .collect()
    }

    fn counters() -> Vec<api_rollout::RolloutCounters> {
        vec![
            api_rollout::RolloutCounters::default(),
            api_rollout::RolloutCounters {
                rollouts_started: 1,
                pipelines_started: 2,
                upgraded: 3,
                restored: 4,
                rolled_back: 5,
                failed: 6,
                skipped: 7,
                cancelled: 8,
                calls_issued: 9,
                calls_failed: 10,
                bytes_sent: u64::MAX,
                cycles_topped_up: u128::MAX,
                upgrade_requests: 11,
                deferred: Some(12),
            },
        ]
    }

    #[test]
    fn wire_values_round_trip_through_their_stored_records() {
        fn round_trip<W, S>(values: Vec<W>)
        where
            W: Clone + PartialEq + Debug + From<S>,
            S: From<W>,
        {
            for w in values {
                assert_eq!(W::from(S::from(w.clone())), w);
            }
        }
        round_trip::<_, Settings>(settings());
        round_trip::<_, RegistryRecord>(records());
        round_trip::<_, MirroredRelease>(mirrored());
        round_trip::<_, PipelineLogEntry>(log_entries());
        round_trip::<_, RolloutCounters>(counters());
    }

    #[test]
    fn settings_written_by_the_wire_layout_are_read() {
        for wire in settings() {
            reads_bytes_of_the_wire_layout(&wire, &Settings::from(wire.clone()));
        }
    }

    /// Records of the first shape (the wire record itself, compact under `0xC1` or candid)
    /// read with no snapshot, and are written again under `0xC2`: the same fields, then the
    /// snapshot. A record with a snapshot keeps it.
    #[test]
    fn registry_records_of_the_first_shape_are_read_and_take_a_snapshot() {
        for wire in records() {
            let expected = RegistryRecord::from(wire.clone());
            assert_eq!(expected.snapshot, None);
            let compact = rollout_core::codec::encode(&wire);
            assert_eq!(compact[0], COMPACT_V1);
            assert_eq!(
                Stored::<RegistryRecord>::from_bytes(Cow::Borrowed(&compact)).0,
                expected
            );
            let candid = candid::encode_one(&wire).expect("candid");
            assert_eq!(
                Stored::<RegistryRecord>::from_bytes(Cow::Owned(candid)).0,
                expected
            );
            // The wire record's last field is its subnet (`None` here, one zero byte); the
            // stored one adds the snapshot before it.
            let mut rewritten = vec![REGISTRY_RECORD_V3];
            rewritten.extend_from_slice(&compact[1..]);
            rewritten.push(0);
            assert_eq!(Stored(expected.clone()).to_bytes().as_ref(), &rewritten[..]);
            // The same record as the second shape wrote it: no subnet field.
            let mut second = vec![REGISTRY_RECORD_V2];
            second.extend_from_slice(&rewritten[1..rewritten.len() - 1]);
            assert_eq!(
                Stored::<RegistryRecord>::from_bytes(Cow::Owned(second)).0,
                expected
            );
            let mut with_snapshot = expected;
            with_snapshot.subnet = Some(Principal::from_slice(&[7; 29]));
            with_snapshot.snapshot = Some(FleetSnapshot {
                id: vec![0, 0, 0, 1, 2],
                release: Some(release(4).into()),
                taken_at_ns: 17,
            });
            let bytes = Stored(with_snapshot.clone()).to_bytes().into_owned();
            assert_eq!(
                Stored::<RegistryRecord>::from_bytes(Cow::Owned(bytes)).0,
                with_snapshot
            );
        }
    }

    #[test]
    fn pipeline_log_entries_written_by_the_wire_layout_are_read() {
        for wire in log_entries() {
            reads_bytes_of_the_wire_layout(&wire, &PipelineLogEntry::from(wire.clone()));
        }
    }

    #[test]
    fn a_mirror_state_written_with_wire_releases_is_read() {
        /// The mirror state as the earlier layout stored it.
        #[derive(CandidType, Serialize)]
        struct WireMirrorState {
            stored: Vec<Vec<u8>>,
            releases: Vec<api::MirroredRelease>,
        }
        for releases in [vec![], mirrored()] {
            let stored: Vec<Vec<u8>> = (0..releases.len() as u8).map(|c| vec![c; 32]).collect();
            let expected = MirrorState {
                stored: stored.clone(),
                releases: releases.iter().cloned().map(Into::into).collect(),
            };
            reads_bytes_of_the_wire_layout(&WireMirrorState { stored, releases }, &expected);
        }
    }

    #[test]
    fn a_fleet_snapshot_written_with_a_wire_release_is_read() {
        /// The snapshot as the earlier layout stored it.
        #[derive(CandidType, Serialize)]
        struct WireFleetSnapshot {
            id: Vec<u8>,
            release: Option<api::ReleaseRef>,
            taken_at_ns: u64,
        }
        for release in [None, Some(release(7))] {
            let expected = FleetSnapshot {
                id: vec![0, 0, 0, 1, 2],
                release: release.clone().map(Into::into),
                taken_at_ns: 1_700_000_000_000_000_000,
            };
            let wire = WireFleetSnapshot {
                id: expected.id.clone(),
                release,
                taken_at_ns: expected.taken_at_ns,
            };
            reads_bytes_of_the_wire_layout(&wire, &expected);
        }
    }

    /// Headers of the first shape (tag `0xC1` or candid: wire counters, the engine state before
    /// subnets) are read, and written again under `0xC2`.
    #[test]
    fn a_rollout_header_written_with_wire_counters_is_read() {
        use rollout_core::codec::{RolloutStateV1, COMPACT_V2};
        /// The header as the earlier layout stored it.
        #[derive(CandidType, Serialize)]
        struct WireRolloutMeta {
            next_id: u64,
            current: Option<RolloutStateV1>,
            draining: bool,
            counters: api_rollout::RolloutCounters,
            log_first: u64,
            log_next: u64,
            next_ticket: u64,
            timer_ticks: Option<u64>,
        }
        let in_flight = crate::state::tests::rollout_in_flight();
        for (n, counters) in counters().into_iter().enumerate() {
            let current = (n % 2 == 1).then(|| in_flight.clone());
            let wire = WireRolloutMeta {
                next_id: 8,
                current: current.clone().map(RolloutStateV1::from),
                draining: n % 2 == 0,
                counters: counters.clone(),
                log_first: 4,
                log_next: 9,
                next_ticket: 11,
                timer_ticks: (n % 2 == 1).then_some(12),
            };
            let expected = RolloutMeta {
                next_id: 8,
                current,
                draining: n % 2 == 0,
                counters: counters.into(),
                log_first: 4,
                log_next: 9,
                next_ticket: 11,
                timer_ticks: wire.timer_ticks,
            };
            let compact = rollout_core::codec::encode(&wire);
            assert_eq!(compact[0], COMPACT_V1);
            assert_eq!(
                Stored::<RolloutMeta>::from_bytes(Cow::Borrowed(&compact)).0,
                expected
            );
            let candid = candid::encode_one(&wire).expect("candid");
            let read: RolloutMeta =
                rollout_core::stable::Encoded::<RolloutMeta>::from_bytes(Cow::Owned(candid))
                    .decode();
            assert_eq!(read, expected);
            let rewritten = Stored(expected.clone()).to_bytes().into_owned();
            assert_eq!(rewritten[0], COMPACT_V2);
            assert_eq!(
                Stored::<RolloutMeta>::from_bytes(Cow::Owned(rewritten)).0,
                expected
            );
        }
    }
}
