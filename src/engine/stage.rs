//! Staging: read the stock and plan it against `live`, then stage the new
//! generation — copy missing store objects, make them durable, publish them
//! and the generation (docs/design.md#commit) — or reuse one an earlier
//! attempt left staged. Nothing staged here is reachable from `live`; the
//! switch is [`super::switch`]'s.

use std::collections::{BTreeMap, BTreeSet};

use super::locked::LockedState;
use crate::config::Config;
use crate::error::{Error, Problem, Problems, Result};
use crate::format::manifest::{GenerationManifest, ObjectManifest};
use crate::model::owners::Owners;
use crate::model::plan::{self, Action, Plan};
use crate::model::shown::shown;
use crate::output::progress::{Counter, Progress};
use crate::output::report;
use crate::state::State;
use crate::state::generation;
use crate::state::layout;
use crate::state::store::{self, Durability};
use crate::stock::capture::{self, Capture};
use crate::stock::stat_cache::{Fingerprint, StatCache};
use crate::stock::{self, ScanOptions, Stock, StockService};
use crate::sys::failpoint;

/// The stock, the live generation and the plan between them.
pub(crate) struct Prepared {
    pub stock: Stock,
    pub live: Option<GenerationManifest>,
    pub plan: Plan,
    /// The services of the new generation (name → store object): the
    /// stock's, the live version of every held-back service
    /// (docs/design.md#held-back), and of every service a hinted commit
    /// did not read (docs/performance.md#hints). Built once: at 10,000
    /// services each copy costs a hinted commit about a millisecond.
    pub target: BTreeMap<String, String>,
}

/// The services of the new generation: `untouched` (the live services a
/// hinted commit did not read), the live version of every held-back
/// service in `kept`, and the stock's.
fn target_of(
    stock: &Stock,
    kept: &BTreeMap<String, String>,
    mut untouched: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    untouched.extend(kept.iter().map(|(k, v)| (k.clone(), v.clone())));
    untouched.extend(
        stock
            .services
            .iter()
            .map(|(name, s)| (name.clone(), s.object_name())),
    );
    untouched
}

/// Reads the stock (with the stat cache) and plans against `live`, with the
/// changed files and `restart_on` paths of every restarted service. The
/// entries of services whose object is live are let go as they are read
/// ([`StockService::entries_dropped`]); [`prepare_whole`] keeps them.
pub(crate) fn prepare(cfg: &Config, state: Option<&State>) -> Result<Prepared> {
    prepare_restarting(cfg, state, &[])
}

/// [`prepare`] keeping the entries of every stock service, also of those
/// whose object is live: `verify --repair` copies a damaged live object
/// again from them.
pub(crate) fn prepare_whole(cfg: &Config, state: Option<&State>) -> Result<Prepared> {
    let live = load_live(state)?;
    let stock = scan_stock(cfg, state, ScanOptions::default(), None)?;
    plan_stock(cfg, state, stock, live, &[], None)
}

/// [`prepare`], and restarts the services named in `restart` (`commit
/// --restart`) even though nothing of theirs changed: each gets a restart
/// marker in its identity, hence a new object (docs/design.md#identity).
/// A name that is not in the stock is a usage error (exit 2).
pub(crate) fn prepare_restarting(
    cfg: &Config,
    state: Option<&State>,
    restart: &[String],
) -> Result<Prepared> {
    let live = load_live(state)?;
    let opts = ScanOptions {
        unchanged: live.as_ref().map(|g| &g.services),
        keep: restart,
        report_only: false,
    };
    let stock = scan_stock(cfg, state, opts, None)?;
    plan_stock(cfg, state, stock, live, restart, None)
}

