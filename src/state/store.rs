//! The content-addressed store: immutable copies of service directories,
//! each in `<service>-<digest>/<service>/` (the inner name is what the
//! service sees as `$PWD`), with a manifest beside the outer directory.
//!
//! [`stage_object`] copies a stock service into `<state>/.tmp-<object>/<service>`
//! fd-relative (no symlink is followed, set-id bits stripped, owned by the
//! state owner and writable by no one else unless the service keeps the
//! stock's owners and modes, every file's copy re-hashed against the digest; a file the stock
//! ships as a link into a stock tree is read where the scan resolved it,
//! beneath that tree); [`publish_object`]
//! renames it into place with `RENAME_NOREPLACE`. An existing object is
//! never rewritten: identical content means the very same directory (inode)
//! across generations, which is what keeps unchanged services running.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::manifest::{self, ObjectManifest};
use crate::model::owners::{Owners, Stored};
use crate::model::tree::{self, EntryKind};
use crate::state::{documents, layout};
use crate::stock::{self, StockService, capture};
use crate::sys::failpoint;
use crate::sys::fs::{self, Dir, DirChain};

/// Files up to this size are copied through memory and hashed on the way;
/// larger ones extent by extent, holes kept as holes
/// ([`fs::copy_preserving_holes`]), then re-read.
const IN_MEMORY_COPY: u64 = 1 << 20;

/// How new files are made durable before they become reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// fsync each file and directory as it is written (cheap for a few files).
    PerFile,
    /// One syncfs of the state file system after staging (cheap for many).
    SyncFs,
}

/// Below this many new entries, per-file fsync beats one syncfs (which also
/// flushes unrelated dirty data of other processes). Measured crossover on
/// the project's machines: 300–500 files with 64 MiB of unrelated dirty
/// data; see docs/durability.md.
pub(crate) const SYNCFS_THRESHOLD: usize = 400;

impl Durability {
    pub(crate) fn for_entries(count: usize) -> Durability {
        if count < SYNCFS_THRESHOLD {
            Durability::PerFile
        } else {
            Durability::SyncFs
        }
    }
}

/// The names of every published object and manifest in the store, read
/// with one directory listing (cheaper than a stat per service).
pub(crate) fn published(store: &Dir) -> Result<std::collections::HashSet<String>> {
    Ok(store
        .names()?
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| !n.starts_with(layout::TMP_PREFIX))
        .collect())
}

/// Below this many objects, [`published_among`] stats each instead of
/// listing the store (20,000 names at 10,000 services: ≈ 10 ms).
const STAT_EACH_BELOW: usize = 64;

/// The objects among `objects` that are published with their manifest:
/// two `stat`s each for a few (a hinted commit's changed services), one
/// listing of the store for many.
pub(crate) fn published_among<'a>(
    store: &Dir,
    objects: impl IntoIterator<Item = &'a str>,
) -> Result<std::collections::HashSet<&'a str>> {
    let objects: Vec<&str> = objects.into_iter().collect();
    let mut out = std::collections::HashSet::new();
    if objects.len() < STAT_EACH_BELOW {
        for object in objects {
            if store.try_stat(object)?.is_some()
                && store
                    .try_stat(layout::object_manifest_name(object))?
                    .is_some()
            {
                out.insert(object);
            }
        }
        return Ok(out);
    }
    let listed = published(store)?;
    out.extend(objects.into_iter().filter(|object| {
        listed.contains(*object) && listed.contains(&layout::object_manifest_name(object))
    }));
    Ok(out)
}

/// Loads the manifest of a published object.
pub(crate) fn load_manifest(store: &Dir, object: &str) -> Result<ObjectManifest> {
    documents::load(store, &layout::object_manifest_name(object))
}

