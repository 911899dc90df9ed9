//! Generations: numbered, complete, immutable sets of services.
//!
//! `generations/<N>/` holds one symlink per service into the store and a
//! `.manifest.yaml`. A generation is staged under `<state>/.tmp-generation-<N>`,
//! made durable,
//! and published by `RENAME_NOREPLACE`; once published its links never change.
//!
//! Only the live generation and the newest one before it need their links:
//! the others are *dormant* (their manifest and a `.dormant` marker), and a
//! new generation is made from the directory of a materialized one that is
//! not live, so that its cost follows the change, not the number of
//! services (docs/design.md#dormant-generations). The one exception to
//! "never changes" is that swap: a whole directory is exchanged, by one
//! `RENAME_EXCHANGE`, for its dormant twin, never edited in place.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::error::{Error, Result};
use crate::format::manifest::{self, GenerationManifest};
use crate::state::documents;
use crate::state::layout;
use crate::state::{State, parse_generation_number};
use crate::sys::fs::Dir;

/// Published generation numbers, ascending.
pub(crate) fn list(state: &State) -> Result<Vec<u64>> {
    let mut out: Vec<u64> = state
        .generations
        .names()?
        .iter()
        .filter_map(|n| n.to_str().and_then(parse_generation_number))
        .collect();
    out.sort_unstable();
    Ok(out)
}

/// Loads the manifest of generation `n`.
pub(crate) fn load(state: &State, n: u64) -> Result<GenerationManifest> {
    let Some(dir) = state.generations.try_open_dir(n.to_string())? else {
        return Err(Error::NoSuchGeneration { generation: n });
    };
    let m: GenerationManifest = documents::load(&dir, layout::GENERATION_MANIFEST)?;
    if m.generation != n {
        return Err(Error::damaged(
            dir.path(),
            format!(
                "the manifest says generation {}, not {n}; the state directory was edited by hand",
                m.generation
            ),
        ));
    }
    Ok(m)
}

/// Checks that generation `m` can go live: its directory holds a link for
/// every service, and every object it names is published with its
/// manifest. One listing of each directory, not a syscall per service: the
/// links themselves were fsynced before the generation was published and
/// never change (`verify` reads every one of them). A dormant generation
/// has no links to check: they are made from the manifest when it goes
/// live again ([`materialize`]).
pub(crate) fn check_complete(state: &State, m: &GenerationManifest) -> Result<()> {
    let dir = state.generations.open_dir(m.generation.to_string())?;
    let links: Option<std::collections::HashSet<String>> = if is_dormant(state, m.generation)? {
        None
    } else {
        Some(
            dir.names()?
                .into_iter()
                .filter_map(|n| n.into_string().ok())
                .collect(),
        )
    };
    let published = crate::state::store::published(&state.store)?;
    for (name, object) in &m.services {
        if !links.as_ref().is_none_or(|l| l.contains(name))
            || !published.contains(object)
            || !published.contains(&layout::object_manifest_name(object))
        {
            return Err(incomplete(m.generation, name, object));
        }
    }
    Ok(())
}

/// Checks that generation `m` can replace the live generation `live`:
/// every service whose object differs from live's has its link and a
/// published object with manifest. Services sharing live's object are
/// known good (live's objects are never collected), so the cost grows with
/// the difference, not the size — what keeps `rollback` instant.
pub(crate) fn check_switchable(
    state: &State,
    m: &GenerationManifest,
    live: &GenerationManifest,
) -> Result<()> {
    let dir = state.generations.open_dir(m.generation.to_string())?;
    // A dormant generation's links are made when it goes live (`materialize`).
    let dormant = is_dormant(state, m.generation)?;
    for (name, object) in &m.services {
        if live.services.get(name) == Some(object) {
            continue;
        }
        let link_ok = dormant
            || dir.try_read_link(name)?.is_some_and(|l| {
                l.to_str() == Some(layout::generation_link_target(object).as_str())
            });
        if !link_ok
            || state
                .store
                .try_stat(layout::object_service_dir(object))?
                .is_none()
            || state
                .store
                .try_stat(layout::object_manifest_name(object))?
                .is_none()
        {
            return Err(incomplete(m.generation, name, object));
        }
    }
    Ok(())
}

/// Generation `generation` is incomplete: `service` does not resolve to `object`.
fn incomplete(generation: u64, service: &str, object: &str) -> Error {
    Error::DamagedGeneration {
        generation,
        service: service.to_string(),
        what: format!(
            "does not resolve to store object {object}: the generation is incomplete; run \
             `svcdir-update verify`, or commit a new generation"
        ),
    }
}

