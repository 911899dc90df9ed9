//! Walking one service directory: fd-relative, never following a symlink,
//! one [`Entry`] per file, directory and symlink, with the per-entry checks
//! (names, path length, depth, size, file types, runtime and dpkg entries,
//! set-id bits) and the entry budget. Reads only; new file hashes are
//! returned for the stat cache, never written here.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::error::{Error, Problem, Result};
use crate::model::identity::Identity;
use crate::model::limits::MAX_PATH;
use crate::model::tree::{self, Entry, EntryKind};
use crate::stock::stat_cache::{Fingerprint, StatCache};
use crate::stock::StockService;
use crate::stock::budget::EntryBudget;
use crate::stock::race::raced;
use crate::stock::required;
use crate::sys::fs::{Dir, Kind};

/// Suffixes dpkg gives files it is still unpacking.
const DPKG_IN_FLIGHT: [&str; 2] = [".dpkg-new", ".dpkg-tmp"];

/// One walked service: the service, its problems, and newly hashed files.
pub(super) struct WalkedService {
    pub service: StockService,
    pub problems: Vec<Problem>,
    pub hashed: Vec<(Fingerprint, [u8; 32])>,
}

/// What a walk shares with the other walks of the same scan.
pub(super) struct WalkContext<'a> {
    pub cfg: &'a Config,
    pub cache: &'a StatCache,
    pub budget: &'a EntryBudget,
}

/// Walks the service `name` of the stock tree `tree`, open as `dir`.
pub(super) fn walk_service(
    context: &WalkContext<'_>,
    dir: &Dir,
    name: &str,
    tree: &Path,
) -> Result<WalkedService> {
    let mut walker = Walker {
        context,
        base: tree.join(name),
        allow_setid: context.cfg.allow_setid.iter().any(|s| s == name),
        entries: Vec::new(),
        fingerprints: Vec::new(),
        problems: Vec::new(),
        hashed: Vec::new(),
        stripped: Vec::new(),
    };
    walker.walk_root(dir)?;
    for missing in required::missing_entries(&walker.entries) {
        walker.problem(missing.rel, missing.what, missing.fix);
    }
    Ok(walker.finish(name, tree))
}

struct Walker<'a> {
    context: &'a WalkContext<'a>,
    base: PathBuf,
    allow_setid: bool,
    entries: Vec<Entry>,
    fingerprints: Vec<Fingerprint>,
    problems: Vec<Problem>,
    hashed: Vec<(Fingerprint, [u8; 32])>,
    stripped: Vec<String>,
}

