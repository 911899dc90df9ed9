//! Reading and validating stock trees: the service directories that package
//! managers and administrators write.
//!
//! [`scan`] opens each configured tree, merges them (a later tree overrides
//! the same service name in an earlier one), drops disabled services, and
//! walks every service fd-relative without following symlinks, producing the
//! canonical [`Entry`] list and digest of each. Every problem found is
//! collected, so `check` can report them all at once. This module only
//! reads; it never writes to a stock tree or anywhere else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rayon::prelude::*;

use crate::state::stat_cache::{Fingerprint, StatCache};
use crate::config::Config;
use crate::error::{Error, Problem, Problems, Result};
use crate::sys::fs::{Dir, Kind};
use crate::model::names::name_problem;
use crate::model::tree::{self, Entry, EntryKind};

/// The longest allowed relative path inside a service, in bytes.
pub(crate) const MAX_PATH: usize = 4096;
/// Suffixes dpkg gives files it is still unpacking.
const DPKG_IN_FLIGHT: [&str; 2] = [".dpkg-new", ".dpkg-tmp"];

/// One service as found in the stock.
#[derive(Debug, Clone)]
pub(crate) struct StockService {
    pub name: String,
    /// The stock tree it comes from (after overrides).
    pub tree: PathBuf,
    /// Canonical, sorted entries; `entries[0]` is the directory itself.
    pub entries: Vec<Entry>,
    /// `fingerprints[i]` is what `lstat` said of `entries[i]` when scanned.
    pub fingerprints: Vec<Fingerprint>,
    pub digest: String,
    /// Paths whose set-id bits were stripped.
    pub stripped_setid: Vec<String>,
}

impl StockService {
    pub(crate) fn dir(&self) -> PathBuf {
        self.tree.join(&self.name)
    }

    pub(crate) fn object_name(&self) -> String {
        crate::state::layout::object_name(&self.name, &self.digest)
    }
}

/// All services of all stock trees, merged.
#[derive(Debug, Default)]
pub(crate) struct Stock {
    pub services: BTreeMap<String, StockService>,
    /// The trees that were read, in order.
    pub trees: Vec<PathBuf>,
    /// Informational lines: overrides, disabled services.
    pub notes: Vec<String>,
    /// The stat cache after this scan (new hashes added, vanished files dropped).
    pub cache: StatCache,
}

/// One walked service: the service, its problems, and newly hashed files.
type Walked = (StockService, Vec<Problem>, Vec<(Fingerprint, [u8; 32])>);

/// Checks that every required stock tree exists, without reading further.
/// Used before anything is created, so a mistyped path changes nothing.
pub(crate) fn check_trees_exist(cfg: &Config) -> Result<()> {
    let problems: Vec<Problem> = cfg
        .stock
        .iter()
        .filter(|t| !t.optional && !t.path.is_dir())
        .map(|t| missing_tree_problem(cfg, &t.path))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Stock {
            problems: Problems(problems),
        })
    }
}

fn missing_tree_problem(cfg: &Config, path: &Path) -> Problem {
    let fix = match &cfg.source {
        Some(file) => format!("create it, or fix `stock:` in {}", file.display()),
        None => "create it, or name the stock trees with --config or --root".into(),
    };
    Problem {
        path: path.to_path_buf(),
        what: "the stock directory does not exist or is not a directory".into(),
        fix,
        transient: false,
    }
}