/// The manifest of the live generation, if any.
fn load_live(state: Option<&State>) -> Result<Option<GenerationManifest>> {
    match state {
        Some(st) => match st.live()? {
            Some(n) => Ok(Some(generation::load(st, n)?)),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

/// [`prepare_restarting`] for a commit, which holds the manager lock:
/// every service the store holds no object of (on a first commit, all) is
/// copied into the state directory while the scan hashes it, and staging
/// takes that copy instead of reading the stock again
/// (docs/performance.md#reading-each-byte-once). [`CaptureCleanup`]
/// removes the copies staging did not take.
pub(crate) fn prepare_capturing(
    cfg: &Config,
    state: &LockedState,
    restart: &[String],
) -> Result<Prepared> {
    let known = store::published(&state.store)?
        .iter()
        .filter_map(|name| layout::split_object_name(name))
        .map(|(service, _)| service.to_string())
        .collect();
    let capture = Capture::new(&state.dir, known, cfg.limits.max_stage_bytes);
    let live = load_live(Some(state))?;
    let opts = ScanOptions {
        unchanged: live.as_ref().map(|g| &g.services),
        keep: restart,
        report_only: false,
    };
    let stock = scan_stock(cfg, Some(state), opts, Some(&capture))?;
    report::debug(&format!(
        "stock: {} new services ({} files) copied while reading; their entries packed in {} bytes",
        stock.captured.len(),
        capture.files(),
        stock
            .services
            .values()
            .filter_map(|s| Some(s.packed.as_ref()?.len()))
            .sum::<usize>()
    ));
    plan_stock(cfg, Some(state), stock, live, restart, None)
}

/// Removes, when dropped, every copy a capturing scan left in the state
/// directory that staging did not take: services held back, staged by an
/// earlier attempt, or a commit that failed. Best effort; the next
/// recovery sweep removes what this cannot (`.tmp-*`).
pub(crate) struct CaptureCleanup<'a>(&'a State);

impl<'a> CaptureCleanup<'a> {
    pub(crate) fn new(state: &'a State) -> CaptureCleanup<'a> {
        CaptureCleanup(state)
    }
}

impl Drop for CaptureCleanup<'_> {
    fn drop(&mut self) {
        let Ok(names) = self.0.dir.names() else {
            return;
        };
        for name in names {
            if name
                .as_encoded_bytes()
                .starts_with(capture::PREFIX.as_bytes())
            {
                let _ = self.0.dir.remove_if_exists(&name);
            }
        }
    }
}

/// [`prepare`] below the floor (`commit --changed`,
/// docs/performance.md#hints): reads only the services `names`, and takes
/// every other service of `live` as it is, unread. `names` come back with
/// the alias targets read in their place.
pub(crate) fn prepare_hinted(
    cfg: &Config,
    state: &State,
    names: &BTreeSet<String>,
) -> Result<(Prepared, BTreeSet<String>)> {
    let started = std::time::Instant::now();
    // No stat cache: loading it costs more than hashing a few services, and
    // saving what one service saw would drop every other record.
    let (stock, named) = stock::scan_named(cfg, StatCache::default(), names)?;
    report::debug(&format!(
        "stock: {} of {} named services read in {:.1} ms",
        stock.services.len(),
        named.len(),
        started.elapsed().as_secs_f64() * 1e3
    ));
    report_scan(&stock);
    let live = load_live(Some(state))?;
    let prepared = plan_stock(cfg, Some(state), stock, live, &[], Some(&named))?;
    Ok((prepared, named))
}

/// Plans `stock` against `live`; with `named`, only those services come
/// from `stock` and every other live service stays as it is.
fn plan_stock(
    cfg: &Config,
    state: Option<&State>,
    mut stock: Stock,
    live: Option<GenerationManifest>,
    restart: &[String],
    named: Option<&BTreeSet<String>>,
) -> Result<Prepared> {
    stock::restart_on::digest_restart_on(cfg, &mut stock)?;
    let mut stock = settle_held_back(cfg, stock)?;
    check_restart_names(&stock, restart)?;
    let nothing = BTreeMap::new();
    let from = live.as_ref().map_or(&nothing, |g| &g.services);
    let old = changed_manifests(state, from, &stock);
    keep_restart_markers(&mut stock, &old);
    if let (Some(st), false) = (state, restart.is_empty()) {
        // The generation this commit will stage: unique to this request.
        let marker = generation::list(st)?.last().copied().unwrap_or(0) + 1;
        for name in restart {
            if let Some(service) = stock.services.get_mut(name) {
                service.identity.restart = Some(marker);
            }
        }
    }
    let kept: BTreeMap<String, String> = stock
        .held_back
        .iter()
        .filter_map(|h| Some((h.service.clone(), from.get(&h.service)?.clone())))
        .collect();
    let untouched: BTreeMap<String, String> = match named {
        Some(named) => from
            .iter()
            .filter(|(name, _)| !named.contains(*name))
            .map(|(name, object)| (name.clone(), object.clone()))
            .collect(),
        None => BTreeMap::new(),
    };
    let target = target_of(&stock, &kept, untouched);
    let mut plan = plan::make(from, &target);
    for change in &mut plan.services {
        match change.action {
            Action::Restart if restart.contains(&change.name) => {
                change.reason = "requested (--restart)".into();
            }
            Action::Restart => {
                let (Some(old), Some(new)) =
                    (old.get(&change.name), stock.services.get(&change.name))
                else {
                    continue;
                };
                let new = new.unpacked()?;
                change.files = plan::diff_entries(&old.entries, &new.entries);
                change.restart_on = new.identity.changed_paths(&old.identity());
                change.reason = plan::describe_restart(&change.files, &change.restart_on).into();
                if change.files.is_empty()
                    && change.restart_on.is_empty()
                    && old.owners != new.identity.owners
                {
                    // An object of an older version, owned as the stock is
                    // (docs/security.md#published-objects-belong-to-the-state-owner).
                    change.reason = match new.identity.owners {
                        Some(Owners::Stock) => "re-staged with the stock's owners (foreign_owners)",
                        _ => "re-staged owned by the state owner",
                    }
                    .into();
                }
            }
            Action::Stop => change.reason = "removed from stock".into(),
            Action::Keep if kept.contains_key(&change.name) => {
                change.reason = "held back: its live version stays".into();
            }
            Action::Keep if named.is_some_and(|n| !n.contains(&change.name)) => {
                change.reason = "not read: no changed path names it (--changed)".into();
            }
            Action::Start | Action::Keep => {}
        }
    }
    Ok(Prepared {
        stock,
        live,
        plan,
        target,
    })
}

/// All or nothing with `strict` (every problem, exit 65 or 75); else each
/// held-back service is named, with its problems, on stderr.
fn settle_held_back(cfg: &Config, stock: Stock) -> Result<Stock> {
    if cfg.strict {
        return stock.all_or_nothing();
    }
    for held in &stock.held_back {
        report::warn(&held.describe());
    }
    Ok(stock)
}

/// Every name of `commit --restart` must be a valid stock service: one
/// that is not in the stock, or is held back, is a usage error (exit 2).
fn check_restart_names(stock: &Stock, restart: &[String]) -> Result<()> {
    if let Some(held) = stock
        .held_back
        .iter()
        .find(|h| restart.contains(&h.service))
    {
        return Err(Error::usage(format!(
            "--restart {0}: {0} is held back for its problems in the stock (named above); fix them first",
            held.service
        )));
    }
    if let Some(unknown) = restart.iter().find(|n| !stock.services.contains_key(*n)) {
        return Err(Error::usage(format!(
            "--restart {unknown}: there is no service {unknown:?} in the stock; `svcdir-update plan -v` lists them"
        )));
    }
    Ok(())
}

/// Reads the stock with the stat cache, saying what it found at `-v`;
/// copies what `capture` wants on the way.
fn scan_stock(
    cfg: &Config,
    state: Option<&State>,
    opts: ScanOptions<'_>,
    capture: Option<&Capture<'_>>,
) -> Result<Stock> {
    let started = std::time::Instant::now();
    // `--rehash`: an empty cache that replaces the file when saved, so a
    // record that lies is gone for good (docs/security.md#a-stale-stat-cache).
    let cache = if cfg.rehash {
        StatCache::rebuilt()
    } else {
        StatCache::load(state.and_then(|s| s.cache.as_ref()))
    };
    report::debug(&format!(
        "stat cache: {} entries loaded in {:.1} ms",
        cache.len(),
        started.elapsed().as_secs_f64() * 1e3
    ));
    let started = std::time::Instant::now();
    let stock = stock::scan_capturing(cfg, cache, opts, capture)?;
    report::debug(&format!(
        "stock: {} services, {} entries scanned in {:.1} ms",
        stock.services.len(),
        stock
            .services
            .values()
            .map(|s| s.entry_count)
            .sum::<usize>(),
        started.elapsed().as_secs_f64() * 1e3
    ));
    report_scan(&stock);
    Ok(stock)
}

/// Says what a scan noted (at `-v`) and what the operator should see.
fn report_scan(stock: &Stock) {
    for note in &stock.notes {
        report::debug(note);
    }
    for notice in &stock.notices {
        report::info(notice);
    }
    for s in stock.services.values() {
        for path in &s.stripped_setid {
            report::info(&format!(
                "{}: set-id bits stripped (allow with `allow_setid: [{}]`)",
                shown(&s.dir().join(path)),
                s.name
            ));
        }
    }
}

/// The manifests of the live objects of services whose stock object
/// differs (the only ones the plan explains); one that cannot be read only
/// costs the explanation.
fn changed_manifests(
    state: Option<&State>,
    from: &BTreeMap<String, String>,
    stock: &Stock,
) -> BTreeMap<String, ObjectManifest> {
    let Some(st) = state else {
        return BTreeMap::new();
    };
    from.iter()
        .filter(|(name, object)| {
            stock
                .services
                .get(*name)
                .is_some_and(|s| &s.object_name() != *object)
        })
        .filter_map(|(name, object)| {
            let manifest = store::load_manifest(&st.store, object).ok()?;
            Some((name.clone(), manifest))
        })
        .collect()
}

/// A live object made by `commit --restart` stays live while its files and
/// `restart_on` content are unchanged: the stock service takes over its
/// marker, so the next plain commit does not restart it again.
fn keep_restart_markers(stock: &mut Stock, old: &BTreeMap<String, ObjectManifest>) {
    for (name, manifest) in old {
        let Some(service) = stock.services.get_mut(name) else {
            continue;
        };
        if manifest.restart.is_some() && service.identity.restart.is_none() {
            let mut marked = service.identity.clone();
            marked.restart = manifest.restart;
            if marked.object_digest(&service.digest) == manifest.digest {
                service.identity = marked;
            }
        }
    }
}

/// A generation newer than `live` with exactly `target`'s services — left
/// staged by an earlier attempt that could not switch — is used again.
pub(crate) fn reusable_generation(
    state: &State,
    live_manifest: Option<&GenerationManifest>,
    target: &BTreeMap<String, String>,
) -> Result<Option<u64>> {
    let live = live_manifest.map(|m| m.generation);
    let Some(&newest) = generation::list(state)?.last() else {
        return Ok(None);
    };
    if Some(newest) <= live {
        return Ok(None);
    }
    match generation::load(state, newest) {
        Ok(m) if &m.services == target && m.parent == live => {
            match live_manifest {
                Some(lm) => generation::check_switchable(state, &m, lm)?,
                None => generation::check_complete(state, &m)?,
            }
            Ok(Some(newest))
        }
        _ => Ok(None),
    }
}

/// The stock services whose store object is not published yet: the ones
/// a commit copies.
fn missing_services<'a>(state: &State, prepared: &'a Prepared) -> Result<Vec<&'a StockService>> {
    let objects: Vec<(String, &StockService)> = prepared
        .stock
        .services
        .values()
        .map(|s| (s.object_name(), s))
        .collect();
    // An object counts only with its manifest beside it.
    let published = store::published_among(&state.store, objects.iter().map(|(o, _)| o.as_str()))?;
    Ok(objects
        .iter()
        .filter(|(object, _)| !published.contains(object.as_str()))
        .map(|(_, s)| *s)
        .collect())
}

