//! The single owner of file-system effects: fd-relative opens, creation,
//! renames, symlinks, removal and fsync.
//!
//! Every other module goes through [`Dir`], which pairs a directory file
//! descriptor with its path (for error messages only — the path is never used
//! to reach a file once the directory is open). Opens below a `Dir` never
//! follow symlinks (`O_NOFOLLOW`, one component at a time), so a tree written
//! by another party cannot redirect a read or a write. Every open below a
//! `Dir` goes through [`open_beneath`]: `openat2(2)` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS` where the kernel has it (Linux 5.6+), else a walk of
//! one component at a time with `O_NOFOLLOW` — either way no symlink in any
//! component is followed and no path leaves the directory. This module never
//! decides *what* to do; it only does it and names the path when it fails.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::path::Component;
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Stat};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::sys::trust::{self, Trust};

fn io_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

/// `openat2` support, probed on first use: 0 unknown, 1 present, 2 absent.
static OPENAT2: AtomicU8 = AtomicU8::new(0);

/// How often an `openat2` that failed with `EAGAIN` (a concurrent rename
/// somewhere on the system made the kernel unsure) is retried before the
/// slower per-component walk is used for that one open.
const OPENAT2_RETRIES: usize = 8;

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Opens `path` relative to `dir`, never following a symlink in any
/// component and never leaving `dir` (`..` above it, absolute paths and
/// symlinks all fail: `EXDEV` or `ELOOP`). Uses `openat2` where available
/// and [`open_beneath_walk`] elsewhere (which is stricter: it refuses any
/// `..`, even one that would stay inside).
pub(crate) fn open_beneath(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    mode: Mode,
) -> rustix::io::Result<OwnedFd> {
    if OPENAT2.load(Ordering::Relaxed) != 2 {
        for _ in 0..OPENAT2_RETRIES {
            match rustix::fs::openat2(dir, path, flags | OFlags::NOFOLLOW, mode, BENEATH) {
                Err(Errno::NOSYS | Errno::TOOBIG) => {
                    OPENAT2.store(2, Ordering::Relaxed);
                    break;
                }
                Err(Errno::AGAIN) => continue,
                // Longer than PATH_MAX (a reopen deep in a tree, see
                // [`DirChain`]): one component at a time has no such limit.
                Err(Errno::NAMETOOLONG) => break,
                other => {
                    OPENAT2.store(1, Ordering::Relaxed);
                    return other;
                }
            }
        }
    }
    open_beneath_walk(dir, path, flags, mode)
}

/// The portable form of [`open_beneath`]: opens each directory component
/// with `O_NOFOLLOW | O_DIRECTORY`, then the last one with `O_NOFOLLOW`.
/// `..`, absolute paths and an empty path are refused with `EXDEV`, as
/// `RESOLVE_BENEATH` would for one that climbs out.
pub(crate) fn open_beneath_walk(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    mode: Mode,
) -> rustix::io::Result<OwnedFd> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Errno::XDEV);
            }
        }
    }
    let Some((last, walk)) = parts.split_last() else {
        // `.` itself (or an empty path): this very directory.
        return rustix::fs::openat(dir, ".", flags | OFlags::NOFOLLOW, mode);
    };
    let mut held: Option<OwnedFd> = None;
    for part in walk {
        let at = held.as_ref().map_or(dir, AsFd::as_fd);
        // O_PATH | O_NOFOLLOW opens a symlink itself, so it can be told
        // apart (ELOOP, as openat2 says) from a non-directory (ENOTDIR).
        let next = rustix::fs::openat(
            at,
            *part,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        match FileType::from_raw_mode(rustix::fs::fstat(&next)?.st_mode) {
            FileType::Directory => held = Some(next),
            FileType::Symlink => return Err(Errno::LOOP),
            _ => return Err(Errno::NOTDIR),
        }
    }
    let at = held.as_ref().map_or(dir, AsFd::as_fd);
    rustix::fs::openat(at, *last, flags | OFlags::NOFOLLOW, mode)
}

/// Marks the error of a file that changed type between `lstat` and `open`
/// (see [`is_race`]).
#[derive(Debug)]
struct Replaced;

impl std::fmt::Display for Replaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("it was replaced while being read")
    }
}

impl std::error::Error for Replaced {}

/// Is `err` the sign of an entry that vanished or changed type between
/// being listed and being opened — someone writing the tree meanwhile
/// (`ENOENT`, `ENOTDIR`, a symlink met with `ELOOP`, an escape met with
/// `EXDEV`, `readlink` of a non-link with `EINVAL`, or a file that is no
/// longer regular)? Callers reading a tree others write report it as
/// "changing, retry" (exit 75), not as an I/O error.
pub(crate) fn is_race(err: &Error) -> bool {
    let Error::Io { source, .. } = err else {
        return false;
    };
    if source.get_ref().is_some_and(|e| e.is::<Replaced>()) {
        return true;
    }
    matches!(source.raw_os_error(), Some(code) if [
        Errno::NOENT,
        Errno::NOTDIR,
        Errno::LOOP,
        Errno::XDEV,
        Errno::INVAL,
    ]
    .iter()
    .any(|e| e.raw_os_error() == code))
}

/// Splits a multi-component `name` into an fd of its parent (opened
/// beneath `dir`) and its last component; a single component keeps `dir`.
fn parent_beneath<'a>(
    dir: &Dir,
    name: &'a Path,
) -> rustix::io::Result<(Option<OwnedFd>, &'a Path)> {
    match (name.parent(), name.file_name()) {
        (Some(parent), Some(base)) if !parent.as_os_str().is_empty() => {
            let fd = open_beneath(
                dir.fd(),
                parent,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok((Some(fd), Path::new(base)))
        }
        _ => Ok((None, name)),
    }
}

/// The most symlinks [`Dir::resolve_beneath`] follows, as the kernel's
/// `MAXSYMLINKS`.
const MAX_SYMLINK_HOPS: usize = 40;

/// Where [`Dir::resolve_beneath`] found a path to lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Beneath {
    /// The path, relative to the directory, with no symlink in it.
    Inside(PathBuf),
    /// `link` (relative to the directory) leads to `target`, outside it.
    Leaves { link: PathBuf, target: PathBuf },
}

/// The kind of a directory entry, from `lstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Other(FileType),
}

impl Kind {
    pub(crate) fn of(stat: &Stat) -> Kind {
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            other => Kind::Other(other),
        }
    }
}

