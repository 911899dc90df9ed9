//! The scan directory: one symlink per live service,
//! `<scandir>/<name> -> <state>/live/<name>`.
//!
//! Because every link goes through `live`, a switch repoints all services at
//! once; the scan directory itself changes only when a service is added or
//! removed. Entries the tool did not create (anything but a symlink to our
//! own `live/<name>`) are never touched, only reported.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::Result;
use crate::fsops::Dir;
use crate::report;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanSync {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Names the tool would manage but that hold something it did not create.
    pub foreign: Vec<String>,
}

impl ScanSync {
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

/// The link target for a service: through `live`, absolute.
pub fn link_target(live: &Path, name: &str) -> PathBuf {
    live.join(name)
}

/// Is `name` in the scan directory a link this tool made?
fn is_ours(scandir: &Dir, live: &Path, name: &str) -> Result<bool> {
    Ok(scandir
        .try_read_link(name)?
        .is_some_and(|t| t == link_target(live, name)))
}

/// Makes the scan directory hold exactly our links for `services`.
pub fn sync(scandir: &Dir, live: &Path, services: &BTreeSet<String>) -> Result<ScanSync> {
    let mut out = ScanSync::default();
    for entry in scandir.names()? {
        let Some(name) = entry.to_str() else { continue };
        if !services.contains(name) && is_ours(scandir, live, name)? {
            scandir.remove_if_exists(name)?;
            out.removed.push(name.to_string());
        }
    }
    for name in services {
        match scandir.try_stat(name)? {
            None => {
                scandir.symlink(link_target(live, name), name)?;
                out.added.push(name.clone());
            }
            Some(_) if is_ours(scandir, live, name)? => {}
            Some(_) => {
                report::warn(&format!(
                    "{} exists and was not made by svcdir-update; left as it is, so the scanner \
                     does not see the managed {name} (remove it to hand the name over)",
                    scandir.join(name).display()
                ));
                out.foreign.push(name.clone());
            }
        }
    }
    if out.changed() {
        scandir.sync()?;
    }
    Ok(out)
}

/// What [`sync`] would change, without changing it.
pub fn drift(scandir: &Dir, live: &Path, services: &BTreeSet<String>) -> Result<ScanSync> {
    let mut out = ScanSync::default();
    for entry in scandir.names()? {
        let Some(name) = entry.to_str() else { continue };
        if !services.contains(name) && is_ours(scandir, live, name)? {
            out.removed.push(name.to_string());
        }
    }
    for name in services {
        match scandir.try_stat(name)? {
            None => out.added.push(name.clone()),
            Some(_) if is_ours(scandir, live, name)? => {}
            Some(_) => out.foreign.push(name.clone()),
        }
    }
    Ok(out)
}
