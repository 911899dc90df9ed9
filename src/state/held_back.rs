//! The file `<state>/held-back.json`: the services the last commit held
//! back, with their problems, so that `status` names them until a commit
//! takes them (docs/design.md#held-back). Written atomically by `commit`
//! under the manager lock, removed when nothing is held back; bounded to
//! [`MAX_HELD_BACK`] services. It never decides what is held back.

use crate::error::Result;
use crate::state::layout;
use crate::stock::held_back::{HeldBack, MAX_HELD_BACK};
use crate::sys::fs::Dir;

/// The largest file `status` reads; a bigger one is damaged and ignored.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Records `held_back` (or removes the file when it is empty).
pub(crate) fn save(state: &Dir, held_back: &[HeldBack]) -> Result<()> {
    if held_back.is_empty() {
        // Every commit comes here: no fsync when there is nothing to remove.
        if state.try_stat(layout::HELD_BACK)?.is_none() {
            return Ok(());
        }
        state.remove_if_exists(layout::HELD_BACK)?;
        return state.sync();
    }
    let bounded = &held_back[..held_back.len().min(MAX_HELD_BACK)];
    let json = serde_json::to_vec_pretty(bounded).unwrap_or_default();
    state.write_atomic(layout::HELD_BACK, &json, 0o644)
}

/// The services the last commit held back; none when the file is absent,
/// unreadable or damaged (it only informs `status`).
pub(crate) fn load(state: &Dir) -> Vec<HeldBack> {
    match state.try_stat(layout::HELD_BACK) {
        Ok(Some(_)) => {}
        _ => return Vec::new(),
    }
    state
        .read_capped(layout::HELD_BACK, MAX_FILE_BYTES)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}
