//! The encoding of stored values: a format tag, then the value in postcard (a compact,
//! non-self-describing serde format), instead of candid.
//!
//! Candid is the canisters' public contract, and it is expensive to encode and decode: its
//! type tables and subtyping checks cost the manager tens of millions of instructions per
//! upgraded canister when every stored record goes through them. Stored values are private and
//! need none of that. Values written in candid by an earlier layout (they start with `DIDL`)
//! are still read, so an upgraded manager keeps its state; the next write stores them compact.
//!
//! A compact value's shape is fixed by its tag: a stored type that gains or loses a field takes
//! the next tag and a conversion from the previous shape ([`Shape`]).
//!
//! Shapes of the engine's stored types:
//! * `0xC1` ([`COMPACT_V1`]): the first shape of each.
//! * `0xC2` ([`COMPACT_V2`]): [`CanisterRecord`] with its subnet index, [`RolloutState`] with
//!   its subnets (and [`Limits::per_subnet`], [`FailurePolicy::halt_scope`]), [`Event`] with the
//!   subnet halts. An event of the first shape is one of the second (variants were only
//!   appended); the others convert from [`CanisterRecordV1`] and [`RolloutStateV1`].

use candid::{CandidType, Principal};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::limiter::TokenBucket;
use crate::pipeline::{CallError, CanisterRecord, Failure, Job, Step};
use crate::plan::{
    CyclesPolicy, FailurePolicy, HaltScope, Limits, Release, RetryPolicy, SnapshotPolicy,
};
use crate::rollout::{
    DeferralCounts, Event, Hold, ManagerView, Phase, RolloutState, StateCounts, SubnetState,
    WaveProgress,
};
use crate::store::QueueKey;
use crate::{Nanos, SnapshotId};

/// Tag of the first compact shape of every stored type.
pub const COMPACT_V1: u8 = 0xC1;
/// Tag of the second compact shape of a stored type (see the module's list).
pub const COMPACT_V2: u8 = 0xC2;
/// How candid values begin (interface spec, "Candid": the magic number).
const CANDID_MAGIC: &[u8] = b"DIDL";

/// Encodes a stored value under the first tag, for types that never changed shape.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_extend(value, vec![COMPACT_V1]).expect("encoding a stored value")
}

/// Decodes a stored value of a type that never changed shape, compact or candid. Only bytes
/// this canister wrote are ever decoded: failing here means the layout was broken, and
/// trapping keeps the old state instead of working on garbage.
pub fn decode<T: DeserializeOwned + CandidType>(bytes: &[u8]) -> T {
    match bytes.first() {
        Some(&COMPACT_V1) => postcard::from_bytes(&bytes[1..]).expect("a stored compact value"),
        _ if bytes.starts_with(CANDID_MAGIC) => {
            candid::decode_one(bytes).expect("a stored candid value")
        }
        _ => panic!("a stored value in an unknown format"),
    }
}

/// A stored type and the shapes it was ever written in. Its shape is fixed by its tag: a type
/// that gains, loses or reorders a field or a variant takes a new tag, and reads the shapes of
/// its earlier tags in [`Shape::from_older`].
pub trait Shape: CandidType + Serialize + DeserializeOwned {
    /// Tag of the shape written now.
    const TAG: u8;

    /// The value of bytes written under an earlier `tag` (the bytes after the tag); `None`
    /// for a tag this type never had.
    fn from_older(tag: u8, bytes: &[u8]) -> Option<Self> {
        let _ = (tag, bytes);
        None
    }

    /// The value of candid bytes an earlier layout wrote, which have the field names of the
    /// shape of that time.
    fn from_candid(bytes: &[u8]) -> Self {
        candid::decode_one(bytes).expect("a stored candid value")
    }
}

/// [`Shape::from_older`] of a type whose only earlier shape is `V` under [`COMPACT_V1`].
pub fn from_first_shape<V, T>(tag: u8, bytes: &[u8]) -> Option<T>
where
    V: DeserializeOwned + Into<T>,
{
    (tag == COMPACT_V1)
        .then(|| postcard::from_bytes::<V>(bytes).ok())
        .flatten()
        .map(Into::into)
}

/// [`Shape::from_candid`] of a type whose candid bytes were written in its first shape `V`.
pub fn from_first_shape_candid<V, T>(bytes: &[u8]) -> T
where
    V: CandidType + DeserializeOwned + Into<T>,
{
    candid::decode_one::<V>(bytes)
        .expect("a stored candid value")
        .into()
}

/// `value`'s stored bytes: its shape's tag, then postcard.
pub fn encode_shape<T: Shape>(value: &T) -> Vec<u8> {
    encode_shape_as::<T, T>(value)
}

/// The stored bytes of a `T` from `view`, a value that serializes as `T` does.
pub fn encode_shape_as<T: Shape, V: Serialize + ?Sized>(view: &V) -> Vec<u8> {
    postcard::to_extend(view, vec![T::TAG]).expect("encoding a stored value")
}

