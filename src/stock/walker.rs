//! Walking one service directory: fd-relative, never following a symlink,
//! one [`Entry`] per file, directory and symlink, with the per-entry checks
//! (names, path length, depth, size, file types, runtime and dpkg entries,
//! set-id bits, s6-rc source) and the entry budget. A symlink that leads to
//! a file beneath a stock tree becomes that file (`src/stock/links.rs`);
//! one that is run-time state is left out. Reads only; new file hashes are
//! returned for the stat cache, never written here.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::config::Config;
use crate::error::{Error, Problem, Result};
use crate::model::identity::Identity;
use crate::model::limits::MAX_PATH;
use crate::model::shown::shown;
use crate::model::tree::{self, Entry, EntryKind};
use crate::stock::budget::EntryBudget;
use crate::stock::capture::{Capture, ServiceCopy};
use crate::stock::links::{self, OutsideTarget, Resolution};
use crate::stock::race::{changed_while_reading, raced};
use crate::stock::stat_cache::{Fingerprint, StatCache};
use crate::stock::{LinkedFile, StockService, required, s6rc};
use crate::sys::fs::{Dir, DirChain, Kind};

/// Suffixes dpkg gives files it is still unpacking.
const DPKG_IN_FLIGHT: [&str; 2] = [".dpkg-new", ".dpkg-tmp"];

/// One walked service: the service, its problems, its notices (one line
/// each, naming the path) and newly hashed files.
pub(super) struct WalkedService {
    pub service: StockService,
    pub problems: Vec<Problem>,
    pub notices: Vec<String>,
    /// Whether the service was copied while it was read
    /// (`src/stock/capture.rs`): its copy waits in the staging directory.
    pub captured: bool,
}

/// What a walk shares with the other walks of the same scan.
pub(super) struct WalkContext<'a> {
    pub cfg: &'a Config,
    pub cache: &'a StatCache,
    pub budget: &'a EntryBudget,
    /// Every open stock tree, in config order: where links are resolved.
    pub roots: &'a [Dir],
    /// Which services let go of their entries once walked.
    pub opts: super::ScanOptions<'a>,
    /// Where services the store has never held are copied while they are
    /// hashed (a commit); `None` reads only.
    pub capture: Option<&'a Capture<'a>>,
    /// The hashes computed for the stat cache, gathered from every walk as
    /// each ends: held once, not per service until the scan ends and then
    /// again in the cache
    /// (docs/performance.md#first-commit-memory-at-100000-services).
    pub learnt: &'a Mutex<Vec<(Fingerprint, [u8; 32])>>,
    /// When hashing began (seconds): newer files are not cached.
    pub scan_start: i64,
}

impl WalkContext<'_> {
    /// Adds the hashes one walk computed whose files the stat cache may
    /// keep ([`StatCache::trusted`]).
    fn learn(&self, hashed: Vec<(Fingerprint, [u8; 32])>) {
        // A report-only read (`check`) never saves the cache: nothing kept.
        if self.opts.report_only {
            return;
        }
        let trusted = hashed
            .into_iter()
            .filter(|(fp, _)| StatCache::trusted(fp, self.scan_start));
        self.learnt
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(trusted);
    }
}

