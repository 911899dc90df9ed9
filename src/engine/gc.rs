//! Garbage collection: what `gc` keeps and removes (docs/cli.md#gc---keep-n),
//! and the crash-safe removal itself.
//!
//! Kept: the live generation, the N newest, those named by an interrupted
//! transaction; every object a kept generation references; every object a
//! running process uses (cwd, root, executable, open file or mapping under
//! it, read from /proc, matched by `(st_dev, st_ino)`: see
//! docs/security.md#gc-and-a-state-path-through-a-symlink); and every
//! object pinned by `exec` (its pin cannot be locked exclusively). An object is removed only while gc holds its pin
//! exclusively, so a launch cannot slip in. Deletion is crash-safe: a
//! generation or object is first renamed to a `.tmp-*` name (so it vanishes
//! at once), then removed; recovery sweeps what a crash leaves. Marking
//! only reads (so `status` can estimate); removal needs the manager lock.
//!
//! Generations pinned by `pin GEN` (`<state>/pinned`) are kept too,
//! whatever their age.

use std::collections::{BTreeSet, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::locked::LockedState;
use crate::config::Config;
use crate::error::Result;
use crate::locks::pin;
use crate::locks::wait::{self, Attempt};
use crate::output::progress::{self, Counter};
use crate::state::State;
use crate::state::generation;
use crate::state::layout;
use crate::state::txn_log::{self, TxnLog};
use crate::sys::failpoint;

#[derive(Debug, Default, Serialize)]
pub(crate) struct GcReport {
    pub kept_generations: Vec<u64>,
    pub removed_generations: Vec<u64>,
    pub removed_objects: Vec<String>,
    /// Unreferenced objects kept because a running process uses them.
    pub in_use: Vec<String>,
    /// Unreferenced objects kept because a program started by `exec` pins them.
    pub pinned: Vec<String>,
    /// Object manifests left without their object by an interrupted gc.
    pub orphan_manifests: Vec<String>,
}

/// What gc would keep and remove, without removing anything. `interrupted`
/// is the rollback log found before recovery ran: its generations are kept
/// this time too (the target stays staged, so a retried commit reuses it).
pub(crate) fn mark(
    cfg: &Config,
    state: &State,
    keep: usize,
    interrupted: Option<&TxnLog>,
) -> Result<GcReport> {
    let names = state.store.names()?;
    mark_with(
        cfg,
        state,
        keep,
        interrupted,
        referenced_by_manifests,
        &names,
    )
}

/// Every object the generations `kept` (all on disk) reference, from their
/// manifests: what gc itself trusts.
fn referenced_by_manifests(state: &State, kept: &BTreeSet<u64>) -> Result<HashSet<String>> {
    let mut referenced = HashSet::new();
    for n in kept {
        // A kept generation whose manifest cannot be read aborts gc: its
        // objects are unknown, so none may be deleted.
        referenced.extend(generation::load(state, *n)?.services.into_values());
    }
    Ok(referenced)
}

/// The generations gc keeps: the `keep` newest, live, those pinned and
/// those of a rollback log (`interrupted`, and the one on disk).
pub(crate) struct Kept {
    /// Every generation on disk.
    pub all: Vec<u64>,
    /// The kept generations, some perhaps no longer on disk.
    pub kept: BTreeSet<u64>,
    /// The kept generations on disk: those whose objects stay.
    pub on_disk: BTreeSet<u64>,
}

/// Which generations gc keeps (docs/cli.md#gc---keep-n).
pub(crate) fn kept_generations(
    state: &State,
    keep: usize,
    interrupted: Option<&TxnLog>,
) -> Result<Kept> {
    let all = generation::list(state)?;
    let mut kept: BTreeSet<u64> = all.iter().rev().take(keep).copied().collect();
    if let Some(live) = state.live()? {
        kept.insert(live);
    }
    // Generations the operator pinned (`pin GEN`), whatever their age.
    let pinned = crate::state::pinned::read(&state.dir)?;
    kept.extend(pinned.into_iter().filter(|n| all.contains(n)));
    for log in interrupted
        .into_iter()
        .chain(txn_log::read(&state.dir)?.as_ref())
    {
        kept.insert(log.to);
        kept.extend(log.from);
    }
    let on_disk: BTreeSet<u64> = kept.iter().filter(|n| all.contains(n)).copied().collect();
    Ok(Kept { all, kept, on_disk })
}

/// [`mark`] with the objects the kept generations reference found by
/// `referenced` (`status` estimates them from generation summaries), over
/// `names`, the store's listing (which `status` reads once for both).
pub(crate) fn mark_with(
    cfg: &Config,
    state: &State,
    keep: usize,
    interrupted: Option<&TxnLog>,
    // A hash set: a lookup for every store entry, 200,000 of them with
    // 100,000 services (docs/performance.md#status-and-list-at-100000-services).
    referenced: fn(&State, &BTreeSet<u64>) -> Result<HashSet<String>>,
    names: &[std::ffi::OsString],
) -> Result<GcReport> {
    let kept = kept_generations(state, keep, interrupted)?;
    let referenced = referenced(state, &kept.on_disk)?;
    mark_store(cfg, state, &kept, &referenced, names)
}

/// What gc removes of the store's `names` with the `kept` generations,
/// which reference the objects `referenced`.
pub(crate) fn mark_store(
    cfg: &Config,
    state: &State,
    kept: &Kept,
    referenced: &HashSet<String>,
    names: &[std::ffi::OsString],
) -> Result<GcReport> {
    let mut report = GcReport {
        kept_generations: kept.kept.iter().copied().collect(),
        removed_generations: kept
            .all
            .iter()
            .filter(|n| !kept.kept.contains(n))
            .copied()
            .collect(),
        ..GcReport::default()
    };
    let users = dirs_in_use();
    let pins = pin::try_pins_dir(cfg)?;
    let counter = Counter::new("looking at the store", names.len(), "entries");
    for name in names {
        counter.tick();
        let Some(name) = name.to_str() else { continue };
        // A manifest whose object is gone (gc killed between the two
        // removals) is an orphan: collect it too.
        if let Some(object) = name.strip_suffix(layout::OBJECT_MANIFEST_SUFFIX) {
            if layout::split_object_name(object).is_some()
                && !referenced.contains(object)
                && state.store.try_stat(object)?.is_none()
            {
                report.orphan_manifests.push(name.to_string());
            }
            continue;
        }
        if name.starts_with(layout::TMP_PREFIX) || layout::split_object_name(name).is_none() {
            continue;
        }
        if referenced.contains(name) {
            continue;
        }
        if let Some(pins) = &pins {
            if pin::is_pinned(pins, name)? {
                report.pinned.push(name.to_string());
                continue;
            }
        }
        if is_in_use(&users, state.store.try_stat(name)?.as_ref()) {
            report.in_use.push(name.to_string());
        } else {
            report.removed_objects.push(name.to_string());
        }
    }
    Ok(report)
}

/// Marks with `keep` generations kept (and those of the transaction
/// recovery just resolved), waits up to `pin_wait` for pinned objects, then
/// removes what nothing needs.
pub(crate) fn collect(
    cfg: &Config,
    state: &LockedState,
    keep: usize,
    pin_wait: Duration,
) -> Result<GcReport> {
    let mut report = mark(cfg, state, keep, state.interrupted())?;
    progress::phase(|| {
        format!(
            "gc: {} generation(s) and {} object(s) to remove",
            report.removed_generations.len(),
            report.removed_objects.len()
        )
    });
    if !report.pinned.is_empty() && !pin_wait.is_zero() {
        wait_for_pins(cfg, &mut report, pin_wait)?;
    }
    remove(cfg, state, &mut report)?;
    Ok(report)
}

/// Removes the generations and objects `report` marked, each crash-safely;
/// an object whose pin cannot be taken now moves to `report.pinned`.
fn remove(cfg: &Config, state: &LockedState, report: &mut GcReport) -> Result<()> {
    failpoint::hit("gc.after-mark")?;
    let removing = report.removed_generations.len() + report.removed_objects.len();
    let counter = Counter::new("gc: removing", removing, "generations and objects");
    let pool = Removal::pool(removing);
    for chunk in report.removed_generations.chunks(REMOVE_CHUNK) {
        remove_generations(state, chunk, &counter, &pool)?;
    }
    let pins = pin::pins_dir(cfg)?;
    let mut removed = Vec::new();
    let objects = std::mem::take(&mut report.removed_objects);
    for chunk in objects.chunks(REMOVE_CHUNK) {
        // Hold the pins exclusively while the objects go, so that no
        // `exec` starts from one in between.
        let mut claims = Vec::new();
        for object in chunk {
            counter.tick();
            match pin::Claim::try_take(&pins, object)? {
                Some(claim) => claims.push((object, claim)),
                None => report.pinned.push(object.clone()),
            }
        }
        remove_objects(state, claims.iter().map(|(o, _)| o.as_str()), &pool)?;
        for (object, claim) in claims {
            claim.release_removed(&pins)?;
            removed.push(object.clone());
        }
    }
    for manifest in &report.orphan_manifests {
        state.store.remove_if_exists(manifest)?;
    }
    report.removed_objects = removed;
    state.store.sync()?;
    Ok(())
}

/// At most this many generations or objects are removed at once: each
/// batch is renamed away and made durable by one fsync, not one per entry
/// (100 generations of 10,000 services: 4.1 s with an fsync each on a
/// loaded machine), and the pins held while objects go stay bounded
/// (docs/security.md#bounded-file-descriptors).
const REMOVE_CHUNK: usize = 256;

/// Threads that unlink at once. Deleting waits more than it computes: on a
/// file system mounted with `discard` and no journal each freed block is
/// trimmed before `unlinkat` returns, so more threads than cores keep the
/// device busy (docs/performance.md#gc-on-all-cores).
const REMOVE_THREADS: usize = 16;

/// The threads a batch is removed on: [`REMOVE_THREADS`] of them, or the
/// cores' pool where no more threads can be had or there is little to do.
struct Removal(Option<rayon::ThreadPool>);

impl Removal {
    /// For removing `count` generations and objects: no threads are
    /// started for fewer than two.
    fn pool(count: usize) -> Removal {
        if count < 2 {
            return Removal(None);
        }
        Removal(
            rayon::ThreadPoolBuilder::new()
                .num_threads(REMOVE_THREADS.min(count))
                .build()
                .ok(),
        )
    }

    fn run<R: Send>(&self, work: impl FnOnce() -> R + Send) -> R {
        match &self.0 {
            Some(pool) => pool.install(work),
            None => work(),
        }
    }
}

/// Renames generations `chunk` into the state directory, so that they vanish
/// at once and a crash leaves only `.tmp-*` names for recovery to sweep,
/// makes that durable, then removes them.
fn remove_generations(
    state: &LockedState,
    chunk: &[u64],
    counter: &Counter,
    pool: &Removal,
) -> Result<()> {
    let tmp = |n: u64| layout::tmp_name(&format!("gc-generation-{n}"));
    for &n in chunk {
        counter.tick();
        state
            .generations
            .rename(n.to_string(), &state.dir, tmp(n))?;
    }
    state.generations.sync()?;
    failpoint::hit("gc.after-remove-generation")?;
    // Side by side, like the objects below: each generation is its own
    // directory, so the unlinks do not wait on one directory's lock.
    use rayon::prelude::*;
    pool.run(|| {
        chunk
            .par_iter()
            .try_for_each(|&n| state.dir.remove_if_exists(tmp(n)))
    })
}

/// Removes `objects`: each vanishes first (never an object without its
/// manifest), durably, then the manifests go.
fn remove_objects<'a>(
    state: &LockedState,
    objects: impl Iterator<Item = &'a str> + Clone,
    pool: &Removal,
) -> Result<()> {
    let tmp = |object: &str| layout::tmp_name(&format!("gc-{object}"));
    for object in objects.clone() {
        state.store.rename(object, &state.dir, tmp(object))?;
    }
    state.store.sync()?;
    failpoint::hit("gc.after-remove-object")?;
    // On the removal threads: unlinking is the kernel's work, in each
    // object's own directory, and on a file system that discards freed
    // blocks much of it is waiting (docs/performance.md#gc-on-all-cores).
    use rayon::prelude::*;
    let (store, dir) = (&state.store, &state.dir);
    let objects: Vec<&str> = objects.collect();
    pool.run(|| {
        objects.par_iter().try_for_each(|object| {
            store.remove_if_exists(layout::object_manifest_name(object))?;
            dir.remove_if_exists(tmp(object))
        })
    })
}

