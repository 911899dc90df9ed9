//! What the tool says while it works: the verbosity-aware reporter on
//! stderr and progress on a terminal. Command results are rendered by
//! [`crate::app`], not here.

pub(crate) mod progress;
pub(crate) mod report;
