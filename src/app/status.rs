//! `status`: a report of the live generation, a pending or interrupted
//! transaction, the locks and pins held, and the store's disk use with what
//! `gc` would free. Takes no lock (every published file is immutable and
//! `live` changes by one atomic rename).

use serde::Serialize;

use super::Output;
use crate::config::{Config, Supervisor};
use crate::engine::gc;
use crate::error::Result;
use crate::format::manifest::GenerationManifest;
use crate::locks::holders::{self, LockHolder};
use crate::locks::manager;
use crate::locks::pin;
use crate::locks::update;
use crate::model::shown::{shown, terminal_safe};
use crate::state::State;
use crate::state::generation;
use crate::state::held_back;
use crate::state::layout;
use crate::state::pending;
use crate::state::summary;
use crate::state::txn_log;
use crate::state::usage;
use crate::stock::held_back::HeldBack;
use crate::sys::process::{Liveness, ProcessSignature};

#[derive(Debug, Serialize)]
struct Interrupted {
    id: String,
    kind: String,
    from: Option<u64>,
    to: u64,
    phase: txn_log::Phase,
    holder: ProcessSignature,
    holder_liveness: Liveness,
}

/// A signature read from disk and whether that very process still runs.
#[derive(Debug, Serialize)]
struct Recorded {
    #[serde(flatten)]
    process: ProcessSignature,
    liveness: Liveness,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    state: String,
    live: Option<u64>,
    created: Option<String>,
    services: usize,
    generations: Vec<u64>,
    interrupted: Option<Interrupted>,
    /// A transaction in progress: its log exists and the process that
    /// writes it still runs, holding the manager lock (docs/json.md#status).
    running: Option<Interrupted>,
    /// Staging leftovers (`.tmp-*` in the state directory): a running
    /// transaction's work, or what a killed one left for the next run's
    /// sweep.
    staging_leftovers: usize,
    /// Services of the live generation that their supervisor keeps down
    /// (want down): stopped by hand, or left down by a killed transaction.
    down: Vec<String>,
    /// Damage found in the rollback log, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    log_error: Option<String>,
    /// The recorded holder of the manager lock, when it is held and the
    /// record names the very process that runs (pid and start time match).
    manager_lock: Option<ProcessSignature>,
    manager_lock_held: bool,
    /// Processes holding the manager lock, from /proc (the truth).
    manager_lock_holders: Vec<LockHolder>,
    /// What `.lock` records, with the liveness of that exact process.
    #[serde(skip_serializing_if = "Option::is_none")]
    manager_lock_recorded: Option<Recorded>,
    /// Held update locks and their holders.
    update_locks: Vec<update::LockStatus>,
    /// Store objects pinned by programs started with `exec`.
    pins: Vec<pin::PinStatus>,
    /// A commit deferred with exit 75 that the next `commit` or `sync`
    /// applies: the marker's text.
    pending: Option<String>,
    /// Stock services the last commit held back, and why, until a commit
    /// takes them (docs/json.md#status).
    held_back: Vec<HeldBack>,
    /// Disk use of the store, and what `gc` would free now.
    store: Option<StoreUse>,
}

#[derive(Debug, Serialize)]
struct StoreUse {
    objects: usize,
    bytes: u64,
    /// With the configured `keep_generations`.
    gc_generations: usize,
    gc_objects: usize,
    gc_bytes: u64,
    /// How the numbers were got: `recorded` sums what commits recorded
    /// (generation summaries, `store-usage.log`), `measured` read every
    /// store entry and kept manifest (`status --usage`).
    counted: Counted,
    /// Objects whose disk use this run measured: every one when
    /// `measured`, otherwise those without a record (made by an older
    /// version).
    measured_objects: usize,
}

/// Where the numbers of [`StoreUse`] come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Counted {
    Recorded,
    Measured,
}