/// Reads and validates all stock trees.
pub(crate) fn scan(cfg: &Config, cache: StatCache) -> Result<Stock> {
    let mut problems = Vec::new();
    let mut stock = Stock::default();
    // name -> (tree path, open tree dir)
    let mut chosen: BTreeMap<String, (usize, PathBuf)> = BTreeMap::new();
    let mut tree_dirs = Vec::new();
    for t in &cfg.stock {
        let dir = match Dir::open_following(&t.path) {
            Ok(d) => d,
            Err(_) if t.optional && !t.path.exists() => continue,
            Err(_) if !t.path.is_dir() => {
                problems.push(missing_tree_problem(cfg, &t.path));
                continue;
            }
            Err(e) => return Err(e),
        };
        let st = dir.self_stat()?;
        crate::config::check_trusted(&t.path, (&st).into(), "stock tree")?;
        stock.trees.push(t.path.clone());
        let index = tree_dirs.len();
        for name in dir.names()? {
            let path = t.path.join(&name);
            let bytes = name.as_encoded_bytes();
            if let Some(why) = name_problem(bytes) {
                problems.push(Problem {
                    path,
                    what: why,
                    fix: "rename the service directory".into(),
                    transient: false,
                });
                continue;
            }
            let st = dir.stat(&name).map_err(|e| raced(e, &path))?;
            match Kind::of(&st) {
                Kind::Dir => {}
                Kind::Symlink => {
                    problems.push(Problem {
                        path,
                        what: "is a symlink; a stock service must be a real directory".into(),
                        fix: "replace the link with a copy of the directory".into(),
                        transient: false,
                    });
                    continue;
                }
                _ => {
                    problems.push(Problem {
                        path,
                        what: "is not a directory; a stock tree holds only service directories"
                            .into(),
                        fix: "move the file out of the stock tree".into(),
                        transient: false,
                    });
                    continue;
                }
            }
            let name = name.to_string_lossy().into_owned();
            if let Some((_, prev)) = chosen.insert(name.clone(), (index, t.path.clone())) {
                stock.notes.push(format!(
                    "{name}: {} overrides {}",
                    t.path.display(),
                    prev.display()
                ));
            }
        }
        tree_dirs.push(dir);
    }
    for name in &cfg.disabled {
        if chosen.remove(name).is_some() {
            stock.notes.push(format!("{name}: disabled by config"));
        } else {
            stock.notes.push(format!(
                "{name}: listed in `disabled:` but in no stock tree"
            ));
        }
    }

    let entry_budget = AtomicU64::new(cfg.limits.max_entries);
    // Set when an entry found no budget left: exactly `max_entries` is fine.
    let over_budget = AtomicBool::new(false);
    let scan_start = now_seconds();
    let walked: Vec<Result<Walked>> = chosen
        .par_iter()
        .map(|(name, (index, tree))| {
            let service_dir = tree_dirs[*index]
                .open_dir(name)
                .map_err(|e| raced(e, &tree.join(name)))?;
            let mut walker = Walker {
                cfg,
                cache: &cache,
                base: tree.join(name),
                allow_setid: cfg.allow_setid.iter().any(|s| s == name),
                budget: &entry_budget,
                over_budget: &over_budget,
                entries: Vec::new(),
                fingerprints: Vec::new(),
                problems: Vec::new(),
                hashed: Vec::new(),
                stripped: Vec::new(),
            };
            walker.walk_root(&service_dir)?;
            walker.check_required();
            let Walker {
                mut entries,
                fingerprints,
                problems,
                hashed,
                stripped,
                ..
            } = walker;
            // Sort entries and fingerprints together.
            let mut pairs: Vec<(Entry, Fingerprint)> =
                entries.drain(..).zip(fingerprints).collect();
            pairs.sort_by(|a, b| tree::compare_paths(&a.0.path, &b.0.path));
            let (entries, fingerprints): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
            let digest = tree::digest(&entries);
            Ok((
                StockService {
                    name: name.clone(),
                    tree: tree.clone(),
                    entries,
                    fingerprints,
                    digest,
                    stripped_setid: stripped,
                },
                problems,
                hashed,
            ))
        })
        .collect();

    let mut cache = cache;
    for result in walked {
        let (service, mut service_problems, hashed) = result?;
        problems.append(&mut service_problems);
        for (fp, hash) in hashed {
            cache.insert(fp, hash, scan_start);
        }
        stock.services.insert(service.name.clone(), service);
    }
    if over_budget.load(Ordering::Relaxed) {
        problems.push(Problem {
            path: cfg
                .stock
                .first()
                .map(|t| t.path.clone())
                .unwrap_or_default(),
            what: format!(
                "the stock trees hold more than {} entries",
                cfg.limits.max_entries
            ),
            fix: "raise `limits: {max_entries: N}` in the config if this is intended".into(),
            transient: false,
        });
    }
    stock.cache = cache;
    if problems.is_empty() {
        return Ok(stock);
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    if problems.iter().all(|p| p.transient) {
        Err(Error::StockBusy {
            problems: Problems(problems),
        })
    } else {
        Err(Error::Stock {
            problems: Problems(problems),
        })
    }
}

/// Re-reads the fingerprints of `service` and fails with exit 75 if any
/// entry changed since [`scan`] (a package manager still writing).
pub(crate) fn recheck(service: &StockService) -> Result<()> {
    let root = Dir::open_following(&service.tree)?;
    let dir = root
        .open_dir(&service.name)
        .map_err(|e| raced(e, &service.dir()))?;
    for (entry, fp) in service.entries.iter().zip(&service.fingerprints) {
        let now = if entry.path == tree::ROOT {
            dir.self_stat().ok().map(|st| Fingerprint::of(&st))
        } else {
            dir.try_stat(&entry.path)
                .ok()
                .flatten()
                .map(|st| Fingerprint::of(&st))
        };
        if now.as_ref() != Some(fp) {
            return Err(changed_while_reading(&service.dir().join(&entry.path)));
        }
    }
    // An added or removed entry changes its directory's mtime, checked above.
    Ok(())
}

/// Turns the error of an entry that vanished or changed type since it was
/// listed (see [`crate::sys::fs::is_race`]) into "stock changed while
/// reading" (exit 75); any other error stays what it is.
pub(crate) fn raced(err: Error, path: &Path) -> Error {
    if crate::sys::fs::is_race(&err) {
        changed_while_reading(path)
    } else {
        err
    }
}

pub(crate) fn changed_while_reading(path: &Path) -> Error {
    Error::StockBusy {
        problems: Problems(vec![Problem {
            path: path.to_path_buf(),
            what: "stock tree changed while reading; retry when the package manager is done".into(),
            fix: "nothing was published; the live generation is unchanged".into(),
            transient: true,
        }]),
    }
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

struct Walker<'a> {
    cfg: &'a Config,
    cache: &'a StatCache,
    base: PathBuf,
    allow_setid: bool,
    budget: &'a AtomicU64,
    over_budget: &'a AtomicBool,
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

    fn take_budget(&self) -> bool {
        let ok = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !ok {
            self.over_budget.store(true, Ordering::Relaxed);
        }
        ok
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

    fn walk_root(&mut self, dir: &Dir) -> Result<()> {
        let st = dir.self_stat()?;
        let mode = self.mode_of(tree::ROOT, &st);
        self.push(
            Entry {
                path: tree::ROOT.into(),
                kind: EntryKind::Dir,
                mode,
                uid: st.st_uid,
                gid: st.st_gid,
                size: None,
                blake3: None,
                target: None,
            },
            &st,
        );
        self.walk(dir, "", 1)
    }

    fn walk(&mut self, dir: &Dir, prefix: &str, depth: usize) -> Result<()> {
        for name in dir.names()? {
            let shown = name.to_string_lossy();
            let rel = format!("{prefix}{shown}");
            let Some(utf8) = name.to_str() else {
                self.problem(&rel, "the name is not valid UTF-8", "rename it");
                continue;
            };
            if utf8.chars().any(char::is_control) {
                self.problem(
                    &rel.escape_debug().to_string(),
                    "the name contains a control character",
                    "rename it",
                );
                continue;
            }
            if rel.len() > MAX_PATH {
                self.problem(
                    shown_prefix(&rel, 64),
                    format!(
                        "a path beginning here is {} bytes long; the limit is {MAX_PATH}",
                        rel.len()
                    ),
                    "shorten the path",
                );
                continue;
            }
            if !self.take_budget() {
                return Ok(());
            }
            if self.cfg.runtime_entries.contains(&rel) {
                self.problem(
                    &rel,
                    "ships a runtime entry that only the supervisor may create",
                    "remove it from the stock service (supervisors create it at run time)",
                );
                continue;
            }
            if DPKG_IN_FLIGHT.iter().any(|s| utf8.ends_with(s)) {
                self.problems.push(Problem {
                    path: self.base.join(&rel),
                    what: "is a file dpkg is still unpacking (or left by a crashed upgrade)".into(),
                    fix: "retry when the package manager is done, or run `dpkg --configure -a`"
                        .into(),
                    transient: true,
                });
                continue;
            }
            let st = dir
                .stat(&name)
                .map_err(|e| raced(e, &self.base.join(&rel)))?;
            let mode = self.mode_of(&rel, &st);
            let mut entry = Entry {
                path: rel.clone(),
                kind: EntryKind::Dir,
                mode,
                uid: st.st_uid,
                gid: st.st_gid,
                size: None,
                blake3: None,
                target: None,
            };
            match Kind::of(&st) {
                Kind::Dir => {
                    if depth >= self.cfg.limits.max_depth {
                        self.problem(
                            &rel,
                            format!(
                                "nesting is deeper than {} levels",
                                self.cfg.limits.max_depth
                            ),
                            "flatten the tree or raise `limits: {max_depth: N}`",
                        );
                        continue;
                    }
                    self.push(entry, &st);
                    let child = dir
                        .open_dir(&name)
                        .map_err(|e| raced(e, &self.base.join(&rel)))?;
                    self.walk(&child, &format!("{rel}/"), depth + 1)?;
                }
                Kind::File => {
                    #[allow(clippy::unnecessary_cast)]
                    let size = st.st_size as u64;
                    if size > self.cfg.limits.max_file_size {
                        self.problem(
                            &rel,
                            format!(
                                "the file is {size} bytes; the limit is {}",
                                self.cfg.limits.max_file_size
                            ),
                            "raise `limits: {max_file_size: N}` if this is intended",
                        );
                        continue;
                    }
                    let fp = Fingerprint::of(&st);
                    let hash = match self.cache.lookup(&fp) {
                        Some(h) => h,
                        None => {
                            let file = dir
                                .open_file(&name)
                                .map_err(|e| raced(e, &self.base.join(&rel)))?;
                            let mut hasher = blake3::Hasher::new();
                            hasher
                                .update_reader(&file)
                                .map_err(|e| Error::io("cannot read", self.base.join(&rel), e))?;
                            let h = *hasher.finalize().as_bytes();
                            self.hashed.push((fp, h));
                            h
                        }
                    };
                    entry.kind = EntryKind::File;
                    entry.size = Some(size);
                    entry.blake3 = Some(tree::ContentHash(hash));
                    self.push(entry, &st);
                }
                Kind::Symlink => {
                    let target = dir
                        .read_link(&name)
                        .map_err(|e| raced(e, &self.base.join(&rel)))?;
                    let Some(target) = target.to_str().map(str::to_string) else {
                        self.problem(
                            &rel,
                            "the symlink target is not valid UTF-8",
                            "change the link",
                        );
                        continue;
                    };
                    if target.chars().any(char::is_control) {
                        self.problem(
                            &rel,
                            "the symlink target contains a control character",
                            "change the link",
                        );
                        continue;
                    }
                    entry.kind = EntryKind::Symlink;
                    entry.mode = 0o777;
                    entry.target = Some(target);
                    self.push(entry, &st);
                }
                Kind::Other(t) => {
                    self.problem(
                        &rel,
                        format!(
                            "is a {}; only files, directories and symlinks are allowed",
                            kind_name(t)
                        ),
                        "remove it (a service creates its FIFOs and sockets at run time)",
                    );
                }
            }
        }
        Ok(())
    }

    /// `run` must be an executable regular file; so must `log/run` when `log/` exists.
    fn check_required(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        let find = |path: &str| entries.iter().find(|e| e.path == path).cloned();
        let executable = |e: &Option<Entry>| matches!(e, Some(e) if e.kind == EntryKind::File && e.mode & 0o111 != 0);
        let run = find("run");
        if !executable(&run) {
            let what = match &run {
                None => "has no `run` file",
                Some(e) if e.kind != EntryKind::File => "`run` is not a regular file",
                Some(_) => "`run` is not executable",
            };
            let fix = match &run {
                Some(e) if e.kind == EntryKind::File => "chmod +x run",
                _ => "add an executable `run` script (symlinks are stored as links, not followed)",
            };
            self.problem(tree::ROOT, what, fix);
        }
        if let Some(log) = find("log") {
            if log.kind != EntryKind::Dir {
                self.problem(
                    "log",
                    "`log` is not a directory",
                    "make log/ a directory with a run script",
                );
            } else if !executable(&find("log/run")) {
                self.problem(
                    "log",
                    "`log/` has no executable `log/run`",
                    "add an executable log/run, or remove log/",
                );
            }
        }
        self.entries = entries;
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
