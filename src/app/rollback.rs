//! `rollback [GEN]`: switch `live` back to an earlier generation whose
//! objects are still on disk (docs/design.md#rollback-gen). No staging, no
//! stock reading.

use serde::Serialize;

use std::time::Duration;

use super::{Output, Waits, plan_table};
use crate::cli::RollbackArgs;
use crate::config::Config;
use crate::engine::generations;
use crate::engine::locked::LockedState;
use crate::engine::switch::{self, Switch};
use crate::error::{Error, Result};
use crate::model::plan::{self, Counts};
use crate::state::State;
use crate::state::generation;
use crate::state::scandir::ScanSync;
use crate::state::txn_log::TxnKind;

#[derive(Debug, Serialize)]
struct RollbackReport<'a> {
    generation: u64,
    previous: u64,
    counts: Counts,
    services: &'a [plan::ServiceChange],
    scandir: ScanSync,
    /// `--dry-run`: nothing was switched.
    dry_run: bool,
}

/// `rollback [GEN] [--force] [--dry-run]`; `wait` is `--wait`, if given.
/// A dry run takes no lock and switches nothing.
pub(crate) fn rollback(
    cfg: &Config,
    args: &RollbackArgs,
    wait: Option<Duration>,
) -> Result<Output> {
    if args.dry_run {
        return dry_run(cfg, args);
    }
    let waits = Waits::new(cfg, wait);
    let (state, live) = LockedState::open_live(cfg, waits.lock)?;
    let to = match args.generation {
        Some(n) => n,
        None => generations::previous_generation(&state, live)?,
    };
    let from_manifest = generation::load(&state, live)?;
    let to_manifest = generations::require_switchable(&state, to, &from_manifest)?;
    let mut plan = plan::make_to_generation(&from_manifest.services, &to_manifest.services, to);
    generations::describe_file_changes(&state, &mut plan);
    if to == live {
        let human = format!("generation {live} is already live\n");
        let report = RollbackReport {
            generation: live,
            previous: live,
            counts: plan.counts(),
            services: &plan.services,
            scandir: ScanSync::default(),
            dry_run: args.dry_run,
        };
        return Ok(Output::new(&report, human));
    }
    // A dormant generation gets its links back before the switch
    // (docs/design.md#dormant-generations).
    generation::materialize(&state, &to_manifest, Some(&from_manifest))?;
    let scandir = switch::run(
        cfg,
        &state,
        &Switch {
            kind: TxnKind::Rollback,
            from: Some(live),
            to,
            plan: &plan,
            locks: waits.locks(args.force),
        },
    )?;
    let counts = plan.counts();
    let mut human = format!("generation {to} is live again (was {live}): {counts}\n");
    human.push_str(&plan_table(&plan));
    let report = RollbackReport {
        generation: to,
        previous: live,
        counts,
        services: &plan.services,
        scandir,
        dry_run: false,
    };
    Ok(Output::new(&report, human))
}

/// `rollback --dry-run`: the plan a rollback would follow, read without
/// the manager lock (published generations never change); nothing switched.
fn dry_run(cfg: &Config, args: &RollbackArgs) -> Result<Output> {
    let state = State::open_current(cfg)?.ok_or_else(|| Error::NoGenerations {
        state: cfg.state.clone(),
    })?;
    let live = state.live()?.ok_or_else(|| Error::NoLiveGeneration {
        state: cfg.state.clone(),
    })?;
    let to = match args.generation {
        Some(n) => n,
        None => generations::previous_generation(&state, live)?,
    };
    let from_manifest = generation::load(&state, live)?;
    let to_manifest = generations::require_switchable(&state, to, &from_manifest)?;
    let mut plan = plan::make_to_generation(&from_manifest.services, &to_manifest.services, to);
    generations::describe_file_changes(&state, &mut plan);
    let counts = plan.counts();
    let mut human = if to == live {
        format!("dry run: generation {live} is already live; nothing to do\n")
    } else {
        format!("dry run: rollback would make generation {to} live again (now {live}): {counts}\n")
    };
    human.push_str(&plan_table(&plan));
    let report = RollbackReport {
        generation: to,
        previous: live,
        counts,
        services: &plan.services,
        scandir: ScanSync::default(),
        dry_run: true,
    };
    Ok(Output::new(&report, human))
}
