//! The canonical description of a service directory: its entries and digest.
//!
//! A service tree is a sorted list of [`Entry`] values (relative path, type,
//! permission bits, owner, and content hash or link target). The digest of a
//! tree is the BLAKE3 hash of that list in a fixed text form, so identical
//! content gives the identical digest — and so the identical store object —
//! wherever and whenever it was read. Pure data and pure functions; no I/O.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The path of the service directory itself in an entry list.
pub(crate) const ROOT: &str = ".";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EntryKind {
    Dir,
    File,
    Symlink,
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EntryKind::Dir => "dir",
            EntryKind::File => "file",
            EntryKind::Symlink => "symlink",
        })
    }
}

/// One file, directory or symlink of a service tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Entry {
    /// Relative to the service directory, `/`-separated; `.` for the directory itself.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: EntryKind,
    /// Permission bits (`0o7777` mask) as stored in the object.
    #[serde(with = "octal")]
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// BLAKE3 of a file's content (hex in manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<ContentHash>,
    /// A symlink's target, verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For a file that the stock ships as a symlink resolved inside a stock
    /// tree (`run -> ../agetty-generic/run`): that link's target, verbatim.
    /// The file holds the target's content; see docs/design.md#links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_link: Option<String>,
}

impl Entry {
    /// The part of an entry that the digest covers, one line.
    fn canonical_line(&self, out: &mut Vec<u8>) {
        let hex;
        let payload = match self.kind {
            EntryKind::File => match &self.blake3 {
                Some(h) => {
                    hex = blake3::Hash::from_bytes(h.0).to_hex();
                    hex.as_str()
                }
                None => "",
            },
            EntryKind::Symlink => self.target.as_deref().unwrap_or(""),
            EntryKind::Dir => "",
        };
        // Paths and targets never hold NUL or newline (stock validation
        // rejects control characters), so this encoding is unambiguous. The
        // link a file came from is added only when there is one, so the
        // digests of trees without such files stay what they were.
        let via = match &self.from_link {
            Some(link) => format!("\0via {link}"),
            None => String::new(),
        };
        out.extend_from_slice(
            format!(
                "{}\0{}\0{:o}\0{}\0{}\0{}{via}\n",
                self.path, self.kind, self.mode, self.uid, self.gid, payload
            )
            .as_bytes(),
        );
    }
}

/// The digest of a sorted entry list: 64 hex digits of BLAKE3.
pub(crate) fn digest(entries: &[Entry]) -> String {
    let mut text = Vec::with_capacity(entries.len() * 96);
    text.extend_from_slice(b"svcdir-update tree v1\n");
    for e in entries {
        e.canonical_line(&mut text);
    }
    blake3::hash(&text).to_hex().to_string()
}

/// Sorts entries into canonical order (by path bytes, the root first);
/// the walkers produce this order themselves, tests build it by hand.
#[cfg(test)]
pub(crate) fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(|a, b| compare_paths(&a.path, &b.path));
}

/// Canonical order of entry paths: the root first, then component-wise.
pub(crate) fn compare_paths(a: &str, b: &str) -> std::cmp::Ordering {
    match (a == ROOT, b == ROOT) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        // Component-wise, so a directory's children follow it directly.
        (false, false) => a.split('/').cmp(b.split('/')),
    }
}

/// The parent path of an entry path (`.` for top-level entries).
pub(crate) fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(ROOT, |(p, _)| p)
}

/// The last component of an entry path.
pub(crate) fn base_of(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, b)| b)
}

/// A file's BLAKE3, kept as 32 bytes in memory (a tree of 100,000 files
/// would otherwise hold 6 MB of hex strings) and written as hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ContentHash(pub [u8; 32]);

impl From<blake3::Hash> for ContentHash {
    fn from(h: blake3::Hash) -> Self {
        ContentHash(*h.as_bytes())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(blake3::Hash::from_bytes(self.0).to_hex().as_str())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

impl Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(blake3::Hash::from_bytes(self.0).to_hex().as_str())
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        blake3::Hash::from_hex(&text)
            .map(ContentHash::from)
            .map_err(|_| serde::de::Error::custom(format!("blake3 {text:?} is not 64 hex digits")))
    }
}

/// Permission bits as octal text in manifests (`"0755"`), for humans.
mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(mode: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{mode:04o}"))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let text = String::deserialize(d)?;
        u32::from_str_radix(&text, 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("mode {text:?} is not octal 0000-7777"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, mode: u32, content: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File,
            mode,
            uid: 0,
            gid: 0,
            size: Some(content.len() as u64),
            blake3: Some(blake3::hash(content).into()),
            target: None,
            from_link: None,
        }
    }

    #[test]
    fn digest_covers_content_mode_and_path() {
        let base = vec![file("run", 0o755, b"a")];
        let d = digest(&base);
        assert_ne!(d, digest(&[file("run", 0o755, b"b")]));
        assert_ne!(d, digest(&[file("run", 0o744, b"a")]));
        assert_ne!(d, digest(&[file("finish", 0o755, b"a")]));
        assert_eq!(d, digest(&[file("run", 0o755, b"a")]));
        assert_eq!(d.len(), 64);
        let mut linked = file("run", 0o755, b"a");
        linked.from_link = Some("../agetty-generic/run".into());
        assert_ne!(d, digest(&[linked]), "where a file came from is covered");
    }

    #[test]
    fn children_follow_their_directory() {
        let mut e = vec![
            file("log/run", 0o755, b""),
            file("log-x", 0o644, b""),
            file("log", 0o755, b""),
            file(".", 0o755, b""),
        ];
        sort_entries(&mut e);
        let paths: Vec<_> = e.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, [".", "log", "log/run", "log-x"]);
    }
}
