//! "The stock changed while reading" (exit 75): recognising an entry that
//! vanished or changed type under the scanner, and re-checking a scanned
//! service's fingerprints before its store object is published. Reads only.

use std::path::Path;

use crate::error::{Error, Problem, Problems, Result};
use crate::model::tree;
use crate::stock::StockService;
use crate::stock::stat_cache::Fingerprint;
use crate::sys::fs::Dir;

/// Re-reads the fingerprints of `service` and fails with exit 75 if any
/// entry changed since [`crate::stock::scan`] (a package manager still writing).
pub(crate) fn recheck(service: &StockService) -> Result<()> {
    let root = Dir::open_following(&service.tree)?;
    let dir = root
        .open_dir(&service.name)
        .map_err(|e| raced(e, &service.dir()))?;
    for (entry, fp) in service.entries.iter().zip(&service.fingerprints) {
        let now = if entry.path == tree::ROOT {
            dir.self_stat().ok().map(|st| Fingerprint::of(&st))
        } else {
            dir.try_stat(&entry.path)
                .ok()
                .flatten()
                .map(|st| Fingerprint::of(&st))
        };
        if now.as_ref() != Some(fp) {
            return Err(changed_while_reading(&service.dir().join(&entry.path)));
        }
    }
    // An added or removed entry changes its directory's mtime, checked above.
    Ok(())
}

/// Turns the error of an entry that vanished or changed type since it was
/// listed (see [`crate::sys::fs::is_race`]) into "stock changed while
/// reading" (exit 75); any other error stays what it is.
pub(crate) fn raced(err: Error, path: &Path) -> Error {
    if crate::sys::fs::is_race(&err) {
        changed_while_reading(path)
    } else {
        err
    }
}

pub(crate) fn changed_while_reading(path: &Path) -> Error {
    Error::StockBusy {
        problems: Problems(vec![Problem {
            path: path.to_path_buf(),
            what: "stock tree changed while reading; retry when the package manager is done".into(),
            fix: "nothing was published; the live generation is unchanged".into(),
            transient: true,
        }]),
    }
}
