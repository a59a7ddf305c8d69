//! The driver of one rollout: starts pipelines under the limits, routes call results to the
//! pipeline, halts on failures, and keeps counters so that status is O(waves).
//!
//! The small header ([`RolloutState`]) is one value the shell persists after every call (a
//! stable cell); everything that grows with the fleet is in the [`RolloutStore`], touched only
//! for the canisters being worked on.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};

use crate::limiter::TokenBucket;
use crate::pipeline::{self, Action, ActionResult, CallError, CanisterRecord, Ctx, Job, Next};
use crate::pipeline::{classify, Cause, Failure, Op, Outcome, Step};
use crate::plan::{
    CohortMember, CyclesPolicy, FailurePolicy, HaltScope, Limits, PlanError, Release, RetryPolicy,
    RolloutPlan, SnapshotPolicy, WaveLabel, MAX_SUBNETS,
};
use crate::store::{QueueKey, QueueKind, RolloutStore};
use crate::{Cohort, Nanos, MINUTE};

/// The wave number of canisters that joined through an owner's request.
pub const REQUEST_WAVE: u32 = u32::MAX;
/// Events kept in the log; older ones are dropped.
pub const DEFAULT_EVENT_CAPACITY: u32 = 1_000;
/// Queue entries an aborting rollout cancels per tick, which bounds a tick's cost.
pub const CANCEL_PER_TICK: u32 = 2_000;
/// Snapshot deletions issued per tick.
pub const CLEANUPS_PER_TICK: u32 = 100;
/// Cohort members whose record and queue entry a start, then each tick, writes in place; a
/// start stages the others (cheaply) and ticks write them before the first wave opens. Writing
/// one costs the manager about 0.5M instructions (two B-tree inserts, measured on ic_sim), so
/// this bounds the start's writes near 2.5B of the 40B an update message may use (interface
/// spec, "Resource limits"), whatever the cohort's size.
pub const LOAD_PER_STEP: usize = 5_000;
const RATE_SAMPLE_EVERY: Nanos = 30 * crate::SECOND;
const RATE_SAMPLES: usize = 16;
/// Manager-caused failures in a row after which no pipeline starts for a backoff.
pub const MANAGER_FAULTS_TO_HOLD: u32 = 3;
/// Busy canisters whose retry is due that a step moves to their subnet's start lane.
pub const RETRIES_MOVED_PER_TICK: u32 = 256;
/// A subnet's index goes in the top byte of the key word that orders its queue entries
/// (position in a Pending key's `b`, ticket in a Request key's `a`), so that each subnet's
/// entries form one range the driver can take the first of. Keys written before subnets
/// existed have index 0, the subnet of every canister of such a rollout.
const SUBNET_SHIFT: u32 = 56;
/// Position in a subnet's request lane of busy canisters whose retry is due: after its owner
/// requests, in the order they became due (the key's `b` is a sequence number).
const READY_RETRY: u64 = (1 << SUBNET_SHIFT) - 1;

fn subnet_key(subnet: u8, n: u64) -> u64 {
    (u64::from(subnet) << SUBNET_SHIFT) | n
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Running,
    /// By the operator: no new starts; in-flight pipelines finish.
    Paused,
    /// By the failure policy: like paused until the operator resumes or aborts.
    Halted(HaltReason),
    /// Pending canisters are being dropped; in-flight ones are brought back to running.
    Aborting,
    Aborted,
    Completed,
}

impl Phase {
    pub fn is_finished(&self) -> bool {
        matches!(self, Phase::Aborted | Phase::Completed)
    }
}

/// Why no pipeline starts although the rollout runs: the manager's own condition, not the
/// operator's decision. A hold is lifted by itself when its cause is gone and never changes
/// the rollout's [`Phase`].
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The manager is draining for its own upgrade.
    Draining,
    /// The manager's liquid cycles do not cover finishing one more pipeline (`needed` for all
    /// in flight plus one); a top-up lifts it.
    ManagerLowCycles { liquid: u128, needed: u128 },
    /// Calls failed for reasons of the manager or its subnet `count` times in a row; starts
    /// wait until `until` (or an operator's resume).
    ManagerFaults { count: u32, until: Nanos },
}

/// What the shell tells the driver about the manager itself before each step.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagerView {
    pub draining: bool,
    /// The manager's liquid cycle balance (above its freezing threshold).
    pub liquid_cycles: u128,
    /// Cycles kept for finishing each pipeline in flight (and the next one) before it starts;
    /// 0 disables the reserve.
    pub reserve_per_pipeline: u128,
}

impl ManagerView {
    /// Below what finishing a single pipeline needs: every reject is the manager's.
    pub fn low(&self) -> bool {
        self.liquid_cycles < self.reserve_per_pipeline
    }

    /// Pipelines the balance lets be in flight at once.
    fn affordable(&self) -> u64 {
        if self.reserve_per_pipeline == 0 {
            return u64::MAX;
        }
        u64::try_from(self.liquid_cycles / self.reserve_per_pipeline).unwrap_or(u64::MAX)
    }
}

/// Deferrals (a canister left for a later retry, or left on its release at the end) by cause.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct DeferralCounts {
    pub environment: u64,
    pub manager: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum HaltReason {
    WaveFailureThreshold {
        wave: u32,
        failed: u64,
        size: u64,
    },
    ConsecutiveFailures {
        count: u32,
    },
    /// Under [`HaltScope::Subnet`]: the subnet's part of the wave failed beyond the threshold,
    /// and nothing was left to do on the other subnets.
    SubnetWaveFailureThreshold {
        subnet: Option<Principal>,
        wave: u32,
        failed: u64,
        size: u64,
    },
    /// Under [`HaltScope::Subnet`]: the subnet's failures in a row, as above.
    SubnetConsecutiveFailures {
        subnet: Option<Principal>,
        count: u32,
    },
}

impl HaltReason {
    /// The reason of the whole rollout when `subnet`, halted for `self`, is all that is left.
    fn on_subnet(&self, subnet: Option<Principal>) -> HaltReason {
        match *self {
            HaltReason::WaveFailureThreshold { wave, failed, size } => {
                HaltReason::SubnetWaveFailureThreshold {
                    subnet,
                    wave,
                    failed,
                    size,
                }
            }
            HaltReason::ConsecutiveFailures { count } => {
                HaltReason::SubnetConsecutiveFailures { subnet, count }
            }
            ref other => other.clone(),
        }
    }
}

/// One subnet's part of one wave.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct SubnetWave {
    pub size: u64,
    /// Not started yet: the driver looks up the subnet's queue only in waves with some left.
    pub pending: u64,
    pub finished: u64,
    /// Failed or rolled back, for the wave threshold counted per subnet.
    pub failures: u64,
}

/// What the driver keeps per subnet, in the header: small (a rollout spans at most
/// [`MAX_SUBNETS`] subnets and `None`), and enough that neither starts nor status scan records.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubnetState {
    pub subnet: Option<Principal>,
    pub counts: StateCounts,
    /// Indexed like [`RolloutState::waves`].
    pub waves: Vec<SubnetWave>,
    pub consecutive_failures: u32,
    /// The subnet's own token bucket, under [`Limits::per_subnet`].
    pub bucket: Option<TokenBucket>,
    /// Why the subnet starts nothing new (under [`HaltScope::Subnet`]), until a resume.
    pub halted: Option<HaltReason>,
}

impl SubnetState {
    fn new(subnet: Option<Principal>, waves: usize, limits: &Limits) -> Self {
        SubnetState {
            subnet,
            counts: StateCounts::default(),
            waves: vec![SubnetWave::default(); waves],
            consecutive_failures: 0,
            bucket: limits
                .per_subnet
                .as_ref()
                .map(|l| TokenBucket::new(l.starts_per_minute, l.burst)),
            halted: None,
        }
    }

    /// The one subnet of a rollout stored before subnets: every canister, every count.
    pub(crate) fn from_fleet(
        counts: &StateCounts,
        waves: &[WaveProgress],
        consecutive_failures: u32,
    ) -> Self {
        SubnetState {
            subnet: None,
            counts: counts.clone(),
            waves: waves
                .iter()
                .map(|w| SubnetWave {
                    size: w.size,
                    // At most this many are left in the queue (fewer after an abort's cancels).
                    pending: w.size.saturating_sub(w.started),
                    finished: w.outcomes.finished(),
                    failures: w.failures(),
                })
                .collect(),
            consecutive_failures,
            bucket: None,
            halted: None,
        }
    }

