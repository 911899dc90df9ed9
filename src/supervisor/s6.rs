//! The s6 adapter (Debian's s6 2.11; any s6 from 2.11 on): s6-supervise's
//! control FIFO and status file, and s6-svscan's control FIFO.
//!
//! s6-svscan starts one `s6-supervise` per scan directory entry, keyed by
//! the (device, inode) of the directory it resolves to; that supervisor
//! keeps its control FIFO and status file in `<object>/supervise/`. So an
//! old instance is addressed by its store object path even after `live`
//! moved on. Stopping writes `d` to the control FIFO (what `s6-svc -d`
//! does) and reads the status file until the service is down, its `finish`
//! script done, and the supervisor *wants* it down (what `s6-svc -wD` and
//! `s6-svstat` would say), since a service between two crash-restarts is
//! down already but will come back. After the switch, `an` written to
//! s6-svscan's control FIFO (`s6-svscanctl -an`) rescans (new inodes get
//! new supervisors) and nukes supervisors whose directory left the scan
//! directory (they were stopped first, so they exit at once).

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{
    Adapter, ServiceStatus, direct, read_status, restart_instances, send_down_and_wait,
    stop_instances, wait_stable_up,
};
use crate::error::Result;
use crate::output::report;
use crate::sys::fs;

pub(crate) struct S6 {
    pub stop_timeout: Duration,
}

/// Does a supervisor listen on `dir`'s control FIFO (as `s6-svok` checks)?
pub(crate) fn supervised(dir: &Path) -> Result<bool> {
    fs::fifo_has_reader(&dir.join(direct::CONTROL))
}

/// s6-svscan's control FIFO, below the scan directory.
const SCANNER_CONTROL: &str = ".s6-svscan/control";

/// Whether an s6-svscan watches `scandir`: its control FIFO has a reader.
pub(crate) fn scanner_running(scandir: &Path) -> Result<bool> {
    crate::sys::fs::fifo_has_reader(&scandir.join(SCANNER_CONTROL))
}

/// How far skalibs' TAI64N stamps run ahead of the system's UTC clock:
/// 10 s plus the 27 leap seconds of its table (skalibs `tai_from_utc`), as
/// Debian builds it. A skalibs built to take the clock as TAI
/// (`--enable-tai-clock`, rare) adds only 10: uptimes would read 27 s too
/// long. A test compares with `s6-svstat` on the machine it runs on
/// (docs/supervisors.md#control-and-status).
const TAI_AHEAD_OF_UTC: u64 = 37;

/// What [`read_status`] names when the status file is not s6's.
const FORMAT: &str = "s6-supervise's (35 bytes, or 43 with s6 2.13)";

/// Parses s6-supervise's `supervise/status` (s6's `s6_svstatus_pack`):
/// TAI64N of the last up/down change, TAI64N of the last readiness, the
/// pid (8 bytes, big-endian; 0 when down), the pgid (8 bytes, s6 2.13 only,
/// 43 bytes in all), the wait status of the last exit (2 bytes), and the
/// flags: 1 paused, 2 running `finish`, 4 wants up, 8 ready. s6 2.10 and
/// older had other flags in the same 35 bytes: they are not supported.
pub(crate) fn parse_status(bytes: &[u8], now: SystemTime) -> Option<ServiceStatus> {
    let (wstat_at, flags_at) = match bytes.len() {
        35 => (32, 34),
        43 => (40, 42),
        _ => return None,
    };
    let pid = u64::from_be_bytes(bytes.get(24..32)?.try_into().ok()?);
    let wstat = u16::from_be_bytes(bytes.get(wstat_at..wstat_at + 2)?.try_into().ok()?);
    let flags = *bytes.get(flags_at)?;
    let (paused, finishing) = (flags & 1 != 0, flags & 2 != 0);
    let (want_up, ready) = (flags & 4 != 0, flags & 8 != 0);
    let up = pid != 0 && !finishing;
    let for_secs = direct::secs_since(&bytes[..12], TAI_AHEAD_OF_UTC, now);
    let want = if want_up { "want up" } else { "want down" };
    let text = if up {
        format!(
            "up (pid {pid}) for {for_secs}s{}",
            if want_up { "" } else { ", want down" }
        )
    } else if pid != 0 {
        format!("finishing (pid {pid} runs ./finish) for {for_secs}s, {want}")
    } else if paused {
        format!("down (not started yet), {want}")
    } else {
        format!("down{} for {for_secs}s, {want}", exit_how(wstat))
    };
    Some(ServiceStatus {
        supervised: true,
        up,
        want_up,
        finishing: pid != 0 && finishing,
        ready: up && ready,
        pid: u32::try_from(pid).ok().filter(|_| up),
        for_secs,
        text,
    })
}

/// " (exit code N)" or " (signal SIGNAME)" from a wait status.
fn exit_how(wstat: u16) -> String {
    let signal = wstat & 0x7f;
    if signal == 0 {
        format!(" (exit code {})", wstat >> 8)
    } else if signal != 0x7f {
        format!(" (signal {})", signal_name(signal))
    } else {
        String::new()
    }
}

