//! The commands of the CLI, one module each: orchestration over the
//! domain in [`crate::engine`] and [`crate::state`], plus rendering.
//!
//! A command returns an [`Output`]: the same result as short human text and
//! as one JSON document; `lib::run` prints the one asked for. Commands never
//! print results themselves (progress goes to stderr through `report`), and
//! never import each other: what two share lives here.

use std::time::Duration;

use crate::config::Config;
use crate::engine::commit::Committed;
use crate::locks::update::LockPolicy;
use crate::model::plan::{Action, Plan, ServiceChange};
use crate::model::shown::shown;
use crate::output::report;

pub(crate) mod check;
pub(crate) mod commit;
pub(crate) mod completions;
pub(crate) mod diff;
pub(crate) mod exec;
pub(crate) mod failpoints;
pub(crate) mod gc;
pub(crate) mod history;
pub(crate) mod init;
pub(crate) mod list;
pub(crate) mod lock;
pub(crate) mod man;
pub(crate) mod pin;
pub(crate) mod plan;
pub(crate) mod recover;
pub(crate) mod rollback;
pub(crate) mod service;
pub(crate) mod status;
pub(crate) mod sync;
pub(crate) mod verify;
pub(crate) mod verify_stock;

pub(crate) use crate::output::Output;

/// How long this run may wait for what blocks it. `--wait` is the one knob
/// for every wait of a run; without it each lock has its own configured
/// default (docs/update-locks.md).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waits {
    /// The manager lock, and the service lock of `lock`: `lock_wait`.
    pub lock: Duration,
    /// The update locks of services to stop or restart: `update_lock_wait`.
    pub update_locks: Duration,
    /// Pinned programs in `gc`: no wait.
    pub pins: Duration,
}

impl Waits {
    /// The waits of a run given `--wait` (`given`) or not.
    pub(crate) fn new(cfg: &Config, given: Option<Duration>) -> Waits {
        Waits {
            lock: given.unwrap_or(cfg.lock_wait),
            update_locks: given.unwrap_or(cfg.update_lock_wait),
            pins: given.unwrap_or(Duration::ZERO),
        }
    }

    /// How held update locks are treated: waited for, or gone past with `--force`.
    pub(crate) fn locks(&self, force: bool) -> LockPolicy {
        LockPolicy {
            wait: self.update_locks,
            force,
        }
    }
}

/// Pads rows into aligned columns (two spaces between columns).
pub(crate) fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from("  ");
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < row.len() {
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Shown per-service lines without `-v`; a first commit of thousands of
/// services would otherwise bury the summary.
const MAX_LINES: usize = 20;

/// Per-service lines, "NAME  ACTION: REASON", e.g. "web  restart: run
/// changed" (kept services and more than [`MAX_LINES`] changes only with -v).
pub(crate) fn plan_table(plan: &Plan) -> String {
    let verbose = report::verbosity() > 0;
    let shown: Vec<&ServiceChange> = plan
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

/// What `commit` says when it is done (and `sync`, applying a pending commit).
pub(crate) fn commit_summary(done: &Committed) -> String {
    if done.up_to_date {
        return format!(
            "up to date: generation {} matches the stock ({} services)\n{}",
            done.generation,
            done.services,
            held_back_line(done)
        );
    }
    let mut human = format!(
        "generation {} is live: {}\n",
        done.generation,
        done.plan.counts()
    );
    human.push_str(&plan_table(&done.plan));
    human.push_str(&held_back_line(done));
    human
}

/// The services a commit held back, by name (their problems went to
/// stderr); empty when none.
fn held_back_line(done: &Committed) -> String {
    if done.held_back.is_empty() {
        return String::new();
    }
    let names: Vec<String> = done
        .held_back
        .iter()
        .map(|h| shown(&h.service).to_string())
        .collect();
    format!(
        "held back (live version kept, problems on stderr): {}\n",
        names.join(", ")
    )
}
