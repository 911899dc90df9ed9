//! Termination signals during a transaction (docs/security.md#a-signal-during-a-transaction-finishes-or-undoes-it).
//!
//! While a [`Deferred`] guard lives, SIGTERM, SIGINT and SIGHUP do not kill
//! the process between two effects of a transaction (which left stopped
//! services "want down" until the next writing command): the signal is
//! recorded, and the switch protocol asks [`Deferred::received`] at its
//! step boundaries, then undoes or completes the transaction and exits
//! with its own code. Outside a guard the three keep their default action.
//! The handlers are signal-hook's (async-signal-safe stores to atomics);
//! this module only records, it never decides what a transaction does.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::error::{Error, Result};

/// The signals a transaction defers.
const DEFERRED: [(i32, &str); 3] = [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT"), (SIGHUP, "SIGHUP")];

/// The flags the handlers share with the process: installed once, on the
/// first transaction, and kept (signal-hook cannot restore the default
/// handler; the `outside` flag gives the default action back instead).
struct Handlers {
    /// No transaction is in hand: a signal takes its default action.
    outside: Arc<AtomicBool>,
    /// The last deferred signal received, 0 for none.
    received: Arc<AtomicUsize>,
}

static HANDLERS: OnceLock<std::result::Result<Handlers, String>> = OnceLock::new();

fn install() -> std::result::Result<Handlers, String> {
    let handlers = Handlers {
        outside: Arc::new(AtomicBool::new(true)),
        received: Arc::new(AtomicUsize::new(0)),
    };
    for (signal, name) in DEFERRED {
        // Registered first, so that outside a transaction the default
        // action runs before anything is recorded.
        signal_hook::flag::register_conditional_default(signal, Arc::clone(&handlers.outside))
            .and_then(|_| {
                let number = usize::try_from(signal).unwrap_or(usize::MAX);
                signal_hook::flag::register_usize(signal, Arc::clone(&handlers.received), number)
            })
            .map_err(|e| format!("cannot handle {name}: {e}"))?;
    }
    Ok(handlers)
}

/// While alive, the deferred signals are recorded instead of ending the
/// process; dropping it gives them their default action back.
#[derive(Debug)]
pub(crate) struct Deferred {
    _private: (),
}

impl Deferred {
    /// Starts deferring SIGTERM, SIGINT and SIGHUP, forgetting any received
    /// by an earlier transaction of this process.
    pub(crate) fn begin() -> Result<Deferred> {
        let handlers = HANDLERS.get_or_init(install).as_ref().map_err(|e| {
            Error::io(
                "cannot set up",
                "signal handlers",
                std::io::Error::other(e.clone()),
            )
        })?;
        handlers.received.store(0, Ordering::SeqCst);
        handlers.outside.store(false, Ordering::SeqCst);
        Ok(Deferred { _private: () })
    }

    /// The name of the signal received since [`Deferred::begin`], if any.
    pub(crate) fn received(&self) -> Option<&'static str> {
        let handlers = HANDLERS.get()?.as_ref().ok()?;
        let number = handlers.received.load(Ordering::SeqCst);
        DEFERRED
            .iter()
            .find(|(signal, _)| usize::try_from(*signal).is_ok_and(|s| s == number))
            .map(|(_, name)| *name)
    }
}

impl Drop for Deferred {
    fn drop(&mut self) {
        if let Some(Ok(handlers)) = HANDLERS.get() {
            handlers.outside.store(true, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_inside_the_guard_is_recorded_not_fatal() {
        let guard = Deferred::begin().unwrap();
        assert_eq!(guard.received(), None);
        signal_hook::low_level::raise(SIGHUP).unwrap();
        assert_eq!(guard.received(), Some("SIGHUP"));
        drop(guard);
        // A new transaction starts with nothing received.
        let again = Deferred::begin().unwrap();
        assert_eq!(again.received(), None);
    }
}