/// Reads every service link of generation `m` and checks it names the
/// object the manifest says (for `verify` and recovery after a power cut).
/// A dormant generation has none.
pub(crate) fn check_links(state: &State, m: &GenerationManifest) -> Result<()> {
    if is_dormant(state, m.generation)? {
        return Ok(());
    }
    let dir = state.generations.open_dir(m.generation.to_string())?;
    for (name, object) in &m.services {
        let link = dir.try_read_link(name)?;
        let want = layout::generation_link_target(object);
        if link.as_deref().and_then(|l| l.to_str()) != Some(want.as_str()) {
            return Err(Error::DamagedGeneration {
                generation: m.generation,
                service: name.clone(),
                what: format!(
                    "is a link that does not point at {want}; the generation is damaged, roll back \
                     to another one or commit a new generation"
                ),
            });
        }
    }
    Ok(())
}

/// Re-creates every service link of the live generation `m` that is
/// missing or does not name its object (lost in a power cut where the
/// file system wrote the new symlink late), from the manifest, durably.
/// Returns the services relinked. A link whose object is not published
/// with its manifest is left alone: there is nothing intact to point at,
/// and `verify` names it.
pub(crate) fn repair_links(state: &State, m: &GenerationManifest) -> Result<Vec<String>> {
    let dir = state.generations.open_dir(m.generation.to_string())?;
    let mut lost = Vec::new();
    for (name, object) in &m.services {
        let want = layout::generation_link_target(object);
        if dir.try_read_link(name)?.as_deref().and_then(|l| l.to_str()) != Some(want.as_str()) {
            lost.push((name, object, want));
        }
    }
    if lost.is_empty() {
        return Ok(Vec::new());
    }
    let published = crate::state::store::published(&state.store)?;
    let mut relinked = Vec::new();
    for (name, object, want) in lost {
        if !published.contains(object) || !published.contains(&layout::object_manifest_name(object))
        {
            continue;
        }
        dir.remove_if_exists(name)?;
        dir.symlink(&want, name)?;
        relinked.push(name.clone());
    }
    if !relinked.is_empty() {
        dir.sync()?;
        state.sync_symlinks()?;
    }
    Ok(relinked)
}

/// Whether generation `n` is dormant: its directory holds its manifest and
/// the marker, no links (docs/design.md#dormant-generations).
pub(crate) fn is_dormant(state: &State, n: u64) -> Result<bool> {
    Ok(state
        .generations
        .try_stat(format!("{n}/{}", layout::DORMANT))?
        .is_some())
}

/// Stages and publishes generation `n` with the given services.
///
/// Its links come from the newest materialized generation that is not
/// live, whose directory is taken whole and corrected service by service
/// (see [`stage_links`]); without one, they are made new.
pub(crate) fn create(
    state: &State,
    n: u64,
    parent: Option<&GenerationManifest>,
    services: BTreeMap<String, String>,
    stock: Vec<std::path::PathBuf>,
    note: Option<String>,
) -> Result<GenerationManifest> {
    let m = GenerationManifest {
        generation: n,
        parent: parent.map(|p| p.generation),
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        services,
        stock,
        note,
    };
    let name = n.to_string();
    // Staged in the state directory (swept by recovery), published by rename.
    let tmp = layout::tmp_name(&format!("generation-{name}"));
    let dir = stage_links(state, &tmp, &m.services, parent)?;
    let bytes = manifest::to_bytes(&m, &dir.join(layout::GENERATION_MANIFEST))?;
    let mut file = dir.create_file(layout::GENERATION_MANIFEST, 0o644)?;
    std::io::Write::write_all(&mut file, &bytes)
        .map_err(|e| Error::create("write", dir.join(layout::GENERATION_MANIFEST), e))?;
    crate::sys::fs::sync_file(&file, &dir.join(layout::GENERATION_MANIFEST))?;
    crate::state::summary::write(&dir, &m, parent)?;
    dir.sync()?;
    // Its links are new symlinks: durable before the generation is
    // published (docs/durability.md#the-switch-and-symlinks).
    state.sync_symlinks()?;
    if !state
        .dir
        .rename_noreplace(&tmp, &state.generations, &name)?
    {
        return Err(Error::create(
            "publish generation",
            state.generations.join(&name),
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ));
    }
    crate::sys::failpoint::hit("commit.after-publish-generation")?;
    state.generations.sync()?;
    state.dir.sync()?;
    Ok(m)
}