/// Walks the service `name` of the stock tree `tree`, open as `dir`.
pub(super) fn walk_service(
    context: &WalkContext<'_>,
    dir: &Dir,
    name: &str,
    tree: &Path,
) -> Result<WalkedService> {
    let copy_dirs = match context.capture {
        Some(capture) => capture.begin(name)?,
        None => None,
    };
    let mut walker = Walker {
        context,
        base: tree.join(name),
        allow_setid: context.cfg.allow_setid.iter().any(|s| s == name),
        entries: Vec::new(),
        fingerprints: Vec::new(),
        problems: Vec::new(),
        notices: Vec::new(),
        hashed: Vec::new(),
        stripped: Vec::new(),
        linked: Vec::new(),
        copy: copy_dirs
            .as_ref()
            .zip(context.capture)
            .map(|((_, inner), capture)| ServiceCopy::new(capture, inner)),
    };
    walker.walk_root(dir)?;
    let source_kind =
        s6rc::source_kind(dir, &walker.entries).map_err(|e| walker.raced(e, "type"))?;
    if let Some(kind) = source_kind {
        // Its `run` (if any) is not what a supervisor runs: the
        // required-entry messages would send the user the wrong way.
        walker.problem(
            tree::ROOT,
            format!("this is s6-rc source (its `type` file says `{kind}`)"),
            "compile it with s6-rc-compile; svcdir-update manages compiled service directories",
        );
    } else {
        for missing in required::missing_entries(&walker.entries) {
            walker.problem(missing.rel, missing.what, missing.fix);
        }
    }
    // A held-back service is not staged; an abandoned copy is incomplete.
    let captured = walker.copy.is_some() && walker.problems.is_empty();
    walker.copy = None;
    if let (Some(capture), Some(_)) = (context.capture, &copy_dirs) {
        if captured {
            crate::sys::failpoint::hit("stock.after-capture")?;
        } else {
            capture.discard(name);
        }
    }
    context.learn(std::mem::take(&mut walker.hashed));
    let mut walked = walker.finish(name, tree);
    walked.captured = captured;
    Ok(walked)
}

struct Walker<'a> {
    context: &'a WalkContext<'a>,
    base: PathBuf,
    allow_setid: bool,
    entries: Vec<Entry>,
    fingerprints: Vec<Fingerprint>,
    problems: Vec<Problem>,
    notices: Vec<String>,
    hashed: Vec<(Fingerprint, [u8; 32])>,
    stripped: Vec<String>,
    linked: Vec<LinkedFile>,
    /// The copy being made beside the walk, if the service is captured.
    copy: Option<ServiceCopy<'a>>,
}

