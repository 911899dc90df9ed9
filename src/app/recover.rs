//! `recover`: finish or undo an interrupted transaction by what `live`
//! really points at (design §4.3), then sweep staging leftovers.
//!
//! [`finish_interrupted`] runs first in every writing command.

use serde::Serialize;

use super::Output;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::sys::failpoint;
use crate::sys::fs::Dir;
use crate::state::generation;
use crate::state::layout;
use crate::locks::manager::ManagerLock;
use crate::model::plan;
use crate::output::report;
use crate::state::State;
use crate::engine::switch::{self, Switch};
use crate::state::txn_log::{self, TxnKind, TxnLog};
use crate::locks::update::LockPolicy;

/// What recovery did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// `finished`, `undone`, or `none`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    pub live: Option<u64>,
    /// Staging leftovers removed.
    pub swept: Vec<String>,
}

/// Finishes or undoes an interrupted transaction, if there is one, and
/// sweeps `.tmp-*`. The caller holds the manager lock.
pub(crate) fn finish_interrupted(cfg: &Config, state: &State) -> Result<Recovery> {
    let log = txn_log::read(&state.dir)?;
    failpoint::hit("recover.start")?;
    let mut rec = Recovery {
        outcome: "none",
        ..Recovery::default()
    };
    if let Some(log) = log {
        rec.transaction = Some(log.id.clone());
        rec.outcome = resolve(cfg, state, &log)?;
        report::info(&format!(
            "recovered interrupted {} {} ({} -> {}): {}",
            log.kind,
            log.id,
            log.from.map_or_else(|| "-".into(), |n| n.to_string()),
            log.to,
            rec.outcome
        ));
    }
    failpoint::hit("recover.after-undo")?;
    rec.swept = sweep(state)?;
    failpoint::hit("recover.after-sweep")?;
    rec.live = state.live().ok().flatten();
    Ok(rec)
}

/// Decides by where `live` really points; returns the outcome.
fn resolve(cfg: &Config, state: &State, log: &TxnLog) -> Result<&'static str> {
    let live = state.live().ok().flatten().filter(|&n| {
        generation::load(state, n)
            .and_then(|m| generation::check_complete(state, &m))
            .is_ok()
    });
    match live {
        Some(n) if n == log.to => {
            switch::finish(cfg, state, log)?;
            Ok("finished")
        }
        Some(n) if Some(n) == log.from => {
            switch::undo(cfg, state, log)?;
            Ok("undone")
        }
        _ => {
            // `live` is missing, empty or points elsewhere (a link lost in a
            // power cut). Choose the generation the log proves complete:
            // the new one if the switch was under way, else the old one.
            let to_ok = generation::load(state, log.to)
                .and_then(|m| generation::check_complete(state, &m))
                .is_ok();
            if log.phase >= txn_log::Phase::Switching && to_ok {
                state.switch_live(log.to)?;
                switch::finish(cfg, state, log)?;
                Ok("finished")
            } else if let Some(from) = log.from {
                state.switch_live(from)?;
                switch::undo(cfg, state, log)?;
                Ok("undone")
            } else {
                // First commit ever, never switched: no generation is live.
                state.dir.remove_if_exists(layout::LIVE)?;
                state.dir.sync()?;
                switch::undo(cfg, state, log)?;
                Ok("undone")
            }
        }
    }
}

/// Removes every `.tmp-*` staging leftover. All staging happens in the
/// state directory itself (and the cache's own temp file in `cache/`), so
/// this reads two small directories, never the store.
fn sweep(state: &State) -> Result<Vec<String>> {
    let mut swept = Vec::new();
    for dir in [&state.dir, &state.cache] {
        sweep_dir(dir, &mut swept)?;
    }
    if !swept.is_empty() {
        state.dir.sync()?;
    }
    Ok(swept)
}

fn sweep_dir(dir: &Dir, swept: &mut Vec<String>) -> Result<()> {
    for name in dir.names()? {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(layout::TMP_PREFIX) {
            dir.remove_if_exists(name)?;
            swept.push(dir.join(name).display().to_string());
        }
    }
    Ok(())
}

/// `recover [--rollback]`.
pub(crate) fn recover(
    cfg: &Config,
    rollback: bool,
    wait: std::time::Duration,
    locks: LockPolicy,
) -> Result<Output> {
    let Some(state) = State::open(cfg)? else {
        let rec = Recovery {
            outcome: "none",
            ..Recovery::default()
        };
        return Ok(Output::new(
            &rec,
            "nothing to recover: no state yet\n".into(),
        ));
    };
    let _lock = ManagerLock::acquire(&state.dir, wait)?;
    let pending = txn_log::read(&state.dir)?;
    let mut rec = finish_interrupted(cfg, &state)?;
    if rollback {
        let Some(log) = pending else {
            return Err(Error::bad_input(
                "there is no interrupted transaction to roll back; use `svcdir-update rollback [GEN]`",
            ));
        };
        if let (Some(from), true) = (log.from, rec.outcome == "finished") {
            let to_m = generation::load(&state, log.to)?;
            let from_m = generation::load(&state, from)?;
            generation::check_complete(&state, &from_m)?;
            let plan = plan::make_to_generation(&to_m.services, &from_m.services, from);
            switch::run(
                cfg,
                &state,
                &Switch {
                    kind: TxnKind::Rollback,
                    from: Some(log.to),
                    to: from,
                    plan: &plan,
                    locks,
                },
            )?;
            rec.outcome = "undone";
            rec.live = Some(from);
        }
    }
    let human = match (&rec.transaction, rec.outcome) {
        (None, _) => format!(
            "nothing to recover{}\n",
            if rec.swept.is_empty() {
                String::new()
            } else {
                format!("; removed {} staging leftovers", rec.swept.len())
            }
        ),
        (Some(id), outcome) => format!(
            "transaction {id} {outcome}; generation {} is live\n",
            rec.live
                .map_or_else(|| "none".to_string(), |n| n.to_string())
        ),
    };
    Ok(Output::new(&rec, human))
}
