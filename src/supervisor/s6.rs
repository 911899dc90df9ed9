//! The s6 adapter (Debian's s6 2.11): `s6-svc`, `s6-svstat`, `s6-svwait`,
//! `s6-svscanctl`.
//!
//! s6-svscan starts one `s6-supervise` per scan directory entry, keyed by
//! the (device, inode) of the directory it resolves to; that supervisor
//! keeps its control FIFO in `<object>/supervise/` and its event FIFO
//! directory in `<object>/event/`. So an old instance is addressed by its
//! store object path even after `live` moved on. Stopping uses
//! `s6-svc -wD -d` (wait until *really* down: `finish` done) and then checks
//! `s6-svstat` until the supervisor also *wants* it down, since `-wD`
//! returns at once for a service that is between two crash-restarts.
//! After the switch, `s6-svscanctl -an` rescans (new inodes get new
//! supervisors) and nukes supervisors whose directory left the scan
//! directory (they were stopped first, so they exit at once).

use std::path::Path;
use std::time::Duration;

use super::command::Argv;
use super::{
    Adapter, Deadline, ServiceStatus, query_status, restart_instances, stop_instances, wait_down,
    wait_stable_up,
};
use crate::error::{Error, Result};
use crate::model::shown::shown;
use crate::output::report;
use crate::sys::fs;

pub(crate) struct S6 {
    pub stop_timeout: Duration,
}

/// Does a supervisor listen on `dir`'s control FIFO (as `s6-svok` checks)?
pub(crate) fn supervised(dir: &Path) -> Result<bool> {
    fs::fifo_has_reader(&dir.join("supervise/control"))
}

/// Does s6-svscan run on `scandir`?
pub(crate) fn scanner_running(scandir: &Path) -> Result<bool> {
    fs::fifo_has_reader(&scandir.join(".s6-svscan/control"))
}

const FIELDS: &str = "up,wantedup,ready,pid,updownfor,exitcode,signal";

/// Parses `s6-svstat -o up,wantedup,ready,pid,updownfor,exitcode,signal`.
pub(crate) fn parse_status(line: &str) -> Option<ServiceStatus> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let [up, want, ready, pid, secs, code, signal] = f.as_slice() else {
        return None;
    };
    let flag = |s: &str| match s {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    };
    let up = flag(up)?;
    let want_up = flag(want)?;
    let pid = pid.parse::<i64>().ok()?;
    let for_secs = secs.parse::<u64>().ok()?;
    let pid = u32::try_from(pid).ok().filter(|_| up);
    let text = if up {
        format!(
            "up (pid {}) for {for_secs}s",
            pid.map_or_else(|| "?".into(), |p| p.to_string())
        )
    } else {
        let how = match (*code, *signal) {
            ("-1", "NA") | ("-1", "-1") => String::new(),
            ("-1", sig) => format!(" (signal {sig})"),
            (code, _) => format!(" (exit code {code})"),
        };
        format!(
            "down{how} for {for_secs}s, {}",
            if want_up { "want up" } else { "want down" }
        )
    };
    Some(ServiceStatus {
        supervised: true,
        up,
        want_up,
        finishing: false,
        ready: flag(ready)?,
        pid,
        for_secs,
        text,
    })
}

impl S6 {
    fn stop_one(&self, dir: &Path, deadline: Deadline) -> Result<()> {
        if !supervised(dir)? {
            report::trace(&format!("{}: not supervised, already down", shown(&dir)));
            return Ok(());
        }
        let cmd = Argv::new("s6-svc")
            .arg("-T")
            .arg(deadline.left_ms().to_string())
            .arg("-wD")
            .arg("-d")
            .arg(dir);
        let out = cmd.run()?;
        if !out.success() {
            // Exit 99 is s6-svc's timeout; anything else is a failure too,
            // unless the supervisor went away meanwhile (then it is down).
            if !supervised(dir)? {
                return Ok(());
            }
            let st = self.status(dir)?;
            return Err(Error::supervisor_of(
                dir,
                format!(
                    "did not stop within {}s ({}): {}",
                    self.stop_timeout.as_secs_f64(),
                    st.text,
                    cmd.failed(&out)
                ),
            ));
        }
        wait_down(dir, deadline, self.stop_timeout, || self.status(dir))
    }
}

impl Adapter for S6 {
    fn stop(&self, _name: &str, object: &Path) -> Result<()> {
        stop_instances(object, self.stop_timeout, |dir, deadline| {
            self.stop_one(dir, deadline)
        })
    }

    fn restart(&self, _name: &str, object: &Path) -> Result<()> {
        restart_instances(object, supervised, |dir| {
            Argv::new("s6-svc").arg("-u").arg(dir)
        })
    }

    fn notify(&self, scandir: &Path) -> Result<()> {
        if !scanner_running(scandir)? {
            report::info(&format!(
                "no s6-svscan runs on {}; it will pick up the services when it starts",
                shown(&scandir)
            ));
            return Ok(());
        }
        Argv::new("s6-svscanctl")
            .arg("-an")
            .arg(scandir)
            .run_ok()
            .map(|_| ())
    }

    fn status(&self, dir: &Path) -> Result<ServiceStatus> {
        let query = Argv::new("s6-svstat").arg("-o").arg(FIELDS).arg(dir);
        query_status(dir, supervised, &query, parse_status)
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
        let out = Argv::new("s6-svwait")
            .arg(if need_ready { "-U" } else { "-u" })
            .arg("-t")
            .arg(deadline.left_ms().to_string())
            .arg(dir)
            .run()?;
        if !out.success() {
            report::debug(&format!(
                "s6-svwait on {} gave up: {}",
                shown(&dir),
                out.said()
            ));
        }
        wait_stable_up(deadline, need_ready, || self.status(dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_svstat_fields() {
        let up = parse_status("true true false 31093 4 -1 NA\n").unwrap();
        assert!(up.up && up.want_up && !up.ready);
        assert_eq!((up.pid, up.for_secs), (Some(31093), 4));
        let flap = parse_status("false true false -1 0 1 NA").unwrap();
        assert!(!flap.up && flap.want_up && flap.pid.is_none());
        assert_eq!(flap.text, "down (exit code 1) for 0s, want up");
        let stopped = parse_status("false false false -1 0 -1 SIGTERM").unwrap();
        assert_eq!(stopped.text, "down (signal SIGTERM) for 0s, want down");
        assert!(parse_status("true true").is_none());
        assert!(parse_status("maybe true false 1 0 -1 NA").is_none());
    }
}
