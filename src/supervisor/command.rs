//! Runs supervisor tools (`s6-svc`, `sv`, …) with an argv — never through a
//! shell — and turns a failure into an error that names the command line,
//! its exit status and its output.
//!
//! This module only spawns and waits; it never decides what a status means.

use std::ffi::{OsStr, OsString};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::output::report;

/// What a finished command printed, and how it exited.
#[derive(Debug, Clone)]
pub(crate) struct Finished {
    /// The exit code; `None` when a signal killed it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub(crate) fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Stdout and stderr joined, trimmed and escaped (one line): what to
    /// show a human.
    pub(crate) fn said(&self) -> String {
        let mut out = crate::model::shown::shown(self.stdout.trim()).to_string();
        let err = self.stderr.trim();
        if !err.is_empty() {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(&crate::model::shown::shown(err).to_string());
        }
        out
    }
}

/// The command line as a human would type it (for messages only), each
/// argument escaped (docs/security.md#outside-text-is-shown-escaped).
pub(crate) fn shown(argv: &[&OsStr]) -> String {
    argv.iter()
        .map(|a| crate::model::shown::shown(a).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `argv` to completion, whatever its exit status. Fails only when the
/// program cannot be started (not installed, not executable).
pub(crate) fn run(argv: &[&OsStr]) -> Result<Finished> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(Error::supervisor("internal: empty command line"));
    };
    report::trace(&format!("running `{}`", shown(argv)));
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::supervisor(format!(
                "cannot run `{}`: {e} (is {} installed?)",
                shown(argv),
                crate::model::shown::shown(prog)
            ))
        })?;
    Ok(Finished {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `argv` and requires exit status 0; the error names the command,
/// the status and what it said.
pub(crate) fn run_ok(argv: &[&OsStr]) -> Result<Finished> {
    let out = run(argv)?;
    if out.success() {
        return Ok(out);
    }
    Err(failed(argv, &out))
}

/// The error for a command that ran and failed.
pub(crate) fn failed(argv: &[&OsStr], out: &Finished) -> Error {
    let status = out
        .code
        .map_or_else(|| "killed by a signal".to_string(), |c| format!("exit {c}"));
    let said = out.said();
    Error::supervisor(format!(
        "`{}` failed ({status}){}",
        shown(argv),
        if said.is_empty() {
            String::new()
        } else {
            format!(": {said}")
        }
    ))
}

/// An owned argv, for commands built from paths and numbers.
#[derive(Debug, Default)]
pub(crate) struct Argv(Vec<OsString>);

impl Argv {
    pub(crate) fn new(prog: &str) -> Argv {
        Argv(vec![OsString::from(prog)])
    }

    pub(crate) fn arg(mut self, a: impl AsRef<OsStr>) -> Argv {
        self.0.push(a.as_ref().to_os_string());
        self
    }

    pub(crate) fn as_refs(&self) -> Vec<&OsStr> {
        self.0.iter().map(OsString::as_os_str).collect()
    }

    pub(crate) fn run(&self) -> Result<Finished> {
        run(&self.as_refs())
    }

    pub(crate) fn run_ok(&self) -> Result<Finished> {
        run_ok(&self.as_refs())
    }

    pub(crate) fn failed(&self, out: &Finished) -> Error {
        failed(&self.as_refs(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_command_status_and_stderr() {
        let err = Argv::new("sh")
            .arg("-c")
            .arg("echo oops >&2; exit 3")
            .run_ok()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("`sh -c echo oops >&2; exit 3`"), "{msg}");
        assert!(msg.contains("exit 3"), "{msg}");
        assert!(msg.contains("oops"), "{msg}");
        assert_eq!(err.exit_code(), crate::error::exit::TEMP_FAIL);
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let err = Argv::new("/nonexistent/s6-svc").run().unwrap_err();
        assert!(err.to_string().contains("is /nonexistent/s6-svc installed"));
    }

    #[test]
    fn arguments_are_not_split_by_a_shell() {
        let out = Argv::new("printf")
            .arg("%s|")
            .arg("a b; echo no")
            .run_ok()
            .unwrap();
        assert_eq!(out.stdout, "a b; echo no|");
    }
}
