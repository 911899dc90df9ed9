//! Who holds a flock: every process that has the locked file open through
//! an open file description that carries the lock, read from `/proc`.
//!
//! `/proc/locks` names only the process that *took* a flock, which may have
//! exited long ago (a holder that forked a child keeping the fd, then
//! exited). The kernel prints a `lock:` line in `/proc/<pid>/fdinfo/<fd>`
//! for every lock owned by that fd's open file description, so every
//! process sharing the description is named. This module only reads
//! `/proc`; it never takes, breaks or waits for a lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::os::unix::fs::MetadataExt;

use serde::Serialize;

use crate::sys::process::ProcessSignature;

/// How a holder holds its flock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LockMode {
    /// `LOCK_SH` (a service in a critical section, a pinned program).
    Shared,
    /// `LOCK_EX` (a transaction, or a misbehaving client).
    Exclusive,
}

/// One process holding a flock on a file, with its signature, its real
/// uid and whether it is svcdir-update: a lock file some other program
/// holds is named as such (docs/security.md#who-holds-a-lock-is-named-from-proc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct LockHolder {
    #[serde(flatten)]
    pub process: ProcessSignature,
    pub mode: LockMode,
    /// The holder's real uid, when `/proc` tells it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    /// The holder's `comm` (its program name, at most 15 bytes).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub comm: String,
    /// Runs the same executable as this process (or is named
    /// `svcdir-update`): another run of the tool, not a foreign program.
    #[serde(skip)]
    pub svcdir_update: bool,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match self.mode {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
        };
        write!(f, "{}", self.process)?;
        if !self.comm.is_empty() {
            write!(f, " {}", crate::model::shown::shown(&self.comm))?;
        }
        if let Some(uid) = self.uid {
            write!(f, " uid {uid}")?;
        }
        write!(f, " [{mode}]")
    }
}

/// Every process except this one that holds a flock on the file with
/// identity `(dev, ino)` (see [`crate::sys::fs::file_identity`]), sorted by
/// pid. Processes that vanish or cannot be read while scanning are skipped.
pub(crate) fn holders_of(identity: (u64, u64)) -> Vec<LockHolder> {
    holders_of_many(&BTreeSet::from([identity]))
        .remove(&identity)
        .unwrap_or_default()
}

/// [`holders_of`] for many files with one pass over `/proc`; files nobody
/// holds are absent from the map.
pub(crate) fn holders_of_many(ids: &BTreeSet<(u64, u64)>) -> BTreeMap<(u64, u64), Vec<LockHolder>> {
    let me = std::process::id();
    let mut out: BTreeMap<(u64, u64), Vec<LockHolder>> = BTreeMap::new();
    if ids.is_empty() {
        return out;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let held = process_locks(pid, ids);
        if held.is_empty() {
            continue;
        }
        let Some(process) = i32::try_from(pid).ok().and_then(ProcessSignature::of_pid) else {
            continue;
        };
        let who = Who::of(pid);
        for (id, mode) in held {
            out.entry(id).or_default().push(LockHolder {
                process: process.clone(),
                mode,
                uid: who.uid,
                comm: who.comm.clone(),
                svcdir_update: who.svcdir_update,
            });
        }
    }
    for list in out.values_mut() {
        list.sort_by_key(|h| h.process.pid);
    }
    out
}

/// Who runs a process, from `/proc`: beyond its signature, what tells a
/// foreign holder from the tool.
struct Who {
    uid: Option<u32>,
    comm: String,
    svcdir_update: bool,
}

impl Who {
    fn of(pid: u32) -> Who {
        let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("Uid:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            });
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim_end_matches('\n').to_string())
            .unwrap_or_default();
        let exe = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        let same_exe =
            exe("/proc/self/exe").is_some_and(|me| exe(&format!("/proc/{pid}/exe")) == Some(me));
        Who {
            uid,
            svcdir_update: same_exe || comm == "svcdir-update",
            comm,
        }
    }
}

/// The flocks `pid` holds on any of `ids` (the strongest per file).
fn process_locks(pid: u32, ids: &BTreeSet<(u64, u64)>) -> BTreeMap<(u64, u64), LockMode> {
    let mut found = BTreeMap::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return found;
    };
    for fd in fds.flatten() {
        let Ok(md) = std::fs::metadata(fd.path()) else {
            continue;
        };
        let id = (md.dev(), md.ino());
        if !ids.contains(&id) {
            continue;
        }
        let info_path = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
        let Ok(info) = std::fs::read_to_string(info_path) else {
            continue;
        };
        if let Some(mode) = parse_fdinfo_lock(&info, id.1) {
            let slot = found.entry(id).or_insert(mode);
            if mode == LockMode::Exclusive {
                *slot = mode;
            }
        }
    }
    found
}

/// The flock mode in an fdinfo text, from a line like
/// `lock:\t1: FLOCK  ADVISORY  READ 1234 fe:00:10010690 0 EOF`.
pub(crate) fn parse_fdinfo_lock(info: &str, ino: u64) -> Option<LockMode> {
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("lock:") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // [n:, FLOCK, ADVISORY, READ|WRITE, pid, maj:min:ino, start, end]
        if fields.get(1) != Some(&"FLOCK") {
            continue;
        }
        let ino_matches = fields
            .get(5)
            .and_then(|d| d.rsplit(':').next())
            .and_then(|i| i.parse::<u64>().ok())
            .is_none_or(|i| i == ino);
        if !ino_matches {
            continue;
        }
        return match fields.get(3) {
            Some(&"WRITE") => Some(LockMode::Exclusive),
            Some(&"READ") => Some(LockMode::Shared),
            _ => None,
        };
    }
    None
}

/// Holders as one line for messages: `pid 1 (…) [shared], pid 2 (…) [shared]`.
pub(crate) fn describe(holders: &[LockHolder]) -> String {
    if holders.is_empty() {
        return "a process that could not be identified".into();
    }
    holders
        .iter()
        .map(LockHolder::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fdinfo_lock_lines() {
        let info = "pos:\t0\nflags:\t0100000\nmnt_id:\t27\nino:\t10010690\n\
                    lock:\t1: FLOCK  ADVISORY  READ 26991 fe:00:10010690 0 EOF\n";
        assert_eq!(parse_fdinfo_lock(info, 10010690), Some(LockMode::Shared));
        assert_eq!(parse_fdinfo_lock(info, 7), None);
        let w = info.replace("READ", "WRITE");
        assert_eq!(parse_fdinfo_lock(&w, 10010690), Some(LockMode::Exclusive));
        let posix = info.replace("FLOCK", "POSIX");
        assert_eq!(parse_fdinfo_lock(&posix, 10010690), None);
        assert_eq!(parse_fdinfo_lock("pos:\t0\n", 1), None);
    }

    #[test]
    fn names_this_threads_flock_only_through_another_process() {
        // This process is excluded; a lock held only by us has no holders.
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let file = tmp.reopen().unwrap();
        assert!(crate::sys::fs::try_lock_shared(&file).unwrap());
        let id = crate::sys::fs::file_identity(&file).unwrap();
        assert!(holders_of(id).is_empty());
    }
}
