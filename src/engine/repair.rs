//! Scan-directory repair: re-create the links of the live generation that
//! went missing or stale, without a transaction (`sync` at boot, and an
//! up-to-date `commit`) — the generation's own service links first, then
//! the scan directory's. Runs under the manager lock; never changes `live`.

use super::locked::LockedState;
use crate::config::Config;
use crate::error::Result;
use crate::format::manifest::GenerationManifest;
use crate::locks::update;
use crate::output::report;
use crate::state::generation;
use crate::state::scandir::{self, ScanSync};

/// Re-creates missing scan directory links of the live generation.
pub(crate) fn repair_scandir(
    cfg: &Config,
    state: &LockedState,
    live: &GenerationManifest,
) -> Result<ScanSync> {
    // The generation's links, the lock files and the scan directory are
    // checked side by side: one readlink or open per live service each
    // (docs/performance.md#100000-services-memory-after-this-change).
    let (relinked, surveyed) = rayon::join(
        || generation::repair_links(state, live),
        || -> Result<_> {
            let scandir = scandir::open(cfg)?;
            update::ensure_files(cfg, live.services.keys().map(String::as_str))?;
            let names = live.services.keys().cloned().collect();
            let drift = scandir::drift(&scandir, &state.live_path(), &names)?;
            Ok((scandir, names, drift))
        },
    );
    let relinked = relinked?;
    if !relinked.is_empty() {
        report::warn(&format!(
            "generation {}: the link of {} was lost (power cut?); made it again from the manifest",
            live.generation,
            relinked.join(", ")
        ));
    }
    let (scandir, names, drift) = surveyed?;
    if !drift.changed() {
        if !relinked.is_empty() {
            // The scan directory was right, but its services were down.
            crate::supervisor::for_config(cfg).notify(scandir.path())?;
        }
        return Ok(drift);
    }
    let sync = scandir::sync(&scandir, &state.live_path(), &names)?;
    crate::supervisor::for_config(cfg).notify(scandir.path())?;
    Ok(sync)
}
