//! The daemontools adapter (Debian's daemontools 0.76): `svc`, `svstat`,
//! and the `supervise/ok` FIFO that `svok` checks.
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
//! - the old instance is stopped before the switch (`svc -d`, then
//!   `svstat` until it is down without "want up"), and after the switch
//!   [`Adapter::notify`] tells the supervise of every store object no
//!   entry resolves to any more to exit (`svc -x`: "exit as soon as the
//!   service is down"). It never stops a service itself: that is the
//!   transaction's stop, and a missing stop must show, not be patched over.
//!
//! supervise has no `finish` script and no readiness notification. It
//! pauses a second after each start and neither reaps the service nor reads
//! commands meanwhile, so a `run` that exits at once stays "up (pid N)" in
//! `svstat` for that second, as a zombie: the adapter's `status` asks the
//! kernel and counts a zombie as down (else the health gate would see a
//! crash loop up with one pid for a second).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command::Argv;
use super::{
    Adapter, ServiceStatus, instance_dirs, query_status, restart_instances, send_down_and_wait,
    stop_instances, wait_stable_up,
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

/// Parses `svstat DIR`, e.g. `DIR: up (pid 123) 8 seconds`,
/// `DIR: up (pid 5) 3 seconds, normally down, paused, want down` or
/// `DIR: down 0 seconds, normally up, want up`.
fn parse_status(dir: &str, text: &str) -> Option<ServiceStatus> {
    let line = text.lines().next()?;
    let said = line.strip_prefix(dir)?.strip_prefix(": ")?;
    let (up, pid, rest) = if let Some(r) = said.strip_prefix("up (pid ") {
        let (pid, r) = r.split_once(") ")?;
        (true, Some(pid.parse::<u32>().ok()?), r)
    } else {
        (false, None, said.strip_prefix("down ")?)
    };
    let (secs, flags) = rest.split_once(" seconds")?;
    let for_secs = secs.parse::<u64>().ok()?;
    let want_up = if up {
        !flags.contains("want down")
    } else {
        flags.contains("want up")
    };
    Some(ServiceStatus {
        supervised: true,
        up,
        want_up,
        finishing: false,
        ready: up,
        pid,
        for_secs,
        text: said.to_string(),
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
            let down = Argv::new("svc").arg("-d").arg(dir);
            send_down_and_wait(dir, deadline, self.stop_timeout, supervised, &down, || {
                self.status(dir)
            })
        })
    }

    fn restart(&self, _name: &str, object: &Path) -> Result<()> {
        restart_instances(object, supervised, |dir| {
            Argv::new("svc").arg("-u").arg(dir)
        })
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
            let exit = Argv::new("svc").arg("-x").arg(&dir);
            let out = exit.run()?;
            // It may have exited since we looked: then it did what we ask.
            if !out.success() && supervised(&dir)? {
                return Err(exit.failed(&out));
            }
        }
        Ok(())
    }

    fn status(&self, dir: &Path) -> Result<ServiceStatus> {
        let query = Argv::new("svstat").arg(dir);
        let status = query_status(dir, supervised, &query, |out| {
            parse_status(&dir.to_string_lossy(), out)
        })?;
        Ok(match status.pid {
            Some(pid) if status.up && is_zombie(pid) => ServiceStatus {
                up: false,
                ready: false,
                pid: None,
                text: format!(
                    "exited, not reaped yet by supervise (svstat: {})",
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
    use crate::supervisor::Deadline;

    #[test]
    fn parses_svstat() {
        let d = "/s/web-1";
        let up = parse_status(d, "/s/web-1: up (pid 10172) 8 seconds\n").unwrap();
        assert!(up.up && up.want_up && up.ready);
        assert_eq!((up.pid, up.for_secs), (Some(10172), 8));
        assert_eq!(up.text, "up (pid 10172) 8 seconds");
        let stopped = parse_status(d, "/s/web-1: down 0 seconds, normally up\n").unwrap();
        assert!(!stopped.up && !stopped.want_up && stopped.pid.is_none());
        let flap = parse_status(d, "/s/web-1: down 0 seconds, normally up, want up").unwrap();
        assert!(!flap.up && flap.want_up);
        let going = parse_status(
            d,
            "/s/web-1: up (pid 5) 3 seconds, normally down, paused, want down",
        )
        .unwrap();
        assert!(going.up && !going.want_up);
        let downed = parse_status(d, "/s/web-1: down 12 seconds").unwrap();
        assert!(!downed.up && !downed.want_up);
        assert_eq!(downed.for_secs, 12);
        assert!(parse_status(d, "/s/web-1: supervise not running\n").is_none());
        assert!(parse_status(d, "/s/web-1: unable to open supervise/ok: x").is_none());
        assert!(parse_status(d, "/other: up (pid 5) 3 seconds\n").is_none());
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
