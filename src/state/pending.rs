//! The pending-commit marker `<state>/pending`: a commit that could not run
//! now (exit 75: the manager lock, an update lock, or a stock tree still
//! being written) and that the next `commit` or `sync` must apply.
//!
//! `commit` records the marker itself when it defers, so a dpkg trigger can
//! treat exit 75 as success without losing the change. The marker is
//! written in place without the manager lock (the deferring run may not
//! have it); its content — time, pid and reason — only has to differ
//! between two writes. A successful commit removes it only if it still
//! holds what the commit saw when it started, under the lock and before it
//! read the stock: a marker written later is for a change that commit may
//! have missed, and stays. This module never decides to commit; callers do.

use std::io::{Read, Write};

use crate::error::{Error, Result};
use crate::model::shown::bounded;
use crate::state::layout;
use crate::sys::fs::{self, Dir};

/// What the marker held when a run started (`None`: no marker).
pub(crate) type Seen = Option<Vec<u8>>;

/// Reads the marker, if any.
pub(crate) fn read(state: &Dir) -> Result<Seen> {
    let Some(mut file) = state.try_open_lock_file(layout::PENDING)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| Error::io("cannot read", state.join(layout::PENDING), e))?;
    Ok(Some(bytes))
}

/// The most characters of the reason a marker keeps: the first lines of an
/// error are what says why; the rest (thousands of held locks) would make a
/// large file to fsync on every deferral.
const MAX_REASON: usize = 4096;

/// Records a deferred commit and why, durably (the file and the directory
/// are fsynced: a crash right after dpkg finished must not lose it).
pub(crate) fn record(state: &Dir, reason: &str) -> Result<()> {
    let path = state.join(layout::PENDING);
    let now = std::time::SystemTime::now();
    // Line 1: when and who (unique per write); line 2: why.
    let line = format!(
        "{} pid {} nanos {}\n{}\n",
        humantime::format_rfc3339_seconds(now),
        std::process::id(),
        now.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
        bounded(&reason.replace('\n', " "), MAX_REASON)
    );
    let mut file = state.open_rw(layout::PENDING, 0o644)?;
    file.set_len(0)
        .map_err(|e| Error::create("truncate", &path, e))?;
    file.write_all(line.as_bytes())
        .map_err(|e| Error::create("write", &path, e))?;
    fs::sync_file(&file, &path)?;
    state.sync()
}

/// Removes the marker after a successful commit, unless it changed since
/// `seen` was read (a newer deferral the commit may not have covered).
/// Returns whether a marker was cleared.
pub(crate) fn clear_if_unchanged(state: &Dir, seen: &Seen) -> Result<bool> {
    let Some(seen) = seen else {
        return Ok(false);
    };
    if read(state)?.as_ref() != Some(seen) {
        return Ok(false);
    }
    state.remove_if_exists(layout::PENDING)?;
    state.sync()?;
    Ok(true)
}