/// An open directory: the fd does the work, the path names it in errors.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Whether [`Dir::names`] moved the fd's offset (a fresh fd is at 0,
    /// which saves an lseek per directory on a walk).
    read: std::sync::atomic::AtomicBool,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Dir {
    fn wrap(fd: OwnedFd, path: PathBuf) -> Dir {
        Dir {
            fd,
            path,
            read: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Opens an absolute or relative path as a directory. The last component
    /// must not be a symlink; earlier components are the administrator's
    /// configuration and are resolved normally.
    pub(crate) fn open(path: &Path) -> Result<Dir> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty())
            .map_err(|e| Error::io("cannot open directory", path, io_err(e)))?;
        Ok(Dir::wrap(fd, path.to_path_buf()))
    }

    /// Opens a directory named by the administrator (a stock tree), following
    /// symlinks in every component: the path is configuration, not input.
    pub(crate) fn open_following(path: &Path) -> Result<Dir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty())
            .map_err(|e| Error::io("cannot open directory", path, io_err(e)))?;
        Ok(Dir::wrap(fd, path.to_path_buf()))
    }

    /// Opens `path`, creating it (and missing parents) with `mode` first.
    /// The path is configuration (`--root`, `state:`, `runtime:`,
    /// `scandir:`): symlinks among its existing components, the last one
    /// included, are followed once, here; everything beneath works
    /// fd-relative (docs/security.md#a-state-path-reached-through-a-symlink).
    /// A component this call creates is opened without following: it must
    /// still be the directory just made.
    pub(crate) fn open_or_create(path: &Path, mode: u32) -> Result<Dir> {
        let following = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        match rustix::fs::open(path, following, Mode::empty()) {
            Ok(fd) => Ok(Dir::wrap(fd, path.to_path_buf())),
            Err(rustix::io::Errno::NOENT) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    Dir::open_or_create(parent, 0o755)?;
                }
                match rustix::fs::mkdir(path, Mode::from_raw_mode(mode)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(Error::create("create directory", path, io_err(e))),
                }
                // mkdir's mode is filtered by the umask; set it exactly.
                let dir = Dir::open(path)?;
                dir.set_mode(mode)?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    Dir::open_following(parent)?.sync()?;
                }
                Ok(dir)
            }
            Err(e) => Err(Error::io("cannot open directory", path, io_err(e))),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Opens a child directory without following a symlink.
    pub(crate) fn open_dir(&self, name: impl AsRef<Path>) -> Result<Dir> {
        let name = name.as_ref();
        let fd = open_beneath(self.fd.as_fd(), name, DIR_FLAGS, Mode::empty())
            .map_err(|e| Error::io("cannot open directory", self.join(name), io_err(e)))?;
        Ok(Dir::wrap(fd, self.join(name)))
    }

    /// Like [`Dir::open_dir`], but `None` when the child does not exist.
    pub(crate) fn try_open_dir(&self, name: impl AsRef<Path>) -> Result<Option<Dir>> {
        let name = name.as_ref();
        match open_beneath(self.fd.as_fd(), name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir::wrap(fd, self.join(name)))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io(
                "cannot open directory",
                self.join(name),
                io_err(e),
            )),
        }
    }

    /// Creates a child directory with exactly `mode` (umask does not apply).
    pub(crate) fn create_dir(&self, name: impl AsRef<Path>, mode: u32) -> Result<Dir> {
        let name = name.as_ref();
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700))
            .map_err(|e| Error::create("create directory", self.join(name), io_err(e)))?;
        let dir = self.open_dir(name)?;
        dir.set_mode(mode)?;
        Ok(dir)
    }

    /// Creates a child directory owner-only (`0700`, less the umask) for
    /// the caller to fill, then to give its final owner and mode: one
    /// `fchmod` fewer than [`Dir::create_dir`] per directory of a copy.
    pub(crate) fn create_dir_unfinished(&self, name: impl AsRef<Path>) -> Result<Dir> {
        let name = name.as_ref();
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700))
            .map_err(|e| Error::create("create directory", self.join(name), io_err(e)))?;
        self.open_dir(name)
    }

    /// Opens a child directory, creating it with `mode` when missing.
    pub(crate) fn ensure_dir(&self, name: impl AsRef<Path>, mode: u32) -> Result<Dir> {
        match self.try_open_dir(name.as_ref())? {
            Some(dir) => Ok(dir),
            None => match self.create_dir(name.as_ref(), mode) {
                Ok(dir) => {
                    self.sync()?;
                    Ok(dir)
                }
                Err(Error::Create { source, .. })
                    if source.kind() == io::ErrorKind::AlreadyExists =>
                {
                    self.open_dir(name)
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Names in this directory except `.` and `..`, sorted bytewise.
    ///
    /// Reads with getdents on this very fd (rewound first) rather than
    /// reopening the directory, which saves three syscalls per directory on
    /// a walk of tens of thousands of them.
    pub(crate) fn names(&self) -> Result<Vec<OsString>> {
        let mut out = Vec::new();
        self.each_entry(|name, _| out.push(OsStr::from_bytes(name).to_os_string()))?;
        out.sort();
        Ok(out)
    }

    /// Names in this directory except `.` and `..`, in the order the
    /// directory gives them, each with the inode number its entry records
    /// (`d_ino`): a listing that names inodes without an `lstat` per entry.
    /// On most file systems `d_ino` is the entry's `st_ino`, not on all
    /// (overlayfs may differ), and an entry can be replaced after it is
    /// listed: a caller checks by `lstat` what it acts on.
    pub(crate) fn names_and_inodes(&self) -> Result<Vec<(OsString, u64)>> {
        let mut out = Vec::new();
        self.each_entry(|name, ino| out.push((OsStr::from_bytes(name).to_os_string(), ino)))?;
        Ok(out)
    }

    /// Calls `each` with the name and `d_ino` of every entry but `.` and
    /// `..`, reading with getdents on this very fd (rewound first).
    fn each_entry(&self, mut each: impl FnMut(&[u8], u64)) -> Result<()> {
        let fail = |e| Error::io("cannot read directory", &self.path, io_err(e));
        if self.read.swap(true, std::sync::atomic::Ordering::Relaxed) {
            rustix::fs::seek(&self.fd, rustix::fs::SeekFrom::Start(0)).map_err(fail)?;
        }
        let mut buf: Vec<u8> = Vec::with_capacity(32 << 10);
        let mut reader = rustix::fs::RawDir::new(&self.fd, buf.spare_capacity_mut());
        while let Some(entry) = reader.next() {
            let entry = entry.map_err(fail)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                each(name, entry.ino());
            }
        }
        Ok(())
    }

    /// `lstat` of a child.
    pub(crate) fn stat(&self, name: impl AsRef<Path>) -> Result<Stat> {
        let name = name.as_ref();
        self.lstat_beneath(name)
            .map_err(|e| Error::io("cannot stat", self.join(name), io_err(e)))
    }

    /// `lstat` of `name`, whose earlier components (if any) are resolved
    /// beneath this directory without following symlinks.
    fn lstat_beneath(&self, name: &Path) -> rustix::io::Result<Stat> {
        let (parent, base) = parent_beneath(self, name)?;
        let at = parent.as_ref().map_or(self.fd(), AsFd::as_fd);
        rustix::fs::statat(at, base, AtFlags::SYMLINK_NOFOLLOW)
    }

    /// `readlink` of `name`, resolved like [`Dir::lstat_beneath`].
    fn readlink_beneath(&self, name: &Path) -> rustix::io::Result<std::ffi::CString> {
        let (parent, base) = parent_beneath(self, name)?;
        let at = parent.as_ref().map_or(self.fd(), AsFd::as_fd);
        rustix::fs::readlinkat(at, base, Vec::new())
    }

    /// `lstat` of a child, `None` when it does not exist.
    pub(crate) fn try_stat(&self, name: impl AsRef<Path>) -> Result<Option<Stat>> {
        let name = name.as_ref();
        match self.lstat_beneath(name) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io("cannot stat", self.join(name), io_err(e))),
        }
    }

    /// Bytes allocated on disk by a child and everything below it (st_blocks,
    /// without following symlinks), counting each inode once across calls
    /// that share `seen`.
    pub(crate) fn disk_usage(
        &self,
        name: impl AsRef<Path>,
        seen: &mut std::collections::HashSet<(u64, u64)>,
    ) -> Result<u64> {
        let name = name.as_ref();
        let Some(st) = self.try_stat(name)? else {
            return Ok(0);
        };
        let mut total = 0;
        let mut count = |st: &Stat| {
            if seen.insert((st.st_dev, st.st_ino)) {
                total += u64::try_from(st.st_blocks).unwrap_or(0) * 512;
            }
        };
        count(&st);
        if Kind::of(&st) == Kind::Dir {
            // Depth first with a bounded number of directories open
            // (docs/security.md#bounded-file-descriptors).
            let mut chain = DirChain::new(self);
            let mut dirs = vec![name.to_path_buf()];
            while let Some(rel) = dirs.pop() {
                let dir = chain.get(&rel)?;
                for entry in dir.names()? {
                    let Some(st) = dir.try_stat(&entry)? else {
                        continue;
                    };
                    count(&st);
                    if Kind::of(&st) == Kind::Dir {
                        dirs.push(rel.join(entry));
                    }
                }
            }
        }
        Ok(total)
    }

    /// Where `path` (plain components only) leads beneath this directory
    /// when symlinks are followed the way `execve` would follow them, one
    /// `lstat` per component: the same file named without any symlink
    /// ([`Beneath::Inside`]), or the first link that leaves the directory —
    /// absolute, or with more `..` than it is deep ([`Beneath::Leaves`]).
    /// A missing component ends the walk: the rest is kept as written.
    pub(crate) fn resolve_beneath(&self, path: &Path) -> Result<Beneath> {
        let mut todo: std::collections::VecDeque<PathBuf> =
            path.iter().map(PathBuf::from).collect();
        let mut done = PathBuf::new();
        let mut hops = 0;
        // The last link followed: a `..` that climbs out came from it.
        let mut followed = (PathBuf::new(), PathBuf::new());
        while let Some(part) = todo.pop_front() {
            match part.to_str() {
                Some(".") => continue,
                Some("..") => {
                    if !done.pop() {
                        let (link, target) = followed;
                        return Ok(Beneath::Leaves { link, target });
                    }
                    continue;
                }
                _ => {}
            }
            let next = done.join(&part);
            let Some(st) = self.try_stat(&next)? else {
                done = next;
                done.extend(todo);
                return Ok(Beneath::Inside(done));
            };
            if Kind::of(&st) != Kind::Symlink {
                done = next;
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(Error::io(
                    "cannot resolve",
                    self.join(path),
                    io_err(Errno::LOOP),
                ));
            }
            let target = self.read_link(&next)?;
            if target.is_absolute() {
                return Ok(Beneath::Leaves { link: next, target });
            }
            for (i, c) in target.iter().enumerate() {
                todo.insert(i, PathBuf::from(c));
            }
            followed = (next, target);
        }
        Ok(Beneath::Inside(done))
    }

    /// `fstat` of this directory itself.
    pub(crate) fn self_stat(&self) -> Result<Stat> {
        rustix::fs::fstat(&self.fd).map_err(|e| Error::io("cannot stat", &self.path, io_err(e)))
    }

    pub(crate) fn read_link(&self, name: impl AsRef<Path>) -> Result<PathBuf> {
        let name = name.as_ref();
        let target = self
            .readlink_beneath(name)
            .map_err(|e| Error::io("cannot read link", self.join(name), io_err(e)))?;
        Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
    }

    /// The target of a child symlink, `None` when it is missing or not a link.
    pub(crate) fn try_read_link(&self, name: impl AsRef<Path>) -> Result<Option<PathBuf>> {
        let name = name.as_ref();
        match self.readlink_beneath(name) {
            Ok(t) => Ok(Some(PathBuf::from(OsStr::from_bytes(t.as_bytes())))),
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::INVAL) => Ok(None),
            Err(e) => Err(Error::io("cannot read link", self.join(name), io_err(e))),
        }
    }

    /// Opens a child regular file for reading, never following a symlink and
    /// never blocking on a FIFO that replaced it.
    pub(crate) fn open_file(&self, name: impl AsRef<Path>) -> Result<File> {
        let name = name.as_ref();
        let fd = open_beneath(
            self.fd.as_fd(),
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| Error::io("cannot open", self.join(name), io_err(e)))?;
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| Error::io("cannot stat", self.join(name), io_err(e)))?;
        if Kind::of(&st) != Kind::File {
            return Err(Error::io(
                "not a regular file:",
                self.join(name),
                io::Error::other(Replaced),
            ));
        }
        Ok(File::from(fd))
    }

    /// Reads a whole child file, refusing one larger than `cap` bytes (a
    /// corrupt or planted file must not exhaust memory).
    pub(crate) fn read_capped(&self, name: &str, cap: u64) -> Result<Vec<u8>> {
        use std::io::Read;
        let path = self.join(name);
        let file = self.open_file(name)?;
        // Sized from fstat: `take` hides the length from `read_to_end`, which
        // would otherwise grow the buffer (and read) a few KiB at a time —
        // a dozen reallocations and hundreds of reads for a 2 MB manifest.
        let size = file.metadata().map_or(0, |m| m.len()).min(cap + 1);
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0) + 1);
        file.take(cap + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("cannot read", &path, e))?;
        if bytes.len() as u64 > cap {
            return Err(Error::damaged(
                path,
                format!("larger than {cap} bytes; it is not a file this tool wrote"),
            ));
        }
        Ok(bytes)
    }

    /// Opens a child file for reading and writing, creating it with `mode`
    /// when missing (never through a symlink).
    pub(crate) fn open_rw(&self, name: impl AsRef<Path>, mode: u32) -> Result<File> {
        let name = name.as_ref();
        self.open_creating(name, OFlags::RDWR | OFlags::CLOEXEC, mode)
    }

    /// Opens child `name` with `flags`, or creates it with exactly `mode`
    /// when missing: `O_CREAT` alone would let the umask decide the mode
    /// (a root umask of 077 makes a 0600 `.lock` that readers cannot open).
    fn open_creating(&self, name: &Path, flags: OFlags, mode: u32) -> Result<File> {
        self.open_or_create_exact(name, flags, mode)
            .map(File::from)
            .map_err(|(e, op)| Error::create(op, self.join(name), io_err(e)))
    }

    /// The loop behind [`Dir::open_creating`]: open, or create with
    /// `O_EXCL` and set exactly `mode`, retrying if another process created
    /// it in between. An error says which step failed.
    fn open_or_create_exact(
        &self,
        name: &Path,
        flags: OFlags,
        mode: u32,
    ) -> std::result::Result<OwnedFd, (Errno, &'static str)> {
        loop {
            match open_beneath(self.fd.as_fd(), name, flags, Mode::empty()) {
                Ok(fd) => return Ok(fd),
                Err(Errno::NOENT) => {}
                Err(e) => return Err((e, "open")),
            }
            match open_beneath(
                self.fd.as_fd(),
                name,
                flags | OFlags::CREATE | OFlags::EXCL,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => {
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                        .map_err(|e| (e, "set mode of"))?;
                    return Ok(fd);
                }
                // Created by another process in between: open that one.
                Err(Errno::EXIST) => {}
                Err(e) => return Err((e, "create")),
            }
        }
    }

    /// Opens a child lock file read-only (a flock needs no write access),
    /// creating it with exactly `mode` when missing; never through a symlink,
    /// and only a regular file. `inheritable` leaves out `O_CLOEXEC`, so the
    /// fd — and the flock on it — survives `execve` (pinned launches).
    pub(crate) fn open_lock_file(
        &self,
        name: impl AsRef<Path>,
        mode: u32,
        inheritable: bool,
    ) -> Result<File> {
        let name = name.as_ref();
        let cloexec = if inheritable {
            OFlags::empty()
        } else {
            OFlags::CLOEXEC
        };
        let base = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | cloexec;
        let fd = match self.open_or_create_exact(name, base, mode) {
            Ok(fd) => fd,
            Err((Errno::LOOP, _)) => return Err(trust::refuse_symlink(&self.join(name))),
            Err((e, "open")) => return Err(Error::io("cannot open", self.join(name), io_err(e))),
            Err((e, op)) => return Err(Error::create(op, self.join(name), io_err(e))),
        };
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| Error::io("cannot stat", self.join(name), io_err(e)))?;
        Trust::LOCK_FILE.check(&self.join(name), (&st).into())?;
        Ok(File::from(fd))
    }

    /// Opens an existing child lock file read-only (`None` when missing),
    /// for looking at who holds it.
    pub(crate) fn try_open_lock_file(&self, name: impl AsRef<Path>) -> Result<Option<File>> {
        let name = name.as_ref();
        match open_beneath(
            self.fd.as_fd(),
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io("cannot open", self.join(name), io_err(e))),
        }
    }

    /// Opens a child file for appending, creating it with `mode` when missing.
    pub(crate) fn open_append(&self, name: impl AsRef<Path>, mode: u32) -> Result<File> {
        let name = name.as_ref();
        self.open_creating(
            name,
            OFlags::WRONLY | OFlags::APPEND | OFlags::CLOEXEC,
            mode,
        )
    }

    /// Creates a new child file (`O_EXCL`), owner-only (`0600` less the
    /// umask); the caller sets the final mode.
    pub(crate) fn create_private_file(&self, name: impl AsRef<Path>) -> Result<File> {
        let name = name.as_ref();
        let fd = open_beneath(
            self.fd.as_fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::create("create", self.join(name), io_err(e)))?;
        Ok(File::from(fd))
    }

    /// Creates a new child file (`O_EXCL`) with exactly `mode`.
    pub(crate) fn create_file(&self, name: impl AsRef<Path>, mode: u32) -> Result<File> {
        let name = name.as_ref();
        let fd = open_beneath(
            self.fd.as_fd(),
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::create("create", self.join(name), io_err(e)))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|e| Error::create("set mode of", self.join(name), io_err(e)))?;
        Ok(File::from(fd))
    }

    /// Writes `bytes` to a temporary child, fsyncs it and renames it over
    /// `name`, then fsyncs this directory: readers see the old or the new
    /// content, never a mix, even after a crash.
    pub(crate) fn write_atomic(&self, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
        use std::io::Write;
        let tmp = format!(".tmp-{name}");
        self.remove_if_exists(&tmp)?;
        let mut file = self.create_file(&tmp, mode)?;
        file.write_all(bytes)
            .map_err(|e| Error::create("write", self.join(&tmp), e))?;
        sync_file(&file, &self.join(&tmp))?;
        drop(file);
        self.rename(&tmp, self, name)?;
        self.sync()
    }

    pub(crate) fn symlink(&self, target: impl AsRef<Path>, name: impl AsRef<Path>) -> Result<()> {
        let name = name.as_ref();
        rustix::fs::symlinkat(target.as_ref(), &self.fd, name)
            .map_err(|e| Error::create("create symlink", self.join(name), io_err(e)))
    }

    /// Hard-links child `name` (a symlink is linked itself, not followed)
    /// as `to` in `to_dir`. Returns false when the source is missing or the
    /// file system cannot link it (the caller then makes a copy).
    pub(crate) fn hard_link(
        &self,
        name: impl AsRef<Path>,
        to_dir: &Dir,
        to: impl AsRef<Path>,
    ) -> Result<bool> {
        match rustix::fs::linkat(
            &self.fd,
            name.as_ref(),
            &to_dir.fd,
            to.as_ref(),
            AtFlags::empty(),
        ) {
            Ok(()) => Ok(true),
            Err(
                rustix::io::Errno::NOENT
                | rustix::io::Errno::MLINK
                | rustix::io::Errno::PERM
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::XDEV,
            ) => Ok(false),
            Err(e) => Err(Error::create("link", to_dir.join(to.as_ref()), io_err(e))),
        }
    }

    /// `renameat(2)`, replacing the destination.
    pub(crate) fn rename(
        &self,
        from: impl AsRef<Path>,
        to_dir: &Dir,
        to: impl AsRef<Path>,
    ) -> Result<()> {
        rustix::fs::renameat(&self.fd, from.as_ref(), &to_dir.fd, to.as_ref())
            .map_err(|e| Error::create("rename to", to_dir.join(to.as_ref()), io_err(e)))
    }

    /// `renameat2(RENAME_EXCHANGE)`: swaps two existing names atomically, so
    /// that at every instant both exist (replacing a damaged store object by
    /// a fresh copy, docs/cli.md#verify---repair).
    pub(crate) fn exchange(
        &self,
        from: impl AsRef<Path>,
        to_dir: &Dir,
        to: impl AsRef<Path>,
    ) -> Result<()> {
        if self.try_exchange(from, to_dir, to.as_ref())? {
            return Ok(());
        }
        Err(Error::create(
            "exchange with",
            to_dir.join(to.as_ref()),
            io_err(rustix::io::Errno::INVAL),
        ))
    }

    /// [`Dir::exchange`], or false (nothing changed) where the file system
    /// does not implement `RENAME_EXCHANGE` (some FUSE and network file
    /// systems): the caller then takes the slower way.
    pub(crate) fn try_exchange(
        &self,
        from: impl AsRef<Path>,
        to_dir: &Dir,
        to: impl AsRef<Path>,
    ) -> Result<bool> {
        match rustix::fs::renameat_with(
            &self.fd,
            from.as_ref(),
            &to_dir.fd,
            to.as_ref(),
            RenameFlags::EXCHANGE,
        ) {
            Ok(()) => Ok(true),
            Err(
                rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS | rustix::io::Errno::OPNOTSUPP,
            ) => Ok(false),
            Err(e) => Err(Error::create(
                "exchange with",
                to_dir.join(to.as_ref()),
                io_err(e),
            )),
        }
    }

    /// `renameat2(RENAME_NOREPLACE)`: publish under a name that must be new.
    /// Returns false when the destination already exists.
    pub(crate) fn rename_noreplace(
        &self,
        from: impl AsRef<Path>,
        to_dir: &Dir,
        to: impl AsRef<Path>,
    ) -> Result<bool> {
        match rustix::fs::renameat_with(
            &self.fd,
            from.as_ref(),
            &to_dir.fd,
            to.as_ref(),
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::EXIST) => Ok(false),
            Err(e) => Err(Error::create(
                "rename to",
                to_dir.join(to.as_ref()),
                io_err(e),
            )),
        }
    }

    /// Removes a child file, symlink or whole directory tree, fd-relative and
    /// without following symlinks. Missing is fine.
    ///
    /// Every entry is unlinked first and looked at only when that fails
    /// with `EISDIR`: no `lstat` per entry, which halves the syscalls of
    /// removing a generation of symlinks (docs/performance.md#gc-on-all-cores).
    pub(crate) fn remove_if_exists(&self, name: impl AsRef<Path>) -> Result<()> {
        let name = name.as_ref();
        if !unlink_unless_dir(self, name)? {
            return Ok(());
        }
        // Depth first with a bounded number of directories open
        // (docs/security.md#bounded-file-descriptors): a directory is
        // emptied (its subdirectories queued), then removed once they are.
        let mut chain = DirChain::new(self);
        let mut todo = vec![(name.to_path_buf(), false)];
        while let Some((rel, emptied)) = todo.pop() {
            if emptied {
                let parent = rel.parent().unwrap_or(Path::new(""));
                let base = rel.file_name().map_or(rel.as_path(), Path::new);
                // A store object's directories may be read-only for owner.
                unlink_at(chain.get(parent)?, base, AtFlags::REMOVEDIR)?;
                continue;
            }
            todo.push((rel.clone(), true));
            let dir = chain.get(&rel)?;
            for entry in dir.names()? {
                if unlink_unless_dir(dir, Path::new(&entry))? {
                    todo.push((rel.join(entry), false));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn set_mode(&self, mode: u32) -> Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode))
            .map_err(|e| Error::create("set mode of", &self.path, io_err(e)))
    }

    /// Sets owner and group of this directory. Only root may give files
    /// away; anyone else keeps their own ownership (`EPERM` is ignored).
    pub(crate) fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        set_owner_fd(self.fd(), uid, gid, &self.path)
    }

    /// `lchown` of a child (used for symlinks, which have no fd of their own).
    pub(crate) fn set_owner_at(&self, name: impl AsRef<Path>, uid: u32, gid: u32) -> Result<()> {
        let name = name.as_ref();
        match rustix::fs::chownat(
            &self.fd,
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::PERM) if !is_root() => Ok(()),
            Err(e) => Err(Error::create("set owner of", self.join(name), io_err(e))),
        }
    }

    /// fsync of the directory itself (its entries, after a create or rename).
    pub(crate) fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(|e| Error::sync(&self.path, io_err(e)))
    }

    /// Sets the directory's mtime (and atime) to now, e.g. to make runsvdir
    /// rescan: it compares the scan directory's mtime between scans.
    pub(crate) fn touch(&self) -> Result<()> {
        let now = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        let times = rustix::fs::Timestamps {
            last_access: now,
            last_modification: now,
        };
        rustix::fs::futimens(&self.fd, &times)
            .map_err(|e| Error::io("cannot set the modification time of", &self.path, io_err(e)))
    }

    /// syncfs(2) of the whole file system that holds this directory.
    pub(crate) fn sync_fs(&self) -> Result<()> {
        rustix::fs::syncfs(&self.fd).map_err(|e| Error::sync(&self.path, io_err(e)))?;
        crate::sys::failpoint::tell_syncfs(self.fd());
        Ok(())
    }

    /// Whether this directory has a default ACL (`system.posix_acl_default`),
    /// which everything created in it inherits. A file system without ACLs
    /// has none.
    pub(crate) fn has_default_acl(&self) -> Result<bool> {
        // Only whether it exists matters: a value too long for the buffer
        // (ERANGE) is one.
        let mut head = [0u8; 4];
        match rustix::fs::fgetxattr(&self.fd, "system.posix_acl_default", &mut head[..]) {
            Ok(_) | Err(Errno::RANGE) => Ok(true),
            Err(Errno::NODATA | Errno::NOTSUP) => Ok(false),
            Err(e) => Err(Error::io(
                "cannot read the default ACL of",
                &self.path,
                io_err(e),
            )),
        }
    }

    /// The file-system magic of this directory (`statfs.f_type`).
    pub(crate) fn statfs_type(&self) -> Result<i64> {
        let st = rustix::fs::fstatfs(&self.fd)
            .map_err(|e| Error::io("cannot statfs", &self.path, io_err(e)))?;
        #[allow(clippy::unnecessary_cast)]
        Ok(st.f_type as i64)
    }
}

