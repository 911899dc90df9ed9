//! Fixed limits on what a service tree may hold, shared by the scanner that
//! enforces them (`src/stock/`) and the parsers that re-check them
//! (`src/format/`). Constants only; the configurable limits live in the
//! config (`limits:`).

/// The longest allowed relative path inside a service, in bytes.
pub(crate) const MAX_PATH: usize = 4096;
