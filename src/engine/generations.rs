//! Choosing and comparing generations: the default rollback target,
//! whether a generation can replace `live`, and the plan between two
//! generations with the changed files of each restarted service named (from
//! the object manifests). This module only reads.

use crate::error::{Error, Result};
use crate::format::manifest::GenerationManifest;
use crate::model::plan::{self, Plan};
use crate::state::State;
use crate::state::generation;
use crate::state::store;

/// The generation `rollback` goes to by default: the newest one older than `live`.
pub(crate) fn previous_generation(state: &State, live: u64) -> Result<u64> {
    generation::list(state)?
        .into_iter()
        .rev()
        .find(|&n| n < live)
        .ok_or(Error::NothingToRollBack { live })
}

/// Loads generation `n` and makes sure it can replace `live` (rollback and the health gate).
pub(crate) fn require_switchable(
    state: &State,
    n: u64,
    live: &GenerationManifest,
) -> Result<GenerationManifest> {
    let m = generation::load(state, n)?;
    generation::check_switchable(state, &m, live)?;
    Ok(m)
}

/// The plan from generation `a` to `b`, with the changed files of each
/// restarted service (what `diff A B` and `rollback` show).
pub(crate) fn diff_generations(state: &State, a: u64, b: u64) -> Result<Plan> {
    let ma = generation::load(state, a)?;
    let mb = generation::load(state, b)?;
    Ok(plan_between(state, &ma, &mb))
}

/// The plan from generation `ma` to `mb`, naming the changed files of each
/// restarted service.
fn plan_between(state: &State, ma: &GenerationManifest, mb: &GenerationManifest) -> Plan {
    let mut plan = plan::make(&ma.services, &mb.services);
    describe_file_changes(state, &mut plan);
    plan
}

/// Names the changed files of every restarted service in `plan` (from the
/// object manifests, read only for those services).
pub(crate) fn describe_file_changes(state: &State, plan: &mut Plan) {
    let entries = |obj: &str| {
        store::load_manifest(&state.store, obj)
            .ok()
            .map(|m| m.entries)
    };
    for s in &mut plan.services {
        if let (Some(f), Some(t)) = (&s.from, &s.to) {
            if f != t {
                if let (Some(old), Some(new)) = (entries(f), entries(t)) {
                    s.files = plan::diff_entries(&old, &new);
                    s.reason = plan::describe_files(&s.files).into();
                }
            }
        }
    }
}
