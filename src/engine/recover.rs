//! Recovery: finish or undo an interrupted transaction by what `live`
//! really points at (docs/design.md#recover---rollback), undo a finished one
//! on `recover --rollback`, and sweep staging leftovers.
//!
//! [`finish_interrupted`] runs first in every writing command, through
//! [`LockedState`]. This module never stages or reads the stock.

use serde::Serialize;

use super::locked::LockedState;
use super::switch::{self, Switch};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::locks::update::LockPolicy;
use crate::model::plan;
use crate::model::shown::shown;
use crate::output::progress::Counter;
use crate::output::report;
use crate::state::State;
use crate::state::generation;
use crate::state::layout;
use crate::state::txn_log::{self, TxnKind, TxnLog};
use crate::sys::failpoint;
use crate::sys::fs::Dir;

/// What became of an interrupted transaction.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    /// There was none.
    #[default]
    None,
    /// It had switched; its remaining steps were done.
    Finished,
    /// Its generation is no longer (or never was) live; its effects were undone.
    Undone,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::None => "none",
            Outcome::Finished => "finished",
            Outcome::Undone => "undone",
        })
    }
}

/// What recovery did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct Recovery {
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    pub live: Option<u64>,
    /// Staging leftovers removed.
    pub swept: Vec<String>,
    /// `live` was missing, dangling or led outside the generations with no
    /// transaction in flight (a power cut lost the link, or a hand put it
    /// elsewhere) and was pointed again at this generation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relinked_live: Option<u64>,
    /// Where `live` pointed before it was relinked (escaped); absent when
    /// the link was missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_was: Option<String>,
}

