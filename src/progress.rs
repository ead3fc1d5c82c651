//! Progress for long work: bars on a terminal, nothing otherwise (indicatif hides itself when
//! stderr is not a terminal).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Counters shown while a sync runs.
#[derive(Debug, Clone)]
pub struct Progress {
    scanned: ProgressBar,
    applied: ProgressBar,
}

impl Progress {
    /// Bars on stderr when `show` (and stderr is a terminal).
    pub fn new(show: bool) -> Progress {
        let make = |msg: &'static str| {
            let bar = ProgressBar::with_draw_target(
                None,
                if show { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
            );
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg:>9} {human_pos:>10} objects  {per_sec:>12}  {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(msg);
            bar
        };
        Progress { scanned: make("scanned"), applied: make("applied") }
    }

    pub fn hidden() -> Progress {
        Progress::new(false)
    }

    pub fn inc_scanned(&self, n: u64) {
        self.scanned.inc(n);
    }

    pub fn inc_applied(&self, n: u64) {
        self.applied.inc(n);
    }

    pub fn finish(&self) {
        self.scanned.finish();
        self.applied.finish();
    }
}