/// Unlinks `name` unless it is a directory; whether it is one (to be
/// emptied and removed by the caller). Missing is fine.
fn unlink_unless_dir(dir: &Dir, name: &Path) -> Result<bool> {
    match rustix::fs::unlinkat(&dir.fd, name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(false),
        // Linux says EISDIR; POSIX allows EPERM, which an `lstat` settles.
        Err(rustix::io::Errno::ISDIR) => Ok(true),
        Err(rustix::io::Errno::PERM)
            if dir
                .try_stat(name)?
                .is_some_and(|st| Kind::of(&st) == Kind::Dir) =>
        {
            Ok(true)
        }
        Err(e) => Err(Error::io("cannot remove", dir.join(name), io_err(e))),
    }
}

/// `unlinkat` of `name` in `dir`; missing is fine.
fn unlink_at(dir: &Dir, name: impl AsRef<Path>, flags: AtFlags) -> Result<()> {
    let name = name.as_ref();
    match rustix::fs::unlinkat(&dir.fd, name, flags) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(Error::io("cannot remove", dir.join(name), io_err(e))),
    }
}

/// How many levels below its root a [`DirChain`] keeps open while a walk is
/// deeper: a service directory is rarely more than three deep, so walks of
/// ordinary trees never reopen anything (docs/security.md#bounded-file-descriptors).
pub(crate) const HELD_LEVELS: usize = 4;

