//! Everything the tool writes to stdout and stderr: a command's result (the
//! text, or one JSON document with `--json`), its error, clap's own
//! messages, the verbosity-aware reporter and progress on a terminal.
//! [`Output`] is what a command returns; the commands in `crate::app`
//! render it, this module writes it.
//!
//! Every write ignores its own failure: a reader that went away (`| head`,
//! a closed pipe or terminal) is a normal end of output, as in ripgrep. It
//! must never panic, abort a transaction half-way or change the exit code;
//! so nothing in src/ uses `print!`/`eprintln!` (forbidden by the clippy
//! lints in Cargo.toml), everything goes through `write_stdout` and
//! `write_stderr`.

pub(crate) mod progress;
pub(crate) mod report;

use std::ffi::OsString;
use std::io::Write;

use serde::Serialize;

use crate::error::{Error, exit};
use crate::model::shown::{json_safe, terminal_safe};

/// A command's result, rendered both ways; `main` prints the one asked for.
#[derive(Debug)]
pub struct Output {
    /// The result as text for a person.
    pub human: String,
    /// The result as one JSON document (`Null` unless `--json`).
    pub json: serde_json::Value,
    /// The exit code (0 unless the command says otherwise).
    pub code: u8,
}

impl Output {
    pub(crate) fn new<T: Serialize>(value: &T, human: String) -> Output {
        Output {
            human,
            json: if report::json() {
                serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
            } else {
                serde_json::Value::Null
            },
            code: crate::error::exit::OK,
        }
    }

    pub(crate) fn with_code(mut self, code: u8) -> Output {
        self.code = code;
        self
    }
}

/// Writes `text` to stdout and flushes it; a failed write (EPIPE, a full
/// disk behind a redirect) is dropped: the work is done either way. No
/// control character but `\n` and `\t` and no hidden character reaches
/// the terminal, whatever a rendering forgot (docs/security.md#outside-text-is-shown-escaped).
pub(crate) fn write_stdout(text: &str) {
    let text = terminal_safe(text);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

/// Writes `text` to stderr (unbuffered); a failed write is dropped, so a
/// warning due while stderr is closed never interrupts a transaction.
/// Escaped as [`write_stdout`] is.
pub(crate) fn write_stderr(text: &str) {
    let text = terminal_safe(text);
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Writes a command's result: its JSON document with `--json`, its text
/// otherwise.
pub fn write_output(out: &Output, json: bool) {
    if json {
        let doc = serde_json::to_string_pretty(&out.json).unwrap_or_default();
        write_stdout(&format!("{}\n", json_safe(&doc)));
    } else {
        write_stdout(&out.human);
    }
}

/// Writes a failed command's error: the message and its `source()` chain on
/// stderr, and with `--json` also the error document on stdout, where
/// scripts parse it (docs/json.md#errors).
pub fn write_error(err: &Error, json: bool) {
    if json {
        let doc = serde_json::to_string_pretty(&err.to_json()).unwrap_or_default();
        write_stdout(&format!("{}\n", json_safe(&doc)));
    }
    write_stderr(&format!("svcdir-update: error: {}\n", err.chain()));
    if let Some(advice) = err.advice() {
        write_stderr(&format!("svcdir-update: {advice}\n"));
    }
}

/// Writes what clap has to say — help and version on stdout, a usage error
/// on stderr — and returns its exit code. A usage error under `--json`
/// also gets its error document, of kind `usage`, on stdout.
pub fn write_clap_error(err: &clap::Error, json: bool) -> u8 {
    if json && err.use_stderr() {
        write_stdout(&format!("{}\n", json_safe(&clap_error_json(err))));
    }
    // clap returns the write error instead of panicking; dropped as above.
    let _ = err.print();
    u8::try_from(err.exit_code()).unwrap_or(exit::USAGE)
}

/// Whether a command line that clap refused asked for `--json`: the flag
/// anywhere before a `--` (after it, the arguments belong to the program
/// of `lock` or `exec`).
pub fn asks_for_json(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "--json")
}

/// The error document of a clap usage error; its message is clap's
/// `error:` line, or a pointer to `--help` when clap showed help instead
/// (no command given).
fn clap_error_json(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let message = text
        .lines()
        .find_map(|line| line.strip_prefix("error: "))
        .map_or_else(
            || "a command or argument is missing; see `svcdir-update --help`".to_string(),
            str::to_string,
        );
    let doc = serde_json::json!({"error": {
        "kind": "usage",
        "exit_code": err.exit_code(),
        "message": message,
        "path": null,
    }});
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn json_is_asked_for_only_before_a_double_dash() {
        assert!(asks_for_json(&args(&["svcdir-update", "--json", "bogus"])));
        assert!(asks_for_json(&args(&[
            "svcdir-update",
            "lock",
            "web",
            "--json"
        ])));
        assert!(!asks_for_json(&args(&[
            "svcdir-update",
            "lock",
            "web",
            "--",
            "--json"
        ])));
        assert!(!asks_for_json(&args(&["--json"])));
    }

    #[test]
    fn a_usage_error_document_names_clap_error_line() {
        let Err(err) = Cli::try_parse_from(["svcdir-update", "--json", "--bogus", "status"]) else {
            panic!("--bogus parsed");
        };
        let doc: serde_json::Value =
            serde_json::from_str(&clap_error_json(&err)).unwrap_or_default();
        assert_eq!(doc["error"]["kind"], "usage");
        assert_eq!(doc["error"]["exit_code"], 2);
        assert_eq!(doc["error"]["path"], serde_json::Value::Null);
        let message = doc["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("--bogus"), "{message}");
    }

    #[test]
    fn a_missing_command_is_a_usage_error() {
        let Err(err) = Cli::try_parse_from(["svcdir-update", "--json"]) else {
            panic!("no command parsed");
        };
        let doc: serde_json::Value =
            serde_json::from_str(&clap_error_json(&err)).unwrap_or_default();
        assert_eq!(doc["error"]["exit_code"], 2);
        assert!(
            doc["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("requires a subcommand")),
            "{doc}"
        );
    }
}
