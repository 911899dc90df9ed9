//! Generation summaries: `generations/<N>/.summary.json`, a few numbers
//! about a generation written beside its manifest when it is staged, so
//! that `list` and `status` read a small file instead of parsing a
//! manifest of every service (docs/performance.md#status-and-list-at-100000-services).
//!
//! A summary is a cache, never the truth: the manifest is. One that is
//! missing (a state older than summaries), unreadable, or that does not
//! agree with its directory's number is ignored, and the caller parses the
//! manifest instead. Nothing that removes or switches to anything reads a
//! summary: `gc` marks from the manifests themselves.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::manifest::{self, GenerationManifest};
use crate::model::names::split_object_name;
use crate::model::plan::{self, Counts};
use crate::state::State;
use crate::state::layout;
use crate::sys::fs::Dir;

/// The most objects a summary lists as added to its parent: a commit that
/// changes more (a first commit of everything) leaves the list out, and
/// readers that need it parse the manifest.
const MAX_ADDED_OBJECTS: usize = 10_000;

/// The largest summary read (`MAX_ADDED_OBJECTS` names of ≈ 100 bytes fit).
const MAX_SUMMARY_BYTES: u64 = 4 << 20;

/// What `generations/<N>/.summary.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub generation: u64,
    pub parent: Option<u64>,
    /// As in the manifest (RFC 3339, UTC).
    pub created: String,
    /// How many services it holds.
    pub services: usize,
    /// What changed from the parent (none without one).
    pub changes: Option<Counts>,
    /// The note of `commit -m`.
    pub note: Option<String>,
    /// The store objects it references that its parent does not, sorted;
    /// none without a parent or when more than [`MAX_ADDED_OBJECTS`].
    pub added_objects: Option<Vec<String>>,
}

impl Summary {
    /// The summary of `m`, whose parent's manifest is `parent` (none when
    /// it has no parent, or it is not on disk), without the added objects.
    pub(crate) fn of(m: &GenerationManifest, parent: Option<&GenerationManifest>) -> Summary {
        Summary {
            generation: m.generation,
            parent: m.parent,
            created: m.created.clone(),
            services: m.services.len(),
            changes: parent.map(|p| plan::counts(&p.services, &m.services)),
            note: m.note.clone(),
            added_objects: None,
        }
    }

    /// Why this summary cannot stand for generation `n`, or `None`.
    fn problem(&self, n: u64) -> Option<String> {
        if self.generation != n {
            return Some(format!("it says generation {}", self.generation));
        }
        if self.parent.is_some_and(|p| p >= n)
            || self.changes.is_some() && self.parent.is_none()
            || self.added_objects.is_some() && self.parent.is_none()
        {
            return Some("its parent does not fit".into());
        }
        if let Some(why) = self.note.as_deref().and_then(manifest::note_problem) {
            return Some(why);
        }
        let bad_object = self
            .added_objects
            .iter()
            .flatten()
            .find(|o| split_object_name(o).is_none());
        bad_object.map(|o| format!("{o:?} is not a store object name"))
    }
}

/// Writes the summary of `m` into `dir`, the staging directory of its
/// generation: it is published with the manifest, by the same rename, so
/// a published generation has its summary or was made by a version
/// without them. Not fsynced on its own: the caller syncs the directory
/// and the file system before publishing, and a summary a power cut
/// emptied or tore fails to parse and is read around like a missing one.
pub(crate) fn write(
    dir: &Dir,
    m: &GenerationManifest,
    parent: Option<&GenerationManifest>,
) -> Result<()> {
    let path = dir.join(layout::GENERATION_SUMMARY);
    let mut summary = Summary::of(m, parent);
    summary.added_objects = parent.and_then(|p| added_objects(m, p));
    let bytes = manifest::to_bytes(&summary, &path)?;
    let mut file = dir.create_file(layout::GENERATION_SUMMARY, 0o644)?;
    std::io::Write::write_all(&mut file, &bytes).map_err(|e| Error::create("write", &path, e))
}

/// The objects `m` references that `parent` does not, sorted; `None` when
/// there are more than [`MAX_ADDED_OBJECTS`]. An object's name begins with
/// its service's (a manifest's own check), so an object of `m` is in
/// `parent` exactly when `parent` gives that service the same object: one
/// walk of both maps side by side, no set of the parent's objects.
fn added_objects(m: &GenerationManifest, parent: &GenerationManifest) -> Option<Vec<String>> {
    let mut added: Vec<String> = plan::side_by_side(&parent.services, &m.services)
        .filter_map(|(_, old, new)| new.filter(|&new| old != Some(new)).cloned())
        .take(MAX_ADDED_OBJECTS + 1)
        .collect();
    added.sort_unstable();
    (added.len() <= MAX_ADDED_OBJECTS).then_some(added)
}

/// The summary of generation `n`, or `None` when it has none that can be
/// trusted (the reason is a debug message: the caller falls back to the
/// manifest, which is not an error).
pub(crate) fn load(state: &State, n: u64) -> Option<Summary> {
    let dir = state.generations.try_open_dir(n.to_string()).ok()??;
    dir.try_stat(layout::GENERATION_SUMMARY).ok()??;
    let path = dir.join(layout::GENERATION_SUMMARY);
    let why = match dir.read_capped(layout::GENERATION_SUMMARY, MAX_SUMMARY_BYTES) {
        Ok(bytes) => match serde_json::from_slice::<Summary>(&bytes) {
            Ok(s) => match s.problem(n) {
                None => return Some(s),
                Some(why) => why,
            },
            Err(e) => e.to_string(),
        },
        Err(e) => e.chain(),
    };
    crate::output::report::debug(&format!(
        "{} is not used ({why}); reading the manifest instead",
        path.display()
    ));
    None
}

/// Every store object the generations `kept` reference, from their
/// summaries where a generation's parent is kept too (its own objects then
/// come from the parent, plus those it added) and from the manifest
/// otherwise: with a chain of kept generations one manifest is parsed, not
/// one per generation. An estimate for `status`, as good as the summaries;
/// `gc` itself reads every kept manifest.
pub(crate) fn referenced(state: &State, kept: &BTreeSet<u64>) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    for &n in kept {
        let added = load(state, n)
            .filter(|s| s.parent.is_some_and(|p| kept.contains(&p)))
            .and_then(|s| s.added_objects);
        match added {
            Some(added) => out.extend(added),
            None => {
                let services = crate::state::generation::load(state, n)?.services;
                out.reserve(services.len());
                out.extend(services.into_values());
            }
        }
    }
    Ok(out)
}
