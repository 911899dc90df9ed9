//! A store object's identity beyond its files (docs/design.md#identity):
//! the digests of the `restart_on` paths of its service and an optional
//! restart marker left by `commit --restart`. Folded into the object's
//! digest, so a change to either makes a new object — which the scanners
//! restart — while the same files, the same watched content and no marker
//! still give the very same object. Pure: no I/O.

use serde::{Deserialize, Serialize};

use crate::model::owners::Owners;

/// One `restart_on` path and the digest of what it held when the object
/// was made. Only the digest is recorded; nothing under the path is copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WatchedPath {
    /// Absolute, as configured.
    pub path: String,
    /// BLAKE3 over the path's entries (64 hex digits).
    pub digest: String,
}

/// What, besides its files, makes a service's object what it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The `restart_on` paths of the service, in configured order.
    pub restart_on: Vec<WatchedPath>,
    /// The generation a `commit --restart` asked for this object in.
    pub restart: Option<u64>,
    /// Whose owners the stored entries carry, when that differs from the
    /// stock's (docs/security.md#published-objects-belong-to-the-state-owner).
    pub owners: Option<Owners>,
}

impl Identity {
    /// The object digest from the digest of the files (`tree_digest`).
    ///
    /// Without watched paths and marker it *is* the tree digest: objects made
    /// before `restart_on` existed keep their names, and services without it
    /// never change object because of it.
    pub(crate) fn object_digest(&self, tree_digest: &str) -> String {
        if self.restart_on.is_empty() && self.restart.is_none() && self.owners.is_none() {
            return tree_digest.to_string();
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"svcdir-update identity v1\n");
        hasher.update(tree_digest.as_bytes());
        for watched in &self.restart_on {
            // Length-prefixed: a path cannot run into the digest after it.
            hasher.update(&(watched.path.len() as u64).to_le_bytes());
            hasher.update(watched.path.as_bytes());
            hasher.update(watched.digest.as_bytes());
        }
        if let Some(marker) = self.restart {
            hasher.update(b"restart");
            hasher.update(&marker.to_le_bytes());
        }
        match self.owners {
            None => {}
            Some(Owners::Store) => {
                hasher.update(b"owners store");
            }
            Some(Owners::Stock) => {
                hasher.update(b"owners stock");
            }
        }
        hasher.finalize().to_hex().to_string()
    }

    /// The watched paths whose digest differs from (or is missing in) `old`.
    pub(crate) fn changed_paths(&self, old: &Identity) -> Vec<String> {
        self.restart_on
            .iter()
            .filter(|w| !old.restart_on.contains(w))
            .map(|w| w.path.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(path: &str, digest: char) -> WatchedPath {
        WatchedPath {
            path: path.into(),
            digest: digest.to_string().repeat(64),
        }
    }

    #[test]
    fn no_extras_is_the_tree_digest_and_each_extra_changes_it() {
        let tree = "a".repeat(64);
        let plain = Identity::default();
        assert_eq!(plain.object_digest(&tree), tree);
        let nginx = Identity {
            restart_on: vec![watched("/usr/sbin/nginx", '1')],
            restart: None,
            owners: None,
        };
        let upgraded = Identity {
            restart_on: vec![watched("/usr/sbin/nginx", '2')],
            restart: None,
            owners: None,
        };
        let marked = Identity {
            restart: Some(3),
            ..nginx.clone()
        };
        let store_owned = Identity {
            owners: Some(Owners::Store),
            ..Identity::default()
        };
        let stock_owned = Identity {
            owners: Some(Owners::Stock),
            ..Identity::default()
        };
        let digests = [
            nginx.object_digest(&tree),
            upgraded.object_digest(&tree),
            marked.object_digest(&tree),
            store_owned.object_digest(&tree),
            stock_owned.object_digest(&tree),
            tree.clone(),
        ];
        let distinct: std::collections::BTreeSet<&String> = digests.iter().collect();
        assert_eq!(distinct.len(), digests.len(), "{digests:?}");
        assert_eq!(
            nginx.object_digest(&tree),
            nginx.clone().object_digest(&tree)
        );
        assert_eq!(upgraded.changed_paths(&nginx), ["/usr/sbin/nginx"]);
        assert!(marked.changed_paths(&nginx).is_empty());
    }
}
