//! Every kind of lock the tool takes or inspects: the manager lock on the
//! state, per-service update locks, pins of store objects, the processes
//! that hold them and their signatures, and the one loop that waits for
//! any of them.

pub(crate) mod holders;
pub(crate) mod lock_dir;
pub(crate) mod manager;
pub(crate) mod pin;
pub(crate) mod update;
pub(crate) mod wait;
