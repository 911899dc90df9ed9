//! Pure data and functions, no I/O: service names, the entries of a tree
//! and their digest, and the plan that turns one generation into another.

pub(crate) mod names;
pub(crate) mod plan;
pub(crate) mod tree;
