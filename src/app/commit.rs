//! `plan` and `commit`: compare the stock with `live`, then stage the new
//! generation and switch to it (design §4.1).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Output, table};
use crate::state::stat_cache::StatCache;
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::sys::failpoint;
use crate::state::generation;
use crate::engine::health;
use crate::state::layout;
use crate::locks::manager::ManagerLock;
use crate::format::manifest::GenerationManifest;
use crate::state::pending;
use crate::model::plan::{self, Action, Plan};
use crate::output::progress::Progress;
use crate::output::report;
use crate::state::scandir::{self, ScanSync};
use crate::state::State;
use crate::stock::{self, Stock};
use crate::state::store::{self, Durability};
use crate::engine::switch::{self, Switch};
use crate::state::txn_log::TxnKind;
use crate::locks::update::{self, LockPolicy};

#[derive(Debug, Clone, Default)]
pub(crate) struct CommitOptions {
    /// How long to wait for the manager lock.
    pub wait: std::time::Duration,
    /// How to treat held update locks of services to stop or restart.
    pub locks: LockPolicy,
    /// `--check-up SECS`: wait this long after the switch for every started
    /// or restarted service to be up; roll back if one is not.
    pub check_up: Option<std::time::Duration>,
}

/// The stock, the live generation and the plan between them.
pub(crate) struct Prepared {
    pub stock: Stock,
    pub live: Option<GenerationManifest>,
    pub plan: Plan,
}

impl Prepared {
    pub(crate) fn target(&self) -> BTreeMap<String, String> {
        self.stock
            .services
            .iter()
            .map(|(name, s)| (name.clone(), s.object_name()))
            .collect()
    }
}

/// Reads the stock (with the stat cache) and plans against `live`, with the
/// changed files of every restarted service.
pub(crate) fn prepare(cfg: &Config, state: Option<&State>) -> Result<Prepared> {
    let started = std::time::Instant::now();
    let cache = StatCache::load(state.map(|s| &s.cache));
    report::debug(&format!(
        "stat cache: {} entries loaded in {:.1} ms",
        cache.len(),
        started.elapsed().as_secs_f64() * 1e3
    ));
    let started = std::time::Instant::now();
    let stock = stock::scan(cfg, cache)?;
    report::debug(&format!(
        "stock: {} services, {} entries scanned in {:.1} ms",
        stock.services.len(),
        stock
            .services
            .values()
            .map(|s| s.entries.len())
            .sum::<usize>(),
        started.elapsed().as_secs_f64() * 1e3
    ));
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
                s.dir().join(path).display(),
                s.name
            ));
        }
    }
    let live = match state {
        Some(st) => match st.live()? {
            Some(n) => Some(generation::load(st, n)?),
            None => None,
        },
        None => None,
    };
    let from = live
        .as_ref()
        .map(|g| g.services.clone())
        .unwrap_or_default();
    let target: BTreeMap<String, String> = stock
        .services
        .iter()
        .map(|(name, s)| (name.clone(), s.object_name()))
        .collect();
    let mut plan = plan::make(&from, &target);
    for change in &mut plan.services {
        match change.action {
            Action::Restart => {
                let (Some(st), Some(old)) = (state, &change.from) else {
                    continue;
                };
                let Some(new) = stock.services.get(&change.name) else {
                    continue;
                };
                if let Ok(old_manifest) = store::load_manifest(&st.store, old) {
                    change.files = plan::diff_entries(&old_manifest.entries, &new.entries);
                    change.reason = plan::describe_files(&change.files);
                }
            }
            Action::Stop => change.reason = "removed from stock".into(),
            Action::Start | Action::Keep => {}
        }
    }
    Ok(Prepared { stock, live, plan })
}

#[derive(Debug, Serialize)]
struct PlanReport<'a> {
    live: Option<u64>,
    up_to_date: bool,
    counts: plan::Counts,
    services: &'a [plan::ServiceChange],
}

pub(crate) fn plan(cfg: &Config) -> Result<Output> {
    stock::check_trees_exist(cfg)?;
    let state = State::open(cfg)?;
    let prepared = prepare(cfg, state.as_ref())?;
    let live = prepared.live.as_ref().map(|g| g.generation);
    let report = PlanReport {
        live,
        up_to_date: prepared.plan.is_noop() && live.is_some(),
        counts: prepared.plan.counts(),
        services: &prepared.plan.services,
    };
    let mut human = match live {
        Some(n) if report.up_to_date => format!("up to date: generation {n} matches the stock\n"),
        Some(n) => format!("generation {n} -> new generation: {}\n", report.counts),
        None => format!("no generation yet -> generation 1: {}\n", report.counts),
    };
    human.push_str(&plan_table(&prepared.plan));
    Ok(Output::new(&report, human))
}

/// Shown per-service lines without `-v`; a first commit of thousands of
/// services would otherwise bury the summary.
const MAX_LINES: usize = 20;

