//! The release policy on ic_sim: under a quorum, no single operator publishes, rolls out, makes
//! the default, changes operators or changes the policy; under a notice, a rollout to a new
//! release waits, and users see it coming from the manager and from their own canister.
//! Asserted from outside: releases, rollout status, module hashes, operators, the policy.

use std::time::Duration;

use candid::Principal;
use fleet_api::governance::method::{
    ApproveRequest, CancelRequest, GetReleasePolicy, ListRequests, PendingReleases,
    SetReleasePolicy, ShortenNotice,
};
use fleet_api::governance::*;
use fleet_api::manager::method::{
    BeginRelease, FinalizeRelease, GetRelease, ListOperators, SetDefaultRelease, SetOperator,
    UploadReleaseChunk,
};
use fleet_api::manager::*;
use fleet_api::rollout::method::{GetRolloutStatus, StartRollout};
use fleet_api::rollout::StartRolloutError;
use fleet_api::user::method::PendingReleases as UserPendingReleases;
use fleet_tests::rollout::one_wave_plan;
use fleet_tests::{call_on, sha256, user, user_wasm, Fleet};

const DAY: u64 = 86_400;

/// A fleet of three canisters on 1.0.0 whose operators `a`, `b` and `c` hold every role, under
/// `policy` (set by the controller while the quorum was still 1).
fn governed_fleet(policy: ReleasePolicy) -> (Fleet, [Principal; 3]) {
    let fleet = Fleet::unlimited();
    fleet.publish_default("1.0.0", &user_wasm(false));
    let ops = [user(1), user(2), user(3)];
    for op in ops {
        let operator = Operator {
            principal: op,
            roles: vec![Role::Admin, Role::Releaser, Role::Deployer],
        };
        fleet
            .ask::<SetOperator>(fleet.controller, (operator,))
            .into_result()
            .unwrap();
    }
    fleet.provision(0, 3);
    fleet
        .ask::<SetReleasePolicy>(fleet.controller, (policy,))
        .into_result()
        .unwrap();
    (fleet, ops)
}

/// Uploads `wasm` as `version` by `sender`, up to (not including) the finalize.
fn upload(fleet: &Fleet, sender: Principal, version: &str, wasm: &[u8]) {
    let begin = BeginUpload {
        version: version.into(),
        total_size: wasm.len() as u64,
        sha256: sha256(wasm),
        notes: String::new(),
        interface: None,
    };
    fleet
        .ask::<BeginRelease>(sender, (begin,))
        .into_result()
        .unwrap();
    for (index, chunk) in wasm.chunks(fleet_tests::CHUNK).enumerate() {
        let arg = UploadReleaseChunkArg {
            version: version.into(),
            index: index as u32,
            bytes: chunk.to_vec(),
        };
        fleet
            .ask::<UploadReleaseChunk>(sender, (arg,))
            .into_result()
            .unwrap();
    }
}

fn approve(fleet: &Fleet, sender: Principal, id: u64) -> Result<Request, ApproveRequestError> {
    fleet.ask::<ApproveRequest>(sender, (id,)).into_result()
}

fn module_hashes(fleet: &Fleet) -> Vec<Vec<u8>> {
    let page = fleet
        .ask::<fleet_api::manager::method::ListUserCanisters>(
            fleet.controller,
            (ListUserCanistersArg {
                filter: CanisterFilter::All,
                start_after: None,
                limit: None,
            },),
        )
        .into_result()
        .unwrap();
    page.canisters
        .iter()
        .map(|c| fleet.sim.module_hash(c.canister_id).unwrap().to_vec())
        .collect()
}

