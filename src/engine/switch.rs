//! The switch protocol shared by commit, rollback and recovery
//! (docs/design.md#commit, steps 5–11): update locks, rollback log, stop old instances, switch
//! `live`, release the update locks, sync the scan directory, record history.
//!
//! The update locks are taken before the rollback log is written, so a
//! transaction deferred by a held lock leaves no log and changes nothing.
//! They are released after the switch and before the scan directory is
//! synced, so a new instance that takes its own lock at start-up never waits
//! for us. Before the switch, any failure undoes what was done (restarts
//! stopped instances) and leaves `live` untouched; after it, the log stays
//! until the scan directory and history are done, so `recover` can finish.
//! From the rollback log on, SIGTERM, SIGINT and SIGHUP are deferred
//! ([`signals::Deferred`]): at the next step boundary before the switch the
//! transaction is undone, after it completed, and then it exits 130
//! (docs/security.md#a-signal-during-a-transaction-finishes-or-undoes-it).

use std::time::SystemTime;

use super::locked::LockedState;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::locks::update::{self, LockPolicy};
use crate::model::plan::{Action, Plan};
use crate::output::report;
use crate::state::State;
use crate::state::history;
use crate::state::scandir::{self, ScanSync};
use crate::state::txn_log::{self, Phase, TxnKind, TxnLog, TxnService};
use crate::supervisor::{self, OldInstance};
use crate::sys::failpoint;
use crate::sys::process::ProcessSignature;
use crate::sys::signals::{self, Deferred};

/// A planned switch from the live generation to `to`.
pub(crate) struct Switch<'a> {
    pub kind: TxnKind,
    pub from: Option<u64>,
    pub to: u64,
    pub plan: &'a Plan,
    /// How held update locks are treated.
    pub locks: LockPolicy,
}

/// Runs the switch; returns what changed in the scan directory.
pub(crate) fn run(cfg: &Config, state: &LockedState, switch: &Switch<'_>) -> Result<ScanSync> {
    // The scan directory must be usable before anything is switched: a
    // missing parent or a dangling link there fails here with `live`
    // untouched, not after the switch with a half-applied exit 1.
    scandir::open(cfg)?;
    let to_stop: Vec<String> = switch
        .plan
        .to_stop()
        .into_iter()
        .map(|s| s.name.clone())
        .collect();
    let deferred = match switch.kind {
        TxnKind::Commit => format!(
            "; generation {} stays staged and the next commit reuses it",
            switch.to
        ),
        TxnKind::Rollback | TxnKind::AutoRollback => String::new(),
    };
    let locks = update::acquire_all(cfg, &to_stop, switch.locks, &deferred)?;
    // From here a signal no longer cuts the transaction between two steps.
    let signals = signals::Deferred::begin()?;
    let mut log = TxnLog {
        id: new_id(),
        kind: switch.kind,
        from: switch.from,
        to: switch.to,
        phase: Phase::Prepared,
        started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        services: switch
            .plan
            .changed()
            .map(|s| TxnService {
                name: s.name.clone(),
                action: s.action,
                from: s.from.clone(),
            })
            .collect(),
        stopped: Vec::new(),
        holder: ProcessSignature::myself(),
        overridden: locks.overridden.iter().map(|b| b.to_string()).collect(),
    };
    txn_log::write(&state.dir, &log)?;
    failpoint::hit("txn.after-write")?;

    let switched = stop_and_switch(cfg, state, &mut log, &signals);
    // Old instances are stopped and `live` is switched (or the attempt
    // failed): release before any instance starts.
    drop(locks);
    if let Err(err) = switched {
        // Still before the switch (or the rename failed): put things back.
        if state.live().ok().flatten() != Some(log.to) {
            let undone = undo(cfg, state, &log);
            if let Err(undo_err) = &undone {
                report::warn(&format!(
                    "undoing the failed transaction also failed: {}; run `svcdir-update recover`",
                    undo_err.chain()
                ));
            }
            return Err(match signals.received() {
                Some(signal) => Error::Interrupted {
                    signal,
                    generation: log.from,
                    switched: false,
                    undo_failed: undone.is_err(),
                },
                None => err,
            });
        }
        return Err(after_switch(
            log.to,
            "finishing the transaction failed",
            err,
        ));
    }
    let (sync, unperformed) = finish_and_look(cfg, state, &log, switch.plan);
    let sync = sync?;
    super::unperformed::say(unperformed);
    match signals.received() {
        Some(signal) => Err(Error::Interrupted {
            signal,
            generation: Some(log.to),
            switched: true,
            undo_failed: false,
        }),
        None => Ok(sync),
    }
}

/// [`finish`]es the transaction while another thread reads from /proc
/// whether anything performs `plan` (a warning, if not): the reading costs
/// CPU, `finish` waits on fsyncs (docs/performance.md#below-01--the-walk).
fn finish_and_look(
    cfg: &Config,
    state: &LockedState,
    log: &TxnLog,
    plan: &Plan,
) -> (Result<ScanSync>, Option<(bool, String)>) {
    let (unperformed, sync) = crate::sys::beside::beside(
        || super::unperformed::unperformed_warning(cfg, plan),
        || finish(cfg, state, log),
    );
    (sync, unperformed)
}

