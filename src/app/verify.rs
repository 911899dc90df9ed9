//! `verify`: check every live store object against its manifest
//! ([`crate::engine::verify`]); any difference is reported by path and
//! exits 65; dangling symlinks are notes, not failures.

use serde::Serialize;

use super::Output;
use crate::config::Config;
use crate::engine;
use crate::error::{Error, Result};
use crate::output::report;
use crate::state::State;
use crate::state::generation;

#[derive(Debug, Serialize)]
struct VerifyReport {
    generation: Option<u64>,
    objects: usize,
    problems: Vec<String>,
    /// Dangling symlinks in live objects.
    notes: Vec<String>,
}

pub(crate) fn verify(cfg: &Config) -> Result<Output> {
    let Some(state) = State::open_current(cfg)? else {
        return Err(Error::NoGenerations {
            state: cfg.state.clone(),
        });
    };
    let Some(live) = state.live()? else {
        return Err(Error::NoLiveGeneration {
            state: cfg.state.clone(),
        });
    };
    let m = generation::load(&state, live)?;
    let mut found = engine::verify::findings(cfg, &state, &m);
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
    let report = VerifyReport {
        generation: Some(live),
        objects: m.services.len(),
        problems: found.problems,
        notes: found.notes,
    };
    if report.problems.is_empty() {
        let mut human = format!(
            "generation {live}: {} objects verified, all intact\n",
            report.objects
        );
        for note in &report.notes {
            human.push_str(&format!("  note: {note}\n"));
        }
        return Ok(Output::new(&report, human));
    }
    Err(Error::StoreDamaged {
        generation: live,
        problems: report.problems,
    })
}
