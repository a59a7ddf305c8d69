//! Progress of a rollout, one bar per stage, drawn on stderr while it runs
//! (`rollout status --watch`, `rehearse`).

use std::io::IsTerminal;

use fleet_api::rollout::{Phase, RolloutStatus};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::manager::wave_name;

/// One bar per stage of a rollout: finished canisters of the stage out of its size, with the
/// failures and rollbacks seen so far.
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
        while self.bars.len() < s.waves.len() {
            let w = &s.waves[self.bars.len()];
            let b = multi.add(ProgressBar::new(w.size));
            b.set_style(
                ProgressStyle::with_template("  {prefix:>8} {bar:40} {pos:>6}/{len:<6} {msg}")
                    .expect("valid template"),
            );
            b.set_prefix(wave_name(&w.label));
            self.bars.push(b);
        }
        for (b, w) in self.bars.iter().zip(&s.waves) {
            b.set_position(w.outcomes.finished());
            let mut msg = Vec::new();
            if w.outcomes.in_flight + w.outcomes.busy > 0 {
                msg.push(format!(
                    "{} in flight",
                    w.outcomes.in_flight + w.outcomes.busy
                ));
            }
            if w.outcomes.failed > 0 {
                msg.push(format!("{} failed", w.outcomes.failed));
            }
            if w.outcomes.rolled_back > 0 {
                msg.push(format!("{} rolled back", w.outcomes.rolled_back));
            }
            if w.outcomes.skipped > 0 {
                msg.push(format!("{} skipped", w.outcomes.skipped));
            }
            if w.outcomes.deferred() > 0 {
                msg.push(format!("{} deferred", w.outcomes.deferred()));
            }
            b.set_message(msg.join(", "));
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