/// Gives dormant generation `m` its links again, so that it can go live
/// (`rollback`): they are staged like a new generation's, with `m`'s own
/// manifest hard-linked in, and the complete directory is exchanged with
/// the dormant one by one `RENAME_EXCHANGE`, so `generations/<N>` exists
/// at every instant. A generation that is not dormant is left as it is.
pub(crate) fn materialize(
    state: &State,
    m: &GenerationManifest,
    live: Option<&GenerationManifest>,
) -> Result<()> {
    if !is_dormant(state, m.generation)? {
        return Ok(());
    }
    let name = m.generation.to_string();
    let tmp = layout::tmp_name(&format!("generation-{name}"));
    let dir = stage_links(state, &tmp, &m.services, live)?;
    let dormant = state.generations.open_dir(&name)?;
    copy_manifest(&dormant, &dir, m)?;
    dir.sync()?;
    state.sync_symlinks()?;
    state.dir.exchange(&tmp, &state.generations, &name)?;
    state.generations.sync()?;
    state.dir.sync()?;
    crate::sys::failpoint::hit("generation.after-materialize")?;
    // `tmp` is now the dormant twin: its manifest and marker.
    state.dir.remove_if_exists(&tmp)
}

/// Stages `tmp` (in the state directory) with one link per service of
/// `services`. The directory of the newest materialized generation that is
/// not live (usually the one before it) is taken whole: it is exchanged for
/// its dormant twin, then only the links that differ are made again —
/// cost in the change, not in the services. Without such a generation, or
/// on a file system without `RENAME_EXCHANGE`, every link is made new.
/// Either way a link is a hard link of `parent`'s where the object is the
/// same.
fn stage_links(
    state: &State,
    tmp: &str,
    services: &BTreeMap<String, String>,
    parent: Option<&GenerationManifest>,
) -> Result<Dir> {
    state.dir.remove_if_exists(tmp)?;
    // Links of `parent` (the live generation) are hard-linked where the
    // object is the same: `linkat` costs a fifth of `symlinkat`, and a new
    // inode and data block for a symlink is what `sync_symlinks` waits for
    // (docs/performance.md#what-makes-it-fast).
    let source = match parent {
        Some(p) => state
            .generations
            .try_open_dir(p.generation.to_string())?
            .map(|dir| (dir, &p.services)),
        None => None,
    };
    let source = source.as_ref().map(|(dir, services)| (dir, *services));
    let live = state.live()?;
    if let Some(spare) = spare_generation(state, live)? {
        if let Some(dir) = retire(state, &spare.manifest, tmp)? {
            relink(
                &dir,
                spare.names,
                &spare.manifest.services,
                services,
                source,
            )?;
            return Ok(dir);
        }
    }
    let dir: Dir = state.dir.create_dir(tmp, 0o755)?;
    for (service, object) in services {
        link(&dir, service, object, source)?;
    }
    Ok(dir)
}

/// Makes `dir/<service>` lead to `object`: a hard link of `source`'s link
/// when `source` (a generation's directory and services) gives `service`
/// the same object, else a new symlink.
fn link(
    dir: &Dir,
    service: &str,
    object: &str,
    source: Option<(&Dir, &BTreeMap<String, String>)>,
) -> Result<()> {
    let shared = match source {
        Some((from, services)) if services.get(service).is_some_and(|o| o == object) => {
            from.hard_link(service, dir, service)?
        }
        _ => false,
    };
    if !shared {
        dir.symlink(layout::generation_link_target(object), service)?;
    }
    Ok(())
}

/// The generation a new generation's links are made from, and what its
/// directory holds.
struct Spare {
    manifest: GenerationManifest,
    /// Every name in its directory, sorted; [`retire`] exchanges the
    /// directory itself, so the listing stays true of it.
    names: Vec<OsString>,
}

/// The newest generation with its links that is not `live`, whose manifest
/// loads. Its directory is listed on a second thread while the manifest is
/// parsed: both are O(N), and a hinted commit has little else to do
/// (docs/performance.md#below-01--the-walk).
fn spare_generation(state: &State, live: Option<u64>) -> Result<Option<Spare>> {
    for n in list(state)?.into_iter().rev() {
        if Some(n) == live || is_dormant(state, n)? {
            continue;
        }
        let name = n.to_string();
        let (names, manifest) = crate::sys::beside::beside(
            || state.generations.open_dir(&name)?.names(),
            || load(state, n),
        );
        if let Ok(manifest) = manifest {
            return Ok(Some(Spare {
                manifest,
                names: names?,
            }));
        }
    }
    Ok(None)
}