/// The directories along the path a walk is at, below an open `root`: at
/// most [`HELD_LEVELS`] + 1 descriptors, whatever the depth or width of the
/// tree. A walk asks for the directory it needs by its path below the root
/// ([`DirChain::get`]); the chain opens it from the deepest open ancestor,
/// one component at a time, never following a symlink. A directory deeper
/// than the held levels gives its descriptor back while the walk is below
/// it and is reopened (by its path beneath the deepest held one) when the
/// walk returns; a reopen must find the very same directory
/// (`st_dev`, `st_ino`), else the tree changed under the walk, which
/// [`is_race`] recognises.
pub(crate) struct DirChain<'r> {
    root: &'r Dir,
    /// One frame per level from the root down: `frames[i]` is `i + 1` deep.
    frames: Vec<Frame>,
}

/// One directory of a [`DirChain`].
struct Frame {
    /// Its path below the chain's root.
    rel: PathBuf,
    /// Open, or given back (then `id` says what a reopen must find).
    dir: Option<Dir>,
    id: (u64, u64),
}

impl<'r> DirChain<'r> {
    pub(crate) fn new(root: &'r Dir) -> DirChain<'r> {
        DirChain {
            root,
            frames: Vec::new(),
        }
    }

    /// The directory `rel` below the root (the root itself for `""` or
    /// `.`), open. Opening it may close directories not on its path.
    pub(crate) fn get(&mut self, rel: &Path) -> Result<&Dir> {
        if rel.as_os_str().is_empty() || rel == Path::new(".") {
            // Nothing below the root is on its path.
            self.frames.clear();
            return Ok(self.root);
        }
        let at_top = self
            .frames
            .last()
            .is_some_and(|f| f.dir.is_some() && f.rel == rel);
        if !at_top {
            self.move_to(rel)?;
        }
        match self.frames.last().and_then(|f| f.dir.as_ref()) {
            Some(dir) => Ok(dir),
            None => Err(Error::io(
                "cannot open directory",
                self.root.join(rel),
                io::Error::other(Replaced),
            )),
        }
    }

    /// Takes `dir`, just created as `rel` by the caller, as the chain's
    /// deepest directory when its parent is (saves reopening it for its
    /// entries); else drops it.
    pub(crate) fn adopt(&mut self, rel: &Path, dir: Dir) {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let parent_is_top = match self.frames.last() {
            Some(f) => f.dir.is_some() && f.rel == parent,
            None => parent.as_os_str().is_empty(),
        };
        if parent_is_top {
            self.push(rel.to_path_buf(), dir);
        }
    }

    /// Makes the chain end at `rel`, open: drops the frames off its path,
    /// reopens the deepest one left if it was given back, opens the rest.
    fn move_to(&mut self, rel: &Path) -> Result<()> {
        while self.frames.last().is_some_and(|f| !rel.starts_with(&f.rel)) {
            self.frames.pop();
        }
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(p) => parts.push(p),
                Component::CurDir => {}
                _ => {
                    return Err(Error::io(
                        "cannot open directory",
                        self.root.join(rel),
                        io_err(Errno::XDEV),
                    ));
                }
            }
        }
        self.reopen_top()?;
        for part in parts.iter().skip(self.frames.len()) {
            let (parent, parent_rel) = match self.frames.last() {
                Some(Frame {
                    dir: Some(d), rel, ..
                }) => (d, rel.as_path()),
                _ => (self.root, Path::new("")),
            };
            let child_rel = parent_rel.join(part);
            let child = parent.open_dir(part)?;
            self.push(child_rel, child);
        }
        Ok(())
    }

    /// Pushes an open directory one level below the deepest frame, giving
    /// back the descriptor of that frame if it is deeper than the held levels.
    fn push(&mut self, rel: PathBuf, dir: Dir) {
        let n = self.frames.len();
        if n > HELD_LEVELS {
            if let Some(top) = self.frames.last_mut() {
                // Its identity, for the reopen; without one it is kept open
                // rather than reopened unchecked.
                if let Some(dir) = &top.dir {
                    if let Ok(id) = file_identity(&dir.fd) {
                        top.id = id;
                        top.dir = None;
                    }
                }
            }
        }
        self.frames.push(Frame {
            rel,
            dir: Some(dir),
            id: (0, 0),
        });
    }

    /// Reopens the deepest frame if it gave its descriptor back, beneath the
    /// deepest open frame (or the root), and checks it is the same directory.
    fn reopen_top(&mut self) -> Result<()> {
        let Some(k) = self.frames.len().checked_sub(1) else {
            return Ok(());
        };
        if self.frames[k].dir.is_some() {
            return Ok(());
        }
        let base = self.frames[..k].iter().rev().find_map(|f| {
            let dir = f.dir.as_ref()?;
            Some((dir, f.rel.as_path()))
        });
        let (base, base_rel) = base.unwrap_or((self.root, Path::new("")));
        let below = self.frames[k]
            .rel
            .strip_prefix(base_rel)
            .unwrap_or(&self.frames[k].rel);
        let dir = base.open_dir(below)?;
        if file_identity(&dir.fd).ok() != Some(self.frames[k].id) {
            return Err(Error::io(
                "cannot open directory",
                dir.path(),
                io::Error::other(Replaced),
            ));
        }
        self.frames[k].dir = Some(dir);
        Ok(())
    }
}

