//! The lock directories under `<runtime>`: `locks/` (per-service update
//! locks, `<name>.lock`) and `pins/` (pins of store objects,
//! `<object>.pin`). Both kinds are flock files made by the tool in a
//! directory owned by whoever runs the tool, refused (exit 77) when others
//! could write the directory; the kinds differ by directory, suffix and
//! who may open them ([`LockKind`]): update locks are 0644 in a 0755
//! directory, for services to flock (0640 and group-owned for a service
//! in `update_lock_group`); pins are private, 0600 in a 0700 directory
//! (docs/security.md#pins-are-private-to-the-state-owner). The tool sets
//! these modes on every file and directory it opens to write, so a lock
//! file an older version made is tightened too.
//!
//! This module opens, locks and lists lock files; it never decides what a
//! lock protects (see [`crate::locks::update`], [`crate::locks::pin`]) and
//! never unlinks a lock file but through [`LockDir::remove`], which only
//! `gc` calls while it holds the pin.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::locks::holders::{self, LockHolder, LockMode};
use crate::locks::wait::{Attempt, NameHolders};
use crate::state::check_safe_dir;
use crate::state::layout;
use crate::sys::fs::{self, Dir};

/// Mode of `<runtime>` and of `locks/` when the tool makes them.
const DIR_MODE: u32 = 0o755;
/// Mode of an update lock: readable by services, which only need to flock it.
const FILE_MODE: u32 = 0o644;
/// Mode of an update lock restricted to a group (`update_lock_group`).
const GROUP_FILE_MODE: u32 = 0o640;
/// Mode of `pins/`: nobody but the state owner reaches a pin
/// (docs/security.md#pins-are-private-to-the-state-owner).
const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of a pin: taken by `exec` as the state owner, inherited across
/// `execve` by a program that may drop privileges later.
const PRIVATE_FILE_MODE: u32 = 0o600;

/// Which lock directory: they differ by name and file suffix only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockKind {
    /// `<runtime>/locks/<service>.lock`.
    Update,
    /// `<runtime>/pins/<object>.pin`.
    Pin,
}

impl LockKind {
    fn dir_name(self) -> &'static str {
        match self {
            LockKind::Update => layout::LOCKS,
            LockKind::Pin => layout::PINS,
        }
    }

    /// The mode of the directory.
    fn dir_mode(self) -> u32 {
        match self {
            LockKind::Update => DIR_MODE,
            LockKind::Pin => PRIVATE_DIR_MODE,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            LockKind::Update => layout::LOCK_SUFFIX,
            LockKind::Pin => layout::PIN_SUFFIX,
        }
    }

    /// The lock file name of `name` (a service or a store object).
    pub(crate) fn file_name(self, name: &str) -> String {
        format!("{name}{}", self.suffix())
    }

    /// `<runtime>/<dir>/<name><suffix>`, for messages before the directory
    /// is opened.
    pub(crate) fn path(self, cfg: &Config, name: &str) -> PathBuf {
        cfg.runtime.join(self.dir_name()).join(self.file_name(name))
    }
}

/// An open lock directory of one kind.
#[derive(Debug)]
pub(crate) struct LockDir {
    kind: LockKind,
    dir: Dir,
    /// Update locks restricted to a group: service → gid (`update_lock_group`).
    groups: BTreeMap<String, u32>,
}

/// The mode, and group if any, a lock file must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Access {
    mode: u32,
    gid: Option<u32>,
}

impl LockDir {
    /// Opens `<runtime>/<dir>`, creating it (and `<runtime>` 0755) with
    /// the kind's mode; refuses either if others could write it (exit 77).
    /// A `pins/` an older version made 0755 is made 0700.
    pub(crate) fn create(cfg: &Config, kind: LockKind) -> Result<LockDir> {
        let runtime = Dir::open_or_create(&cfg.runtime, DIR_MODE)?;
        check_safe_dir(&runtime)?;
        let dir = runtime.ensure_dir(kind.dir_name(), kind.dir_mode())?;
        check_safe_dir(&dir)?;
        let mode = dir.self_stat()?.st_mode & 0o7777;
        if kind == LockKind::Pin && mode != PRIVATE_DIR_MODE {
            dir.set_mode(PRIVATE_DIR_MODE)?;
        }
        Ok(LockDir {
            kind,
            dir,
            groups: groups_of(cfg, kind),
        })
    }

