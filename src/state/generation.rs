//! Generations: numbered, complete, immutable sets of services.
//!
//! `generations/<N>/` holds one symlink per service into the store and a
//! `.manifest.yaml`. A generation is staged under `<state>/.tmp-generation-<N>`,
//! made durable,
//! and published by `RENAME_NOREPLACE`; once published it never changes.

use std::collections::BTreeMap;

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
/// never change (`verify` reads every one of them).
pub(crate) fn check_complete(state: &State, m: &GenerationManifest) -> Result<()> {
    let dir = state.generations.open_dir(m.generation.to_string())?;
    let links: std::collections::HashSet<String> = dir
        .names()?
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .collect();
    let published = crate::state::store::published(&state.store)?;
    for (name, object) in &m.services {
        if !links.contains(name)
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
    for (name, object) in &m.services {
        if live.services.get(name) == Some(object) {
            continue;
        }
        let link_ok = dir
            .try_read_link(name)?
            .is_some_and(|l| l.to_str() == Some(layout::generation_link_target(object).as_str()));
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
pub(crate) fn check_links(state: &State, m: &GenerationManifest) -> Result<()> {
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

/// Stages and publishes generation `n` with the given services.
///
/// A service whose object is the same as in `parent` gets a hard link to
/// the parent's symlink instead of a new symlink: links are immutable, and
/// on ext4 a symlink to a 60+ byte target costs a data block, so this makes
/// a generation of 10,000 services with one change ~5x cheaper to write.
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
    state.dir.remove_if_exists(&tmp)?;
    let dir: Dir = state.dir.create_dir(&tmp, 0o755)?;
    let parent_dir = match parent {
        Some(p) => state.generations.try_open_dir(p.generation.to_string())?,
        None => None,
    };
    for (service, object) in &m.services {
        let shared = match (parent, &parent_dir) {
            (Some(p), Some(pd)) if p.services.get(service) == Some(object) => {
                pd.hard_link(service, &dir, service)?
            }
            _ => false,
        };
        if !shared {
            dir.symlink(layout::generation_link_target(object), service)?;
        }
    }
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
