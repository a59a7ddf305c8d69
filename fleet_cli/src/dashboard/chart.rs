//! Upgrades per minute over the rollout's time, drawn as SVG by the server: the page needs no
//! charting library, and the figures are the manager's own (`rate_per_minute`, measured by the
//! rollout engine over its last minutes), sampled at each poll on the manager's clock.

use std::fmt::Write;

use fleet_api::rollout::RolloutStatus;

/// Samples kept; older ones are thinned out so that the chart always spans the whole rollout.
const MAX_SAMPLES: usize = 240;
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;
const TOP: f64 = 8.0;

#[derive(Default)]
pub struct Chart {
    rollout: Option<u64>,
    /// (seconds since the rollout's creation, upgrades per minute, finished canisters)
    samples: Vec<(f64, f64, u64)>,
    /// The plan's starts per minute, the ceiling the rate can reach.
    limit: Option<u32>,
}

impl Chart {
    /// Records the rollout's rate at the manager's time `now`; a new rollout starts a new
    /// chart.
    pub fn sample(&mut self, s: &RolloutStatus, now: u64) {
        if self.rollout != Some(s.id) {
            *self = Chart {
                rollout: Some(s.id),
                ..Chart::default()
            };
        }
        self.limit = s.limits.as_ref().map(|l| l.starts_per_minute);
        let t = now.saturating_sub(s.created_at) as f64 / 1e9;
        if self.samples.last().is_some_and(|last| last.0 >= t) {
            return;
        }
        let c = &s.counts;
        let finished = c.done + c.restored + c.failed + c.rolled_back + c.deferred();
        self.samples.push((t, s.rate_per_minute, finished));
        if self.samples.len() > MAX_SAMPLES {
            // Keep the first and every other one after it: the span stays, the density halves.
            let last = self.samples.pop();
            let mut i = 0;
            self.samples.retain(|_| {
                i += 1;
                i % 2 == 1
            });
            self.samples.extend(last);
        }
    }

    pub fn svg(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="upgrades per minute">"#
        );
        let plot_w = WIDTH - LEFT - 8.0;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let _ = write!(
            out,
            r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#bbb"/>"##
        );
        if self.samples.len() < 2 {
            let _ = write!(
                out,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#777" font-size="12">waiting for samples</text></svg>"##,
                LEFT + plot_w / 2.0,
                TOP + plot_h / 2.0
            );
            return out;
        }
        let t_max = self.samples.last().map_or(1.0, |s| s.0).max(1.0);
        let rate_max = self
            .samples
            .iter()
            .map(|s| s.1)
            .fold(self.limit.map_or(1.0, f64::from), f64::max)
            .max(1.0);
        let x = |t: f64| LEFT + t / t_max * plot_w;
        let y = |r: f64| TOP + plot_h - r / rate_max * plot_h;
        if let Some(limit) = self.limit {
            let ly = y(f64::from(limit));
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="#d08a00" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#d08a00" font-size="11">limit {limit}/min</text>"##,
                LEFT + plot_w,
                LEFT + plot_w - 4.0,
                // Under the line, inside the plot, where the rate's own line rarely is.
                ly + 12.0
            );
        }
        let points: Vec<String> = self
            .samples
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.0), y(s.1)))
            .collect();
        let _ = write!(
            out,
            r##"<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{}"/>"##,
            points.join(" ")
        );
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333" font-size="11">{rate_max:.0}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333" font-size="11">0</text>"##,
            LEFT - 4.0,
            TOP + 10.0,
            LEFT - 4.0,
            TOP + plot_h
        );
        let _ = write!(
            out,
            r##"<text x="{LEFT}" y="{:.1}" fill="#333" font-size="11">0 s</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#333" font-size="11">{} since start · upgrades per minute</text></svg>"##,
            HEIGHT - 6.0,
            LEFT + plot_w,
            HEIGHT - 6.0,
            super::view::duration_text(t_max as u64)
        );
        out
    }

    /// Samples held, for tests.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_api::rollout::Limits;

    fn status(id: u64, rate: f64, done: u64) -> RolloutStatus {
        let mut s = super::super::view::tests::status();
        s.id = id;
        s.rate_per_minute = rate;
        s.counts.done = done;
        s.counts.rolled_back = 0;
        s.limits = Some(Limits {
            max_in_flight: 20,
            starts_per_minute: 60,
            burst: 10,
            max_starts_per_tick: 10,
            per_subnet: None,
        });
        s
    }

    #[test]
    fn the_chart_spans_the_whole_rollout_within_a_bounded_number_of_samples() {
        let mut chart = Chart::default();
        assert!(chart.svg().contains("waiting for samples"));
        for i in 1..=1000u64 {
            chart.sample(&status(1, 30.0, i), i * 1_000_000_000);
        }
        assert!(chart.len() <= MAX_SAMPLES, "{}", chart.len());
        assert_eq!(chart.samples.first().map(|s| s.0), Some(1.0));
        assert_eq!(chart.samples.last().map(|s| s.0), Some(1000.0));
        let svg = chart.svg();
        assert!(
            svg.contains("<polyline") && svg.contains("limit 60/min"),
            "{svg}"
        );
        // A sample at a time already seen is ignored; a new rollout starts over.
        chart.sample(&status(1, 30.0, 5), 5_000_000_000);
        assert_eq!(chart.samples.last().map(|s| s.0), Some(1000.0));
        chart.sample(&status(2, 1.0, 1), 1_000_000_000);
        assert_eq!(chart.len(), 1);
    }
}
