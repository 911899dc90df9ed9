//! `verify [GEN] [--all] [--repair]`: check the store objects of a
//! generation (live by default, or every one) against their manifests
//! ([`crate::engine::verify`]); any difference is reported by path and
//! exits 65, naming the generations safe to roll back to; dangling
//! symlinks are notes, not failures. `--repair` restores damaged objects
//! the stock still holds ([`crate::engine::restore`]) under the manager
//! lock, then verifies again (docs/cli.md#verify---repair).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Serialize;

use super::{Output, Waits};
use crate::cli::VerifyArgs;
use crate::config::Config;
use crate::engine;
use crate::engine::locked::LockedState;
use crate::engine::restore::Restored;
use crate::error::{Error, Result};
use crate::model::shown::shown;
use crate::output::report;
use crate::state::State;
use crate::state::generation;

/// What verifying one generation found.
#[derive(Debug, Serialize)]
struct VerifyReport {
    generation: Option<u64>,
    objects: usize,
    problems: Vec<String>,
    /// Dangling symlinks in its objects.
    notes: Vec<String>,
    /// The damaged store objects, by name.
    damaged_objects: BTreeSet<String>,
    /// Its directory holds its manifest only: its objects were verified,
    /// its links are made when it goes live (docs/design.md#dormant-generations).
    dormant: bool,
}

/// `verify --all`: every generation, and what `--repair` did.
#[derive(Debug, Serialize)]
struct AllReport {
    generations: Vec<VerifyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repaired: Option<Restored>,
}

/// `verify [GEN]`: one generation, and what `--repair` did.
#[derive(Debug, Serialize)]
struct OneReport {
    #[serde(flatten)]
    report: VerifyReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    repaired: Option<Restored>,
}

/// `verify`; `wait` is `--wait` (for the manager lock `--repair` takes).
pub(crate) fn verify(cfg: &Config, args: &VerifyArgs, wait: Option<Duration>) -> Result<Output> {
    let Some(mut state) = State::open_current(cfg)? else {
        return Err(Error::NoGenerations {
            state: cfg.state.clone(),
        });
    };
    let gens = match (args.all, args.generation) {
        (true, _) => generation::list(&state)?,
        (false, Some(n)) => vec![n],
        (false, None) => vec![state.live()?.ok_or_else(|| Error::NoLiveGeneration {
            state: cfg.state.clone(),
        })?],
    };
    let mut reports = check(cfg, &state, &gens)?;
    let mut repaired = None;
    let damaged: BTreeSet<String> = reports
        .iter()
        .flat_map(|r| r.damaged_objects.iter().cloned())
        .collect();
    if args.repair && !damaged.is_empty() {
        let waits = Waits::new(cfg, wait);
        let locked = LockedState::acquire(cfg, state, waits.lock)?;
        let done = engine::restore::restore_objects(cfg, &locked, &damaged, waits.locks(false))?;
        say_repaired(&done);
        state = locked.unlock();
        reports = check(cfg, &state, &gens)?;
        repaired = Some(done);
    }
    if reports.iter().any(|r| !r.problems.is_empty()) {
        return Err(damage_error(cfg, &state, &reports, args.all));
    }
    if args.all {
        let human = all_table(&reports);
        let all = AllReport {
            generations: reports,
            repaired,
        };
        return Ok(Output::new(&all, human));
    }
    let Some(report) = reports.pop() else {
        return Err(Error::NoLiveGeneration {
            state: cfg.state.clone(),
        });
    };
    let mut human = format!(
        "generation {}: {} objects verified, all intact{}\n",
        report.generation.unwrap_or_default(),
        report.objects,
        if report.dormant {
            " (dormant: its links are made when it goes live)"
        } else {
            ""
        }
    );
    for note in &report.notes {
        human.push_str(&format!("  note: {note}\n"));
    }
    Ok(Output::new(&OneReport { report, repaired }, human))
}

/// Verifies each generation of `gens`. Files this user cannot read are
/// not damage, but then nothing is verified: the first such error.
fn check(cfg: &Config, state: &State, gens: &[u64]) -> Result<Vec<VerifyReport>> {
    let mut out = Vec::new();
    for &n in gens {
        let m = generation::load(state, n)?;
        let mut found = engine::verify::findings(cfg, state, &m);
        if found.problems.is_empty() && !found.unreadable.is_empty() {
            // Not damage: this user may not read everything root committed.
            let more = found.unreadable.len() - 1;
            let first = found.unreadable.swap_remove(0);
            if more > 0 {
                report::warn(&format!(
                    "{more} more store object(s) could not be read either"
                ));
            }
            report::warn("not verified: run `svcdir-update verify` as root to read every file");
            return Err(first);
        }
        out.push(VerifyReport {
            generation: Some(n),
            objects: m.services.len(),
            problems: found.problems,
            notes: found.notes,
            damaged_objects: found.damaged,
            dormant: generation::is_dormant(state, n)?,
        });
    }
    Ok(out)
}

/// Says on stderr what `--repair` restored and what it could not.
fn say_repaired(done: &Restored) {
    for r in &done.restored {
        let restarted = if r.restarted {
            "; its live instance was restarted from the fresh copy"
        } else {
            ""
        };
        report::info(&format!(
            "restored {} (service {}) from the stock{restarted}",
            shown(&r.object),
            shown(&r.service)
        ));
    }
    for object in &done.not_in_stock {
        report::warn(&format!(
            "{}: the stock no longer holds this content; not restored",
            shown(object)
        ));
    }
}

/// The error for damage that remains, naming the generations whose
/// objects all verify (every generation is checked for that).
fn damage_error(cfg: &Config, state: &State, reports: &[VerifyReport], all: bool) -> Error {
    let safe = generation::list(state)
        .ok()
        .and_then(|gens| check(cfg, state, &gens).ok())
        .map(|rs| {
            rs.iter()
                .filter(|r| r.problems.is_empty())
                .filter_map(|r| r.generation)
                .collect()
        })
        .unwrap_or_default();
    let damaged: Vec<&VerifyReport> = reports.iter().filter(|r| !r.problems.is_empty()).collect();
    let problems = damaged
        .iter()
        .flat_map(|r| {
            r.problems.iter().map(move |p| match (all, r.generation) {
                (true, Some(n)) => format!("generation {n}: {p}"),
                _ => p.clone(),
            })
        })
        .collect();
    Error::StoreDamaged {
        generation: damaged
            .first()
            .and_then(|r| r.generation)
            .unwrap_or_default(),
        problems,
        safe,
    }
}

/// `verify --all` as a table: one line per generation.
fn all_table(reports: &[VerifyReport]) -> String {
    let mut rows = vec![vec!["GEN".into(), "OBJECTS".into(), "RESULT".into()]];
    for r in reports {
        let mut result = if r.notes.is_empty() {
            "intact".to_string()
        } else {
            format!("intact, {} note(s)", r.notes.len())
        };
        if r.dormant {
            result.push_str(" (dormant)");
        }
        rows.push(vec![
            r.generation.unwrap_or_default().to_string(),
            r.objects.to_string(),
            result,
        ]);
    }
    super::table(&rows)
}