/// The services among `missing` whose entries were let go because their
/// object is live, read again: their object is gone from the store (removed
/// by hand), and a commit copies it again as it copies any missing object.
/// Exit 75 if one no longer reads as that object.
fn read_again(cfg: &Config, missing: &[&StockService]) -> Result<Vec<StockService>> {
    let names: BTreeSet<String> = missing
        .iter()
        .filter(|s| s.entries_dropped)
        .map(|s| s.name.clone())
        .collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    report::debug(&format!(
        "{} live store object(s) missing: reading their services again",
        names.len()
    ));
    let (mut again, _) = stock::scan_named(cfg, StatCache::default(), &names)?;
    missing
        .iter()
        .filter(|s| s.entries_dropped)
        .map(|s| match again.services.remove(&s.name) {
            Some(fresh) if fresh.object_name() == s.object_name() => Ok(fresh),
            _ => Err(stock::changed_while_reading(&s.dir())),
        })
        .collect()
}

/// Refuses, before anything is written, a commit whose new store objects
/// hold more than `limits: max_stage_bytes` bytes of files (logical sizes:
/// a sparse file's holes count, though they are copied as holes), naming
/// the largest file (docs/security.md#sparse-files). Exit 65.
fn check_stage_bytes(cfg: &Config, missing: &[&StockService]) -> Result<()> {
    let limit = cfg.limits.max_stage_bytes;
    let mut total = 0u64;
    // The largest file: its service, path and size.
    let mut largest: Option<(&StockService, String, u64)> = None;
    for service in missing {
        // One service unpacked at a time (src/stock/packed.rs).
        for entry in &service.unpacked()?.entries {
            let Some(size) = entry.size else { continue };
            total = total.saturating_add(size);
            if largest.as_ref().is_none_or(|(_, _, most)| size > *most) {
                largest = Some((service, entry.path.clone(), size));
            }
        }
    }
    if total <= limit {
        return Ok(());
    }
    let Some((service, path, size)) = largest else {
        return Ok(());
    };
    Err(Error::Stock {
        problems: Problems(vec![Problem {
            path: service.dir().join(&path),
            what: format!(
                "this commit would copy {total} bytes into the store ({size} of them this \
                 file's, of service {}); the limit is {limit}",
                service.name
            ),
            fix: "raise `limits: {max_stage_bytes: N}` in the config if this is intended".into(),
            transient: false,
        }]),
    })
}

