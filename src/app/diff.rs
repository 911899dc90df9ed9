//! `diff [A] [B]`: compare generations — none = stock vs live; A = A vs
//! live; A B — with the changed files of each restarted service. Takes no
//! lock, writes nothing.

use serde::Serialize;

use super::{Output, plan_table};
use crate::cli::DiffArgs;
use crate::config::Config;
use crate::engine::{generations, stage};
use crate::error::{Error, Result};
use crate::model::plan;
use crate::state::State;

#[derive(Debug, Serialize)]
struct DiffReport<'a> {
    from: String,
    to: String,
    counts: plan::Counts,
    services: &'a [plan::ServiceChange],
}

/// `diff`: stock vs live; `diff A`: A vs live; `diff A B`: A vs B.
pub(crate) fn diff(cfg: &Config, args: &DiffArgs) -> Result<Output> {
    let state = State::open_current(cfg)?;
    let (from_name, to_name, plan) = match (args.a, args.b) {
        (None, _) => {
            let prepared = stage::prepare(cfg, state.as_ref())?;
            let from = prepared.live.as_ref().map_or_else(
                || "nothing".to_string(),
                |g| format!("generation {}", g.generation),
            );
            (from, "stock".to_string(), prepared.plan)
        }
        (Some(a), b) => {
            let Some(state) = state else {
                return Err(Error::NoGenerations {
                    state: cfg.state.clone(),
                });
            };
            let b = match b {
                Some(b) => b,
                None => state.live()?.ok_or_else(|| Error::NoLiveGeneration {
                    state: cfg.state.clone(),
                })?,
            };
            let plan = generations::diff_generations(&state, a, b)?;
            (format!("generation {a}"), format!("generation {b}"), plan)
        }
    };
    let counts = plan.counts();
    let mut human = format!("{from_name} -> {to_name}: {counts}\n");
    human.push_str(&plan_table(&plan));
    let report = DiffReport {
        from: from_name,
        to: to_name,
        counts,
        services: &plan.services,
    };
    Ok(Output::new(&report, human))
}
