//! `sync`: rebuild the scan directory from `live` (at boot, when the scan
//! directory is on tmpfs), idempotently, and say what changed.

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
