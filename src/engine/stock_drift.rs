//! `verify --stock` (docs/performance.md#hints): the whole stock read as a
//! plain commit would read it and compared with `live`, service by
//! service. A hinted commit (`commit --changed`) reads only the services
//! its paths name, so a path it was not given leaves that service's stock
//! and live apart until the next full commit; this names them. Reads only.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::model::plan::{Action, ServiceChange};
use crate::state::State;

use super::stage;

/// The live generation and the services whose stock differs from it.
pub(crate) struct StockDrift {
    /// The live generation.
    pub generation: u64,
    /// How many services it has.
    pub services: usize,
    /// What a full commit would change, in name order.
    pub drifted: Vec<ServiceChange>,
}

/// Reads the stock and compares it with `live` (exit 65 with
/// [`Error::NoLiveGeneration`] when nothing is live).
pub(crate) fn stock_drift(cfg: &Config, state: &State) -> Result<StockDrift> {
    let prepared = stage::prepare(cfg, Some(state))?;
    let Some(live) = &prepared.live else {
        return Err(Error::NoLiveGeneration {
            state: cfg.state.clone(),
        });
    };
    Ok(StockDrift {
        generation: live.generation,
        services: live.services.len(),
        drifted: prepared
            .plan
            .services
            .into_iter()
            .filter(|c| c.action != Action::Keep)
            .collect(),
    })
}

/// One line for a service that drifted: its name and how.
pub(crate) fn describe(change: &ServiceChange) -> String {
    let how = match change.action {
        Action::Start => "in the stock, not live".to_string(),
        Action::Stop => "live, no longer in the stock".to_string(),
        Action::Restart | Action::Keep => format!("differs from live ({})", change.reason),
    };
    format!("{}: {how}", crate::model::shown::shown(&change.name))
}
