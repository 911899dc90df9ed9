//! Reading the manifests of the state directory from disk: the size cap and
//! the file read, then `format::manifest` parses and checks. It never writes.

use crate::error::Result;
use crate::format::manifest::{self, Document};
use crate::sys::fs::Dir;

/// The largest manifest the tool will read, to keep a corrupt file from
/// exhausting memory.
const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// Reads and parses the YAML manifest `name` below `dir`.
pub(crate) fn load<T: Document>(dir: &Dir, name: &str) -> Result<T> {
    let bytes = dir.read_capped(name, MAX_MANIFEST_BYTES)?;
    manifest::parse(&bytes, &dir.join(name))
}
