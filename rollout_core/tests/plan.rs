//! Plan validation and cohort selection.

mod common;

use common::*;
use rollout_core::plan::{HashField, LimitName, ListName};
use rollout_core::*;

fn plan() -> RolloutPlan {
    RolloutPlan::new(release(NEW))
}

type Edit = Box<dyn Fn(&mut RolloutPlan)>;

#[test]
fn invalid_plans_get_typed_errors() {
    let cases: Vec<(Edit, PlanError)> = vec![
        (
            Box::new(|p| p.target.module_hash = vec![1; 31]),
            PlanError::InvalidModuleHash {
                field: HashField::Target,
                len: 31,
            },
        ),
        (
            Box::new(|p| p.target.version = " ".into()),
            PlanError::EmptyVersion,
        ),
        (
            Box::new(|p| p.from_release = Some(hash(NEW))),
            PlanError::FromEqualsTarget,
        ),
        (Box::new(|p| p.waves_percent.clear()), PlanError::NoWaves),
        (
            Box::new(|p| p.waves_percent = vec![0, 100]),
            PlanError::WavePercentOutOfRange {
                index: 0,
                percent: 0,
            },
        ),
        (
            Box::new(|p| p.waves_percent = vec![10, 10, 100]),
            PlanError::WavesNotIncreasing { index: 1 },
        ),
        (
            Box::new(|p| p.waves_percent = vec![10, 50]),
            PlanError::LastWaveNotFull { percent: 50 },
        ),
        (
            Box::new(|p| p.canary = Canary::Count(0)),
            PlanError::CanaryCountZero,
        ),
        (
            Box::new(|p| p.canary = Canary::List(vec![])),
            PlanError::EmptyCanaryList,
        ),
        (
            Box::new(|p| p.exclude = vec![pid(1), pid(1)]),
            PlanError::DuplicateInList {
                list: ListName::Exclude,
                canister: pid(1),
            },
        ),
        (
            Box::new(|p| {
                p.exclude = vec![pid(1)];
                p.canary = Canary::List(vec![pid(1)]);
            }),
            PlanError::ListOverlap { canister: pid(1) },
        ),
        (
            Box::new(|p| p.limits.max_in_flight = 0),
            PlanError::ZeroLimit {
                limit: LimitName::MaxInFlight,
            },
        ),
        (
            Box::new(|p| p.failure.max_failed_percent = 101),
            PlanError::ThresholdOutOfRange { percent: 101 },
        ),
        (
            Box::new(|p| p.cycles.top_up_to = 1),
            PlanError::TopUpBelowMinimum,
        ),
        (
            Box::new(|p| p.retry.stop_attempts = 0),
            PlanError::InvalidRetry,
        ),
    ];
    for (edit, want) in cases {
        let mut p = plan();
        edit(&mut p);
        assert_eq!(p.validate(), Err(want.clone()));
        assert_eq!(select(&p, &fleet(10)).err(), Some(want));
    }
    assert_eq!(plan().validate(), Ok(()));
}

#[test]
fn selection_respects_policies_lists_and_from_release() {
    let mut fleet = fleet(10);
    fleet[0].policy = UpgradePolicy::Manual;
    fleet[1].policy = UpgradePolicy::Pinned(hash(OLD));
    fleet[2].policy = UpgradePolicy::Pinned(hash(NEW)); // pinned to the target: allowed
    fleet[3].module_hash = Some(hash(NEW));
    fleet[4].module_hash = Some(hash(7));
    let mut p = plan();
    p.from_release = Some(hash(OLD));
    p.canary = Canary::None;
    p.waves_percent = vec![100];
    p.exclude = vec![pid(5)];
    let c = select(&p, &fleet).unwrap();
    let s = &c.summary;
    assert_eq!(
        (
            s.offered,
            s.selected,
            s.manual,
            s.pinned,
            s.already_on_target,
            s.other_release,
            s.excluded
        ),
        (10, 5, 1, 1, 1, 1, 1)
    );
    let ids: Vec<_> = c.waves[0].members.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![pid(2), pid(6), pid(7), pid(8), pid(9)]);

    // Manual canisters join when named; the include list limits the candidates.
    p.include = Some(vec![pid(0), pid(6)]);
    let c = select(&p, &fleet).unwrap();
    let ids: Vec<_> = c.waves[0].members.iter().map(|m| m.id).collect();
    assert_eq!(ids, vec![pid(0), pid(6)]);
    assert_eq!(c.summary.not_included, 7);
}

#[test]
fn explicit_canary_must_be_eligible() {
    let mut fleet = fleet(10);
    fleet[1].policy = UpgradePolicy::Pinned(hash(OLD));
    let mut p = plan();
    p.canary = Canary::List(vec![pid(1)]);
    assert_eq!(
        select(&p, &fleet).err(),
        Some(PlanError::CanaryNotEligible {
            canister: pid(1),
            reason: plan::Ineligible::Pinned
        })
    );
    p.canary = Canary::List(vec![pid(42)]);
    assert_eq!(
        select(&p, &fleet).err(),
        Some(PlanError::CanaryNotEligible {
            canister: pid(42),
            reason: plan::Ineligible::NotInFleet
        })
    );
    p.canary = Canary::List(vec![pid(7), pid(3)]);
    let c = select(&p, &fleet).unwrap();
    assert_eq!(c.waves[0].label, WaveLabel::Canary);
    assert_eq!(
        c.waves[0].members.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![pid(3), pid(7)]
    );
    assert!(c.waves[1..]
        .iter()
        .all(|w| w.members.iter().all(|m| m.id != pid(3))));
}

#[test]
fn waves_on_100k_are_deterministic_and_cumulative() {
    let mut fleet = fleet(100_000);
    let mut p = plan();
    p.canary = Canary::Count(100);
    let a = select(&p, &fleet).unwrap();
    let sizes: Vec<usize> = a.waves.iter().map(|w| w.members.len()).collect();
    // 99,900 after the canary: 1% = 999, 10% = 9,990 cumulative, 50% = 49,950, 100%.
    assert_eq!(sizes, vec![100, 999, 8_991, 39_960, 49_950]);
    // Ordered by id, whatever order the registry offers them in.
    fleet.reverse();
    let b = select(&p, &fleet).unwrap();
    assert_eq!(a, b);
    let all: Vec<Principal> = a
        .waves
        .iter()
        .flat_map(|w| w.members.iter().map(|m| m.id))
        .collect();
    assert!(all.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn empty_or_duplicated_cohorts_are_refused() {
    let mut p = plan();
    p.from_release = Some(hash(9));
    assert_eq!(select(&p, &fleet(10)).err(), Some(PlanError::EmptyCohort));
    let mut f = fleet(3);
    f.push(f[1].clone());
    assert_eq!(
        select(&plan(), &f).err(),
        Some(PlanError::DuplicateCanister { canister: pid(1) })
    );
}