/// Finishes or undoes `log`, the interrupted transaction if there is one,
/// and sweeps `.tmp-*`.
pub(crate) fn finish_interrupted(
    cfg: &Config,
    state: &LockedState,
    log: Option<&TxnLog>,
) -> Result<Recovery> {
    failpoint::hit("recover.start")?;
    let mut rec = Recovery::default();
    if let Some(log) = log {
        rec.transaction = Some(log.id.clone());
        rec.outcome = resolve(cfg, state, log)?;
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
    relink_live(state, &mut rec)?;
    rec.live = state.live().ok().flatten();
    Ok(rec)
}

/// Decides by where `live` really points; returns the outcome.
fn resolve(cfg: &Config, state: &LockedState, log: &TxnLog) -> Result<Outcome> {
    let live = state
        .live()
        .ok()
        .flatten()
        .filter(|&n| is_complete(state, n));
    match live {
        Some(n) if n == log.to => {
            switch::finish(cfg, state, log)?;
            Ok(Outcome::Finished)
        }
        Some(n) if Some(n) == log.from => {
            switch::undo(cfg, state, log)?;
            Ok(Outcome::Undone)
        }
        _ => {
            // `live` is missing, empty or points elsewhere (a link lost in a
            // power cut). Choose the generation the log proves complete:
            // the new one if the switch was under way, else the old one.
            let to_ok = is_complete(state, log.to);
            if log.phase >= txn_log::Phase::Switching && to_ok {
                state.switch_live(log.to)?;
                switch::finish(cfg, state, log)?;
                Ok(Outcome::Finished)
            } else if let Some(from) = log.from {
                state.switch_live(from)?;
                switch::undo(cfg, state, log)?;
                Ok(Outcome::Undone)
            } else {
                // First commit ever, never switched: no generation is live.
                state.dir.remove_if_exists(layout::LIVE)?;
                state.dir.sync()?;
                switch::undo(cfg, state, log)?;
                Ok(Outcome::Undone)
            }
        }
    }
}

/// Whether generation `n` is published and complete.
fn is_complete(state: &State, n: u64) -> bool {
    // A dormant generation has no links: `live` never names one
    // (docs/design.md#dormant-generations).
    !generation::is_dormant(state, n).unwrap_or(true)
        && generation::load(state, n)
            .and_then(|m| generation::check_complete(state, &m))
            .is_ok()
}

/// With no transaction in flight, `live` must name a published generation.
/// When it is missing, dangling or leads outside the generations (a power
/// cut lost the link on a file system that wrote it late; a hand put it
/// elsewhere), it is made again: the generation the last `history.log` line
/// left live if it is complete, else the newest complete one
/// (docs/durability.md#the-switch-and-symlinks,
/// docs/security.md#a-live-link-that-leads-nowhere). Records what it did in
/// `rec`; nothing when nothing was wrong or nothing was ever live (no
/// history and no link: only an undone first commit).
fn relink_live(state: &State, rec: &mut Recovery) -> Result<()> {
    // A generation with its manifest and its links is there: two stats,
    // not a parse of 100,000 services on every writing command. A lost
    // service link in it is repaired by `sync` and a no-op `commit`
    // (generation::repair_links); a manifest that does not parse is named
    // by the command that reads it next, not "repaired" by switching to
    // another generation.
    let exists = |n: u64| {
        state
            .generations
            .try_stat(format!("{n}/{}", layout::GENERATION_MANIFEST))
            .is_ok_and(|st| st.is_some())
            && !generation::is_dormant(state, n).unwrap_or(true)
    };
    if state.live().ok().flatten().is_some_and(exists) {
        return Ok(());
    }
    let link = state.dir.try_read_link(layout::LIVE)?;
    let wanted = txn_log::last_live_in_history(&state.dir)?;
    if wanted.is_none() && link.is_none() {
        return Ok(());
    }
    let newest = || -> Result<Option<u64>> {
        Ok(generation::list(state)?
            .into_iter()
            .rev()
            .find(|&n| is_complete(state, n)))
    };
    let target = match wanted.filter(|&n| is_complete(state, n)) {
        Some(n) => Some(n),
        None => newest()?,
    };
    let was = link.as_ref().map(|l| shown(l).to_string());
    let Some(n) = target else {
        return match was {
            Some(was) => Err(Error::damaged(
                state.live_path(),
                format!(
                    "points at {was}, which is not a generation, and no generation is complete \
                     to point it at; move it away and run `svcdir-update commit`"
                ),
            )),
            None => Ok(()),
        };
    };
    state.switch_live(n)?;
    state.sync_symlinks()?;
    report::warn(&format!(
        "{} {}; pointed it at generation {n}, {}",
        shown(&state.live_path()),
        was.as_ref().map_or_else(
            || "was missing".to_string(),
            |w| format!("pointed at {w}, which is not a generation")
        ),
        match wanted {
            Some(w) if w == n => "the one history.log records as live".to_string(),
            Some(w) => format!("the newest complete one ({w}, which history.log records, is not)"),
            None => "the newest complete one".to_string(),
        }
    ));
    rec.relinked_live = Some(n);
    rec.live_was = was;
    Ok(())
}

/// `recover --rollback` after recovery finished `log`: switches back to the
/// generation it came from, as a rollback transaction. Returns the
/// generation now live, or `None` when there is nothing to switch back (the
/// transaction was undone already, or it was the first commit).
pub(crate) fn roll_back_finished(
    cfg: &Config,
    state: &LockedState,
    log: &TxnLog,
    locks: LockPolicy,
) -> Result<Option<u64>> {
    let (Some(from), Outcome::Finished) = (log.from, state.recovery().outcome) else {
        return Ok(None);
    };
    let to_m = generation::load(state, log.to)?;
    let from_m = generation::load(state, from)?;
    generation::check_complete(state, &from_m)?;
    let plan = plan::make_to_generation(&to_m.services, &from_m.services, from);
    switch::run(
        cfg,
        state,
        &Switch {
            kind: TxnKind::Rollback,
            from: Some(log.to),
            to: from,
            plan: &plan,
            locks,
        },
    )?;
    Ok(Some(from))
}

/// Removes every `.tmp-*` staging leftover. All staging happens in the
/// state directory itself (and the cache's own temp file in `cache/`), so
/// this reads two small directories, never the store.
fn sweep(state: &State) -> Result<Vec<String>> {
    let mut swept = Vec::new();
    for dir in std::iter::once(&state.dir).chain(state.cache.as_ref()) {
        sweep_dir(dir, &mut swept)?;
    }
    if !swept.is_empty() {
        state.dir.sync()?;
    }
    Ok(swept)
}

/// A leftover can be a whole staged object tree: the removals are counted
/// on a terminal (docs/cli.md#progress).
fn sweep_dir(dir: &Dir, swept: &mut Vec<String>) -> Result<()> {
    let names: Vec<String> = dir
        .names()?
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| n.starts_with(layout::TMP_PREFIX))
        .collect();
    let counter = Counter::new("recover: sweeping leftovers", names.len(), "entries");
    for name in names {
        dir.remove_if_exists(&name)?;
        counter.tick();
        swept.push(dir.join(&name).display().to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_reads_the_same_in_json_and_text() {
        for (outcome, word) in [
            (Outcome::None, "none"),
            (Outcome::Finished, "finished"),
            (Outcome::Undone, "undone"),
        ] {
            assert_eq!(serde_json::to_value(outcome).unwrap(), word);
            assert_eq!(outcome.to_string(), word);
        }
    }
}
