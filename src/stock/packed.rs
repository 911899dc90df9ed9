//! A compact, lossless form of a scanned service's entries and
//! fingerprints, for the services a commit will copy (new to the store,
//! and copied while they are read, `src/stock/capture.rs`; or changed):
//! one byte buffer per service instead of an [`Entry`] (136 bytes and a
//! path allocation) and a [`Fingerprint`] (56 bytes) per entry. A first
//! commit holds every service's entries from the scan until staging, and
//! at 100,000 services that was most of its memory
//! (docs/performance.md#first-commit-memory-at-100000-services). The plan
//! and staging unpack one service at a time. Pure data; no I/O.
//!
//! Each entry is a flags byte (kind and which optional fields follow), the
//! path, mode, owner and group, then size, BLAKE3, link target and the
//! link a file came from when present, then the fingerprint. Integers are
//! LEB128 varints (signed ones zigzag-encoded), strings a varint length
//! and their bytes, the BLAKE3 its 32 bytes.

use crate::model::tree::{ContentHash, Entry, EntryKind};
use crate::stock::stat_cache::Fingerprint;

const KIND_MASK: u8 = 0b11;
const HAS_SIZE: u8 = 1 << 2;
const HAS_BLAKE3: u8 = 1 << 3;
const HAS_TARGET: u8 = 1 << 4;
const HAS_FROM_LINK: u8 = 1 << 5;

/// The entries of one service with their fingerprints, packed.
#[derive(Debug, Clone, Default)]
pub(crate) struct PackedEntries {
    bytes: Box<[u8]>,
    count: usize,
}

impl PackedEntries {
    /// Packs `entries` with `fingerprints[i]` beside `entries[i]`; the two
    /// have the same length (the walk records both for every entry).
    pub(crate) fn pack(entries: &[Entry], fingerprints: &[Fingerprint]) -> PackedEntries {
        let mut out = Vec::with_capacity(entries.len() * 72);
        for (entry, fp) in entries.iter().zip(fingerprints) {
            pack_entry(&mut out, entry);
            pack_fingerprint(&mut out, fp);
        }
        PackedEntries {
            bytes: out.into_boxed_slice(),
            count: entries.len().min(fingerprints.len()),
        }
    }

    /// The entries and fingerprints as they were packed; `None` only if
    /// the bytes are not what [`Self::pack`] wrote (a bug, never input).
    pub(crate) fn unpack(&self) -> Option<(Vec<Entry>, Vec<Fingerprint>)> {
        let mut cursor = Cursor(&self.bytes);
        let mut entries = Vec::with_capacity(self.count);
        let mut fingerprints = Vec::with_capacity(self.count);
        for _ in 0..self.count {
            entries.push(cursor.entry()?);
            fingerprints.push(cursor.fingerprint()?);
        }
        cursor.0.is_empty().then_some((entries, fingerprints))
    }

    /// How many bytes the packed form holds.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }
}

fn pack_entry(out: &mut Vec<u8>, e: &Entry) {
    let kind = match e.kind {
        EntryKind::Dir => 0,
        EntryKind::File => 1,
        EntryKind::Symlink => 2,
    };
    let flag = |present: bool, bit: u8| if present { bit } else { 0 };
    out.push(
        kind | flag(e.size.is_some(), HAS_SIZE)
            | flag(e.blake3.is_some(), HAS_BLAKE3)
            | flag(e.target.is_some(), HAS_TARGET)
            | flag(e.from_link.is_some(), HAS_FROM_LINK),
    );
    put_str(out, &e.path);
    put_varint(out, u64::from(e.mode));
    put_varint(out, u64::from(e.uid));
    put_varint(out, u64::from(e.gid));
    if let Some(size) = e.size {
        put_varint(out, size);
    }
    if let Some(hash) = &e.blake3 {
        out.extend_from_slice(&hash.0);
    }
    for text in [&e.target, &e.from_link].into_iter().flatten() {
        put_str(out, text);
    }
}

fn pack_fingerprint(out: &mut Vec<u8>, fp: &Fingerprint) {
    put_varint(out, fp.dev);
    put_varint(out, fp.ino);
    put_varint(out, fp.size);
    put_varint(out, zigzag(fp.mtime.0));
    put_varint(out, u64::from(fp.mtime.1));
    put_varint(out, zigzag(fp.ctime.0));
    put_varint(out, u64::from(fp.ctime.1));
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    ((n >> 1) as i64) ^ -((n & 1) as i64)
}

