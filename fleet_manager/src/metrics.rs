//! Operator metrics, as a candid record and as Prometheus text for `GET /metrics`. Everything
//! is read from counters kept as things happen, so a scrape costs the same for any fleet size.

use crate::driver;
use fleet_api::manager::CanisterStatus;
use fleet_api::rollout::{FleetMetrics, Hold, ReleaseCount, StatusCount};
use fleet_core::{rollouts, state};
use std::fmt::Write;

pub fn collect() -> FleetMetrics {
    let (ticks_measured, tick_instructions_mean, tick_instructions_max) = driver::tick_stats();
    let (user_canisters, by_release, by_status) = state::with(|s| {
        let by_release = s
            .registry
            .release_counts()
            .into_iter()
            .map(|(sha, canisters)| ReleaseCount {
                version: sha.map(|sha| {
                    s.store
                        .get_by_sha256(&sha)
                        .map_or_else(|| hex::encode(sha), |m| m.version)
                }),
                canisters,
            })
            .collect();
        let by_status = answered_status_counts(s)
            .into_iter()
            .map(|(status, canisters)| StatusCount { status, canisters })
            .collect();
        (s.registry.len(), by_release, by_status)
    });
    FleetMetrics {
        now: ic_cdk::api::time(),
        user_canisters,
        by_release,
        by_status,
        counters: rollouts::counters(),
        rollout: rollouts::status(ic_cdk::api::time()),
        calls_in_flight: driver::calls_in_flight(),
        draining: rollouts::draining(),
        cycles_balance: ic_cdk::api::canister_cycle_balance(),
        liquid_cycles: ic_cdk::api::canister_liquid_cycle_balance(),
        pipeline_cycles_reserve: rollouts::pipeline_reserve(),
        timer_silent_secs: driver::timer_silence(ic_cdk::api::time()) / 1_000_000_000,
        ticks_measured,
        tick_instructions_mean,
        tick_instructions_max,
        admission: Some(fleet_core::admission::status()),
    }
}

/// Records per status as the interface answers them: the canisters whose pipeline is in
/// flight count as `Upgrading` rather than under their stored status. Reads one registry
/// record per pipeline in flight, which the rollout's limits bound.
fn answered_status_counts(s: &state::State) -> Vec<(CanisterStatus, u64)> {
    use fleet_core::stored::CanisterStatus as Stored;
    let mut counts = s.registry.status_counts();
    let mut after = None;
    loop {
        let page = rollouts::upgrading_page(after, 500);
        let Some(last) = page.last().copied() else {
            break;
        };
        after = Some(last);
        for id in page {
            let Some(stored) = s.registry.get(&id).map(|r| r.status) else {
                continue;
            };
            for (status, n) in counts.iter_mut() {
                if *status == stored {
                    *n = n.saturating_sub(1);
                }
                if *status == Stored::Upgrading {
                    *n += 1;
                }
            }
        }
    }
    counts
        .into_iter()
        .map(|(status, n)| (status.into(), n))
        .collect()
}

fn status_name(s: CanisterStatus) -> &'static str {
    match s {
        CanisterStatus::Provisioning => "provisioning",
        CanisterStatus::Active => "active",
        CanisterStatus::Upgrading => "upgrading",
        CanisterStatus::Failed => "failed",
        CanisterStatus::RolledBack => "rolled_back",
        CanisterStatus::Detached => "detached",
    }
}