    /// Whether the subnet's part of `wave` no longer holds the wave open: all finished, or the
    /// subnet halted.
    fn settled(&self, wave: usize) -> bool {
        self.halted.is_some() || self.waves.get(wave).is_none_or(|w| w.finished == w.size)
    }
}

/// Progress of one subnet, for status.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SubnetProgress {
    pub subnet: Option<Principal>,
    pub total: u64,
    pub done: u64,
    pub failed: u64,
    pub rolled_back: u64,
    pub deferred: u64,
    pub in_flight: u64,
    pub pending: u64,
    /// Waiting for a retry after a deferral.
    pub busy: u64,
    /// Why the subnet starts nothing new, if it halted.
    pub halted: Option<HaltReason>,
}

impl From<&SubnetState> for SubnetProgress {
    fn from(s: &SubnetState) -> Self {
        let c = &s.counts;
        SubnetProgress {
            subnet: s.subnet,
            total: c.total(),
            done: c.done,
            failed: c.failed,
            rolled_back: c.rolled_back,
            deferred: c.deferred(),
            in_flight: c.in_flight,
            pending: c.pending,
            busy: c.busy,
            halted: s.halted.clone(),
        }
    }
}

/// Counts of canisters by state; they always add up to the number of records.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub pending: u64,
    pub in_flight: u64,
    pub busy: u64,
    pub done: u64,
    pub restored: u64,
    pub rolled_back: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
    /// Ended [`Outcome::Deferred`]. Optional only so that headers stored before it decode.
    pub deferred: Option<u64>,
}

impl StateCounts {
    pub fn total(&self) -> u64 {
        self.pending + self.in_flight + self.busy + self.finished()
    }

    pub fn finished(&self) -> u64 {
        self.done
            + self.restored
            + self.rolled_back
            + self.failed
            + self.skipped
            + self.cancelled
            + self.deferred()
    }

    pub fn deferred(&self) -> u64 {
        self.deferred.unwrap_or(0)
    }

    fn add_outcome(&mut self, outcome: Outcome) {
        *match outcome {
            Outcome::Done => &mut self.done,
            Outcome::Restored => &mut self.restored,
            Outcome::RolledBack => &mut self.rolled_back,
            Outcome::Failed => &mut self.failed,
            Outcome::Skipped => &mut self.skipped,
            Outcome::Cancelled => &mut self.cancelled,
            Outcome::Deferred => self.deferred.get_or_insert(0),
        } += 1;
    }
}

/// Progress of one stage (or of the owner-request lane).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WaveProgress {
    pub label: WaveLabel,
    pub size: u64,
    pub started: u64,
    pub outcomes: StateCounts,
    pub opened_at: Option<Nanos>,
    pub completed_at: Option<Nanos>,
}

impl crate::Cohort {
    /// The waves as a rollout of this cohort starts them: their labels and sizes, nothing
    /// started. What `start` reports, and what a preview of the same plan shows.
    pub fn progress(&self) -> Vec<WaveProgress> {
        self.waves
            .iter()
            .map(|w| WaveProgress::new(w.label, w.members.len() as u64))
            .collect()
    }
}

impl WaveProgress {
    fn new(label: WaveLabel, size: u64) -> Self {
        WaveProgress {
            label,
            size,
            started: 0,
            outcomes: StateCounts::default(),
            opened_at: None,
            completed_at: None,
        }
    }

    pub fn failures(&self) -> u64 {
        self.outcomes.failed + self.outcomes.rolled_back
    }
}

/// An owner's request, answered at once; its progress is the canister's record.
#[derive(CandidType, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub rollout: u64,
    pub number: u64,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub at: Nanos,
    pub kind: EventKind,
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Started {
        canisters: u64,
    },
    WaveOpened {
        wave: u32,
        label: WaveLabel,
        size: u64,
    },
    WaveCompleted {
        wave: u32,
        failures: u64,
    },
    Paused,
    Resumed,
    Halted(HaltReason),
    /// No pipeline starts until the hold is lifted.
    Held(Hold),
    HoldLifted,
    AbortRequested,
    Aborted,
    Completed,
    /// A canister ended other than done (failed, rolled back, skipped, cancelled by abort
    /// after it had started).
    CanisterFinished {
        canister: Principal,
        outcome: Outcome,
        failure: Option<Failure>,
    },
    /// Starting a stopped canister failed; it is retried until it runs.
    StartRetrying {
        canister: Principal,
        error: CallError,
    },
    Requested {
        canister: Principal,
        ticket: u64,
    },
    SnapshotDeleteFailed {
        canister: Principal,
        error: CallError,
    },
    /// Under [`HaltScope::Subnet`]: the subnet starts nothing new; the others go on.
    SubnetHalted {
        subnet: Option<Principal>,
        reason: HaltReason,
    },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    /// The operation does not apply in this phase.
    InvalidPhase { phase: Phase },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ResultError {
    UnknownCanister,
    /// No call is outstanding for the canister (a duplicate or stale result).
    NoCallOutstanding,
    /// The result does not answer the canister's current call.
    Mismatch {
        step: Step,
    },
}

#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    NotAccepting {
        phase: Phase,
    },
    /// A restore rollout does not take upgrade requests.
    NotAnUpgrade,
    AlreadyFinished {
        outcome: Outcome,
    },
    /// The canister is not part of the rollout and no registry entry was given.
    NotInCohort,
    /// The canister's subnet would be one more than a rollout tracks ([`MAX_SUBNETS`]).
    TooManySubnets,
    /// The rollout is still writing its cohort's records (`left` to go): a request could not
    /// tell a member from a newcomer yet. Ticks finish the loading shortly.
    Loading {
        left: u64,
    },
}

/// The persisted header of a rollout: configuration, phase, counters. Small and O(waves).
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RolloutState {
    pub id: u64,
    pub manager: Principal,
    pub job: Job,
    /// The release installed; for a restore, the release the snapshots hold.
    pub target: Release,
    pub bake_ns: Nanos,
    pub limits: Limits,
    pub failure: FailurePolicy,
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
    /// (time, finished count) samples for the measured rate.
    pub rate_samples: Vec<(Nanos, u64)>,
    /// Pipelines started since the last timer tick ([`Rollout::tick`]): the starts of
    /// [`Rollout::refill`] between two ticks share the tick's `max_starts_per_tick`. `None` in a
    /// header written before the count existed, which counts as zero; that is safe because
    /// the next timer tick resets the count in any case.
    pub starts_since_tick: Option<u32>,
    /// The manager gives a canister this long to stop before it starts it again and defers
    /// it; `None`: the IC's own timeout (5 minutes).
    pub stop_deadline_ns: Option<Nanos>,
    /// Why starts wait although the rollout runs.
    pub hold: Option<Hold>,
    /// The manager's condition, as the shell last reported it.
    pub manager_view: Option<ManagerView>,
    /// Manager-caused failures in a row.
    pub manager_faults: Option<u32>,
    pub deferrals: Option<DeferralCounts>,
    /// The subnets of the rollout's canisters (a record's `subnet` indexes this list): `None`
    /// first if any canister has no subnet, then the others in id order, then those owner
    /// requests brought.
    pub subnets: Vec<SubnetState>,
    /// The subnet whose turn is next among those with work: the round robin that shares the
    /// per-tick cap goes on across ticks.
    pub subnet_cursor: u8,
}

/// Status for operators; computed from the header alone.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RolloutStatus {
    pub id: u64,
    pub job: Job,
    pub phase: Phase,
    pub target: Release,
    pub counts: StateCounts,
    pub waves: Vec<WaveProgress>,
    pub requests: WaveProgress,
    pub current_wave: u32,
    /// When the next stage may open, if it waits for its bake time.
    pub next_wave_at: Option<Nanos>,
    /// Canisters finished per minute over the last few minutes.
    pub rate_per_minute: f64,
    /// Estimated time left, including bake times, at the measured rate.
    pub eta_ns: Option<Nanos>,
    pub top_up_spent: u128,
    pub created_at: Nanos,
    pub finished_at: Option<Nanos>,
    /// Why no pipeline starts although the phase is `Running`.
    pub hold: Option<Hold>,
    pub deferrals: DeferralCounts,
    pub stop_deadline_ns: Option<Nanos>,
    /// The plan's limits, so that in-flight counts can be read against them.
    pub limits: Option<Limits>,
    /// The plan's failure policy, which a halt refers to.
    pub failure: Option<FailurePolicy>,
    /// Progress per subnet, in the order of [`RolloutState::subnets`].
    pub subnets: Vec<SubnetProgress>,
}