/// Does the FIFO at `path` have a reader? This is how `s6-svok` and `sv`
/// tell whether a supervisor runs for a service directory: open the control
/// FIFO for writing without blocking; ENXIO means nobody listens, ENOENT
/// that no supervisor ever ran there. Nothing is written.
pub(crate) fn fifo_has_reader(path: &Path) -> Result<bool> {
    let flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(_fd) => Ok(true),
        Err(rustix::io::Errno::NXIO | rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => {
            Ok(false)
        }
        Err(e) => Err(Error::io("cannot open", path, io_err(e))),
    }
}

/// Writes `bytes` to the FIFO at `path` without ever blocking, as the
/// supervisors' own tools do (`s6-svc`, `sv`, `svc`: open write-only and
/// non-blocking). `Ok(false)`: nothing reads it (`ENXIO`), it does not
/// exist, or its reader went away before the write (`EPIPE`). Anything
/// but a FIFO there, or a full FIFO (a reader that stopped reading), is an
/// error naming the path.
pub(crate) fn write_fifo(path: &Path, bytes: &[u8]) -> Result<bool> {
    let flags = OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NXIO | Errno::NOENT | Errno::NOTDIR) => return Ok(false),
        Err(e) => return Err(Error::io("cannot open", path, io_err(e))),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io("cannot stat", path, io_err(e)))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Fifo {
        return Err(Error::io(
            "will not write a command to",
            path,
            io::Error::other("it is not a FIFO"),
        ));
    }
    match rustix::io::write(&fd, bytes) {
        Ok(n) if n == bytes.len() => Ok(true),
        Ok(n) => Err(Error::io(
            "cannot write a command to",
            path,
            io::Error::other(format!("only {n} of {} bytes were written", bytes.len())),
        )),
        Err(Errno::PIPE) => Ok(false),
        Err(Errno::AGAIN) => Err(Error::io(
            "cannot write a command to",
            path,
            io::Error::other("the FIFO is full: its reader stopped reading"),
        )),
        Err(e) => Err(Error::io("cannot write a command to", path, io_err(e))),
    }
}

