//! The runit adapter (Debian's runit 2.1.2): runsv's control FIFO and
//! status file, and the scan directory's mtime.
//!
//! runsvdir starts one `runsv` per scan directory entry, keyed by the
//! (device, inode) of the directory it resolves to; runsv keeps its control
//! FIFOs and status files in `<object>/supervise/` (and
//! `<object>/log/supervise/`), so an old instance is addressed by its store
//! object path. runsvdir TERMs the runsv of a vanished inode only *after*
//! starting the new one, so the old instance must be stopped before the
//! switch: `d` written to its control FIFO (what `sv down` does), then its
//! status file read until it is down (past `finish`) and runsv also wants
//! it down — runsv sleeps a second before restarting a crashed service and
//! reads its control FIFO only after that. runsvdir rescans only when the
//! scan directory's mtime changed, so [`Adapter::notify`] bumps it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{
    Adapter, ServiceStatus, direct, read_status, restart_instances, send_down_and_wait,
    stop_instances, wait_stable_up,
};
use crate::error::Result;
use crate::sys::fs::{self, Dir};

pub(crate) struct Runit {
    pub stop_timeout: Duration,
}

/// Does a runsv listen on `dir`'s `supervise/ok` FIFO (as `sv` checks)?
pub(crate) fn supervised(dir: &Path) -> Result<bool> {
    fs::fifo_has_reader(&dir.join("supervise/ok"))
}

/// libtai's TAI64N labels run 10 s ahead of UTC (no leap seconds).
pub(crate) const TAI_AHEAD_OF_UTC: u64 = 10;

/// What [`read_status`] names when the status file is not runit's.
const FORMAT: &str = "runsv's (20 bytes)";

/// Parses runsv's `supervise/status` (runit's `update_status`, 20 bytes):
/// TAI64N of the last start or stop, the pid (4 bytes, little-endian; of
/// `finish` while that runs), paused (1), wants up or down (`u`/`d`), got
/// TERM (1), and the state: 0 down, 1 run, 2 finish.
pub(crate) fn parse_status(bytes: &[u8], now: SystemTime) -> Option<ServiceStatus> {
    let [.., paused, want, term, state] = *<&[u8; 20]>::try_from(bytes).ok()?;
    let pid = u32::from_le_bytes(bytes.get(12..16)?.try_into().ok()?);
    let (up, finishing, name) = match state {
        0 => (false, false, "down"),
        1 => (pid != 0, false, "run"),
        2 => (false, true, "finish"),
        _ => return None,
    };
    let want_up = match want {
        b'u' => true,
        b'd' => false,
        _ => return None,
    };
    let for_secs = direct::secs_since(&bytes[..12], TAI_AHEAD_OF_UTC, now);
    // As `sv status` words it.
    let mut text = format!("{name}: ");
    if state != 0 {
        text.push_str(&format!("(pid {pid}) "));
    }
    text.push_str(&format!("{for_secs}s"));
    for (shown, flag) in [
        (pid != 0 && paused != 0, ", paused"),
        (pid == 0 && want_up, ", want up"),
        (pid != 0 && !want_up, ", want down"),
        (pid != 0 && term != 0, ", got TERM"),
    ] {
        if shown {
            text.push_str(flag);
        }
    }
    Some(ServiceStatus {
        supervised: true,
        up,
        want_up,
        finishing,
        ready: up,
        pid: Some(pid).filter(|_| up),
        for_secs,
        text,
    })
}

impl Adapter for Runit {
    fn stop(&self, _name: &str, object: &Path) -> Result<()> {
        stop_instances(object, self.stop_timeout, |dir, deadline| {
            send_down_and_wait(dir, deadline, self.stop_timeout, || self.status(dir))
        })
    }

    fn restart(&self, _name: &str, object: &Path) -> Result<()> {
        restart_instances(object)
    }

    fn notify(&self, scandir: &Path) -> Result<()> {
        Dir::open_following(scandir)?.touch()
    }

    fn status(&self, dir: &Path) -> Result<ServiceStatus> {
        read_status(dir, supervised, FORMAT, |bytes| {
            parse_status(bytes, SystemTime::now())
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
        wait_stable_up(deadline, false, || self.status(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::real;

    fn adapter() -> Runit {
        Runit {
            stop_timeout: Duration::from_secs(10),
        }
    }

    /// Our reading of the real status file against `sv status`'s words,
    /// seconds apart (read a moment apart: at most one boundary between).
    fn assert_same_as_sv(sup: &real::Supervised) -> ServiceStatus {
        let ours = adapter().status(sup.path()).unwrap();
        let tool = sup.tool("sv", &["status"]);
        let dir = format!("{}: ", sup.path().display());
        let tool = tool.replacen(&dir, "", 1).replace(", normally up", "");
        let words = |t: &str| -> (String, u64) {
            let (head, tail) = t.split_once('s').unwrap();
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
    fn reads_what_runsv_writes_as_sv_does() {
        let Some(sup) = real::start("runsv", "runit", "exec sleep 1000") else {
            return;
        };
        let now = SystemTime::now;
        let bytes = sup.wait_status("up", |b| parse_status(b, now()).is_some_and(|s| s.up));
        let up = assert_same_as_sv(&sup);
        assert!(up.up && up.want_up && up.pid.is_some(), "{up:?}");
        let marker = sup.slow_finish();
        adapter().stop("svc", sup.path()).unwrap();
        assert!(marker.exists(), "the stop returned before ./finish ended");
        let down = assert_same_as_sv(&sup);
        assert!(!down.up && !down.want_up && !down.finishing, "{down:?}");
        adapter().restart("svc", sup.path()).unwrap();
        sup.wait_status("up again", |b| {
            parse_status(b, now()).is_some_and(|s| s.up && s.pid != up.pid)
        });
        assert_same_as_sv(&sup);

        let at = now();
        for len in [0, 18, 19, 21] {
            let mut other = bytes.clone();
            other.resize(len, 0);
            assert_eq!(parse_status(&other, at), None, "{len} bytes");
        }
        let mut finishing = bytes.clone();
        finishing[19] = 2;
        let st = parse_status(&finishing, at).unwrap();
        assert!(st.finishing && !st.up && st.text.starts_with("finish: (pid "));
        finishing[19] = 3;
        assert_eq!(parse_status(&finishing, at), None, "no such state");
    }
}
