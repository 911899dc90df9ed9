//! The copy a commit makes of a service while the scan hashes it, so that
//! a first commit reads each stock byte once
//! (docs/performance.md#reading-each-byte-once): each file is read once,
//! written to `<state>/.tmp-capture:<service>/<service>/…` and hashed from
//! exactly the bytes written; staging then adopts the copy as the store
//! object instead of reading the stock again (src/state/store.rs).
//!
//! Only a service the store holds no object of is captured: its object
//! cannot exist yet, so the copy is never wasted on an unchanged service.
//! This is the one place where the stock layer writes, and it writes only
//! below the staging directory the engine hands in (the state directory,
//! under the manager lock; `.tmp-*` names, which recovery sweeps), never to
//! a stock tree. The copy keeps the store copy's rules: fd-relative, no
//! symlink followed, a bounded number of descriptors, holes kept,
//! `limits: max_stage_bytes` never exceeded, owners and modes set
//! explicitly (as the stock has them, which is how the store holds them
//! unless the object re-owns its entries: then staging copies again).

use std::collections::HashSet;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::model::tree::{self, Entry};
use crate::sys::fs::{self, Dir, DirChain};

/// The prefix of a captured service's directory in the staging directory.
/// `:` is in no service or object name, so no staging name of an object
/// or a generation can be one.
pub(crate) const PREFIX: &str = ".tmp-capture:";

/// Files below this size are copied through memory and hashed on the way;
/// larger ones extent by extent with `copy_file_range` (a reflink where the
/// file system has them, btrfs and XFS: no data written; holes kept as
/// holes), then hashed from the copy, which is the one read of their
/// bytes. Lower than the store's 1 MiB (src/state/store.rs): there the
/// file was already read by the scan, here it was not.
const CLONED_FROM: u64 = 64 << 10;

/// The staging name of the copy of `service`.
pub(crate) fn capture_name(service: &str) -> String {
    format!("{PREFIX}{service}")
}

/// Where a scan captures services, and which ones.
pub(crate) struct Capture<'a> {
    staging: &'a Dir,
    /// The services the store holds an object of: not captured.
    known: HashSet<String>,
    /// Bytes still allowed to be written (`limits: max_stage_bytes`,
    /// logical sizes, as staging counts them).
    remaining: AtomicU64,
    /// Files captured so far (`-v`).
    files: AtomicUsize,
}

impl<'a> Capture<'a> {
    /// Captures into `staging` every service not in `known`, writing at
    /// most `max_bytes` bytes of files in all.
    pub(crate) fn new(staging: &'a Dir, known: HashSet<String>, max_bytes: u64) -> Capture<'a> {
        Capture {
            staging,
            known,
            remaining: AtomicU64::new(max_bytes),
            files: AtomicUsize::new(0),
        }
    }

    /// How many files were captured.
    pub(crate) fn files(&self) -> usize {
        self.files.load(Ordering::Relaxed)
    }

    /// Starts the copy of `service`: its outer and inner directories, or
    /// `None` when the store already holds an object of it.
    pub(super) fn begin(&self, service: &str) -> Result<Option<(Dir, Dir)>> {
        if self.known.contains(service) {
            return Ok(None);
        }
        let name = capture_name(service);
        self.staging.remove_if_exists(&name)?;
        let outer = self.staging.create_dir(&name, 0o755)?;
        // Populated first, given its owner and mode last ([`ServiceCopy`]).
        let inner = outer.create_dir_unfinished(service)?;
        Ok(Some((outer, inner)))
    }

    /// Removes the copy of `service`, best effort: what stays is a
    /// `.tmp-*` name, which the engine or the next recovery sweep removes.
    pub(super) fn discard(&self, service: &str) {
        let _ = self.staging.remove_if_exists(capture_name(service));
    }

    /// Takes `bytes` from the budget; false (and nothing taken) when they
    /// do not fit.
    fn reserve(&self, bytes: u64) -> bool {
        self.remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .is_ok()
    }
}

/// The copy of one service, made beside its walk: entries come parent
/// first, so each directory exists before what it holds.
pub(super) struct ServiceCopy<'r> {
    capture: &'r Capture<'r>,
    /// The copy's directories along the walk, below `<service>`.
    dirs: DirChain<'r>,
}