/// Reads bytes written by [`encode_shape`] under the current or an earlier tag, or in candid.
/// Traps on anything else, like [`decode`].
pub fn decode_shape<T: Shape>(bytes: &[u8]) -> T {
    match bytes.split_first() {
        Some((&tag, rest)) if tag == T::TAG => {
            postcard::from_bytes(rest).expect("a stored compact value")
        }
        _ if bytes.starts_with(CANDID_MAGIC) => T::from_candid(bytes),
        Some((&tag, rest)) => T::from_older(tag, rest)
            .unwrap_or_else(|| panic!("a stored value in an unknown format (tag {tag:#04x})")),
        None => panic!("an empty stored value"),
    }
}

impl Shape for Event {
    const TAG: u8 = COMPACT_V2;

    /// The first shape's variants are the first ones of this shape.
    fn from_older(tag: u8, bytes: &[u8]) -> Option<Self> {
        (tag == COMPACT_V1)
            .then(|| postcard::from_bytes(bytes).ok())
            .flatten()
    }
}

impl Shape for CanisterRecord {
    const TAG: u8 = COMPACT_V2;

    fn from_older(tag: u8, bytes: &[u8]) -> Option<Self> {
        from_first_shape::<CanisterRecordV1, _>(tag, bytes)
    }

    fn from_candid(bytes: &[u8]) -> Self {
        from_first_shape_candid::<CanisterRecordV1, _>(bytes)
    }
}

impl Shape for RolloutState {
    const TAG: u8 = COMPACT_V2;

    fn from_older(tag: u8, bytes: &[u8]) -> Option<Self> {
        from_first_shape::<RolloutStateV1, _>(tag, bytes)
    }

    fn from_candid(bytes: &[u8]) -> Self {
        from_first_shape_candid::<RolloutStateV1, _>(bytes)
    }
}

/// [`CanisterRecord`] as tag `0xC1` stored it: without a subnet (the rollout's first, `None`).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CanisterRecordV1 {
    pub job: Job,
    pub wave: u32,
    pub step: Step,
    pub outstanding: Option<QueueKey>,
    pub recovery: Principal,
    pub expected_module_hash: Option<Vec<u8>>,
    pub snapshot: Option<SnapshotId>,
    pub snapshot_fresh: bool,
    pub stop_attempts: u32,
    pub start_failures: u32,
    pub topped_up: u128,
    pub failure: Option<Failure>,
    pub last_error: Option<CallError>,
    pub started_at: Option<Nanos>,
    pub finished_at: Option<Nanos>,
    pub ticket: Option<u64>,
    pub queued: Option<QueueKey>,
}

impl From<CanisterRecordV1> for CanisterRecord {
    fn from(r: CanisterRecordV1) -> Self {
        let CanisterRecordV1 {
            job,
            wave,
            step,
            outstanding,
            recovery,
            expected_module_hash,
            snapshot,
            snapshot_fresh,
            stop_attempts,
            start_failures,
            topped_up,
            failure,
            last_error,
            started_at,
            finished_at,
            ticket,
            queued,
        } = r;
        CanisterRecord {
            job,
            wave,
            step,
            outstanding,
            recovery,
            expected_module_hash,
            snapshot,
            snapshot_fresh,
            stop_attempts,
            start_failures,
            topped_up,
            failure,
            last_error,
            started_at,
            finished_at,
            ticket,
            queued,
            subnet: 0,
        }
    }
}

/// [`Limits`] of the first shape: without per-subnet limits.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LimitsV1 {
    pub max_in_flight: u32,
    pub starts_per_minute: u32,
    pub burst: u32,
    pub max_starts_per_tick: u32,
}

/// [`FailurePolicy`] of the first shape: the fleet is the halt scope.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FailurePolicyV1 {
    pub max_failed_percent: u8,
    pub max_consecutive_failures: u32,
}

/// [`RolloutState`] as tag `0xC1` stored it: one subnet (`None`) for every canister.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RolloutStateV1 {
    pub id: u64,
    pub manager: Principal,
    pub job: Job,
    pub target: Release,
    pub bake_ns: Nanos,
    pub limits: LimitsV1,
    pub failure: FailurePolicyV1,
    pub snapshot: SnapshotPolicy,
    pub cycles: CyclesPolicy,
    pub retry: RetryPolicy,
    pub phase: Phase,
    pub created_at: Nanos,
    pub finished_at: Option<Nanos>,
    pub waves: Vec<WaveProgress>,
    pub requests: WaveProgress,
    pub current_wave: u32,
    pub bucket: TokenBucket,
    pub counts: StateCounts,
    pub consecutive_failures: u32,
    pub budget_left: u128,
    pub seq: u64,
    pub next_ticket: u64,
    pub event_capacity: u32,
    pub events_first: u64,
    pub events_next: u64,
    pub rate_samples: Vec<(Nanos, u64)>,
    pub starts_since_tick: Option<u32>,
    pub stop_deadline_ns: Option<Nanos>,
    pub hold: Option<Hold>,
    pub manager_view: Option<ManagerView>,
    pub manager_faults: Option<u32>,
    pub deferrals: Option<DeferralCounts>,
}

