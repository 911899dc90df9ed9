//! The daemontools adapter (Debian's daemontools 0.76): supervise's control
//! FIFO and status file (what `svc` and `svstat` use), and the
//! `supervise/ok` FIFO that `svok` checks.
//!
//! svscan starts one `supervise` per scan directory entry (and one for its
//! `log/`, with a pipe between them), keyed by the (device, inode) of the
//! directory the entry resolves to; supervise keeps its control files in
//! `<object>/supervise/`, so an old instance is addressed by its store
//! object path. Unlike s6-svscan and runsvdir, svscan has no way to be told
//! to rescan and never stops a supervise whose directory left the scan
//! directory:
//!
//! - it looks for new entries on a timer only, every 5 s (no control FIFO,
//!   no signal handler: SIGHUP or SIGALRM would kill it). A new or changed
//!   service therefore starts within 5 s of the switch; [`Adapter::notify`]
//!   cannot make that sooner, and `--check-up` must allow for it.
//! - the old instance is stopped before the switch (`d` written to its
//!   control FIFO, as `svc -d` does, then its status file read until it is
//!   down without "want up"), and after the switch [`Adapter::notify`]
//!   tells the supervise of every store object no entry resolves to any
//!   more to exit (`x`, as `svc -x`: "exit as soon as the service is
//!   down"). It never stops a service itself: that is the
//!   transaction's stop, and a missing stop must show, not be patched over.
//!
//! supervise has no `finish` script and no readiness notification. It
//! pauses a second after each start and neither reaps the service nor reads
//! commands meanwhile, so a `run` that exits at once stays "up (pid N)" in
//! its status for that second, as a zombie: the adapter's `status` asks the
//! kernel and counts a zombie as down (else the health gate would see a
//! crash loop up with one pid for a second).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::{
    Adapter, ServiceStatus, direct, instance_dirs, read_status, restart_instances,
    send_down_and_wait, stop_instances, wait_stable_up,
};
use crate::error::Result;
use crate::model::shown::shown;
use crate::output::report;
use crate::state::layout;
use crate::sys::fs::Dir;

/// How often svscan looks for new scan directory entries (fixed in its
/// source: `sleep(5)` between scans).
const RESCAN: Duration = Duration::from_secs(5);

pub(crate) struct Daemontools {
    pub stop_timeout: Duration,
    /// `<state>/store`: where old instances' supervises may still run.
    pub store: PathBuf,
}

/// Does a supervise listen on `dir`'s `supervise/ok` FIFO (as `svok`
/// checks)? runsv kept daemontools' FIFO, so the check is runit's.
fn supervised(dir: &Path) -> Result<bool> {
    super::runit::supervised(dir)
}

/// What [`read_status`] names when the status file is not supervise's.
const FORMAT: &str = "supervise's (18 bytes)";

/// Parses supervise's `supervise/status` (daemontools' `pidchange` and
/// `announce`, 18 bytes): TAI64N of the last pid change (libtai, as
/// runit's), the pid (4 bytes, little-endian; 0 when down), paused (1),
/// and what was asked: `u`p, `d`own, or 0 (`svc -o`, once). Worded as
/// `svstat` words it. daemontools-encore appends fields: they are ignored.
fn parse_status(bytes: &[u8], now: SystemTime) -> Option<ServiceStatus> {
    let pid = u32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?);
    let (paused, want) = (*bytes.get(16)?, *bytes.get(17)?);
    let up = pid != 0;
    let want_up = if up { want != b'd' } else { want == b'u' };
    let for_secs = direct::secs_since(&bytes[..12], super::runit::TAI_AHEAD_OF_UTC, now);
    let mut text = if up {
        format!("up (pid {pid}) {for_secs} seconds")
    } else {
        format!("down {for_secs} seconds")
    };
    for (shown, flag) in [
        (up && paused != 0, ", paused"),
        (!up && want == b'u', ", want up"),
        (up && want == b'd', ", want down"),
    ] {
        if shown {
            text.push_str(flag);
        }
    }
    Some(ServiceStatus {
        supervised: true,
        up,
        want_up,
        finishing: false,
        ready: up,
        pid: Some(pid).filter(|_| up),
        for_secs,
        text,
    })
}

