//! The manager lock: `flock(LOCK_EX)` on `<state>/.lock`, held by every
//! writing command for its whole run.
//!
//! The file is never unlinked (unlinking a flock file lets two holders
//! coexist); its content is the holder's process signature, informative only
//! — the kernel lock is the truth, so a crashed holder can never leave a
//! stale lock. Waiting is bounded and says who holds the lock before it waits
//! (the one wait loop, src/locks/wait.rs).

use std::fs::File;
use std::io::{Seek, Write};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::locks::holders::LockMode;
use crate::locks::lock_dir::{holders_of_file, try_lock_file};
use crate::locks::wait::{self, Attempt};
use crate::model::shown::shown;
use crate::state::layout;
use crate::sys::fs::{self, Dir};
use crate::sys::process::{Liveness, ProcessSignature};
use crate::sys::trust::Trust;

#[derive(Debug)]
pub(crate) struct ManagerLock {
    _file: File,
}

impl ManagerLock {
    /// Takes the lock, waiting up to `wait` for a current holder.
    pub(crate) fn acquire(state: &Dir, wait: Duration) -> Result<ManagerLock> {
        let path = state.join(layout::LOCK);
        if let Some(st) = state.try_stat(layout::LOCK)? {
            Trust::MANAGER_LOCK.check(&path, (&st).into())?;
        }
        let mut file = state.open_rw(layout::LOCK, 0o644)?;
        // The recorded holder is read on every busy try: one small file,
        // no scan of `/proc`.
        let try_once = |_| {
            Ok(if try_lock_file(&file, LockMode::Exclusive, &path)? {
                Attempt::Taken(())
            } else {
                Attempt::Busy(read_holder(state))
            })
        };
        wait::acquire(
            wait,
            try_once,
            |holder| {
                let holder = holder
                    .as_ref()
                    .map_or_else(|| "another process".to_string(), ToString::to_string);
                format!("{} held by {holder}", shown(&path))
            },
            |holder| {
                Err(Error::ManagerLockHeld {
                    lock: path.to_path_buf(),
                    holder: holder.map(|h| h.to_string()),
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
