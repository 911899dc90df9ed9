//! On-disk names: every file and directory name the tool creates, in one
//! place, so that no other module spells one by hand.

/// The manager lock under the state directory (flock; never unlinked).
pub(crate) const LOCK: &str = ".lock";
/// The symlink to the current generation.
pub(crate) const LIVE: &str = "live";
/// The staging name of a new `live` link before it is renamed over `live`.
pub(crate) const LIVE_TMP: &str = ".tmp-live";
/// The rollback log of the transaction in flight.
pub(crate) const TXN: &str = ".txn.yaml";
/// One line per finished transaction.
pub(crate) const HISTORY: &str = "history.log";
pub(crate) const STORE: &str = "store";
/// The state format marker: the number of the on-disk format, one line.
/// Absent in a state 0.1 wrote (docs/design.md#state-format).
pub(crate) const FORMAT: &str = "format";
/// The format this version writes: generations other than the live one
/// and the one before it may be dormant (docs/design.md#dormant-generations).
/// Older versions refuse it, so that none switches to a generation without links.
pub(crate) const CURRENT_FORMAT: u32 = 3;
/// The format before dormant generations: every generation has its links.
/// A valid format-3 state as it is; the next writing command rewrites the marker.
pub(crate) const NAMED_OBJECTS_FORMAT: u32 = 2;
/// The format of 0.1: the service directory is the object itself.
pub(crate) const UNNAMED_OBJECTS_FORMAT: u32 = 1;
pub(crate) const GENERATIONS: &str = "generations";
pub(crate) const CACHE: &str = "cache";
/// The prefix of every staging name; recovery sweeps them.
pub(crate) const TMP_PREFIX: &str = ".tmp-";
/// A generation's manifest, inside `generations/<N>/`.
pub(crate) const GENERATION_MANIFEST: &str = ".manifest.yaml";
/// The marker of a dormant generation, inside `generations/<N>/`: the
/// directory holds its manifest only, no links
/// (docs/design.md#dormant-generations).
pub(crate) const DORMANT: &str = ".dormant";
/// A generation's summary, beside its manifest (`state::summary`).
pub(crate) const GENERATION_SUMMARY: &str = ".summary.json";
/// What each store object takes on disk, one line an object, appended when
/// objects are published (`state::usage`).
pub(crate) const STORE_USAGE: &str = "store-usage.log";
/// The suffix of a store object's manifest, beside the object.
pub(crate) const OBJECT_MANIFEST_SUFFIX: &str = ".manifest.yaml";
/// Per-service update locks, under the runtime directory.
pub(crate) const LOCKS: &str = "locks";
pub(crate) const LOCK_SUFFIX: &str = ".lock";
/// Pins of store objects run by `exec`, under the runtime directory.
pub(crate) const PINS: &str = "pins";
pub(crate) const PIN_SUFFIX: &str = ".pin";
/// A commit deferred by an update lock, to be applied by the next run.
pub(crate) const PENDING: &str = "pending";
/// The generations `pin` keeps from gc, one number a line.
pub(crate) const PINNED: &str = "pinned";
/// The services the last commit held back, and why (JSON; for `status`).
pub(crate) const HELD_BACK: &str = "held-back.json";

/// Store object names (`<service>-<digest>`) are pure naming rules, so the
/// manifest parser can check them too; they are spelled in `model::names`.
pub(crate) use crate::model::names::{object_name, split_object_name};

/// The manifest file name of a store object.
pub(crate) fn object_manifest_name(object: &str) -> String {
    format!("{object}{OBJECT_MANIFEST_SUFFIX}")
}

/// The directory a supervisor runs a service in, relative to the store:
/// `<object>/<service>`. Services learn their own name from `$PWD`
/// (Debian's `invoke-run` does `NAME=${PWD##*/}`, its shared `svlogd/run`
/// reads the parent's name, Void's `agetty-generic/run` does
/// `tty=${PWD##*-}`), so the last component must be the name, not the
/// digest (docs/design.md#on-disk-layout). A name that is not an object
/// name (never written by us) stays as it is.
pub(crate) fn object_service_dir(object: &str) -> String {
    match split_object_name(object) {
        Some((service, _)) => format!("{object}/{service}"),
        None => object.to_string(),
    }
}

/// The target of a generation's per-service symlink: the object's named
/// service directory.
pub(crate) fn generation_link_target(object: &str) -> String {
    format!("../../{STORE}/{}", object_service_dir(object))
}

/// The staging name of an object or generation.
pub(crate) fn tmp_name(name: &str) -> String {
    format!("{TMP_PREFIX}{name}")
}
