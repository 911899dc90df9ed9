//! Progress of long operations on stderr: a line per phase of a commit, and
//! within long phases (reading the stock, gc marking and removing, the
//! recovery sweep) a count, at most one line per [`EVERY`].
//!
//! Shown once the run is older than [`AFTER`] (a quick run stays quiet),
//! when stderr is a terminal, or with `-v` when it is not; never with `-q`.
//! `SVCDIR_UPDATE_PROGRESS=always` shows every phase whatever the terminal
//! and the time (logs, tests); `=never` hides it. The clock starts with
//! the run (`lib::run` calls [`begin`]). Counts are whole lines, never
//! redrawn with control characters: they read the same in a log, and
//! cost one write a second however many services tick. This module only
//! writes to stderr, through [`super::write_stderr`] (a closed stderr never
//! stops a commit); results still go to stdout (docs/cli.md#progress).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::output::report;

/// How long a run goes quietly before it reports.
pub(crate) const AFTER: Duration = Duration::from_secs(1);

/// The least time between two count lines.
pub(crate) const EVERY: Duration = Duration::from_secs(1);

/// The environment variable that forces progress on or off.
pub(crate) const ENV: &str = "SVCDIR_UPDATE_PROGRESS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Auto,
    Always,
    Never,
}

#[derive(Debug)]
struct Run {
    start: Instant,
    mode: Mode,
}

static RUN: OnceLock<Run> = OnceLock::new();

/// When the last count line was written.
static LAST_COUNT: Mutex<Option<Instant>> = Mutex::new(None);

/// Starts the run's clock and decides whether progress is shown (after
/// the verbosity is set). Later calls keep the first clock.
pub(crate) fn begin() {
    run();
}

fn run() -> &'static Run {
    RUN.get_or_init(|| {
        let mode = match std::env::var(ENV).as_deref() {
            Ok("always") => Mode::Always,
            Ok("never") => Mode::Never,
            _ if report::verbosity() < 0 => Mode::Never,
            _ if std::io::stderr().is_terminal() || report::verbosity() > 0 => Mode::Auto,
            _ => Mode::Never,
        };
        Run {
            start: Instant::now(),
            mode,
        }
    })
}

/// Whether progress is shown now, and how old the run is.
fn showing() -> Option<Duration> {
    let run = run();
    let elapsed = run.start.elapsed();
    let show = match run.mode {
        Mode::Always => true,
        Mode::Auto => elapsed >= AFTER,
        Mode::Never => false,
    };
    (show && report::verbosity() >= 0).then_some(elapsed)
}

fn say(elapsed: Duration, what: &str) {
    super::write_stderr(&format!(
        "svcdir-update: [{:>5.1}s] {what}\n",
        elapsed.as_secs_f64()
    ));
}

/// Says that `what` is done, if progress is shown now.
pub(crate) fn phase(what: impl FnOnce() -> String) {
    if let Some(elapsed) = showing() {
        say(elapsed, &what());
    }
}

/// A run's progress reporter (the phases of a commit).
#[derive(Debug)]
pub(crate) struct Progress(());

impl Progress {
    /// Starts the clock, unless the run already did.
    pub(crate) fn start() -> Progress {
        begin();
        Progress(())
    }

    /// Says that `what` is done, if progress is shown now.
    pub(crate) fn phase(&self, what: impl FnOnce() -> String) {
        phase(what);
    }
}

/// Counts the steps of one long phase: "reading the stock: 812 of 2000
/// services". Ticked from any thread (the stock is read in parallel).
#[derive(Debug)]
pub(crate) struct Counter {
    doing: &'static str,
    unit: &'static str,
    total: usize,
    done: AtomicUsize,
}

impl Counter {
    /// A phase of `total` steps, e.g. `("reading the stock", 2000, "services")`.
    pub(crate) fn new(doing: &'static str, total: usize, unit: &'static str) -> Counter {
        Counter {
            doing,
            unit,
            total,
            done: AtomicUsize::new(0),
        }
    }

    /// One more step done; writes a count line when progress is shown and
    /// the last one is at least [`EVERY`] old.
    pub(crate) fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let Some(elapsed) = showing() else {
            return;
        };
        // Another thread writing a line now is as good as this one.
        let Ok(mut last) = LAST_COUNT.try_lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        *last = Some(Instant::now());
        say(
            elapsed,
            &format!("{}: {done} of {} {}", self.doing, self.total, self.unit),
        );
    }
}
