//! Held-back services (docs/design.md#held-back): a stock service with
//! problems stays out of a commit — its live version is kept, or a new one
//! is not added — while every valid service goes ahead. This module groups
//! the problems of a scan by service and turns them back into the one
//! all-or-nothing error of `--strict` and `check`. It never reads or
//! writes a file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem, Problems};
use crate::model::shown::shown;

/// The most services a state file or report names; the rest are counted.
pub(crate) const MAX_HELD_BACK: usize = 256;

/// The most problems recorded per held-back service.
pub(crate) const MAX_PROBLEMS_EACH: usize = 32;

/// A service that a commit left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldBack {
    /// The service name (for a bad top-level entry: the entry's name).
    pub service: String,
    /// Every problem found in it, with path and fix.
    pub problems: Vec<HeldProblem>,
    /// True when every problem is a package manager still at work: the
    /// next `commit` or `sync` takes it (a pending commit is recorded).
    pub transient: bool,
}

/// One problem of a held-back service, as shown in `--json` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldProblem {
    pub path: String,
    pub what: String,
    pub fix: String,
}

impl HeldBack {
    /// Groups `problems` (of one service) into its held-back record.
    pub(crate) fn of(service: &str, problems: &[Problem]) -> HeldBack {
        HeldBack {
            service: service.to_string(),
            transient: problems.iter().all(|p| p.transient),
            problems: problems
                .iter()
                .take(MAX_PROBLEMS_EACH)
                .map(|p| HeldProblem {
                    path: p.path.display().to_string(),
                    what: p.what.clone(),
                    fix: p.fix.clone(),
                })
                .collect(),
        }
    }

    /// One line for stderr, `plan` and `status`: the service, then each
    /// problem with its path and fix.
    pub(crate) fn describe(&self) -> String {
        let why = if self.transient {
            "still being written; the next `commit` or `sync` takes it"
        } else {
            "fix it and commit again"
        };
        // The name and paths are the stock's, shown escaped: a directory
        // named with a line break must not forge a line
        // (docs/security.md#outside-text-is-shown-escaped).
        let mut line = format!("{}: held back ({why})", shown(&self.service));
        for p in &self.problems {
            line.push_str(&format!("\n    {}: {} ({})", shown(&p.path), p.what, p.fix));
        }
        line
    }
}

/// Every problem of a scan, by service: what a commit holds back.
#[derive(Debug, Default)]
pub(crate) struct ProblemsByService {
    /// Problems that name no single service (a missing stock tree, the
    /// entry budget): these always stop the commit.
    pub global: Vec<Problem>,
    /// Problems of one service (or one bad top-level entry), by name.
    pub services: BTreeMap<String, Vec<Problem>>,
}

impl ProblemsByService {
    /// The held-back records, in name order.
    pub(crate) fn held_back(&self) -> Vec<HeldBack> {
        self.services
            .iter()
            .map(|(name, problems)| HeldBack::of(name, problems))
            .collect()
    }

    /// The all-or-nothing verdict (`check`, `--strict`, and any problem
    /// that names no service): every problem sorted by path, exit 75 when
    /// all are transient (a package manager at work), else 65.
    pub(crate) fn into_error(self) -> Option<Error> {
        let mut problems = self.global;
        problems.extend(self.services.into_values().flatten());
        if problems.is_empty() {
            return None;
        }
        problems.sort_by(|a, b| a.path.cmp(&b.path));
        let problems = Problems(problems);
        Some(if problems.0.iter().all(|p| p.transient) {
            Error::StockBusy { problems }
        } else {
            Error::Stock { problems }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(path: &str, transient: bool) -> Problem {
        Problem {
            path: path.into(),
            what: "what".into(),
            fix: "fix".into(),
            transient,
        }
    }

    #[test]
    fn a_service_is_transient_only_when_every_problem_is() {
        let busy = [problem("/s/web/run.dpkg-new", true)];
        assert!(HeldBack::of("web", &busy).transient);
        let mixed = [busy[0].clone(), problem("/s/web/fifo", false)];
        assert!(!HeldBack::of("web", &mixed).transient);
    }

    #[test]
    fn problems_per_service_are_bounded() {
        let many: Vec<Problem> = (0..100)
            .map(|i| problem(&format!("/s/web/{i}"), false))
            .collect();
        assert_eq!(HeldBack::of("web", &many).problems.len(), MAX_PROBLEMS_EACH);
    }

    #[test]
    fn all_or_nothing_is_busy_only_when_every_problem_is_transient() {
        let mut problems = ProblemsByService::default();
        assert!(ProblemsByService::default().into_error().is_none());
        problems
            .services
            .insert("web".into(), vec![problem("/s/web/run.dpkg-new", true)]);
        let busy = ProblemsByService {
            global: vec![],
            services: problems.services.clone(),
        };
        assert!(matches!(busy.into_error(), Some(Error::StockBusy { .. })));
        problems.global.push(problem("/s", false));
        match problems.into_error() {
            Some(Error::Stock { problems }) => assert_eq!(problems.0.len(), 2),
            other => panic!("{other:?}"),
        }
    }
}
