//! The scan directory: one symlink per live service,
//! `<scandir>/<name> -> <state>/live/<name>`.
//!
//! Because every link goes through `live`, a switch repoints all services at
//! once; the scan directory itself changes only when a service is added or
//! removed. Entries the tool did not create (anything but a symlink to our
//! own `live/<name>`) are never touched, only reported.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::model::shown::shown;
use crate::output::report;
use crate::sys::fs::Dir;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ScanSync {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Names the tool would manage but that hold something it did not create.
    pub foreign: Vec<String>,
}

impl ScanSync {
    pub(crate) fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

/// Opens the configured scan directory, creating it when missing. The path
/// is configuration and may be a symlink (Void Linux's `/var/service`
/// points into `/etc/runit/runsvdir/`), so it is followed.
pub(crate) fn open(cfg: &crate::config::Config) -> Result<Dir> {
    if cfg.scandir.exists() {
        Dir::open_following(&cfg.scandir)
    } else {
        Dir::open_or_create(&cfg.scandir, 0o755)
    }
}

/// The link target for a service: through `live`, absolute.
pub(crate) fn link_target(live: &Path, name: &str) -> PathBuf {
    live.join(name)
}

/// What the scan directory holds under each name, from one listing and one
/// readlink per entry, side by side (a no-op commit surveys every live
/// service, docs/performance.md#100000-services-memory-after-this-change).
fn survey(scandir: &Dir, live: &Path) -> Result<BTreeMap<String, bool>> {
    use rayon::prelude::*;
    let names: Vec<String> = scandir
        .names()?
        .into_iter()
        .filter_map(|entry| entry.into_string().ok())
        .collect();
    names
        .into_par_iter()
        .map(|name| {
            let ours = scandir
                .try_read_link(&name)?
                .is_some_and(|t| t == link_target(live, &name));
            Ok((name, ours))
        })
        .collect()
}

/// What [`sync`] would change, without changing it.
pub(crate) fn drift(scandir: &Dir, live: &Path, services: &BTreeSet<String>) -> Result<ScanSync> {
    let present = survey(scandir, live)?;
    let mut out = ScanSync::default();
    for (name, ours) in &present {
        if *ours && !services.contains(name) {
            out.removed.push(name.clone());
        }
    }
    for name in services {
        match present.get(name) {
            None => out.added.push(name.clone()),
            Some(true) => {}
            Some(false) => out.foreign.push(name.clone()),
        }
    }
    Ok(out)
}

/// Makes the scan directory hold exactly our links for `services`.
pub(crate) fn sync(scandir: &Dir, live: &Path, services: &BTreeSet<String>) -> Result<ScanSync> {
    let out = drift(scandir, live, services)?;
    for name in &out.removed {
        scandir.remove_if_exists(name)?;
    }
    for name in &out.added {
        scandir.symlink(link_target(live, name), name)?;
    }
    for name in &out.foreign {
        report::warn(&format!(
            "{} exists and was not made by svcdir-update; left as it is, so the scanner \
             does not see the managed {name} (remove it to hand the name over)",
            shown(&scandir.join(name))
        ));
    }
    if out.changed() {
        scandir.sync()?;
    }
    Ok(out)
}

/// Applies a transaction's changes only: links for `added`, removal of our
/// links for `removed`. Costs what changed, not what exists (the full
/// [`sync`] runs at boot, from `svcdir-update sync`, and on a no-op commit).
pub(crate) fn apply(
    scandir: &Dir,
    live: &Path,
    added: &[&str],
    removed: &[&str],
) -> Result<ScanSync> {
    let mut out = ScanSync::default();
    for name in removed {
        let ours = scandir
            .try_read_link(name)?
            .is_some_and(|t| t == link_target(live, name));
        if ours {
            scandir.remove_if_exists(name)?;
            out.removed.push(name.to_string());
        }
    }
    for name in added {
        match scandir.try_read_link(name)? {
            Some(t) if t == link_target(live, name) => {}
            None if scandir.try_stat(name)?.is_none() => {
                scandir.symlink(link_target(live, name), name)?;
                out.added.push(name.to_string());
            }
            _ => {
                report::warn(&format!(
                    "{} exists and was not made by svcdir-update; left as it is, so the scanner \
                     does not see the managed {name} (remove it to hand the name over)",
                    shown(&scandir.join(name))
                ));
                out.foreign.push(name.to_string());
            }
        }
    }
    if out.changed() {
        scandir.sync()?;
    }
    Ok(out)
}
