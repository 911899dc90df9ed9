//! "The stock changed while reading" (exit 75): recognising an entry that
//! vanished or changed type under the scanner, re-checking a scanned
//! service's fingerprints before its store object is published, and telling
//! a file whose content changed behind unchanged timestamps (a stale stat
//! cache record) from a writer still at work. Reads only.

use std::path::Path;

use crate::error::{Error, Problem, Problems, Result};
use crate::model::tree::{self, EntryKind};
use crate::stock::StockService;
use crate::stock::stat_cache::Fingerprint;
use crate::sys::fs::{Dir, DirChain};

/// Re-reads the fingerprints of `service` and fails with exit 75 if any
/// entry changed since [`crate::stock::scan`] (a package manager still writing).
pub(crate) fn recheck(service: &StockService) -> Result<()> {
    let root = Dir::open_following(&service.tree)?;
    let dir = root
        .open_dir(&service.name)
        .map_err(|e| raced(e, &service.dir()))?;
    // Each directory opened once, not once per entry below it; a bounded
    // number open (docs/security.md#bounded-file-descriptors).
    let mut dirs = DirChain::new(&dir);
    for (entry, fp) in service.entries.iter().zip(&service.fingerprints) {
        let now = if entry.path == tree::ROOT {
            dir.self_stat().ok().map(|st| Fingerprint::of(&st))
        } else {
            let (parent, base) = entry.path.rsplit_once('/').unwrap_or(("", &entry.path));
            dirs.get(Path::new(parent))
                .and_then(|parent| parent.try_stat(base))
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

/// The stat-cache keys of the files of `service` whose content no longer
/// has the scanned hash although `lstat` still says exactly what the scan
/// saw: written without a timestamp change (through a shared mapping), so
/// the cache's record, not the stock, is wrong
/// (docs/security.md#a-stale-stat-cache). A file that visibly changed, or
/// cannot be read, is not listed: that is a writer at work.
pub(crate) fn stale_hashes(service: &StockService) -> Vec<Fingerprint> {
    let Ok(dir) = Dir::open_following(&service.tree).and_then(|root| root.open_dir(&service.name))
    else {
        return Vec::new();
    };
    let mut stale = Vec::new();
    for (entry, fp) in service.entries.iter().zip(&service.fingerprints) {
        let (Some(want), EntryKind::File) = (entry.blake3, entry.kind) else {
            continue;
        };
        // A linked file is cached under its target's fingerprint.
        let opened = match service.linked.iter().find(|l| l.entry == entry.path) {
            Some(linked) => Dir::open_following(&linked.tree).ok().and_then(|root| {
                Some((
                    root.stat(&linked.rel).ok()?,
                    root.open_file(&linked.rel).ok()?,
                ))
            }),
            None => match dir.stat(&entry.path) {
                Ok(st) if Fingerprint::of(&st) == *fp => {
                    dir.open_file(&entry.path).ok().map(|file| (st, file))
                }
                _ => None,
            },
        };
        let Some((st, file)) = opened else { continue };
        let mut hasher = blake3::Hasher::new();
        if hasher.update_reader(&file).is_ok() && tree::ContentHash::from(hasher.finalize()) != want
        {
            stale.push(Fingerprint::of(&st));
        }
    }
    stale
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