/// Makes generation `spare` dormant and returns its former directory, now
/// at `tmp`: a dormant twin (the manifest, hard-linked, and the marker) is
/// staged at `tmp`, made durable, and exchanged with `generations/<N>`.
/// `None` (and nothing changed) where the file system cannot exchange.
fn retire(state: &State, spare: &GenerationManifest, tmp: &str) -> Result<Option<Dir>> {
    let name = spare.generation.to_string();
    let full = state.generations.open_dir(&name)?;
    let twin = state.dir.create_dir(tmp, 0o755)?;
    copy_manifest(&full, &twin, spare)?;
    let marker = format!(
        "generation {name} is dormant: its links are made again when it goes live \
         (docs/design.md#dormant-generations)\n"
    );
    let mut file = twin.create_file(layout::DORMANT, 0o644)?;
    std::io::Write::write_all(&mut file, marker.as_bytes())
        .map_err(|e| Error::create("write", twin.join(layout::DORMANT), e))?;
    crate::sys::fs::sync_file(&file, &twin.join(layout::DORMANT))?;
    twin.sync()?;
    if !state.dir.try_exchange(tmp, &state.generations, &name)? {
        state.dir.remove_if_exists(tmp)?;
        return Ok(None);
    }
    state.generations.sync()?;
    state.dir.sync()?;
    crate::sys::failpoint::hit("generation.after-retire")?;
    let dir = state.dir.open_dir(tmp)?;
    dir.remove_if_exists(layout::GENERATION_MANIFEST)?;
    Ok(Some(dir))
}

/// Puts generation `m`'s manifest and summary from `from` into `to`: hard
/// links (they never change), or a fresh copy of the manifest where the
/// file system cannot link. A summary that cannot be linked is left out:
/// it is a cache, and `list` reads the manifest without it.
fn copy_manifest(from: &Dir, to: &Dir, m: &GenerationManifest) -> Result<()> {
    from.hard_link(layout::GENERATION_SUMMARY, to, layout::GENERATION_SUMMARY)?;
    if from.hard_link(layout::GENERATION_MANIFEST, to, layout::GENERATION_MANIFEST)? {
        return Ok(());
    }
    let path = to.join(layout::GENERATION_MANIFEST);
    let bytes = manifest::to_bytes(m, &path)?;
    let mut file = to.create_file(layout::GENERATION_MANIFEST, 0o644)?;
    std::io::Write::write_all(&mut file, &bytes).map_err(|e| Error::create("write", &path, e))?;
    crate::sys::fs::sync_file(&file, &path)
}

/// Turns `dir`, the links of `had`, into the links of `want` (and nothing
/// else: the taken generation's summary goes too): a service
/// whose object differs gets a new link ([`link`]: from `source`, the live
/// generation, where it has that object), one `want` lacks is removed.
/// `names`, the sorted listing of `dir`, finds names that are missing (a
/// power cut on a file system that wrote a symlink late,
/// docs/durability.md#the-switch-and-symlinks) or unknown, so a link is
/// never trusted only because the manifest names it.
fn relink(
    dir: &Dir,
    names: Vec<OsString>,
    had: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
    source: Option<(&Dir, &BTreeMap<String, String>)>,
) -> Result<()> {
    // All three are sorted by name: walked side by side, one comparison
    // per name rather than a search (docs/performance.md#hints).
    let mut present = names.iter().map(|n| n.as_bytes()).peekable();
    let mut had = had.iter().peekable();
    for (service, object) in want {
        let key = service.as_bytes();
        while let Some(stale) = present.next_if(|p| *p < key) {
            dir.remove_if_exists(OsStr::from_bytes(stale))?;
        }
        let is_present = present.next_if(|p| *p == key).is_some();
        while had.next_if(|(h, _)| *h < service).is_some() {}
        let same = had
            .next_if(|(h, _)| *h == service)
            .is_some_and(|(_, o)| o == object);
        if !(is_present && same) {
            if is_present {
                dir.remove_if_exists(service)?;
            }
            link(dir, service, object, source)?;
        }
    }
    for stale in present {
        dir.remove_if_exists(OsStr::from_bytes(stale))?;
    }
    Ok(())
}
