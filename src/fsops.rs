//! The single owner of file-system effects: fd-relative opens, creation,
//! renames, symlinks, removal and fsync.
//!
//! Every other module goes through [`Dir`], which pairs a directory file
//! descriptor with its path (for error messages only — the path is never used
//! to reach a file once the directory is open). Opens below a `Dir` never
//! follow symlinks (`O_NOFOLLOW`, one component at a time), so a tree written
//! by another party cannot redirect a read or a write. This module never
//! decides *what* to do; it only does it and names the path when it fails.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};

use crate::error::{Error, Result};

fn io_err(e: rustix::io::Errno) -> io::Error {
    io::Error::from(e)
}

/// The kind of a directory entry, from `lstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other(FileType),
}

impl Kind {
    pub fn of(stat: &Stat) -> Kind {
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
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Dir {
    /// Opens an absolute or relative path as a directory. The last component
    /// must not be a symlink; earlier components are the administrator's
    /// configuration and are resolved normally.
    pub fn open(path: &Path) -> Result<Dir> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty())
            .map_err(|e| Error::io("cannot open directory", path, io_err(e)))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens a directory named by the administrator (a stock tree), following
    /// symlinks in every component: the path is configuration, not input.
    pub fn open_following(path: &Path) -> Result<Dir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty())
            .map_err(|e| Error::io("cannot open directory", path, io_err(e)))?;
        Ok(Dir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// Opens `path`, creating it (and missing parents) with `mode` first.
    pub fn open_or_create(path: &Path, mode: u32) -> Result<Dir> {
        match rustix::fs::open(path, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Dir {
                fd,
                path: path.to_path_buf(),
            }),
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
                    Dir::open(parent)?.sync()?;
                }
                Ok(dir)
            }
            Err(e) => Err(Error::io("cannot open directory", path, io_err(e))),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Opens a child directory without following a symlink.
    pub fn open_dir(&self, name: impl AsRef<Path>) -> Result<Dir> {
        let name = name.as_ref();
        let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())
            .map_err(|e| Error::io("cannot open directory", self.join(name), io_err(e)))?;
        Ok(Dir {
            fd,
            path: self.join(name),
        })
    }

    /// Like [`Dir::open_dir`], but `None` when the child does not exist.
    pub fn try_open_dir(&self, name: impl AsRef<Path>) -> Result<Option<Dir>> {
        let name = name.as_ref();
        match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.join(name),
            })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io(
                "cannot open directory",
                self.join(name),
                io_err(e),
            )),
        }
    }

    /// Creates a child directory with exactly `mode` (umask does not apply).
    pub fn create_dir(&self, name: impl AsRef<Path>, mode: u32) -> Result<Dir> {
        let name = name.as_ref();
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700))
            .map_err(|e| Error::create("create directory", self.join(name), io_err(e)))?;
        let dir = self.open_dir(name)?;
        dir.set_mode(mode)?;
        Ok(dir)
    }

    /// Opens a child directory, creating it with `mode` when missing.
    pub fn ensure_dir(&self, name: impl AsRef<Path>, mode: u32) -> Result<Dir> {
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
    pub fn names(&self) -> Result<Vec<OsString>> {
        let fail = |e| Error::io("cannot read directory", &self.path, io_err(e));
        rustix::fs::seek(&self.fd, rustix::fs::SeekFrom::Start(0)).map_err(fail)?;
        let mut buf: Vec<u8> = Vec::with_capacity(32 << 10);
        let mut reader = rustix::fs::RawDir::new(&self.fd, buf.spare_capacity_mut());
        let mut out = Vec::new();
        while let Some(entry) = reader.next() {
            let entry = entry.map_err(fail)?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                out.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// `lstat` of a child.
    pub fn stat(&self, name: impl AsRef<Path>) -> Result<Stat> {
        let name = name.as_ref();
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("cannot stat", self.join(name), io_err(e)))
    }

    /// `lstat` of a child, `None` when it does not exist.
    pub fn try_stat(&self, name: impl AsRef<Path>) -> Result<Option<Stat>> {
        let name = name.as_ref();
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::io("cannot stat", self.join(name), io_err(e))),
        }
    }

    /// Bytes allocated on disk by a child and everything below it (st_blocks,
    /// without following symlinks), counting each inode once across calls
    /// that share `seen`.
    pub fn disk_usage(
        &self,
        name: impl AsRef<Path>,
        seen: &mut std::collections::HashSet<(u64, u64)>,
    ) -> Result<u64> {
        let name = name.as_ref();
        let Some(st) = self.try_stat(name)? else {
            return Ok(0);
        };
        let mut total = 0;
        if seen.insert((st.st_dev, st.st_ino)) {
            total += u64::try_from(st.st_blocks).unwrap_or(0) * 512;
        }
        if Kind::of(&st) == Kind::Dir {
            let child = self.open_dir(name)?;
            for entry in child.names()? {
                total += child.disk_usage(&entry, seen)?;
            }
        }
        Ok(total)
    }

    /// `fstat` of this directory itself.
    pub fn self_stat(&self) -> Result<Stat> {
        rustix::fs::fstat(&self.fd).map_err(|e| Error::io("cannot stat", &self.path, io_err(e)))
    }

    pub fn read_link(&self, name: impl AsRef<Path>) -> Result<PathBuf> {
        let name = name.as_ref();
        let target = rustix::fs::readlinkat(&self.fd, name, Vec::new())
            .map_err(|e| Error::io("cannot read link", self.join(name), io_err(e)))?;
        Ok(PathBuf::from(OsStr::from_bytes(target.as_bytes())))
    }

    /// The target of a child symlink, `None` when it is missing or not a link.
    pub fn try_read_link(&self, name: impl AsRef<Path>) -> Result<Option<PathBuf>> {
        let name = name.as_ref();
        match rustix::fs::readlinkat(&self.fd, name, Vec::new()) {
            Ok(t) => Ok(Some(PathBuf::from(OsStr::from_bytes(t.as_bytes())))),
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::INVAL) => Ok(None),
            Err(e) => Err(Error::io("cannot read link", self.join(name), io_err(e))),
        }
    }

    /// Opens a child regular file for reading, never following a symlink and
    /// never blocking on a FIFO that replaced it.
    pub fn open_file(&self, name: impl AsRef<Path>) -> Result<File> {
        let name = name.as_ref();
        let fd = rustix::fs::openat(
            &self.fd,
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
                io::Error::other("it was replaced while being read"),
            ));
        }
        Ok(File::from(fd))
    }

    /// Opens a child file for reading and writing, creating it with `mode`
    /// when missing (never through a symlink).
    pub fn open_rw(&self, name: impl AsRef<Path>, mode: u32) -> Result<File> {
        let name = name.as_ref();
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| Error::create("open", self.join(name), io_err(e)))?;
        Ok(File::from(fd))
    }

    /// Opens a child lock file read-only (a flock needs no write access),
    /// creating it with exactly `mode` when missing; never through a symlink,
    /// and only a regular file. `inheritable` leaves out `O_CLOEXEC`, so the
    /// fd — and the flock on it — survives `execve` (pinned launches).
    pub fn open_lock_file(
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
        let fd = loop {
            match rustix::fs::openat(&self.fd, name, base, Mode::empty()) {
                Ok(fd) => break fd,
                Err(rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(Error::io("cannot open", self.join(name), io_err(e))),
            }
            match rustix::fs::openat(
                &self.fd,
                name,
                base | OFlags::CREATE | OFlags::EXCL,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => {
                    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
                        .map_err(|e| Error::create("set mode of", self.join(name), io_err(e)))?;
                    break fd;
                }
                // Another process created it in between: open that one.
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(Error::create("create", self.join(name), io_err(e))),
            }
        };
        let st = rustix::fs::fstat(&fd)
            .map_err(|e| Error::io("cannot stat", self.join(name), io_err(e)))?;
        if Kind::of(&st) != Kind::File {
            return Err(Error::unsafe_env(format!(
                "{} is not a regular file; remove it, the tool recreates it",
                self.join(name).display()
            )));
        }
        let me = rustix::process::geteuid().as_raw();
        if st.st_uid != me && st.st_uid != 0 {
            return Err(Error::unsafe_env(format!(
                "{} is owned by uid {}, not by root or uid {me}; remove it, the tool recreates it",
                self.join(name).display(),
                st.st_uid
            )));
        }
        Ok(File::from(fd))
    }

    /// Opens an existing child lock file read-only (`None` when missing),
    /// for looking at who holds it.
    pub fn try_open_lock_file(&self, name: impl AsRef<Path>) -> Result<Option<File>> {
        let name = name.as_ref();
        match rustix::fs::openat(
            &self.fd,
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
    pub fn open_append(&self, name: impl AsRef<Path>, mode: u32) -> Result<File> {
        let name = name.as_ref();
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| Error::create("open", self.join(name), io_err(e)))?;
        Ok(File::from(fd))
    }

    /// Creates a new child file (`O_EXCL`) with exactly `mode`.
    pub fn create_file(&self, name: impl AsRef<Path>, mode: u32) -> Result<File> {
        let name = name.as_ref();
        let fd = rustix::fs::openat(
            &self.fd,
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
    pub fn write_atomic(&self, name: &str, bytes: &[u8], mode: u32) -> Result<()> {
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

    pub fn symlink(&self, target: impl AsRef<Path>, name: impl AsRef<Path>) -> Result<()> {
        let name = name.as_ref();
        rustix::fs::symlinkat(target.as_ref(), &self.fd, name)
            .map_err(|e| Error::create("create symlink", self.join(name), io_err(e)))
    }

    /// Hard-links child `name` (a symlink is linked itself, not followed)
    /// as `to` in `to_dir`. Returns false when the source is missing or the
    /// file system cannot link it (the caller then makes a copy).
    pub fn hard_link(
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
    pub fn rename(&self, from: impl AsRef<Path>, to_dir: &Dir, to: impl AsRef<Path>) -> Result<()> {
        rustix::fs::renameat(&self.fd, from.as_ref(), &to_dir.fd, to.as_ref())
            .map_err(|e| Error::create("rename to", to_dir.join(to.as_ref()), io_err(e)))
    }

    /// `renameat2(RENAME_NOREPLACE)`: publish under a name that must be new.
    /// Returns false when the destination already exists.
    pub fn rename_noreplace(
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

    pub fn unlink(&self, name: impl AsRef<Path>) -> Result<()> {
        let name = name.as_ref();
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())
            .map_err(|e| Error::io("cannot remove", self.join(name), io_err(e)))
    }

    /// Removes a child file, symlink or whole directory tree, fd-relative and
    /// without following symlinks. Missing is fine.
    pub fn remove_if_exists(&self, name: impl AsRef<Path>) -> Result<()> {
        let name = name.as_ref();
        let Some(st) = self.try_stat(name)? else {
            return Ok(());
        };
        if Kind::of(&st) == Kind::Dir {
            let child = self.open_dir(name)?;
            for entry in child.names()? {
                child.remove_if_exists(&entry)?;
            }
            // A store object's directories may be read-only for owner.
            match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                Err(e) => Err(Error::io("cannot remove", self.join(name), io_err(e))),
            }
        } else {
            match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
                Err(e) => Err(Error::io("cannot remove", self.join(name), io_err(e))),
            }
        }
    }

    pub fn set_mode(&self, mode: u32) -> Result<()> {
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode(mode))
            .map_err(|e| Error::create("set mode of", &self.path, io_err(e)))
    }

    /// Sets owner and group of this directory. Only root may give files
    /// away; anyone else keeps their own ownership (`EPERM` is ignored).
    pub fn set_owner(&self, uid: u32, gid: u32) -> Result<()> {
        set_owner_fd(self.fd(), uid, gid, &self.path)
    }

    /// `lchown` of a child (used for symlinks, which have no fd of their own).
    pub fn set_owner_at(&self, name: impl AsRef<Path>, uid: u32, gid: u32) -> Result<()> {
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
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(|e| Error::sync(&self.path, io_err(e)))
    }

    /// syncfs(2) of the whole file system that holds this directory.
    pub fn sync_fs(&self) -> Result<()> {
        rustix::fs::syncfs(&self.fd).map_err(|e| Error::sync(&self.path, io_err(e)))
    }

    /// The file-system magic of this directory (`statfs.f_type`).
    pub fn statfs_type(&self) -> Result<i64> {
        let st = rustix::fs::fstatfs(&self.fd)
            .map_err(|e| Error::io("cannot statfs", &self.path, io_err(e)))?;
        #[allow(clippy::unnecessary_cast)]
        Ok(st.f_type as i64)
    }
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn set_owner_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32, path: &Path) -> Result<()> {
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

pub fn set_mode_fd(fd: BorrowedFd<'_>, mode: u32, path: &Path) -> Result<()> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
        .map_err(|e| Error::create("set mode of", path, io_err(e)))
}

pub fn sync_file(file: &File, path: &Path) -> Result<()> {
    rustix::fs::fsync(file).map_err(|e| Error::sync(path, io_err(e)))
}

/// Copies a small file through memory and returns the BLAKE3 of exactly
/// the bytes written (at most `len + 1` are read, so growth is noticed).
pub fn copy_small(src: &File, dst: &File, len: u64, dst_path: &Path) -> Result<blake3::Hash> {
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

/// Copies all of `src` into `dst` (both at offset 0), with
/// `copy_file_range` (reflinks or in-kernel copy) and a plain read/write
/// fallback where the file system does not support it.
pub fn copy_contents(src: &File, dst: &File, len: u64, dst_path: &Path) -> Result<()> {
    let mut left = len;
    while left > 0 {
        let chunk = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        match rustix::fs::copy_file_range(src, None, dst, None, chunk) {
            Ok(0) => break, // file shrank: the caller's digest check catches it
            Ok(n) => left = left.saturating_sub(n as u64),
            Err(
                rustix::io::Errno::XDEV
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::INVAL,
            ) if left == len => {
                let mut reader = src;
                let mut writer = dst;
                std::io::copy(&mut reader, &mut writer)
                    .map_err(|e| Error::create("write", dst_path, e))?;
                return Ok(());
            }
            Err(e) => return Err(Error::create("write", dst_path, io_err(e))),
        }
    }
    Ok(())
}

/// Takes an exclusive flock on `file`: `Ok(false)` when another holds it.
pub fn try_lock_exclusive(file: &impl AsFd) -> io::Result<bool> {
    flock_nb(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
}

/// Takes a shared flock on `file`: `Ok(false)` when another holds it exclusively.
pub fn try_lock_shared(file: &impl AsFd) -> io::Result<bool> {
    flock_nb(file, rustix::fs::FlockOperation::NonBlockingLockShared)
}

/// Releases a flock held on `file` (closing every fd of it does the same).
pub fn unlock(file: &impl AsFd) -> io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::Unlock).map_err(io_err)
}

/// `(st_dev, st_ino)` of an open file: what `/proc` reports for its locks.
pub fn file_identity(file: &impl AsFd) -> io::Result<(u64, u64)> {
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