/// A canister to restore from its fleet snapshot.
#[derive(CandidType, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RestorePlan {
    /// The release the snapshots were taken on; the health check after restore expects it.
    pub release: Release,
    pub canisters: Vec<CohortMember>,
    pub limits: Limits,
    pub failure: FailurePolicy,
    pub retry: RetryPolicy,
}

/// One rollout: its header and its store.
pub struct Rollout<S> {
    state: RolloutState,
    store: S,
    /// Where [`Rollout::reissue_outstanding`] goes on in the in-flight set; not persisted (a
    /// fresh driver starts from the beginning, which only costs reading records again).
    reissue_after: Option<Principal>,
}

impl<S: RolloutStore> Rollout<S> {
    /// Starts an upgrade rollout of `cohort` (from [`crate::CohortBuilder`] over `plan`).
    /// The store is cleared first; a refused plan leaves it untouched. Beyond
    /// [`LOAD_PER_STEP`] canisters, the records are staged and the first wave opens once the
    /// ticks have written them ([`Rollout::is_loading`]).
    pub fn start(
        id: u64,
        manager: Principal,
        plan: &RolloutPlan,
        cohort: Cohort,
        store: S,
        now: Nanos,
    ) -> Result<Self, PlanError> {
        plan.validate()?;
        Self::load(
            Self::new_state(id, manager, plan, Job::Upgrade, now),
            cohort,
            store,
            now,
        )
    }

    fn new_state(
        id: u64,
        manager: Principal,
        plan: &RolloutPlan,
        job: Job,
        now: Nanos,
    ) -> RolloutState {
        RolloutState {
            id,
            manager,
            job,
            target: plan.target.clone(),
            bake_ns: plan.bake_ns,
            limits: plan.limits.clone(),
            failure: plan.failure.clone(),
            snapshot: plan.snapshot.clone(),
            cycles: plan.cycles.clone(),
            retry: plan.retry.clone(),
            phase: Phase::Running,
            created_at: now,
            finished_at: None,
            waves: Vec::new(),
            requests: WaveProgress::new(WaveLabel::Canary, 0),
            current_wave: 0,
            bucket: TokenBucket::new(plan.limits.starts_per_minute, plan.limits.burst),
            counts: StateCounts::default(),
            consecutive_failures: 0,
            budget_left: plan.cycles.budget,
            seq: 0,
            next_ticket: 0,
            event_capacity: DEFAULT_EVENT_CAPACITY,
            events_first: 0,
            events_next: 0,
            rate_samples: Vec::new(),
            starts_since_tick: Some(0),
            stop_deadline_ns: plan.stop_deadline_ns,
            hold: None,
            manager_view: None,
            manager_faults: Some(0),
            deferrals: Some(DeferralCounts::default()),
            subnets: Vec::new(),
            subnet_cursor: 0,
        }
    }

    /// Starts a rollout that restores each canister's fleet snapshot, then health-checks it
    /// against `plan.release`.
    pub fn start_restore(
        id: u64,
        manager: Principal,
        plan: RestorePlan,
        store: S,
        now: Nanos,
    ) -> Result<Self, PlanError> {
        let mut check = RolloutPlan::new(plan.release.clone());
        check.limits = plan.limits.clone();
        check.failure = plan.failure.clone();
        check.retry = plan.retry.clone();
        check.validate()?;
        if let Some(m) = plan.canisters.iter().find(|m| m.snapshot.is_none()) {
            return Err(PlanError::NoSnapshot { canister: m.id });
        }
        let cohort = Cohort {
            waves: vec![crate::plan::WavePlan {
                label: WaveLabel::Percent(100),
                members: plan.canisters,
            }],
            summary: Default::default(),
        };
        check.snapshot = SnapshotPolicy {
            take: false,
            keep_ns: None,
        };
        Self::load(
            Self::new_state(id, manager, &check, Job::Restore, now),
            cohort,
            store,
            now,
        )
    }

