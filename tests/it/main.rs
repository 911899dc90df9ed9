//! The integration suite: one test binary, one module per area. Every test
//! builds a temporary root from `fixtures/`, runs the real binary, and reads
//! the result back from disk.

// Tests may unwrap: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod invariant;

mod bench;
mod concurrency;
mod core;
mod crash;
mod durability;
mod gc;
mod random_kill;
mod recovery;
