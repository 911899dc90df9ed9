//! Verifying store objects against their manifests — type, mode, owner
//! as stored (docs/security.md#published-objects-belong-to-the-state-owner),
//! content hash, link target, no missing or extra entries — where the
//! runtime entries supervisors create must be directories of root or the
//! state owner, never links. This module only reads; it reports
//! differences by path and never repairs them. A kept symlink whose target
//! does not exist (now) is a note, not a problem: the object still is what
//! was committed, and the target may be made at boot (docs/design.md#links).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::manifest::GenerationManifest;
use crate::model::owners::{Owners, StoreOwner};
use crate::model::shown::shown;
use crate::model::tree::{self, Entry, EntryKind};
use crate::state::State;
use crate::state::generation;
use crate::state::layout;
use crate::state::store;
use crate::stock;
use crate::sys::fs::{Dir, DirChain, Kind};

/// What verifying a generation found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Every difference from the manifests: the generation is damaged.
    pub problems: Vec<String>,
    /// Dangling symlinks in its objects: worth saying, not a failure.
    pub notes: Vec<String>,
    /// What a user who is not root could not read: not damage, but the
    /// objects are not verified (docs/cli.md#non-root).
    pub unreadable: Vec<Error>,
    /// The store objects with problems, by name (what `verify --repair`
    /// restores, docs/cli.md#verify---repair).
    pub damaged: BTreeSet<String>,
}

/// Every difference between generation `m` (its completeness, its scan
/// directory links, each of its store objects) and its manifests.
pub(crate) fn findings(cfg: &Config, state: &State, m: &GenerationManifest) -> Findings {
    let mut found = Findings::default();
    for check in [generation::check_complete, generation::check_links] {
        if let Err(e) = check(state, m) {
            found.problems.push(e.to_string());
        }
    }
    for object in m.services.values() {
        let before = found.problems.len();
        match verify_object(cfg, state, object, &mut found) {
            Ok(()) => {}
            Err(e) if is_permission_denied(&e) && !crate::sys::fs::is_root() => {
                found.unreadable.push(e);
            }
            Err(e) => found.problems.push(e.chain()),
        }
        if found.problems.len() > before {
            found.damaged.insert(object.clone());
        }
    }
    found
}

/// The objects among `objects` that fail verification: the ones a commit
/// must not reuse (docs/cli.md#verify---repair). An object that cannot be
/// read counts as damaged.
pub(crate) fn damaged_objects<'a>(
    cfg: &Config,
    state: &State,
    objects: impl IntoIterator<Item = &'a String>,
) -> BTreeSet<String> {
    use rayon::prelude::*;
    let objects: Vec<&String> = objects.into_iter().collect();
    // Side by side: a commit checks every object it reuses (measured in
    // docs/cli.md#verify---repair).
    objects
        .par_iter()
        .filter(|object| {
            let mut found = Findings::default();
            let failed = verify_object(cfg, state, object, &mut found).is_err();
            failed || !found.problems.is_empty()
        })
        .map(|object| (*object).clone())
        .collect()
}

fn is_permission_denied(err: &Error) -> bool {
    matches!(err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied)
}

/// Compares one object directory with its manifest; appends differences
/// and dangling symlinks to `found`.
fn verify_object(cfg: &Config, state: &State, object: &str, found: &mut Findings) -> Result<()> {
    let manifest = store::load_manifest(&state.store, object)?;
    let base = state.object_path(object);
    found.notes.extend(dangling_links(&base, &manifest.entries));
    let problems = &mut found.problems;
    if layout::object_name(&manifest.service, &manifest.computed_digest()) != object {
        problems.push(format!(
            "{}: the manifest does not match the object's digest",
            shown(&state.store.join(layout::object_manifest_name(object)))
        ));
    }
    let want: BTreeMap<&str, &Entry> = manifest
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    check_outer_dir(state, object, &manifest.service, problems)?;
    let expect = Expect {
        me: stock::store_owner(),
        owners: manifest.owners,
    };
    if let Some(problem) = expect.legacy_owners(&manifest.entries, &base) {
        problems.push(problem);
    }
    let root = state.store.open_dir(layout::object_service_dir(object))?;
    let mut seen = BTreeSet::new();
    let mut at = Walk {
        cfg,
        want: &want,
        expect,
        base: &base,
    };
    // A bounded number of directories open, however deep or wide the
    // object (docs/security.md#bounded-file-descriptors).
    at.walk(&mut DirChain::new(&root), "", &mut seen, problems)?;
    for path in want.keys() {
        if *path != tree::ROOT && !seen.contains(*path) {
            problems.push(format!("{}: missing", shown(&base.join(path))));
        }
    }
    if let Some(e) = want.get(tree::ROOT) {
        let st = root.self_stat()?;
        expect.compare(e, &st, None, &base, problems);
    }
    Ok(())
}