/// Per-service lines, "NAME  ACTION: REASON", e.g. "web  restart: run
/// changed" (kept services and more than [`MAX_LINES`] changes only with -v).
pub(crate) fn plan_table(plan: &Plan) -> String {
    let verbose = report::verbosity() > 0;
    let shown: Vec<&plan::ServiceChange> = plan
        .services
        .iter()
        .filter(|s| s.action != Action::Keep || verbose)
        .collect();
    let limit = if verbose { usize::MAX } else { MAX_LINES };
    let rows: Vec<Vec<String>> = shown
        .iter()
        .take(limit)
        .map(|s| vec![s.name.clone(), format!("{}: {}", s.action, s.reason)])
        .collect();
    let mut out = table(&rows);
    if shown.len() > limit {
        out.push_str(&format!(
            "  … and {} more (-v lists them all)\n",
            shown.len() - limit
        ));
    }
    out
}

#[derive(Debug, Serialize)]
struct CommitReport<'a> {
    generation: u64,
    previous: Option<u64>,
    up_to_date: bool,
    counts: plan::Counts,
    services: &'a [plan::ServiceChange],
    scandir: ScanSync,
}

/// Commits the stock; a run deferred with exit 75 records a pending commit
/// (`<state>/pending`, see [`pending`]) for the next `commit` or `sync`.
pub(crate) fn commit(cfg: &Config, opts: &CommitOptions) -> Result<Output> {
    let result = commit_now(cfg, opts);
    if let Err(err) = &result {
        if err.exit_code() == exit::TEMP_FAIL {
            record_pending(cfg, err);
        }
    }
    result
}

/// Best effort: a deferral is reported by its own error whatever happens here.
fn record_pending(cfg: &Config, err: &Error) {
    let Ok(Some(state)) = State::open(cfg) else {
        return;
    };
    match pending::record(&state.dir, &err.to_string()) {
        Ok(()) => report::info(&format!(
            "commit deferred; recorded in {} for the next `commit` or `sync`",
            state.dir.join(layout::PENDING).display()
        )),
        Err(e) => report::warn(&format!("cannot record the pending commit: {}", e.chain())),
    }
}