/// Copies `service` into `<staging>/.tmp-<object>/<service>` and writes its manifest
/// as `<staging>/.tmp-<object>.manifest.yaml`; `staging` is the state
/// directory, so that recovery sweeps one small directory, not the store.
/// Nothing is reachable yet. With `captured`, the copy the scan made
/// (`src/stock/capture.rs`) becomes the object, and the stock is not read
/// again (docs/performance.md#reading-each-byte-once).
pub(crate) fn stage_object(
    staging: &Dir,
    service: &StockService,
    durability: Durability,
    captured: bool,
) -> Result<()> {
    let object = service.object_name();
    let tmp = layout::tmp_name(&object);
    staging.remove_if_exists(&tmp)?;
    if captured && adopt_capture(staging, service, &tmp, durability)? {
        stage_manifest(staging, service, &object, durability == Durability::PerFile)?;
        // The fingerprint re-check: the stock must not have moved since
        // it was read (and copied).
        return stock::recheck(service);
    }
    let src_root = Dir::open_following(&service.tree)?
        .open_dir(&service.name)
        .map_err(|e| stock::raced(e, &service.dir()))?;
    // The outer directory carries the object's name (its identity); the
    // copy inside it carries the service's name, for `$PWD`.
    let outer = staging.create_dir(&tmp, 0o755)?;
    let dst_root = outer.create_dir(&service.name, 0o700)?;
    let per_file = durability == Durability::PerFile;
    // A bounded number of directories open on each side, however deep or
    // wide the service (docs/security.md#bounded-file-descriptors).
    let mut src = DirChain::new(&src_root);
    let mut dst = DirChain::new(&dst_root);
    copy_entries(service, &mut src, &mut dst, per_file)?;
    drop((src, dst));
    if per_file {
        outer.sync()?;
    }
    stage_manifest(staging, service, &object, per_file)?;
    // The fingerprint re-check: the stock must not have moved under us.
    stock::recheck(service)?;
    Ok(())
}

/// Renames the copy the scan made of `service` to the object's staging
/// name `tmp` and makes it durable as `durability` says. False (the copy
/// removed) when the object re-owns entries
/// (docs/security.md#published-objects-belong-to-the-state-owner): the
/// copy has the stock's owners and modes, so the caller copies anew.
fn adopt_capture(
    staging: &Dir,
    service: &StockService,
    tmp: &str,
    durability: Durability,
) -> Result<bool> {
    let name = capture::capture_name(&service.name);
    if service.identity.owners == Some(Owners::Store) {
        staging.remove_if_exists(&name)?;
        return Ok(false);
    }
    staging.rename(&name, staging, tmp)?;
    failpoint::hit("commit.after-take-capture")?;
    if durability == Durability::PerFile {
        sync_copy(&staging.open_dir(tmp)?, service)?;
    }
    Ok(true)
}

/// fsyncs every file and directory of a staged copy of `service` (below
/// `outer`), bottom-up, then `outer` itself ([`Durability::PerFile`]).
fn sync_copy(outer: &Dir, service: &StockService) -> Result<()> {
    let root = outer.open_dir(&service.name)?;
    let mut dirs = DirChain::new(&root);
    // Sorted parent first, so reversed every entry comes before its parent.
    for entry in service.entries.iter().rev() {
        match entry.kind {
            EntryKind::File => {
                let dir = dirs.get(Path::new(parent_path(&entry.path)))?;
                let base = tree::base_of(&entry.path);
                fs::sync_file(&dir.open_file(base)?, &dir.join(base))?;
            }
            EntryKind::Dir if entry.path == tree::ROOT => dirs.get(Path::new(""))?.sync()?,
            EntryKind::Dir => dirs.get(Path::new(&entry.path))?.sync()?,
            // Kept by its directory's fsync, or the syncfs after staging
            // where that does not keep new symlinks
            // (docs/durability.md#the-switch-and-symlinks).
            EntryKind::Symlink => {}
        }
    }
    drop(dirs);
    outer.sync()
}

