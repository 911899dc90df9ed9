//! What a transaction does, over the on-disk model in [`crate::state`]:
//! take the manager lock and recover ([`locked`]), stage a generation
//! ([`stage`]), switch generations with stops, starts and the rollback log
//! ([`switch`]), commit ([`commit`]), check the health of what was started
//! ([`health`]), repair the scan directory, collect garbage and verify
//! store objects. The commands in [`crate::app`] call these; this layer
//! never renders output for a person (progress and notes go to stderr).

pub(crate) mod commit;
pub(crate) mod gc;
pub(crate) mod generations;
pub(crate) mod health;
pub(crate) mod locked;
pub(crate) mod migrate;
pub(crate) mod patch;
pub(crate) mod recover;
pub(crate) mod repair;
pub(crate) mod restore;
pub(crate) mod stage;
pub(crate) mod stock_drift;
pub(crate) mod switch;
pub(crate) mod unperformed;
pub(crate) mod verify;