impl<'r> ServiceCopy<'r> {
    pub(super) fn new(capture: &'r Capture<'r>, inner: &'r Dir) -> ServiceCopy<'r> {
        ServiceCopy {
            capture,
            dirs: DirChain::new(inner),
        }
    }

    /// Whether the budget allows a file of `size` more bytes; when not,
    /// the caller abandons the copy (staging then refuses the commit for
    /// its size, docs/security.md#sparse-files).
    pub(super) fn fits(&self, size: u64) -> bool {
        self.capture.reserve(size)
    }

    /// Creates the directory `rel` (owner-only until [`Self::finish_dir`]).
    pub(super) fn dir(&mut self, rel: &str) -> Result<()> {
        let made = self
            .dirs
            .get(Path::new(parent_of(rel)))?
            .create_dir_unfinished(tree::base_of(rel))?;
        self.dirs.adopt(Path::new(rel), made);
        Ok(())
    }

    /// Gives the directory `entry`, whose entries are all in place, its
    /// owner, then its mode (chown clears set-id bits).
    pub(super) fn finish_dir(&mut self, entry: &Entry) -> Result<()> {
        let rel = if entry.path == tree::ROOT {
            ""
        } else {
            &entry.path
        };
        let dir = self.dirs.get(Path::new(rel))?;
        dir.set_owner(entry.uid, entry.gid)?;
        dir.set_mode(entry.mode)
    }

    /// Copies `from` as the file `entry` and returns the BLAKE3 of exactly
    /// the bytes written, or `None` when `from` did not hold the size its
    /// `lstat` said (it changed since: a race).
    pub(super) fn file(&mut self, entry: &Entry, from: &File) -> Result<Option<[u8; 32]>> {
        let dst = self.dirs.get(Path::new(parent_of(&entry.path)))?;
        let base = tree::base_of(&entry.path);
        let dst_path = dst.join(base);
        let to = dst.create_private_file(base)?;
        let size = entry.size.unwrap_or(0);
        let hash = if size < CLONED_FROM {
            fs::copy_small_exact(from, &to, size, &dst_path)?
        } else {
            // The copy is extended to `size`: its hash is of what the
            // object holds, and the fingerprint re-check before publishing
            // catches a stock file that changed meanwhile.
            fs::copy_preserving_holes(from, &to, size, &dst_path)?;
            let check = dst.open_file(base)?;
            let mut hasher = blake3::Hasher::new();
            hasher
                .update_reader(&check)
                .map_err(|e| Error::io("cannot read", &dst_path, e))?;
            Some(hasher.finalize())
        };
        // Explicitly: a file gets its directory's group on some file
        // systems and mounts, whatever our egid.
        fs::set_owner_fd(to.as_fd(), entry.uid, entry.gid, &dst_path)?;
        // After chown, which clears set-id bits.
        fs::set_mode_fd(to.as_fd(), entry.mode, &dst_path)?;
        self.capture.files.fetch_add(1, Ordering::Relaxed);
        Ok(hash.map(|h| *h.as_bytes()))
    }

    /// Makes the symlink `entry` (its target as the stock has it).
    pub(super) fn symlink(&mut self, entry: &Entry, target: &str) -> Result<()> {
        let dst = self.dirs.get(Path::new(parent_of(&entry.path)))?;
        let base = tree::base_of(&entry.path);
        dst.symlink(target, base)?;
        dst.set_owner_at(base, entry.uid, entry.gid)
    }
}

/// The parent of an entry path below the service (`""` for a top entry).
fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}