/// Does an svscan run on `scandir`? It keeps no file there to ask, but it
/// `chdir`s into it: look for a process named `svscan` working there. (An
/// svscan in another pid namespace is not seen: callers only inform.)
fn scanner_running(scandir: &Path) -> bool {
    let Ok(scandir) = std::fs::canonicalize(scandir) else {
        return false;
    };
    let Ok(processes) = procfs::process::all_processes() else {
        return false;
    };
    processes.flatten().any(|p| {
        p.stat().is_ok_and(|stat| stat.comm == "svscan") && p.cwd().is_ok_and(|cwd| cwd == scandir)
    })
}

/// Is `pid` a zombie: exited, but not yet reaped by its supervise? A pid
/// missing from `/proc` is not: supervise updates its status as it reaps,
/// and a supervise in another pid namespace shows pids we cannot see.
fn is_zombie(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(|pid| procfs::process::Process::new(pid).ok()?.stat().ok())
        .is_some_and(|stat| stat.state == 'Z')
}

/// The (device, inode) of every directory a scan directory entry resolves
/// to, as svscan sees them (it skips names starting with a dot).
fn linked_directories(scandir: &Path) -> Result<HashSet<(u64, u64)>> {
    let mut linked = HashSet::new();
    for name in Dir::open_following(scandir)?.names()? {
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        // A dangling or unreadable entry is no directory to svscan either.
        if let Ok(meta) = std::fs::metadata(scandir.join(&name))
            && meta.is_dir()
        {
            linked.insert((meta.dev(), meta.ino()));
        }
    }
    Ok(linked)
}

impl Daemontools {
    /// Instance directories (object, logger) of store objects that no scan
    /// directory entry resolves to, and whose supervise still runs.
    fn abandoned_instances(&self, scandir: &Path) -> Result<Vec<PathBuf>> {
        let linked = linked_directories(scandir)?;
        if !self.store.is_dir() {
            return Ok(Vec::new());
        }
        let store = Dir::open(&self.store)?;
        let mut abandoned = Vec::new();
        for name in store.names()? {
            if name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let object = self
                .store
                .join(layout::object_service_dir(&name.to_string_lossy()));
            let Ok(meta) = std::fs::symlink_metadata(&object) else {
                continue;
            };
            if !meta.is_dir() || linked.contains(&(meta.dev(), meta.ino())) {
                continue;
            }
            for dir in instance_dirs(&object) {
                if supervised(&dir)? {
                    abandoned.push(dir);
                }
            }
        }
        Ok(abandoned)
    }
}

impl Adapter for Daemontools {
    fn stop(&self, _name: &str, object: &Path) -> Result<()> {
        stop_instances(object, self.stop_timeout, |dir, deadline| {
            send_down_and_wait(dir, deadline, self.stop_timeout, || self.status(dir))
        })
    }

    fn restart(&self, _name: &str, object: &Path) -> Result<()> {
        restart_instances(object)
    }

    fn notify(&self, scandir: &Path) -> Result<()> {
        if scanner_running(scandir) {
            report::debug(&format!(
                "svscan cannot be told to rescan; it picks up {} within {}s",
                shown(&scandir),
                RESCAN.as_secs()
            ));
        } else {
            report::info(&format!(
                "no svscan runs on {}; it will pick up the services when it starts",
                shown(&scandir)
            ));
        }
        for dir in self.abandoned_instances(scandir)? {
            // `x`: exit once the service is down. One that exited since we
            // looked (nothing reads the FIFO) did what we ask.
            direct::send(&dir, direct::CONTROL, b"x")?;
        }
        Ok(())
    }

