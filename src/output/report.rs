//! Messages to the operator on stderr, by verbosity (`-q`, default, `-v`).
//!
//! Results go to stdout (human text or one JSON document, from the command
//! modules); everything said along the way goes through here, written by
//! [`super::write_stderr`] so that a closed stderr never stops a command.

use std::sync::atomic::{AtomicBool, AtomicI8, Ordering};

static VERBOSITY: AtomicI8 = AtomicI8::new(0);
static JSON: AtomicBool = AtomicBool::new(false);

/// Whether the result is wanted as JSON (`--json`); commands skip building
/// the JSON document otherwise (it is large for 10,000 services).
pub(crate) fn set_json(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

pub(crate) fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// -1 quiet, 0 normal, 1+ verbose.
pub(crate) fn set_verbosity(level: i8) {
    VERBOSITY.store(level, Ordering::Relaxed);
}

pub(crate) fn verbosity() -> i8 {
    VERBOSITY.load(Ordering::Relaxed)
}

/// Progress and notices; hidden by `-q`.
pub(crate) fn info(msg: &str) {
    if verbosity() >= 0 {
        super::write_stderr(&format!("svcdir-update: {msg}\n"));
    }
}

/// Things that may need attention; shown even with `-q`.
pub(crate) fn warn(msg: &str) {
    super::write_stderr(&format!("svcdir-update: warning: {msg}\n"));
}

/// Detail for `-v`.
pub(crate) fn debug(msg: &str) {
    if verbosity() >= 1 {
        super::write_stderr(&format!("svcdir-update: {msg}\n"));
    }
}

/// Detail for `-vv`: every supervisor command run, one line per poll.
pub(crate) fn trace(msg: &str) {
    if verbosity() >= 2 {
        super::write_stderr(&format!("svcdir-update: {msg}\n"));
    }
}
