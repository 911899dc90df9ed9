//! The entry budget that all services of one scan share (`limits:
//! {max_entries: N}` in the config), so that a hostile stock tree cannot
//! exhaust memory. Counting only; it never reads the file system.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::config::Config;
use crate::error::Problem;

/// The entries left to the parallel walkers of one scan.
pub(super) struct EntryBudget {
    left: AtomicU64,
    /// Set when an entry found no budget left: exactly `max_entries` is fine.
    exceeded: AtomicBool,
}

impl EntryBudget {
    pub(super) fn new(max_entries: u64) -> EntryBudget {
        EntryBudget {
            left: AtomicU64::new(max_entries),
            exceeded: AtomicBool::new(false),
        }
    }

    /// Takes one entry from the budget; `false` (and the budget marked as
    /// exceeded) when none is left.
    pub(super) fn take(&self) -> bool {
        let ok = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !ok {
            self.exceeded.store(true, Ordering::Relaxed);
        }
        ok
    }

    /// The problem to report once the walk is over, if an entry found the
    /// budget empty.
    pub(super) fn exceeded_problem(&self, cfg: &Config) -> Option<Problem> {
        if !self.exceeded.load(Ordering::Relaxed) {
            return None;
        }
        Some(Problem {
            path: cfg
                .stock
                .first()
                .map(|t| t.path.clone())
                .unwrap_or_default(),
            what: format!(
                "the stock trees hold more than {} entries",
                cfg.limits.max_entries
            ),
            fix: "raise `limits: {max_entries: N}` in the config if this is intended".into(),
            transient: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_budget_is_not_exceeded() {
        let budget = EntryBudget::new(2);
        assert!(budget.take());
        assert!(budget.take());
        assert!(!budget.exceeded.load(Ordering::Relaxed));
        assert!(!budget.take());
        assert!(budget.exceeded.load(Ordering::Relaxed));
    }
}