/// The name of the signals a service is usually stopped or killed by.
fn signal_name(signal: u16) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return signal.to_string(),
    };
    name.to_string()
}

impl Adapter for S6 {
    fn stop(&self, _name: &str, object: &Path) -> Result<()> {
        stop_instances(object, self.stop_timeout, |dir, deadline| {
            send_down_and_wait(dir, deadline, self.stop_timeout, || self.status(dir))
        })
    }

    fn restart(&self, _name: &str, object: &Path) -> Result<()> {
        restart_instances(object)
    }

    fn notify(&self, scandir: &Path) -> Result<()> {
        // `a`: rescan now; `n`: nuke supervisors whose entry is gone.
        if !direct::send(scandir, SCANNER_CONTROL, b"an")? {
            report::info(&format!(
                "no s6-svscan runs on {}; it will pick up the services when it starts",
                crate::model::shown::shown(&scandir)
            ));
        }
        Ok(())
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
        let hint = "is s6-svscan running?";
        let deadline = match super::wait_started(timeout, || supervised(dir), "s6-supervise", hint)?
        {
            Ok(deadline) => deadline,
            Err(why) => return Ok(Err(why)),
        };
        let need_ready = dir.join("notification-fd").is_file();
        wait_stable_up(deadline, need_ready, || self.status(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::real;

    const FIELDS: &str = "up,wantedup,ready,pid,updownfor,exitcode,signal";

    fn adapter() -> S6 {
        S6 {
            stop_timeout: Duration::from_secs(10),
        }
    }

    /// Our reading of the real status file against `s6-svstat`'s.
    fn assert_same_as_svstat(sup: &real::Supervised) -> ServiceStatus {
        let ours = adapter().status(sup.path()).unwrap();
        let tool = sup.tool("s6-svstat", &["-o", FIELDS]);
        let f: Vec<&str> = tool.split_whitespace().collect();
        assert_eq!(f.len(), 7, "{tool}");
        assert_eq!(f[0] == "true", ours.up, "{tool} / {}", ours.text);
        assert_eq!(f[1] == "true", ours.want_up, "{tool} / {}", ours.text);
        assert_eq!(f[2] == "true", ours.ready, "{tool} / {}", ours.text);
        let pid = ours.pid.map_or("-1".to_string(), |p| p.to_string());
        assert_eq!(f[3], pid, "{tool} / {}", ours.text);
        // Read a moment apart: at most one second boundary between them.
        let secs: u64 = f[4].parse().unwrap();
        assert!(secs.abs_diff(ours.for_secs) <= 1, "{tool} / {}", ours.text);
        match (f[5], f[6]) {
            ("-1", "NA") => {}
            ("-1", signal) => assert!(ours.text.contains(&format!("(signal {signal})"))),
            (code, _) => assert!(ours.text.contains(&format!("(exit code {code})"))),
        }
        ours
    }

    #[test]
    fn reads_what_s6_supervise_writes_as_s6_svstat_does() {
        let Some(sup) = real::start("s6-supervise", "s6", "exec sleep 1000") else {
            return;
        };
        let now = SystemTime::now;
        let bytes = sup.wait_status("up", |b| parse_status(b, now()).is_some_and(|s| s.up));
        assert_eq!(bytes.len(), 35, "s6 2.11's format");
        let up = assert_same_as_svstat(&sup);
        assert!(up.up && up.want_up && up.pid.is_some(), "{up:?}");
        // A `finish` that takes a while: the stop waits for it.
        let marker = sup.slow_finish();
        adapter().stop("svc", sup.path()).unwrap();
        assert!(marker.exists(), "the stop returned before ./finish ended");
        let down = assert_same_as_svstat(&sup);
        assert!(!down.up && !down.want_up && !down.finishing, "{down:?}");
        assert!(
            down.text.starts_with("down (signal SIGTERM) for "),
            "{down:?}"
        );
        adapter().restart("svc", sup.path()).unwrap();
        sup.wait_status("up again", |b| {
            parse_status(b, now()).is_some_and(|s| s.up && s.pid != up.pid)
        });
        assert_same_as_svstat(&sup);

        // s6 2.13 put the pgid after the pid: the same status in 43 bytes.
        let mut with_pgid = bytes[..32].to_vec();
        with_pgid.extend_from_slice(&bytes[24..32]);
        with_pgid.extend_from_slice(&bytes[32..]);
        let at = now();
        assert_eq!(parse_status(&with_pgid, at), parse_status(&bytes, at));
        for len in [0, 20, 34, 36, 42, 44] {
            let mut other = bytes.clone();
            other.resize(len, 0);
            assert_eq!(parse_status(&other, at), None, "{len} bytes");
        }
    }

    #[test]
    fn wait_statuses_are_worded_like_s6_svstat() {
        assert_eq!(exit_how(0), " (exit code 0)");
        assert_eq!(exit_how(3 << 8), " (exit code 3)");
        assert_eq!(exit_how(15), " (signal SIGTERM)");
        assert_eq!(exit_how(9 | 0x80), " (signal SIGKILL)");
        assert_eq!(exit_how(40), " (signal 40)");
    }
}
