//! On-disk names: every file and directory name the tool creates, in one
//! place, so that no other module spells one by hand.

/// The manager lock under the state directory (flock; never unlinked).
pub const LOCK: &str = ".lock";
/// The symlink to the current generation.
pub const LIVE: &str = "live";
/// The staging name of a new `live` link before it is renamed over `live`.
pub const LIVE_TMP: &str = ".tmp-live";
/// The rollback log of the transaction in flight.
pub const TXN: &str = ".txn.yaml";
/// One line per finished transaction.
pub const HISTORY: &str = "history.log";
pub const STORE: &str = "store";
pub const GENERATIONS: &str = "generations";
pub const CACHE: &str = "cache";
/// The prefix of every staging name; recovery sweeps them.
pub const TMP_PREFIX: &str = ".tmp-";
/// A generation's manifest, inside `generations/<N>/`.
pub const GENERATION_MANIFEST: &str = ".manifest.yaml";
/// The suffix of a store object's manifest, beside the object.
pub const OBJECT_MANIFEST_SUFFIX: &str = ".manifest.yaml";
/// Per-service update locks, under the runtime directory.
pub const LOCKS: &str = "locks";
pub const LOCK_SUFFIX: &str = ".lock";
/// Pins of store objects run by `exec`, under the runtime directory.
pub const PINS: &str = "pins";
pub const PIN_SUFFIX: &str = ".pin";
/// A commit deferred by an update lock, to be applied by the next run.
pub const PENDING: &str = "pending";

/// The name of a store object: `<service>-<digest>`.
pub fn object_name(service: &str, digest: &str) -> String {
    format!("{service}-{digest}")
}

/// The manifest file name of a store object.
pub fn object_manifest_name(object: &str) -> String {
    format!("{object}{OBJECT_MANIFEST_SUFFIX}")
}

/// The target of a generation's per-service symlink.
pub fn generation_link_target(object: &str) -> String {
    format!("../../{STORE}/{object}")
}

/// Splits `<service>-<digest>` into its parts (the digest is 64 hex digits).
pub fn split_object_name(object: &str) -> Option<(&str, &str)> {
    let (service, digest) = object.rsplit_once('-')?;
    (digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) && !service.is_empty())
        .then_some((service, digest))
}

/// The staging name of an object or generation.
pub fn tmp_name(name: &str) -> String {
    format!("{TMP_PREFIX}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_round_trip() {
        let digest = "ab".repeat(32);
        let name = object_name("web-1.2", &digest);
        assert_eq!(split_object_name(&name), Some(("web-1.2", digest.as_str())));
        assert_eq!(split_object_name("web-123"), None);
    }
}
