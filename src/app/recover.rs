//! `recover [--rollback]`: finish or undo an interrupted transaction
//! ([`crate::engine::recover`], which every writing command also runs
//! first), and with `--rollback` undo one that had already switched.

use std::time::Duration;

use super::{Output, Waits};
use crate::cli::RecoverArgs;
use crate::config::Config;
use crate::engine::locked::LockedState;
use crate::engine::recover::{self, Outcome, Recovery};
use crate::error::{Error, Result};
use crate::state::State;

/// `recover [--rollback]`; `wait` is `--wait`, if given.
pub(crate) fn recover(cfg: &Config, args: &RecoverArgs, wait: Option<Duration>) -> Result<Output> {
    let waits = Waits::new(cfg, wait);
    let Some(state) = State::open(cfg)? else {
        return Ok(Output::new(
            &Recovery::default(),
            "nothing to recover: no state yet\n".into(),
        ));
    };
    let state = LockedState::acquire(cfg, state, waits.lock)?;
    let mut rec = state.recovery().clone();
    if args.rollback {
        let Some(log) = state.interrupted() else {
            return Err(Error::NoInterruptedTransaction);
        };
        if let Some(from) = recover::roll_back_finished(cfg, &state, log, waits.locks(false))? {
            rec.outcome = Outcome::Undone;
            rec.live = Some(from);
        }
    }
    let human = match (&rec.transaction, rec.relinked_live) {
        (None, Some(n)) => format!(
            "live {}; it now points at generation {n}
",
            rec.live_was.as_ref().map_or_else(
                || "was missing (lost in a power cut?)".to_string(),
                |was| format!("pointed at {was}, which is not a generation")
            )
        ),
        (None, None) => format!(
            "nothing to recover{}\n",
            if rec.swept.is_empty() {
                String::new()
            } else {
                format!("; removed {} staging leftovers", rec.swept.len())
            }
        ),
        (Some(id), _) => format!(
            "transaction {id} {}; generation {} is live\n",
            rec.outcome,
            rec.live
                .map_or_else(|| "none".to_string(), |n| n.to_string())
        ),
    };
    Ok(Output::new(&rec, human))
}
