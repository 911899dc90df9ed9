//! The runit adapter (Debian's runit 2.1.2): `sv` and the scan directory's
//! mtime.
//!
//! runsvdir starts one `runsv` per scan directory entry, keyed by the
//! (device, inode) of the directory it resolves to; runsv keeps its control
//! FIFOs in `<object>/supervise/` (and `<object>/log/supervise/`), so an old
//! instance is addressed by its store object path. runsvdir TERMs the runsv
//! of a vanished inode only *after* starting the new one, so the old
//! instance must be stopped before the switch: `sv down <object>`, then
//! `sv status` until it is down (past `finish`) and runsv also wants it
//! down — runsv sleeps a second before restarting a crashed service and
//! reads its control FIFO only after that. runsvdir rescans only when the
//! scan directory's mtime changed, so [`Adapter::notify`] bumps it.

use std::path::Path;
use std::time::Duration;

use super::command::Argv;
use super::{
    Adapter, ServiceStatus, query_status, restart_instances, send_down_and_wait, stop_instances,
    wait_stable_up,
};
use crate::error::Result;
use crate::model::shown::shown;
use crate::output::report;
use crate::sys::fs::{self, Dir};

pub(crate) struct Runit {
    pub stop_timeout: Duration,
}

/// Does a runsv listen on `dir`'s `supervise/ok` FIFO (as `sv` checks)?
pub(crate) fn supervised(dir: &Path) -> Result<bool> {
    fs::fifo_has_reader(&dir.join("supervise/ok"))
}

/// Parses the first part of `sv status DIR`, e.g.
/// `run: DIR: (pid 123) 8s; run: log: (pid 124) 8s` or
/// `down: DIR: 0s, normally up, want up`.
pub(crate) fn parse_status(dir: &str, line: &str) -> Option<ServiceStatus> {
    let line = line.lines().next()?;
    let (state, rest) = line.split_once(": ")?;
    let rest = rest.strip_prefix(dir)?.strip_prefix(": ")?;
    // The logger's part, if any, follows "; ".
    let rest = rest.split("; ").next()?;
    let (pid, rest) = match rest.strip_prefix("(pid ") {
        Some(r) => {
            let (pid, r) = r.split_once(") ")?;
            (Some(pid.parse::<u32>().ok()?), r)
        }
        None => (None, rest),
    };
    let secs_end = rest.find('s')?;
    let for_secs = rest[..secs_end].parse::<u64>().ok()?;
    let flags = &rest[secs_end + 1..];
    let (up, finishing) = match state {
        "run" => (true, false),
        "finish" => (false, true),
        "down" => (false, false),
        _ => return None,
    };
    let want_up = if up || finishing {
        !flags.contains("want down")
    } else {
        flags.contains("want up")
    };
    Some(ServiceStatus {
        supervised: true,
        up,
        want_up,
        finishing,
        ready: up,
        pid,
        for_secs,
        text: format!("{state}: {}", rest.trim()),
    })
}

impl Adapter for Runit {
    fn stop(&self, _name: &str, object: &Path) -> Result<()> {
        // `sv down` only sends the command; polling `sv status` (every
        // 20 ms) notices the stop sooner than `sv -w SECS stop`, which
        // re-checks only every 420 ms or so.
        stop_instances(object, self.stop_timeout, |dir, deadline| {
            let down = Argv::new("sv").arg("down").arg(dir);
            send_down_and_wait(dir, deadline, self.stop_timeout, supervised, &down, || {
                self.status(dir)
            })
        })
    }

    fn restart(&self, _name: &str, object: &Path) -> Result<()> {
        restart_instances(object, supervised, |dir| Argv::new("sv").arg("up").arg(dir))
    }

    fn notify(&self, scandir: &Path) -> Result<()> {
        Dir::open_following(scandir)?.touch()
    }

    fn status(&self, dir: &Path) -> Result<ServiceStatus> {
        let query = Argv::new("sv").arg("status").arg(dir);
        query_status(dir, supervised, &query, |out| {
            parse_status(&dir.to_string_lossy(), out)
        })
    }

    fn wait_up(
        &self,
        _name: &str,
        dir: &Path,
        timeout: Duration,
    ) -> Result<std::result::Result<(), String>> {
        let hint = "is runsvdir running? it rescans about once a second, after the scan \
                    directory's mtime changed";
        let deadline = match super::wait_started(timeout, || supervised(dir), "runsv", hint)? {
            Ok(deadline) => deadline,
            Err(why) => return Ok(Err(why)),
        };
        let out = Argv::new("sv")
            .arg("-w")
            .arg(deadline.left_secs_ceil().to_string())
            .arg("check")
            .arg(dir)
            .run()?;
        if !out.success() {
            report::debug(&format!(
                "sv check on {} gave up: {}",
                shown(&dir),
                out.said()
            ));
        }
        wait_stable_up(deadline, false, || self.status(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sv_status() {
        let d = "/s/web-1";
        let run = parse_status(d, "run: /s/web-1: (pid 23538) 8s; run: log: (pid 9) 8s\n").unwrap();
        assert!(run.up && run.want_up && !run.finishing);
        assert_eq!((run.pid, run.for_secs), (Some(23538), 8));
        let stopped = parse_status(d, "down: /s/web-1: 0s, normally up\n").unwrap();
        assert!(!stopped.up && !stopped.want_up && stopped.pid.is_none());
        let flap = parse_status(d, "down: /s/web-1: 0s, normally up, want up\n").unwrap();
        assert!(!flap.up && flap.want_up);
        let fin = parse_status(d, "finish: /s/web-1: (pid 4) 0s, want down\n").unwrap();
        assert!(fin.finishing && !fin.want_up);
        let going = parse_status(d, "run: /s/web-1: (pid 5) 3s, want down\n").unwrap();
        assert!(going.up && !going.want_up);
        assert!(parse_status(d, "fail: /s/web-1: runsv not running\n").is_none());
        assert!(parse_status(d, "run: /other: (pid 5) 3s\n").is_none());
    }
}