/// A step boundary before the switch: a deferred signal received so far
/// fails the transaction, which [`run`] then undoes.
fn check_signals(signals: &Deferred, log: &TxnLog) -> Result<()> {
    match signals.received() {
        Some(signal) => Err(Error::Interrupted {
            signal,
            generation: log.from,
            switched: false,
            undo_failed: false,
        }),
        None => Ok(()),
    }
}

/// A transaction id: time, pid and nanoseconds, so that two transactions
/// of one process in the same second (recover --rollback) differ.
fn new_id() -> String {
    let now = SystemTime::now();
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}-{}-{nanos:09}",
        humantime::format_rfc3339_seconds(now),
        std::process::id()
    )
}

fn after_switch(generation: u64, what: &str, err: Error) -> Error {
    Error::AfterSwitch {
        generation,
        what: format!("{what}; run `svcdir-update recover` to finish"),
        source: Some(Box::new(err)),
    }
}

fn stop_and_switch(
    cfg: &Config,
    state: &State,
    log: &mut TxnLog,
    signals: &Deferred,
) -> Result<()> {
    check_signals(signals, log)?;
    let sup = supervisor::for_config(cfg);
    let old: Vec<OldInstance> = log
        .services
        .iter()
        .filter(|s| matches!(s.action, Action::Restart | Action::Stop))
        .filter_map(|s| {
            Some(OldInstance {
                name: s.name.clone(),
                object: state.object_path(s.from.as_ref()?),
            })
        })
        .collect();
    if !old.is_empty() {
        log.phase = Phase::Stopping;
        // Recorded *before* any stop begins, so a crash in the middle still
        // restarts them on recovery; and only those running or meant to
        // run, so an undo never starts a service an administrator took down.
        log.stopped.extend(supervisor::wanted(sup.as_ref(), &old)?);
        txn_log::write(&state.dir, log)?;
        // Side by side, each with its own deadline: a failure names every
        // service that did not stop, and nothing is switched.
        supervisor::stop_all(sup.as_ref(), &old, cfg.max_parallel_stops)?;
    }
    failpoint::hit("txn.after-stop")?;
    check_signals(signals, log)?;
    log.phase = Phase::Switching;
    txn_log::write(&state.dir, log)?;
    state.switch_live(log.to)?;
    log.phase = Phase::Switched;
    txn_log::write(&state.dir, log)?;
    failpoint::hit("txn.after-switch")?;
    Ok(())
}

/// Finishes a switched transaction: scan directory, scanner, history, log.
/// Its errors say which step did not finish (exit 1: the generation is live).
pub(crate) fn finish(cfg: &Config, state: &LockedState, log: &TxnLog) -> Result<ScanSync> {
    let sync = sync_scandir(cfg, state, log)
        .map_err(|e| after_switch(log.to, "the scan directory was not updated", e))?;
    let close = || -> Result<()> {
        txn_log::append_history(&state.dir, &log.id, &history::line(log, "done"))?;
        failpoint::hit("txn.after-history")?;
        // `live` and the generation's links are symlinks: durable before the
        // log that could restore them goes (docs/durability.md#the-switch-and-symlinks).
        state.sync_symlinks()?;
        txn_log::remove(&state.dir)
    };
    close().map_err(|e| {
        after_switch(
            log.to,
            "its history line or the removal of its rollback log is not durable",
            e,
        )
    })?;
    Ok(sync)
}

/// The scan-directory step of [`finish`]: lock files, links, the scanner told.
fn sync_scandir(cfg: &Config, state: &LockedState, log: &TxnLog) -> Result<ScanSync> {
    let scandir = scandir::open(cfg)?;
    let with = |action: Action| -> Vec<&str> {
        log.services
            .iter()
            .filter(|s| s.action == action)
            .map(|s| s.name.as_str())
            .collect()
    };
    // Lock files for new services; `sync` and no-op commits make the rest.
    update::ensure_files(cfg, with(Action::Start))?;
    update::apply_groups(cfg)?;
    let sync = scandir::apply(
        &scandir,
        &state.live_path(),
        &with(Action::Start),
        &with(Action::Stop),
    )?;
    supervisor::for_config(cfg).notify(scandir.path())?;
    failpoint::hit("txn.after-scandir")?;
    Ok(sync)
}

/// Undoes a transaction that did not switch: restarts what it stopped.
pub(crate) fn undo(cfg: &Config, state: &LockedState, log: &TxnLog) -> Result<()> {
    let sup = supervisor::for_config(cfg);
    for name in &log.stopped {
        let Some(object) = log
            .services
            .iter()
            .find(|s| &s.name == name)
            .and_then(|s| s.from.as_ref())
        else {
            continue;
        };
        sup.restart(name, &state.object_path(object))?;
    }
    txn_log::append_history(&state.dir, &log.id, &history::line(log, "undone"))?;
    // Recovery may have re-made `live` (the old generation) before this.
    state.sync_symlinks()?;
    txn_log::remove(&state.dir)
}
