//! `plan`: show what `commit` would do, and why — the stock compared with
//! `live` ([`crate::engine::stage::prepare`]). Takes no lock, writes nothing.

use serde::Serialize;

use super::{Output, plan_table};
use crate::cli::PlanArgs;
use crate::config::Config;
use crate::engine::stage;
use crate::error::Result;
use crate::model::plan;
use crate::state::State;
use crate::stock;
use crate::stock::held_back::HeldBack;

#[derive(Debug, Serialize)]
struct PlanReport<'a> {
    live: Option<u64>,
    up_to_date: bool,
    counts: plan::Counts,
    services: &'a [plan::ServiceChange],
    /// Stock services `commit` would leave out (docs/json.md#plan).
    held_back: &'a [HeldBack],
}

pub(crate) fn plan(cfg: &Config, args: &PlanArgs) -> Result<Output> {
    let cfg = &Config {
        strict: cfg.strict || args.strict,
        rehash: args.rehash,
        ..cfg.clone()
    };
    stock::check_trees_exist(cfg)?;
    let state = State::open_current(cfg)?;
    let prepared = stage::prepare(cfg, state.as_ref())?;
    let live = prepared.live.as_ref().map(|g| g.generation);
    let report = PlanReport {
        live,
        up_to_date: prepared.plan.is_noop() && live.is_some(),
        counts: prepared.plan.counts(),
        services: &prepared.plan.services,
        held_back: &prepared.stock.held_back,
    };
    let mut human = match live {
        Some(n) if report.up_to_date => format!("up to date: generation {n} matches the stock\n"),
        Some(n) => format!("generation {n} -> new generation: {}\n", report.counts),
        None => format!("no generation yet -> generation 1: {}\n", report.counts),
    };
    human.push_str(&plan_table(&prepared.plan));
    for held in report.held_back {
        human.push_str(&format!("{}\n", held.describe()));
    }
    if report.counts.stops_everything() {
        human.push_str(
            "warning: this would stop every live service and keep none; `commit` refuses \
             without --allow-stop-all (is the stock path right?)\n",
        );
    }
    Ok(Output::new(&report, human))
}
