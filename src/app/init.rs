//! `init`: create the state layout, the update locks' directory (with the
//! locks of live services) and the scan directory. Idempotent.

use serde::Serialize;

use super::Output;
use crate::config::Config;
use crate::error::Result;
use crate::locks::update;
use crate::model::shown::shown;
use crate::state::{self, State, generation};

#[derive(Serialize)]
struct Init {
    state: String,
    scandir: String,
    runtime: String,
}

pub(crate) fn init(cfg: &Config) -> Result<Output> {
    let state = State::init(cfg)?;
    update::locks_dir(cfg)?;
    if let Some(live) = state.live()? {
        let m = generation::load(&state, live)?;
        update::ensure_files(cfg, m.services.keys().map(String::as_str))?;
    }
    state::scandir::open(cfg)?;
    let human = format!(
        "initialized {} (scan directory {}, runtime {})\n",
        shown(&state.path()),
        shown(&cfg.scandir),
        shown(&cfg.runtime)
    );
    Ok(Output::new(
        &Init {
            state: state.path().display().to_string(),
            scandir: cfg.scandir.display().to_string(),
            runtime: cfg.runtime.display().to_string(),
        },
        human,
    ))
}
