//! The operating-system boundary: the only owner of fd-relative file
//! operations (`openat2`, `renameat2`, `linkat`, fsync), the named
//! failpoints between the effects of a transaction, and the one policy for
//! which owners and modes are trusted, and the termination signals a
//! transaction defers; and work overlapped on a second thread.

pub(crate) mod beside;
pub(crate) mod failpoint;
pub(crate) mod fs;
pub(crate) mod journal;
pub(crate) mod process;
pub(crate) mod signals;
pub(crate) mod trust;
