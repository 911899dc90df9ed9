//! `history`: every finished transaction from `history.log`
//! ([`crate::state::history`]), oldest first: when, who, what kind, from ->
//! to, what changed, how it ended, and the note of the generation it made.
//! Takes no lock and writes nothing, so any user who can read the state
//! can run it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Output, table};
use crate::config::Config;
use crate::error::Result;
use crate::output::report;
use crate::state::State;
use crate::state::generation;
use crate::state::history::{self, HistoryEntry};

#[derive(Debug, Serialize)]
struct HistoryRow {
    #[serde(flatten)]
    entry: HistoryEntry,
    /// A commit a `--check-up` then switched away from (the next
    /// transaction is its auto-rollback).
    rolled_back_by_check_up: bool,
    /// The note of the generation switched to, if it has one and still exists.
    note: Option<String>,
}

pub(crate) fn history(cfg: &Config) -> Result<Output> {
    let Some(state) = State::open_current(cfg)? else {
        return Ok(Output::new(
            &Vec::<HistoryRow>::new(),
            "no history yet\n".into(),
        ));
    };
    let (entries, unreadable) = history::read(&state.dir)?;
    if unreadable > 0 {
        report::warn(&format!(
            "{unreadable} line(s) of {} are not history lines and were skipped",
            state.dir.join(crate::state::layout::HISTORY).display()
        ));
    }
    let mut notes: BTreeMap<u64, Option<String>> = BTreeMap::new();
    let mut rows = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let rolled_back_by_check_up = entry.kind == "commit"
            && entry.outcome == "done"
            && entries
                .get(i + 1)
                .is_some_and(|next| next.kind == "auto-rollback" && next.from == Some(entry.to));
        let note = notes
            .entry(entry.to)
            .or_insert_with(|| generation::load(&state, entry.to).ok().and_then(|m| m.note))
            .clone();
        rows.push(HistoryRow {
            entry: entry.clone(),
            rolled_back_by_check_up,
            note,
        });
    }
    let human = if rows.is_empty() {
        "no history yet\n".to_string()
    } else {
        render(&rows)
    };
    Ok(Output::new(&rows, human))
}

fn render(rows: &[HistoryRow]) -> String {
    let mut cells = vec![
        [
            "TIME", "KIND", "GEN", "CHANGES", "OUTCOME", "UID", "PID", "COMMAND", "NOTE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let unknown = || "?".to_string();
    for r in rows {
        let e = &r.entry;
        cells.push(vec![
            e.time.clone(),
            e.kind.clone(),
            format!(
                "{} -> {}",
                e.from.map_or_else(|| "-".to_string(), |n| n.to_string()),
                e.to
            ),
            format!("+{} ~{} -{}", e.start, e.restart, e.stop),
            outcome(r),
            e.uid.map_or_else(unknown, |u| u.to_string()),
            e.pid.map_or_else(unknown, |p| p.to_string()),
            e.command.as_deref().map_or_else(unknown, plain),
            r.note.as_deref().map_or_else(String::new, plain),
        ]);
    }
    table(&cells)
}

/// How a transaction ended, in words.
fn outcome(r: &HistoryRow) -> String {
    let mut out = match r.entry.outcome.as_str() {
        "done" if r.rolled_back_by_check_up => "rolled back by --check-up".to_string(),
        "undone" => "undone (nothing switched)".to_string(),
        other => plain(other),
    };
    if r.entry.forced > 0 {
        out.push_str(&format!(", forced past {} lock(s)", r.entry.forced));
    }
    out
}

/// Text read from a file, with control characters escaped so that it
/// cannot move the cursor or end a table row.
fn plain(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}
