//! [`LockedState`]: the opened state with the manager lock held and any
//! interrupted transaction already finished or undone — what every command
//! that writes the state starts from.
//!
//! A function that must run under the manager lock takes `&LockedState`, so
//! "the caller holds the lock" is a type, not a comment (the shape of
//! ostree's `SysrootLock`). This module owns the one preamble of every
//! writing command (lock, then recover, docs/design.md#recover---rollback);
//! it never switches generations or stages anything itself.

use std::ops::Deref;
use std::time::Duration;

use super::migrate;
use super::recover::{self, Recovery};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::locks::manager::ManagerLock;
use crate::locks::update;
use crate::state::State;
use crate::state::txn_log::{self, TxnLog};

/// The state, the manager lock held for as long as this lives, and the
/// interrupted transaction (if any) resolved by [`recover::finish_interrupted`].
pub(crate) struct LockedState {
    state: State,
    /// What recovery found and did when the lock was taken.
    recovery: Recovery,
    /// The rollback log found when the lock was taken, before recovery
    /// resolved it.
    interrupted: Option<TxnLog>,
    lock: ManagerLock,
}

/// Whether the update locks' runtime directory is checked before recovery:
/// a command that switches refuses an unsafe one before it changes anything.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RuntimeCheck {
    Before,
    Skip,
}

impl LockedState {
    /// Takes the manager lock on `state` (waiting up to `wait`) and
    /// finishes or undoes an interrupted transaction (used by `gc` and
    /// `recover`).
    pub(crate) fn acquire(cfg: &Config, state: State, wait: Duration) -> Result<LockedState> {
        LockedState::lock_and_recover(cfg, state, wait, RuntimeCheck::Skip)
    }

    /// Like [`LockedState::acquire`], for a command that is going to switch:
    /// an unsafe runtime directory is refused first, not after the switch.
    pub(crate) fn acquire_to_switch(
        cfg: &Config,
        state: State,
        wait: Duration,
    ) -> Result<LockedState> {
        LockedState::lock_and_recover(cfg, state, wait, RuntimeCheck::Before)
    }

    /// Opens the state, locks it to switch, and requires a live generation
    /// (returned too) — or says what to run first (exit 65).
    pub(crate) fn open_live(cfg: &Config, wait: Duration) -> Result<(LockedState, u64)> {
        let Some(state) = State::open(cfg)? else {
            return Err(Error::NoGenerations {
                state: cfg.state.clone(),
            });
        };
        let locked = LockedState::acquire_to_switch(cfg, state, wait)?;
        let Some(live) = locked.live()? else {
            return Err(Error::NoLiveGeneration {
                state: cfg.state.clone(),
            });
        };
        Ok((locked, live))
    }

    fn lock_and_recover(
        cfg: &Config,
        state: State,
        wait: Duration,
        check: RuntimeCheck,
    ) -> Result<LockedState> {
        // Opened to read by anyone who may; written only by its owner.
        state.check_writable()?;
        let lock = ManagerLock::acquire(&state.dir, wait)?;
        if check == RuntimeCheck::Before {
            update::locks_dir(cfg)?;
        }
        let interrupted = txn_log::read(&state.dir)?;
        // A state 0.1 wrote is migrated first, so that recovery and the
        // command see one layout (docs/design.md#state-format).
        migrate::to_current(cfg, &state, interrupted.as_ref())?;
        // Recovery runs under the lock, so it gets the locked state too;
        // what it did is recorded before anyone else sees the value.
        let mut locked = LockedState {
            state,
            recovery: Recovery::default(),
            interrupted: None,
            lock,
        };
        locked.recovery = recover::finish_interrupted(cfg, &locked, interrupted.as_ref())?;
        locked.interrupted = interrupted;
        Ok(locked)
    }

    /// What recovery did when the lock was taken.
    pub(crate) fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The rollback log found when the lock was taken (now resolved).
    pub(crate) fn interrupted(&self) -> Option<&TxnLog> {
        self.interrupted.as_ref()
    }

    /// Releases the manager lock, keeping the state open for reading.
    pub(crate) fn unlock(self) -> State {
        drop(self.lock);
        self.state
    }
}

impl Deref for LockedState {
    type Target = State;

    fn deref(&self) -> &State {
        &self.state
    }
}
