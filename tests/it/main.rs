//! The integration suite: one test binary, one module per area. Every test
//! builds a temporary root from `fixtures/`, runs the real binary, and reads
//! the result back from disk.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test binary: panics are failures

mod harness;
mod supervise_harness;

mod core;
mod supervisors;