impl Walker<'_> {
    /// The size of the file `st` describes if it is within `limits:
    /// max_file_size`; else `None` and a problem at `rel` whose text starts
    /// with `what` (the file itself, or what a link leads to).
    fn size_within_limit(&mut self, rel: &str, st: &rustix::fs::Stat, what: &str) -> Option<u64> {
        #[allow(clippy::unnecessary_cast)]
        let size = st.st_size as u64;
        let max_file_size = self.context.cfg.limits.max_file_size;
        if size <= max_file_size {
            return Some(size);
        }
        self.problem(
            rel,
            format!("{what} {size} bytes; the limit is {max_file_size}"),
            "raise `limits: {max_file_size: N}` if this is intended",
        );
        None
    }

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
                entry_count: entries.len(),
                entries,
                fingerprints,
                entries_dropped: false,
                digest,
                identity: Identity::default(),
                stripped_setid: self.stripped,
                linked: self.linked,
                packed: None,
            },
            problems: self.problems,
            notices: self.notices,
            captured: false,
        }
    }

    fn walk_root(&mut self, dir: &Dir) -> Result<()> {
        let st = dir.self_stat()?;
        let mode = self.mode_of(tree::ROOT, &st);
        self.push(entry_of(tree::ROOT.into(), mode, &st), &st);
        // A bounded number of directories open, however deep or wide the
        // service (docs/security.md#bounded-file-descriptors).
        let mut chain = DirChain::new(dir);
        // The root's copy exists already (`Capture::begin`).
        self.walk(&mut chain, "", 1, 0)
    }

    /// Walks the directory at `prefix` (`""` or ending in `/`) below the
    /// chain's root, which is `entries[index]`.
    fn walk(
        &mut self,
        chain: &mut DirChain<'_>,
        prefix: &str,
        depth: usize,
        index: usize,
    ) -> Result<()> {
        let at = Path::new(prefix.trim_end_matches('/'));
        let names = chain.get(at).map_err(|e| self.raced(e, prefix))?.names()?;
        for name in names {
            let rel = format!("{prefix}{}", name.to_string_lossy());
            let Some(utf8) = self.check_name(&name, &rel) else {
                continue;
            };
            // Checked after the name, so a refused name costs no budget.
            if !self.context.budget.take() {
                return Ok(());
            }
            let dir = chain.get(at).map_err(|e| self.raced(e, prefix))?;
            if self.is_left_out(dir, &name, &rel, utf8)? {
                continue;
            }
            self.visit(chain, at, &name, rel, depth)?;
        }
        self.copied_dir(index, true)
    }

    /// The name as UTF-8, or `None` after recording why it cannot be an
    /// entry (not UTF-8, a control character, a path too long).
    fn check_name<'n>(&mut self, name: &'n OsStr, rel: &str) -> Option<&'n str> {
        let Some(utf8) = name.to_str() else {
            self.problem(rel, "the name is not valid UTF-8", "rename it");
            return None;
        };
        if utf8.chars().any(char::is_control) {
            // Raw here: every rendering of the path escapes it
            // (docs/security.md#outside-text-is-shown-escaped).
            self.problem(rel, "the name contains a control character", "rename it");
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

    /// Whether `rel` stays out of the service's entries: a symlink where a
    /// supervisor keeps its runtime state (Debian's `supervise ->
    /// /run/runit/supervise.NAME`: left out with a notice, so each store
    /// object gets its own), or an entry no stock service may ship
    /// (recorded as a problem): any other runtime entry, or a file dpkg is
    /// unpacking.
    fn is_left_out(&mut self, dir: &Dir, name: &OsStr, rel: &str, utf8: &str) -> Result<bool> {
        if self.context.cfg.runtime_entries.iter().any(|e| e == rel) {
            let st = dir.stat(name).map_err(|e| self.raced(e, rel))?;
            if Kind::of(&st) == Kind::Symlink {
                let target = dir.read_link(name).map_err(|e| self.raced(e, rel))?;
                self.notices.push(format!(
                    "{}: left out: a symlink to run-time state ({}), which the supervisor \
                     recreates inside each copy",
                    shown(&self.base.join(rel)),
                    shown(&target)
                ));
            } else {
                self.problem(
                    rel,
                    "ships a runtime entry that only the supervisor may create",
                    "remove it from the stock service; supervisors create it at run time",
                );
            }
            return Ok(true);
        }
        if DPKG_IN_FLIGHT.iter().any(|s| utf8.ends_with(s)) {
            self.problems.push(Problem {
                path: self.base.join(rel),
                what: "is a file dpkg is still unpacking (or left by a crashed upgrade)".into(),
                fix: "retry when the package manager is done, or run `dpkg --configure -a`".into(),
                transient: true,
            });
            return Ok(true);
        }
        Ok(false)
    }

    /// Stats the entry `name` of the directory `at` and records it by its type.
    fn visit(
        &mut self,
        chain: &mut DirChain<'_>,
        at: &Path,
        name: &OsStr,
        rel: String,
        depth: usize,
    ) -> Result<()> {
        let dir = chain.get(at).map_err(|e| self.raced(e, &rel))?;
        let st = dir.stat(name).map_err(|e| self.raced(e, &rel))?;
        let mode = self.mode_of(&rel, &st);
        let entry = entry_of(rel, mode, &st);
        match Kind::of(&st) {
            Kind::Dir => self.visit_dir(chain, entry, &st, depth),
            Kind::File => self.visit_file(dir, name, entry, &st),
            Kind::Symlink => self.visit_symlink(dir, name, entry, &st),
            Kind::Other(t) => {
                self.problem(
                    &entry.path,
                    format!(
                        "is a {}; only files, directories and symlinks are allowed",
                        kind_name(t)
                    ),
                    "remove it; a service creates its FIFOs and sockets at run time",
                );
                Ok(())
            }
        }
    }

    fn visit_dir(
        &mut self,
        chain: &mut DirChain<'_>,
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
        let index = self.entries.len();
        self.push(entry, st);
        // Its owner and mode are set when the walk leaves it.
        self.copied_dir(index, false)?;
        // The chain opens it from its parent, without following a link.
        self.walk(chain, &format!("{rel}/"), depth + 1, index)
    }

    /// Creates the copy of the directory `entries[index]` (`done`: gives
    /// it its owner and mode, once the walk left it). Out of line, and
    /// called so that [`Self::visit_dir`] and [`Self::walk`], which recurse
    /// once per level of a tree of any depth, keep small frames.
    #[inline(never)]
    fn copied_dir(&mut self, index: usize, done: bool) -> Result<()> {
        let (Some(copy), Some(entry)) = (&mut self.copy, self.entries.get(index)) else {
            return Ok(());
        };
        if done {
            copy.finish_dir(entry)
        } else {
            copy.dir(&entry.path)
        }
    }

    fn visit_file(
        &mut self,
        dir: &Dir,
        name: &OsStr,
        mut entry: Entry,
        st: &rustix::fs::Stat,
    ) -> Result<()> {
        let Some(size) = self.size_within_limit(&entry.path, st, "the file is") else {
            return Ok(());
        };
        entry.kind = EntryKind::File;
        entry.size = Some(size);
        let hash = self.file_hash(dir, name, &entry, st)?;
        entry.blake3 = Some(tree::ContentHash(hash));
        self.push(entry, st);
        Ok(())
    }

    /// The BLAKE3 of the file `entry` (`name` in `dir`, `st` its `lstat`):
    /// read once, into the service's copy on the way, when the service is
    /// captured; else [`Self::content_hash`]. A captured file is not
    /// looked up in the stat cache: its bytes are read for the copy anyway.
    fn file_hash(
        &mut self,
        dir: &Dir,
        name: &OsStr,
        entry: &Entry,
        st: &rustix::fs::Stat,
    ) -> Result<[u8; 32]> {
        let size = entry.size.unwrap_or(0);
        if self.copy.as_ref().is_some_and(|copy| !copy.fits(size)) {
            // Over `limits: max_stage_bytes`: staging refuses the commit.
            self.copy = None;
        }
        let Some(copy) = self.copy.as_mut() else {
            return self.content_hash(dir, name, &entry.path, st);
        };
        let from = match dir.open_file(name) {
            Ok(from) => from,
            Err(e) => return Err(raced(e, &self.base.join(&entry.path))),
        };
        let Some(hash) = copy.file(entry, &from)? else {
            return Err(changed_while_reading(&self.base.join(&entry.path)));
        };
        self.hashed.push((Fingerprint::of(st), hash));
        Ok(hash)
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
        let link = self.base.join(&entry.path);
        let resolution = links::resolve(self.context.roots, &link, &target)
            .map_err(|e| self.raced(e, &entry.path))?;
        match resolution {
            Resolution::File { root, rel, stat } => {
                self.visit_linked_file(entry, st, target, root, rel, &stat)
            }
            other => {
                self.judge_kept_link(&entry.path, &target, other);
                entry.kind = EntryKind::Symlink;
                entry.mode = 0o777;
                if let Some(copy) = &mut self.copy {
                    copy.symlink(&entry, &target)?;
                }
                entry.target = Some(target);
                self.push(entry, st);
                Ok(())
            }
        }
    }

    /// Records a link that leads to a file beneath a stock tree as that
    /// file: its content, mode and owner, and the link it came from. The
    /// fingerprint stays the link's own, which is what the pre-publish
    /// re-check stats; the copy re-hashes the target.
    fn visit_linked_file(
        &mut self,
        mut entry: Entry,
        link_st: &rustix::fs::Stat,
        target: String,
        root: usize,
        rel: PathBuf,
        st: &rustix::fs::Stat,
    ) -> Result<()> {
        let Some(size) = self.size_within_limit(&entry.path, st, "the file it links to is") else {
            return Ok(());
        };
        let roots = self.context.roots;
        entry.mode = self.mode_of(&entry.path, st);
        entry.uid = st.st_uid;
        entry.gid = st.st_gid;
        entry.kind = EntryKind::File;
        entry.size = Some(size);
        let hash = self.file_hash(&roots[root], rel.as_os_str(), &entry, st)?;
        entry.blake3 = Some(tree::ContentHash(hash));
        entry.from_link = Some(target);
        self.linked.push(LinkedFile {
            entry: entry.path.clone(),
            tree: roots[root].path().to_path_buf(),
            rel,
        });
        self.push(entry, link_st);
        Ok(())
    }

    /// The problem or notice for a link that stays a link: one the
    /// supervisor executes must lead to an executable file; a loop is
    /// always wrong; anything else is kept and said.
    fn judge_kept_link(&mut self, rel: &str, target: &str, resolution: Resolution) {
        let executed = links::EXECUTED.contains(&rel);
        let link = self.base.join(rel);
        let fix = "point the link at an existing executable, or replace it with the script";
        let refusal = match resolution {
            // Stored as that file by the caller; nothing to judge.
            Resolution::File { .. } => None,
            Resolution::Loop => {
                self.problem(
                    rel,
                    format!(
                        "is a symlink loop: {} links followed from {target:?} without reaching a file",
                        links::MAX_HOPS
                    ),
                    "break the loop: point the link at a file",
                );
                None
            }
            Resolution::Dangling { path } if executed => Some(format!(
                "is a symlink to {}, which does not exist",
                shown(&path)
            )),
            Resolution::Dangling { path } => {
                self.notices.push(format!(
                    "{}: dangling symlink: {} does not exist; kept as a link",
                    shown(&link),
                    shown(&path)
                ));
                None
            }
            Resolution::Unusable { path, why } if executed => Some(format!(
                "is a symlink to {}, which cannot be used: {why}",
                shown(&path)
            )),
            Resolution::Dir { path } if executed => Some(format!(
                "is a symlink to the directory {}; it must lead to an executable file",
                shown(&path)
            )),
            Resolution::Unusable { path, .. } | Resolution::Dir { path } => {
                self.notices.push(format!(
                    "{}: kept as a symlink to {}; what it leads to is not versioned",
                    shown(&link),
                    shown(&path)
                ));
                None
            }
            Resolution::Outside { path } => self.judge_outside_link(&link, executed, &path),
        };
        if let Some(what) = refusal {
            self.problem(rel, what, fix);
        }
    }

    /// A link out of every stock tree is kept as a link; one the supervisor
    /// executes must lead to an executable file, and its content is not
    /// versioned, which the notice says.
    fn judge_outside_link(&mut self, link: &Path, executed: bool, path: &Path) -> Option<String> {
        let state = links::check_outside(path);
        match (executed, state) {
            (true, OutsideTarget::Missing) => Some(format!(
                "is a symlink to {}, which does not exist",
                shown(&path)
            )),
            (true, OutsideTarget::NotExecutableFile) => Some(format!(
                "is a symlink to {}, which is not an executable file",
                shown(&path)
            )),
            (true, OutsideTarget::ExecutableFile) => {
                self.notices.push(format!(
                    "{}: kept as a symlink to {}, outside the stock trees: its content is not \
                     versioned (a change there restarts nothing)",
                    shown(&link),
                    shown(&path)
                ));
                None
            }
            (false, OutsideTarget::Missing) => {
                self.notices.push(format!(
                    "{}: dangling symlink: {} does not exist; kept as a link",
                    shown(&link),
                    shown(&path)
                ));
                None
            }
            (false, _) => None,
        }
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
        from_link: None,
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
