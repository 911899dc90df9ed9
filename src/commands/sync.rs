//! `sync`: rebuild the scan directory from `live` (at boot, when the scan
//! directory is on tmpfs), idempotently, say what changed, and notify the
//! scanner (harmless when nothing changed; needed when it missed a change).

use super::{Output, commit};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::generation;
use crate::lock::ManagerLock;
use crate::state::State;

pub fn sync(cfg: &Config, wait: std::time::Duration) -> Result<Output> {
    let Some(state) = State::open(cfg)? else {
        return Err(Error::bad_input(format!(
            "{} holds no generations yet; run `svcdir-update commit` first",
            cfg.state.display()
        )));
    };
    let _lock = ManagerLock::acquire(&state.dir, wait)?;
    super::recover::finish_interrupted(cfg, &state)?;
    let Some(live) = state.live()? else {
        return Err(Error::bad_input(
            "no generation is live yet; run `svcdir-update commit` first",
        ));
    };
    let m = generation::load(&state, live)?;
    let sync = commit::repair_scandir(cfg, &state, &m)?;
    if !sync.changed() {
        // The links are right, but the scanner may not have seen them (it
        // started before them, or missed a notification): tell it anyway.
        crate::supervisor::for_config(cfg).notify(&cfg.scandir)?;
    }
    let human = if sync.changed() {
        format!(
            "{}: {} link(s) added, {} removed (generation {live})\n",
            cfg.scandir.display(),
            sync.added.len(),
            sync.removed.len()
        )
    } else {
        format!(
            "{}: already in sync with generation {live}\n",
            cfg.scandir.display()
        )
    };
    Ok(Output::new(&sync, human))
}