/// How the entries of one object must be stored: by the state owner `me`,
/// or as the stock has them (docs/security.md#published-objects-belong-to-the-state-owner).
#[derive(Debug, Clone, Copy)]
struct Expect {
    me: StoreOwner,
    owners: Option<Owners>,
}

impl Expect {
    /// An object without an owners marker whose stock entries are not
    /// already ours was made by an older version, which kept the stock's
    /// owners: they can change it. The next commit re-stages it.
    fn legacy_owners(&self, entries: &[Entry], base: &Path) -> Option<String> {
        if self.owners.is_some() {
            return None;
        }
        let others = entries
            .iter()
            .filter(|e| !self.me.already_stored(e))
            .count();
        (others > 0).then(|| {
            format!(
                "{}: {others} entries are owned or writable by users other than uid {} (kept \
                 from the stock by an older svcdir-update); the next `svcdir-update commit` \
                 re-stages the object owned by uid {} (or list the service in `foreign_owners`)",
                base.display(),
                self.me.uid,
                self.me.uid
            )
        })
    }

    /// Compares what `st` says of `e` with the manifest: type, content or
    /// link target, mode and owner as stored.
    fn compare(
        &self,
        e: &Entry,
        st: &rustix::fs::Stat,
        content: Option<String>,
        path: &Path,
        problems: &mut Vec<String>,
    ) {
        let kind_ok = matches!(
            (e.kind, Kind::of(st)),
            (EntryKind::Dir, Kind::Dir)
                | (EntryKind::File, Kind::File)
                | (EntryKind::Symlink, Kind::Symlink)
        );
        if !kind_ok {
            problems.push(format!("{}: expected a {}", path.display(), e.kind));
            return;
        }
        match e.kind {
            EntryKind::File if content != e.blake3.map(|h| h.to_string()) => {
                problems.push(format!("{}: content changed", path.display()));
            }
            EntryKind::Symlink if content != e.target => {
                problems.push(format!(
                    "{}: link target changed (-> {}, expected -> {})",
                    path.display(),
                    content.as_deref().unwrap_or("?").escape_debug(),
                    e.target.as_deref().unwrap_or_default().escape_debug()
                ));
            }
            _ => {}
        }
        let stored = self.me.stored(e, self.owners);
        if e.kind != EntryKind::Symlink && st.st_mode & 0o7777 != stored.mode {
            problems.push(format!(
                "{}: mode {:04o}, expected {:04o}",
                path.display(),
                st.st_mode & 0o7777,
                stored.mode
            ));
        }
        // Only root can give files away: without it the stock's owners
        // could not be kept, and are not checked.
        let checked = self.owners == Some(Owners::Store) || crate::sys::fs::is_root();
        if checked && (st.st_uid, st.st_gid) != (stored.uid, stored.gid) {
            problems.push(format!(
                "{}: owner {}:{}, expected {}:{}",
                path.display(),
                st.st_uid,
                st.st_gid,
                stored.uid,
                stored.gid
            ));
        }
    }
}

/// The outer directory `<object>/` holds the service directory and nothing
/// else (docs/design.md#on-disk-layout).
fn check_outer_dir(
    state: &State,
    object: &str,
    service: &str,
    problems: &mut Vec<String>,
) -> Result<()> {
    let outer = state.store.open_dir(object)?;
    let manifest = layout::object_manifest_name(object);
    for (path, st) in [
        (outer.path().to_path_buf(), outer.self_stat()?),
        (state.store.join(&manifest), state.store.stat(&manifest)?),
    ] {
        if let Some(problem) = not_ours(&path, &st) {
            problems.push(problem);
        }
    }
    for name in outer.names()? {
        if name.to_str() != Some(service) {
            problems.push(format!(
                "{}: not in the manifest (added by hand?)",
                shown(&outer.join(&name))
            ));
        }
    }
    Ok(())
}

/// A note for every symlink of an object whose target does not exist,
/// asked with one `stat` through the link, as the supervisor would.
fn dangling_links(base: &std::path::Path, entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.kind == EntryKind::Symlink)
        .filter(|e| std::fs::metadata(base.join(&e.path)).is_err())
        .map(|e| {
            format!(
                "{}: dangling symlink (-> {})",
                shown(&base.join(&e.path)),
                e.target.as_deref().unwrap_or_default()
            )
        })
        .collect()
}

/// What one object's walk compares against.
struct Walk<'a> {
    cfg: &'a Config,
    want: &'a BTreeMap<&'a str, &'a Entry>,
    expect: Expect,
    base: &'a Path,
}

