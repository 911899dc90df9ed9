//! `rollback [GEN]`: switch `live` back to an earlier generation whose
//! objects are still on disk (design §4.2). No staging, no stock reading.

use serde::Serialize;

use super::{Output, commit};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::generation;
use crate::model::plan::{self, Counts};
use crate::state::scandir::ScanSync;
use crate::state::State;
use crate::engine::switch::{self, Switch};
use crate::state::txn_log::TxnKind;
use crate::locks::update::LockPolicy;

#[derive(Debug, Serialize)]
struct RollbackReport<'a> {
    generation: u64,
    previous: u64,
    counts: Counts,
    services: &'a [plan::ServiceChange],
    scandir: ScanSync,
}

/// The generation `rollback` goes to by default: the newest one older than `live`.
pub(crate) fn previous_generation(state: &State, live: u64) -> Result<u64> {
    generation::list(state)?
        .into_iter()
        .rev()
        .find(|&n| n < live)
        .ok_or_else(|| {
            Error::bad_input(format!(
                "generation {live} is the oldest one left; there is nothing to roll back to \
                 (`svcdir-update list` shows the generations)"
            ))
        })
}

pub(crate) fn rollback(
    cfg: &Config,
    target: Option<u64>,
    wait: std::time::Duration,
    locks: LockPolicy,
) -> Result<Output> {
    let super::Locked {
        state,
        live,
        lock: _lock,
    } = super::lock_live(cfg, wait)?;
    let to = match target {
        Some(n) => n,
        None => previous_generation(&state, live)?,
    };
    let from_manifest = generation::load(&state, live)?;
    let to_manifest = commit::require_switchable(&state, to, &from_manifest)?;
    let mut plan = plan::make_to_generation(&from_manifest.services, &to_manifest.services, to);
    super::inspect::describe_file_changes(&state, &mut plan);
    if to == live {
        let human = format!("generation {live} is already live\n");
        let report = RollbackReport {
            generation: live,
            previous: live,
            counts: plan.counts(),
            services: &plan.services,
            scandir: ScanSync::default(),
        };
        return Ok(Output::new(&report, human));
    }
    let scandir = switch::run(
        cfg,
        &state,
        &Switch {
            kind: TxnKind::Rollback,
            from: Some(live),
            to,
            plan: &plan,
            locks,
        },
    )?;
    let counts = plan.counts();
    let mut human = format!("generation {to} is live again (was {live}): {counts}\n");
    human.push_str(&commit::plan_table(&plan));
    let report = RollbackReport {
        generation: to,
        previous: live,
        counts,
        services: &plan.services,
        scandir,
    };
    Ok(Output::new(&report, human))
}
