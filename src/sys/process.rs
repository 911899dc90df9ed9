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

impl fmt::Display for ProcessSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} (started at tick {}", self.pid, self.start_time)?;
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
