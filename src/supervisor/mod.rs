//! Supervisor adapters: how a transaction stops old instances, tells the
//! scanner to rescan, and asks whether a service is up.
//!
//! One adapter per family (`none`, [`s6`], [`runit`], [`daemontools`]),
//! all with the same shape. An old instance is always addressed by its
//! *store object path*, never through `live`, so stopping it cannot touch
//! the new one. Commands are run with an argv (never a shell string, see
//! [`command`]) and a failure names the command and its stderr. Adapters
//! never touch `live`, the scan directory's links or the rollback log.
//!
//! "Up" for the health gate means *up and staying up*: the supervisor
//! reports the service up (and ready, when it has `notification-fd`) with
//! the same pid for at least [`MIN_UPTIME`]. s6-supervise and runsv wait
//! one second before restarting a service that died at once, and
//! daemontools' supervise pauses a second after each start, so a `run`
//! that exits immediately is never seen up with one pid that long.

pub(crate) mod command;
pub(crate) mod daemontools;
pub(crate) mod runit;
pub(crate) mod s6;

use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::{Config, Supervisor};
use crate::error::{Error, Result};
use crate::output::report;
use crate::state::layout;

/// How long a service must stay up, same pid, to count as up.
pub(crate) const MIN_UPTIME: Duration = Duration::from_secs(1);

/// How often state is polled while waiting.
const POLL: Duration = Duration::from_millis(20);

/// One look at a supervised service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceStatus {
    /// A supervisor runs for this directory.
    pub supervised: bool,
    /// The service process runs.
    pub up: bool,
    /// The supervisor wants it up (s6 `wantedup`; runit: not "want down").
    pub want_up: bool,
    /// Its `finish` script runs (runit's "finish" state): not down yet.
    pub finishing: bool,
    /// Readiness was notified (s6; meaningful with `notification-fd`).
    pub ready: bool,
    pub pid: Option<u32>,
    /// Whole seconds since the last up/down change.
    pub for_secs: u64,
    /// The supervisor's own words, for messages.
    pub text: String,
}

impl ServiceStatus {
    /// Is it running or meant to run (not down on purpose)?
    pub(crate) fn wanted(&self) -> bool {
        self.supervised && (self.up || self.finishing || self.want_up)
    }

    pub(crate) fn unsupervised() -> ServiceStatus {
        ServiceStatus {
            text: "no supervisor runs for it".into(),
            ..ServiceStatus::default()
        }
    }
}

pub(crate) trait Adapter {
    /// Stops the instance running from `object` (a store object directory)
    /// and its logger, and waits, up to the stop timeout, until both are
    /// down and want to stay down. A service that is not supervised is
    /// already down.
    fn stop(&self, name: &str, object: &Path) -> Result<()>;
    /// Starts again an instance that [`Adapter::stop`] stopped (undo).
    fn restart(&self, name: &str, object: &Path) -> Result<()>;
    /// Tells the scanner that `scandir` changed (links or their targets).
    /// daemontools' svscan cannot be told; its adapter makes the
    /// supervises of instances that left `scandir` exit instead.
    fn notify(&self, scandir: &Path) -> Result<()>;
    /// What the supervisor says about the service at `dir`.
    fn status(&self, dir: &Path) -> Result<ServiceStatus>;
    /// Waits up to `timeout` until the service at `dir` is up and stays up
    /// (see the module docs). `Ok(Err(why))` when it is not.
    fn wait_up(
        &self,
        name: &str,
        dir: &Path,
        timeout: Duration,
    ) -> Result<std::result::Result<(), String>>;
}

/// No supervisor: files only.
pub(crate) struct NoSupervisor;

impl Adapter for NoSupervisor {
    fn stop(&self, _: &str, _: &Path) -> Result<()> {
        Ok(())
    }
    fn restart(&self, _: &str, _: &Path) -> Result<()> {
        Ok(())
    }
    fn notify(&self, _: &Path) -> Result<()> {
        Ok(())
    }
    fn status(&self, _: &Path) -> Result<ServiceStatus> {
        Ok(ServiceStatus::unsupervised())
    }
    fn wait_up(&self, _: &str, _: &Path, _: Duration) -> Result<std::result::Result<(), String>> {
        Ok(Ok(()))
    }
}

/// The adapter the configuration selects.
pub(crate) fn for_config(cfg: &Config) -> Box<dyn Adapter> {
    match cfg.supervisor {
        Supervisor::None => Box::new(NoSupervisor),
        Supervisor::S6 => Box::new(s6::S6 {
            stop_timeout: cfg.stop_timeout,
        }),
        Supervisor::Runit => Box::new(runit::Runit {
            stop_timeout: cfg.stop_timeout,
        }),
        Supervisor::Daemontools => Box::new(daemontools::Daemontools {
            stop_timeout: cfg.stop_timeout,
            store: cfg.state.join(layout::STORE),
        }),
    }
}