/// Reads a small regular file that another process replaces by rename (a
/// supervisor's status file): at most `cap + 1` bytes, so a larger one is
/// noticed by its length. `None` when it does not exist. Never blocks on a
/// FIFO and never follows a symlink in the last component.
pub(crate) fn read_small(path: &Path, cap: usize) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match rustix::fs::open(path, flags | OFlags::NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT | Errno::NOTDIR) => return Ok(None),
        Err(e) => return Err(Error::io("cannot open", path, io_err(e))),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io("cannot stat", path, io_err(e)))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(Error::io(
            "cannot read",
            path,
            io::Error::other("it is not a regular file"),
        ));
    }
    let mut bytes = Vec::with_capacity(cap + 1);
    File::from(fd)
        .take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("cannot read", path, e))?;
    Ok(Some(bytes))
}

pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub(crate) fn set_owner_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32, path: &Path) -> Result<()> {
    match rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    ) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::PERM) if !is_root() => Ok(()),
        Err(e) => Err(Error::create("set owner of", path, io_err(e))),
    }
}

/// `fstat` of an open file; `path` names it in the error.
pub(crate) fn stat_fd(file: &impl AsFd, path: &Path) -> Result<Stat> {
    rustix::fs::fstat(file).map_err(|e| Error::io("cannot stat", path, io_err(e)))
}

/// Gives an open file to group `gid`, keeping its owner.
pub(crate) fn set_group_fd(fd: BorrowedFd<'_>, gid: u32, path: &Path) -> Result<()> {
    rustix::fs::fchown(fd, None, Some(rustix::fs::Gid::from_raw(gid)))
        .map_err(|e| Error::create("set group of", path, io_err(e)))
}

pub(crate) fn set_mode_fd(fd: BorrowedFd<'_>, mode: u32, path: &Path) -> Result<()> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
        .map_err(|e| Error::create("set mode of", path, io_err(e)))
}

pub(crate) fn sync_file(file: &File, path: &Path) -> Result<()> {
    rustix::fs::fsync(file).map_err(|e| Error::sync(path, io_err(e)))
}

/// Copies a small file through memory and returns the BLAKE3 of exactly
/// the bytes written (at most `len + 1` are read, so growth is noticed).
pub(crate) fn copy_small(
    src: &File,
    dst: &File,
    len: u64,
    dst_path: &Path,
) -> Result<blake3::Hash> {
    use std::io::{Read, Write};
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0) + 1);
    let reader = src;
    reader
        .take(len + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io("cannot read", dst_path, e))?;
    let mut writer = dst;
    writer
        .write_all(&buf)
        .map_err(|e| Error::create("write", dst_path, e))?;
    Ok(blake3::hash(&buf))
}

