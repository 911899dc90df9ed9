//! The commit transaction (docs/design.md#commit): under the manager lock,
//! plan the stock against `live`, stage (or reuse) the new generation,
//! switch to it, and with `--check-up` roll back by itself when a started
//! service does not come up. A run deferred with exit 75 records a pending
//! commit for the next `commit` or `sync`. This module renders nothing for
//! a person but progress and notes on stderr.

use std::time::{Duration, Instant};

use super::generations;
use super::health;
use super::locked::LockedState;
use super::repair;
use super::stage::{self, Prepared};
use super::switch::{self, Switch};
use crate::config::Config;
use crate::error::{Error, NotUp, Result};
use crate::locks::update::LockPolicy;
use crate::model::plan::{self, Plan};
use crate::model::shown::shown;
use crate::output::progress::Progress;
use crate::output::report;
use crate::state::State;
use crate::state::generation;
use crate::state::held_back;
use crate::state::layout;
use crate::state::pending;
use crate::state::scandir::ScanSync;
use crate::state::txn_log::TxnKind;
use crate::stock;
use crate::stock::held_back::HeldBack;
use crate::stock::stat_cache::StatCache;
use crate::sys::failpoint;

#[derive(Debug, Clone, Default)]
pub(crate) struct CommitOptions {
    /// How long to wait for the manager lock.
    pub wait: Duration,
    /// How to treat held update locks of services to stop or restart.
    pub locks: LockPolicy,
    /// `--check-up SECS`: wait this long after the switch for every started
    /// or restarted service to be up; roll back if one is not.
    pub check_up: Option<Duration>,
    /// `--restart NAME…`: services to restart even though unchanged.
    pub restart: Vec<String>,
    /// `-m TEXT`: the note stored in the new generation.
    pub note: Option<String>,
    /// `--allow-stop-all`: go ahead even if every live service would stop.
    pub allow_stop_all: bool,
    /// `--changed PATH…` / `--changed-from FILE`: read only the services
    /// these paths name (docs/performance.md#hints); `None`: the whole stock.
    pub changed: Option<Vec<std::path::PathBuf>>,
}

/// What a commit did.
#[derive(Debug)]
pub(crate) struct Committed {
    /// The generation now live.
    pub generation: u64,
    /// The generation live before, if any.
    pub previous: Option<u64>,
    /// The live generation already matched the stock: nothing switched.
    pub up_to_date: bool,
    /// The plan from `previous` to `generation`.
    pub plan: Plan,
    /// What changed in the scan directory.
    pub scandir: ScanSync,
    /// How many services `generation` has.
    pub services: usize,
    /// The stock services left out for their problems (their live version
    /// stays); recorded for `status`.
    pub held_back: Vec<HeldBack>,
}

/// Commits the stock; a run deferred with exit 75 records a pending commit
/// (`<state>/pending`, see [`pending`]) for the next `commit` or `sync`.
pub(crate) fn commit(cfg: &Config, opts: &CommitOptions) -> Result<Committed> {
    let result = commit_now(cfg, opts);
    if let Err(err) = &result {
        // A commit a signal undid is as pending as a deferred one.
        let undone = matches!(
            err,
            Error::Interrupted {
                switched: false,
                ..
            }
        );
        if err.is_deferral() || undone {
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
            shown(&state.dir.join(layout::PENDING))
        )),
        Err(e) => report::warn(&format!("cannot record the pending commit: {}", e.chain())),
    }
}

fn commit_now(cfg: &Config, opts: &CommitOptions) -> Result<Committed> {
    let progress = Progress::start();
    stock::check_trees_exist(cfg)?;
    let state = LockedState::acquire_to_switch(cfg, State::init(cfg)?, opts.wait)?;
    // Read before the stock: a deferral recorded after this point may be
    // for files this run does not see, so it must survive this run.
    let seen_pending = pending::read(&state.dir)?;
    // Copies a capturing scan made that staging did not take.
    let _captures = stage::CaptureCleanup::new(&state);

    let (mut prepared, named) = match prepare_hinted(cfg, &state, opts, &seen_pending)? {
        Some((prepared, named)) => (prepared, Some(named)),
        None => (stage::prepare_capturing(cfg, &state, &opts.restart)?, None),
    };
    progress.phase(|| {
        format!(
            "read the stock: {} services; plan: {}",
            prepared.stock.services.len(),
            prepared.plan.counts()
        )
    });
    failpoint::hit("commit.after-scan")?;
    if let (Some(cache), None) = (&state.cache, &named) {
        match prepared.stock.cache.save(cache) {
            // Nothing after this reads it but `reread_stale_files`, which
            // reads the file back.
            Ok(()) => prepared.stock.cache.let_go(),
            Err(e) => report::debug(&format!("stat cache not saved: {}", e.chain())),
        }
    }
    let previous = prepared.live.as_ref().map(|g| g.generation);
    refuse_stop_all(&prepared, opts)?;
    super::restore::restore_reused(cfg, &state, &prepared, opts.locks)?;
    if let (true, Some(live)) = (prepared.plan.is_noop(), &prepared.live) {
        if opts.note.is_some() {
            report::warn(&format!(
                "nothing to commit: the note was not stored (generation {} stays live)",
                live.generation
            ));
        }
        // Nothing to switch; still repair the scan directory if it drifted.
        let scandir = repair::repair_scandir(cfg, &state, live)?;
        let (generation, services) = (live.generation, live.services.len());
        pending::clear_if_unchanged(&state.dir, &seen_pending)?;
        record_held_back(&state, &prepared.stock.held_back)?;
        return Ok(Committed {
            generation,
            previous,
            up_to_date: true,
            plan: prepared.plan,
            scandir,
            services,
            held_back: prepared.stock.held_back,
        });
    }
    let note = opts.note.as_deref();
    let generation = match stage_or_reuse(cfg, &state, &prepared, note, &progress) {
        Err(err @ Error::StockBusy { .. }) if !cfg.rehash => {
            prepared = reread_stale_files(cfg, &state, opts, prepared, err)?;
            stage_or_reuse(cfg, &state, &prepared, note, &progress)?
        }
        other => other?,
    };
    let scandir = switch_to(cfg, &state, &prepared, generation, opts, &progress)?;
    after_switch_records(&state, generation, &seen_pending, &prepared.stock.held_back)?;
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
    Ok(Committed {
        generation,
        previous,
        up_to_date: false,
        services: prepared.target.len(),
        held_back: prepared.stock.held_back,
        plan: prepared.plan,
        scandir,
    })
}

