//! Pins of store objects (design §4.4, issue 5): `<runtime>/pins/<object>.pin`.
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
use crate::error::{Error, Result};
use crate::sys::fs::{self, Dir};
use crate::locks::holders::{self, LockHolder};
use crate::state::layout;
use crate::state::check_safe_dir;

const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

/// The pin file name of a store object.
pub(crate) fn file_name(object: &str) -> String {
    format!("{object}{}", layout::PIN_SUFFIX)
}

/// Opens `<runtime>/pins`, creating it root-owned 0755 (exit 77 if others
/// could write it).
pub(crate) fn pins_dir(cfg: &Config) -> Result<Dir> {
    let runtime = Dir::open_or_create(&cfg.runtime, DIR_MODE)?;
    check_safe_dir(&runtime)?;
    let dir = runtime.ensure_dir(layout::PINS, DIR_MODE)?;
    check_safe_dir(&dir)?;
    Ok(dir)
}

/// `<runtime>/pins` if it exists.
pub(crate) fn try_pins_dir(cfg: &Config) -> Result<Option<Dir>> {
    let Ok(runtime) = Dir::open(&cfg.runtime) else {
        return Ok(None);
    };
    runtime.try_open_dir(layout::PINS)
}

/// Opens the pin of `object` *without* `O_CLOEXEC` and tries `LOCK_SH`:
/// the returned fd, and its lock, survive `execve`. `Ok(None)` while `gc`
/// holds the pin exclusively.
pub(crate) fn try_pin_inheritable(dir: &Dir, object: &str) -> Result<Option<File>> {
    let name = file_name(object);
    let file = dir.open_lock_file(&name, FILE_MODE, true)?;
    let got =
        fs::try_lock_shared(&file).map_err(|e| Error::io("cannot lock", dir.join(&name), e))?;
    Ok(got.then_some(file))
}

/// `gc`'s claim on an object: `LOCK_EX` on its pin, held while the object
/// is removed.
#[derive(Debug)]
pub(crate) struct Claim {
    name: String,
    file: File,
}

impl Claim {
    /// Tries `LOCK_EX|LOCK_NB` on the pin of `object`; `Ok(None)` when a
    /// program holds it.
    pub(crate) fn try_take(dir: &Dir, object: &str) -> Result<Option<Claim>> {
        let name = file_name(object);
        let file = dir.open_lock_file(&name, FILE_MODE, false)?;
        let got = fs::try_lock_exclusive(&file)
            .map_err(|e| Error::io("cannot lock", dir.join(&name), e))?;
        Ok(got.then_some(Claim { name, file }))
    }

    /// The object is gone: unlink its pin while still holding it, then let go.
    pub(crate) fn release_removed(self, dir: &Dir) -> Result<()> {
        dir.remove_if_exists(&self.name)?;
        drop(self.file);
        Ok(())
    }
}

/// Is `object` pinned right now? (Takes and drops the claim at once.)
pub(crate) fn is_pinned(dir: &Dir, object: &str) -> Result<bool> {
    if dir.try_stat(file_name(object))?.is_none() {
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
    let mut files = Vec::new();
    for name in dir.names()? {
        let Some(name) = name.to_str() else { continue };
        let Some(object) = name.strip_suffix(layout::PIN_SUFFIX) else {
            continue;
        };
        let Some(file) = dir.try_open_lock_file(name)? else {
            continue;
        };
        if let Ok(id) = fs::file_identity(&file) {
            files.push((object.to_string(), id));
        }
    }
    let ids = files.iter().map(|(_, id)| *id).collect();
    let mut holders = holders::holders_of_many(&ids);
    Ok(files
        .into_iter()
        .filter_map(|(object, id)| {
            holders.remove(&id).map(|holders| PinStatus {
                path: cfg.state.join(layout::STORE).join(&object),
                object,
                holders,
            })
        })
        .collect())
}
