//! Test-only: proptest strategies that damage valid documents the way torn
//! writes, bad disks, hand edits and attackers do — flipped bits, cuts,
//! inserted NULs and bytes, deletions, repeated spans — plus plain random
//! bytes. The parser tests feed them to every parser of on-disk data and
//! prove it never panics and always answers with a clear error.

use proptest::prelude::*;

/// How many cases each parser runs in the normal suite (docs/security.md#5-every-parser-of-on-disk-data-is-defensive: at least 10,000).
pub(crate) const CASES: u32 = 10_000;

/// One change to a document; positions wrap around its length.
#[derive(Debug, Clone)]
pub(crate) enum Damage {
    Flip(usize, u8),
    Truncate(usize),
    InsertNul(usize),
    Insert(usize, u8),
    Delete(usize),
    Repeat(usize, usize),
    Set(usize, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Damage::Flip(i, 1 << b)),
        any::<usize>().prop_map(Damage::Truncate),
        any::<usize>().prop_map(Damage::InsertNul),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Damage::Insert(i, b)),
        any::<usize>().prop_map(Damage::Delete),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Damage::Repeat(i, n)),
        // Bytes that mean something to YAML and JSON.
        (
            any::<usize>(),
            prop::sample::select(b"{}[]:,-\"'&*!|>#% \n\t\\0".to_vec())
        )
            .prop_map(|(i, b)| Damage::Set(i, b)),
    ]
}

/// Applies `damages` to `doc` in order.
pub(crate) fn apply(doc: &[u8], damages: &[Damage]) -> Vec<u8> {
    let mut out = doc.to_vec();
    for d in damages {
        let len = out.len();
        let at = |i: usize| if len == 0 { 0 } else { i % len };
        match *d {
            Damage::Flip(i, mask) if len > 0 => out[at(i)] ^= mask,
            Damage::Set(i, b) if len > 0 => out[at(i)] = b,
            Damage::Truncate(i) => out.truncate(at(i)),
            Damage::InsertNul(i) => out.insert(at(i), 0),
            Damage::Insert(i, b) => out.insert(at(i), b),
            Damage::Delete(i) if len > 0 => {
                out.remove(at(i));
            }
            Damage::Repeat(i, n) if len > 0 => {
                let start = at(i);
                let end = (start + n).min(len);
                let span = out[start..end].to_vec();
                out.splice(start..start, span);
            }
            _ => {}
        }
    }
    out
}

/// Damaged copies of `docs` (one to eight changes each), and random bytes.
pub(crate) fn damaged(docs: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => (prop::sample::select(docs), prop::collection::vec(damage(), 1..8))
            .prop_map(|(doc, d)| apply(&doc, &d)),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

/// A proptest config of [`CASES`] cases that never writes regression files
/// into the source tree (a failure prints its minimal input instead).
pub(crate) fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::with_cases(CASES)
    }
}