impl Walker<'_> {
    fn problem(&mut self, rel: &str, what: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(Problem {
            path: if rel == tree::ROOT {
                self.base.clone()
            } else {
                self.base.join(rel)
            },
            what: what.into(),
            fix: fix.into(),
            transient: false,
        });
    }

    /// [`raced`] for the entry `rel` of this service.
    fn raced(&self, err: Error, rel: &str) -> Error {
        raced(err, &self.base.join(rel))
    }

    fn mode_of(&mut self, rel: &str, st: &rustix::fs::Stat) -> u32 {
        let mode = st.st_mode & 0o7777;
        if mode & 0o6000 != 0 && !self.allow_setid {
            self.stripped.push(rel.to_string());
            mode & !0o6000
        } else {
            mode
        }
    }

    fn push(&mut self, entry: Entry, st: &rustix::fs::Stat) {
        self.entries.push(entry);
        self.fingerprints.push(Fingerprint::of(st));
    }

    /// Sorts the entries (with their fingerprints) and computes the digest.
    fn finish(self, name: &str, tree: &Path) -> WalkedService {
        let mut pairs: Vec<(Entry, Fingerprint)> =
            self.entries.into_iter().zip(self.fingerprints).collect();
        pairs.sort_by(|a, b| tree::compare_paths(&a.0.path, &b.0.path));
        let (entries, fingerprints): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        let digest = tree::digest(&entries);
        WalkedService {
            service: StockService {
                name: name.to_string(),
                tree: tree.to_path_buf(),
                entries,
                fingerprints,
                digest,
                identity: Identity::default(),
                stripped_setid: self.stripped,
            },
            problems: self.problems,
            hashed: self.hashed,
        }
    }

    fn walk_root(&mut self, dir: &Dir) -> Result<()> {
        let st = dir.self_stat()?;
        let mode = self.mode_of(tree::ROOT, &st);
        self.push(entry_of(tree::ROOT.into(), mode, &st), &st);
        self.walk(dir, "", 1)
    }

    /// Walks the directory `dir` at `prefix` (`""` or ending in `/`).
    fn walk(&mut self, dir: &Dir, prefix: &str, depth: usize) -> Result<()> {
        for name in dir.names()? {
            let rel = format!("{prefix}{}", name.to_string_lossy());
            let Some(utf8) = self.check_name(&name, &rel) else {
                continue;
            };
            // Checked after the name, so a refused name costs no budget.
            if !self.context.budget.take() {
                return Ok(());
            }
            if self.is_refused_entry(&rel, utf8) {
                continue;
            }
            self.visit(dir, &name, rel, depth)?;
        }
        Ok(())
    }

    /// The name as UTF-8, or `None` after recording why it cannot be an
    /// entry (not UTF-8, a control character, a path too long).
    fn check_name<'n>(&mut self, name: &'n OsStr, rel: &str) -> Option<&'n str> {
        let Some(utf8) = name.to_str() else {
            self.problem(rel, "the name is not valid UTF-8", "rename it");
            return None;
        };
        if utf8.chars().any(char::is_control) {
            self.problem(
                &rel.escape_debug().to_string(),
                "the name contains a control character",
                "rename it",
            );
            return None;
        }
        if rel.len() > MAX_PATH {
            self.problem(
                shown_prefix(rel, 64),
                format!(
                    "a path beginning here is {} bytes long; the limit is {MAX_PATH}",
                    rel.len()
                ),
                "shorten the path",
            );
            return None;
        }
        Some(utf8)
    }

    /// Whether `rel` is an entry no stock service may ship (recorded as a
    /// problem): a supervisor's runtime entry, or a file dpkg is unpacking.
    fn is_refused_entry(&mut self, rel: &str, utf8: &str) -> bool {
        if self.context.cfg.runtime_entries.iter().any(|e| e == rel) {
            self.problem(
                rel,
                "ships a runtime entry that only the supervisor may create",
                "remove it from the stock service (supervisors create it at run time)",
            );
            return true;
        }
        if DPKG_IN_FLIGHT.iter().any(|s| utf8.ends_with(s)) {
            self.problems.push(Problem {
                path: self.base.join(rel),
                what: "is a file dpkg is still unpacking (or left by a crashed upgrade)".into(),
                fix: "retry when the package manager is done, or run `dpkg --configure -a`".into(),
                transient: true,
            });
            return true;
        }
        false
    }

    /// Stats the entry `name` of `dir` and records it by its type.
    fn visit(&mut self, dir: &Dir, name: &OsStr, rel: String, depth: usize) -> Result<()> {
        let st = dir.stat(name).map_err(|e| self.raced(e, &rel))?;
        let mode = self.mode_of(&rel, &st);
        let entry = entry_of(rel, mode, &st);
        match Kind::of(&st) {
            Kind::Dir => self.visit_dir(dir, name, entry, &st, depth),
            Kind::File => self.visit_file(dir, name, entry, &st),
            Kind::Symlink => self.visit_symlink(dir, name, entry, &st),
            Kind::Other(t) => {
                self.problem(
                    &entry.path,
                    format!(
                        "is a {}; only files, directories and symlinks are allowed",
                        kind_name(t)
                    ),
                    "remove it (a service creates its FIFOs and sockets at run time)",
                );
                Ok(())
            }
        }
    }

    fn visit_dir(
        &mut self,
        dir: &Dir,
        name: &OsStr,
        entry: Entry,
        st: &rustix::fs::Stat,
        depth: usize,
    ) -> Result<()> {
        let max_depth = self.context.cfg.limits.max_depth;
        if depth >= max_depth {
            self.problem(
                &entry.path,
                format!("nesting is deeper than {max_depth} levels"),
                "flatten the tree or raise `limits: {max_depth: N}`",
            );
            return Ok(());
        }
        let rel = entry.path.clone();
        self.push(entry, st);
        let child = dir.open_dir(name).map_err(|e| self.raced(e, &rel))?;
        self.walk(&child, &format!("{rel}/"), depth + 1)
    }

    fn visit_file(
        &mut self,
        dir: &Dir,
        name: &OsStr,
        mut entry: Entry,
        st: &rustix::fs::Stat,
    ) -> Result<()> {
        #[allow(clippy::unnecessary_cast)]
        let size = st.st_size as u64;
        let max_file_size = self.context.cfg.limits.max_file_size;
        if size > max_file_size {
            self.problem(
                &entry.path,
                format!("the file is {size} bytes; the limit is {max_file_size}"),
                "raise `limits: {max_file_size: N}` if this is intended",
            );
            return Ok(());
        }
        let hash = self.content_hash(dir, name, &entry.path, st)?;
        entry.kind = EntryKind::File;
        entry.size = Some(size);
        entry.blake3 = Some(tree::ContentHash(hash));
        self.push(entry, st);
        Ok(())
    }

    /// The BLAKE3 hash of a file: from the stat cache when its fingerprint
    /// is known, else read and remembered for the cache.
    fn content_hash(
        &mut self,
        dir: &Dir,
        name: &OsStr,
        rel: &str,
        st: &rustix::fs::Stat,
    ) -> Result<[u8; 32]> {
        let fp = Fingerprint::of(st);
        if let Some(hash) = self.context.cache.lookup(&fp) {
            return Ok(hash);
        }
        let file = dir.open_file(name).map_err(|e| self.raced(e, rel))?;
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_reader(&file)
            .map_err(|e| Error::io("cannot read", self.base.join(rel), e))?;
        let hash = *hasher.finalize().as_bytes();
        self.hashed.push((fp, hash));
        Ok(hash)
    }

    fn visit_symlink(
        &mut self,
        dir: &Dir,
        name: &OsStr,
        mut entry: Entry,
        st: &rustix::fs::Stat,
    ) -> Result<()> {
        let target = dir
            .read_link(name)
            .map_err(|e| self.raced(e, &entry.path))?;
        let Some(target) = target.to_str().map(str::to_string) else {
            self.problem(
                &entry.path,
                "the symlink target is not valid UTF-8",
                "change the link",
            );
            return Ok(());
        };
        if target.chars().any(char::is_control) {
            self.problem(
                &entry.path,
                "the symlink target contains a control character",
                "change the link",
            );
            return Ok(());
        }
        entry.kind = EntryKind::Symlink;
        entry.mode = 0o777;
        entry.target = Some(target);
        self.push(entry, st);
        Ok(())
    }
}

/// The entry for `rel` as a directory; files and symlinks fill in the rest.
fn entry_of(rel: String, mode: u32, st: &rustix::fs::Stat) -> Entry {
    Entry {
        path: rel,
        kind: EntryKind::Dir,
        mode,
        uid: st.st_uid,
        gid: st.st_gid,
        size: None,
        blake3: None,
        target: None,
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary (slicing at a fixed byte index would panic inside a
/// multi-byte character).
fn shown_prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn kind_name(t: rustix::fs::FileType) -> &'static str {
    use rustix::fs::FileType as T;
    match t {
        T::Fifo => "FIFO",
        T::Socket => "socket",
        T::CharacterDevice => "character device",
        T::BlockDevice => "block device",
        _ => "special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_prefix_never_splits_a_character() {
        let s = format!("x{}", "é".repeat(40));
        let p = shown_prefix(&s, 64);
        assert_eq!(p.len(), 63);
        assert!(s.starts_with(p));
        assert_eq!(shown_prefix("abc", 64), "abc");
    }
}
