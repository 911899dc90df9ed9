//! The one wait loop for every lock the tool waits for (the manager lock,
//! update locks, pins): try; if busy, say once who holds it; poll to the
//! deadline; at the deadline let the caller fail with a message naming the
//! holders (the shape of cargo's `flock.rs`).
//!
//! What is tried, and what "busy" carries, is the caller's: this module
//! never opens, locks or inspects a file itself, and never waits past the
//! deadline it was given.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::output::report;

/// How often a waiter retries a held lock.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// The outcome of one try: taken, or busy with what blocks it.
#[derive(Debug)]
pub(crate) enum Attempt<T, B> {
    /// Got it.
    Taken(T),
    /// Held by someone else; `B` says by whom.
    Busy(B),
}

/// Whether a try should name the holders. Naming them is a scan of `/proc`,
/// so it is asked for only on the first try (for the "waiting" line) and
/// the last (for the failure message), not on every poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NameHolders(pub bool);

/// Tries `try_once` until it is [`Attempt::Taken`] or `wait` has passed.
///
/// The first busy try prints one line, `waiting up to {wait}s for
/// {waiting_for(busy)}`, unless the deadline has already passed (`--wait
/// 0` never announces a wait). The try at the deadline that is still busy
/// is handed to `give_up`, which builds the caller's error (or accepts
/// what it has, like `gc` keeping pinned objects).
pub(crate) fn acquire<T, B>(
    wait: Duration,
    mut try_once: impl FnMut(NameHolders) -> Result<Attempt<T, B>>,
    waiting_for: impl FnOnce(&B) -> String,
    give_up: impl FnOnce(B) -> Result<T>,
) -> Result<T> {
    let deadline = Instant::now() + wait;
    let mut waiting_for = Some(waiting_for);
    loop {
        // Decided before the try, so the last try names the holders.
        let last = Instant::now() >= deadline;
        let busy = match try_once(NameHolders(last || waiting_for.is_some()))? {
            Attempt::Taken(taken) => return Ok(taken),
            Attempt::Busy(busy) => busy,
        };
        if last {
            return give_up(busy);
        }
        if let Some(describe) = waiting_for.take() {
            report::info(&format!(
                "waiting up to {:.1}s for {}",
                wait.as_secs_f64(),
                describe(&busy)
            ));
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_free_lock_is_taken_on_the_first_try_without_naming_anyone() {
        let mut asked = Vec::new();
        let got = acquire(
            Duration::from_secs(5),
            |names| {
                asked.push(names);
                Ok(Attempt::<_, ()>::Taken(7))
            },
            |()| unreachable!("nothing is busy"),
            |()| unreachable!("nothing is busy"),
        );
        assert_eq!(got.ok(), Some(7));
        assert_eq!(asked, [NameHolders(true)]);
    }

    #[test]
    fn a_busy_lock_is_polled_until_free_naming_holders_only_first() {
        let mut tries = 0;
        let mut asked = Vec::new();
        let got = acquire(
            Duration::from_secs(30),
            |names| {
                tries += 1;
                asked.push(names);
                Ok(if tries < 4 {
                    Attempt::Busy("pid 1")
                } else {
                    Attempt::Taken(tries)
                })
            },
            |who| format!("the lock held by {who}"),
            |_| unreachable!("freed long before the deadline"),
        );
        assert_eq!(got.ok(), Some(4));
        assert_eq!(
            asked,
            [
                NameHolders(true),
                NameHolders(false),
                NameHolders(false),
                NameHolders(false)
            ]
        );
    }

    #[test]
    fn at_the_deadline_the_last_busy_try_names_holders_and_gives_up() {
        let start = Instant::now();
        let mut asked = Vec::new();
        let got: Result<()> = acquire(
            Duration::from_millis(100),
            |names| {
                asked.push(names);
                Ok(Attempt::Busy(asked.len()))
            },
            |n| format!("try {n}"),
            |n| {
                Err(Error::ManagerLockHeld {
                    lock: "/run/lock".into(),
                    holder: Some(format!("still held after {n} tries")),
                    foreign: false,
                })
            },
        );
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(
            matches!(&got, Err(e) if e.is_deferral() && e.to_string().contains("tries")),
            "{got:?}"
        );
        assert!(asked.len() >= 2, "{asked:?}");
        assert_eq!(asked.first(), Some(&NameHolders(true)));
        assert_eq!(asked.last(), Some(&NameHolders(true)));
        assert!(asked[1..asked.len() - 1].iter().all(|n| !n.0), "{asked:?}");
    }

    #[test]
    fn without_a_wait_one_try_gives_up_at_once() {
        let mut tries = 0;
        let got = acquire(
            Duration::ZERO,
            |_| {
                tries += 1;
                Ok(Attempt::<(), _>::Busy(()))
            },
            |()| unreachable!("no wait is announced"),
            |()| {
                Err(Error::PinHeld {
                    pin: "/run/pin".into(),
                    holders: "pid 1".into(),
                })
            },
        );
        assert!(got.is_err());
        assert_eq!(tries, 1);
    }
}
