//! Everything the CLI draws while a command runs, on stderr and only on a terminal (never with
//! `--json`): a spinner for the current step with a bar for chunk transfers ([`Bars`]), a bar
//! per rollout stage ([`watch::WaveBars`]) and count bars ([`count_bar`]). Command logic only
//! reports through [`Progress`], so it runs the same with nothing drawn.

pub mod watch;

use std::io::IsTerminal;

/// Receives progress of long operations.
pub trait Progress {
    fn step(&mut self, message: &str);
    fn chunk_uploaded(&mut self, done: usize, total: usize);
}

/// Progress that is not shown.
pub struct Silent;
impl Progress for Silent {
    fn step(&mut self, _: &str) {}
    fn chunk_uploaded(&mut self, _: usize, _: usize) {}
}

/// Draws progress on stderr when it is a terminal and output is not JSON.
pub struct Bars {
    spinner: Option<indicatif::ProgressBar>,
    bar: Option<indicatif::ProgressBar>,
    enabled: bool,
    /// The current step, shown beside the chunk bar ("uploading 2.0.0", "downloading ...").
    label: String,
}

impl Bars {
    pub fn new(enabled: bool) -> Self {
        Self {
            spinner: None,
            bar: None,
            enabled: enabled && std::io::stderr().is_terminal(),
            label: String::new(),
        }
    }
    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Progress for Bars {
    fn step(&mut self, message: &str) {
        self.label = message.to_string();
        if !self.enabled {
            return;
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let s = self.spinner.get_or_insert_with(|| {
            let s = indicatif::ProgressBar::new_spinner();
            s.enable_steady_tick(std::time::Duration::from_millis(120));
            s
        });
        s.set_message(message.to_string());
    }
    fn chunk_uploaded(&mut self, done: usize, total: usize) {
        if !self.enabled {
            return;
        }
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
        }
        let label = &self.label;
        let b = self.bar.get_or_insert_with(|| {
            let b = indicatif::ProgressBar::new(total as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} chunks")
                    .expect("valid template"),
            );
            b.set_message(label.clone());
            b
        });
        b.set_position(done as u64);
    }
}

/// A bar counting `len` things done (`what`), when `enabled` and stderr is a terminal.
pub fn count_bar(enabled: bool, len: u64, what: &str) -> Option<indicatif::ProgressBar> {
    (enabled && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(len);
        b.set_style(
            indicatif::ProgressStyle::with_template("{msg:>24} {bar:40} {pos:>6}/{len}")
                .expect("valid template"),
        );
        b.set_message(what.to_string());
        b
    })
}
