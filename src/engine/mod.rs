//! What a transaction does, over the on-disk model in [`crate::state`]:
//! switch generations (with stops, starts and the rollback log) and check
//! the health of what was started. The commands in [`crate::app`] call
//! these; this layer never renders output for a person.

pub(crate) mod health;
pub(crate) mod switch;