/// Polls the pinned objects until their programs end or `wait` runs out;
/// the ones set free join the objects to remove (unless a process uses them).
fn wait_for_pins(cfg: &Config, report: &mut GcReport, wait: Duration) -> Result<()> {
    let Some(pins) = pin::try_pins_dir(cfg)? else {
        return Ok(());
    };
    let try_once = |_| {
        let mut still = Vec::new();
        let mut freed = Vec::new();
        for object in std::mem::take(&mut report.pinned) {
            if pin::is_pinned(&pins, &object)? {
                still.push(object);
            } else {
                freed.push(object);
            }
        }
        report.pinned = still;
        if !freed.is_empty() {
            let users = dirs_in_use();
            let store = cfg.state.join(layout::STORE);
            for object in freed {
                let st = std::fs::symlink_metadata(store.join(&object)).ok();
                let id = st.map(|m| (m.dev(), m.ino()));
                if id.is_some_and(|id| users.contains(&id)) {
                    report.in_use.push(object);
                } else {
                    report.removed_objects.push(object);
                }
            }
        }
        Ok(if report.pinned.is_empty() {
            Attempt::Taken(())
        } else {
            Attempt::Busy(report.pinned.len())
        })
    };
    // At the deadline gc keeps what is still pinned: not an error.
    wait::acquire(
        wait,
        try_once,
        |pinned| format!("{pinned} pinned object(s) to be released"),
        |_| Ok(()),
    )
}

