//! The state directory: opening it safely, creating its layout, and finding
//! the live generation.
//!
//! [`State`] holds open directory fds for `<state>`, `store/`,
//! `generations/` and `cache/`; every later operation is relative to them.
//! Opening refuses (exit 77) a state or runtime directory that another user
//! could write, or one on a file system whose locking is unreliable.

pub(crate) mod documents;
pub(crate) mod generation;
pub(crate) mod held_back;
pub(crate) mod history;
pub(crate) mod layout;
pub(crate) mod pending;
pub(crate) mod pinned;
pub(crate) mod scandir;
pub(crate) mod store;
pub(crate) mod summary;
pub(crate) mod txn_log;
pub(crate) mod usage;

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::sys::fs::Dir;
use crate::sys::trust::Trust;

/// `statfs` magics (from `linux/magic.h`) of network and user-space file
/// systems, where flock may be emulated, advisory across clients only, or
/// silently local, and where rename and fsync do not promise what the
/// commit protocol needs.
const UNRELIABLE_FS: [(i64, &str); 9] = [
    (0x6969, "NFS"),
    (0x517B, "SMB"),
    (0xFF53_4D42, "CIFS"),
    (0xFE53_4D42, "SMB2"),
    (0x6573_5546, "FUSE"),
    (0x0102_1997, "9P"),
    (0x5346_414F, "AFS"),
    (0x00C3_6400, "Ceph"),
    (0x7375_7245, "Coda"),
];

/// `statfs` magics of file systems where an fsync of a directory also makes
/// a new symlink in it durable: XFS and btrfs log the new inode with the
/// entry. tmpfs and ramfs keep nothing across a power cut anyway. ext2/3/4
/// (one magic) only with a journal ([`crate::sys::journal`]): ext4 without
/// one, or ext2, writes a symlink's inode only at writeback. Anywhere else
/// new symlinks are made durable by a syncfs
/// (docs/durability.md#the-switch-and-symlinks).
const DIR_FSYNC_PERSISTS_SYMLINKS: [i64; 4] = [
    0x5846_5342, // XFS
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0x8584_58F6, // ramfs
];

/// Whether an fsync of a directory on the file system with magic `magic`
/// makes a new symlink in it durable (else a syncfs is needed).
pub(crate) fn dir_fsync_persists_symlinks(magic: i64) -> bool {
    DIR_FSYNC_PERSISTS_SYMLINKS.contains(&magic)
}

/// The name of the file system with `statfs` magic `magic` if the state
/// must not live on it.
pub(crate) fn unreliable_fs(magic: i64) -> Option<&'static str> {
    UNRELIABLE_FS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

#[derive(Debug)]
pub(crate) struct State {
    pub dir: Dir,
    pub store: Dir,
    pub generations: Dir,
    /// The stat cache's directory; `None` when a user who does not own the
    /// state opened it only to read (it is 0700).
    pub cache: Option<Dir>,
}

impl State {
    /// Creates the layout if needed (idempotent) and opens it.
    pub(crate) fn init(cfg: &Config) -> Result<State> {
        let dir = Dir::open_or_create(&cfg.state, 0o755)?;
        check_safe_dir(&dir)?;
        let store = dir.ensure_dir(layout::STORE, 0o755)?;
        let generations = dir.ensure_dir(layout::GENERATIONS, 0o755)?;
        let cache = Some(dir.ensure_dir(layout::CACHE, 0o700)?);
        let state = State::checked(
            State {
                dir,
                store,
                generations,
                cache,
            },
            Trust::OWN_DIR,
        )?;
        if state.format()? == layout::CURRENT_FORMAT {
            state.write_format_marker()?;
        }
        Ok(state)
    }

