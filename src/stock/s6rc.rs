//! Recognising s6-rc *source* directories, which svcdir-update must not
//! take for compiled service directories: their `type` file says
//! `longrun`, `oneshot` or `bundle`, and s6-rc-compile turns them into
//! what a supervisor runs. Reads one small file; never writes.

use crate::error::Result;
use crate::model::tree::{Entry, EntryKind};
use crate::sys::fs::Dir;

/// The `type` values of s6-rc source (see s6-rc-compile(8)).
const SOURCE_TYPES: [&str; 3] = ["longrun", "oneshot", "bundle"];

/// A `type` file larger than this is not an s6-rc type.
const TYPE_FILE_CAP: u64 = 64;

/// The s6-rc type of the service directory `dir` (walked into `entries`),
/// or `None` when it is no s6-rc source.
pub(super) fn source_kind(dir: &Dir, entries: &[Entry]) -> Result<Option<&'static str>> {
    let Some(entry) = entries.iter().find(|e| e.path == "type") else {
        return Ok(None);
    };
    // s6-rc source is written by hand, never linked in from elsewhere.
    let plain_small_file = entry.kind == EntryKind::File
        && entry.from_link.is_none()
        && entry.size.is_some_and(|s| s <= TYPE_FILE_CAP);
    if !plain_small_file {
        return Ok(None);
    }
    let bytes = dir.read_capped("type", TYPE_FILE_CAP)?;
    Ok(kind_of(&bytes))
}

/// The s6-rc type named by the content of a `type` file.
fn kind_of(bytes: &[u8]) -> Option<&'static str> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    SOURCE_TYPES.into_iter().find(|t| *t == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_three_source_types_count() {
        assert_eq!(kind_of(b"longrun\n"), Some("longrun"));
        assert_eq!(kind_of(b"oneshot"), Some("oneshot"));
        assert_eq!(kind_of(b" bundle\n"), Some("bundle"));
        assert_eq!(kind_of(b"longrunner\n"), None);
        assert_eq!(kind_of(b"\xff"), None);
        assert_eq!(kind_of(b""), None);
    }
}
