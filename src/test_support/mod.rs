//! Helpers for the unit tests only (compiled under `cfg(test)`): damaged
//! copies of parser inputs.

pub(crate) mod mutate;
