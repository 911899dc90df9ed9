//! The operating-system boundary: the only owner of fd-relative file
//! operations (`openat2`, `renameat2`, `linkat`, fsync), and the named
//! failpoints between the effects of a transaction.

pub(crate) mod failpoint;
pub(crate) mod fs;
