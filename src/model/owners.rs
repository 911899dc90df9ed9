//! Who owns a published store object's files (docs/security.md#published-objects-belong-to-the-state-owner).
//!
//! By default the store holds every entry owned by the state owner (the
//! user running the tool, root in production) with no group or other write
//! bit, so no one else can change a published object; the manifest still
//! records the stock's owners and modes. A service listed in
//! `foreign_owners` keeps the stock's owners and modes instead (weaker: its
//! owners can change its live files). The choice is part of the object's
//! identity only when it makes a difference, so objects of root-owned
//! stock keep their names. Pure: no I/O.

use serde::{Deserialize, Serialize};

use crate::model::tree::{Entry, EntryKind};

/// Whose owners a store object's entries carry, when the stock's are not
/// already the store owner's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Owners {
    /// Owned by the state owner, group and other write bits cleared.
    Store,
    /// The stock's owners and modes, kept (`foreign_owners`).
    Stock,
}

/// The user and group who own what the tool publishes: its effective ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreOwner {
    pub uid: u32,
    pub gid: u32,
}

/// The owner, group and permission bits an entry has in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits; meaningless for a symlink.
    pub mode: u32,
}

impl StoreOwner {
    /// How `entry` is stored under `owners`. A set-id bit is kept only with
    /// the owner it was set for: re-owning a set-uid file of uid 65534 to
    /// root must not make it set-uid root.
    pub(crate) fn stored(self, entry: &Entry, owners: Option<Owners>) -> Stored {
        let as_in_stock = Stored {
            uid: entry.uid,
            gid: entry.gid,
            mode: entry.mode,
        };
        if owners != Some(Owners::Store) {
            return as_in_stock;
        }
        let mut mode = entry.mode & !0o022;
        if entry.uid != self.uid {
            mode &= !0o4000;
        }
        if entry.gid != self.gid {
            mode &= !0o2000;
        }
        Stored {
            uid: self.uid,
            gid: self.gid,
            mode,
        }
    }

    /// Whether `entry` as the stock has it is already how the store would
    /// hold it: ours, and writable by no one else.
    pub(crate) fn already_stored(self, entry: &Entry) -> bool {
        (entry.uid, entry.gid) == (self.uid, self.gid)
            && (entry.kind == EntryKind::Symlink || entry.mode & 0o022 == 0)
    }

    /// The owners marker of a service's object: `None` when every entry is
    /// already stored as it is in the stock (no difference to record, so
    /// the object keeps the name it always had); else `Stock` for a service
    /// listed in `foreign_owners`, `Store` for any other.
    pub(crate) fn owners_for(self, entries: &[Entry], foreign_owners: bool) -> Option<Owners> {
        if entries.iter().all(|e| self.already_stored(e)) {
            None
        } else if foreign_owners {
            Some(Owners::Stock)
        } else {
            Some(Owners::Store)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: StoreOwner = StoreOwner { uid: 0, gid: 0 };

    fn entry(kind: EntryKind, mode: u32, uid: u32, gid: u32) -> Entry {
        Entry {
            path: "run".into(),
            kind,
            mode,
            uid,
            gid,
            size: None,
            blake3: None,
            target: None,
            from_link: None,
        }
    }

    #[test]
    fn store_owners_take_the_files_and_their_write_bits_away_from_others() {
        let foreign = entry(EntryKind::File, 0o6775, 65534, 65534);
        assert_eq!(
            ME.stored(&foreign, Some(Owners::Store)),
            Stored {
                uid: 0,
                gid: 0,
                mode: 0o755
            },
            "no set-id bit survives a change of owner"
        );
        let setgid_only = entry(EntryKind::File, 0o6755, 0, 65534);
        assert_eq!(ME.stored(&setgid_only, Some(Owners::Store)).mode, 0o4755);
        for kept in [None, Some(Owners::Stock)] {
            assert_eq!(
                ME.stored(&foreign, kept),
                Stored {
                    uid: 65534,
                    gid: 65534,
                    mode: 0o6775
                }
            );
        }
    }

    #[test]
    fn the_marker_is_there_only_when_it_changes_something() {
        let mine = entry(EntryKind::File, 0o755, 0, 0);
        let link = entry(EntryKind::Symlink, 0o777, 0, 0);
        let writable = entry(EntryKind::Dir, 0o775, 0, 0);
        let foreign = entry(EntryKind::File, 0o755, 65534, 0);
        assert_eq!(ME.owners_for(&[mine.clone(), link.clone()], false), None);
        assert_eq!(ME.owners_for(&[mine.clone(), link], true), None);
        assert_eq!(
            ME.owners_for(&[mine.clone(), writable], false),
            Some(Owners::Store)
        );
        assert_eq!(ME.owners_for(&[mine, foreign], true), Some(Owners::Stock));
    }
}
