//! Migrating a state directory written by 0.1 (format 1: the service
//! directory *is* the store object, `store/<name>-<digest>/run`) to the
//! current format (`store/<name>-<digest>/<name>/run`, so a service's
//! `$PWD` ends in its name; docs/design.md#state-format).
//!
//! It runs under the manager lock, before recovery, on the first writing
//! command ([`crate::engine::locked`]). Every step is idempotent and leaves
//! a state that reads as the old or the new layout, never a broken one, so
//! a crash at any point is finished by the next writing command (`recover`
//! among them). The marker `<state>/format` is written last: until then the
//! state counts as format 1 and read-only commands ask for a migration.
//! This module never changes what a service runs: the named directory holds
//! the same inodes (hard links), and nothing here touches the stock.

use std::collections::HashMap;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::tree::{self, EntryKind};
use crate::state::txn_log::TxnLog;
use crate::state::{State, generation, layout, store};
use crate::supervisor::{self, OldInstance};
use crate::sys::failpoint;
use crate::sys::fs::Dir;

/// Brings `state` to the current format, or says why it cannot. A no-op
/// (but for a missing marker) when it already is.
pub(crate) fn to_current(cfg: &Config, state: &State, interrupted: Option<&TxnLog>) -> Result<()> {
    match state.format()? {
        // Format 2 needs no change but its marker: it has no dormant generation.
        layout::CURRENT_FORMAT | layout::NAMED_OBJECTS_FORMAT => {
            return state.write_format_marker();
        }
        layout::UNNAMED_OBJECTS_FORMAT => {}
        newer => return Err(state.format_error(newer)),
    }
    if interrupted.is_some() {
        // Its stops and undo name format-1 object paths; finishing it is
        // the job of the version that started it.
        return Err(Error::StateFormat {
            state: state.path().to_path_buf(),
            what: "holds a transaction svcdir-update 0.1 did not finish; run 0.1's \
                   `svcdir-update recover` first, then this version migrates the state"
                .to_string(),
        });
    }
    let objects = old_objects(state)?;
    for object in &objects {
        add_named_dir(state, object)?;
        failpoint::hit("migrate.after-named-copy")?;
    }
    let live = state.live()?;
    for n in generation::list(state)? {
        if Some(n) != live {
            relink_generation(state, n)?;
        }
    }
    failpoint::hit("migrate.after-relink-generations")?;
    if let Some(live) = live {
        move_live_services(cfg, state, live)?;
    }
    failpoint::hit("migrate.after-relink-live")?;
    for object in &objects {
        remove_old_entries(state, object)?;
        failpoint::hit("migrate.after-strip-object")?;
    }
    state.dir.sync()?;
    state.write_format_marker()
}

/// Every published object with its manifest (an object without one is
/// gc's to collect; it is left as it is).
fn old_objects(state: &State) -> Result<Vec<String>> {
    let published = store::published(&state.store)?;
    let mut objects: Vec<String> = published
        .iter()
        .filter(|n| layout::split_object_name(n).is_some())
        .filter(|n| published.contains(&layout::object_manifest_name(n)))
        .cloned()
        .collect();
    objects.sort();
    Ok(objects)
}

/// Gives format-1 `object` its named directory `<object>/<service>/`,
/// built from its manifest in `<state>/.tmp-named-<object>` (directories
/// made, files hard-linked: the same inodes, so nothing is copied or can
/// differ; symlinks made again), made durable, then renamed into place.
fn add_named_dir(state: &State, object: &str) -> Result<()> {
    let Some((service, _)) = layout::split_object_name(object) else {
        return Ok(());
    };
    let outer = state.store.open_dir(object)?;
    if outer.try_stat(service)?.is_some() {
        return Ok(());
    }
    let manifest = store::load_manifest(&state.store, object)?;
    if manifest.entries.iter().any(|e| e.path == service) {
        return Err(Error::StateFormat {
            state: state.path().to_path_buf(),
            what: format!(
                "store object {object} holds an entry named like its service, so it cannot \
                 hold its service directory under that name too; remove the service from \
                 the stock, commit with svcdir-update 0.1, then migrate"
            ),
        });
    }
    let tmp = layout::tmp_name(&format!("named-{object}"));
    state.dir.remove_if_exists(&tmp)?;
    let mut dirs: HashMap<String, Dir> = HashMap::new();
    dirs.insert(tree::ROOT.to_string(), state.dir.create_dir(&tmp, 0o700)?);
    for entry in manifest.entries.iter().filter(|e| e.path != tree::ROOT) {
        let base = tree::base_of(&entry.path);
        let Some(parent) = dirs.get(tree::parent_of(&entry.path)) else {
            return Err(unreadable(state, object, &entry.path));
        };
        match entry.kind {
            EntryKind::Dir => {
                let dir = parent.create_dir(base, 0o700)?;
                dirs.insert(entry.path.clone(), dir);
            }
            EntryKind::File => {
                if !outer.hard_link(&entry.path, parent, base)? {
                    return Err(unreadable(state, object, &entry.path));
                }
            }
            EntryKind::Symlink => {
                parent.symlink(entry.target.as_deref().unwrap_or_default(), base)?;
                parent.set_owner_at(base, entry.uid, entry.gid)?;
            }
        }
    }
    // Owners and modes last, deepest first: a read-only directory must
    // not block its own population.
    let mut paths: Vec<&String> = dirs.keys().collect();
    paths.sort_by(|a, b| tree::compare_paths(b, a));
    for path in paths {
        let Some(entry) = manifest.entries.iter().find(|e| &e.path == path) else {
            continue;
        };
        let dir = &dirs[path];
        dir.set_owner(entry.uid, entry.gid)?;
        dir.set_mode(entry.mode)?;
        dir.sync()?;
    }
    drop(dirs);
    if !state.dir.rename_noreplace(&tmp, &outer, service)? {
        state.dir.remove_if_exists(&tmp)?;
    }
    outer.sync()?;
    state.dir.sync()
}