/// After a copy found a file's content differing from the scanned hash:
/// the stat-cache keys of the files to be copied whose content changed
/// behind unchanged timestamps (docs/security.md#a-stale-stat-cache). Empty
/// when the stock is simply being written.
pub(crate) fn stale_cache_records(state: &State, prepared: &Prepared) -> Result<Vec<Fingerprint>> {
    let mut stale = Vec::new();
    for service in missing_services(state, prepared)? {
        let service = service.unpacked()?;
        stale.extend(stock::stale_hashes(&service));
    }
    Ok(stale)
}

/// Stages missing store objects, makes them durable, publishes them and a
/// new generation. Nothing is reachable from `live` yet.
pub(crate) fn stage_generation(
    cfg: &Config,
    state: &LockedState,
    prepared: &Prepared,
    target: BTreeMap<String, String>,
    note: Option<String>,
    progress: &Progress,
) -> Result<u64> {
    let missing = missing_services(state, prepared)?;
    let again = read_again(cfg, &missing)?;
    let missing: Vec<&StockService> = missing
        .into_iter()
        .filter(|s| !s.entries_dropped)
        .chain(&again)
        .collect();
    check_stage_bytes(cfg, &missing)?;
    let new_entries: usize = missing.iter().map(|s| s.entry_count).sum();
    // Where the generation's links need a syncfs anyway, one more before
    // them costs less than an fsync per new file: that one flushes what
    // other processes left dirty, and the generation's then finds little
    // (docs/durability.md#per-file-fsync-or-one-syncfs).
    let durability = if !missing.is_empty() && state.on_ext_without_symlink_journal()? {
        Durability::SyncFs
    } else {
        Durability::for_entries(new_entries)
    };
    let captured = &prepared.stock.captured;
    report::debug(&format!(
        "staging {} new store objects ({new_entries} entries, {durability:?}), {} of them \
         copied while reading",
        missing.len(),
        missing
            .iter()
            .filter(|s| captured.contains(&s.name))
            .count()
    ));
    {
        let counter = Counter::new("copying new store objects", missing.len(), "objects");
        let staged = stage_side_by_side(&state.dir, &missing, captured, durability, &counter);
        if let Err(e) = staged {
            // Give the space back now (a full disk stays full otherwise);
            // what this cannot remove, the next run's sweep does.
            for s in &missing {
                let object = s.object_name();
                let _ = state.dir.remove_if_exists(layout::tmp_name(&object));
                let _ = state
                    .dir
                    .remove_if_exists(layout::tmp_name(&layout::object_manifest_name(&object)));
                let _ = state.dir.remove_if_exists(capture::capture_name(&s.name));
            }
            return Err(e);
        }
    }
    progress.phase(|| {
        format!(
            "copied {} new store objects ({new_entries} entries)",
            missing.len()
        )
    });
    failpoint::hit("commit.after-stage")?;
    if durability == Durability::SyncFs && !missing.is_empty() {
        state.dir.sync_fs()?;
    } else if has_symlinks(&missing)? {
        // fsync of their directories does not keep new symlinks everywhere
        // (docs/durability.md#the-switch-and-symlinks).
        state.sync_symlinks()?;
    }
    failpoint::hit("commit.after-sync")?;
    let n = generation::list(state)?.last().copied().unwrap_or(0) + 1;
    let objects: Vec<String> = missing.iter().map(|s| s.object_name()).collect();
    let publish = || -> Result<()> {
        for object in &objects {
            store::publish_object(&state.dir, &state.store, object)?;
        }
        state.store.sync()?;
        state.dir.sync()?;
        failpoint::hit("commit.after-publish-objects")?;
        progress.phase(|| format!("{} store objects durable and published", objects.len()));
        // For `status`, which then sums numbers (docs/performance.md).
        crate::state::usage::record_published(state, &objects);
        let trees = prepared.stock.trees.clone();
        generation::create(state, n, prepared.live.as_ref(), target, trees, note)?;
        Ok(())
    };
    match publish() {
        Ok(()) => Ok(n),
        Err(err @ Error::Sync { .. }) => {
            // What this run published is not proven durable: take it back,
            // so that a retry stages it again instead of trusting it.
            unpublish(state, &objects, n);
            Err(err)
        }
        Err(err) => Err(err),
    }
}