/// Reads what [`PackedEntries::pack`] wrote, front to back.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn u32(&mut self) -> Option<u32> {
        u32::try_from(self.varint()?).ok()
    }

    fn string(&mut self) -> Option<String> {
        let len = usize::try_from(self.varint()?).ok()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }

    fn entry(&mut self) -> Option<Entry> {
        let flags = self.byte()?;
        let kind = match flags & KIND_MASK {
            0 => EntryKind::Dir,
            1 => EntryKind::File,
            2 => EntryKind::Symlink,
            _ => return None,
        };
        let path = self.string()?;
        let (mode, uid, gid) = (self.u32()?, self.u32()?, self.u32()?);
        let size = match flags & HAS_SIZE {
            0 => None,
            _ => Some(self.varint()?),
        };
        let blake3 = match flags & HAS_BLAKE3 {
            0 => None,
            _ => Some(ContentHash(self.take(32)?.try_into().ok()?)),
        };
        let target = match flags & HAS_TARGET {
            0 => None,
            _ => Some(self.string()?),
        };
        let from_link = match flags & HAS_FROM_LINK {
            0 => None,
            _ => Some(self.string()?),
        };
        Some(Entry {
            path,
            kind,
            mode,
            uid,
            gid,
            size,
            blake3,
            target,
            from_link,
        })
    }

    fn fingerprint(&mut self) -> Option<Fingerprint> {
        Some(Fingerprint {
            dev: self.varint()?,
            ino: self.varint()?,
            size: self.varint()?,
            mtime: (unzigzag(self.varint()?), self.u32()?),
            ctime: (unzigzag(self.varint()?), self.u32()?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file(path: &str) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: Some(37),
            blake3: Some(ContentHash([7; 32])),
            target: None,
            from_link: None,
        }
    }

    fn fingerprint(ino: u64) -> Fingerprint {
        Fingerprint {
            dev: 0xfd01,
            ino,
            size: 37,
            mtime: (1_764_600_000, 123_456_789),
            ctime: (1_764_600_001, 987_654_321),
        }
    }

    /// What a first commit holds per entry until staging: the generator's
    /// files (`run`, `env/NAME`, …) pack in under 80 bytes, where an
    /// `Entry`, its path and its `Fingerprint` took ≈ 220. A change that
    /// makes them grow again shows here.
    #[test]
    fn a_typical_file_packs_in_under_80_bytes() {
        let packed = PackedEntries::pack(&[file("log/run")], &[fingerprint(5_000_000)]);
        assert!(packed.len() < 80, "{} bytes", packed.len());
        assert!(std::mem::size_of::<PackedEntries>() <= 24);
    }

    #[test]
    fn every_field_round_trips() {
        let entries = vec![
            Entry {
                path: ".".into(),
                kind: EntryKind::Dir,
                mode: 0o7755,
                uid: u32::MAX,
                gid: 65_534,
                size: None,
                blake3: None,
                target: None,
                from_link: None,
            },
            Entry {
                from_link: Some("../other/run".into()),
                ..file("run")
            },
            Entry {
                path: "log/supervise".into(),
                kind: EntryKind::Symlink,
                mode: 0o777,
                uid: 1000,
                gid: 1000,
                size: None,
                blake3: None,
                target: Some("/run/ünï/supervise".into()),
                from_link: None,
            },
            Entry {
                size: Some(u64::MAX),
                ..file("env/big")
            },
        ];
        let fps = vec![
            fingerprint(1),
            Fingerprint {
                dev: u64::MAX,
                ino: u64::MAX,
                size: u64::MAX,
                mtime: (i64::MIN, u32::MAX),
                ctime: (i64::MAX, 0),
            },
            Fingerprint {
                mtime: (-1, 0),
                ..fingerprint(3)
            },
            fingerprint(4),
        ];
        let packed = PackedEntries::pack(&entries, &fps);
        assert_eq!(packed.unpack(), Some((entries, fps)));
        assert_eq!(PackedEntries::default().unpack(), Some((vec![], vec![])));
    }

    proptest! {
        #[test]
        fn any_entry_round_trips(
            path in "[a-z./]{1,40}",
            kind in 0u8..3,
            mode in any::<u32>(),
            uid in any::<u32>(),
            size in proptest::option::of(any::<u64>()),
            target in proptest::option::of(".{0,20}"),
            numbers in any::<(u64, u64, u64, i64, u32, i64, u32)>(),
        ) {
            let kind = [EntryKind::Dir, EntryKind::File, EntryKind::Symlink][usize::from(kind)];
            let entry = Entry {
                path,
                kind,
                mode,
                uid,
                gid: uid ^ 1,
                size,
                blake3: size.map(|s| ContentHash([s as u8; 32])),
                target: target.clone(),
                from_link: target.map(|t| format!("{t}x")),
            };
            let (dev, ino, size, ms, mn, cs, cn) = numbers;
            let fp = Fingerprint { dev, ino, size, mtime: (ms, mn), ctime: (cs, cn) };
            let packed = PackedEntries::pack(std::slice::from_ref(&entry), &[fp]);
            prop_assert_eq!(packed.unpack(), Some((vec![entry], vec![fp])));
        }
    }
}