/// With `--changed`: the stock read below the floor, and the services
/// read (docs/performance.md#hints). `None` when there are no hints, or a
/// full scan is due anyway: with no live generation to take the other
/// services from, or a pending commit (which may be for any file).
fn prepare_hinted(
    cfg: &Config,
    state: &LockedState,
    opts: &CommitOptions,
    seen_pending: &pending::Seen,
) -> Result<Option<(Prepared, std::collections::BTreeSet<String>)>> {
    let Some(changed) = &opts.changed else {
        return Ok(None);
    };
    if seen_pending.is_some() {
        report::info("a commit is pending: reading the whole stock, not only the changed paths");
        return Ok(None);
    }
    if state.live()?.is_none() {
        report::info("no generation is live yet: reading the whole stock");
        return Ok(None);
    }
    let hinted = stock::hints::services_of(cfg, changed);
    report::debug(&format!(
        "{} changed path(s) name {} service(s); {} name none (outside the stock trees and \
         `restart_on` paths) and are ignored",
        changed.len(),
        hinted.services.len(),
        hinted.ignored
    ));
    for path in &hinted.relative_to_cwd {
        report::warn(&format!(
            "--changed {}: a relative path is taken from / (as pacman gives them), where it \
             names no service; from this directory it would: pass it absolute",
            crate::model::shown::shown(path.as_os_str())
        ));
    }
    let (mut prepared, named) = stage::prepare_hinted(cfg, state, &hinted.services)?;
    // The services not read keep what the last commit said of them.
    let mut held: Vec<HeldBack> = held_back::load(&state.dir)
        .into_iter()
        .filter(|h| !named.contains(&h.service))
        .collect();
    held.append(&mut prepared.stock.held_back);
    held.sort_by(|a, b| a.service.cmp(&b.service));
    prepared.stock.held_back = held;
    Ok(Some((prepared, named)))
}

/// A copy found a file whose content is not the scanned hash (`err`, exit
/// 75). If the stat cache gave that hash for a file whose timestamps did
/// not move (written through a shared mapping), the cache lied, not the
/// stock: drop those records, save the cache, and read the stock again
/// (docs/security.md#a-stale-stat-cache). Else a writer is at work: `err`.
fn reread_stale_files(
    cfg: &Config,
    state: &LockedState,
    opts: &CommitOptions,
    mut prepared: Prepared,
    err: Error,
) -> Result<Prepared> {
    let stale = stage::stale_cache_records(state, &prepared)?;
    if stale.is_empty() {
        return Err(err);
    }
    report::warn(&format!(
        "the stat cache was stale for {} file(s) whose content changed behind unchanged \
         timestamps (written through a shared mapping?); their records are dropped and \
         the stock is read again",
        stale.len()
    ));
    prepared.stock.cache = std::mem::take(&mut prepared.stock.cache).reloaded(state.cache.as_ref());
    prepared.stock.cache.forget(&stale);
    let save = |cache: &StatCache| state.cache.as_ref().map_or(Ok(()), |dir| cache.save(dir));
    let again = match save(&prepared.stock.cache) {
        Ok(()) => stage::prepare_restarting(cfg, Some(&**state), &opts.restart)?,
        Err(e) => {
            // The stale records are still on disk: read every file.
            report::debug(&format!("stat cache not saved: {}", e.chain()));
            let cfg = Config {
                rehash: true,
                ..cfg.clone()
            };
            stage::prepare_restarting(&cfg, Some(&**state), &opts.restart)?
        }
    };
    if let Err(e) = save(&again.stock.cache) {
        report::debug(&format!("stat cache not saved: {}", e.chain()));
    }
    Ok(again)
}

