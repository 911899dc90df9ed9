//! `diff [A] [B] [SERVICE]`: compare generations — none = stock vs live;
//! A = A vs live; A B — with the changed files of each restarted service;
//! `-p` adds the content of those files as unified diffs, like `git diff`
//! (docs/cli.md#diff--p-content-diffs). Takes no lock, writes nothing.

use serde::Serialize;

use super::{Output, plan_table};
use crate::cli::DiffArgs;
use crate::config::Config;
use crate::engine::patch::{self, Body, FilePatch};
use crate::engine::{generations, stage};
use crate::error::{Error, Result};
use crate::model::plan;
use crate::model::shown::{shown, terminal_safe};
use crate::state::State;

#[derive(Debug, Serialize)]
struct DiffReport<'a> {
    from: String,
    to: String,
    counts: plan::Counts,
    services: &'a [plan::ServiceChange],
    /// With `-p`: every changed path with its digests.
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<&'a [FilePatch]>,
}

/// `diff`: stock vs live; `diff A`: A vs live; `diff A B`: A vs B.
pub(crate) fn diff(cfg: &Config, args: &DiffArgs) -> Result<Output> {
    let (b, service) = generation_and_service(args)?;
    let state = State::open_current(cfg)?;
    let (from_name, to_name, mut plan, state) = match (args.a, b) {
        (None, _) if args.patch => {
            return Err(Error::usage(
                "diff -p compares the contents of two generations: name one, e.g. \
                 `svcdir-update diff -p 3` for generation 3 against live \
                 (stock against live: `svcdir-update plan` names the changed files)",
            ));
        }
        (None, _) => {
            let prepared = stage::prepare(cfg, state.as_ref())?;
            let from = prepared.live.as_ref().map_or_else(
                || "nothing".to_string(),
                |g| format!("generation {}", g.generation),
            );
            (from, "stock".to_string(), prepared.plan, None)
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
            (
                format!("generation {a}"),
                format!("generation {b}"),
                plan,
                Some((state, b)),
            )
        }
    };
    if let Some(name) = &service {
        plan.services.retain(|s| &s.name == name);
        if plan.services.is_empty() {
            return Err(Error::usage(format!(
                "{from_name} and {to_name} have no service {:?}; `svcdir-update diff` lists what they hold",
                shown(name).to_string()
            )));
        }
    }
    let counts = plan.counts();
    let mut human = format!("{from_name} -> {to_name}: {counts}\n");
    human.push_str(&plan_table(&plan));
    let files = match (&state, args.patch) {
        (Some((state, _)), true) => Some(patch::patches(state, &plan.services)),
        _ => None,
    };
    if let Some(files) = &files {
        for f in files {
            render_patch(f, &mut human);
        }
    }
    let report = DiffReport {
        from: from_name,
        to: to_name,
        counts,
        services: &plan.services,
        files: files.as_deref(),
    };
    Ok(Output::new(&report, human))
}

/// B and SERVICE from the command line: B is a generation when it is a
/// number, else the service (then no third name may follow).
fn generation_and_service(args: &DiffArgs) -> Result<(Option<u64>, Option<String>)> {
    match (&args.b, &args.service) {
        (None, service) => Ok((None, service.clone())),
        (Some(b), service) => match (b.parse::<u64>(), service) {
            (Ok(n), service) => Ok((Some(n), service.clone())),
            (Err(_), None) => Ok((None, Some(b.clone()))),
            (Err(_), Some(_)) => Err(Error::usage(format!(
                "{:?} is not a generation number; `svcdir-update list` shows them",
                shown(b).to_string()
            ))),
        },
    }
}

/// One changed path as `git diff` shows it: a header, then the hunks or a
/// summary line. File contents are the stock's: every line is escaped
/// except its tabs (docs/security.md#outside-text-is-shown-escaped).
fn render_patch(f: &FilePatch, h: &mut String) {
    let path = format!("{}/{}", f.service, f.path);
    let path = shown(&path);
    h.push_str(&format!("diff a/{path} b/{path}\n"));
    match (f.change, &f.from_mode, &f.to_mode) {
        ("added", _, Some(m)) => h.push_str(&format!("new file mode {m}\n")),
        ("removed", Some(m), _) => h.push_str(&format!("deleted file mode {m}\n")),
        (_, Some(a), Some(b)) if a != b => {
            h.push_str(&format!("old mode {a}\nnew mode {b}\n"));
        }
        _ => {}
    }
    if let (Some(a), Some(b)) = (&f.from_target, &f.to_target) {
        h.push_str(&format!("symlink {} -> {}\n", shown(a), shown(b)));
    }
    let digest = |d: &Option<String>| {
        d.as_deref()
            .map_or("0", |d| &d[..d.len().min(12)])
            .to_string()
    };
    let (a_name, b_name) = match f.change {
        "added" => ("/dev/null".to_string(), format!("b/{path}")),
        "removed" => (format!("a/{path}"), "/dev/null".to_string()),
        _ => (format!("a/{path}"), format!("b/{path}")),
    };
    match &f.body {
        Body::None => {}
        Body::Binary => h.push_str(&format!("Binary files {a_name} and {b_name} differ\n")),
        Body::TooLarge => h.push_str(&format!(
            "not diffed: larger than {} MiB (blake3 {}..{})\n",
            patch::MAX_FILE_BYTES >> 20,
            digest(&f.from_blake3),
            digest(&f.to_blake3)
        )),
        Body::Unreadable(why) => h.push_str(&format!("not diffed: {}\n", terminal_safe(why))),
        Body::Text { hunks, left_out } => {
            h.push_str(&format!("--- {a_name}\n+++ {b_name}\n"));
            for hunk in hunks {
                h.push_str(&hunk.header);
                h.push('\n');
                for line in &hunk.lines {
                    h.push(line.sign);
                    h.push_str(&terminal_safe(&line.text));
                    h.push('\n');
                    if line.no_newline {
                        h.push_str("\\ No newline at end of file\n");
                    }
                }
            }
            if *left_out > 0 {
                h.push_str(&format!(
                    "… {left_out} more diff line(s) not shown (at most {} per file)\n",
                    patch::MAX_LINES
                ));
            }
        }
    }
}