impl Walk<'_> {
    fn walk(
        &mut self,
        chain: &mut DirChain<'_>,
        prefix: &str,
        found: &mut BTreeSet<String>,
        problems: &mut Vec<String>,
    ) -> Result<()> {
        let at = Path::new(prefix.trim_end_matches('/'));
        for name in chain.get(at)?.names()? {
            let rel = format!("{prefix}{}", name.to_string_lossy());
            let dir = chain.get(at)?;
            let st = dir.stat(&name)?;
            if self.cfg.runtime_entries.contains(&rel) {
                problems.extend(self.runtime_entry_problem(dir, &name, &rel, &st)?);
                continue;
            }
            let Some(entry) = self.want.get(rel.as_str()) else {
                problems.push(format!(
                    "{}: not in the manifest (added by hand?){}",
                    self.base.join(&rel).display(),
                    link_shown(dir, &name, &st)?
                ));
                continue;
            };
            found.insert(rel.clone());
            let content = match (entry.kind, Kind::of(&st)) {
                (EntryKind::File, Kind::File) => {
                    let file = dir.open_file(&name)?;
                    let mut h = blake3::Hasher::new();
                    h.update_reader(&file)
                        .map_err(|e| Error::io("cannot read", self.base.join(&rel), e))?;
                    Some(tree::ContentHash::from(h.finalize()).to_string())
                }
                (EntryKind::Symlink, Kind::Symlink) => {
                    dir.read_link(&name)?.to_str().map(str::to_string)
                }
                _ => None,
            };
            self.expect
                .compare(entry, &st, content, &self.base.join(&rel), problems);
            if entry.kind == EntryKind::Dir && Kind::of(&st) == Kind::Dir {
                self.walk(chain, &format!("{rel}/"), found, problems)?;
            }
        }
        Ok(())
    }

    /// A runtime entry (`supervise`, `event`, …) is what a supervisor makes:
    /// a directory of root or the state owner. Anything else there — a
    /// symlink that would send the supervisor elsewhere above all — was
    /// planted (docs/security.md#published-objects-belong-to-the-state-owner).
    fn runtime_entry_problem(
        &self,
        dir: &Dir,
        name: &std::ffi::OsStr,
        rel: &str,
        st: &rustix::fs::Stat,
    ) -> Result<Option<String>> {
        let path = self.base.join(rel);
        if Kind::of(st) != Kind::Dir {
            return Ok(Some(format!(
                "{}: not a directory{}, where only the supervisor makes its runtime directory",
                path.display(),
                link_shown(dir, name, st)?
            )));
        }
        if st.st_uid != 0 && st.st_uid != self.expect.me.uid {
            return Ok(Some(format!(
                "{}: owned by uid {}, where only the supervisor (root or uid {}) makes its \
                 runtime directory",
                path.display(),
                st.st_uid,
                self.expect.me.uid
            )));
        }
        Ok(None)
    }
}

/// ` (a symlink -> TARGET)` for a symlink, else nothing.
fn link_shown(dir: &Dir, name: &std::ffi::OsStr, st: &rustix::fs::Stat) -> Result<String> {
    if Kind::of(st) != Kind::Symlink {
        return Ok(String::new());
    }
    let target = dir.read_link(name)?;
    Ok(format!(
        " (a symlink -> {})",
        target.to_string_lossy().escape_debug()
    ))
}

/// A problem when `path` (an object's outer directory or manifest) is not
/// owned by the state owner or is writable by others.
fn not_ours(path: &Path, st: &rustix::fs::Stat) -> Option<String> {
    let me = stock::store_owner();
    if st.st_uid != me.uid || st.st_mode & 0o022 != 0 {
        return Some(format!(
            "{}: owner uid {}, mode {:04o}; expected uid {}, writable by no one else",
            path.display(),
            st.st_uid,
            st.st_mode & 0o7777,
            me.uid
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(uid: u32, mode: u32) -> Entry {
        Entry {
            path: tree::ROOT.into(),
            kind: EntryKind::Dir,
            mode,
            uid,
            gid: uid,
            size: None,
            blake3: None,
            target: None,
            from_link: None,
        }
    }

    #[test]
    fn an_object_an_older_version_left_owned_by_others_is_a_problem() {
        let me = StoreOwner { uid: 0, gid: 0 };
        let base = Path::new("/s/store/web-x/web");
        let legacy = Expect { me, owners: None };
        let said = legacy
            .legacy_owners(&[entry(0, 0o755), entry(65534, 0o755)], base)
            .unwrap();
        assert!(
            said.starts_with(
                "/s/store/web-x/web: 1 entries are owned or writable by users other than uid 0"
            ) && said.contains("the next `svcdir-update commit` re-stages"),
            "{said}"
        );
        assert!(legacy.legacy_owners(&[entry(0, 0o775)], base).is_some());
        assert_eq!(legacy.legacy_owners(&[entry(0, 0o755)], base), None);
        for marked in [Owners::Store, Owners::Stock] {
            let current = Expect {
                me,
                owners: Some(marked),
            };
            assert_eq!(current.legacy_owners(&[entry(65534, 0o775)], base), None);
        }
    }
}
