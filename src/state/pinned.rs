//! Generation pins (`<state>/pinned`): the generations `pin GEN` keeps
//! from `gc` whatever their age, one number a line (docs/cli.md#pin-gen).
//! Not to be confused with the exec pins of store objects under the runtime
//! directory ([`crate::locks::pin`]), which live only as long as a program.
//!
//! Written atomically and durably under the manager lock; read without it
//! (by `list`, and by `gc` under the lock). A file that does not parse is
//! an error, never "no pins": gc must not delete what an operator kept.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::state::layout;
use crate::sys::fs::Dir;

/// The most `pinned` may hold (a number a line: far more than anyone pins).
const MAX_PINNED_BYTES: u64 = 1 << 20;

/// The pinned generation numbers.
pub(crate) fn read(state: &Dir) -> Result<BTreeSet<u64>> {
    if state.try_stat(layout::PINNED)?.is_none() {
        return Ok(BTreeSet::new());
    }
    let bytes = state.read_capped(layout::PINNED, MAX_PINNED_BYTES)?;
    parse(&bytes).ok_or_else(|| {
        Error::damaged(
            state.join(layout::PINNED),
            "the list of pinned generations is not one generation number a line; \
             fix or remove the line by hand, then run `svcdir-update pin GEN` again",
        )
    })
}

fn parse(bytes: &[u8]) -> Option<BTreeSet<u64>> {
    std::str::from_utf8(bytes)
        .ok()?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse::<u64>().ok().filter(|&n| n > 0))
        .collect()
}

/// Pins (`keep`) or unpins generation `n`; true when that changed anything.
pub(crate) fn set(state: &Dir, n: u64, keep: bool) -> Result<bool> {
    let mut pins = read(state)?;
    let changed = if keep {
        pins.insert(n)
    } else {
        pins.remove(&n)
    };
    if changed {
        let text: String = pins.iter().map(|n| format!("{n}\n")).collect();
        state.write_atomic(layout::PINNED, text.as_bytes(), 0o644)?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_a_line_parse_and_anything_else_does_not() {
        assert_eq!(parse(b"3\n12\n\n"), Some([3, 12].into()));
        assert_eq!(parse(b""), Some(BTreeSet::new()));
        for bad in [&b"3\nx\n"[..], b"0\n", b"-1\n", b"\xff\n"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
