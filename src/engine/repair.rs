//! Scan-directory repair: re-create the links of the live generation that
//! went missing or stale, without a transaction (`sync` at boot, and an
//! up-to-date `commit`). Runs under the manager lock; never changes `live`.

use super::locked::LockedState;
use crate::config::Config;
use crate::error::Result;
use crate::format::manifest::GenerationManifest;
use crate::locks::update;
use crate::state::scandir::{self, ScanSync};

/// Re-creates missing scan directory links of the live generation.
pub(crate) fn repair_scandir(
    cfg: &Config,
    state: &LockedState,
    live: &GenerationManifest,
) -> Result<ScanSync> {
    let scandir = scandir::open(cfg)?;
    update::ensure_files(cfg, live.services.keys().map(String::as_str))?;
    let names = live.services.keys().cloned().collect();
    let drift = scandir::drift(&scandir, &state.live_path(), &names)?;
    if !drift.changed() {
        return Ok(drift);
    }
    let sync = scandir::sync(&scandir, &state.live_path(), &names)?;
    crate::supervisor::for_config(cfg).notify(scandir.path())?;
    Ok(sync)
}
