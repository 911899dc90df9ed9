//! Process signatures: (boot id, pid, start time) — what identifies a process
//! across pid reuse and reboots.
//!
//! Read from `/proc` through the procfs crate. A signature matches a live
//! process only if all three parts are equal, so a recycled pid is never
//! taken for the process that once had it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::shown::{bounded, shown};

/// The most characters of a command line kept and shown: enough to know the
/// program; the rest is cut with `…`. A holder's argv is not ours to bound
/// (docs/security.md#outside-text-is-shown-escaped).
pub(crate) const MAX_CMDLINE: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProcessSignature {
    pub boot_id: String,
    pub pid: i32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
    /// The command line, informative only (never compared); at most
    /// [`MAX_CMDLINE`] characters.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cmdline: String,
}

/// Whether a recorded process still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Liveness {
    /// The very same process runs.
    Running,
    /// The pid runs, but it is another process (start time or boot differs).
    PidReused,
    /// No such pid.
    Gone,
}

pub(crate) fn boot_id() -> String {
    procfs::sys::kernel::random::boot_id()
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl ProcessSignature {
    /// The signature of process `pid`, if it exists.
    pub(crate) fn of_pid(pid: i32) -> Option<ProcessSignature> {
        let proc = procfs::process::Process::new(pid).ok()?;
        let stat = proc.stat().ok()?;
        let cmdline = proc
            .cmdline()
            .map(|args| bounded(&args.join(" "), MAX_CMDLINE).into_owned())
            .unwrap_or_default();
        Some(ProcessSignature {
            boot_id: boot_id(),
            pid,
            start_time: stat.starttime,
            cmdline,
        })
    }

    /// The signature of this process.
    pub(crate) fn myself() -> ProcessSignature {
        let pid = rustix::process::getpid().as_raw_nonzero().get();
        ProcessSignature::of_pid(pid).unwrap_or(ProcessSignature {
            boot_id: boot_id(),
            pid,
            start_time: 0,
            cmdline: String::new(),
        })
    }

    /// Same process: boot id, pid and start time all equal.
    pub(crate) fn same_process(&self, other: &ProcessSignature) -> bool {
        self.boot_id == other.boot_id
            && self.pid == other.pid
            && self.start_time == other.start_time
    }

    /// Is this process still running (and not replaced by a pid reuse)?
    pub(crate) fn liveness(&self) -> Liveness {
        match ProcessSignature::of_pid(self.pid) {
            None => Liveness::Gone,
            Some(now) if now.same_process(self) => Liveness::Running,
            Some(_) => Liveness::PidReused,
        }
    }
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Liveness::Running => "running",
            Liveness::PidReused => "not running: its pid now belongs to a different process",
            Liveness::Gone => "not running",
        })
    }
}

impl ProcessSignature {
    /// When the process started, as a wall-clock time: the boot time plus
    /// its start in clock ticks. `None` for a process of another boot, or
    /// when the boot time cannot be read.
    pub(crate) fn started_at(&self) -> Option<std::time::SystemTime> {
        if self.start_time == 0 || self.boot_id != boot_id() {
            return None;
        }
        let boot = procfs::boot_time_secs().ok()?;
        let ticks = procfs::ticks_per_second().max(1);
        let since_boot = std::time::Duration::from_secs(self.start_time / ticks)
            + std::time::Duration::from_secs(self.start_time % ticks)
                / u32::try_from(ticks).ok()?;
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(boot) + since_boot)
    }
}

/// "pid N, started TIME, `CMDLINE`": the start as a wall-clock time in
/// UTC (to the millisecond, so two processes of one pid differ), never as
/// clock ticks since boot.
impl fmt::Display for ProcessSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.pid)?;
        match self.started_at() {
            Some(t) => write!(f, " (started {}", humantime::format_rfc3339_millis(t))?,
            None if self.boot_id != boot_id() => f.write_str(" (started before the last boot")?,
            None => f.write_str(" (start time unknown")?,
        }
        if !self.cmdline.is_empty() {
            // Bounded again: a signature may come from a file.
            let cmdline = bounded(&self.cmdline, MAX_CMDLINE);
            write!(f, ", `{}`", shown(cmdline.as_ref()))?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_time_is_shown_as_a_wall_clock_time_not_ticks() {
        let me = ProcessSignature::myself();
        let started = me.started_at().expect("this boot");
        // Boot time is whole seconds (a start may seem a second ahead);
        // allow for that and a slow start.
        let age = std::time::SystemTime::now()
            .duration_since(started)
            .unwrap_or_default();
        assert!(age < std::time::Duration::from_secs(120), "{age:?}");
        let shown = me.to_string();
        assert!(
            shown.starts_with(&format!("pid {} (started 20", me.pid)),
            "{shown}"
        );
        assert!(!shown.contains("tick"), "{shown}");
        let earlier_boot = ProcessSignature {
            boot_id: "another".into(),
            ..me
        };
        assert!(
            earlier_boot
                .to_string()
                .contains("started before the last boot")
        );
    }

    #[test]
    fn own_signature_is_running_and_a_changed_start_time_is_not() {
        let me = ProcessSignature::myself();
        assert!(me.start_time > 0);
        assert_eq!(me.liveness(), Liveness::Running);
        let mut other = me.clone();
        other.start_time += 1;
        assert_eq!(other.liveness(), Liveness::PidReused);
        assert!(!other.same_process(&me));
    }
}
