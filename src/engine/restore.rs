//! Restoring damaged store objects from the stock (`verify --repair`, and a
//! commit that would otherwise reuse a damaged object,
//! docs/cli.md#verify---repair). An object's name is its content's digest,
//! so a stock service whose object name is the damaged object's holds
//! exactly what was committed: a fresh copy is staged under `.tmp-`, made
//! durable, and swapped with the damaged directory by one
//! `RENAME_EXCHANGE`, so the object's name exists at every instant. The
//! swapped copy keeps its content-addressed name; nothing else (`live`,
//! generations, links) changes. A live service running from the damaged
//! directory is stopped first through the supervisor adapter, and the
//! scanner is told afterwards, so that it starts the service from the new
//! directory (a new inode). Runs under the manager lock; never switches.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::locked::LockedState;
use super::stage::{self, Prepared};
use crate::config::Config;
use crate::error::Result;
use crate::locks::update::{self, LockPolicy};
use crate::state::layout;
use crate::state::scandir;
use crate::state::store::{self, Durability};
use crate::stock::StockService;
use crate::sys::failpoint;

/// What restoring found and did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Restored {
    /// Objects replaced by a fresh copy from the stock.
    pub restored: Vec<RestoredObject>,
    /// Damaged objects the stock no longer holds: only a rollback helps.
    pub not_in_stock: Vec<String>,
}

/// One object replaced by a fresh copy.
#[derive(Debug, Serialize)]
pub(crate) struct RestoredObject {
    pub object: String,
    pub service: String,
    /// A live instance ran from it: it was stopped and started again from
    /// the fresh copy.
    pub restarted: bool,
}

/// Replaces each object of `damaged` that the stock still holds (same
/// name, hence the same content) with a fresh copy.
pub(crate) fn restore_objects(
    cfg: &Config,
    state: &LockedState,
    damaged: &BTreeSet<String>,
    locks: LockPolicy,
) -> Result<Restored> {
    // Every entry: a damaged object may be a live one, copied again from them.
    let prepared = stage::prepare_whole(cfg, Some(state))?;
    restore_from(cfg, state, &prepared, damaged, locks)
}

/// [`restore_objects`] with the stock already read (`prepared`).
pub(crate) fn restore_from(
    cfg: &Config,
    state: &LockedState,
    prepared: &Prepared,
    damaged: &BTreeSet<String>,
    locks: LockPolicy,
) -> Result<Restored> {
    let by_object: BTreeMap<String, &StockService> = prepared
        .stock
        .services
        .values()
        .map(|s| (s.object_name(), s))
        .collect();
    let live: BTreeSet<&String> = prepared
        .live
        .as_ref()
        .map(|m| m.services.values().collect())
        .unwrap_or_default();
    let mut out = Restored::default();
    for object in damaged {
        match by_object.get(object) {
            Some(service) => {
                let restarted = restore_one(cfg, state, service, live.contains(object), locks)?;
                out.restored.push(RestoredObject {
                    object: object.clone(),
                    service: service.name.clone(),
                    restarted,
                });
            }
            None => out.not_in_stock.push(object.clone()),
        }
    }
    Ok(out)
}

/// Stages, stops (a live, wanted instance), swaps, tells the scanner,
/// and removes the damaged copy. Returns whether an instance was stopped.
/// Killed at any step, the object is either the damaged or the fresh
/// directory; a rerun finishes the job (docs/cli.md#verify---repair).
fn restore_one(
    cfg: &Config,
    state: &LockedState,
    service: &StockService,
    in_live: bool,
    locks: LockPolicy,
) -> Result<bool> {
    let object = service.object_name();
    let tmp = layout::tmp_name(&object);
    let manifest = layout::object_manifest_name(&object);
    // A commit's scan packs what it copies (src/stock/packed.rs).
    let unpacked = service.unpacked()?;
    store::stage_object(&state.dir, &unpacked, Durability::PerFile, false)?;
    state.dir.sync()?;
    failpoint::hit("repair.after-stage")?;
    let adapter = crate::supervisor::for_config(cfg);
    let dir = state
        .store
        .join(layout::object_service_dir(&object))
        .to_path_buf();
    let stopped = in_live && adapter.status(&dir)?.wanted();
    // A restart like a commit's: its update lock first (docs/update-locks.md).
    let _held = if stopped {
        let held = update::acquire_all(
            cfg,
            std::slice::from_ref(&service.name),
            locks,
            "; the object stays as it is",
        )?;
        adapter.stop(&service.name, &dir)?;
        Some(held)
    } else {
        None
    };
    failpoint::hit("repair.after-stop")?;
    state.dir.exchange(&tmp, &state.store, &object)?;
    state
        .dir
        .rename(layout::tmp_name(&manifest), &state.store, &manifest)?;
    state.store.sync()?;
    state.dir.sync()?;
    failpoint::hit("repair.after-exchange")?;
    if in_live {
        // A new inode under the same name: the scanner starts a supervisor
        // there (a stopped instance comes back up).
        adapter.notify(scandir::open(cfg)?.path())?;
    }
    state.dir.remove_if_exists(&tmp)?;
    state.dir.sync()?;
    Ok(stopped)
}

/// Verifies every published object the new generation would reuse for a
/// service it starts or restarts (the services a commit touches: an object
/// staged earlier, e.g. by a generation rolled away from), and restores a
/// damaged one from the stock instead of reusing it
/// (docs/cli.md#verify---repair). A service whose live object stays is not
/// re-read: hashing every live object on every commit would cost a read of
/// the whole store each time; `verify` (and `verify --repair`) find an edit
/// made through the scan directory.
pub(crate) fn restore_reused(
    cfg: &Config,
    state: &LockedState,
    prepared: &Prepared,
    locks: LockPolicy,
) -> Result<Restored> {
    let target = &prepared.target;
    let live = prepared.live.as_ref().map(|g| &g.services);
    let changed: Vec<&String> = target
        .iter()
        .filter(|(name, object)| live.and_then(|l| l.get(*name)) != Some(*object))
        .map(|(_, object)| object)
        .collect();
    if changed.is_empty() {
        // A no-op commit: no listing of the whole store.
        return Ok(Restored::default());
    }
    let published = store::published_among(&state.store, changed.iter().map(|o| o.as_str()))?;
    let reused = changed
        .into_iter()
        .filter(|o| published.contains(o.as_str()));
    let damaged = super::verify::damaged_objects(cfg, state, reused);
    if damaged.is_empty() {
        return Ok(Restored::default());
    }
    let done = restore_from(cfg, state, prepared, &damaged, locks)?;
    for r in &done.restored {
        let restarted = if r.restarted {
            ", and its live instance restarted from it"
        } else {
            ""
        };
        crate::output::report::warn(&format!(
            "store object {} of service {} was changed in place (edited through the scan \
             directory?): restored a fresh copy from the stock instead of reusing it{restarted}",
            crate::model::shown::shown(&r.object),
            crate::model::shown::shown(&r.service)
        ));
    }
    for object in &done.not_in_stock {
        crate::output::report::warn(&format!(
            "store object {} was changed in place and the stock no longer holds its content: \
             `svcdir-update verify --all` names the generations safe to roll back to",
            crate::model::shown::shown(object)
        ));
    }
    Ok(done)
}
