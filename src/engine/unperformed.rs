//! Saying so when nothing performs what a switch planned
//! (docs/cli.md#supervisor-check): with `supervisor: none` nobody stops
//! or restarts an instance that runs, and with a supervisor configured but
//! no scanner of its family watching the scan directory nothing starts the
//! new versions. Both used to pass in silence while the summary said
//! `restart`. This module only looks and warns.

use crate::config::{Config, Supervisor};
use crate::model::plan::{Action, Plan};
use crate::output::report;
use crate::supervisor::detect;

/// What to say about `plan`, just switched under `cfg`, if nothing
/// performs its restarts, stops or starts: a warning (`true`), or a note
/// when no scanner watches and none is configured either (files only,
/// like the sandbox of docs/guide.md; `-q` silences it).
pub(crate) fn unperformed_warning(cfg: &Config, plan: &Plan) -> Option<(bool, String)> {
    let names = |actions: &[Action]| -> Vec<&str> {
        plan.services
            .iter()
            .filter(|s| actions.contains(&s.action))
            .map(|s| s.name.as_str())
            .collect()
    };
    let scandir = cfg.scandir.display().to_string().escape_debug().to_string();
    if cfg.supervisor == Supervisor::None {
        let old = names(&[Action::Restart, Action::Stop]);
        if old.is_empty() {
            return None;
        }
        // Only now: reading /proc costs a few milliseconds.
        let watcher = detect::scanner_of(&cfg.scandir);
        let watched = match watcher {
            Some(family) => format!(
                "{} watches {scandir}, so the old instances keep running; set `supervisor: {}` \
                 in the config, then run `svcdir-update commit --restart {}`",
                detect::scanner_name(family),
                family.key(),
                old.join(" ")
            ),
            None => format!(
                "no scanner watches {scandir} either; set `supervisor:` in the config (s6, \
                 runit or daemontools) if one will"
            ),
        };
        return Some((
            watcher.is_some(),
            format!(
                "supervisor: none, so nothing stopped or restarted {}: {watched}",
                old.join(", ")
            ),
        ));
    }
    let new = names(&[Action::Restart, Action::Start]);
    if new.is_empty() {
        return None;
    }
    let watcher = detect::scanner_of(&cfg.scandir);
    if watcher == Some(cfg.supervisor) {
        return None;
    }
    let configured = detect::scanner_name(cfg.supervisor);
    let names = new.join(", ");
    let warning = match watcher {
        Some(other) => format!(
            "no {configured} watches {scandir}, but {} does: {names} will not start until a \
             {configured} runs; set `supervisor: {}` in the config if {} is the one",
            detect::scanner_name(other),
            other.key(),
            detect::scanner_name(other)
        ),
        None => format!("no {configured} watches {scandir}: {names} will not start until it runs"),
    };
    Some((true, warning))
}

/// Prints an [`unperformed_warning`], if any, on stderr.
pub(crate) fn say(warning: Option<(bool, String)>) {
    match warning {
        Some((true, warning)) => report::warn(&warning),
        Some((false, note)) => report::info(&note),
        None => {}
    }
}
