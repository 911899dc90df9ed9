//! The integration suite: one test binary, one module per area. Every test
//! builds a temporary root from `fixtures/`, runs the real binary, and reads
//! the result back from disk.

// The suite is test code throughout: a failed unwrap is a failed test.
// (`allow-unwrap-in-tests` covers only `#[test]` functions, not the harness
// and helpers, so clippy --all-targets failed on the harness.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod core;
mod locks;