/// The store's objects and bytes, and what `gc` would remove, from what
/// commits recorded: a file of a few numbers per generation and a line per
/// object, not a stat of every entry nor a parse of every kept manifest
/// (docs/performance.md#status-and-list-at-100000-services). Objects and
/// generations without a record are measured and parsed. The three reads
/// that grow with the store — its listing, the ledger and the one
/// manifest — run side by side
/// (docs/performance.md#status-and-check-at-100000-services).
fn recorded_store_use(cfg: &Config, state: &State) -> Result<StoreUse> {
    let kept = gc::kept_generations(state, cfg.keep_generations.max(1), None)?;
    let (referenced, (listing, ledger)) = rayon::join(
        || summary::referenced(state, &kept.on_disk),
        || rayon::join(|| state.store.names(), || usage::Ledger::read(&state.dir)),
    );
    let (referenced, listing) = (referenced?, listing?);
    let plan = gc::mark_store(cfg, state, &kept, &referenced, &listing)?;
    drop(referenced);
    let recorded = ledger.objects();
    let mut measured = std::collections::HashMap::new();
    let mut use_of = |object: &str| -> Result<u64> {
        if let Some(bytes) = recorded.get(object).or_else(|| measured.get(object)) {
            return Ok(*bytes);
        }
        let bytes = usage::measure(&state.store, object)?;
        measured.insert(object.to_string(), bytes);
        Ok(bytes)
    };
    // `listing` is sorted: an object's manifest finds its object just
    // before it (or by a binary search), not through a set of 200,000 names.
    let listed = |name: &str, previous: &str| {
        name == previous
            || listing
                .binary_search_by(|n| n.as_encoded_bytes().cmp(name.as_bytes()))
                .is_ok()
    };
    let (mut objects, mut bytes, mut gc_bytes) = (0, 0, 0);
    let mut previous = "";
    for name in listing.iter().filter_map(|n| n.to_str()) {
        if layout::split_object_name(name).is_some() {
            objects += 1;
            bytes += use_of(name)?;
        } else if name
            .strip_suffix(layout::OBJECT_MANIFEST_SUFFIX)
            .is_some_and(|object| listed(object, previous))
        {
            // Counted with its object.
        } else {
            bytes += state
                .store
                .disk_usage(name, &mut std::collections::HashSet::new())?;
        }
        previous = name;
    }
    for object in &plan.removed_objects {
        gc_bytes += use_of(object)?;
    }
    Ok(StoreUse {
        objects,
        bytes,
        gc_generations: plan.removed_generations.len(),
        gc_objects: plan.removed_objects.len(),
        gc_bytes,
        counted: Counted::Recorded,
        measured_objects: measured.len(),
    })
}

/// Counts the store's objects and bytes, and what `gc` would remove, by
/// reading everything: every entry of every object lstat-ed (hard links
/// counted once), every kept generation's manifest parsed.
fn measured_store_use(cfg: &Config, state: &State) -> Result<StoreUse> {
    // `mark` reads the rollback log itself (the caller skips this when the
    // log is damaged).
    let plan = gc::mark(cfg, state, cfg.keep_generations.max(1), None)?;
    let mut seen = std::collections::HashSet::new();
    let mut gc_bytes = 0;
    for object in &plan.removed_objects {
        gc_bytes += state.store.disk_usage(object, &mut seen)?;
        gc_bytes += state
            .store
            .disk_usage(layout::object_manifest_name(object), &mut seen)?;
    }
    let mut objects = 0;
    let mut bytes = gc_bytes;
    for name in state.store.names()? {
        let is_object = name.to_str().and_then(layout::split_object_name).is_some();
        objects += usize::from(is_object);
        bytes += state.store.disk_usage(&name, &mut seen)?;
    }
    Ok(StoreUse {
        measured_objects: objects,
        objects,
        bytes,
        gc_generations: plan.removed_generations.len(),
        gc_objects: plan.removed_objects.len(),
        gc_bytes,
        counted: Counted::Measured,
    })
}

/// Bytes as a short human size (binary units).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What `status` shows of the live generation: from its summary when it
/// has one, and its manifest only when something needs the service names
/// (asking a supervisor which are down) or there is no summary.
struct LiveView {
    number: u64,
    created: String,
    services: usize,
    manifest: Option<GenerationManifest>,
}