/// Creates every entry of `service` below the destination root:
/// directories, files (copied, re-hashed, owner and mode set) and
/// symlinks. Entries come parent first, so each directory is created
/// before what it holds; its owner and mode are set once the walk leaves
/// it ([`finish_dir`]), so a read-only directory does not block its own
/// population, and while the chain still holds it open.
fn copy_entries(
    service: &StockService,
    src_dirs: &mut DirChain<'_>,
    dst_dirs: &mut DirChain<'_>,
    per_file: bool,
) -> Result<()> {
    // The directories being filled, outermost (the service itself) first.
    let mut filling: Vec<&tree::Entry> = service.entries.iter().take(1).collect();
    for entry in service.entries.iter().skip(1) {
        while let Some(dir) = filling.last() {
            if is_below(&entry.path, &dir.path) {
                break;
            }
            finish_dir(service, dst_dirs, dir, per_file)?;
            filling.pop();
        }
        let base = tree::base_of(&entry.path);
        // Built only for an error: a path per entry is not free.
        let stock_path = || service.dir().join(&entry.path);
        let parent = Path::new(parent_path(&entry.path));
        let dst = dst_dirs.get(parent)?;
        match entry.kind {
            EntryKind::Dir => {
                let made = dst.create_dir(base, 0o700)?;
                dst_dirs.adopt(Path::new(&entry.path), made);
                filling.push(entry);
            }
            EntryKind::File => {
                let from = match entry.from_link {
                    None => src_dirs.get(parent).and_then(|src| src.open_file(base)),
                    Some(_) => open_linked_file(service, &entry.path),
                }
                .map_err(|e| stock::raced(e, &stock_path()))?;
                copy_file(
                    &from,
                    dst,
                    entry,
                    stored(service, entry),
                    stock_path,
                    per_file,
                )?;
            }
            EntryKind::Symlink => {
                dst.symlink(entry.target.as_deref().unwrap_or_default(), base)?;
                let stored = stored(service, entry);
                dst.set_owner_at(base, stored.uid, stored.gid)?;
            }
        }
    }
    while let Some(dir) = filling.pop() {
        finish_dir(service, dst_dirs, dir, per_file)?;
    }
    Ok(())
}