/// Publishing and the first rollout to a release each wait for a second operator; the same
/// operator approving twice counts once; once approved, the release is published and the
/// rollout upgrades every canister.
#[test]
fn publishing_and_a_first_rollout_need_a_quorum_and_one_operator_counts_once() {
    let (fleet, [a, b, _]) = governed_fleet(ReleasePolicy {
        quorum: 2,
        notice_secs: 0,
    });
    let v2 = user_wasm(true);
    upload(&fleet, a, "2.0.0", &v2);
    let request = match fleet
        .ask::<FinalizeRelease>(a, ("2.0.0".to_string(),))
        .into_result()
    {
        Err(FinalizeReleaseError::ApprovalRequired(r)) => *r,
        other => panic!("publishing under a quorum is a request: {other:?}"),
    };
    assert_eq!(
        (request.approvals.clone(), request.quorum, request.role),
        (vec![a], 2, Role::Releaser)
    );
    assert_eq!(fleet.ask::<GetRelease>(a, ("2.0.0".to_string(),)), None);
    assert_eq!(
        approve(&fleet, a, request.id),
        Err(ApproveRequestError::AlreadyApproved)
    );
    // Someone without a role is dropped at ingress; the request is unchanged.
    fleet.refused_at_ingress::<ApproveRequest>(user(9), (request.id,));
    assert_eq!(fleet.ask::<GetRelease>(a, ("2.0.0".to_string(),)), None);
    let done = approve(&fleet, b, request.id).unwrap();
    assert!(
        matches!(done.state, RequestState::Executed { .. }),
        "{done:?}"
    );
    assert_eq!(done.approvals, vec![a, b]);
    let published = fleet.ask::<GetRelease>(a, ("2.0.0".to_string(),)).unwrap();
    assert_eq!(published.sha256, sha256(&v2));

    // The first rollout to 2.0.0 is a request too: nothing starts before the quorum.
    let before = module_hashes(&fleet);
    let plan = one_wave_plan("2.0.0", 10);
    let request = match fleet.ask::<StartRollout>(a, (plan,)).into_result() {
        Err(StartRolloutError::ApprovalRequired(r)) => *r,
        other => panic!("a first rollout under a quorum is a request: {other:?}"),
    };
    for _ in 0..20 {
        fleet.step();
    }
    assert_eq!(
        fleet
            .ask::<GetRolloutStatus>(fleet.controller, ())
            .into_result()
            .unwrap(),
        None,
        "no rollout before the quorum"
    );
    assert_eq!(module_hashes(&fleet), before);
    let done = approve(&fleet, b, request.id).unwrap();
    assert!(
        matches!(done.state, RequestState::Executed { .. }),
        "{done:?}"
    );
    fleet.run_to_rest(500);
    assert_eq!(module_hashes(&fleet), vec![sha256(&v2); 3]);

    // A rollback cannot reach a release no rollout has used: under the quorum that is a
    // rollout to approve.
    let v3 = fleet_tests::padded(&v2, 16);
    upload(&fleet, a, "3.0.0", &v3);
    let Err(FinalizeReleaseError::ApprovalRequired(publish)) = fleet
        .ask::<FinalizeRelease>(a, ("3.0.0".to_string(),))
        .into_result()
    else {
        panic!("publishing is a request")
    };
    approve(&fleet, b, publish.id).unwrap();
    let to_new = fleet_api::rollout::RollbackArg::ToRelease {
        to_version: "3.0.0".into(),
        limits: None,
    };
    assert_eq!(
        fleet
            .ask::<fleet_api::rollout::method::Rollback>(a, (to_new,))
            .into_result(),
        Err(fleet_api::rollout::RollbackError::NewRelease {
            version: "3.0.0".into()
        })
    );
    assert_eq!(module_hashes(&fleet), vec![sha256(&v2); 3]);

    // A rollout back to a release a rollout has used needs no approval.
    let back = fleet
        .ask::<StartRollout>(a, (one_wave_plan("1.0.0", 10),))
        .into_result();
    assert!(back.is_ok(), "{back:?}");
    let requests = fleet
        .ask::<ListRequests>(a, (ListRequestsArg::default(),))
        .into_result()
        .unwrap();
    assert_eq!(requests.len(), 3, "the log keeps every request");
}

/// A rollout to a new release waits out the notice, during which the manager and each user
/// canister show the release and when it may start; an admin quorum may shorten it.
#[test]
fn a_new_release_waits_out_its_notice_and_users_see_it_coming() {
    let (fleet, [a, b, _]) = governed_fleet(ReleasePolicy {
        quorum: 1,
        notice_secs: DAY,
    });
    let v2 = user_wasm(true);
    let meta = fleet.publish(a, "2.0.0", &v2);
    let may_start = meta.uploaded_at + DAY * 1_000_000_000;
    match fleet
        .ask::<StartRollout>(a, (one_wave_plan("2.0.0", 10),))
        .into_result()
    {
        Err(StartRolloutError::NoticePeriod {
            version,
            may_start_at_ns,
        }) => assert_eq!((version.as_str(), may_start_at_ns), ("2.0.0", may_start)),
        other => panic!("the notice refuses the rollout: {other:?}"),
    }
    // Making it the default is refused during the notice too.
    assert_eq!(
        fleet
            .ask::<SetDefaultRelease>(a, ("2.0.0".to_string(),))
            .into_result(),
        Err(SetDefaultReleaseError::NoticePeriod {
            may_start_at_ns: may_start
        })
    );
    let expected = vec![PendingRelease {
        version: "2.0.0".into(),
        sha256: serde_bytes::ByteBuf::from(sha256(&v2)),
        published_at_ns: meta.uploaded_at,
        may_start_at_ns: may_start,
    }];
    assert_eq!(
        fleet.ask::<PendingReleases>(Principal::anonymous(), ()),
        expected
    );
    // The owner reads it from their own canister (a composite query to the manager).
    let canister = fleet_tests::rollout::owner(0);
    let own = fleet
        .ask::<fleet_api::manager::method::MyUserCanister>(canister, ())
        .unwrap()
        .canister_id;
    let seen = call_on::<UserPendingReleases>(&fleet.sim, own, canister, ())
        .into_result()
        .unwrap();
    assert_eq!(seen, expected);

    // Half a day later it is still refused; a day later it starts.
    fleet.sim.advance_time(Duration::from_secs(DAY / 2));
    assert!(matches!(
        fleet
            .ask::<StartRollout>(a, (one_wave_plan("2.0.0", 10),))
            .into_result(),
        Err(StartRolloutError::NoticePeriod { .. })
    ));
    fleet.sim.advance_time(Duration::from_secs(DAY / 2));
    fleet
        .ask::<StartRollout>(b, (one_wave_plan("2.0.0", 10),))
        .into_result()
        .expect("the notice has passed");
    fleet.run_to_rest(500);
    assert_eq!(module_hashes(&fleet), vec![sha256(&v2); 3]);
    assert_eq!(
        fleet.ask::<PendingReleases>(Principal::anonymous(), ()),
        vec![]
    );
}