    fn load(
        mut state: RolloutState,
        cohort: Cohort,
        mut store: S,
        now: Nanos,
    ) -> Result<Self, PlanError> {
        let mut ids: Vec<Principal> = cohort
            .waves
            .iter()
            .flat_map(|w| w.members.iter().map(|m| m.id))
            .collect();
        if ids.is_empty() {
            return Err(PlanError::EmptyCohort);
        }
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(PlanError::DuplicateCanister { canister: w[0] });
        }
        drop(ids);
        let subnets: std::collections::BTreeSet<Option<Principal>> = cohort
            .waves
            .iter()
            .flat_map(|w| w.members.iter().map(|m| m.subnet))
            .collect();
        let named = subnets.iter().filter(|s| s.is_some()).count();
        if named > MAX_SUBNETS {
            return Err(PlanError::TooManySubnets {
                count: named as u32,
                max: MAX_SUBNETS as u32,
            });
        }
        store.clear();
        let job = state.job;
        let mut written = 0;
        state.waves = cohort.progress();
        state.subnets = subnets
            .into_iter()
            .map(|s| SubnetState::new(s, cohort.waves.len(), &state.limits))
            .collect();
        for (w, wave) in cohort.waves.into_iter().enumerate() {
            for (pos, m) in wave.members.into_iter().enumerate() {
                let index = state
                    .subnets
                    .iter()
                    .position(|s| s.subnet == m.subnet)
                    .expect("every member's subnet is listed") as u8;
                let key =
                    QueueKey::new(QueueKind::Pending, w as u64, subnet_key(index, pos as u64));
                let mut rec = CanisterRecord::new(job, w as u32, m.recovery);
                rec.expected_module_hash = m.expected_module_hash;
                rec.snapshot = m.snapshot;
                rec.queued = Some(key);
                rec.subnet = index;
                if written < LOAD_PER_STEP {
                    store.put(m.id, rec);
                    store.enqueue(key, m.id);
                    written += 1;
                } else {
                    store.stage(m.id, rec);
                }
                state.counts.pending += 1;
                let sub = &mut state.subnets[index as usize];
                sub.counts.pending += 1;
                sub.waves[w].size += 1;
                sub.waves[w].pending += 1;
            }
        }
        let mut rollout = Rollout {
            state,
            store,
            reissue_after: None,
        };
        rollout.log(
            now,
            EventKind::Started {
                canisters: rollout.state.counts.pending,
            },
        );
        if rollout.store.staged_len() == 0 {
            rollout.open_wave(0, now);
        }
        Ok(rollout)
    }

    /// Whether the start staged records that are not written in place yet: until they are,
    /// the first wave is not open, no pipeline starts and requests are refused.
    pub fn is_loading(&self) -> bool {
        self.store.staged_len() > 0
    }

    /// Writes up to [`LOAD_PER_STEP`] staged records in place, and opens the first wave once
    /// none is left. Their counts were added when the rollout started.
    fn load_staged(&mut self, now: Nanos) {
        for (id, rec) in self.store.take_staged(LOAD_PER_STEP) {
            let key = rec.queued.expect("a staged record is queued");
            self.store.put(id, rec);
            self.store.enqueue(key, id);
        }
        if self.store.staged_len() == 0 {
            self.open_wave(0, now);
        }
    }

    /// Rebuilds the driver from its persisted parts.
    pub fn from_parts(state: RolloutState, store: S) -> Self {
        Rollout {
            state,
            store,
            reissue_after: None,
        }
    }

    /// Lends the state with its subnets set apart: a shell that stores each subnet's state on
    /// its own writes the header without them, and only the subnets a step changed.
    pub fn with_subnets_apart<R>(
        &mut self,
        f: impl FnOnce(&RolloutState, &[SubnetState]) -> R,
    ) -> R {
        let subnets = std::mem::take(&mut self.state.subnets);
        let r = f(&self.state, &subnets);
        self.state.subnets = subnets;
        r
    }

    pub fn into_parts(self) -> (RolloutState, S) {
        (self.state, self.store)
    }

    pub fn state(&self) -> &RolloutState {
        &self.state
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Sets how many events the log keeps (at least 1).
    pub fn set_event_capacity(&mut self, capacity: u32) {
        self.state.event_capacity = capacity.max(1);
        self.trim_events();
    }

    /// A timer tick: the calls to make now. Repeated calls whose backoff is over, due snapshot
    /// deletions, and as many new pipeline starts as the in-flight limit, the token bucket and
    /// the per-tick cap allow, overall and per subnet (the subnets with work take turns). It
    /// opens a new tick: the cap counts starts from here until the next call of `tick`,
    /// including those of [`Rollout::refill`] in between.
    /// Cost: O(returned actions + cancellations + subnets × waves), independent of the fleet.
    pub fn tick(&mut self, now: Nanos) -> Vec<Action> {
        self.state.starts_since_tick = Some(0);
        let actions = self.step(now);
        self.check_invariants();
        actions
    }

    /// Like [`Rollout::tick`], between two timer ticks (for instance as soon as a pipeline
    /// gives its slot back): new pipelines start only within what is left of the current
    /// tick's `max_starts_per_tick`, so that the starts between two timer ticks never exceed it.
    pub fn refill(&mut self, now: Nanos) -> Vec<Action> {
        let actions = self.step(now);
        self.check_invariants();
        actions
    }

    /// In debug and test builds, checks after each step that the header's counts describe the
    /// store: they add up to its records, and the pipelines counted in flight are its in-flight
    /// set (anchor: the cycles ledger's `check_invariants`). O(1) with either store.
    fn check_invariants(&self) {
        if cfg!(debug_assertions) {
            let counts = &self.state.counts;
            assert_eq!(
                counts.total(),
                self.store.len() + self.store.staged_len(),
                "counts {counts:?}"
            );
            assert_eq!(
                counts.in_flight,
                self.store.in_flight_len(),
                "counts {counts:?}"
            );
            let subnets = &self.state.subnets;
            if !subnets.is_empty() {
                let sum = |f: fn(&StateCounts) -> u64| -> u64 {
                    subnets.iter().map(|s| f(&s.counts)).sum()
                };
                assert_eq!(sum(StateCounts::total), counts.total(), "{subnets:?}");
                assert_eq!(sum(|c| c.in_flight), counts.in_flight, "{subnets:?}");
                assert_eq!(sum(|c| c.pending), counts.pending, "{subnets:?}");
                assert_eq!(sum(|c| c.busy), counts.busy, "{subnets:?}");
            }
        }
    }

    /// The shell reports the manager's own condition (drain, cycles) before a step; the hold
    /// follows from it at once.
    pub fn set_manager(&mut self, view: ManagerView, now: Nanos) {
        self.state.manager_view = Some(view);
        if !self.state.phase.is_finished() {
            self.refresh_hold(now);
        }
    }

    /// Recomputes the hold from the manager's condition; logs a change.
    fn refresh_hold(&mut self, now: Nanos) {
        let view = self.state.manager_view.clone().unwrap_or_default();
        let faults = match &self.state.hold {
            Some(h @ Hold::ManagerFaults { until, .. }) if now < *until => Some(h.clone()),
            _ => None,
        };
        let needed = view
            .reserve_per_pipeline
            .saturating_mul(u128::from(self.state.counts.in_flight) + 1);
        let hold = if view.draining {
            Some(Hold::Draining)
        } else if faults.is_some() {
            faults
        } else if view.liquid_cycles < needed && self.state.phase == Phase::Running {
            Some(Hold::ManagerLowCycles {
                liquid: view.liquid_cycles,
                needed,
            })
        } else {
            None
        };
        let changed = match (&self.state.hold, &hold) {
            (None, None) => false,
            (Some(a), Some(b)) => std::mem::discriminant(a) != std::mem::discriminant(b),
            _ => true,
        };
        if changed {
            match &hold {
                Some(h) => self.log(now, EventKind::Held(h.clone())),
                None => self.log(now, EventKind::HoldLifted),
            }
        }
        self.state.hold = hold;
    }

    fn step(&mut self, now: Nanos) -> Vec<Action> {
        if self.is_loading() {
            // Nothing has started yet: no call is out, no queue but the cohort's has entries.
            // A tick that writes records starts nothing, so that its cost stays one batch.
            self.load_staged(now);
            return Vec::new();
        }
        let mut actions = Vec::new();
        self.wake_due(now, &mut actions);
        self.cleanups_due(now, &mut actions);
        if self.state.phase == Phase::Aborting {
            self.cancel_queued(now);
        }
        self.refresh_hold(now);
        if self.state.phase == Phase::Running {
            self.advance_waves(now);
            if self.state.hold.is_none() {
                self.start_pipelines(now, &mut actions);
            }
        }
        self.maybe_finish(now);
        self.sample_rate(now);
        actions
    }

    /// Feeds back the result of the canister's outstanding call; returns the canister's next
    /// call, if any. A result that does not fit changes nothing.
    pub fn on_result(
        &mut self,
        canister: Principal,
        result: ActionResult,
        now: Nanos,
    ) -> Result<Option<Action>, ResultError> {
        let next = self.apply_result(canister, result, now);
        self.check_invariants();
        next
    }

    fn apply_result(
        &mut self,
        canister: Principal,
        result: ActionResult,
        now: Nanos,
    ) -> Result<Option<Action>, ResultError> {
        let mut rec = self
            .store
            .get(&canister)
            .ok_or(ResultError::UnknownCanister)?;
        let Some(issued) = rec.outstanding else {
            return Err(ResultError::NoCallOutstanding);
        };
        if let Step::Finished(_) = rec.step {
            // Only snapshot deletions are issued for finished records.
            match result {
                ActionResult::SnapshotDeleted => rec.snapshot = None,
                ActionResult::CallFailed(error) => {
                    self.log(now, EventKind::SnapshotDeleteFailed { canister, error })
                }
                _ => return Err(ResultError::Mismatch { step: rec.step }),
            }
            self.store.dequeue(&issued);
            rec.outstanding = None;
            self.store.put(canister, rec);
            return Ok(None);
        }
        let refund = match (&rec.step, &result) {
            (Step::ToppingUp { .. }, ActionResult::ToppedUp) => 0,
            (Step::ToppingUp { cycles }, _) => *cycles,
            _ => 0,
        };
        let start_error = match (&rec.step, &result, rec.start_failures) {
            (Step::Starting { .. }, ActionResult::CallFailed(e), 0) => Some(e.clone()),
            _ => None,
        };
        let ctx = self.ctx();
        let manager_fault = match (&result, pipeline::current_op(&rec, &self.state.target)) {
            (ActionResult::CallFailed(e) | ActionResult::InstallFailed(e), Some(op)) => {
                classify(op.kind(), e, ctx.manager_low) == Cause::Manager
            }
            _ => false,
        };
        let Ok(next) = pipeline::on_result(&mut rec, result, &ctx, now) else {
            return Err(ResultError::Mismatch { step: rec.step });
        };
        self.count_manager_fault(manager_fault, now);
        self.state.budget_left += refund;
        rec.outstanding = None;
        if let Some(error) = start_error {
            self.log(now, EventKind::StartRetrying { canister, error });
        }
        let action = match next {
            Next::Call(op) => {
                if let Op::TopUp { cycles } = op {
                    self.state.budget_left -= cycles;
                }
                Some(self.issue(canister, &mut rec, op, now))
            }
            Next::CallAt(at) => {
                let key = self.key(QueueKind::Wake, at);
                rec.queued = Some(key);
                self.store.enqueue(key, canister);
                None
            }
            Next::RetryAt(at) => {
                self.count_deferral(&rec);
                self.count(rec.subnet, |c| {
                    c.in_flight -= 1;
                    c.busy += 1;
                });
                let key = self.key(QueueKind::Retry, at);
                rec.queued = Some(key);
                self.store.enqueue(key, canister);
                None
            }
            Next::Finished => {
                if rec.outcome() == Some(Outcome::Deferred) {
                    self.count_deferral(&rec);
                }
                self.count(rec.subnet, |c| c.in_flight -= 1);
                self.finished(canister, &mut rec, now);
                None
            }
        };
        self.store.put(canister, rec);
        if action.is_none() {
            self.maybe_finish(now);
        }
        Ok(action)
    }

    fn count_deferral(&mut self, rec: &CanisterRecord) {
        let d = self.state.deferrals.get_or_insert_with(Default::default);
        match rec.failure.as_ref().map(Failure::cause) {
            Some(Cause::Manager) => d.manager += 1,
            _ => d.environment += 1,
        }
    }

    /// Counts manager-caused failures in a row; at [`MANAGER_FAULTS_TO_HOLD`] starts wait for
    /// a backoff that grows while they persist. Any other result ends the run.
    fn count_manager_fault(&mut self, fault: bool, now: Nanos) {
        if !fault {
            self.state.manager_faults = Some(0);
            return;
        }
        let count = self.state.manager_faults.unwrap_or(0) + 1;
        self.state.manager_faults = Some(count);
        if count >= MANAGER_FAULTS_TO_HOLD {
            let until =
                now.saturating_add(self.state.retry.backoff(count + 1 - MANAGER_FAULTS_TO_HOLD));
            let hold = Hold::ManagerFaults { count, until };
            if !matches!(self.state.hold, Some(Hold::ManagerFaults { .. })) {
                self.log(now, EventKind::Held(hold.clone()));
            }
            self.state.hold = Some(hold);
        }
    }

    /// Stops new starts; in-flight pipelines finish.
    pub fn pause(&mut self, now: Nanos) -> Result<(), ControlError> {
        if self.state.phase != Phase::Running {
            return Err(self.invalid());
        }
        self.state.phase = Phase::Paused;
        self.log(now, EventKind::Paused);
        Ok(())
    }

    /// Continues after a pause or a halt, of the rollout or of its subnets (which a running
    /// rollout may have); the consecutive-failure counts start again. Also
    /// lifts a hold for manager faults (the operator says the manager is fine again); the other
    /// holds follow the manager's condition and stay.
    pub fn resume(&mut self, now: Nanos) -> Result<(), ControlError> {
        let subnets_halted = self.any_subnet_halted();
        if matches!(self.state.hold, Some(Hold::ManagerFaults { .. })) {
            self.state.hold = None;
            self.state.manager_faults = Some(0);
            self.log(now, EventKind::HoldLifted);
            if self.state.phase == Phase::Running && !subnets_halted {
                return Ok(());
            }
        }
        let running_with_halts = self.state.phase == Phase::Running && subnets_halted;
        if !running_with_halts && !matches!(self.state.phase, Phase::Paused | Phase::Halted(_)) {
            return Err(self.invalid());
        }
        self.state.phase = Phase::Running;
        self.state.consecutive_failures = 0;
        for sub in &mut self.state.subnets {
            if sub.halted.take().is_some() {
                sub.consecutive_failures = 0;
            }
        }
        self.log(now, EventKind::Resumed);
        Ok(())
    }

    /// Drops pending canisters (over the next ticks, a bounded number each) and brings every
    /// in-flight one back to running: those not yet installed are started and cancelled, those
    /// already installed finish their health check (and restore, if unhealthy).
    pub fn abort(&mut self, now: Nanos) -> Result<(), ControlError> {
        if !matches!(
            self.state.phase,
            Phase::Running | Phase::Paused | Phase::Halted(_)
        ) {
            return Err(self.invalid());
        }
        self.state.phase = Phase::Aborting;
        self.log(now, EventKind::AbortRequested);
        Ok(())
    }

    /// An owner asks for their canister to be upgraded now. `member` is the registry's entry,
    /// needed when the canister is not in the cohort (its `subnet` places it; a subnet new to
    /// the rollout joins its list while there is room). The pipeline runs from the next ticks,
    /// ahead of its subnet's waves but under the same limits.
    pub fn request(
        &mut self,
        canister: Principal,
        member: Option<CohortMember>,
        now: Nanos,
    ) -> Result<Ticket, RequestError> {
        if !matches!(
            self.state.phase,
            Phase::Running | Phase::Paused | Phase::Halted(_)
        ) {
            return Err(RequestError::NotAccepting {
                phase: self.state.phase.clone(),
            });
        }
        if self.state.job != Job::Upgrade {
            return Err(RequestError::NotAnUpgrade);
        }
        if self.is_loading() {
            return Err(RequestError::Loading {
                left: self.store.staged_len(),
            });
        }
        let number = match self.store.get(&canister) {
            Some(rec) => match (&rec.step, rec.ticket) {
                (Step::Finished(outcome), _) => {
                    return Err(RequestError::AlreadyFinished { outcome: *outcome })
                }
                (_, Some(number)) => number,
                (Step::Pending, None) => {
                    let mut rec = rec;
                    let number = self.new_ticket();
                    if let Some(key) = rec.queued.take() {
                        self.store.dequeue(&key);
                    }
                    let key = QueueKey::new(QueueKind::Request, subnet_key(rec.subnet, number), 0);
                    rec.queued = Some(key);
                    rec.ticket = Some(number);
                    self.store.enqueue(key, canister);
                    self.store.put(canister, rec);
                    self.log(
                        now,
                        EventKind::Requested {
                            canister,
                            ticket: number,
                        },
                    );
                    number
                }
                (_, None) => {
                    // Already running: the ticket follows the running pipeline.
                    let mut rec = rec;
                    let number = self.new_ticket();
                    rec.ticket = Some(number);
                    self.store.put(canister, rec);
                    number
                }
            },
            None => {
                let m = member.ok_or(RequestError::NotInCohort)?;
                let subnet = self.subnet_index(m.subnet)?;
                let number = self.new_ticket();
                let key = QueueKey::new(QueueKind::Request, subnet_key(subnet, number), 0);
                let mut rec = CanisterRecord::new(Job::Upgrade, REQUEST_WAVE, m.recovery);
                rec.expected_module_hash = m.expected_module_hash;
                rec.snapshot = m.snapshot;
                rec.ticket = Some(number);
                rec.queued = Some(key);
                rec.subnet = subnet;
                self.store.put(canister, rec);
                self.store.enqueue(key, canister);
                self.state.requests.size += 1;
                self.count(subnet, |c| c.pending += 1);
                self.log(
                    now,
                    EventKind::Requested {
                        canister,
                        ticket: number,
                    },
                );
                number
            }
        };
        Ok(Ticket {
            rollout: self.state.id,
            number,
        })
    }

    /// Whether the canister's pipeline is in flight: started, not finished, not waiting as
    /// busy for a retry.
    pub fn is_in_flight(&self, canister: &Principal) -> bool {
        self.store.is_in_flight(canister)
    }

    /// Up to `limit` canisters whose pipeline is in flight, in id order, after `after`.
    pub fn in_flight_page(&self, after: Option<Principal>, limit: usize) -> Vec<Principal> {
        self.store.in_flight_page(after, limit)
    }

    /// A canister's record: its step, outcome and errors.
    pub fn record(&self, canister: &Principal) -> Option<CanisterRecord> {
        self.store.get(canister)
    }

    /// Records in id order, for paging through per-canister results.
    pub fn records(
        &self,
        after: Option<Principal>,
        limit: usize,
    ) -> Vec<(Principal, CanisterRecord)> {
        self.store.page(after, limit)
    }

    /// Events with sequence number at least `from`, oldest first.
    pub fn events(&self, from: u64, limit: usize) -> Vec<(u64, Event)> {
        self.store.events(from.max(self.state.events_first), limit)
    }

    /// The call a canister is waiting on, to perform it again when its callback was lost.
    pub fn current_action(&self, canister: &Principal) -> Option<Action> {
        let rec = self.store.get(canister)?;
        rec.outstanding?;
        let op = match (&rec.step, &rec.snapshot) {
            (Step::Finished(_), Some(snapshot)) => Op::DeleteSnapshot {
                snapshot: snapshot.clone(),
            },
            _ => pipeline::current_op(&rec, &self.state.target)?,
        };
        Some(Action {
            canister: *canister,
            op,
            subnet: self.subnet_id(&rec),
        })
    }

    /// After a manager upgrade lost the callbacks of calls in flight: up to `limit` of those
    /// calls, issued before `issued_before`, to perform again (every pipeline call is safe to
    /// repeat). Call it until it returns nothing; it must not be used while the original
    /// calls may still answer.
    pub fn reissue_outstanding(
        &mut self,
        issued_before: Nanos,
        now: Nanos,
        limit: usize,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        // Snapshot deletions, in the outstanding queue.
        let from = QueueKey::new(QueueKind::Outstanding, 0, 0);
        let to = QueueKey::new(QueueKind::Outstanding, issued_before, 0);
        while actions.len() < limit {
            let Some((key, canister)) = self.store.first_in(from, to) else {
                break;
            };
            self.store.dequeue(&key);
            let Some(action) = self.current_action(&canister) else {
                continue;
            };
            if let Some(mut rec) = self.store.get(&canister) {
                let key = self.key(QueueKind::Outstanding, now);
                rec.outstanding = Some(key);
                self.store.enqueue(key, canister);
                self.store.put(canister, rec);
            }
            actions.push(action);
        }
        // Pipelines: those in flight whose record holds a call issued before the upgrade (one
        // in a backoff holds none, and issues its call with a live callback when it wakes).
        'pages: while actions.len() < limit {
            let page = self.store.in_flight_page(self.reissue_after, 100);
            if page.is_empty() {
                break;
            }
            for canister in page {
                if actions.len() >= limit {
                    break 'pages;
                }
                self.reissue_after = Some(canister);
                let Some(mut rec) = self.store.get(&canister) else {
                    continue;
                };
                if rec.outstanding.is_none_or(|k| k.a >= issued_before) {
                    continue;
                }
                let Some(action) = self.current_action(&canister) else {
                    continue;
                };
                rec.outstanding = Some(self.key(QueueKind::Outstanding, now));
                self.store.put(canister, rec);
                actions.push(action);
            }
        }
        if actions.is_empty() {
            self.reissue_after = None;
        }
        actions
    }

    /// Whether ticks still have work: a running rollout, calls in flight, or queued entries.
    pub fn has_work(&self) -> bool {
        !self.state.phase.is_finished()
            || self.state.counts.in_flight > 0
            || self.first(QueueKind::Cleanup).is_some()
            || self.first(QueueKind::Outstanding).is_some()
    }

    /// When ticks next have work, if nothing can happen before then: after the rollout, the
    /// first kept snapshot's deletion; while a running rollout waits out the bake time after a
    /// stage, the end of the bake time, or an earlier retry, wake-up or deletion. `None` while
    /// anything may happen sooner (a call in flight, an owner's request, a hold that lifts by
    /// itself, a paused or halted rollout), so the driver may sleep until then instead of
    /// ticking through the keep time (a week by default) or a bake time (10 minutes).
    pub fn idle_until(&self) -> Option<Nanos> {
        let s = &self.state;
        if s.counts.in_flight > 0 || self.first(QueueKind::Outstanding).is_some() {
            return None;
        }
        let due = |queue| self.first(queue).map(|(key, _)| key.a);
        if s.phase.is_finished() {
            return due(QueueKind::Cleanup);
        }
        if s.phase != Phase::Running
            || s.hold.is_some()
            || self.is_loading()
            || due(QueueKind::Request).is_some()
        {
            return None;
        }
        let cw = s.current_wave as usize;
        if cw + 1 >= s.waves.len() {
            return None;
        }
        let bake_end = s.waves[cw].completed_at?.saturating_add(s.bake_ns);
        [
            Some(bake_end),
            due(QueueKind::Retry),
            due(QueueKind::Wake),
            due(QueueKind::Cleanup),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn status(&self, now: Nanos) -> RolloutStatus {
        let s = &self.state;
        let rate = self.rate_per_minute(now);
        let cw = s.current_wave as usize;
        let next_wave_at = s
            .waves
            .get(cw)
            .and_then(|w| w.completed_at)
            .filter(|_| cw + 1 < s.waves.len())
            .map(|t| t.saturating_add(s.bake_ns));
        let remaining = s.counts.pending + s.counts.in_flight + s.counts.busy;
        let bakes_left = s.waves.iter().skip(cw + 1).count() as u64;
        let eta_ns = if s.phase.is_finished() || remaining == 0 {
            Some(0)
        } else if rate > 0.0 {
            let work = (remaining as f64 / rate * MINUTE as f64) as u64;
            let bake_wait = next_wave_at.map_or(0, |t| t.saturating_sub(now));
            Some(
                work.saturating_add(bake_wait)
                    .saturating_add(s.bake_ns.saturating_mul(bakes_left.saturating_sub(1))),
            )
        } else {
            None
        };
        RolloutStatus {
            id: s.id,
            job: s.job,
            phase: s.phase.clone(),
            target: s.target.clone(),
            counts: s.counts.clone(),
            waves: s.waves.clone(),
            requests: s.requests.clone(),
            current_wave: s.current_wave,
            next_wave_at,
            rate_per_minute: rate,
            eta_ns,
            top_up_spent: s.cycles.budget.saturating_sub(s.budget_left),
            created_at: s.created_at,
            finished_at: s.finished_at,
            hold: s.hold.clone(),
            deferrals: s.deferrals.clone().unwrap_or_default(),
            stop_deadline_ns: s.stop_deadline_ns,
            limits: Some(s.limits.clone()),
            failure: Some(s.failure.clone()),
            subnets: s.subnets.iter().map(SubnetProgress::from).collect(),
        }
    }

    /// The manager gives a canister this long to stop (`None`: the IC's own timeout).
    pub fn stop_deadline(&self) -> Option<Nanos> {
        self.state.stop_deadline_ns
    }

    // ----- internals -----

    /// Applies `f` to the rollout's counts and to those of the record's subnet.
    fn count(&mut self, subnet: u8, f: impl Fn(&mut StateCounts)) {
        f(&mut self.state.counts);
        if let Some(s) = self.state.subnets.get_mut(subnet as usize) {
            f(&mut s.counts);
        }
    }

    fn any_subnet_halted(&self) -> bool {
        self.state.subnets.iter().any(|s| s.halted.is_some())
    }

    /// The index of `subnet`, listed now if it is new and the list has room.
    fn subnet_index(&mut self, subnet: Option<Principal>) -> Result<u8, RequestError> {
        let subnets = &mut self.state.subnets;
        if let Some(i) = subnets.iter().position(|s| s.subnet == subnet) {
            return Ok(i as u8);
        }
        if subnet.is_some() && subnets.iter().filter(|s| s.subnet.is_some()).count() >= MAX_SUBNETS
        {
            return Err(RequestError::TooManySubnets);
        }
        let waves = self.state.waves.len();
        subnets.push(SubnetState::new(subnet, waves, &self.state.limits));
        Ok((subnets.len() - 1) as u8)
    }

    fn ctx(&self) -> Ctx<'_> {
        let s = &self.state;
        Ctx {
            manager: s.manager,
            target: &s.target,
            take_snapshot: s.snapshot.take,
            cycles: &s.cycles,
            budget_left: s.budget_left,
            retry: &s.retry,
            aborting: matches!(s.phase, Phase::Aborting | Phase::Aborted),
            manager_low: s.manager_view.as_ref().is_some_and(ManagerView::low),
        }
    }

    fn invalid(&self) -> ControlError {
        ControlError::InvalidPhase {
            phase: self.state.phase.clone(),
        }
    }

    fn key(&mut self, queue: QueueKind, at: Nanos) -> QueueKey {
        self.state.seq += 1;
        QueueKey::new(queue, at, self.state.seq)
    }

    fn new_ticket(&mut self) -> u64 {
        self.state.next_ticket += 1;
        self.state.next_ticket
    }

    fn first(&self, queue: QueueKind) -> Option<(QueueKey, Principal)> {
        self.store.first_in(
            QueueKey::new(queue, 0, 0),
            QueueKey::new(queue, u64::MAX, u64::MAX),
        )
    }

    fn first_due(&self, queue: QueueKind, now: Nanos) -> Option<(QueueKey, Principal)> {
        self.store.first_in(
            QueueKey::new(queue, 0, 0),
            QueueKey::new(queue, now, u64::MAX),
        )
    }

    /// Records a pipeline's call as outstanding, with the time it is issued, and returns it.
    /// The record alone says so: the canister is in the in-flight set from its pipeline's
    /// start to its end, so a call costs no queue entry.
    fn issue(
        &mut self,
        canister: Principal,
        rec: &mut CanisterRecord,
        op: Op,
        now: Nanos,
    ) -> Action {
        rec.outstanding = Some(self.key(QueueKind::Outstanding, now));
        Action {
            canister,
            op,
            subnet: self.subnet_id(rec),
        }
    }

    /// The subnet of a canister's record (its index into the rollout's subnets).
    fn subnet_id(&self, rec: &CanisterRecord) -> Option<Principal> {
        self.state
            .subnets
            .get(usize::from(rec.subnet))
            .and_then(|s| s.subnet)
    }

    /// Records a finished canister's snapshot deletion as outstanding, in the outstanding
    /// queue (a finished canister is not in the in-flight set), and returns it.
    fn issue_delete(
        &mut self,
        canister: Principal,
        rec: &mut CanisterRecord,
        snapshot: Vec<u8>,
        now: Nanos,
    ) -> Action {
        let key = self.key(QueueKind::Outstanding, now);
        rec.outstanding = Some(key);
        self.store.enqueue(key, canister);
        Action {
            canister,
            op: Op::DeleteSnapshot { snapshot },
            subnet: self.subnet_id(rec),
        }
    }

    fn wake_due(&mut self, now: Nanos, actions: &mut Vec<Action>) {
        while let Some((key, canister)) = self.first_due(QueueKind::Wake, now) {
            self.store.dequeue(&key);
            let Some(mut rec) = self.store.get(&canister) else {
                continue;
            };
            if rec.queued != Some(key) || rec.outstanding.is_some() {
                continue;
            }
            rec.queued = None;
            if let Some(op) = pipeline::current_op(&rec, &self.state.target) {
                actions.push(self.issue(canister, &mut rec, op, now));
            }
            self.store.put(canister, rec);
        }
    }

    fn cleanups_due(&mut self, now: Nanos, actions: &mut Vec<Action>) {
        for _ in 0..CLEANUPS_PER_TICK {
            let Some((key, canister)) = self.first_due(QueueKind::Cleanup, now) else {
                break;
            };
            self.store.dequeue(&key);
            let Some(mut rec) = self.store.get(&canister) else {
                continue;
            };
            if rec.queued != Some(key) || rec.outstanding.is_some() {
                continue;
            }
            rec.queued = None;
            if let Some(snapshot) = rec.snapshot.clone() {
                actions.push(self.issue_delete(canister, &mut rec, snapshot, now));
            }
            self.store.put(canister, rec);
        }
    }

    fn cancel_queued(&mut self, now: Nanos) {
        let mut budget = CANCEL_PER_TICK;
        for queue in [QueueKind::Request, QueueKind::Pending, QueueKind::Retry] {
            while budget > 0 {
                let Some((key, canister)) = self.first(queue) else {
                    break;
                };
                budget -= 1;
                self.store.dequeue(&key);
                let Some(mut rec) = self.store.get(&canister) else {
                    continue;
                };
                rec.queued = None;
                match rec.step {
                    Step::Pending => {
                        self.count(rec.subnet, |c| c.pending -= 1);
                        self.subnet_wave_started(&rec);
                    }
                    Step::Busy => self.count(rec.subnet, |c| c.busy -= 1),
                    _ => continue,
                }
                rec.step = Step::Finished(Outcome::Cancelled);
                rec.finished_at = Some(now);
                self.finished(canister, &mut rec, now);
                self.store.put(canister, rec);
            }
        }
    }

    fn open_wave(&mut self, wave: u32, now: Nanos) {
        self.state.current_wave = wave;
        let w = &mut self.state.waves[wave as usize];
        w.opened_at = Some(now);
        let (label, size) = (w.label, w.size);
        self.log(now, EventKind::WaveOpened { wave, label, size });
        self.check_wave_complete(wave, now);
    }

    fn advance_waves(&mut self, now: Nanos) {
        loop {
            let cw = self.state.current_wave as usize;
            let Some(done_at) = self.state.waves[cw].completed_at else {
                return;
            };
            if cw + 1 >= self.state.waves.len() || now < done_at.saturating_add(self.state.bake_ns)
            {
                return;
            }
            self.open_wave(cw as u32 + 1, now);
        }
    }

    fn start_pipelines(&mut self, now: Nanos, actions: &mut Vec<Action>) {
        let limits = &self.state.limits;
        let room = (limits.max_in_flight as u64).saturating_sub(self.state.counts.in_flight);
        let started = self.state.starts_since_tick.unwrap_or(0);
        let left = limits.max_starts_per_tick.saturating_sub(started);
        // Never start a pipeline the manager could not finish: each one in flight keeps its
        // reserve of cycles (a canister it stopped must always be started again).
        let affordable = self
            .state
            .manager_view
            .as_ref()
            .map_or(u64::MAX, ManagerView::affordable);
        let room = room.min(affordable.saturating_sub(self.state.counts.in_flight));
        let mut allowed = room.min(left as u64);
        if allowed == 0 || !self.state.bucket.available(now) {
            return;
        }
        self.move_due_retries(now);
        // Starting only takes entries out of the queues, and a subnet's limits only tighten
        // during a step: a subnet found with nothing to start is not looked up again.
        let mut exhausted = [false; MAX_SUBNETS + 1];
        while allowed > 0 && self.state.bucket.available(now) {
            let Some((key, canister)) = self.next_to_start(now, &mut exhausted) else {
                break;
            };
            self.store.dequeue(&key);
            let Some(mut rec) = self.store.get(&canister) else {
                continue;
            };
            if rec.queued != Some(key) || !matches!(rec.step, Step::Pending | Step::Busy) {
                continue;
            }
            self.state.bucket.try_take(now);
            if let Some(bucket) = self
                .state
                .subnets
                .get_mut(rec.subnet as usize)
                .and_then(|s| s.bucket.as_mut())
            {
                bucket.try_take(now);
            }
            allowed -= 1;
            let counted = self.state.starts_since_tick.unwrap_or(0);
            self.state.starts_since_tick = Some(counted.saturating_add(1));
            rec.queued = None;
            if rec.step == Step::Busy {
                self.count(rec.subnet, |c| c.busy -= 1);
            } else {
                self.count(rec.subnet, |c| c.pending -= 1);
                self.subnet_wave_started(&rec);
                self.wave_mut(rec.wave).started += 1;
            }
            self.count(rec.subnet, |c| c.in_flight += 1);
            let op = pipeline::begin(&mut rec, now);
            actions.push(self.issue(canister, &mut rec, op, now));
            self.store.put(canister, rec);
        }
    }

    /// A pending canister of `rec`'s wave and subnet left the queue.
    fn subnet_wave_started(&mut self, rec: &CanisterRecord) {
        if rec.wave == REQUEST_WAVE {
            return;
        }
        if let Some(w) = self
            .state
            .subnets
            .get_mut(rec.subnet as usize)
            .and_then(|s| s.waves.get_mut(rec.wave as usize))
        {
            w.pending = w.pending.saturating_sub(1);
        }
    }

    /// Moves busy canisters whose retry is due into their subnet's start lane (after its owner
    /// requests), so that one subnet's retries never wait behind another's: the retry queue
    /// is ordered by time, across subnets.
    fn move_due_retries(&mut self, now: Nanos) {
        for _ in 0..RETRIES_MOVED_PER_TICK {
            let Some((key, canister)) = self.first_due(QueueKind::Retry, now) else {
                break;
            };
            self.store.dequeue(&key);
            let Some(mut rec) = self.store.get(&canister) else {
                continue;
            };
            if rec.queued != Some(key) {
                continue;
            }
            self.state.seq += 1;
            let ready = QueueKey::new(
                QueueKind::Request,
                subnet_key(rec.subnet, READY_RETRY),
                self.state.seq,
            );
            rec.queued = Some(ready);
            self.store.enqueue(ready, canister);
            self.store.put(canister, rec);
        }
    }

    /// The next canister to start, round robin over the subnets that may start one: each
    /// subnet's owner requests, then its due retries, then its canisters of the waves opened
    /// so far, in wave order. O(subnets + waves) lookups, whatever the fleet's size.
    fn next_to_start(
        &mut self,
        now: Nanos,
        exhausted: &mut [bool; MAX_SUBNETS + 1],
    ) -> Option<(QueueKey, Principal)> {
        let n = self.state.subnets.len().clamp(1, MAX_SUBNETS + 1);
        for _ in 0..n {
            let s = self.state.subnet_cursor as usize % n;
            self.state.subnet_cursor = ((s + 1) % n) as u8;
            if exhausted[s] {
                continue;
            }
            match self.next_in_subnet(s as u8, now) {
                Some(found) => return Some(found),
                None => exhausted[s] = true,
            }
        }
        None
    }

    fn next_in_subnet(&self, subnet: u8, now: Nanos) -> Option<(QueueKey, Principal)> {
        let state = &self.state;
        if let Some(sub) = state.subnets.get(subnet as usize) {
            if sub.halted.is_some() {
                return None;
            }
            if let Some(limits) = &state.limits.per_subnet {
                if sub.counts.in_flight >= u64::from(limits.max_in_flight) {
                    return None;
                }
            }
            if sub.bucket.as_ref().is_some_and(|b| !b.available(now)) {
                return None;
            }
        }
        let (lo, hi) = (subnet_key(subnet, 0), subnet_key(subnet + 1, 0));
        let request = self.store.first_in(
            QueueKey::new(QueueKind::Request, lo, 0),
            QueueKey::new(QueueKind::Request, hi, 0),
        );
        if request.is_some() {
            return request;
        }
        let cw = state.current_wave as usize;
        state.waves[cw].opened_at?;
        let sub = state.subnets.get(subnet as usize);
        for w in 0..=cw {
            // Only waves with some of this subnet's canisters left (an earlier one when the
            // subnet halted while it was current and resumed later).
            if sub.is_some_and(|s| s.waves.get(w).is_none_or(|sw| sw.pending == 0)) {
                continue;
            }
            let found = self.store.first_in(
                QueueKey::new(QueueKind::Pending, w as u64, lo),
                QueueKey::new(QueueKind::Pending, w as u64, hi),
            );
            if found.is_some() {
                return found;
            }
        }
        None
    }

    fn wave_mut(&mut self, wave: u32) -> &mut WaveProgress {
        if wave == REQUEST_WAVE {
            &mut self.state.requests
        } else {
            &mut self.state.waves[wave as usize]
        }
    }

    /// Bookkeeping for a record that just reached `Finished`.
    fn finished(&mut self, canister: Principal, rec: &mut CanisterRecord, now: Nanos) {
        let Some(outcome) = rec.outcome() else {
            return;
        };
        self.state.counts.add_outcome(outcome);
        let wave = rec.wave;
        let w = self.wave_mut(wave);
        w.outcomes.add_outcome(outcome);
        let (failures, size) = (w.failures(), w.size);
        match outcome {
            Outcome::Done | Outcome::Restored => self.state.consecutive_failures = 0,
            o if o.is_failure() => self.state.consecutive_failures += 1,
            _ => {}
        }
        if let Some(sub) = self.state.subnets.get_mut(rec.subnet as usize) {
            sub.counts.add_outcome(outcome);
            if let Some(sw) = sub.waves.get_mut(wave as usize) {
                sw.finished += 1;
                if outcome.is_failure() {
                    sw.failures += 1;
                }
            }
            match outcome {
                Outcome::Done | Outcome::Restored => sub.consecutive_failures = 0,
                o if o.is_failure() => sub.consecutive_failures += 1,
                _ => {}
            }
        }
        if outcome != Outcome::Done && outcome != Outcome::Restored {
            let quiet_cancel = outcome == Outcome::Cancelled && rec.started_at.is_none();
            if !quiet_cancel {
                self.log(
                    now,
                    EventKind::CanisterFinished {
                        canister,
                        outcome,
                        failure: rec.failure.clone(),
                    },
                );
            }
        }
        if outcome == Outcome::Done && rec.snapshot_fresh {
            if let Some(keep) = self.state.snapshot.keep_ns {
                let key = self.key(QueueKind::Cleanup, now.saturating_add(keep));
                rec.queued = Some(key);
                self.store.enqueue(key, canister);
            }
        }
        if outcome.is_failure() {
            match self.state.failure.halt_scope {
                HaltScope::Fleet => self.check_halt(wave, failures, size, now),
                HaltScope::Subnet => self.check_subnet_halt(wave, rec.subnet, now),
            }
        }
        if wave != REQUEST_WAVE {
            self.check_wave_complete(wave, now);
        }
    }

    fn check_halt(&mut self, wave: u32, failures: u64, size: u64, now: Nanos) {
        if !matches!(self.state.phase, Phase::Running | Phase::Paused) {
            return;
        }
        let consecutive = self.state.consecutive_failures;
        if let Some(reason) = self.trips(wave, failures, size, consecutive) {
            self.state.phase = Phase::Halted(reason.clone());
            self.log(now, EventKind::Halted(reason));
        }
    }

    /// The failure policy's verdict on these counts.
    fn trips(&self, wave: u32, failures: u64, size: u64, consecutive: u32) -> Option<HaltReason> {
        let f = &self.state.failure;
        if wave != REQUEST_WAVE && failures * 100 > f.max_failed_percent as u64 * size {
            Some(HaltReason::WaveFailureThreshold {
                wave,
                failed: failures,
                size,
            })
        } else if f.max_consecutive_failures > 0 && consecutive >= f.max_consecutive_failures {
            Some(HaltReason::ConsecutiveFailures { count: consecutive })
        } else {
            None
        }
    }

    /// Under [`HaltScope::Subnet`]: the checks over the subnet's own counts; a subnet that
    /// trips them halts alone, and the phase stays.
    fn check_subnet_halt(&mut self, wave: u32, subnet: u8, now: Nanos) {
        if !matches!(self.state.phase, Phase::Running | Phase::Paused) {
            return;
        }
        let Some(sub) = self.state.subnets.get(subnet as usize) else {
            return;
        };
        if sub.halted.is_some() {
            return;
        }
        let (failures, size) = sub
            .waves
            .get(wave as usize)
            .map_or((0, 0), |w| (w.failures, w.size));
        let Some(reason) = self.trips(wave, failures, size, sub.consecutive_failures) else {
            return;
        };
        let sub = &mut self.state.subnets[subnet as usize];
        sub.halted = Some(reason.clone());
        let subnet = sub.subnet;
        self.log(now, EventKind::SubnetHalted { subnet, reason });
        // The halted subnet's canisters no longer hold the current wave open.
        let cw = self.state.current_wave;
        self.check_wave_complete(cw, now);
    }

    fn check_wave_complete(&mut self, wave: u32, now: Nanos) {
        let all_finished = {
            let w = &self.state.waves[wave as usize];
            w.outcomes.finished() == w.size
        };
        let settled = all_finished
            || (self.any_subnet_halted()
                && self.state.subnets.iter().all(|s| s.settled(wave as usize)));
        let w = &mut self.state.waves[wave as usize];
        if w.completed_at.is_none() && settled {
            w.completed_at = Some(now);
            let failures = w.failures();
            self.log(now, EventKind::WaveCompleted { wave, failures });
        }
    }

    fn maybe_finish(&mut self, now: Nanos) {
        let c = &self.state.counts;
        if c.in_flight > 0 {
            return;
        }
        let left = c.busy > 0 || c.pending > 0;
        let halted = self.state.subnets.iter().find(|s| s.halted.is_some());
        if left || (halted.is_some() && self.state.phase == Phase::Running) {
            // What is left, if anything, belongs to halted subnets: the rollout halts once the
            // others are done with every wave.
            let Some(first) = halted else {
                return;
            };
            let others_done = self
                .state
                .subnets
                .iter()
                .all(|s| s.halted.is_some() || s.counts.pending + s.counts.busy == 0);
            let waves_done = self.state.waves.iter().all(|w| w.completed_at.is_some());
            if self.state.phase == Phase::Running && others_done && waves_done {
                let reason = first
                    .halted
                    .as_ref()
                    .expect("a halted subnet")
                    .on_subnet(first.subnet);
                self.state.phase = Phase::Halted(reason.clone());
                self.log(now, EventKind::Halted(reason));
            }
            return;
        }
        let kind = match self.state.phase {
            Phase::Aborting => {
                self.state.phase = Phase::Aborted;
                EventKind::Aborted
            }
            Phase::Running if self.state.waves.iter().all(|w| w.completed_at.is_some()) => {
                self.state.phase = Phase::Completed;
                EventKind::Completed
            }
            _ => return,
        };
        self.state.finished_at = Some(now);
        self.log(now, kind);
    }

    fn sample_rate(&mut self, now: Nanos) {
        let finished = self.state.counts.finished();
        let samples = &mut self.state.rate_samples;
        if samples
            .last()
            .is_some_and(|&(t, _)| now < t.saturating_add(RATE_SAMPLE_EVERY))
        {
            return;
        }
        samples.push((now, finished));
        if samples.len() > RATE_SAMPLES {
            samples.remove(0);
        }
    }

    fn rate_per_minute(&self, now: Nanos) -> f64 {
        let Some(&(t0, f0)) = self.state.rate_samples.first() else {
            return 0.0;
        };
        let elapsed = now.saturating_sub(t0);
        if elapsed == 0 {
            return 0.0;
        }
        let finished = self.state.counts.finished().saturating_sub(f0);
        finished as f64 * MINUTE as f64 / elapsed as f64
    }

    fn log(&mut self, at: Nanos, kind: EventKind) {
        let seq = self.state.events_next;
        self.state.events_next += 1;
        self.store.push_event(seq, Event { at, kind });
        self.trim_events();
    }

    fn trim_events(&mut self) {
        while self.state.events_next - self.state.events_first > self.state.event_capacity as u64 {
            self.store.drop_event(self.state.events_first);
            self.state.events_first += 1;
        }
    }
}