/// Field names of both state shapes, for the conversions both ways.
macro_rules! state_fields {
    ($m:ident) => {
        $m!(
            id,
            manager,
            job,
            target,
            bake_ns,
            phase,
            created_at,
            finished_at,
            waves,
            requests,
            current_wave,
            bucket,
            counts,
            consecutive_failures,
            budget_left,
            seq,
            next_ticket,
            event_capacity,
            events_first,
            events_next,
            rate_samples,
            starts_since_tick,
            stop_deadline_ns,
            hold,
            manager_view,
            manager_faults,
            deferrals,
            snapshot,
            cycles,
            retry
        )
    };
}

impl From<RolloutStateV1> for RolloutState {
    /// Every canister of a first-shape rollout is on the one subnet `None`, which inherits
    /// the rollout's counters.
    fn from(s: RolloutStateV1) -> Self {
        let subnet = SubnetState::from_fleet(&s.counts, &s.waves, s.consecutive_failures);
        let LimitsV1 {
            max_in_flight,
            starts_per_minute,
            burst,
            max_starts_per_tick,
        } = s.limits;
        let limits = Limits {
            max_in_flight,
            starts_per_minute,
            burst,
            max_starts_per_tick,
            per_subnet: None,
        };
        let failure = FailurePolicy {
            max_failed_percent: s.failure.max_failed_percent,
            max_consecutive_failures: s.failure.max_consecutive_failures,
            halt_scope: HaltScope::Fleet,
        };
        macro_rules! build {
            ($($f:ident),*) => {
                RolloutState {
                    $($f: s.$f,)*
                    limits,
                    failure,
                    subnets: vec![subnet],
                    subnet_cursor: 0,
                }
            };
        }
        state_fields!(build)
    }
}

impl From<RolloutState> for RolloutStateV1 {
    /// The first shape of a state, which drops its subnets and per-subnet settings: what a
    /// manager before subnets stored, for tests that read such a header.
    fn from(s: RolloutState) -> Self {
        let limits = LimitsV1 {
            max_in_flight: s.limits.max_in_flight,
            starts_per_minute: s.limits.starts_per_minute,
            burst: s.limits.burst,
            max_starts_per_tick: s.limits.max_starts_per_tick,
        };
        let failure = FailurePolicyV1 {
            max_failed_percent: s.failure.max_failed_percent,
            max_consecutive_failures: s.failure.max_consecutive_failures,
        };
        macro_rules! build {
            ($($f:ident),*) => {
                RolloutStateV1 {
                    $($f: s.$f,)*
                    limits,
                    failure,
                }
            };
        }
        state_fields!(build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::{CanisterRecord, Failure, Job, Step};

    fn record() -> CanisterRecord {
        let mut r = CanisterRecord::new(Job::Upgrade, 3, Principal::from_slice(&[7; 29]));
        r.step = Step::Stopping;
        r.snapshot = Some(vec![1, 2, 3]);
        r.failure = Some(Failure::StopTimedOut { attempts: 2 });
        r.started_at = Some(1_700_000_000_000_000_000);
        r
    }

    #[test]
    fn compact_values_round_trip_and_are_smaller_than_candid() {
        let r = record();
        let bytes = encode_shape(&r);
        assert_eq!(bytes[0], COMPACT_V2);
        assert_eq!(decode_shape::<CanisterRecord>(&bytes), r);
        let candid = candid::encode_one(&r).unwrap();
        assert!(
            bytes.len() * 3 < candid.len(),
            "{} vs {}",
            bytes.len(),
            candid.len()
        );
    }

    #[test]
    fn candid_values_of_an_earlier_layout_are_still_read() {
        let r = record();
        let old = candid::encode_one(&r).unwrap();
        assert_eq!(decode::<CanisterRecord>(&old), r);
    }

    /// Events of the first shape read unchanged: the second only appended variants.
    #[test]
    fn events_of_the_first_shape_are_read() {
        use crate::rollout::{Event, EventKind, HaltReason};
        let event = Event {
            at: 7,
            kind: EventKind::Halted(HaltReason::ConsecutiveFailures { count: 3 }),
        };
        assert_eq!(decode_shape::<Event>(&encode(&event)), event);
        let subnet = Event {
            at: 8,
            kind: EventKind::SubnetHalted {
                subnet: Some(Principal::from_slice(&[4; 10])),
                reason: HaltReason::WaveFailureThreshold {
                    wave: 1,
                    failed: 2,
                    size: 3,
                },
            },
        };
        let bytes = encode_shape(&subnet);
        assert_eq!(bytes[0], COMPACT_V2);
        assert_eq!(decode_shape::<Event>(&bytes), subnet);
    }

    #[test]
    #[should_panic(expected = "unknown format")]
    fn an_unknown_format_is_refused() {
        decode::<CanisterRecord>(&[0x00, 1, 2]);
    }

    #[test]
    #[should_panic(expected = "unknown format (tag 0xc3)")]
    fn an_unknown_tag_is_refused() {
        decode_shape::<CanisterRecord>(&[0xC3, 1, 2]);
    }
}