/// Label values are quoted strings; backslash, quote and newline are escaped (Prometheus text
/// exposition format).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders `m` in the Prometheus text exposition format (version 0.0.4).
pub fn prometheus(m: &FleetMetrics) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: String| vec![(String::new(), v)];
    metric(
        "fleet_user_canisters",
        "gauge",
        "User canisters in the registry.",
        one(m.user_canisters.to_string()),
    );
    metric(
        "fleet_user_canisters_by_release",
        "gauge",
        "User canisters per installed release.",
        m.by_release
            .iter()
            .map(|r| {
                let v = r.version.as_deref().unwrap_or("none");
                (
                    format!("{{release=\"{}\"}}", label(v)),
                    r.canisters.to_string(),
                )
            })
            .collect(),
    );
    metric(
        "fleet_user_canisters_by_status",
        "gauge",
        "User canisters per registry status.",
        m.by_status
            .iter()
            .map(|s| {
                (
                    format!("{{status=\"{}\"}}", status_name(s.status)),
                    s.canisters.to_string(),
                )
            })
            .collect(),
    );
    let c = &m.counters;
    metric(
        "fleet_rollouts_started_total",
        "counter",
        "Rollouts started.",
        one(c.rollouts_started.to_string()),
    );
    metric(
        "fleet_pipelines_started_total",
        "counter",
        "Per-canister pipelines started (including restarts after busy).",
        one(c.pipelines_started.to_string()),
    );
    metric(
        "fleet_pipeline_outcomes_total",
        "counter",
        "Per-canister pipelines finished, by outcome.",
        [
            ("upgraded", c.upgraded),
            ("restored", c.restored),
            ("rolled_back", c.rolled_back),
            ("failed", c.failed),
            ("skipped", c.skipped),
            ("cancelled", c.cancelled),
        ]
        .iter()
        .map(|(o, n)| (format!("{{outcome=\"{o}\"}}"), n.to_string()))
        .collect(),
    );
    metric(
        "fleet_calls_issued_total",
        "counter",
        "Calls issued by the rollout engine.",
        one(c.calls_issued.to_string()),
    );
    metric(
        "fleet_calls_failed_total",
        "counter",
        "Calls of the rollout engine that were rejected.",
        one(c.calls_failed.to_string()),
    );
    metric(
        "fleet_bytes_sent_total",
        "counter",
        "Argument bytes sent by the rollout engine.",
        one(c.bytes_sent.to_string()),
    );
    metric(
        "fleet_top_up_cycles_total",
        "counter",
        "Cycles sent to user canisters in top-ups.",
        one(c.cycles_topped_up.to_string()),
    );
    metric(
        "fleet_upgrade_requests_total",
        "counter",
        "Upgrade requests accepted from owners and user canisters.",
        one(c.upgrade_requests.to_string()),
    );
    metric(
        "fleet_calls_in_flight",
        "gauge",
        "Calls of the rollout engine awaiting a reply.",
        one(m.calls_in_flight.to_string()),
    );
    if let Some(r) = &m.rollout {
        metric(
            "fleet_rollout_id",
            "gauge",
            "Id of the current (or last) rollout.",
            one(r.id.to_string()),
        );
        let k = &r.counts;
        metric(
            "fleet_rollout_canisters",
            "gauge",
            "Canisters of the current rollout, by state.",
            [
                ("pending", k.pending),
                ("in_flight", k.in_flight),
                ("busy", k.busy),
                ("done", k.done),
                ("restored", k.restored),
                ("rolled_back", k.rolled_back),
                ("failed", k.failed),
                ("skipped", k.skipped),
                ("cancelled", k.cancelled),
                ("deferred", k.deferred()),
            ]
            .iter()
            .map(|(s, n)| (format!("{{state=\"{s}\"}}"), n.to_string()))
            .collect(),
        );
        let subnets = r.subnets.as_deref().unwrap_or_default();
        if subnets.len() > 1 {
            metric(
                "fleet_rollout_subnet_canisters",
                "gauge",
                "Canisters of the current rollout by subnet (\"own\": the manager's) and state.",
                subnet_samples(subnets),
            );
        }
        metric(
            "fleet_rollout_rate_per_minute",
            "gauge",
            "Canisters finished per minute, measured over the last minutes.",
            one(format!("{}", r.rate_per_minute)),
        );
        let hold = match &r.hold {
            None => "none",
            Some(Hold::Draining) => "draining",
            Some(Hold::ManagerLowCycles { .. }) => "manager_low_cycles",
            Some(Hold::ManagerFaults { .. }) => "manager_faults",
        };
        metric(
            "fleet_rollout_hold",
            "gauge",
            "1 with the reason why no pipeline starts although the rollout runs.",
            vec![(format!("{{reason=\"{hold}\"}}"), "1".into())],
        );
        metric(
            "fleet_rollout_deferrals",
            "counter",
            "Canisters deferred for a retry (or left on their release), by cause.",
            vec![
                (
                    "{cause=\"environment\"}".into(),
                    r.deferrals.environment.to_string(),
                ),
                (
                    "{cause=\"manager\"}".into(),
                    r.deferrals.manager.to_string(),
                ),
            ],
        );
        if let Some(eta) = r.eta_ns {
            metric(
                "fleet_rollout_eta_seconds",
                "gauge",
                "Estimated time until the rollout finishes.",
                one((eta / 1_000_000_000).to_string()),
            );
        }
    }
    metric(
        "fleet_draining",
        "gauge",
        "1 while the manager is drained for its own upgrade.",
        one(u8::from(m.draining).to_string()),
    );
    metric(
        "fleet_manager_cycles",
        "gauge",
        "Cycles balance of the manager.",
        one(m.cycles_balance.to_string()),
    );
    metric(
        "fleet_manager_liquid_cycles",
        "gauge",
        "Cycles of the manager above its freezing threshold.",
        one(m.liquid_cycles.to_string()),
    );
    metric(
        "fleet_pipeline_cycles_reserve",
        "gauge",
        "Cycles kept for finishing each pipeline in flight.",
        one(m.pipeline_cycles_reserve.to_string()),
    );
    metric(
        "fleet_timer_silent_seconds",
        "gauge",
        "Seconds since the driver's timer last ran while it is armed.",
        one(m.timer_silent_secs.to_string()),
    );
    metric(
        "fleet_tick_instructions",
        "gauge",
        "Instructions of one driver tick (mean and max since the manager was installed or upgraded).",
        vec![
            ("{stat=\"mean\"}".into(), m.tick_instructions_mean.to_string()),
            ("{stat=\"max\"}".into(), m.tick_instructions_max.to_string()),
        ],
    );
    if let Some(a) = &m.admission {
        metric(
            "fleet_provisioning_budget_cycles",
            "gauge",
            "Cycles creations may spend per budget window.",
            one(a.admission.budget.cycles_per_window.to_string()),
        );
        metric(
            "fleet_provisioning_spent_cycles",
            "gauge",
            "Cycles creations spent (or hold) in the current budget window.",
            one(a.spent_in_window.to_string()),
        );
        metric(
            "fleet_provisioning_refused_total",
            "counter",
            "Creations refused by the budget or by the admission mode.",
            vec![
                (
                    "{reason=\"budget\"}".into(),
                    a.refused_over_budget.to_string(),
                ),
                (
                    "{reason=\"not_admitted\"}".into(),
                    a.refused_not_admitted.to_string(),
                ),
            ],
        );
    }
    out
}