    /// Opens an existing layout; `None` when `init` never ran. Held to the
    /// policy for reading ([`Trust::READ_DIR`]): a command that writes
    /// checks [`State::check_writable`] before it takes the manager lock.
    pub(crate) fn open(cfg: &Config) -> Result<Option<State>> {
        if !cfg.state.exists() {
            return Ok(None);
        }
        // Configuration: followed once if a symlink, then fd-relative.
        let dir = Dir::open_following(&cfg.state)?;
        check_dir(&dir, Trust::READ_DIR)?;
        let st = dir.self_stat()?;
        crate::stock::set_state_owner(st.st_uid, st.st_gid);
        let (Some(store), Some(generations)) = (
            dir.try_open_dir(layout::STORE)?,
            dir.try_open_dir(layout::GENERATIONS)?,
        ) else {
            return Ok(None);
        };
        let mine = dir.self_stat()?.st_uid == rustix::process::geteuid().as_raw();
        let cache = if mine {
            Some(dir.ensure_dir(layout::CACHE, 0o700)?)
        } else {
            // Another user's (root's) cache is not ours to create or read.
            dir.try_open_dir(layout::CACHE).ok().flatten()
        };
        State::checked(
            State {
                dir,
                store,
                generations,
                cache,
            },
            Trust::READ_DIR,
        )
        .map(Some)
    }

    /// The stat cache's directory of an existing state, opened only to
    /// read it (`check`, docs/cli.md#check-and-the-stat-cache): `None`
    /// when there is no state or no `cache/`, when either may not be
    /// trusted for reading, or when this user may not open it (root's 0700
    /// `cache/`). Unlike [`State::open`] it creates nothing and records no
    /// state owner, so what `check` reports does not depend on the state.
    pub(crate) fn cache_to_read(cfg: &Config) -> Option<Dir> {
        let dir = Dir::open_following(&cfg.state).ok()?;
        check_dir(&dir, Trust::READ_DIR).ok()?;
        let cache = dir.try_open_dir(layout::CACHE).ok()??;
        check_dir(&cache, Trust::READ_DIR).ok()?;
        Some(cache)
    }

    /// Refuses (exit 77, saying to run as root or the owner) a state the
    /// user running this may not write: what every writing command checks
    /// before it takes the manager lock.
    pub(crate) fn check_writable(&self) -> Result<()> {
        for dir in [&self.dir, &self.store, &self.generations]
            .into_iter()
            .chain(self.cache.as_ref())
        {
            check_safe_dir(dir)?;
        }
        Ok(())
    }

    /// Like [`State::open`], for commands that only read: a state in
    /// another format is refused with what to run ([`State::require_current_format`]).
    pub(crate) fn open_current(cfg: &Config) -> Result<Option<State>> {
        let state = State::open(cfg)?;
        if let Some(state) = &state {
            state.require_current_format()?;
        }
        Ok(state)
    }

