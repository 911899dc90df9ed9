//! Supervisor adapters: how a transaction stops old instances, tells the
//! scanner to rescan, and asks whether a service is up.
//!
//! One adapter per family (`none`, [`s6`], [`runit`], [`daemontools`]),
//! all with the same shape. An old instance is always addressed by its
//! *store object path*, never through `live`, so stopping it cannot touch
//! the new one. Commands and statuses go through the supervisors' own
//! files ([`direct`]: a byte written to the control FIFO, the binary status
//! file read), never through their tools, so no process is run per command
//! or per poll, and no program is found through the caller's `PATH`.
//! Adapters never touch `live`, the scan directory's links or the rollback
//! log. A transaction stops its old instances side by side ([`stop_all`],
//! at most `max_parallel_stops` at once), so adapters are `Sync`.
//!
//! "Up" for the health gate means *up and staying up*: the supervisor
//! reports the service up (and ready, when it has `notification-fd`) with
//! the same pid for at least [`MIN_UPTIME`]. s6-supervise and runsv wait
//! one second before restarting a service that died at once, and
//! daemontools' supervise pauses a second after each start, so a `run`
//! that exits immediately is never seen up with one pid that long.

pub(crate) mod daemontools;
pub(crate) mod detect;
pub(crate) mod direct;
pub(crate) mod runit;
pub(crate) mod s6;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::{Config, Supervisor};
use crate::error::{Error, Result};
use crate::output::report;
use crate::state::layout;

/// How long a service must stay up, same pid, to count as up.
pub(crate) const MIN_UPTIME: Duration = Duration::from_secs(1);

/// The first pause between two looks at a status while waiting: a look is
/// one small file read, so a service that stops at once is seen down within
/// a millisecond or two ([`Pace`]).
const POLL_FIRST: Duration = Duration::from_millis(1);

/// The longest pause between two looks: pauses double from [`POLL_FIRST`]
/// up to this, so a long shutdown costs a few dozen reads a second.
const POLL: Duration = Duration::from_millis(16);

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

/// `Sync`: [`stop_all`] stops several services at once with one adapter.
pub(crate) trait Adapter: Sync {
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

    /// Sleeps one poll interval, never past the deadline (tests; waits
    /// in the adapters use a [`Pace`]).
    #[cfg(test)]
    pub(crate) fn pause(&self) {
        std::thread::sleep(POLL.min(self.left()));
    }
}

/// The pauses of one wait: [`POLL_FIRST`], doubling up to [`POLL`], never
/// past the deadline.
#[derive(Debug)]
pub(crate) struct Pace(Duration);

impl Pace {
    pub(crate) fn new() -> Pace {
        Pace(POLL_FIRST)
    }

    pub(crate) fn pause(&mut self, deadline: &Deadline) {
        std::thread::sleep(self.0.min(deadline.left()));
        self.0 = (self.0 * 2).min(POLL);
    }
}

/// Polls `supervised` until it holds or the deadline passes.
/// Waits until `supervised` says a supervisor runs the service, up to
/// `timeout`; the deadline left for the rest of the wait, or why not:
/// "no WHO started for it within Ns (HINT)", the same words for every
/// adapter, with the scanner's own hint.
pub(crate) fn wait_started(
    timeout: Duration,
    supervised: impl FnMut() -> Result<bool>,
    who: &str,
    hint: &str,
) -> Result<std::result::Result<Deadline, String>> {
    let deadline = Deadline::after(timeout);
    if wait_supervised(deadline, supervised)? {
        return Ok(Ok(deadline));
    }
    Ok(Err(format!(
        "no {who} started for it within {}s ({hint})",
        timeout.as_secs_f64()
    )))
}

