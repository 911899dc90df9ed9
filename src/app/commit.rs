//! `commit`: stage the stock as a new generation and switch to it
//! ([`crate::engine::commit`]), then report what changed.

use serde::Serialize;

use std::time::Duration;

use super::{Output, Waits, commit_summary};
use crate::cli::CommitArgs;
use crate::config::{Config, Supervisor};
use crate::engine::commit::{self, CommitOptions};
use crate::error::{Error, Result};
use crate::format::manifest;
use crate::model::plan;
use crate::state::scandir::ScanSync;
use crate::stock::held_back::HeldBack;

#[derive(Debug, Serialize)]
struct CommitReport<'a> {
    generation: u64,
    previous: Option<u64>,
    up_to_date: bool,
    counts: plan::Counts,
    services: &'a [plan::ServiceChange],
    scandir: &'a ScanSync,
    /// Stock services left out for their problems (docs/json.md#commit).
    held_back: &'a [HeldBack],
}

/// `commit [--force] [--check-up SECS] [--restart NAME…]`; `wait` is `--wait`, if given.
pub(crate) fn commit(cfg: &Config, args: &CommitArgs, wait: Option<Duration>) -> Result<Output> {
    if args.check_up.is_some() && cfg.supervisor == Supervisor::None {
        return Err(Error::usage(
            "--check-up needs a supervisor to ask; set `supervisor: s6`, `runit` or `daemontools` in the config",
        ));
    }
    if let Some(why) = args.message.as_deref().and_then(manifest::note_problem) {
        return Err(Error::usage(format!("-m: {why}")));
    }
    let cfg = &Config {
        strict: cfg.strict || args.strict,
        rehash: args.rehash,
        ..cfg.clone()
    };
    let waits = Waits::new(cfg, wait);
    let opts = CommitOptions {
        wait: waits.lock,
        locks: waits.locks(args.force),
        check_up: args.check_up,
        restart: args.restart.clone(),
        note: args.message.clone(),
        allow_stop_all: args.allow_stop_all,
    };
    let done = commit::commit(cfg, &opts)?;
    let report = CommitReport {
        generation: done.generation,
        previous: done.previous,
        up_to_date: done.up_to_date,
        counts: done.plan.counts(),
        services: &done.plan.services,
        scandir: &done.scandir,
        held_back: &done.held_back,
    };
    Ok(Output::new(&report, commit_summary(&done)))
}