    fn status(&self, dir: &Path) -> Result<ServiceStatus> {
        let status = read_status(dir, supervised, FORMAT, |bytes| {
            parse_status(bytes, SystemTime::now())
        })?;
        Ok(match status.pid {
            Some(pid) if status.up && is_zombie(pid) => ServiceStatus {
                up: false,
                ready: false,
                pid: None,
                text: format!(
                    "exited, not reaped yet by supervise (its status: {})",
                    status.text
                ),
                ..status
            },
            _ => status,
        })
    }

    fn wait_up(
        &self,
        _name: &str,
        dir: &Path,
        timeout: Duration,
    ) -> Result<std::result::Result<(), String>> {
        let hint = format!(
            "is svscan running? it looks for new services only every {}s",
            RESCAN.as_secs()
        );
        let deadline = match super::wait_started(timeout, || supervised(dir), "supervise", &hint)? {
            Ok(deadline) => deadline,
            Err(why) => return Ok(Err(why)),
        };
        wait_stable_up(deadline, false, || self.status(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::{Deadline, real};

    fn adapter() -> Daemontools {
        Daemontools {
            stop_timeout: Duration::from_secs(10),
            store: PathBuf::from("/nonexistent"),
        }
    }

    /// Our reading of the real status file against `svstat`'s words,
    /// seconds apart (read a moment apart: at most one boundary between).
    fn assert_same_as_svstat(sup: &real::Supervised) -> ServiceStatus {
        let ours = adapter().status(sup.path()).unwrap();
        let tool = sup.tool("svstat", &[]);
        let dir = format!("{}: ", sup.path().display());
        let tool = tool.replacen(&dir, "", 1).replace(", normally up", "");
        let words = |t: &str| -> (String, u64) {
            let (head, tail) = t.split_once(" seconds").unwrap();
            let (head, secs) = head.rsplit_once(' ').unwrap();
            (format!("{head} {tail}"), secs.parse().unwrap())
        };
        let (theirs, their_secs) = words(&tool);
        let (mine, my_secs) = words(&ours.text);
        assert_eq!(theirs, mine, "{tool} / {}", ours.text);
        assert!(their_secs.abs_diff(my_secs) <= 1, "{tool} / {}", ours.text);
        ours
    }

    #[test]
    fn reads_what_supervise_writes_as_svstat_does() {
        let Some(sup) = real::start("supervise", "daemontools", "exec sleep 1000") else {
            return;
        };
        let now = SystemTime::now;
        let bytes = sup.wait_status("up", |b| parse_status(b, now()).is_some_and(|s| s.up));
        assert_eq!(bytes.len(), 18);
        let up = assert_same_as_svstat(&sup);
        assert!(up.up && up.want_up && up.pid.is_some(), "{up:?}");
        // supervise reads commands only after its one-second pause.
        adapter().stop("svc", sup.path()).unwrap();
        let down = assert_same_as_svstat(&sup);
        assert!(!down.up && !down.want_up, "{down:?}");
        adapter().restart("svc", sup.path()).unwrap();
        sup.wait_status("up again", |b| {
            parse_status(b, now()).is_some_and(|s| s.up && s.pid != up.pid)
        });
        let again = assert_same_as_svstat(&sup);
        assert!(again.up, "{again:?}");
        let at = now();
        assert_eq!(parse_status(&bytes[..17], at), None);
        // `svc -o`: up once, wanted neither way.
        let mut once = bytes.clone();
        once[17] = 0;
        let st = parse_status(&once, at).unwrap();
        assert!(st.up && st.want_up, "{st:?}");
    }

    #[test]
    fn a_zombie_is_told_from_a_live_process() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let deadline = Deadline::after(Duration::from_secs(10));
        while !is_zombie(pid) && !deadline.passed() {
            deadline.pause();
        }
        assert!(is_zombie(pid), "exited, unreaped child {pid}");
        child.wait().unwrap();
        assert!(!is_zombie(pid), "reaped: no such pid");
        assert!(!is_zombie(std::process::id()));
    }
}