    /// The subdirectories are held to the same rule as `<state>`: one
    /// another user could write would let them plant a store object or a
    /// generation that the next switch makes live.
    fn checked(state: State, trust: Trust) -> Result<State> {
        for dir in [&state.store, &state.generations]
            .into_iter()
            .chain(state.cache.as_ref())
        {
            check_dir(dir, trust)?;
        }
        Ok(state)
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The absolute path of `object`'s service directory, where its
    /// supervisor runs it: `<state>/store/<object>/<service>`.
    pub(crate) fn object_path(&self, object: &str) -> PathBuf {
        self.store.join(layout::object_service_dir(object))
    }

    /// The on-disk format of this state: the marker's number; without a
    /// marker, [`layout::UNNAMED_OBJECTS_FORMAT`] when 0.1 left objects or
    /// generations, else the current format (a state nothing was written to).
    pub(crate) fn format(&self) -> Result<u32> {
        if self.dir.try_stat(layout::FORMAT)?.is_some() {
            let bytes = self.dir.read_capped(layout::FORMAT, 64)?;
            let text = String::from_utf8_lossy(&bytes);
            return text.trim().parse().map_err(|_| {
                Error::damaged(
                    self.dir.join(layout::FORMAT),
                    format!("holds {text:?}, not a format number"),
                )
            });
        }
        let written = |dir: &Dir| -> Result<bool> {
            Ok(dir
                .names()?
                .iter()
                .any(|n| !n.as_encoded_bytes().starts_with(b".")))
        };
        if written(&self.store)? || written(&self.generations)? {
            Ok(layout::UNNAMED_OBJECTS_FORMAT)
        } else {
            Ok(layout::CURRENT_FORMAT)
        }
    }

    /// Records that this state is in the current format (atomic, durable;
    /// a no-op when the marker already says so).
    pub(crate) fn write_format_marker(&self) -> Result<()> {
        if self.dir.try_stat(layout::FORMAT)?.is_some() && self.format()? == layout::CURRENT_FORMAT
        {
            return Ok(());
        }
        let line = format!("{}\n", layout::CURRENT_FORMAT);
        self.dir
            .write_atomic(layout::FORMAT, line.as_bytes(), 0o644)
    }

    /// For commands that only read: the state must be in the current
    /// format. An older one is migrated by the next writing command only,
    /// under the manager lock (src/engine/migrate.rs).
    pub(crate) fn require_current_format(&self) -> Result<()> {
        match self.format()? {
            // Format 2 is a format-3 state without dormant generations.
            layout::CURRENT_FORMAT | layout::NAMED_OBJECTS_FORMAT => Ok(()),
            found => Err(self.format_error(found)),
        }
    }

    /// The error for a state in format `found`, which is not the current one.
    pub(crate) fn format_error(&self, found: u32) -> Error {
        let what = if found < layout::CURRENT_FORMAT {
            format!(
                "written by svcdir-update 0.1 (state format {found}); run `svcdir-update commit` \
                 (or `sync`) to migrate it to format {}",
                layout::CURRENT_FORMAT
            )
        } else {
            format!(
                "has state format {found}, newer than this svcdir-update understands ({})",
                layout::CURRENT_FORMAT
            )
        };
        Error::StateFormat {
            state: self.path().to_path_buf(),
            what,
        }
    }

    /// The absolute path `<state>/live`, which scan directory links point through.
    pub(crate) fn live_path(&self) -> PathBuf {
        self.dir.join(layout::LIVE)
    }

    /// The generation `live` points at; `None` before the first commit.
    pub(crate) fn live(&self) -> Result<Option<u64>> {
        match self.dir.try_read_link(layout::LIVE)? {
            None => Ok(None),
            Some(target) => parse_live_target(&target).map(Some).ok_or_else(|| {
                Error::damaged(
                    self.live_path(),
                    format!(
                        "points at {target:?}, which is not a generation; run `svcdir-update recover`"
                    ),
                )
            }),
        }
    }

    /// Points `live` at generation `n`: a new symlink renamed over the old one,
    /// then an fsync of the state directory. This is the commit point.
    pub(crate) fn switch_live(&self, n: u64) -> Result<()> {
        self.dir.remove_if_exists(layout::LIVE_TMP)?;
        self.dir.symlink(live_target(n), layout::LIVE_TMP)?;
        crate::sys::failpoint::hit("switch.after-symlink")?;
        self.dir.rename(layout::LIVE_TMP, &self.dir, layout::LIVE)?;
        crate::sys::failpoint::hit("switch.after-rename")?;
        self.dir.sync()
    }

    /// Makes new symlinks of the state (`live`, a generation's links)
    /// durable where a directory fsync does not: one syncfs of the state
    /// file system, unless it is one of [`dir_fsync_persists_symlinks`].
    /// Runs before the rollback log is removed, so a power cut never loses
    /// a switch that no log describes any more.
    pub(crate) fn sync_symlinks(&self) -> Result<()> {
        let magic = self.dir.statfs_type()?;
        if dir_fsync_persists_symlinks(magic) {
            return Ok(());
        }
        if magic == crate::sys::journal::EXT_MAGIC && !self.on_ext_without_symlink_journal()? {
            return Ok(());
        }
        self.dir.sync_fs()
    }

    /// Whether the state is on ext2, ext3 or ext4 whose journal does not
    /// keep new symlinks (none, or `data=writeback`): there
    /// [`State::sync_symlinks`] is a syncfs that every commit making a
    /// generation pays, and a measured cheap one
    /// (docs/durability.md#per-file-fsync-or-one-syncfs). On a file system
    /// not named (FUSE, network ones) what a syncfs costs is not known.
    pub(crate) fn on_ext_without_symlink_journal(&self) -> Result<bool> {
        if self.dir.statfs_type()? != crate::sys::journal::EXT_MAGIC {
            return Ok(false);
        }
        let dev = self.dir.self_stat()?.st_dev;
        #[allow(clippy::unnecessary_cast)] // u64 on most targets, not all
        Ok(!crate::sys::journal::ext_journal_keeps_symlinks(dev as u64))
    }
}

/// `generations/<N>`: what `live` holds.
pub(crate) fn live_target(n: u64) -> String {
    format!("{}/{n}", layout::GENERATIONS)
}

pub(crate) fn parse_live_target(target: &Path) -> Option<u64> {
    let s = target.to_str()?;
    let n = s.strip_prefix(layout::GENERATIONS)?.strip_prefix('/')?;
    parse_generation_number(n)
}

/// A generation directory name: decimal digits, no leading zero, ≥ 1.
pub(crate) fn parse_generation_number(s: &str) -> Option<u64> {
    if s.is_empty() || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Refuses a directory another user could write (the trust policy of
/// [`Trust::OWN_DIR`]), one whose default ACL would hand what we create in
/// it to others, or that lives on a file system where flock/rename
/// are unreliable.
pub(crate) fn check_safe_dir(dir: &Dir) -> Result<()> {
    check_dir(dir, Trust::OWN_DIR)?;
    if dir.has_default_acl()? {
        return Err(crate::sys::trust::refuse_default_acl(dir.path()));
    }
    Ok(())
}

/// [`check_safe_dir`]'s owner and file-system checks, with the owner
/// policy `trust` (reading commands take [`Trust::READ_DIR`]).
fn check_dir(dir: &Dir, trust: Trust) -> Result<()> {
    trust.check(dir.path(), (&dir.self_stat()?).into())?;
    let magic = dir.statfs_type()?;
    if let Some(name) = unreliable_fs(magic).filter(|_| !power_cut_model(magic)) {
        return Err(Error::Unsafe {
            role: "state directory",
            path: dir.path().to_path_buf(),
            found: format!("is on {name}, where flock and rename are not reliable"),
            fix: "put the state on a local file system".into(),
        });
    }
    Ok(())
}

/// The power-cut tests' FUSE model of a disk, in a test build only
/// (src/sys/failpoint.rs, docs/durability.md#the-power-cut-model).
fn power_cut_model(magic: i64) -> bool {
    unreliable_fs(magic) == Some("FUSE") && crate::sys::failpoint::fuse_state_allowed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_and_user_space_file_systems_are_refused() {
        // NFS cannot be mounted in the test environment; the refusal is the
        // table lookup on fstatfs's f_type, tested here.
        assert_eq!(unreliable_fs(0x6969), Some("NFS"));
        assert_eq!(unreliable_fs(0xFF53_4D42), Some("CIFS"));
        assert_eq!(unreliable_fs(0x6573_5546), Some("FUSE"));
        // ext4, tmpfs, xfs, btrfs, overlayfs are local and fine.
        for local in [0xEF53, 0x0102_1994, 0x5846_5342, 0x9123_683E, 0x794C_7630] {
            assert_eq!(unreliable_fs(local), None, "{local:#x}");
        }
    }

    #[test]
    fn live_targets_round_trip() {
        assert_eq!(parse_live_target(Path::new(&live_target(12))), Some(12));
        for bad in [
            "generations/",
            "generations/01",
            "generations/x",
            "gen/1",
            "generations/1/2",
        ] {
            assert_eq!(parse_live_target(Path::new(bad)), None, "{bad}");
        }
    }
}
