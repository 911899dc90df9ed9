//! `check`: validate the stock trees and list every problem (no writes).
//! Unchanged files are not read again: their hashes come from the stat
//! cache a commit saved, which `check` reads and never writes.

use serde::Serialize;

use super::Output;
use crate::config::Config;
use crate::error::Result;
use crate::state::State;
use crate::stock;
use crate::stock::stat_cache::StatCache;

#[derive(Debug, Serialize)]
struct CheckReport {
    trees: Vec<String>,
    services: Vec<String>,
    notes: Vec<String>,
    /// Symlinks left out of or kept as links in the copies (docs/design.md#links).
    notices: Vec<String>,
    /// Programs that cannot be executed: neither ELF nor `#!`, or a `#!`
    /// line ending in CR (docs/cli.md#check); they do not change the exit code.
    warnings: Vec<String>,
}

pub(crate) fn check(cfg: &Config) -> Result<Output> {
    // The stat cache a commit saved, read and never written: an unchanged
    // file is not read again (docs/performance.md#status-and-check-at-100000-services).
    let cache = StatCache::load(State::cache_to_read(cfg).as_ref());
    crate::output::report::debug(&format!("stat cache: {} entries loaded", cache.len()));
    let opts = stock::ScanOptions {
        report_only: true,
        ..stock::ScanOptions::default()
    };
    let mut stock = stock::scan(cfg, cache, opts)?;
    stock::restart_on::digest_restart_on(cfg, &mut stock)?;
    stock.cache = StatCache::default();
    // `check` lists every problem and exits 65 (or 75), held back or not.
    let stock = stock.all_or_nothing()?;
    let warnings = crate::stock::exec_format::exec_format_warnings(&stock);
    let report = CheckReport {
        trees: stock
            .trees
            .iter()
            .map(|t| t.display().to_string())
            .collect(),
        services: stock.services.keys().cloned().collect(),
        notes: stock.notes.clone(),
        notices: stock.notices.clone(),
        warnings,
    };
    let mut human = format!(
        "stock OK: {} services in {} tree(s)\n",
        report.services.len(),
        report.trees.len()
    );
    for n in &report.notes {
        human.push_str(&format!("  note: {n}\n"));
    }
    for n in &report.notices {
        human.push_str(&format!("  notice: {n}\n"));
    }
    for w in &report.warnings {
        human.push_str(&format!("  warning: {w}\n"));
    }
    Ok(Output::new(&report, human))
}
