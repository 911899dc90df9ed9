//! `lock NAME -- CMD…`: run a command holding a service's update lock
//! shared, like `flock -s -o LOCKFILE CMD…` (docs/update-locks.md#update-locks).
//!
//! The lock fd is close-on-exec, so the command does not inherit it: this
//! process holds the lock and waits for the command, and the lock is
//! released when the command ends (or when this process dies). The exit
//! status is the command's (128+N when a signal N ended it); 75 when the
//! lock was not free within `--wait`; 127/126 when the command cannot be
//! run. This module never touches a service or the state directory.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use serde::Serialize;

use super::Output;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::locks::holders::{self, LockMode};
use crate::locks::lock_dir::try_lock_naming_holders;
use crate::locks::update;
use crate::locks::wait;
use crate::model::names;
use crate::model::shown::shown;
use crate::output::report;
use crate::sys::fs;

#[derive(Debug, Serialize)]
struct LockReport {
    service: String,
    status: u8,
}

pub(crate) fn lock(
    cfg: &Config,
    name: &str,
    command: &[OsString],
    wait: Duration,
) -> Result<Output> {
    if let Some(problem) = names::name_problem(name.as_bytes()) {
        return Err(Error::usage(problem));
    }
    let Some((program, args)) = command.split_first() else {
        return Err(Error::usage("lock NAME -- CMD…: the command is missing"));
    };
    let path = update::path(cfg, name);
    let file = if fs::is_root() {
        update::locks_dir(cfg)?.open(name, false)?
    } else {
        // Services open the lock read-only; only root creates it.
        update::try_locks_dir(cfg)?
            .map(|d| d.try_open_existing(name))
            .transpose()?
            .flatten()
            .ok_or_else(|| Error::NoUpdateLock {
                service: name.to_string(),
                lock: path.clone(),
            })?
    };
    wait::acquire(
        wait,
        |names| try_lock_naming_holders(&file, LockMode::Shared, &path, names),
        |holders| format!("{} held by {}", shown(&path), holders::describe(holders)),
        |holders| {
            Err(Error::UpdateInProgress {
                service: name.to_string(),
                lock: path.clone(),
                holders: holders::describe(&holders),
            })
        },
    )?;
    let status = match std::process::Command::new(program).args(args).status() {
        Ok(st) => match (st.code(), st.signal()) {
            (Some(code), _) => u8::try_from(code).unwrap_or(u8::MAX),
            (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(u8::MAX),
            (None, None) => u8::MAX,
        },
        Err(e) => {
            report::warn(&format!("cannot run {}: {e}", shown(&program)));
            if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            }
        }
    };
    drop(file);
    let report = LockReport {
        service: name.to_string(),
        status,
    };
    Ok(Output::new(&report, String::new()).with_code(status))
}
