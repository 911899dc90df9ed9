//! Pins of store objects: `<runtime>/pins/<object>.pin`.
//!
//! `svcdir-update exec` takes `flock(LOCK_SH)` on the pin of the object it
//! runs from and hands the locked fd to the program across `execve`, so the
//! pin lives exactly as long as the program. `gc` removes an object only
//! while it holds `LOCK_EX|LOCK_NB` on its pin, and unlinks the pin file
//! while still holding it; a launcher that pinned a file which `gc` then
//! unlinked finds the object gone and resolves `live` again. This module
//! never removes objects or starts programs.

use std::fs::File;
use std::path::PathBuf;

use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::locks::holders::{LockHolder, LockMode};
use crate::locks::lock_dir::{LockDir, LockKind};
use crate::state::layout;

/// Opens `<runtime>/pins`, creating it root-owned 0755 (exit 77 if others
/// could write it).
pub(crate) fn pins_dir(cfg: &Config) -> Result<LockDir> {
    LockDir::create(cfg, LockKind::Pin)
}

/// `<runtime>/pins` if it exists.
pub(crate) fn try_pins_dir(cfg: &Config) -> Result<Option<LockDir>> {
    LockDir::open_existing(cfg, LockKind::Pin)
}

/// Opens the pin of `object` *without* `O_CLOEXEC` and tries `LOCK_SH`:
/// the returned fd, and its lock, survive `execve`. `Ok(None)` while `gc`
/// holds the pin exclusively.
pub(crate) fn try_pin_inheritable(dir: &LockDir, object: &str) -> Result<Option<File>> {
    dir.try_lock(object, LockMode::Shared, true)
}

/// `gc`'s claim on an object: `LOCK_EX` on its pin, held while the object
/// is removed.
#[derive(Debug)]
pub(crate) struct Claim {
    object: String,
    file: File,
}

impl Claim {
    /// Tries `LOCK_EX|LOCK_NB` on the pin of `object`; `Ok(None)` when a
    /// program holds it.
    pub(crate) fn try_take(dir: &LockDir, object: &str) -> Result<Option<Claim>> {
        let file = dir.try_lock(object, LockMode::Exclusive, false)?;
        Ok(file.map(|file| Claim {
            object: object.to_string(),
            file,
        }))
    }

    /// The object is gone: unlink its pin while still holding it, then let go.
    pub(crate) fn release_removed(self, dir: &LockDir) -> Result<()> {
        dir.remove(&self.object)?;
        drop(self.file);
        Ok(())
    }
}

/// Is `object` pinned right now? (Takes and drops the claim at once.)
pub(crate) fn is_pinned(dir: &LockDir, object: &str) -> Result<bool> {
    if !dir.exists(object)? {
        return Ok(false);
    }
    Ok(Claim::try_take(dir, object)?.is_none())
}

/// A pinned object as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PinStatus {
    pub object: String,
    pub path: PathBuf,
    pub holders: Vec<LockHolder>,
}

/// Every pin held by a running program, with the programs' signatures.
pub(crate) fn held(cfg: &Config) -> Result<Vec<PinStatus>> {
    let Some(dir) = try_pins_dir(cfg)? else {
        return Ok(Vec::new());
    };
    Ok(dir
        .held()?
        .into_iter()
        .map(|(object, _pin, holders)| PinStatus {
            path: cfg
                .state
                .join(layout::STORE)
                .join(layout::object_service_dir(&object)),
            object,
            holders,
        })
        .collect())
}
