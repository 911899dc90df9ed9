//! Fixed limits: what a service tree may hold, shared by the scanner that
//! enforces them (`src/stock/`) and the parsers that re-check them
//! (`src/format/`); and the longest wait, shared by the command line and
//! the config. Constants only; the configurable limits live in the config
//! (`limits:`).

/// The longest allowed relative path inside a service, in bytes.
pub(crate) const MAX_PATH: usize = 4096;

/// The longest wait taken (`--wait`, `--check-up`, `lock_wait`, ...), in
/// seconds (a week): a longer wait is a retry loop's job, and a far bigger
/// one would overflow the deadline computed from it.
pub(crate) const MAX_WAIT_SECS: f64 = 7.0 * 24.0 * 3600.0;
