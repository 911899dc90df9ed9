//! `verify --stock`: read the whole stock and name every service whose
//! stock differs from its live version ([`crate::engine::stock_drift`]);
//! exit 65 (`stock_drift`) if one does. Takes no lock, writes nothing.

use serde::Serialize;

use super::Output;
use crate::config::Config;
use crate::engine::stock_drift;
use crate::error::{Error, Result};
use crate::state::State;
use crate::stock;

#[derive(Debug, Serialize)]
struct VerifyStockReport {
    generation: u64,
    services: usize,
    /// Empty: this report is printed only when nothing drifted.
    drifted: Vec<String>,
}

pub(crate) fn verify_stock(cfg: &Config) -> Result<Output> {
    stock::check_trees_exist(cfg)?;
    let Some(state) = State::open_current(cfg)? else {
        return Err(Error::NoGenerations {
            state: cfg.state.clone(),
        });
    };
    let found = stock_drift::stock_drift(cfg, &state)?;
    if !found.drifted.is_empty() {
        return Err(Error::StockDrift {
            generation: found.generation,
            services: found.drifted.iter().map(stock_drift::describe).collect(),
        });
    }
    let human = format!(
        "generation {}: the stock matches live for all {} services\n",
        found.generation, found.services
    );
    let report = VerifyStockReport {
        generation: found.generation,
        services: found.services,
        drifted: Vec::new(),
    };
    Ok(Output::new(&report, human))
}
