//! The manager lock: `flock(LOCK_EX)` on `<state>/.lock`, held by every
//! writing command for its whole run.
//!
//! The file is never unlinked (unlinking a flock file lets two holders
//! coexist); its content is the holder's process signature, informative only
//! — the kernel lock is the truth, so a crashed holder can never leave a
//! stale lock. Waiting is bounded and says who holds the lock before it waits
//! (the one wait loop, src/locks/wait.rs), naming every holder from `/proc`
//! and saying when it is not svcdir-update. The file is 0600: only the
//! state owner may open, and so flock, it
//! (docs/security.md#the-manager-lock-is-private-to-the-state-owner).

use std::fs::File;
use std::io::{Seek, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::locks::holders::{LockMode, describe};
use crate::locks::lock_dir::{holders_of_file, try_lock_file};
use crate::locks::wait::{self, Attempt, NameHolders};
use crate::model::shown::shown;
use crate::output::report;
use crate::state::layout;
use crate::sys::fs::{self, Dir};
use crate::sys::process::{Liveness, ProcessSignature};
use crate::sys::trust::{Found, Trust};

/// Mode of `<state>/.lock`: only the state owner may open it, so no other
/// user can flock it and block every writing command
/// (docs/security.md#the-manager-lock-is-private-to-the-state-owner).
const LOCK_MODE: u32 = 0o600;

#[derive(Debug)]
pub(crate) struct ManagerLock {
    _file: File,
}

/// Who blocks the manager lock: the holders `/proc` names, or the record
/// in the file when `/proc` names none.
#[derive(Debug)]
struct Blocker {
    text: Option<String>,
    /// Every holder found is some program other than svcdir-update.
    foreign: bool,
}

impl ManagerLock {
    /// Takes the lock, waiting up to `wait` for a current holder.
    pub(crate) fn acquire(state: &Dir, wait: Duration) -> Result<ManagerLock> {
        let path = state.join(layout::LOCK);
        if let Some(st) = state.try_stat(layout::LOCK)? {
            Trust::MANAGER_LOCK.check(&path, (&st).into())?;
        }
        let mut file = state.open_rw(layout::LOCK, LOCK_MODE)?;
        make_private(&file, &path)?;
        let try_once = |names: NameHolders| {
            Ok(if try_lock_file(&file, LockMode::Exclusive, &path)? {
                Attempt::Taken(())
            } else if names.0 {
                Attempt::Busy(blocker(state, &file))
            } else {
                Attempt::Busy(Blocker {
                    text: None,
                    foreign: false,
                })
            })
        };
        wait::acquire(
            wait,
            try_once,
            |b| {
                let holder = b.text.as_deref().unwrap_or("another process");
                let what = if b.foreign { ", not svcdir-update" } else { "" };
                format!("{} held by {holder}{what}", shown(&path))
            },
            |b| {
                Err(Error::ManagerLockHeld {
                    lock: path.to_path_buf(),
                    holder: b.text,
                    foreign: b.foreign,
                })
            },
        )?;
        // Record who holds it (informative; the flock is the truth).
        let me = ProcessSignature::myself();
        let text = serde_yaml::to_string(&me).unwrap_or_default();
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()))
            .map_err(|e| Error::create("write", &path, e))?;
        Ok(ManagerLock { _file: file })
    }
}

/// Checks the opened lock file (the file checked is the file locked) and
/// takes group and others' access away from one an older version made
/// 0644. A process that opened it before keeps its fd: it is named when
/// it blocks.
fn make_private(file: &File, path: &Path) -> Result<()> {
    let found: Found = (&fs::stat_fd(file, path)?).into();
    Trust::MANAGER_LOCK.check(path, found)?;
    if found.mode & 0o077 != 0 {
        fs::set_mode_fd(file.as_fd(), LOCK_MODE, path)?;
        report::debug(&format!(
            "{}: mode {:04o} tightened to {LOCK_MODE:04o}",
            path.display(),
            found.mode & 0o7777
        ));
    }
    Ok(())
}

/// Names who holds the lock: every holder from `/proc`, saying whether
/// they are svcdir-update; else the record, if its writer still runs.
fn blocker(state: &Dir, file: &File) -> Blocker {
    let holders = holders_of_file(file);
    if holders.is_empty() {
        return Blocker {
            text: read_holder(state).map(|h| h.to_string()),
            foreign: false,
        };
    }
    Blocker {
        foreign: holders.iter().all(|h| !h.svcdir_update),
        text: Some(describe(&holders)),
    }
}

/// The recorded holder of the manager lock, if it is still running (the
/// very same process: boot id, pid and start time all match).
pub(crate) fn read_holder(state: &Dir) -> Option<ProcessSignature> {
    read_recorded(state).filter(|sig| sig.liveness() == Liveness::Running)
}

/// The signature recorded in `.lock` by the last holder, running or not.
pub(crate) fn read_recorded(state: &Dir) -> Option<ProcessSignature> {
    let bytes = state.read_capped(layout::LOCK, 64 << 10).ok()?;
    if crate::format::yaml_guard::yaml_nesting_problem(&bytes).is_some() {
        return None;
    }
    serde_yaml::from_slice(&bytes).ok()
}

/// Every process holding the manager lock right now, from `/proc`.
pub(crate) fn holders(state: &Dir) -> Vec<crate::locks::holders::LockHolder> {
    let Ok(file) = state.open_file(layout::LOCK) else {
        return Vec::new();
    };
    holders_of_file(&file)
}

/// Is the manager lock held right now (by anyone, this process included)?
pub(crate) fn is_held(state: &Dir) -> bool {
    let Ok(file) = state.open_file(layout::LOCK) else {
        return false;
    };
    match fs::try_lock_shared(&file) {
        Ok(true) => false,
        Ok(false) => true,
        Err(_) => false,
    }
}