pub(crate) fn wait_supervised(
    deadline: Deadline,
    mut supervised: impl FnMut() -> Result<bool>,
) -> Result<bool> {
    let mut pace = Pace::new();
    loop {
        if supervised()? {
            return Ok(true);
        }
        if deadline.passed() {
            return Ok(false);
        }
        pace.pause(&deadline);
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
    let mut pace = Pace::new();
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
        pace.pause(&deadline);
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

/// An old instance a transaction stops: the service's name and the store
/// object it runs from.
pub(crate) struct OldInstance {
    pub name: String,
    pub object: PathBuf,
}

/// The names of the `instances` that run or are meant to run (see
/// [`ServiceStatus::wanted`]). One after the other: a status is one small
/// file read, cheaper than starting a thread.
pub(crate) fn wanted(adapter: &dyn Adapter, instances: &[OldInstance]) -> Result<Vec<String>> {
    let mut wanted = Vec::new();
    for old in instances {
        if adapter.status(&old.object)?.wanted() {
            wanted.push(old.name.clone());
        }
    }
    Ok(wanted)
}

/// Stops every one of `instances` (each service, then its logger), at most
/// `limit` (config `max_parallel_stops`) at once. A stop mostly waits (for
/// a `finish` script, a graceful shutdown, a supervisor's one-second
/// pause), so running stops side by side makes a commit that restarts many
/// services cost about one stop, not their sum; and a stop is a thread that
/// sleeps and reads a status file now and then (no process per poll), so
/// the default bound is high (64). Each stop has its own deadline of the stop
/// timeout (it starts when that service's stop does). Every stop runs to its
/// end even when another fails, so that the error names every service that
/// did not stop. With `-v`, one line per service says when its stop began
/// and how long it took.
pub(crate) fn stop_all(
    adapter: &dyn Adapter,
    instances: &[OldInstance],
    limit: usize,
) -> Result<()> {
    let phase = Instant::now();
    let outcomes = for_each_bounded(instances, limit, |old| {
        let began = phase.elapsed();
        let outcome = adapter.stop(&old.name, &old.object);
        report::debug(&format!(
            "{}: stop began at +{:.3}s, {} after {:.3}s",
            old.name,
            began.as_secs_f64(),
            if outcome.is_ok() { "done" } else { "failed" },
            phase.elapsed().saturating_sub(began).as_secs_f64()
        ));
        outcome
    });
    let mut names = Vec::new();
    let mut reasons = Vec::new();
    for (old, outcome) in instances.iter().zip(outcomes) {
        if let Err(err) = outcome {
            names.push(old.name.as_str());
            reasons.push(format!("{}: {}", old.name, err.chain()));
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    Err(Error::supervisor(format!(
        "{} did not stop: {}",
        names.join(", "),
        reasons.join("; ")
    )))
}

/// Calls `work` on every item, on at most `limit` threads at once (this
/// one among them); the results come back in the order of `items`. When no
/// other thread can be started, this one does all the work.
fn for_each_bounded<T: Sync, R: Send>(
    items: &[T],
    limit: usize,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut done = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(index) else {
                return done;
            };
            done.push((index, work(item)));
        }
    };
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..limit.min(items.len()))
            .map_while(|_| std::thread::Builder::new().spawn_scoped(scope, worker).ok())
            .collect();
        let mut done = worker();
        for helper in helpers {
            match helper.join() {
                Ok(part) => done.extend(part),
                // A bug in `work`: let it surface as it would without threads.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_by_key(|(index, _)| *index);
    done.into_iter().map(|(_, result)| result).collect()
}

/// Starts again every instance directory of `object` (logger first) that
/// has a supervisor: "up" (`u`, the same byte for every family) written to
/// its control FIFO. One without a supervisor is left as it is.
pub(crate) fn restart_instances(object: &Path) -> Result<()> {
    for dir in instance_dirs(object).iter().rev() {
        direct::send(dir, direct::CONTROL, b"u")?;
    }
    Ok(())
}

/// Stops the service at `dir`: "down" (`d`, the same byte for every
/// family) written to its control FIFO, then `status` polled until it is
/// down and wants to stay down. No supervisor reading the FIFO is already
/// down.
pub(crate) fn send_down_and_wait(
    dir: &Path,
    deadline: Deadline,
    stop_timeout: Duration,
    status: impl FnMut() -> Result<ServiceStatus>,
) -> Result<()> {
    if !direct::send(dir, direct::CONTROL, b"d")? {
        report::trace(&format!("{}: not supervised, already down", dir.display()));
        return Ok(());
    }
    report::trace(&format!("{}: sent down", dir.display()));
    wait_down(dir, deadline, stop_timeout, status)
}

/// The status of the service at `dir` from its status file, read with
/// `parse` once `supervised` says a supervisor runs for it. A supervisor
/// that has not written its status yet is starting (not down, wants up).
/// A status file `parse` cannot read, while the supervisor still runs, is
/// an error naming the file and the `format` expected.
pub(crate) fn read_status(
    dir: &Path,
    supervised: impl Fn(&Path) -> Result<bool>,
    format: &str,
    parse: impl FnOnce(&[u8]) -> Option<ServiceStatus>,
) -> Result<ServiceStatus> {
    if !supervised(dir)? {
        return Ok(ServiceStatus::unsupervised());
    }
    let Some(bytes) = direct::read_status(dir)? else {
        return Ok(ServiceStatus {
            supervised: true,
            want_up: true,
            text: "its supervisor is starting (no status file yet)".into(),
            ..ServiceStatus::default()
        });
    };
    if let Some(status) = parse(&bytes) {
        return Ok(status);
    }
    if !supervised(dir)? {
        return Ok(ServiceStatus::unsupervised());
    }
    Err(Error::supervisor_of(
        dir,
        format!(
            "has a status file `{}` of {} bytes that is not {format}; is another \
             supervisor (or version) running it?",
            direct::STATUS,
            bytes.len()
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
    let mut pace = Pace::new();
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
        pace.pause(&deadline);
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

/// Real per-service supervisors for the adapters' tests: one started by
/// hand on a temporary service directory, so the status files the parsers
/// read are the real ones, and the supervisors' own tools can say what
/// they mean.
#[cfg(test)]
pub(crate) mod real {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use super::{Deadline, direct};

    /// A supervisor running on a service directory; dropping it stops the
    /// service and the supervisor.
    pub(crate) struct Supervised {
        child: Child,
        pub dir: PathBuf,
        _tmp: tempfile::TempDir,
    }

    /// Starts `program` (`s6-supervise`, `runsv`, `supervise`, from Debian
    /// package `package`) on a new service directory whose `run` is
    /// `run`. `None` only when the program is missing and
    /// `SVCDIR_TEST_ALLOW_MISSING_TOOLS=1` allows leaving the test out
    /// (never under `CI=true`), as tests/it/harness.rs does.
    pub(crate) fn start(program: &str, package: &str, run: &str) -> Option<Supervised> {
        let installed = Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            let allowed = std::env::var("SVCDIR_TEST_ALLOW_MISSING_TOOLS").is_ok_and(|v| v == "1")
                && !std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                allowed,
                "{program} is not installed (Debian package {package})"
            );
            return None;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("svc");
        std::fs::create_dir(&dir).unwrap();
        let script = dir.join("run");
        std::fs::write(&script, format!("#!/bin/sh\n{run}\n")).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let child = Command::new(program)
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Some(Supervised {
            child,
            dir,
            _tmp: tmp,
        })
    }

    impl Supervised {
        /// Polls the status file until `done` holds for its bytes.
        pub(crate) fn wait_status(&self, what: &str, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
            let deadline = Deadline::after(Duration::from_secs(20));
            loop {
                if let Some(bytes) = direct::read_status(&self.dir).unwrap()
                    && done(&bytes)
                {
                    return bytes;
                }
                assert!(!deadline.passed(), "{}: never {what}", self.dir.display());
                deadline.pause();
            }
        }

        /// What the family's tool `program` prints about the service.
        pub(crate) fn tool(&self, program: &str, args: &[&str]) -> String {
            let out = Command::new(program)
                .args(args)
                .arg(&self.dir)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        }

        /// Gives the service a `finish` that takes 0.3 s and then touches
        /// the returned marker: a stop must wait for it.
        pub(crate) fn slow_finish(&self) -> std::path::PathBuf {
            let marker = self.path().join("finished");
            let finish = self.path().join("finish");
            std::fs::write(
                &finish,
                format!("#!/bin/sh\nsleep 0.3\ntouch {}\n", marker.display()),
            )
            .unwrap();
            std::fs::set_permissions(&finish, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            marker
        }

        pub(crate) fn path(&self) -> &Path {
            &self.dir
        }
    }

    impl Drop for Supervised {
        fn drop(&mut self) {
            // Down, then exit once down: every family takes `d` and `x`.
            let _ = direct::send(&self.dir, direct::CONTROL, b"dx");
            let deadline = Deadline::after(Duration::from_secs(10));
            while !matches!(self.child.try_wait(), Ok(Some(_))) && !deadline.passed() {
                deadline.pause();
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
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
    fn bounded_work_overlaps_up_to_the_limit_and_keeps_the_order() {
        use std::sync::atomic::AtomicUsize;
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<usize> = (0..40).collect();
        let got = for_each_bounded(&items, 4, |&n| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            // Stay busy until four ran at once (or give up): without
            // overlap the maximum stays 1.
            let deadline = Deadline::after(Duration::from_secs(5));
            while most.load(Ordering::SeqCst) < 4 && !deadline.passed() {
                deadline.pause();
            }
            running.fetch_sub(1, Ordering::SeqCst);
            n * 2
        });
        assert_eq!(got, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(
            most.load(Ordering::SeqCst),
            4,
            "at most and at least 4 at once"
        );
        assert_eq!(for_each_bounded(&[] as &[u8], 4, |_| 1), Vec::<i32>::new());
    }

    /// Stops fail for names starting with "stuck".
    struct Stubborn;

    impl Adapter for Stubborn {
        fn stop(&self, name: &str, object: &Path) -> Result<()> {
            if name.starts_with("stuck") {
                return Err(Error::supervisor(format!("{} hangs", object.display())));
            }
            Ok(())
        }
        fn restart(&self, _: &str, _: &Path) -> Result<()> {
            Ok(())
        }
        fn notify(&self, _: &Path) -> Result<()> {
            Ok(())
        }
        fn status(&self, dir: &Path) -> Result<ServiceStatus> {
            Ok(ServiceStatus {
                supervised: true,
                want_up: !dir.ends_with("down"),
                ..ServiceStatus::default()
            })
        }
        fn wait_up(&self, _: &str, _: &Path, _: Duration) -> Result<Result<(), String>> {
            Ok(Ok(()))
        }
    }

    fn old(name: &str, object: &str) -> OldInstance {
        OldInstance {
            name: name.into(),
            object: PathBuf::from(object),
        }
    }

    #[test]
    fn a_failed_stop_names_every_service_that_did_not_stop() {
        let instances = [
            old("stuck-a", "/s/1"),
            old("fine", "/s/2"),
            old("stuck-b", "/s/3"),
        ];
        let err = stop_all(&Stubborn, &instances, 2).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::TEMP_FAIL);
        assert_eq!(
            err.to_string(),
            "stuck-a, stuck-b did not stop: stuck-a: /s/1 hangs; stuck-b: /s/3 hangs"
        );
        stop_all(&Stubborn, &instances[1..2], 2).unwrap();
        let wanted = wanted(&Stubborn, &[old("up", "/s/up"), old("off", "/s/down")]).unwrap();
        assert_eq!(wanted, ["up"]);
    }

    #[test]
    fn pauses_double_up_to_the_poll_interval_and_never_pass_the_deadline() {
        let mut pace = Pace::new();
        let deadline = Deadline::after(Duration::from_secs(60));
        for _ in 0..6 {
            pace.pause(&deadline);
        }
        assert_eq!(pace.0, POLL);
        let passed = Deadline::after(Duration::ZERO);
        let start = Instant::now();
        Pace(Duration::from_secs(5)).pause(&passed);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
