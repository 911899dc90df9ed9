//! The digests of `restart_on` paths (docs/design.md#identity): a daemon's
//! binary or config directory named in the config, whose content is part of
//! its service's identity. Walked like a stock service — fd-relative through
//! [`crate::sys::fs`], never following a symlink (a link's target text is
//! what counts), bounded in entries, depth and file size, file hashes taken
//! from the stat cache when their fingerprint is unchanged. Reads only:
//! nothing under these paths is copied anywhere, only a digest is kept.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Problem, Result};
use crate::model::identity::WatchedPath;
use crate::model::shown::shown;
use crate::stock::Stock;
use crate::stock::stat_cache::{Fingerprint, StatCache};
use crate::sys::fs::{Dir, DirChain, Kind};

/// The most entries one `restart_on` path may hold: it names a binary or a
/// config directory, not a file system.
const MAX_ENTRIES: usize = 100_000;

/// Fills in the `restart_on` digests of every stock service the config
/// names; a path that is missing or too large is a problem of that service,
/// which is held back with all of them (exit 65 with `--strict` and in
/// `check`). Services not in the stock are skipped: disabling a service
/// must not need a config edit here.
pub(crate) fn digest_restart_on(cfg: &Config, stock: &mut Stock) -> Result<()> {
    let scan_start = super::now_seconds();
    let mut problems: BTreeMap<String, Vec<Problem>> = BTreeMap::new();
    for (name, paths) in &cfg.restart_on {
        let Some(service) = stock.services.get_mut(name) else {
            continue;
        };
        let mut watched = Vec::with_capacity(paths.len());
        for path in paths {
            let walk = PathWalk {
                cache: &mut stock.cache,
                hasher: blake3::Hasher::new(),
                entries: 0,
                max_file_size: cfg.limits.max_file_size,
                max_depth: cfg.limits.max_depth,
                scan_start,
                too_large: None,
            };
            match walk.digest(path)? {
                Ok(digest) => watched.push(WatchedPath {
                    path: path.display().to_string(),
                    digest,
                }),
                Err(what) => problems.entry(name.clone()).or_default().push(Problem {
                    path: path.clone(),
                    what: format!("`restart_on` path of {name} {what}"),
                    fix: format!(
                        "install it, or remove it from `restart_on: {{{name}: [...]}}` in the config"
                    ),
                    transient: false,
                }),
            }
        }
        service.identity.restart_on = watched;
    }
    for (name, service_problems) in problems {
        stock.hold_back(&name, service_problems);
    }
    Ok(())
}

/// One `restart_on` path being digested.
struct PathWalk<'a> {
    cache: &'a mut StatCache,
    hasher: blake3::Hasher,
    entries: usize,
    max_file_size: u64,
    max_depth: usize,
    scan_start: i64,
    /// Why the walk stopped early: a limit was exceeded.
    too_large: Option<String>,
}

impl PathWalk<'_> {
    /// The digest of `path`, or what is wrong with it (missing, too large).
    fn digest(mut self, path: &Path) -> Result<std::result::Result<String, String>> {
        let (Some(parent), Some(base)) = (path.parent(), path.file_name()) else {
            return Ok(Err("names no file".into()));
        };
        // The directories above are configuration and resolved normally;
        // the path itself and everything below it are not followed.
        let parent_dir = match Dir::open_following(parent) {
            Ok(dir) => dir,
            Err(_) if !parent.is_dir() => return Ok(Err("does not exist".into())),
            Err(e) => return Err(e),
        };
        if parent_dir.try_stat(base)?.is_none() {
            return Ok(Err("does not exist".into()));
        }
        // A bounded number of directories open, however deep or wide the
        // path (docs/security.md#bounded-file-descriptors).
        let mut chain = DirChain::new(&parent_dir);
        self.add(&mut chain, Path::new(""), base, b".", 0)?;
        match self.too_large {
            Some(why) => Ok(Err(why)),
            None => Ok(Ok(self.hasher.finalize().to_hex().to_string())),
        }
    }

    /// Hashes the entry `name` of the directory `at` below the chain's root
    /// (`rel` below the path) and, for a directory, everything below it in
    /// name order.
    fn add(
        &mut self,
        chain: &mut DirChain<'_>,
        at: &Path,
        name: &OsStr,
        rel: &[u8],
        depth: usize,
    ) -> Result<()> {
        if self.too_large.is_some() {
            return Ok(());
        }
        self.entries += 1;
        if self.entries > MAX_ENTRIES || depth > self.max_depth {
            self.too_large = Some(format!(
                "holds more than {MAX_ENTRIES} entries or is deeper than {} levels",
                self.max_depth
            ));
            return Ok(());
        }
        let dir = chain.get(at)?;
        let st = dir.stat(name)?;
        let kind = Kind::of(&st);
        self.hasher.update(&(rel.len() as u64).to_le_bytes());
        self.hasher.update(rel);
        self.hasher.update(&[kind_tag(kind)]);
        for n in [st.st_mode & 0o7777, st.st_uid, st.st_gid] {
            self.hasher.update(&n.to_le_bytes());
        }
        match kind {
            Kind::File => {
                let hash = self.file_hash(dir, name, &st)?;
                self.hasher.update(&hash);
            }
            Kind::Symlink => {
                let target = dir.read_link(name)?;
                let target = target.as_os_str().as_bytes();
                self.hasher.update(&(target.len() as u64).to_le_bytes());
                self.hasher.update(target);
            }
            Kind::Dir => {
                let child = at.join(name);
                for entry in chain.get(&child)?.names()? {
                    let mut child_rel = if rel == b"." {
                        Vec::new()
                    } else {
                        [rel, b"/"].concat()
                    };
                    child_rel.extend_from_slice(entry.as_bytes());
                    self.add(chain, &child, &entry, &child_rel, depth + 1)?;
                }
            }
            // A device, FIFO or socket counts by its metadata alone.
            Kind::Other(_) => {}
        }
        Ok(())
    }

    /// A regular file's BLAKE3: from the stat cache when its fingerprint is
    /// unchanged, else read (up to the size limit) and added to the cache.
    fn file_hash(&mut self, dir: &Dir, name: &OsStr, st: &rustix::fs::Stat) -> Result<[u8; 32]> {
        let fingerprint = Fingerprint::of(st);
        if let Some(hash) = self.cache.lookup(&fingerprint) {
            return Ok(hash);
        }
        if fingerprint.size > self.max_file_size {
            self.too_large = Some(format!(
                "holds {} of {} bytes, more than `limits: max_file_size` ({})",
                shown(&dir.join(name)),
                fingerprint.size,
                self.max_file_size
            ));
            return Ok([0; 32]);
        }
        let file = dir.open_file(name)?;
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_reader(std::io::Read::take(&file, self.max_file_size))
            .map_err(|e| Error::io("cannot read", dir.join(name), e))?;
        let hash = *hasher.finalize().as_bytes();
        self.cache.insert(fingerprint, hash, self.scan_start);
        Ok(hash)
    }
}

/// One byte per kind of entry in the hashed stream.
fn kind_tag(kind: Kind) -> u8 {
    match kind {
        Kind::File => b'f',
        Kind::Dir => b'd',
        Kind::Symlink => b'l',
        Kind::Other(_) => b'o',
    }
}
