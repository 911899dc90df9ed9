//! The integration suite: one test binary, one module per area. Every test
//! builds a temporary root from `fixtures/`, runs the real binary, and reads
//! the result back from disk.

// Test code: a failed unwrap is a failed test, and the fd-relative `sys::fs`
// discipline (clippy.toml `disallowed-methods`) guards src/, not fixtures
// that tests build with plain std calls.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
// Tests and benches report to the terminal that runs them.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// A test binary has no public API: `pub` only shares helpers between its modules.
#![allow(unreachable_pub, missing_docs)]
// The 80-line limit is for src/; a scenario test reads best as one story.
#![allow(clippy::too_many_lines)]

mod harness;
mod invariant;
mod supervise_harness;

mod badinput;
mod bench;
mod boot;
mod capture;
mod completions;
mod core;
mod descriptors;
mod diff_patch;
mod distros;
mod dormant;
mod dpkg;
mod durability;
mod escaping;
mod gc;
mod guide;
mod held_back;
mod hints;
mod hostile;
mod interface;
mod json_errors;
mod lock_access;
mod locks;
mod messages;
mod nonroot;
mod operator;
mod pacman;
mod pending;
mod pipes;
mod power_loss;
mod powercut_fs;
mod progress;
mod pwd;
mod recovery;
mod repair;
mod restart_on;
mod service_view;
mod signals;
mod stat_cache;
mod status_check;
mod status_truth;
mod stock_busy;
mod store_owner;
mod summaries;
mod supervisor_check;
mod unchanged;

/// The slow classes, out of the inner loop with `--skip slow::`
/// (README.md#development): random kills, the crash matrix, the CPU-heavy
/// concurrency test and the real supervisors (a pass of their own, one at a
/// time: scripts/test.sh). The files stay beside the others.
#[path = "."]
mod slow {
    pub mod concurrency;
    pub mod crash;
    pub mod descriptors_slow;
    pub mod powercut;
    pub mod random_kill;
    pub mod service_view_supervised;
    pub mod supervisors;
}
