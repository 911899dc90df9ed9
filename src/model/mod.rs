//! Pure data and functions, no I/O: service and store object names, the
//! fixed limits of a tree, the entries of a tree and their digest, an
//! object's identity beyond its files, who owns a stored entry, the plan that turns one
//! generation into another, and how text from outside is shown. Imports nothing outside `model`.

pub(crate) mod identity;
pub(crate) mod limits;
pub(crate) mod names;
pub(crate) mod owners;
pub(crate) mod plan;
pub(crate) mod shown;
pub(crate) mod tree;