/// Refuses a commit that would stop every live service and keep none
/// (most often a stock path that is wrong or empty), unless
/// `--allow-stop-all` says so.
fn refuse_stop_all(prepared: &Prepared, opts: &CommitOptions) -> Result<()> {
    let counts = prepared.plan.counts();
    if opts.allow_stop_all || !counts.stops_everything() {
        return Ok(());
    }
    Err(Error::StopsEverything {
        live: counts.stop,
        stock: prepared.stock.services.len(),
        trees: prepared.stock.trees.clone(),
    })
}

/// Records what this commit held back for `status`; a service still being
/// written (`*.dpkg-new`) also records a pending commit, so that `sync` or
/// the next commit takes it once the package manager is done.
/// The bookkeeping after a switch: the stock this run read is live, so a
/// deferral recorded before it is done, and the held-back services are
/// recorded for `status`. The switch is done: a failure here is exit 1
/// naming the step, not 74, "nothing changed" (docs/cli.md#exit-codes).
fn after_switch_records(
    state: &State,
    generation: u64,
    seen_pending: &pending::Seen,
    held: &[HeldBack],
) -> Result<()> {
    let after = |what: &str, e: Error| Error::AfterSwitch {
        generation,
        what: what.to_string(),
        source: Some(Box::new(e)),
    };
    pending::clear_if_unchanged(&state.dir, seen_pending).map_err(|e| {
        after(
            "the record of a deferred commit was not removed; the next commit or `sync` removes it",
            e,
        )
    })?;
    record_held_back(state, held).map_err(|e| {
        after(
            "the held-back services were not recorded for `status`; the next commit records them",
            e,
        )
    })
}

fn record_held_back(state: &State, held: &[HeldBack]) -> Result<()> {
    held_back::save(&state.dir, held)?;
    let busy: Vec<String> = held
        .iter()
        .filter(|h| h.transient)
        .map(|h| shown(&h.service).to_string())
        .collect();
    if !busy.is_empty() {
        let reason = format!("held back while being written: {}", busy.join(", "));
        pending::record(&state.dir, &reason)?;
        report::info(&format!(
            "{} held back while being written; recorded in {} for the next `commit` or `sync`",
            busy.join(", "),
            shown(&state.dir.join(layout::PENDING))
        ));
    }
    Ok(())
}

/// The generation to switch to: one an earlier attempt left staged with
/// exactly the stock's services, or a newly staged one.
fn stage_or_reuse(
    cfg: &Config,
    state: &LockedState,
    prepared: &Prepared,
    note: Option<&str>,
    progress: &Progress,
) -> Result<u64> {
    let target = prepared.target.clone();
    let started = Instant::now();
    // A staged generation is reused only with the same note: a
    // generation never changes once published.
    let reusable = match stage::reusable_generation(state, prepared.live.as_ref(), &target)? {
        Some(n) if generation::load(state, n)?.note.as_deref() == note => Some(n),
        _ => None,
    };
    let generation = match reusable {
        Some(n) => {
            report::debug(&format!("reusing staged generation {n}"));
            n
        }
        None => stage::stage_generation(
            cfg,
            state,
            prepared,
            target,
            note.map(str::to_string),
            progress,
        )?,
    };
    report::debug(&format!(
        "generation {generation} staged in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    ));
    Ok(generation)
}

/// Switches `live` to the staged `generation` (a commit transaction).
fn switch_to(
    cfg: &Config,
    state: &LockedState,
    prepared: &Prepared,
    generation: u64,
    opts: &CommitOptions,
    progress: &Progress,
) -> Result<ScanSync> {
    let started = Instant::now();
    progress.phase(|| format!("generation {generation} staged; switching"));
    let scandir = switch::run(
        cfg,
        state,
        &Switch {
            kind: TxnKind::Commit,
            from: prepared.live.as_ref().map(|g| g.generation),
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
    Ok(scandir)
}

/// The health gate: waits for the started and restarted services of `plan`
/// (now live in `generation`); if one is not up in time, switches back to
/// `previous` through the same transaction machinery and fails with
/// [`Error::RolledBack`] (exit 3), naming the service and why.
fn gate(
    cfg: &Config,
    state: &LockedState,
    plan: &Plan,
    generation: u64,
    previous: Option<u64>,
    timeout: Duration,
    locks: LockPolicy,
) -> Result<()> {
    let Some(bad) = health::check_up(cfg, state, plan, timeout)? else {
        return Ok(());
    };
    let failed = NotUp {
        service: bad.name.clone(),
        timeout,
        generation,
        why: bad.why.clone(),
    };
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
    let old = generations::require_switchable(state, previous, &new)?;
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
    .map_err(|e| match e {
        // The rollback was completed before a signal ended the run.
        Error::Interrupted { switched: true, .. } => e,
        e => Error::AfterSwitch {
            generation,
            what: format!("{failed}, and rolling back to generation {previous} failed"),
            source: Some(Box::new(e)),
        },
    })?;
    Err(Error::RolledBack {
        not_up: failed,
        live: previous,
    })
}