/// Whether the copies of the `missing` services hold symlinks.
fn has_symlinks(missing: &[&StockService]) -> Result<bool> {
    for service in missing {
        let service = service.unpacked()?;
        let symlink = crate::model::tree::EntryKind::Symlink;
        if service.entries.iter().any(|e| e.kind == symlink) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// At most this many store objects are staged at once when each file is
/// made durable by its own fsync.
const STAGING_THREADS: usize = 16;

/// Stages the `missing` services' store objects side by side. Made durable
/// file by file, staging waits on fsync more than it computes: more threads
/// than cores let the file system commit many objects' fsyncs together (50
/// changed services on 2 cores: 0.08–0.17 s with 16 threads, 0.18–0.65 s
/// with one per core; docs/performance.md#restarting-many-services). A `syncfs` stage
/// is CPU-bound copying and hashing: the cores' pool.
fn stage_side_by_side(
    staging: &crate::sys::fs::Dir,
    missing: &[&crate::stock::StockService],
    captured: &BTreeSet<String>,
    durability: Durability,
    counter: &Counter,
) -> Result<()> {
    use rayon::prelude::*;
    let stage = || {
        missing.par_iter().try_for_each(|s| {
            // Unpacked one service at a time (src/stock/packed.rs), let
            // go of once its object is staged.
            let staged = s.unpacked().and_then(|s| {
                store::stage_object(staging, &s, durability, captured.contains(&s.name))
            });
            counter.tick();
            staged
        })
    };
    if durability == Durability::PerFile && missing.len() > 1 {
        let threads = missing.len().min(STAGING_THREADS);
        // No pool (no threads to be had): the cores' pool does it all.
        if let Ok(pool) = rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            return pool.install(stage);
        }
    }
    stage()
}

/// Moves objects and generation `n` published by a failed run back to
/// staging names (swept by the next recovery). Best effort: the caller
/// reports the original error.
fn unpublish(state: &State, objects: &[String], n: u64) {
    let tmp = |name: &str| layout::tmp_name(&format!("unpublished-{name}"));
    let _ = state
        .generations
        .rename(n.to_string(), &state.dir, tmp(&format!("generation-{n}")));
    for object in objects {
        let manifest = layout::object_manifest_name(object);
        let _ = state.store.rename(object, &state.dir, tmp(object));
        let _ = state.store.rename(&manifest, &state.dir, tmp(&manifest));
    }
    let _ = state.generations.sync();
    let _ = state.store.sync();
}
