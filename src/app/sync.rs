//! `sync`: rebuild the scan directory from `live` (at boot, when the scan
//! directory is on tmpfs), idempotently, say what changed, and notify the
//! scanner (harmless when nothing changed; needed when it missed a change);
//! then apply a pending commit (`<state>/pending`, recorded by a deferred
//! `commit`).

use serde::Serialize;

use std::time::Duration;

use super::{Output, Waits, commit_summary};
use crate::config::Config;
use crate::engine::commit::{self, CommitOptions};
use crate::engine::locked::LockedState;
use crate::engine::repair;
use crate::error::{Error, Result};
use crate::model::shown::shown;
use crate::output::report;
use crate::state::generation;
use crate::state::pending;
use crate::state::scandir::ScanSync;

#[derive(Debug, Serialize)]
struct SyncReport {
    #[serde(flatten)]
    scandir: ScanSync,
    /// What became of a pending commit: absent when there was none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pending: Option<PendingOutcome>,
}

#[derive(Debug, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
enum PendingOutcome {
    /// The commit ran; `generation` is live.
    Applied { generation: u64 },
    /// The commit deferred again (exit 75); the marker stays.
    Deferred { reason: String },
}

/// `sync`; `wait` is `--wait`, if given.
pub(crate) fn sync(cfg: &Config, wait: Option<Duration>) -> Result<Output> {
    let waits = Waits::new(cfg, wait);
    let (state, live, sync, has_pending) = {
        let (state, live) = LockedState::open_live(cfg, waits.lock)?;
        let m = generation::load(&state, live)?;
        let sync = repair::repair_scandir(cfg, &state, &m)?;
        let has_pending = pending::read(&state.dir)?.is_some();
        // The commit below takes the manager lock itself.
        (state.unlock(), live, sync, has_pending)
    };
    if !sync.changed() {
        // The links are right, but the scanner may not have seen them (it
        // started before them, or missed a notification): tell it anyway.
        crate::supervisor::for_config(cfg).notify(&cfg.scandir)?;
    }
    let mut human = if sync.changed() {
        format!(
            "{}: {} link(s) added, {} removed (generation {live})\n",
            shown(&cfg.scandir),
            sync.added.len(),
            sync.removed.len()
        )
    } else {
        format!(
            "{}: already in sync with generation {live}\n",
            shown(&cfg.scandir)
        )
    };
    let pending = if has_pending {
        report::info("applying the pending commit");
        let opts = CommitOptions {
            wait: waits.lock,
            locks: waits.locks(false),
            check_up: None,
            restart: Vec::new(),
            note: None,
            allow_stop_all: false,
            changed: None,
        };
        match commit::commit(cfg, &opts) {
            Ok(done) => {
                human.push_str(&format!(
                    "pending commit applied: {}",
                    commit_summary(&done)
                ));
                let generation = state.live()?.unwrap_or(live);
                Some(PendingOutcome::Applied { generation })
            }
            // Not at boot, unasked: a stock that would stop every service
            // may be one not mounted yet. The commit stays pending.
            Err(e @ Error::StopsEverything { .. }) => {
                report::warn(&format!(
                    "the pending commit was not applied: {}",
                    e.chain()
                ));
                human.push_str("pending commit not applied: it would stop every live service\n");
                Some(PendingOutcome::Deferred { reason: e.chain() })
            }
            Err(e) if e.is_deferral() => {
                human.push_str(&format!(
                    "pending commit deferred again: {}\n",
                    e.chain().lines().next().unwrap_or_default()
                ));
                Some(PendingOutcome::Deferred { reason: e.chain() })
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    Ok(Output::new(
        &SyncReport {
            scandir: sync,
            pending,
        },
        human,
    ))
}
