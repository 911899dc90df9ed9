//! `gc [--keep N]`: delete generations and store objects nothing needs
//! ([`crate::engine::gc`] says what and removes it), and say what was kept
//! and why. `--wait SECS` waits that long for pinned programs to end.

use std::time::Duration;

use serde::Serialize;

use super::{Output, Waits};
use crate::cli::GcArgs;
use crate::config::Config;
use crate::engine::gc::{self, GcReport};
use crate::engine::locked::LockedState;
use crate::error::Result;
use crate::model::shown::shown;
use crate::output::report;
use crate::state::State;

/// The `--json` document of `gc --dry-run`: the report of a real run,
/// with what it would remove in the `removed_*` keys.
#[derive(Serialize)]
struct DryRun<'a> {
    #[serde(flatten)]
    report: &'a GcReport,
    dry_run: bool,
}

fn dry_run_text(report: &GcReport) -> String {
    let mut out = format!(
        "dry run: gc would remove {} generation(s) and {} store object(s); keep generations {}\n",
        report.removed_generations.len(),
        report.removed_objects.len(),
        report
            .kept_generations
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    );
    for n in &report.removed_generations {
        out.push_str(&format!("  generation {n}\n"));
    }
    for object in &report.removed_objects {
        out.push_str(&format!("  {object}\n"));
    }
    out
}

/// `gc [--keep N]`; `wait` is `--wait`, if given (for pinned programs too).
pub(crate) fn gc(cfg: &Config, args: &GcArgs, wait: Option<Duration>) -> Result<Output> {
    let waits = Waits::new(cfg, wait);
    let Some(state) = State::open(cfg)? else {
        return Ok(Output::new(
            &GcReport::default(),
            "nothing to collect: no state yet\n".into(),
        ));
    };
    let keep = args.keep.unwrap_or(cfg.keep_generations).max(1);
    if args.dry_run {
        // Marking only reads: no lock, nothing removed.
        state.require_current_format()?;
        let report = gc::mark(cfg, &state, keep, None)?;
        return Ok(Output::new(
            &DryRun {
                report: &report,
                dry_run: true,
            },
            dry_run_text(&report),
        ));
    }
    let state = LockedState::acquire(cfg, state, waits.lock)?;
    let report = gc::collect(cfg, &state, keep, waits.pins)?;
    for object in &report.pinned {
        report::info(&format!(
            "{}: kept, pinned by a program started with `svcdir-update exec`",
            shown(object)
        ));
    }
    for object in &report.in_use {
        report::info(&format!(
            "{}: kept, a running process uses it",
            shown(object)
        ));
    }
    let human = format!(
        "removed {} generation(s) and {} store object(s); kept generations {}{}{}\n",
        report.removed_generations.len(),
        report.removed_objects.len(),
        report
            .kept_generations
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        if report.in_use.is_empty() {
            String::new()
        } else {
            format!(
                "; {} unreferenced object(s) still in use",
                report.in_use.len()
            )
        },
        if report.pinned.is_empty() {
            String::new()
        } else {
            format!("; {} pinned object(s) kept", report.pinned.len())
        }
    );
    Ok(Output::new(&report, human))
}
