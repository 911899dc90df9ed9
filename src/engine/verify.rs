//! Verifying store objects against their manifests — type, mode, owner,
//! content hash, link target, no missing or extra entries — ignoring the
//! runtime entries supervisors create. This module only reads; it reports
//! differences by path and never repairs them. A kept symlink whose target
//! does not exist (now) is a note, not a problem: the object still is what
//! was committed, and the target may be made at boot (docs/design.md#links).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::format::manifest::GenerationManifest;
use crate::model::tree::{self, Entry, EntryKind};
use crate::state::State;
use crate::state::generation;
use crate::state::layout;
use crate::state::store;
use crate::sys::fs::{Dir, Kind};

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
        match verify_object(cfg, state, object, &mut found) {
            Ok(()) => {}
            Err(e) if is_permission_denied(&e) && !crate::sys::fs::is_root() => {
                found.unreadable.push(e);
            }
            Err(e) => found.problems.push(e.chain()),
        }
    }
    found
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
            state
                .store
                .join(layout::object_manifest_name(object))
                .display()
        ));
    }
    let want: BTreeMap<&str, &Entry> = manifest
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e))
        .collect();
    check_outer_dir(state, object, &manifest.service, problems)?;
    let root = state.store.open_dir(layout::object_service_dir(object))?;
    let mut seen = BTreeSet::new();
    walk(cfg, &root, "", &want, &mut seen, problems, &base)?;
    for path in want.keys() {
        if *path != tree::ROOT && !seen.contains(*path) {
            problems.push(format!("{}: missing", base.join(path).display()));
        }
    }
    if let Some(e) = want.get(tree::ROOT) {
        let st = root.self_stat()?;
        compare(e, &st, None, &base, problems);
    }
    Ok(())
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
    for name in outer.names()? {
        if name.to_str() != Some(service) {
            problems.push(format!(
                "{}: not in the manifest (added by hand?)",
                outer.join(&name).display()
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
                base.join(&e.path).display(),
                e.target.as_deref().unwrap_or_default()
            )
        })
        .collect()
}

fn walk(
    cfg: &Config,
    dir: &Dir,
    prefix: &str,
    want: &BTreeMap<&str, &Entry>,
    found: &mut BTreeSet<String>,
    problems: &mut Vec<String>,
    base: &std::path::Path,
) -> Result<()> {
    for name in dir.names()? {
        let rel = format!("{prefix}{}", name.to_string_lossy());
        if cfg.runtime_entries.contains(&rel) {
            continue;
        }
        let st = dir.stat(&name)?;
        let Some(entry) = want.get(rel.as_str()) else {
            problems.push(format!(
                "{}: not in the manifest (added by hand?)",
                base.join(&rel).display()
            ));
            continue;
        };
        found.insert(rel.clone());
        let content = match (entry.kind, Kind::of(&st)) {
            (EntryKind::File, Kind::File) => {
                let file = dir.open_file(&name)?;
                let mut h = blake3::Hasher::new();
                h.update_reader(&file)
                    .map_err(|e| Error::io("cannot read", base.join(&rel), e))?;
                Some(tree::ContentHash::from(h.finalize()).to_string())
            }
            (EntryKind::Symlink, Kind::Symlink) => {
                dir.read_link(&name)?.to_str().map(str::to_string)
            }
            _ => None,
        };
        compare(entry, &st, content, &base.join(&rel), problems);
        if entry.kind == EntryKind::Dir && Kind::of(&st) == Kind::Dir {
            walk(
                cfg,
                &dir.open_dir(&name)?,
                &format!("{rel}/"),
                want,
                found,
                problems,
                base,
            )?;
        }
    }
    Ok(())
}

fn compare(
    e: &Entry,
    st: &rustix::fs::Stat,
    content: Option<String>,
    path: &std::path::Path,
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
            problems.push(format!("{}: link target changed", path.display()));
        }
        _ => {}
    }
    if e.kind != EntryKind::Symlink && st.st_mode & 0o7777 != e.mode {
        problems.push(format!(
            "{}: mode {:04o}, expected {:04o}",
            path.display(),
            st.st_mode & 0o7777,
            e.mode
        ));
    }
    if crate::sys::fs::is_root() && (st.st_uid, st.st_gid) != (e.uid, e.gid) {
        problems.push(format!(
            "{}: owner {}:{}, expected {}:{}",
            path.display(),
            st.st_uid,
            st.st_gid,
            e.uid,
            e.gid
        ));
    }
}
