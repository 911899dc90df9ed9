//! `list`: the generations, newest last, the live one marked, with what
//! each changed from its parent, what became of it (never live, failed
//! `--check-up`, pinned) from `history.log` and `<state>/pinned`, and its
//! note. Takes no lock (every published file is immutable).

use serde::Serialize;

use super::{Output, table};
use crate::config::Config;
use crate::error::Result;
use crate::format::manifest::GenerationManifest;
use crate::model::plan::Counts;
use crate::output::report;
use crate::state::State;
use crate::state::generation;
use crate::state::history;
use crate::state::pinned;
use crate::state::summary::{self, Summary};

#[derive(Debug, Serialize)]
struct ListRow {
    generation: u64,
    live: bool,
    created: String,
    parent: Option<u64>,
    services: usize,
    /// What changed from the parent (none when the parent is gone or
    /// there is none).
    changes: Option<Counts>,
    /// No transaction ever switched to it (staged by a commit that was
    /// deferred or undone). False when the history does not reach back to
    /// it, or there is none.
    never_live: bool,
    /// A `--check-up` found a service of it not up and switched back.
    failed_check_up: bool,
    /// Kept from gc by `pin`.
    pinned: bool,
    /// The note of `commit -m`.
    note: Option<String>,
}

pub(crate) fn list(cfg: &Config) -> Result<Output> {
    let Some(state) = State::open_current(cfg)? else {
        return Ok(Output::new(
            &Vec::<ListRow>::new(),
            "no generations yet\n".into(),
        ));
    };
    let live = state.live()?;
    // The marks are extras: a history that cannot be read costs them, not
    // the list.
    let (entries, _) = history::read(&state.dir).unwrap_or_else(|e| {
        report::warn(&format!(
            "the history cannot be read, so generations are not marked: {}",
            e.chain()
        ));
        (Vec::new(), 0)
    });
    let pins = pinned::read(&state.dir)?;
    // One manifest at a time, plus its parent: with 100,000 services a
    // manifest costs ≈ 20 MiB in memory, so holding every generation's
    // would grow with the history (docs/performance.md#100000-services).
    // A generation's summary, when it has one, holds all a row needs: no
    // manifest is parsed (docs/performance.md#status-and-list-at-100000-services).
    let numbers = generation::list(&state)?;
    let mut rows: Vec<ListRow> = Vec::with_capacity(numbers.len());
    let mut previous: Option<GenerationManifest> = None;
    for &n in &numbers {
        let s = match summary::load(&state, n) {
            Some(s) => s,
            None => {
                let (s, m) = summarize(&state, &numbers, n, previous.take())?;
                previous = Some(m);
                s
            }
        };
        let fate = history::fate(&entries, n);
        rows.push(ListRow {
            generation: n,
            live: Some(n) == live,
            created: s.created,
            parent: s.parent,
            services: s.services,
            // From the parent only while it is on disk, as without summaries.
            changes: s
                .changes
                .filter(|_| s.parent.is_some_and(|p| numbers.binary_search(&p).is_ok())),
            never_live: history_covers(&entries, n) && !fate.went_live && Some(n) != live,
            failed_check_up: fate.failed_check_up,
            pinned: pins.contains(&n),
            note: s.note,
        });
    }
    let human = if rows.is_empty() {
        "no generations yet\n".to_string()
    } else {
        render(&rows)
    };
    Ok(Output::new(&rows, human))
}

/// The summary of generation `n`, which has none, from its manifest and
/// its parent's (`previous` when that is the parent; loaded otherwise,
/// when on disk); returns the manifest too, for the next generation.
fn summarize(
    state: &State,
    numbers: &[u64],
    n: u64,
    previous: Option<GenerationManifest>,
) -> Result<(Summary, GenerationManifest)> {
    let m = generation::load(state, n)?;
    let parent = match (m.parent, previous) {
        (Some(p), Some(q)) if q.generation == p => Some(q),
        (Some(p), _) if numbers.binary_search(&p).is_ok() => Some(generation::load(state, p)?),
        _ => None,
    };
    Ok((Summary::of(&m, parent.as_ref()), m))
}

/// Whether the history tells of generation `n` at all: it begins with the
/// first commit ever, or `n` is newer than the generation live when it
/// begins (a history cut short by hand says nothing of what came before).
fn history_covers(entries: &[history::HistoryEntry], n: u64) -> bool {
    entries
        .first()
        .is_some_and(|first| first.from.is_none_or(|from| n > from))
}

fn render(rows: &[ListRow]) -> String {
    let mut cells = vec![
        [
            "", "GEN", "CREATED", "PARENT", "SERVICES", "CHANGES", "STATUS", "NOTE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in rows {
        let mut status = Vec::new();
        if r.live {
            status.push("live");
        }
        if r.never_live {
            status.push("never live");
        }
        if r.failed_check_up {
            status.push("failed --check-up");
        }
        if r.pinned {
            status.push("pinned");
        }
        cells.push(vec![
            if r.live { "*".into() } else { String::new() },
            r.generation.to_string(),
            r.created.clone(),
            r.parent.map_or_else(|| "-".into(), |p| p.to_string()),
            r.services.to_string(),
            r.changes.map_or_else(
                || "-".into(),
                |c| format!("+{} ~{} -{}", c.start, c.restart, c.stop),
            ),
            status.join(", "),
            r.note.as_deref().map_or_else(String::new, escaped),
        ]);
    }
    table(&cells)
}

/// A note with any control character escaped (a note is one line, but the
/// manifest is a file that could have been edited by hand).
fn escaped(text: &str) -> String {
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
