//! Progress of a long commit on stderr: one line per phase, with counts.
//!
//! Shown only when stderr is a terminal and the run has taken longer than
//! [`AFTER`] (a quick commit stays quiet), and never with `-q`.
//! `SVCDIR_UPDATE_PROGRESS=always` shows every phase whatever the terminal
//! and the time (logs, tests); `=never` hides it. This module only writes
//! to stderr, through [`super::write_stderr`] (a closed stderr never stops
//! a commit); results still go to stdout.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::output::report;

/// How long a run goes quietly before it reports its phases.
pub(crate) const AFTER: Duration = Duration::from_secs(1);

/// The environment variable that forces progress on or off.
pub(crate) const ENV: &str = "SVCDIR_UPDATE_PROGRESS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Auto,
    Always,
    Never,
}

/// A run's progress reporter.
#[derive(Debug)]
pub(crate) struct Progress {
    start: Instant,
    mode: Mode,
}

impl Progress {
    /// Starts the clock.
    pub(crate) fn start() -> Progress {
        let mode = match std::env::var(ENV).as_deref() {
            Ok("always") => Mode::Always,
            Ok("never") => Mode::Never,
            _ if std::io::stderr().is_terminal() => Mode::Auto,
            _ => Mode::Never,
        };
        Progress {
            start: Instant::now(),
            mode,
        }
    }

    /// Says that `what` is done, if progress is shown now.
    pub(crate) fn phase(&self, what: impl FnOnce() -> String) {
        let elapsed = self.start.elapsed();
        let show = match self.mode {
            Mode::Always => true,
            Mode::Auto => elapsed >= AFTER,
            Mode::Never => false,
        };
        if show && report::verbosity() >= 0 {
            super::write_stderr(&format!(
                "svcdir-update: [{:>5.1}s] {}\n",
                elapsed.as_secs_f64(),
                what()
            ));
        }
    }
}