/// `object`'s entry `path` is missing, not what its manifest says, or
/// cannot be hard-linked (another owner's file, with
/// `fs.protected_hardlinks`, when not run as root).
fn unreadable(state: &State, object: &str, path: &str) -> Error {
    Error::damaged(
        state.store.join(object).join(path),
        format!(
            "cannot be linked into the named directory of {object} (missing, not what the \
             manifest says, or another owner's file); run the migration as root, or \
             `svcdir-update verify` with 0.1"
        ),
    )
}

/// Points every service link of generation `n` at its object's named
/// directory: each link is replaced by one `rename(2)`, so it names the
/// old or the new directory (the same files), never nothing.
fn relink_generation(state: &State, n: u64) -> Result<()> {
    let m = generation::load(state, n)?;
    let dir = state.generations.open_dir(n.to_string())?;
    for (service, object) in &m.services {
        relink_service(&dir, service, object)?;
    }
    dir.sync()
}

/// Replaces `service`'s link in generation `dir` unless it already names
/// the named directory of `object`; true when it did.
fn relink_service(dir: &Dir, service: &str, object: &str) -> Result<bool> {
    let want = layout::generation_link_target(object);
    let link = dir.try_read_link(service)?;
    if link.as_deref().and_then(|l| l.to_str()) == Some(want.as_str()) {
        return Ok(false);
    }
    let tmp = layout::tmp_name(service);
    dir.remove_if_exists(&tmp)?;
    dir.symlink(&want, &tmp)?;
    dir.rename(&tmp, dir, service)?;
    Ok(true)
}

/// Moves the live services to their named directories like a commit moves
/// a changed service: the old instance, addressed by its format-1 object
/// path, is stopped first, then its link is replaced and the scanner told,
/// which starts the service again from the named directory. Only then
/// does `$PWD` end in the service's name.
fn move_live_services(cfg: &Config, state: &State, live: u64) -> Result<()> {
    let m = generation::load(state, live)?;
    let dir = state.generations.open_dir(live.to_string())?;
    let old: Vec<OldInstance> = m
        .services
        .iter()
        .filter(|(service, object)| {
            let want = layout::generation_link_target(object);
            !matches!(dir.try_read_link(service), Ok(Some(l)) if l.to_str() == Some(want.as_str()))
        })
        .map(|(service, object)| OldInstance {
            name: service.clone(),
            object: state.store.join(object),
        })
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    let sup = supervisor::for_config(cfg);
    supervisor::stop_all(sup.as_ref(), &old, cfg.max_parallel_stops)?;
    failpoint::hit("migrate.after-stop")?;
    for (service, object) in &m.services {
        relink_service(&dir, service, object)?;
    }
    dir.sync()?;
    sup.notify(&cfg.scandir)
}

/// Removes everything of format-1 `object` but its named directory: each
/// entry is renamed out of the store into `<state>/.tmp-old-<object>/`
/// first (as gc removes an object), so what is left in the store is only
/// ever whole entries; recovery sweeps what a crash leaves there.
fn remove_old_entries(state: &State, object: &str) -> Result<()> {
    let Some((service, _)) = layout::split_object_name(object) else {
        return Ok(());
    };
    let outer = state.store.open_dir(object)?;
    let tmp = layout::tmp_name(&format!("old-{object}"));
    state.dir.remove_if_exists(&tmp)?;
    let removed = state.dir.create_dir(&tmp, 0o700)?;
    for name in outer.names()? {
        if name.to_str() != Some(service) {
            outer.rename(&name, &removed, &name)?;
        }
    }
    outer.sync()?;
    drop(removed);
    state.dir.remove_if_exists(&tmp)
}
