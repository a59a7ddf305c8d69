//! Progress of a rollout, one bar per stage and, when it spans several subnets, one per
//! subnet, drawn on stderr while it runs (`rollout status --watch`, `rehearse`).

use std::io::IsTerminal;

use fleet_api::rollout::{Phase, RolloutStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::manager::wave_name;

/// One bar: finished canisters out of `len`, with what else is going on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub prefix: String,
    pub pos: u64,
    pub len: u64,
    pub msg: String,
}

/// The counts a bar's message tells, other than the finished ones.
#[derive(Default)]
struct Tally {
    in_flight: u64,
    failed: u64,
    rolled_back: u64,
    skipped: u64,
    deferred: u64,
}

impl Tally {
    fn text(&self) -> Vec<String> {
        [
            (self.in_flight, "in flight"),
            (self.failed, "failed"),
            (self.rolled_back, "rolled back"),
            (self.skipped, "skipped"),
            (self.deferred, "deferred"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect()
    }
}

/// A subnet's bar label: short enough for the bar's column, and telling subnets apart by
/// the first group of their id (`own` for the manager's).
fn subnet_prefix(subnet: &Option<fleet_api::Principal>) -> String {
    match subnet {
        None => "subnet own".into(),
        Some(p) => {
            let text = p.to_text();
            format!("subnet {}", text.split('-').next().unwrap_or(&text))
        }
    }
}

/// The bars of `s`: each stage, then each subnet when the rollout spans two or more (a
/// halted subnet says why in its message).
pub fn rows(s: &RolloutStatus) -> Vec<Row> {
    let mut rows: Vec<Row> = s
        .waves
        .iter()
        .map(|w| {
            let o = &w.outcomes;
            let tally = Tally {
                in_flight: o.in_flight + o.busy,
                failed: o.failed,
                rolled_back: o.rolled_back,
                skipped: o.skipped,
                deferred: o.deferred(),
            };
            Row {
                prefix: wave_name(&w.label),
                pos: o.finished(),
                len: w.size,
                msg: tally.text().join(", "),
            }
        })
        .collect();
    let subnets = s.subnets.as_deref().unwrap_or_default();
    if subnets.len() >= 2 {
        rows.extend(subnets.iter().map(|p| {
            let tally = Tally {
                in_flight: p.in_flight + p.busy,
                failed: p.failed,
                rolled_back: p.rolled_back,
                skipped: 0,
                deferred: p.deferred,
            };
            let mut msg = tally.text();
            if let Some(h) = &p.halted {
                msg.push(format!("halted: {}", halt_text(h)));
            }
            Row {
                prefix: subnet_prefix(&p.subnet),
                // Finished in any way (restored, skipped and cancelled included).
                pos: p.total.saturating_sub(p.in_flight + p.busy + p.pending),
                len: p.total,
                msg: msg.join(", "),
            }
        }));
    }
    rows
}

/// One bar per [`Row`] of a rollout.
pub struct WaveBars {
    multi: Option<MultiProgress>,
    bars: Vec<ProgressBar>,
    phase: Option<ProgressBar>,
}

impl WaveBars {
    /// Draws only when `enabled` and stderr is a terminal.
    pub fn new(enabled: bool) -> Self {
        Self {
            multi: (enabled && std::io::stderr().is_terminal()).then(MultiProgress::new),
            bars: Vec::new(),
            phase: None,
        }
    }

    pub fn update(&mut self, s: &RolloutStatus, round_note: &str) {
        let Some(multi) = &self.multi else {
            return;
        };
        let phase = self.phase.get_or_insert_with(|| {
            let p = multi.add(ProgressBar::new_spinner());
            p.set_style(ProgressStyle::with_template("{msg}").expect("valid template"));
            p
        });
        phase.set_message(format!(
            "rollout {} to {}: {}{}{}",
            s.id,
            s.target.version,
            phase_name(&s.phase),
            s.hold
                .as_ref()
                .map(crate::manager::hold_text)
                .unwrap_or_default(),
            if round_note.is_empty() {
                String::new()
            } else {
                format!("  ({round_note})")
            }
        ));
        let rows = rows(s);
        while self.bars.len() < rows.len() {
            let b = multi.add(ProgressBar::new(0));
            b.set_style(
                ProgressStyle::with_template("  {prefix:>13} {bar:40} {pos:>6}/{len:<6} {msg}")
                    .expect("valid template"),
            );
            self.bars.push(b);
        }
        for (b, row) in self.bars.iter().zip(rows) {
            b.set_prefix(row.prefix);
            b.set_length(row.len);
            b.set_position(row.pos);
            b.set_message(row.msg);
        }
    }

    pub fn finish(&mut self) {
        for b in self.bars.drain(..) {
            b.finish();
        }
        if let Some(p) = self.phase.take() {
            p.finish();
        }
    }
}

impl Drop for WaveBars {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A phase for people: `running`, `halted (…)`.
pub fn phase_name(p: &Phase) -> String {
    match p {
        Phase::Running => "running".into(),
        Phase::Paused => "paused".into(),
        Phase::Halted(reason) => format!("halted ({})", halt_text(reason)),
        Phase::Aborting => "aborting".into(),
        Phase::Aborted => "aborted".into(),
        Phase::Completed => "completed".into(),
    }
}

fn halt_text(r: &fleet_api::rollout::HaltReason) -> String {
    match r {
        fleet_api::rollout::HaltReason::WaveFailureThreshold { wave, failed, size } => format!(
            "{failed} of {size} canisters of stage {} failed, above the threshold",
            wave + 1
        ),
        fleet_api::rollout::HaltReason::ConsecutiveFailures { count } => {
            format!("{count} failures in a row")
        }
        fleet_api::rollout::HaltReason::SubnetWaveFailureThreshold {
            subnet,
            wave,
            failed,
            size,
        } => format!(
            "{failed} of {size} canisters of stage {} on {} failed, above the threshold",
            wave + 1,
            crate::dashboard::view::subnet_text(subnet)
        ),
        fleet_api::rollout::HaltReason::SubnetConsecutiveFailures { subnet, count } => format!(
            "{count} failures in a row on {}",
            crate::dashboard::view::subnet_text(subnet)
        ),
    }
}

/// True when the rollout needs nothing more from its timers: finished, or halted with nothing
/// in flight (it waits for an operator).
pub fn at_rest(s: &RolloutStatus) -> bool {
    s.phase.is_finished() || (matches!(s.phase, Phase::Halted(_)) && s.counts.in_flight == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::rollout::{HaltReason, SubnetProgress};

    fn subnet(
        id: Option<u8>,
        total: u64,
        done: u64,
        failed: u64,
        in_flight: u64,
    ) -> SubnetProgress {
        SubnetProgress {
            subnet: id.map(|b| fleet_api::Principal::from_slice(&[b; 29])),
            total,
            done,
            failed,
            rolled_back: 0,
            deferred: 0,
            in_flight,
            pending: total - done - failed - in_flight,
            busy: 0,
            halted: None,
        }
    }

    fn status(subnets: Option<Vec<SubnetProgress>>) -> RolloutStatus {
        let mut s = crate::dashboard::view::tests::status();
        s.subnets = subnets;
        s
    }

    #[test]
    fn a_rollout_on_several_subnets_has_a_bar_per_subnet_after_its_stages() {
        let mut b = subnet(Some(7), 5, 1, 2, 0);
        b.halted = Some(HaltReason::SubnetConsecutiveFailures {
            subnet: b.subnet,
            count: 2,
        });
        let s = status(Some(vec![subnet(None, 6, 3, 0, 2), b]));
        let rows = rows(&s);
        let stages = s.waves.len();
        assert_eq!(rows.len(), stages + 2);
        let own = &rows[stages];
        assert_eq!(
            (own.prefix.as_str(), own.pos, own.len, own.msg.as_str()),
            ("subnet own", 3, 6, "2 in flight")
        );
        let other = &rows[stages + 1];
        let group = s.subnets.as_ref().unwrap()[1].subnet.unwrap().to_text();
        assert_eq!(
            other.prefix,
            format!("subnet {}", group.split('-').next().unwrap())
        );
        assert_eq!((other.pos, other.len), (3, 5));
        assert_eq!(
            other.msg,
            "2 failed, halted: 2 failures in a row on subnet ".to_string() + &group
        );
    }

    #[test]
    fn a_rollout_on_one_subnet_has_its_stage_bars_only() {
        let s = status(Some(vec![subnet(None, 6, 3, 0, 2)]));
        assert_eq!(rows(&s).len(), s.waves.len());
        let s = status(None);
        assert_eq!(rows(&s).len(), s.waves.len());
    }
}
