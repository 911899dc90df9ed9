//! Every kind of lock the tool takes or inspects: the manager lock on the
//! state, per-service update locks, pins of store objects, the processes
//! that hold them and their signatures.

pub(crate) mod holders;
pub(crate) mod manager;
pub(crate) mod pin;
pub(crate) mod signature;
pub(crate) mod update;