fn commit_now(cfg: &Config, opts: &CommitOptions) -> Result<Output> {
    let progress = Progress::start();
    stock::check_trees_exist(cfg)?;
    let state = State::init(cfg)?;
    let _lock = ManagerLock::acquire(&state.dir, opts.wait)?;
    // Refuse an unsafe runtime directory now, not after the switch.
    update::locks_dir(cfg)?;
    super::recover::finish_interrupted(cfg, &state)?;
    // Read before the stock: a deferral recorded after this point may be
    // for files this run does not see, so it must survive this run.
    let seen_pending = pending::read(&state.dir)?;

    let prepared = prepare(cfg, Some(&state))?;
    progress.phase(|| {
        format!(
            "read the stock: {} services; plan: {}",
            prepared.stock.services.len(),
            prepared.plan.counts()
        )
    });
    failpoint::hit("commit.after-scan")?;
    if let Err(e) = prepared.stock.cache.save(&state.cache) {
        report::debug(&format!("stat cache not saved: {}", e.chain()));
    }
    let previous = prepared.live.as_ref().map(|g| g.generation);
    if let (true, Some(live)) = (prepared.plan.is_noop(), &prepared.live) {
        // Nothing to switch; still repair the scan directory if it drifted.
        let scandir = repair_scandir(cfg, &state, live)?;
        let report = CommitReport {
            generation: live.generation,
            previous,
            up_to_date: true,
            counts: prepared.plan.counts(),
            services: &prepared.plan.services,
            scandir,
        };
        let human = format!(
            "up to date: generation {} matches the stock ({} services)\n",
            live.generation,
            live.services.len()
        );
        pending::clear_if_unchanged(&state.dir, &seen_pending)?;
        return Ok(Output::new(&report, human));
    }

    let target = prepared.target();
    let started = std::time::Instant::now();
    let generation = match reusable_generation(&state, prepared.live.as_ref(), &target)? {
        Some(n) => {
            report::debug(&format!("reusing staged generation {n}"));
            n
        }
        None => stage_generation(&state, &prepared, target, &progress)?,
    };
    report::debug(&format!(
        "generation {generation} staged in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    ));
    let started = std::time::Instant::now();
    progress.phase(|| format!("generation {generation} staged; switching"));
    let scandir = switch::run(
        cfg,
        &state,
        &Switch {
            kind: TxnKind::Commit,
            from: previous,
            to: generation,
            plan: &prepared.plan,
            locks: opts.locks,
        },
    )?;
    report::debug(&format!(
        "switched to generation {generation} in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    ));
    progress.phase(|| format!("generation {generation} is live; scan directory synced"));
    // The stock this run read is live: a deferral recorded before it is done.
    pending::clear_if_unchanged(&state.dir, &seen_pending)?;
    if let Some(timeout) = opts.check_up {
        gate(
            cfg,
            &state,
            &prepared.plan,
            generation,
            previous,
            timeout,
            opts.locks,
        )?;
    }
    let counts = prepared.plan.counts();
    let report = CommitReport {
        generation,
        previous,
        up_to_date: false,
        counts,
        services: &prepared.plan.services,
        scandir,
    };
    let mut human = format!("generation {generation} is live: {counts}\n");
    human.push_str(&plan_table(&prepared.plan));
    Ok(Output::new(&report, human))
}

/// The health gate: waits for the started and restarted services of `plan`
/// (now live in `generation`); if one is not up in time, switches back to
/// `previous` through the same transaction machinery and fails with
/// [`Error::RolledBack`] (exit 3), naming the service and why.
fn gate(
    cfg: &Config,
    state: &State,
    plan: &Plan,
    generation: u64,
    previous: Option<u64>,
    timeout: std::time::Duration,
    locks: LockPolicy,
) -> Result<()> {
    let Some(bad) = health::check_up(cfg, state, plan, timeout)? else {
        return Ok(());
    };
    let failed = format!(
        "{} did not come up within {}s after the switch to generation {generation} ({})",
        bad.name,
        timeout.as_secs_f64(),
        bad.why
    );
    let Some(previous) = previous else {
        return Err(Error::AfterSwitch {
            generation,
            what: format!("{failed}; there is no earlier generation to roll back to"),
            source: None,
        });
    };
    report::info(&format!(
        "{} is not up; rolling back to generation {previous}",
        bad.name
    ));
    let new = generation::load(state, generation)?;
    let old = require_switchable(state, previous, &new)?;
    let back = plan::make_to_generation(&new.services, &old.services, previous);
    switch::run(
        cfg,
        state,
        &Switch {
            kind: TxnKind::AutoRollback,
            from: Some(generation),
            to: previous,
            plan: &back,
            locks,
        },
    )
    .map_err(|e| Error::AfterSwitch {
        generation,
        what: format!("{failed}, and rolling back to generation {previous} failed"),
        source: Some(Box::new(e)),
    })?;
    Err(Error::RolledBack {
        what: format!("{failed}; rolled back: generation {previous} is live again"),
    })
}

/// A generation newer than `live` with exactly `target`'s services — left
/// staged by an earlier attempt that could not switch — is used again.
fn reusable_generation(
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

/// Stages missing store objects, makes them durable, publishes them and a
/// new generation. Nothing is reachable from `live` yet.
fn stage_generation(
    state: &State,
    prepared: &Prepared,
    target: BTreeMap<String, String>,
    progress: &Progress,
) -> Result<u64> {
    let published = store::published(&state.store)?;
    let missing: Vec<_> = prepared
        .stock
        .services
        .values()
        .filter(|s| {
            let object = s.object_name();
            // An object counts only with its manifest beside it.
            !(published.contains(&object)
                && published.contains(&layout::object_manifest_name(&object)))
        })
        .collect();
    let new_entries: usize = missing.iter().map(|s| s.entries.len()).sum();
    let durability = Durability::for_entries(new_entries);
    report::debug(&format!(
        "staging {} new store objects ({new_entries} entries, {durability:?})",
        missing.len()
    ));
    {
        use rayon::prelude::*;
        let staged = missing
            .par_iter()
            .try_for_each(|s| store::stage_object(&state.dir, s, durability));
        if let Err(e) = staged {
            // Give the space back now (a full disk stays full otherwise);
            // what this cannot remove, the next run's sweep does.
            for s in &missing {
                let object = s.object_name();
                let _ = state.dir.remove_if_exists(layout::tmp_name(&object));
                let _ = state
                    .dir
                    .remove_if_exists(layout::tmp_name(&layout::object_manifest_name(&object)));
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
        let trees = prepared.stock.trees.clone();
        generation::create(state, n, prepared.live.as_ref(), target, trees)?;
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

/// Re-creates missing scan directory links of the live generation.
pub(crate) fn repair_scandir(cfg: &Config, state: &State, live: &GenerationManifest) -> Result<ScanSync> {
    let scandir = scandir::open(cfg)?;
    update::ensure_files(cfg, live.services.keys().map(String::as_str))?;
    let names = live.services.keys().cloned().collect();
    let drift = scandir::drift(&scandir, &state.live_path(), &names)?;
    if !drift.changed() {
        return Ok(drift);
    }
    let sync = scandir::sync(&scandir, &state.live_path(), &names)?;
    crate::supervisor::for_config(cfg).notify(scandir.path())?;
    Ok(sync)
}

/// Loads generation `n` and makes sure it can replace `live` (used by rollback).
pub(crate) fn require_switchable(
    state: &State,
    n: u64,
    live: &GenerationManifest,
) -> Result<GenerationManifest> {
    let m = generation::load(state, n)?;
    generation::check_switchable(state, &m, live)?;
    Ok(m)
}