/// Under a quorum, an emergency shortening of the notice is a request of admins, recorded with
/// its approvers; once approved, the rollout may start at once (after its own approval).
#[test]
fn an_admin_quorum_shortens_the_notice_of_one_release() {
    let (fleet, [a, b, c]) = governed_fleet(ReleasePolicy {
        quorum: 2,
        notice_secs: DAY,
    });
    let v2 = user_wasm(true);
    upload(&fleet, a, "2.0.0", &v2);
    let Err(FinalizeReleaseError::ApprovalRequired(publish)) = fleet
        .ask::<FinalizeRelease>(a, ("2.0.0".to_string(),))
        .into_result()
    else {
        panic!("publishing is a request")
    };
    approve(&fleet, c, publish.id).unwrap();
    let Err(ShortenNoticeError::ApprovalRequired(shorten)) = fleet
        .ask::<ShortenNotice>(a, ("2.0.0".to_string(), 0))
        .into_result()
    else {
        panic!("shortening the notice is a request under a quorum")
    };
    assert_eq!(shorten.role, Role::Admin);
    assert!(matches!(
        fleet
            .ask::<StartRollout>(a, (one_wave_plan("2.0.0", 10),))
            .into_result(),
        Err(StartRolloutError::NoticePeriod { .. })
    ));
    let done = approve(&fleet, b, shorten.id).unwrap();
    assert!(
        matches!(done.state, RequestState::Executed { .. }),
        "{done:?}"
    );
    let Err(StartRolloutError::ApprovalRequired(start)) = fleet
        .ask::<StartRollout>(a, (one_wave_plan("2.0.0", 10),))
        .into_result()
    else {
        panic!("the rollout is still a request")
    };
    approve(&fleet, c, start.id).unwrap();
    fleet.run_to_rest(500);
    assert_eq!(module_hashes(&fleet), vec![sha256(&v2); 3]);
}

/// Under a quorum, one admin can neither add operators (who would approve their requests) nor
/// lower the quorum alone; a cancelled request cannot be approved.
#[test]
fn operators_and_the_policy_itself_change_only_through_the_quorum() {
    let policy = ReleasePolicy {
        quorum: 2,
        notice_secs: 0,
    };
    let (fleet, [a, b, _]) = governed_fleet(policy);
    let sybil = Operator {
        principal: user(50),
        roles: vec![Role::Admin, Role::Releaser, Role::Deployer],
    };
    let Err(OperatorError::ApprovalRequired(add)) =
        fleet.ask::<SetOperator>(a, (sybil.clone(),)).into_result()
    else {
        panic!("adding an operator is a request under a quorum")
    };
    let listed = |p: Principal| {
        fleet
            .ask::<ListOperators>(a, ())
            .into_result()
            .unwrap()
            .iter()
            .any(|o| o.principal == p)
    };
    assert!(!listed(user(50)));
    let cancelled = fleet
        .ask::<CancelRequest>(a, (add.id,))
        .into_result()
        .unwrap();
    assert!(matches!(cancelled.state, RequestState::Cancelled { by, .. } if by == a));
    assert!(matches!(
        approve(&fleet, b, add.id),
        Err(ApproveRequestError::NotPending { .. })
    ));
    assert!(!listed(user(50)));

    let Err(SetReleasePolicyError::ApprovalRequired(lower)) = fleet
        .ask::<SetReleasePolicy>(
            a,
            (ReleasePolicy {
                quorum: 1,
                notice_secs: 0,
            },),
        )
        .into_result()
    else {
        panic!("changing the policy needs the policy")
    };
    assert_eq!(fleet.ask::<GetReleasePolicy>(a, ()), policy);
    approve(&fleet, b, lower.id).unwrap();
    assert_eq!(fleet.ask::<GetReleasePolicy>(a, ()).quorum, 1);
    // A quorum no operators can reach is refused.
    assert_eq!(
        fleet
            .ask::<SetReleasePolicy>(
                a,
                (ReleasePolicy {
                    quorum: 4,
                    notice_secs: 0,
                },),
            )
            .into_result(),
        Err(SetReleasePolicyError::QuorumUnreachable {
            role: Role::Admin,
            holders: 3
        })
    );
}