/// Whether the entry path `path` lies below the directory entry `dir`.
fn is_below(path: &str, dir: &str) -> bool {
    dir == tree::ROOT
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Sets the owner and mode of the copied directory `entry`, whose entries
/// are all in place, and fsyncs it for [`Durability::PerFile`].
fn finish_dir(
    service: &StockService,
    dst_dirs: &mut DirChain<'_>,
    entry: &tree::Entry,
    per_file: bool,
) -> Result<()> {
    let rel = if entry.path == tree::ROOT {
        ""
    } else {
        &entry.path
    };
    let dst = dst_dirs.get(Path::new(rel))?;
    // Set explicitly, never left to a parent's group
    // (docs/security.md#published-objects-belong-to-the-state-owner).
    let stored = stored(service, entry);
    dst.set_owner(stored.uid, stored.gid)?;
    // After chown, which clears set-id bits.
    dst.set_mode(stored.mode)?;
    if per_file {
        dst.sync()?;
    }
    Ok(())
}

/// The parent of an entry path as a path below the service (`""` for the
/// service directory itself).
fn parent_path(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// Opens the file that the linked entry `path` of `service` was resolved to,
/// beneath its stock tree (no symlink followed: the scan already did the
/// following, and a link swapped in since is a race, not a new target).
fn open_linked_file(service: &StockService, path: &str) -> Result<std::fs::File> {
    let Some(linked) = service.linked.iter().find(|l| l.entry == path) else {
        return Err(stock::changed_while_reading(&service.dir().join(path)));
    };
    Dir::open_following(&linked.tree)?.open_file(&linked.rel)
}

/// Copies the file `entry` from `from` to `dst`, checks that what was
/// written has the scanned hash, then sets its owner and mode (`stored`).
fn copy_file(
    from: &std::fs::File,
    dst: &Dir,
    entry: &tree::Entry,
    stored: Stored,
    stock_path: impl Fn() -> PathBuf,
    per_file: bool,
) -> Result<()> {
    let base = tree::base_of(&entry.path);
    let dst_path = dst.join(base);
    // Mode is set exactly below, after the owner.
    let to = dst.create_private_file(base)?;
    let hash = copy_and_hash(from, &to, dst, base, &dst_path, entry.size.unwrap_or(0))?;
    if Some(tree::ContentHash::from(hash)) != entry.blake3 {
        return Err(stock::changed_while_reading(&stock_path()));
    }
    // Always explicitly: a file gets its directory's group on some file
    // systems and mounts, whatever our egid.
    fs::set_owner_fd(
        std::os::fd::AsFd::as_fd(&to),
        stored.uid,
        stored.gid,
        &dst_path,
    )?;
    // After chown, which clears set-id bits.
    fs::set_mode_fd(std::os::fd::AsFd::as_fd(&to), stored.mode, &dst_path)?;
    if per_file {
        fs::sync_file(&to, &dst_path)?;
    }
    Ok(())
}

/// Copies `size` bytes and returns the hash of what was written: the object
/// must hold exactly what the digest says, even if the stock file changed
/// meanwhile.
fn copy_and_hash(
    from: &std::fs::File,
    to: &std::fs::File,
    dst: &Dir,
    base: &str,
    dst_path: &std::path::Path,
    size: u64,
) -> Result<blake3::Hash> {
    if size <= IN_MEMORY_COPY {
        return fs::copy_small(from, to, size, dst_path);
    }
    fs::copy_preserving_holes(from, to, size, dst_path)?;
    let check = dst.open_file(base)?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(&check)
        .map_err(|e| Error::io("cannot read", dst_path, e))?;
    Ok(hasher.finalize())
}

/// Writes the object's manifest as `<staging>/.tmp-<object>.manifest.yaml`.
fn stage_manifest(
    staging: &Dir,
    service: &StockService,
    object: &str,
    per_file: bool,
) -> Result<()> {
    let manifest = ObjectManifest {
        service: service.name.clone(),
        digest: service.object_digest(),
        entries: service.entries.clone(),
        restart_on: service.identity.restart_on.clone(),
        restart: service.identity.restart,
        owners: service.identity.owners,
    };
    let manifest_tmp = layout::tmp_name(&layout::object_manifest_name(object));
    let bytes = manifest::to_bytes(&manifest, &staging.join(&manifest_tmp))?;
    staging.remove_if_exists(&manifest_tmp)?;
    let mut file = staging.create_file(&manifest_tmp, 0o644)?;
    std::io::Write::write_all(&mut file, &bytes)
        .map_err(|e| Error::create("write", staging.join(&manifest_tmp), e))?;
    if per_file {
        fs::sync_file(&file, &staging.join(&manifest_tmp))?;
    }
    Ok(())
}

/// The owner, group and mode `entry` of `service` gets in the store: the
/// state owner's unless the service keeps the stock's
/// (docs/security.md#published-objects-belong-to-the-state-owner).
fn stored(service: &StockService, entry: &tree::Entry) -> Stored {
    stock::store_owner().stored(entry, service.identity.owners)
}

/// Renames a staged object (the outer directory, at once) and its
/// manifest from `staging` into the store. The manifest goes first: an object is never reachable without its
/// manifest. The caller fsyncs both directories once after publishing all
/// objects.
pub(crate) fn publish_object(staging: &Dir, store: &Dir, object: &str) -> Result<PathBuf> {
    let manifest_name = layout::object_manifest_name(object);
    staging.rename(layout::tmp_name(&manifest_name), store, &manifest_name)?;
    if !staging.rename_noreplace(layout::tmp_name(object), store, object)? {
        // Published meanwhile by an earlier, interrupted run: identical
        // content by construction, so keep the existing inode.
        staging.remove_if_exists(layout::tmp_name(object))?;
    }
    Ok(store.join(layout::object_service_dir(object)))
}
