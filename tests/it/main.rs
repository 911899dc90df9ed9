//! The integration suite: one test binary, one module per area. Every test
//! builds a temporary root from `fixtures/`, runs the real binary, and reads
//! the result back from disk.

mod harness;
mod invariant;

mod core;
mod crash;
