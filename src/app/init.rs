//! `init`: create the state layout, the update locks' directory (with the
//! locks of live services) and the scan directory. Idempotent.

use serde::Serialize;

use super::Output;
use std::path::Path;

use crate::config::{self, Config, Supervisor};
use crate::error::Result;
use crate::locks::update;
use crate::model::shown::shown;
use crate::output::report;
use crate::state::{self, State, generation};
use crate::supervisor::detect;

#[derive(Serialize)]
struct Init {
    state: String,
    scandir: String,
    runtime: String,
    /// The config file `init` wrote, when there was none.
    config_written: Option<String>,
    /// The family whose scanner watches the scan directory, if any.
    detected_supervisor: Option<Supervisor>,
}

/// `init`; `new_config` is where the config file would be read from when
/// there is none yet (`--root DIR`: `DIR/config.yaml`; else the default
/// path), and `init` writes one there with the supervisor it detects.
pub(crate) fn init(cfg: &Config, new_config: Option<&Path>) -> Result<Output> {
    let state = State::init(cfg)?;
    update::locks_dir(cfg)?;
    if let Some(live) = state.live()? {
        let m = generation::load(&state, live)?;
        update::ensure_files(cfg, m.services.keys().map(String::as_str))?;
    }
    state::scandir::open(cfg)?;
    let detected = detect::scanner_of(&cfg.scandir);
    let written = match new_config.filter(|_| cfg.source.is_none()) {
        Some(path) => {
            let why = match detected {
                Some(family) => format!(
                    "{} watched {} at init",
                    detect::scanner_name(family),
                    cfg.scandir.display()
                ),
                None => format!("no scanner watched {} at init", cfg.scandir.display()),
            };
            config::write_new_config(path, detected.unwrap_or(Supervisor::None), &why)?
                .then(|| path.display().to_string())
        }
        None => None,
    };
    let mut human = format!(
        "initialized {} (scan directory {}, runtime {})\n",
        shown(&state.path()),
        shown(&cfg.scandir),
        shown(&cfg.runtime)
    );
    if let Some(path) = &written {
        human.push_str(&match detected {
            Some(family) => format!(
                "wrote {path}: supervisor: {} ({} watches the scan directory)\n",
                family.key(),
                detect::scanner_name(family)
            ),
            None => format!(
                "wrote {path}: supervisor: none (no s6-svscan, runsvdir or svscan watches the \
                 scan directory; edit it once one does)\n"
            ),
        });
    } else if detected.is_some_and(|f| f != cfg.supervisor) {
        report::warn(&format!(
            "{} watches {}, but the config says `supervisor: {}`",
            detect::scanner_name(detected.unwrap_or(Supervisor::None)),
            cfg.scandir.display(),
            cfg.supervisor.key()
        ));
    }
    Ok(Output::new(
        &Init {
            state: state.path().display().to_string(),
            scandir: cfg.scandir.display().to_string(),
            runtime: cfg.runtime.display().to_string(),
            config_written: written,
            detected_supervisor: detected,
        },
        human,
    ))
}