/// [`copy_small`] of a file that must hold exactly `len` bytes (what its
/// `lstat` said): `None` when it held more or fewer, which means it
/// changed since; what was read is written all the same.
///
/// Reads until `len` bytes or the end, asking for one byte more each time:
/// a file of exactly `len` bytes costs one `read`, not a second one that
/// returns 0. A file that grew while a read happened to stop at `len` is
/// not noticed here; its changed size and timestamps are, by the
/// fingerprint re-check before publishing.
pub(crate) fn copy_small_exact(
    src: &File,
    dst: &File,
    len: u64,
    dst_path: &Path,
) -> Result<Option<blake3::Hash>> {
    use std::io::{Read, Write};
    let want = usize::try_from(len).unwrap_or(usize::MAX - 1);
    let mut buf = vec![0u8; want + 1];
    let mut filled = 0;
    let mut reader = src;
    while filled < want {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("cannot read", dst_path, e)),
        }
    }
    let mut writer = dst;
    writer
        .write_all(&buf[..filled])
        .map_err(|e| Error::create("write", dst_path, e))?;
    Ok((filled == want).then(|| blake3::hash(&buf[..filled])))
}

/// Copies the first `len` bytes of `src` into the new, empty `dst`,
/// keeping holes as holes: only the data extents that `SEEK_DATA` and
/// `SEEK_HOLE` report are copied (with `copy_file_range`: reflinks or an
/// in-kernel copy, else read/write), then `dst` is extended to `len`, so a
/// hole reads as zeros in both and takes no disk in either
/// (docs/security.md#sparse-files). A file system without `SEEK_DATA`
/// reports the whole file as data. A file that shrank meanwhile is copied
/// as far as it goes: the caller's hash check catches it.
pub(crate) fn copy_preserving_holes(
    src: &File,
    dst: &File,
    len: u64,
    dst_path: &Path,
) -> Result<()> {
    use rustix::fs::SeekFrom;
    let read_err = |e| Error::io("cannot read the source of", dst_path, io_err(e));
    let mut pos = 0;
    while pos < len {
        let start = match rustix::fs::seek(src, SeekFrom::Data(pos)) {
            Ok(at) => at,
            // Nothing but a hole from `pos` on.
            Err(Errno::NXIO) => break,
            Err(Errno::INVAL | Errno::OPNOTSUPP) => pos,
            Err(e) => return Err(read_err(e)),
        };
        if start >= len {
            break;
        }
        let end = match rustix::fs::seek(src, SeekFrom::Hole(start)) {
            // Data always ends before a hole; anything else is taken as
            // data to the end, which is never wrong, only slower.
            Ok(at) if at > start => at.min(len),
            Ok(_) | Err(Errno::INVAL | Errno::OPNOTSUPP | Errno::NXIO) => len,
            Err(e) => return Err(read_err(e)),
        };
        copy_range(src, dst, start, end, dst_path)?;
        pos = end;
    }
    rustix::fs::ftruncate(dst, len).map_err(|e| Error::create("write", dst_path, io_err(e)))
}

/// Copies bytes `start..end` of `src` to the same offsets of `dst`.
fn copy_range(src: &File, dst: &File, start: u64, end: u64, dst_path: &Path) -> Result<()> {
    let (mut from, mut to) = (start, start);
    while from < end {
        let chunk = usize::try_from((end - from).min(1 << 30)).unwrap_or(1 << 30);
        match rustix::fs::copy_file_range(src, Some(&mut from), dst, Some(&mut to), chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(Errno::XDEV | Errno::NOSYS | Errno::OPNOTSUPP | Errno::INVAL) => {
                return copy_range_by_reading(src, dst, from, end, dst_path);
            }
            Err(e) => return Err(Error::create("write", dst_path, io_err(e))),
        }
    }
    Ok(())
}

/// [`copy_range`] through a buffer, where `copy_file_range` is missing.
fn copy_range_by_reading(
    src: &File,
    dst: &File,
    start: u64,
    end: u64,
    dst_path: &Path,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; 1 << 20];
    let mut at = start;
    while at < end {
        let want = usize::try_from((end - at).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = src
            .read_at(&mut buf[..want], at)
            .map_err(|e| Error::io("cannot read the source of", dst_path, e))?;
        if n == 0 {
            break;
        }
        dst.write_all_at(&buf[..n], at)
            .map_err(|e| Error::create("write", dst_path, e))?;
        at += n as u64;
    }
    Ok(())
}

/// Takes an exclusive flock on `file`: `Ok(false)` when another holds it.
pub(crate) fn try_lock_exclusive(file: &impl AsFd) -> io::Result<bool> {
    flock_nb(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
}

/// Takes a shared flock on `file`: `Ok(false)` when another holds it exclusively.
pub(crate) fn try_lock_shared(file: &impl AsFd) -> io::Result<bool> {
    flock_nb(file, rustix::fs::FlockOperation::NonBlockingLockShared)
}

/// Releases a flock held on `file` (closing every fd of it does the same).
pub(crate) fn unlock(file: &impl AsFd) -> io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock).map_err(io_err)
}

/// `(st_dev, st_ino)` of an open file: what `/proc` reports for its locks.
pub(crate) fn file_identity(file: &impl AsFd) -> io::Result<(u64, u64)> {
    let st = rustix::fs::fstat(file).map_err(io_err)?;
    #[allow(clippy::unnecessary_cast)]
    Ok((st.st_dev as u64, st.st_ino as u64))
}