/// Whether the object directory `st` describes is, or holds, something a
/// running process uses (`users`, from [`dirs_in_use`]). A vanished object
/// is in use by nobody.
fn is_in_use(users: &HashSet<(u64, u64)>, st: Option<&rustix::fs::Stat>) -> bool {
    #[allow(clippy::unnecessary_cast)]
    st.is_some_and(|st| users.contains(&(st.st_dev as u64, st.st_ino as u64)))
}

/// The `(st_dev, st_ino)` of every directory a running process uses or
/// works beneath: its cwd and root themselves (stat through `/proc`, which
/// reaches them even when their path is not ours to resolve), and every
/// directory above a path it has as cwd, root, executable, open file or
/// mapping. An object is in use when its own identity is in this set: a
/// comparison of path strings misses a state path reached through a
/// symlink or a bind mount (docs/security.md#gc-and-a-state-path-through-a-symlink).
fn dirs_in_use() -> HashSet<(u64, u64)> {
    let mut ids = HashSet::new();
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let id_of = |path: &Path| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let Ok(procs) = procfs::process::all_processes() else {
        return ids;
    };
    for p in procs.flatten() {
        for link in ["cwd", "root"] {
            ids.extend(id_of(
                &Path::new("/proc").join(p.pid.to_string()).join(link),
            ));
        }
        for path in paths_of(&p) {
            // Each directory is stat'ed once, however many paths lie below it.
            for dir in path.ancestors() {
                if !seen.insert(dir.to_path_buf()) {
                    break;
                }
                ids.extend(id_of(dir));
            }
        }
    }
    ids
}

/// Every path process `p` has as cwd, root, executable, open file or mapping.
fn paths_of(p: &procfs::process::Process) -> Vec<PathBuf> {
    let mut out = Vec::new();
    out.extend(p.cwd().ok());
    out.extend(p.root().ok());
    out.extend(p.exe().ok());
    if let Ok(fds) = p.fd() {
        for fd in fds.flatten() {
            if let procfs::process::FDTarget::Path(path) = fd.target {
                out.push(path);
            }
        }
    }
    if let Ok(maps) = p.maps() {
        for m in maps {
            if let procfs::process::MMapPath::Path(path) = m.pathname {
                out.push(path);
            }
        }
    }
    out.retain(|p| p.is_absolute() && p != Path::new("/"));
    out
}