/// A point in time to give up at.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    pub(crate) fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now() + timeout)
    }

    pub(crate) fn left(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    pub(crate) fn passed(&self) -> bool {
        self.left().is_zero()
    }

    /// Sleeps one poll interval, never past the deadline.
    pub(crate) fn pause(&self) {
        std::thread::sleep(POLL.min(self.left()));
    }

    /// Milliseconds left, at least 1 (a 0 timeout means "forever" to s6).
    pub(crate) fn left_ms(&self) -> u128 {
        self.left().as_millis().max(1)
    }

    /// Whole seconds left, rounded up, at least 1 (runit's `sv -w`).
    pub(crate) fn left_secs_ceil(&self) -> u64 {
        let left = self.left();
        (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)
    }
}

/// Polls `supervised` until it holds or the deadline passes.
pub(crate) fn wait_supervised(
    deadline: Deadline,
    mut supervised: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    loop {
        if supervised()? {
            return Ok(true);
        }
        if deadline.passed() {
            return Ok(false);
        }
        deadline.pause();
    }
}

/// Polls `status` until the service at `dir` is down and wants to stay
/// down; past the deadline, an error names it, the stop timeout and the
/// supervisor's last word.
pub(crate) fn wait_down(
    dir: &Path,
    deadline: Deadline,
    stop_timeout: Duration,
    mut status: impl FnMut() -> Result<ServiceStatus>,
) -> Result<()> {
    loop {
        let st = status()?;
        if !st.supervised || (!st.up && !st.finishing && !st.want_up) {
            return Ok(());
        }
        if deadline.passed() {
            return Err(crate::error::Error::supervisor_of(
                dir,
                format!(
                    "did not stop within {}s: {}",
                    stop_timeout.as_secs_f64(),
                    st.text
                ),
            ));
        }
        deadline.pause();
    }
}

/// Stops every instance directory of `object` (the service, then its
/// logger) with `stop_one`, all sharing one deadline of `stop_timeout`.
pub(crate) fn stop_instances(
    object: &Path,
    stop_timeout: Duration,
    mut stop_one: impl FnMut(&Path, Deadline) -> Result<()>,
) -> Result<()> {
    let deadline = Deadline::after(stop_timeout);
    for dir in instance_dirs(object) {
        stop_one(&dir, deadline)?;
    }
    Ok(())
}

/// Starts again every instance directory of `object` (logger first) that
/// the family's `supervised` says has a supervisor, with its "up" command.
pub(crate) fn restart_instances(
    object: &Path,
    supervised: impl Fn(&Path) -> Result<bool>,
    up: impl Fn(&Path) -> command::Argv,
) -> Result<()> {
    for dir in instance_dirs(object).iter().rev() {
        if supervised(dir)? {
            up(dir).run_ok()?;
        }
    }
    Ok(())
}

/// Stops the service at `dir` with a command that only *sends* "down"
/// (`sv down`, `svc -d`), then polls `status` until it is down and wants
/// to stay down. Not supervised (before, or when the command fails) is
/// already down.
pub(crate) fn send_down_and_wait(
    dir: &Path,
    deadline: Deadline,
    stop_timeout: Duration,
    supervised: impl Fn(&Path) -> Result<bool>,
    down: &command::Argv,
    status: impl FnMut() -> Result<ServiceStatus>,
) -> Result<()> {
    if !supervised(dir)? {
        report::debug(&format!("{}: not supervised, already down", dir.display()));
        return Ok(());
    }
    let out = down.run()?;
    if !out.success() {
        if !supervised(dir)? {
            return Ok(());
        }
        return Err(Error::supervisor_of(
            dir,
            format!("could not be stopped: {}", down.failed(&out)),
        ));
    }
    wait_down(dir, deadline, stop_timeout, status)
}

/// Asks `query` about the service at `dir` and reads the answer with
/// `parse`. No supervisor listening, before the call or after a failed or
/// unreadable one (it may have exited meanwhile), is "unsupervised".
pub(crate) fn query_status(
    dir: &Path,
    supervised: impl Fn(&Path) -> Result<bool>,
    query: &command::Argv,
    parse: impl FnOnce(&str) -> Option<ServiceStatus>,
) -> Result<ServiceStatus> {
    if !supervised(dir)? {
        return Ok(ServiceStatus::unsupervised());
    }
    let out = query.run()?;
    let parsed = if out.success() {
        parse(&out.stdout)
    } else {
        None
    };
    if let Some(status) = parsed {
        return Ok(status);
    }
    if !supervised(dir)? {
        return Ok(ServiceStatus::unsupervised());
    }
    if !out.success() {
        return Err(query.failed(&out));
    }
    Err(Error::supervisor_of(
        dir,
        format!(
            "has a status this tool cannot understand: `{}` printed {:?}",
            command::shown(&query.as_refs()),
            out.stdout
        ),
    ))
}