    /// `<runtime>/<dir>` if it exists (read-only commands never create it).
    pub(crate) fn open_existing(cfg: &Config, kind: LockKind) -> Result<Option<LockDir>> {
        let Ok(runtime) = Dir::open_following(&cfg.runtime) else {
            return Ok(None);
        };
        Ok(runtime.try_open_dir(kind.dir_name())?.map(|dir| LockDir {
            kind,
            dir,
            groups: groups_of(cfg, kind),
        }))
    }

    /// The path of `name`'s lock file.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(self.kind.file_name(name))
    }

    /// Opens `name`'s lock file, creating it when missing, and gives it
    /// the mode (and group) it must have. `inheritable` leaves out
    /// `O_CLOEXEC` (the fd survives `execve`).
    pub(crate) fn open(&self, name: &str, inheritable: bool) -> Result<File> {
        let access = self.access(name);
        let file = self
            .dir
            .open_lock_file(self.kind.file_name(name), access.mode, inheritable)?;
        self.set_access(&file, name, access)?;
        Ok(file)
    }

    /// The mode and group `name`'s lock file must have.
    fn access(&self, name: &str) -> Access {
        match (self.kind, self.groups.get(name)) {
            (LockKind::Pin, _) => Access {
                mode: PRIVATE_FILE_MODE,
                gid: None,
            },
            (LockKind::Update, Some(&gid)) => Access {
                mode: GROUP_FILE_MODE,
                gid: Some(gid),
            },
            (LockKind::Update, None) => Access {
                mode: FILE_MODE,
                gid: None,
            },
        }
    }

    /// Gives an open lock file `access`, when this process owns it (a lock
    /// file root made is left alone by anyone else): new files are made
    /// with the mode already, older ones and changed configs are caught up.
    fn set_access(&self, file: &File, name: &str, access: Access) -> Result<()> {
        let path = self.path(name);
        let st = fs::stat_fd(file, &path)?;
        if st.st_uid != rustix::process::geteuid().as_raw() {
            return Ok(());
        }
        if let Some(gid) = access.gid.filter(|&gid| gid != st.st_gid) {
            fs::set_group_fd(file.as_fd(), gid, &path)?;
        }
        if st.st_mode & 0o7777 != access.mode {
            fs::set_mode_fd(file.as_fd(), access.mode, &path)?;
        }
        Ok(())
    }

    /// `name`'s lock file if it exists; never creates it.
    pub(crate) fn try_open_existing(&self, name: &str) -> Result<Option<File>> {
        self.dir.try_open_lock_file(self.kind.file_name(name))
    }

    /// Does `name` have a lock file?
    pub(crate) fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.dir.try_stat(self.kind.file_name(name))?.is_some())
    }

    /// Opens (creating if needed) `name`'s lock file and tries to flock it
    /// `mode` without blocking; `Ok(None)` when another process holds it.
    pub(crate) fn try_lock(
        &self,
        name: &str,
        mode: LockMode,
        inheritable: bool,
    ) -> Result<Option<File>> {
        let file = self.open(name, inheritable)?;
        try_lock_file(&file, mode, &self.path(name)).map(|got| got.then_some(file))
    }

    /// Every process holding `name`'s lock (a scan of `/proc`).
    pub(crate) fn holders(&self, name: &str) -> Result<Vec<LockHolder>> {
        let file = self.open(name, false)?;
        Ok(holders_of_file(&file))
    }

    /// Unlinks `name`'s lock file (only while holding it exclusively: a pin
    /// whose object is gone).
    pub(crate) fn remove(&self, name: &str) -> Result<()> {
        self.dir.remove_if_exists(self.kind.file_name(name))
    }

    /// Every lock file in the directory that some process holds: its name
    /// (suffix stripped), path and holders, sorted by name, with one pass
    /// over `/proc`.
    ///
    /// The listing names each file's inode (`d_ino`), so only the held
    /// files are `lstat`-ed, to confirm them: a state of 100,000 services
    /// has as many lock files, and `status` looks at every one
    /// (docs/performance.md#status-and-check-at-100000-services). Where an
    /// entry's `d_ino` is not its `st_ino` (checked on one entry), every
    /// file is `lstat`-ed instead.
    pub(crate) fn held(&self) -> Result<Vec<(String, PathBuf, Vec<LockHolder>)>> {
        #[allow(clippy::unnecessary_cast)]
        let dev = self.dir.self_stat()?.st_dev as u64;
        let listed = self.lock_files(dev)?;
        let files = if self.inodes_agree(&listed)? {
            listed
        } else {
            self.stat_each(listed)?
        };
        let ids = files.iter().map(|f| f.id).collect();
        let mut holders = holders::holders_of_many(&ids);
        let mut out = Vec::new();
        for file in files {
            let Some(held_by) = holders.remove(&file.id) else {
                continue;
            };
            // The entry may have been replaced since it was listed.
            let name = file.file_name.strip_suffix(self.kind.suffix());
            if let (Some(name), true) =
                (name, self.file_identity(&file.file_name)? == Some(file.id))
            {
                out.push((name.to_string(), self.dir.join(&file.file_name), held_by));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The lock files as listed, each with the device `dev` of the
    /// directory and the inode number of its entry.
    fn lock_files(&self, dev: u64) -> Result<Vec<LockFile>> {
        let suffix = self.kind.suffix();
        Ok(self
            .dir
            .names_and_inodes()?
            .into_iter()
            .filter_map(|(file_name, ino)| {
                let file_name = file_name.into_string().ok()?;
                file_name.ends_with(suffix).then_some(LockFile {
                    file_name,
                    id: (dev, ino),
                })
            })
            .collect())
    }

    /// Whether the listing's identities are those `lstat` gives, tried on
    /// the first listed file that is still there.
    fn inodes_agree(&self, listed: &[LockFile]) -> Result<bool> {
        for file in listed {
            let Some(st) = self.dir.try_stat(&file.file_name)? else {
                continue;
            };
            #[allow(clippy::unnecessary_cast)]
            return Ok((st.st_dev as u64, st.st_ino as u64) == file.id);
        }
        Ok(true)
    }

    /// The listed regular files with their identities from `lstat`.
    fn stat_each(&self, listed: Vec<LockFile>) -> Result<Vec<LockFile>> {
        let mut files = Vec::new();
        for file in listed {
            if let Some(id) = self.file_identity(&file.file_name)? {
                files.push(LockFile { id, ..file });
            }
        }
        Ok(files)
    }

    /// The (device, inode) of `file_name` if it is a regular file.
    fn file_identity(&self, file_name: &str) -> Result<Option<(u64, u64)>> {
        let Some(st) = self.dir.try_stat(file_name)? else {
            return Ok(None);
        };
        #[allow(clippy::unnecessary_cast)]
        let id = (st.st_dev as u64, st.st_ino as u64);
        Ok((fs::Kind::of(&st) == fs::Kind::File).then_some(id))
    }
}

/// A lock file as [`LockDir::held`] looks at it.
struct LockFile {
    /// The name it locks (a service, an object) and the kind's suffix.
    file_name: String,
    /// (device, inode).
    id: (u64, u64),
}

/// The gids of update locks restricted to a group; none for pins.
fn groups_of(cfg: &Config, kind: LockKind) -> BTreeMap<String, u32> {
    match kind {
        LockKind::Update => cfg
            .update_lock_group
            .iter()
            .map(|(service, group)| (service.clone(), group.gid))
            .collect(),
        LockKind::Pin => BTreeMap::new(),
    }
}

/// Tries to flock an open lock file `mode` without blocking; `path` names
/// it in the error.
pub(crate) fn try_lock_file(file: &File, mode: LockMode, path: &Path) -> Result<bool> {
    let got = match mode {
        LockMode::Shared => fs::try_lock_shared(file),
        LockMode::Exclusive => fs::try_lock_exclusive(file),
    };
    got.map_err(|e| Error::io("cannot lock", path, e))
}

/// One try at flocking an open lock file `mode`: taken, or busy with its
/// holders (looked up only when `name_holders`, a scan of `/proc`).
pub(crate) fn try_lock_naming_holders(
    file: &File,
    mode: LockMode,
    path: &Path,
    name_holders: NameHolders,
) -> Result<Attempt<(), Vec<LockHolder>>> {
    if try_lock_file(file, mode, path)? {
        return Ok(Attempt::Taken(()));
    }
    Ok(Attempt::Busy(if name_holders.0 {
        holders_of_file(file)
    } else {
        Vec::new()
    }))
}

/// Every process other than this one holding a flock on `file`; none when
/// the file cannot be identified.
pub(crate) fn holders_of_file(file: &File) -> Vec<LockHolder> {
    fs::file_identity(file)
        .map(holders::holders_of)
        .unwrap_or_default()
}
