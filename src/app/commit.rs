//! `commit`: stage the stock as a new generation and switch to it
//! ([`crate::engine::commit`]), then report what changed.

use serde::Serialize;

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
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
        changed: changed_paths(args)?,
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

/// The paths of `--changed` and `--changed-from` (docs/cli.md#commit);
/// `None` when neither is given: a full commit.
fn changed_paths(args: &CommitArgs) -> Result<Option<Vec<PathBuf>>> {
    let Some(from) = &args.changed_from else {
        return Ok((!args.changed.is_empty()).then(|| args.changed.clone()));
    };
    let mut bytes = Vec::new();
    let read = if from.as_os_str() == "-" {
        std::io::stdin().lock().read_to_end(&mut bytes)
    } else {
        fs_err::File::open(from).and_then(|mut f| f.read_to_end(&mut bytes))
    };
    read.map_err(|source| Error::Io {
        op: "read the changed paths (--changed-from) from",
        path: from.clone(),
        source,
    })?;
    let mut paths = args.changed.clone();
    paths.extend(
        bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| PathBuf::from(OsStr::from_bytes(line))),
    );
    Ok(Some(paths))
}