/// Polls `status` until the service has been up (and ready, if
/// `need_ready`) with one pid for [`MIN_UPTIME`]; else says why not.
pub(crate) fn wait_stable_up(
    deadline: Deadline,
    need_ready: bool,
    mut status: impl FnMut() -> Result<ServiceStatus>,
) -> Result<std::result::Result<(), String>> {
    // (pid, when first seen up, uptime it surely had then)
    let mut seen: Option<(Option<u32>, Instant, Duration)> = None;
    loop {
        let st = status()?;
        if st.up && (st.ready || !need_ready) {
            // Supervisors count whole seconds by clock ticks: runit shows
            // "1s" for a process 0.1 s old whose start and now straddle a
            // second boundary. Only N-1 of N shown seconds are certain.
            let surely = Duration::from_secs(st.for_secs.saturating_sub(1));
            match seen {
                Some((pid, at, before)) if pid == st.pid => {
                    if at.elapsed() + before >= MIN_UPTIME || surely >= MIN_UPTIME {
                        return Ok(Ok(()));
                    }
                }
                _ => {
                    if surely >= MIN_UPTIME {
                        return Ok(Ok(()));
                    }
                    seen = Some((st.pid, Instant::now(), surely));
                }
            }
        } else {
            seen = None;
        }
        if deadline.passed() {
            let why = if !st.supervised {
                st.text
            } else if st.up && need_ready && !st.ready {
                format!("up but never signalled readiness: {}", st.text)
            } else if st.up {
                format!("not up for {}s in a row: {}", MIN_UPTIME.as_secs(), st.text)
            } else {
                st.text
            };
            return Ok(Err(why));
        }
        deadline.pause();
    }
}

/// The directories of one service instance: the service, then its logger
/// (`log/`) when it has one.
pub(crate) fn instance_dirs(object: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs = vec![object.to_path_buf()];
    let log = object.join("log");
    if log.join("run").is_file() {
        dirs.push(log);
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(pid: u32, secs: u64) -> ServiceStatus {
        ServiceStatus {
            supervised: true,
            up: true,
            want_up: true,
            finishing: false,
            ready: true,
            pid: Some(pid),
            for_secs: secs,
            text: format!("up (pid {pid})"),
        }
    }

    #[test]
    fn a_service_up_long_enough_passes_at_once() {
        let got = wait_stable_up(Deadline::after(Duration::ZERO), false, || Ok(up(7, 3))).unwrap();
        assert_eq!(got, Ok(()));
    }

    #[test]
    fn a_flapping_service_never_passes() {
        let mut n = 0;
        let got = wait_stable_up(Deadline::after(Duration::from_millis(1500)), false, || {
            n += 1;
            Ok(if n % 2 == 0 {
                up(n, 0)
            } else {
                ServiceStatus {
                    supervised: true,
                    want_up: true,
                    text: "down (exitcode 1)".into(),
                    ..ServiceStatus::default()
                }
            })
        })
        .unwrap();
        assert!(got.is_err(), "{got:?}");
    }

    #[test]
    fn one_pid_for_a_second_passes() {
        let start = Instant::now();
        let got = wait_stable_up(Deadline::after(Duration::from_secs(5)), false, || {
            Ok(up(9, 0))
        })
        .unwrap();
        assert_eq!(got, Ok(()));
        assert!(start.elapsed() >= MIN_UPTIME);
    }

    /// Regression: runit showed "run: (pid N) 1s" for a process 0.1 s old
    /// (start and now on either side of a second boundary), and the gate
    /// took that as a second of uptime for a service dying after 0.3 s.
    #[test]
    fn one_shown_second_is_not_a_second_of_uptime() {
        let start = Instant::now();
        let mut n = 0;
        let got = wait_stable_up(Deadline::after(Duration::from_millis(1500)), false, || {
            n += 1;
            // Seen "up 1s" twice, then dead: never a real second.
            Ok(if n <= 2 {
                up(5, 1)
            } else {
                ServiceStatus {
                    supervised: true,
                    want_up: true,
                    text: "down".into(),
                    ..ServiceStatus::default()
                }
            })
        })
        .unwrap();
        assert!(got.is_err(), "{got:?} after {:?}", start.elapsed());
    }

    #[test]
    fn deadline_rounding() {
        let d = Deadline::after(Duration::ZERO);
        assert_eq!(d.left_ms(), 1);
        assert_eq!(d.left_secs_ceil(), 1);
        let d = Deadline::after(Duration::from_millis(2500));
        assert_eq!(d.left_secs_ceil(), 3);
    }
}
