//! `pin GEN` / `unpin GEN`: keep a generation (and so its store objects)
//! from `gc` whatever its age, or let gc have it again
//! ([`crate::state::pinned`]). Under the manager lock, so that a gc in
//! progress cannot collect the generation being pinned.

use std::time::Duration;

use serde::Serialize;

use super::{Output, Waits};
use crate::config::Config;
use crate::engine::locked::LockedState;
use crate::error::{Error, Result};
use crate::state::State;
use crate::state::generation;
use crate::state::pinned;

#[derive(Debug, Serialize)]
struct PinReport {
    generation: u64,
    pinned: bool,
    /// False when the generation already was as asked.
    changed: bool,
}

/// `pin GEN` (`keep` true) or `unpin GEN`; `wait` is `--wait`, if given.
pub(crate) fn pin(cfg: &Config, n: u64, keep: bool, wait: Option<Duration>) -> Result<Output> {
    let Some(state) = State::open(cfg)? else {
        return Err(Error::NoSuchGeneration { generation: n });
    };
    let state = LockedState::acquire(cfg, state, Waits::new(cfg, wait).lock)?;
    state.require_current_format()?;
    // Unpinning a generation gc already took (or one never made) is
    // allowed: it only clears the line.
    if keep {
        generation::load(&state, n)?;
    }
    let changed = pinned::set(&state.dir, n, keep)?;
    let human = match (keep, changed) {
        (true, true) => format!("generation {n} is pinned: gc keeps it until `unpin {n}`\n"),
        (true, false) => format!("generation {n} was already pinned\n"),
        (false, true) => {
            format!("generation {n} is unpinned: gc may remove it once it is old enough\n")
        }
        (false, false) => format!("generation {n} was not pinned\n"),
    };
    let report = PinReport {
        generation: n,
        pinned: keep,
        changed,
    };
    Ok(Output::new(&report, human))
}
