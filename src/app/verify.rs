//! `verify`: check every live store object against its manifest — type,
//! mode, owner, content hash, link target, no missing or extra entries —
//! ignoring the runtime entries supervisors create. Any difference is
//! reported by path and exits 65. A kept symlink whose target does not
//! exist (now) is a note, not a problem: the object still is what was
//! committed, and the target may be made at boot (docs/design.md#links).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::Output;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::sys::fs::{Dir, Kind};
use crate::state::generation;
use crate::state::layout;
use crate::state::State;
use crate::state::store;
use crate::model::tree::{self, Entry, EntryKind};

#[derive(Debug, Serialize)]
pub(crate) struct VerifyReport {
    pub generation: Option<u64>,
    pub objects: usize,
    pub problems: Vec<String>,
    /// Dangling symlinks in live objects.
    pub notes: Vec<String>,
}

pub(crate) fn verify(cfg: &Config) -> Result<Output> {
    let Some(state) = State::open(cfg)? else {
        return Err(Error::bad_input("nothing to verify: no state yet"));
    };
    let Some(live) = state.live()? else {
        return Err(Error::bad_input("nothing to verify: no generation is live"));
    };
    let m = generation::load(&state, live)?;
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    for check in [generation::check_complete, generation::check_links] {
        if let Err(e) = check(&state, &m) {
            problems.push(e.to_string());
        }
    }
    for object in m.services.values() {
        if let Err(e) = verify_object(cfg, &state, object, &mut problems, &mut notes) {
            problems.push(e.chain());
        }
    }
    let report = VerifyReport {
        generation: Some(live),
        objects: m.services.len(),
        problems,
        notes,
    };
    if report.problems.is_empty() {
        let mut human = format!(
            "generation {live}: {} objects verified, all intact\n",
            report.objects
        );
        for note in &report.notes {
            human.push_str(&format!("  note: {note}\n"));
        }
        return Ok(Output::new(&report, human));
    }
    Err(Error::bad_input(format!(
        "generation {live}: {} problem(s) in store objects:\n  {}\nthe store was changed by hand; \
         `svcdir-update rollback GEN` to a good generation, or fix the stock and commit",
        report.problems.len(),
        report.problems.join("\n  ")
    )))
}

/// Compares one object directory with its manifest; appends differences
/// to `problems` and dangling symlinks to `notes`.
pub(crate) fn verify_object(
    cfg: &Config,
    state: &State,
    object: &str,
    problems: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let manifest = store::load_manifest(&state.store, object)?;
    let base = state.store.join(object);
    notes.extend(dangling_links(&base, &manifest.entries));
    if layout::object_name(&manifest.service, &tree::digest(&manifest.entries)) != object {
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
    let root = state.store.open_dir(object)?;
    let mut found = BTreeSet::new();
    walk(cfg, &root, "", &want, &mut found, problems, &base)?;
    for path in want.keys() {
        if *path != tree::ROOT && !found.contains(*path) {
            problems.push(format!("{}: missing", base.join(path).display()));
        }
    }
    if let Some(e) = want.get(tree::ROOT) {
        let st = root.self_stat()?;
        compare(e, &st, None, &base, problems);
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
