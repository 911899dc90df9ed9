//! `<state>/store-usage.log`: what each store object takes on disk (the
//! object and its manifest, allocated bytes), one line `BYTES OBJECT` an
//! object, appended by the commit that publishes it, so that `status`
//! sums numbers instead of lstat-ing every entry of the store
//! (docs/performance.md#status-and-list-at-100000-services).
//!
//! Objects never change once published, so a number stays true for as
//! long as its object exists. The file is a cache: a line that cannot be
//! read (torn by a crash, edited by hand) or an object without a line (a
//! state older than this file) is measured by `status` instead, and a
//! line whose object `gc` removed is ignored. It is never fsynced for the
//! same reason: losing it costs time, not correctness.

use std::collections::HashMap;
use std::io::Write;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::model::names::split_object_name;
use crate::state::State;
use crate::state::layout;
use crate::state::store;
use crate::sys::fs::Dir;

/// The ledger is rewritten without the lines of collected objects once it
/// grows past this size (≈ 200,000 lines).
const COMPACT_BYTES: u64 = 16 << 20;

/// The largest ledger read; a bigger one is ignored (and measured around).
const MAX_USAGE_BYTES: u64 = 256 << 20;

/// Allocated bytes of `object` and its manifest in the store, hard links
/// within them counted once.
pub(crate) fn measure(store: &Dir, object: &str) -> Result<u64> {
    let mut seen = std::collections::HashSet::new();
    Ok(store.disk_usage(object, &mut seen)?
        + store.disk_usage(layout::object_manifest_name(object), &mut seen)?)
}

/// Measures the just-published `objects` and appends their lines; when
/// there is no ledger yet (a state an older version made), every object
/// in the store is measured once, so that `status` is fast from then on.
/// A failure is a warning: the commit is sound without the record, and
/// `status` measures what has none.
pub(crate) fn record_published(state: &State, objects: &[String]) {
    let done = objects_to_record(state, objects).and_then(|objects| {
        let lines: Vec<(u64, &String)> = objects
            .par_iter()
            .map(|o| Ok((measure(&state.store, o)?, o)))
            .collect::<Result<_>>()?;
        append(state, &lines)
    });
    if let Err(e) = done {
        crate::output::report::warn(&format!(
            "the disk use of the new store objects was not recorded ({}); `status` will \
             measure it",
            e.chain()
        ));
    }
}

/// `objects`, or every object in the store when there is no ledger yet.
fn objects_to_record(state: &State, objects: &[String]) -> Result<Vec<String>> {
    if state.dir.try_stat(layout::STORE_USAGE)?.is_some() {
        return Ok(objects.to_vec());
    }
    Ok(store::published(&state.store)?
        .into_iter()
        .filter(|n| split_object_name(n).is_some())
        .collect())
}

/// Appends `lines`, then compacts the ledger when it has grown large.
fn append(state: &State, lines: &[(u64, &String)]) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let text: String = lines
        .iter()
        .map(|(bytes, object)| format!("{bytes} {object}\n"))
        .collect();
    let path = state.dir.join(layout::STORE_USAGE);
    let mut file = state.dir.open_append(layout::STORE_USAGE, 0o644)?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::create("append to", &path, e))?;
    drop(file);
    let size = state
        .dir
        .try_stat(layout::STORE_USAGE)?
        .map_or(0, |st| u64::try_from(st.st_size).unwrap_or(0));
    if size > COMPACT_BYTES {
        compact(state)?;
    }
    Ok(())
}

/// Rewrites the ledger with only the objects still in the store.
fn compact(state: &State) -> Result<()> {
    let published = store::published(&state.store)?;
    let kept: String = read(&state.dir)
        .into_iter()
        .filter(|(object, _)| published.contains(object))
        .map(|(object, bytes)| format!("{bytes} {object}\n"))
        .collect();
    state
        .dir
        .write_atomic(layout::STORE_USAGE, kept.as_bytes(), 0o644)
}

/// Every readable line of the ledger: object → bytes (the last line of an
/// object wins). Empty when there is none or it cannot be read.
pub(crate) fn read(state: &Dir) -> HashMap<String, u64> {
    let ledger = Ledger::read(state);
    ledger
        .objects()
        .into_iter()
        .map(|(object, bytes)| (object.to_string(), bytes))
        .collect()
}

/// The ledger's text, read once; [`Ledger::objects`] borrows the object
/// names from it instead of copying 100,000 of them (`status`,
/// docs/performance.md#status-and-check-at-100000-services).
pub(crate) struct Ledger(String);

impl Ledger {
    /// The ledger; empty when there is none or it cannot be read.
    pub(crate) fn read(state: &Dir) -> Ledger {
        let bytes = match state.try_stat(layout::STORE_USAGE) {
            Ok(Some(_)) => match state.read_capped(layout::STORE_USAGE, MAX_USAGE_BYTES) {
                Ok(bytes) => bytes,
                Err(e) => {
                    crate::output::report::debug(&format!("store use not read: {}", e.chain()));
                    Vec::new()
                }
            },
            _ => Vec::new(),
        };
        Ledger(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Every readable line: object → bytes (the last line of an object
    /// wins).
    pub(crate) fn objects(&self) -> HashMap<&str, u64> {
        // Sized for the lines at once (≈ 80 bytes each), not grown through
        // a dozen rehashes at 100,000 objects.
        let mut out = HashMap::with_capacity(self.0.len() / 80 + 1);
        out.extend(
            self.0
                .lines()
                .filter_map(parse_line)
                .map(|(bytes, object)| (object, bytes)),
        );
        out
    }
}

/// `BYTES OBJECT`, or `None` for a line this module did not write whole:
/// the object name comes last, so a line torn anywhere fails its check.
fn parse_line(line: &str) -> Option<(u64, &str)> {
    let (bytes, object) = line.split_once(' ')?;
    split_object_name(object)?;
    // The bytes of a service name (model::names), checked without
    // building the error `name_problem` would: this runs once an object.
    // Every byte looked at, without an early exit, so that the check is
    // vectorized (100,000 lines at 100,000 services).
    let plain = object.starts_with(|c: char| c.is_ascii_alphanumeric())
        && object.bytes().fold(true, |all, b| {
            all & (b.is_ascii_alphanumeric() | matches!(b, b'@' | b'.' | b'_' | b'+' | b'-'))
        });
    plain.then_some(())?;
    Some((bytes.parse().ok()?, object))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_and_foreign_lines_are_not_records() {
        let object = format!("web-{}", "a".repeat(64));
        assert_eq!(
            parse_line(&format!("4096 {object}")),
            Some((4096, object.as_str()))
        );
        for bad in [
            String::new(),
            "4096".into(),
            format!("4096 {}", &object[..object.len() - 1]),
            format!("-1 {object}"),
            format!("4096  {object}"),
            format!("4 096 {object}"),
        ] {
            assert_eq!(parse_line(&bad), None, "{bad:?}");
        }
    }
}