fn flock_nb(file: &impl AsFd, op: rustix::fs::FlockOperation) -> io::Result<bool> {
    match rustix::fs::flock(file, op) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // builds fixtures with plain std calls
mod tests {
    use super::*;

    type Opener = fn(BorrowedFd<'_>, &Path, OFlags, Mode) -> rustix::io::Result<OwnedFd>;

    /// A file that holds more or fewer bytes than its `lstat` said (it
    /// changed since) gives no hash; one of the right size gives the hash
    /// of exactly the bytes written.
    #[test]
    fn copy_small_exact_hashes_what_it_wrote_and_notices_a_changed_size() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        std::fs::write(tmp.path().join("src"), b"0123456789").unwrap();
        for (len, want) in [
            (10, Some(blake3::hash(b"0123456789"))),
            (5, None),
            (11, None),
        ] {
            let name = format!("dst{len}");
            let src = dir.open_file("src").unwrap();
            let dst = dir.create_private_file(&name).unwrap();
            let got = copy_small_exact(&src, &dst, len, &dir.join(&name)).unwrap();
            assert_eq!(got, want, "len {len}");
            if want.is_some() {
                assert_eq!(
                    std::fs::read(tmp.path().join(&name)).unwrap(),
                    b"0123456789"
                );
            }
        }
    }

    /// Both resolvers refuse every way out of the directory and every
    /// symlink, in any component, and open what is really beneath.
    #[test]
    fn open_beneath_never_follows_a_link_or_leaves_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        std::fs::create_dir_all(base.join("tree/sub")).unwrap();
        std::fs::write(base.join("tree/sub/file"), "inside").unwrap();
        std::fs::write(base.join("secret"), "outside").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), base.join("tree/abs")).unwrap();
        std::os::unix::fs::symlink("../secret", base.join("tree/rel")).unwrap();
        std::os::unix::fs::symlink("sub", base.join("tree/dirlink")).unwrap();
        std::os::unix::fs::symlink("/", base.join("tree/slash")).unwrap();
        let dir = Dir::open(&base.join("tree")).unwrap();
        let read = OFlags::RDONLY | OFlags::CLOEXEC;
        let openers: [(&str, Opener); 2] = [
            ("open_beneath", open_beneath),
            ("open_beneath_walk", open_beneath_walk),
        ];
        for (which, open) in openers {
            let fd = open(dir.fd(), Path::new("sub/file"), read, Mode::empty()).unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut File::from(fd), &mut text).unwrap();
            assert_eq!(text, "inside", "{which}");
            for (bad, errno) in [
                ("abs", Errno::LOOP),
                ("rel", Errno::LOOP),
                ("dirlink/file", Errno::LOOP),
                ("slash/etc/passwd", Errno::LOOP),
                ("../secret", Errno::XDEV),
                ("/etc/passwd", Errno::XDEV),
            ] {
                let got = open(dir.fd(), Path::new(bad), read, Mode::empty());
                assert_eq!(got.err(), Some(errno), "{which} opened {bad}");
            }
        }
    }

    /// However deep the walk, at most `HELD_LEVELS + 1` directories are
    /// open; a directory given back and replaced meanwhile is not reopened
    /// silently: the walk sees a race (exit 75 for the stock).
    #[test]
    fn a_dir_chain_holds_few_descriptors_and_notices_a_swapped_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let deep: PathBuf = (0..40).map(|i| format!("d{i}")).collect();
        std::fs::create_dir_all(tmp.path().join(&deep)).unwrap();
        std::fs::create_dir_all(tmp.path().join("d0/side")).unwrap();
        let root = Dir::open(tmp.path()).unwrap();
        let mut chain = DirChain::new(&root);
        let open = |c: &DirChain<'_>| c.frames.iter().filter(|f| f.dir.is_some()).count();
        assert_eq!(chain.get(&deep).unwrap().path(), tmp.path().join(&deep));
        assert_eq!(chain.frames.len(), 40);
        assert_eq!(open(&chain), HELD_LEVELS + 1);
        // Back up to a level that gave its descriptor back, across to a
        // sibling, and down again: still the same directories, still few.
        let mid: PathBuf = (0..20).map(|i| format!("d{i}")).collect();
        assert!(
            chain
                .get(&mid)
                .unwrap()
                .names()
                .unwrap()
                .contains(&"d20".into())
        );
        assert_eq!(open(&chain), HELD_LEVELS + 1);
        assert_eq!(
            chain
                .get(Path::new("d0/side"))
                .unwrap()
                .names()
                .unwrap()
                .len(),
            0
        );
        chain.get(&deep).unwrap();
        assert_eq!(open(&chain), HELD_LEVELS + 1);
        // d10 is replaced while the chain is below it.
        let d10: PathBuf = (0..11).map(|i| format!("d{i}")).collect();
        std::fs::rename(tmp.path().join(&d10), tmp.path().join("moved")).unwrap();
        std::fs::create_dir(tmp.path().join(&d10)).unwrap();
        let err = chain.get(&d10).map(|_| ()).unwrap_err();
        assert!(is_race(&err), "{err}");
        // A path that climbs out is refused.
        assert!(chain.get(Path::new("d0/../..")).is_err());
    }

    #[test]
    fn removing_and_measuring_a_deep_tree_work_beneath_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let deep: PathBuf = (0..50).map(|i| format!("d{i}")).collect();
        std::fs::create_dir_all(tmp.path().join("t").join(&deep)).unwrap();
        std::fs::write(tmp.path().join("t").join(&deep).join("f"), "x").unwrap();
        std::fs::write(tmp.path().join("outside"), "keep").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), tmp.path().join("t/d0/link"))
            .unwrap();
        let root = Dir::open(tmp.path()).unwrap();
        let mut seen = std::collections::HashSet::new();
        assert!(root.disk_usage("t", &mut seen).unwrap() > 0);
        assert_eq!(seen.len(), 53, "51 directories, a file and a link");
        root.remove_if_exists("t").unwrap();
        assert!(!tmp.path().join("t").exists());
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("outside")).unwrap(),
            "keep"
        );
    }

    #[test]
    fn removing_unlinks_first_and_never_enters_a_linked_directory() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        std::fs::create_dir_all(base.join("elsewhere/inner")).unwrap();
        std::fs::write(base.join("elsewhere/inner/f"), "keep").unwrap();
        std::fs::create_dir_all(base.join("t/ro/sub")).unwrap();
        std::fs::write(base.join("t/ro/sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("t/to-dir")).unwrap();
        std::os::unix::fs::symlink("elsewhere", base.join("t/ro/relative")).unwrap();
        // A store object's directories are read-only for their owner.
        std::fs::set_permissions(base.join("t/ro"), std::fs::Permissions::from_mode(0o555))
            .unwrap();
        std::fs::write(base.join("file"), "x").unwrap();
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("top-link")).unwrap();
        let root = Dir::open(base).unwrap();
        root.remove_if_exists("t").unwrap();
        root.remove_if_exists("file").unwrap();
        root.remove_if_exists("top-link").unwrap();
        root.remove_if_exists("missing").unwrap();
        for gone in ["t", "file", "top-link"] {
            assert!(
                std::fs::symlink_metadata(base.join(gone)).is_err(),
                "{gone}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(base.join("elsewhere/inner/f")).unwrap(),
            "keep"
        );
    }

    #[test]
    fn stat_and_read_link_of_nested_paths_do_not_cross_links() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        std::fs::create_dir_all(base.join("tree/sub")).unwrap();
        std::fs::create_dir_all(base.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("x", base.join("elsewhere/link")).unwrap();
        std::os::unix::fs::symlink("y", base.join("tree/sub/link")).unwrap();
        std::os::unix::fs::symlink(base.join("elsewhere"), base.join("tree/hop")).unwrap();
        let dir = Dir::open(&base.join("tree")).unwrap();
        assert_eq!(dir.read_link("sub/link").unwrap(), Path::new("y"));
        assert!(dir.stat("sub/link").is_ok());
        assert!(dir.stat("hop/link").is_err());
        assert!(dir.read_link("hop/link").is_err());
        assert!(dir.try_stat("hop/link").is_err());
        assert!(is_race(&dir.stat("hop/link").unwrap_err()));
    }

    #[test]
    fn resolve_beneath_follows_links_inside_and_names_the_one_that_leaves() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path();
        std::fs::create_dir_all(base.join("obj/tools")).unwrap();
        std::fs::write(base.join("obj/tools/hello"), "").unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, base.join("obj").join(name)).unwrap();
        };
        link("tools", "alias");
        link("../tools/hello", "tools/again");
        link("/usr/bin", "bin");
        link("..", "up");
        link("loop", "loop");
        let dir = Dir::open(&base.join("obj")).unwrap();
        let resolve = |p: &str| dir.resolve_beneath(Path::new(p)).unwrap();
        let inside = |p: &str| Beneath::Inside(PathBuf::from(p));
        assert_eq!(resolve("tools/hello"), inside("tools/hello"));
        assert_eq!(resolve("alias/hello"), inside("tools/hello"));
        assert_eq!(resolve("alias/again"), inside("tools/hello"));
        assert_eq!(resolve("alias/missing/x"), inside("tools/missing/x"));
        assert_eq!(
            resolve("bin/id"),
            Beneath::Leaves {
                link: "bin".into(),
                target: "/usr/bin".into()
            }
        );
        assert_eq!(
            resolve("up/obj/tools/hello"),
            Beneath::Leaves {
                link: "up".into(),
                target: "..".into()
            }
        );
        assert!(dir.resolve_beneath(Path::new("loop")).is_err());
    }
}
