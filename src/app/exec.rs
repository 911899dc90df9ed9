//! `exec NAME [PROGRAM] [-- ARGS…]`: a pinned launch (docs/update-locks.md#pinned-launches).
//!
//! Resolves `live` once, pins the service's store object (a shared flock on
//! `<runtime>/pins/<object>.pin`, on an fd without close-on-exec) and
//! replaces this process with PROGRAM (default `run`) from the *object*
//! directory, with that directory as cwd. A later switch of `live` changes
//! nothing under the program, and `gc` keeps the object while the pin fd —
//! inherited by the program and its children — is open. This module never
//! writes the state directory.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path};
use std::time::{Duration, Instant};

use super::Output;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::locks::holders;
use crate::locks::pin;
use crate::locks::wait::{self, Attempt};
use crate::model::names;
use crate::model::shown::shown;
use crate::state::State;
use crate::state::generation;
use crate::state::layout;
use crate::sys::fs::Beneath;

/// The environment variable that tells the program which object it runs from.
pub(crate) const OBJECT_ENV: &str = "SVCDIR_UPDATE_OBJECT";

/// How often `exec` resolves `live` again when `gc` removed the object it
/// resolved in between.
const RESOLVE_ATTEMPTS: usize = 5;

pub(crate) fn exec(
    cfg: &Config,
    name: &str,
    program: Option<&Path>,
    args: &[OsString],
    wait: Duration,
) -> Result<Output> {
    if let Some(problem) = names::name_problem(name.as_bytes()) {
        return Err(Error::usage(problem));
    }
    let program = program.unwrap_or(Path::new("run"));
    if program.as_os_str().is_empty()
        || !program
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(Error::usage(format!(
            "{}: the program must be a path inside the service directory, like `run` or `log/run`",
            shown(&program)
        )));
    }
    let Some(state) = State::open_current(cfg)? else {
        return Err(Error::NoGenerations {
            state: cfg.state.clone(),
        });
    };
    let pins = pin::pins_dir(cfg)?;
    let deadline = Instant::now() + wait;
    for _ in 0..RESOLVE_ATTEMPTS {
        let live = state.live()?.ok_or_else(|| Error::NoLiveGeneration {
            state: cfg.state.clone(),
        })?;
        let m = generation::load(&state, live)?;
        let Some(object) = m.services.get(name) else {
            return Err(Error::NoSuchService {
                generation: live,
                service: name.to_string(),
            });
        };
        // Pin first, then check the object is still there: `gc` removes an
        // object only while it holds the pin exclusively.
        let pin_path = pins.path(object);
        // Holders are named from `/proc`: `gc`, or whoever else it is.
        let pin_file = wait::acquire(
            deadline.saturating_duration_since(Instant::now()),
            |names| {
                Ok(match pin::try_pin_inheritable(&pins, object)? {
                    Some(f) => Attempt::Taken(f),
                    None if names.0 => Attempt::Busy(pins.holders(object)?),
                    None => Attempt::Busy(Vec::new()),
                })
            },
            |holders| {
                format!(
                    "{} held by {}",
                    shown(&pin_path),
                    holders::describe(holders)
                )
            },
            |holders| {
                Err(Error::PinHeld {
                    pin: pin_path.clone(),
                    holders: holders::describe(&holders),
                })
            },
        )?;
        if state
            .store
            .try_open_dir(layout::object_service_dir(object))?
            .is_none()
        {
            continue; // collected between resolving and pinning: resolve again
        }
        let dir = state.object_path(object);
        let path = dir.join(program);
        let resolved = dir.join(program_beneath(&state, object, program, &path)?);
        // Only returns on failure; on success the program inherits `pin_file`.
        let err = std::process::Command::new(&resolved)
            .arg0(&path)
            .args(args)
            .current_dir(&dir)
            .env(OBJECT_ENV, &dir)
            .exec();
        drop(pin_file);
        return Err(Error::io("cannot execute", path, err));
    }
    Err(Error::LiveObjectChanging {
        service: name.to_string(),
    })
}

/// `program` inside the service directory of `object` with its symlinks
/// resolved there, so that what runs is pinned with the object; a link
/// that leaves the object (`bin -> /usr/bin`) is refused, exit 77
/// (docs/security.md#exec-runs-only-what-the-store-object-holds).
fn program_beneath(
    state: &State,
    object: &str,
    program: &Path,
    shown: &Path,
) -> Result<std::path::PathBuf> {
    let dir = state.store.open_dir(layout::object_service_dir(object))?;
    match dir.resolve_beneath(program)? {
        Beneath::Inside(resolved) => Ok(resolved),
        Beneath::Leaves { link, target } => Err(Error::Unsafe {
            role: "program",
            path: shown.to_path_buf(),
            found: format!(
                "leads out of the store object ({} -> {}), so it would not be pinned",
                link.display(),
                target.display()
            ),
            fix: "name a program inside the service directory, or run the outside one directly"
                .into(),
        }),
    }
}