impl LiveView {
    fn read(cfg: &Config, state: &State, n: u64) -> Result<LiveView> {
        let summary = summary::load(state, n);
        let names_needed = cfg.supervisor != Supervisor::None;
        let manifest = if summary.is_none() || names_needed {
            Some(generation::load(state, n)?)
        } else {
            None
        };
        let (created, services) = match (&summary, &manifest) {
            (Some(s), _) => (s.created.clone(), s.services),
            (None, Some(m)) => (m.created.clone(), m.services.len()),
            (None, None) => (String::new(), 0),
        };
        Ok(LiveView {
            number: n,
            created,
            services,
            manifest,
        })
    }
}

pub(crate) fn status(cfg: &Config, measure: bool) -> Result<Output> {
    let Some(state) = State::open_current(cfg)? else {
        return not_initialized(cfg);
    };
    let live = state
        .live()?
        .map(|n| LiveView::read(cfg, &state, n))
        .transpose()?;
    let report = gather(cfg, &state, live.as_ref(), measure)?;
    let mut h = String::new();
    h.push_str(&format!("state:        {}\n", shown(&report.state)));
    match &live {
        Some(l) => h.push_str(&format!(
            "live:         generation {}, created {}, {} services\n",
            l.number, l.created, l.services
        )),
        None => h.push_str("live:         none (run `svcdir-update commit`)\n"),
    }
    h.push_str(&format!(
        "generations:  {} ({})\n",
        report.generations.len(),
        report
            .generations
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    render_transaction(&report, &mut h);
    render_pending(&report, &mut h);
    for held in &report.held_back {
        h.push_str(&format!("held back:    {}\n", held.describe()));
    }
    if let Some(s) = &report.store {
        h.push_str(&format!(
            "store:        {} objects, {}; gc would free {} generation(s), {} object(s), {}\n",
            s.objects,
            human_size(s.bytes),
            s.gc_generations,
            s.gc_objects,
            human_size(s.gc_bytes)
        ));
        h.push_str(match s.counted {
            Counted::Recorded => {
                "              (as commits recorded them; `status --usage` measures)\n"
            }
            Counted::Measured => "              (measured)\n",
        });
    }
    render_locks(&report, &mut h);
    Ok(Output::new(&report, h))
}

/// The report when there is no state directory yet.
fn not_initialized(cfg: &Config) -> Result<Output> {
    let report = StatusReport {
        state: cfg.state.display().to_string(),
        live: None,
        created: None,
        services: 0,
        generations: vec![],
        interrupted: None,
        running: None,
        staging_leftovers: 0,
        down: vec![],
        log_error: None,
        manager_lock: None,
        manager_lock_held: false,
        manager_lock_holders: vec![],
        manager_lock_recorded: None,
        update_locks: update::held(cfg)?,
        pins: vec![],
        pending: None,
        held_back: vec![],
        store: None,
    };
    let human = format!(
        "state:        {} (not initialized; run `svcdir-update commit`)\n",
        shown(&cfg.state)
    );
    Ok(Output::new(&report, human))
}

/// Reads everything `status` reports, in the order the files are read.
fn gather(
    cfg: &Config,
    state: &State,
    live: Option<&LiveView>,
    measure: bool,
) -> Result<StatusReport> {
    let (interrupted, log_error) = match txn_log::read(&state.dir) {
        Ok(log) => (
            log.map(|l| Interrupted {
                id: l.id,
                kind: l.kind.to_string(),
                from: l.from,
                to: l.to,
                phase: l.phase,
                holder_liveness: l.holder.liveness(),
                holder: l.holder,
            }),
            None,
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let held = manager::is_held(&state.dir);
    let lock_holders = if held {
        manager::holders(&state.dir)
    } else {
        Vec::new()
    };
    let (running, interrupted) = split_running(interrupted, held, &lock_holders);
    // The two halves that grow with the services, side by side: the store
    // and the update locks (a lock file per service).
    let (store, update_locks) = rayon::join(
        || store_report(cfg, state, measure, log_error.is_some()),
        || update::held(cfg),
    );
    let (store, update_locks) = (store?, update_locks?);
    Ok(StatusReport {
        state: state.path().display().to_string(),
        live: live.map(|l| l.number),
        created: live.map(|l| l.created.clone()),
        services: live.map_or(0, |l| l.services),
        generations: generation::list(state)?,
        interrupted,
        running,
        staging_leftovers: staging_leftovers(state)?,
        down: left_down(cfg, state, live.and_then(|l| l.manifest.as_ref())),
        log_error,
        manager_lock: if held {
            manager::read_holder(&state.dir)
        } else {
            None
        },
        manager_lock_held: held,
        manager_lock_holders: lock_holders,
        manager_lock_recorded: manager::read_recorded(&state.dir).map(|process| Recorded {
            liveness: process.liveness(),
            process,
        }),
        update_locks,
        pins: pin::held(cfg)?,
        pending: pending::read(&state.dir)?
            .map(|b| String::from_utf8_lossy(&b).trim_end().to_string()),
        held_back: held_back::load(&state.dir),
        store,
    })
}

/// The `store` of the report: recorded or `measure`d, none when the
/// rollback log is damaged (gc could not say what it keeps) or, for a
/// user other than root, when the store cannot be read.
fn store_report(
    cfg: &Config,
    state: &State,
    measure: bool,
    log_damaged: bool,
) -> Result<Option<StoreUse>> {
    if log_damaged {
        return Ok(None);
    }
    let used = if measure {
        measured_store_use(cfg, state)
    } else {
        recorded_store_use(cfg, state)
    };
    match used {
        Ok(used) => Ok(Some(used)),
        // A supervisor's runtime directories (0700) inside live objects
        // are not for other users to walk: the rest is still reported.
        Err(e) if !crate::sys::fs::is_root() => {
            crate::output::report::warn(&format!(
                "store use not measured: {}; run `svcdir-update status` as root",
                e.chain()
            ));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A logged transaction is running, not interrupted, while the manager
/// lock is held and its writer is the very process the log names (pid and
/// start time), or — when `/proc` cannot name the holders (not root) — a
/// svcdir-update process with that signature still runs.
fn split_running(
    logged: Option<Interrupted>,
    held: bool,
    holders: &[LockHolder],
) -> (Option<Interrupted>, Option<Interrupted>) {
    let Some(txn) = logged else {
        return (None, None);
    };
    let by_holder = holders
        .iter()
        .any(|h| h.svcdir_update && h.process.same_process(&txn.holder));
    let unnamed = holders.is_empty() && txn.holder_liveness == Liveness::Running;
    if held && (by_holder || unnamed) {
        (Some(txn), None)
    } else {
        (None, Some(txn))
    }
}

/// How many `.tmp-*` entries the state directory holds.
fn staging_leftovers(state: &State) -> Result<usize> {
    Ok(state
        .dir
        .names()?
        .iter()
        .filter(|n| {
            n.to_str()
                .is_some_and(|n| n.starts_with(layout::TMP_PREFIX))
        })
        .count())
}

/// The live services whose supervisor is told to keep them down, asked
/// through the configured adapter (none without a supervisor), side by
/// side. A service whose supervisor cannot be asked (not root, a
/// supervisor at work) is left out: `status` reports, it does not fail.
fn left_down(cfg: &Config, state: &State, live: Option<&GenerationManifest>) -> Vec<String> {
    use rayon::prelude::*;
    let Some(live) = live else {
        return Vec::new();
    };
    let adapter = crate::supervisor::for_config(cfg);
    let live_path = state.live_path();
    let names: Vec<&String> = live.services.keys().collect();
    names
        .par_iter()
        .filter(|name| match adapter.status(&live_path.join(name)) {
            Ok(st) => st.supervised && !st.wanted(),
            Err(e) => {
                crate::output::report::debug(&format!("status of {name}: {}", e.chain()));
                false
            }
        })
        .map(|name| (*name).clone())
        .collect()
}

/// The `transaction:` line: a running one, an interrupted one, a damaged
/// log, or none.
fn render_transaction(report: &StatusReport, h: &mut String) {
    if let Some(r) = &report.running {
        h.push_str(&format!(
            "transaction:  RUNNING {} {} ({} -> {}, phase {:?}) by pid {}\n",
            r.kind,
            r.id,
            r.from.map_or_else(|| "-".into(), |n| n.to_string()),
            r.to,
            r.phase,
            r.holder.pid
        ));
        return;
    }
    match (&report.interrupted, &report.log_error) {
        (Some(i), _) => h.push_str(&format!(
            "transaction:  INTERRUPTED {} {} ({} -> {}, phase {:?}) by {} ({}); run `svcdir-update recover`\n",
            i.kind,
            i.id,
            i.from.map_or_else(|| "-".into(), |n| n.to_string()),
            i.to,
            i.phase,
            i.holder,
            i.holder_liveness
        )),
        (None, Some(e)) => h.push_str(&format!("transaction:  DAMAGED LOG: {e}\n")),
        (None, None) => match report.manager_lock_holders.iter().find(|l| l.svcdir_update) {
            // Before its log is written a commit scans and stages.
            Some(l) => h.push_str(&format!(
                "transaction:  RUNNING (pid {}, preparing: no rollback log yet)\n",
                l.process.pid
            )),
            None => h.push_str("transaction:  none\n"),
        },
    }
}

/// The `pending:` lines: when a commit was deferred and why (shortened).
fn render_pending(report: &StatusReport, h: &mut String) {
    match &report.pending {
        Some(p) => {
            // The marker is a file: its second line is the reason, and
            // whatever else it holds is not shown.
            let (when, why) = p.split_once('\n').unwrap_or((p, ""));
            let why = why.lines().next().unwrap_or_default();
            let when = when.split(" nanos").next().unwrap_or(when);
            // The whole reason (the marker keeps at most 4 KiB of it),
            // escaped: it quotes paths and commands from outside.
            let why = terminal_safe(why);
            h.push_str(&format!(
                "pending:      a commit deferred at {when}; run `svcdir-update commit`\n\
                 \x20             because: {why}\n"
            ));
        }
        None => h.push_str("pending:      none\n"),
    }
    if report.staging_leftovers > 0 {
        let busy =
            report.running.is_some() || report.manager_lock_holders.iter().any(|l| l.svcdir_update);
        let whose = if busy {
            "the running transaction's work"
        } else {
            "left by an interrupted run; the next writing command removes them"
        };
        h.push_str(&format!(
            "staging:      {} leftover(s) (.tmp-*), {whose}\n",
            report.staging_leftovers
        ));
    }
    if !report.down.is_empty() {
        h.push_str(&format!(
            "down:         {} (the supervisor keeps them down: stopped by hand, or left down \
             by a killed transaction; start them with the supervisor)\n",
            report
                .down
                .iter()
                .map(|n| shown(n).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

/// The manager lock, update locks and pins, with who holds them.
fn render_locks(report: &StatusReport, h: &mut String) {
    if !report.manager_lock_held {
        h.push_str("manager lock: free\n");
    } else if !report.manager_lock_holders.is_empty() {
        h.push_str(&format!(
            "manager lock: held by {}\n",
            holders::describe(&report.manager_lock_holders)
        ));
    } else {
        h.push_str("manager lock: held\n");
    }
    if let (true, Some(rec)) = (report.manager_lock_held, &report.manager_lock_recorded) {
        h.push_str(&format!(
            "              recorded holder {}: {}\n",
            rec.process, rec.liveness
        ));
    }
    if report.update_locks.is_empty() {
        h.push_str("update locks: none held\n");
    } else {
        h.push_str("update locks:\n");
        for l in &report.update_locks {
            h.push_str(&format!(
                "  {}: held by {}\n",
                shown(&l.service),
                holders::describe(&l.holders)
            ));
        }
    }
    if report.pins.is_empty() {
        h.push_str("pins:         none\n");
    } else {
        h.push_str("pins:\n");
        for p in &report.pins {
            h.push_str(&format!(
                "  {}: pinned by {}\n",
                shown(&p.object),
                holders::describe(&p.holders)
            ));
        }
    }
}