/// `{subnet="…",state="…"}` samples of each subnet's counts; a halted subnet also has
/// `state="halted"` at 1.
fn subnet_samples(subnets: &[fleet_api::rollout::SubnetProgress]) -> Vec<(String, String)> {
    let mut samples = Vec::new();
    for p in subnets {
        let subnet = p.subnet.map_or_else(|| "own".to_string(), |s| s.to_text());
        for (state, n) in [
            ("total", p.total),
            ("pending", p.pending),
            ("in_flight", p.in_flight),
            ("done", p.done),
            ("failed", p.failed),
            ("rolled_back", p.rolled_back),
            ("deferred", p.deferred),
            ("halted", u64::from(p.halted.is_some())),
        ] {
            samples.push((
                format!("{{subnet=\"{}\",state=\"{state}\"}}", label(&subnet)),
                n.to_string(),
            ));
        }
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::rollout::RolloutCounters;

    #[test]
    fn renders_prometheus_text_with_escaped_labels() {
        let m = FleetMetrics {
            now: 1,
            user_canisters: 3,
            by_release: vec![
                ReleaseCount {
                    version: Some("2.0.0\"x".into()),
                    canisters: 2,
                },
                ReleaseCount {
                    version: None,
                    canisters: 1,
                },
            ],
            by_status: vec![StatusCount {
                status: CanisterStatus::Active,
                canisters: 3,
            }],
            counters: RolloutCounters {
                upgraded: 7,
                cycles_topped_up: 5,
                ..Default::default()
            },
            rollout: None,
            calls_in_flight: 4,
            draining: true,
            cycles_balance: 9,
            liquid_cycles: 8,
            pipeline_cycles_reserve: 1,
            timer_silent_secs: 0,
            ticks_measured: 0,
            tick_instructions_mean: 0,
            tick_instructions_max: 0,
            admission: Some(fleet_api::governance::AdmissionStatus {
                admission: Default::default(),
                window_start_ns: 0,
                spent_in_window: 6,
                refused_over_budget: 2,
                refused_not_admitted: 0,
                allowlisted: 0,
                invites: 0,
            }),
        };
        let text = prometheus(&m);
        assert!(text.contains("# TYPE fleet_user_canisters gauge\nfleet_user_canisters 3\n"));
        assert!(text.contains("fleet_user_canisters_by_release{release=\"2.0.0\\\"x\"} 2\n"));
        assert!(text.contains("fleet_user_canisters_by_release{release=\"none\"} 1\n"));
        assert!(text.contains("fleet_user_canisters_by_status{status=\"active\"} 3\n"));
        assert!(text.contains("fleet_pipeline_outcomes_total{outcome=\"upgraded\"} 7\n"));
        assert!(text.contains("fleet_top_up_cycles_total 5\n"));
        assert!(text.contains("fleet_calls_in_flight 4\n"));
        assert!(text.contains("fleet_draining 1\n"));
        assert!(!text.contains("fleet_rollout_id"));
        assert!(text.contains("fleet_provisioning_spent_cycles 6\n"));
        assert!(text.contains("fleet_provisioning_refused_total{reason=\"budget\"} 2\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("fleet_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn subnets_are_labelled_by_id_and_the_managers_own_as_own() {
        use fleet_api::rollout::{HaltReason, SubnetProgress};
        let other = candid::Principal::from_slice(&[7; 29]);
        let progress = |subnet, done, halted| SubnetProgress {
            subnet,
            total: 4,
            done,
            failed: 0,
            rolled_back: 0,
            deferred: 0,
            in_flight: 1,
            pending: 3 - done,
            busy: 0,
            halted,
        };
        let halted = Some(HaltReason::ConsecutiveFailures { count: 2 });
        let samples = subnet_samples(&[progress(None, 1, None), progress(Some(other), 2, halted)]);
        let find = |subnet: &str, state: &str| {
            samples
                .iter()
                .find(|(l, _)| *l == format!("{{subnet=\"{subnet}\",state=\"{state}\"}}"))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(find("own", "done").as_deref(), Some("1"));
        assert_eq!(find("own", "halted").as_deref(), Some("0"));
        assert_eq!(find(&other.to_text(), "done").as_deref(), Some("2"));
        assert_eq!(find(&other.to_text(), "halted").as_deref(), Some("1"));
        assert_eq!(find(&other.to_text(), "pending").as_deref(), Some("1"));
    }
}
