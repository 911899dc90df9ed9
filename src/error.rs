//! The one error type of svcdir-update and its mapping to exit codes.
//!
//! Every variant carries the context needed to act on it (the path, the
//! operation, the fix), maps to exactly one exit code
//! (docs/cli.md#exit-codes) and to one stable `kind` name for `--json`
//! (docs/json.md#errors). This module never prints; [`crate::output`]
//! prints the `Display` and the `source()` chain, or the JSON document.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The exit codes (docs/cli.md#exit-codes; sysexits where one fits).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The switch happened but a later step failed: partially applied.
    pub const AFTER_SWITCH: u8 = 1;
    /// A bad command line or option.
    pub const USAGE: u8 = 2;
    /// A commit whose health check failed and that rolled itself back.
    pub const ROLLED_BACK: u8 = 3;
    /// Bad input: stock, config, or a damaged state file (`EX_DATAERR`).
    pub const DATA_ERR: u8 = 65;
    /// A file, directory or link could not be made (`EX_CANTCREAT`).
    pub const CANT_CREATE: u8 = 73;
    /// Reading, writing or making durable failed (`EX_IOERR`).
    pub const IO_ERR: u8 = 74;
    /// Busy or being changed: nothing was switched, retry later (`EX_TEMPFAIL`).
    pub const TEMP_FAIL: u8 = 75;
    /// An unsafe environment: ownership, modes, file system (`EX_NOPERM`).
    pub const NO_PERM: u8 = 77;
}

/// One problem found in a stock tree; `check` reports all of them at once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The stock path the problem is at.
    pub path: PathBuf,
    /// What is wrong.
    pub what: String,
    /// What to do about it.
    pub fix: String,
    /// True when the problem is a sign of a package manager still at work
    /// (exit 75, retry later) rather than bad content (exit 65).
    pub transient: bool,
}

impl Problem {
    /// The problem in the `--json` error document. Built by hand: a stock
    /// path need not be UTF-8, and serde refuses such a `PathBuf`.
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path.display().to_string(),
            "what": self.what,
            "fix": self.fix,
            "transient": self.transient,
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.path.display(), self.what, self.fix)
    }
}

/// A list of problems, displayed one per line.
#[derive(Debug)]
pub struct Problems(
    /// The problems, in the order found.
    pub Vec<Problem>,
);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong; each variant maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing failed for a reason other than creation.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// To what.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// Making a new file, directory, link or name failed.
    #[error("cannot {op} {}", path.display())]
    Create {
        /// What was being made.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// Making data durable failed (fsync, syncfs). Never retried-and-ignored.
    #[error("cannot make {} durable", path.display())]
    Sync {
        /// What was to be made durable.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// The config file is unreadable or wrong.
    #[error("{}: {msg}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        msg: String,
    },

    /// The stock trees have problems; every one is listed.
    #[error("the stock tree has {} problem(s):{problems}", problems.0.len())]
    Stock {
        /// Each problem with its path and fix.
        problems: Problems,
    },

    /// A package manager is still writing the stock: retry later.
    #[error("the stock tree is being changed:{problems}")]
    StockBusy {
        /// What shows the stock is being written.
        problems: Problems,
    },

    /// Bad input other than the stock: a damaged state file, a wrong argument value.
    #[error("{what}")]
    BadInput {
        /// What is wrong and what to do.
        what: String,
    },

    /// A lock is held: nothing was switched, retry later.
    #[error("{what}")]
    Busy {
        /// Who holds what, and how to wait or override.
        what: String,
    },

    /// An unsafe environment: owner, mode or file system.
    #[error("{what}")]
    Unsafe {
        /// What is unsafe and how to fix it.
        what: String,
    },

    /// The command line asks for something impossible.
    #[error("{what}")]
    Usage {
        /// What is wrong with it.
        what: String,
    },

    /// Something failed after `live` was switched: the new generation is live
    /// but a later step (scan directory, notification) did not finish.
    #[error("generation {generation} is live, but {what}")]
    AfterSwitch {
        /// The generation that is live.
        generation: u64,
        /// What did not finish.
        what: String,
        /// Why.
        #[source]
        source: Option<Box<Error>>,
    },

    /// `--check-up` found a service down and the commit rolled itself back.
    #[error("{what}")]
    RolledBack {
        /// Which service, and what is live now.
        what: String,
    },

    /// A supervisor command failed or a service did not stop in time; when
    /// this happens before the switch, nothing was switched (retry later).
    #[error("{what}")]
    Supervisor {
        /// What the supervisor said or did not do.
        what: String,
    },
}

/// The result of everything fallible here.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn is_no_space(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error()
            || code == rustix::io::Errno::DQUOT.raw_os_error()
            || code == rustix::io::Errno::IO.raw_os_error()
    )
}

impl Error {
    /// The exit code of this error (docs/cli.md#exit-codes).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Io { .. } | Error::Sync { .. } => exit::IO_ERR,
            Error::Create { source, .. } if is_no_space(source) => exit::IO_ERR,
            Error::Create { .. } => exit::CANT_CREATE,
            Error::Config { .. } | Error::Stock { .. } | Error::BadInput { .. } => exit::DATA_ERR,
            Error::StockBusy { .. } | Error::Busy { .. } => exit::TEMP_FAIL,
            Error::Unsafe { .. } => exit::NO_PERM,
            Error::Usage { .. } => exit::USAGE,
            Error::AfterSwitch { .. } => exit::AFTER_SWITCH,
            Error::RolledBack { .. } => exit::ROLLED_BACK,
            Error::Supervisor { .. } => exit::TEMP_FAIL,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn create(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Create {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sync(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Sync {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_input(what: impl Into<String>) -> Self {
        Error::BadInput { what: what.into() }
    }

    pub(crate) fn busy(what: impl Into<String>) -> Self {
        Error::Busy { what: what.into() }
    }

    pub(crate) fn usage(what: impl Into<String>) -> Self {
        Error::Usage { what: what.into() }
    }

    pub(crate) fn supervisor(what: impl Into<String>) -> Self {
        Error::Supervisor { what: what.into() }
    }

    pub(crate) fn unsafe_env(what: impl Into<String>) -> Self {
        Error::Unsafe { what: what.into() }
    }

    /// The stable snake_case name of the variant: the `kind` of the `--json`
    /// error document (docs/json.md#errors). Never renamed.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Create { .. } => "create",
            Error::Sync { .. } => "sync",
            Error::Config { .. } => "config",
            Error::Stock { .. } => "stock",
            Error::StockBusy { .. } => "stock_busy",
            Error::BadInput { .. } => "bad_input",
            Error::Busy { .. } => "busy",
            Error::Unsafe { .. } => "unsafe",
            Error::Usage { .. } => "usage",
            Error::AfterSwitch { .. } => "after_switch",
            Error::RolledBack { .. } => "rolled_back",
            Error::Supervisor { .. } => "supervisor",
        }
    }

    /// The file the error is about, when the variant carries one; after a
    /// switch, the path of the step that did not finish.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Create { path, .. }
            | Error::Sync { path, .. }
            | Error::Config { path, .. } => Some(path),
            Error::AfterSwitch { source, .. } => source.as_deref().and_then(Error::path),
            _ => None,
        }
    }

    /// The error as the one document `--json` prints (docs/json.md#errors):
    /// `{"error": {"kind", "exit_code", "message", "path", …}}`, with the
    /// stock problems and the live generation where the variant has them.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "kind": self.kind(),
            "exit_code": self.exit_code(),
            "message": self.chain(),
            "path": self.path().map(|p| p.display().to_string()),
        });
        match self {
            Error::Stock { problems } | Error::StockBusy { problems } => {
                error["problems"] = problems.0.iter().map(Problem::to_json).collect();
            }
            Error::AfterSwitch { generation, .. } => {
                error["generation"] = serde_json::json!(generation);
            }
            _ => {}
        }
        serde_json::json!({ "error": error })
    }

    /// The message followed by every `source()` in the chain, joined by `: `.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(self);
        while let Some(err) = cur {
            out.push_str(": ");
            out.push_str(&err.to_string());
            cur = err.source();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_exit_code() {
        let eio = || io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        let eacces = || io::Error::from_raw_os_error(rustix::io::Errno::ACCESS.raw_os_error());
        let enospc = || io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let cases: Vec<(Error, u8)> = vec![
            (Error::io("read", "/x", eio()), 74),
            (Error::create("create", "/x", eacces()), 73),
            (Error::create("create", "/x", enospc()), 74),
            (Error::sync("/x", eio()), 74),
            (
                Error::Config {
                    path: "/c".into(),
                    msg: "bad".into(),
                },
                65,
            ),
            (
                Error::Stock {
                    problems: Problems(vec![]),
                },
                65,
            ),
            (
                Error::StockBusy {
                    problems: Problems(vec![]),
                },
                75,
            ),
            (Error::bad_input("x"), 65),
            (Error::busy("x"), 75),
            (Error::unsafe_env("x"), 77),
            (Error::usage("x"), 2),
            (
                Error::AfterSwitch {
                    generation: 1,
                    what: "x".into(),
                    source: None,
                },
                1,
            ),
            (Error::RolledBack { what: "x".into() }, 3),
            (Error::supervisor("x"), 75),
        ];
        for (err, code) in cases {
            assert_eq!(err.exit_code(), code, "{err:?}");
        }
    }

    #[test]
    fn every_variant_maps_to_its_kind() {
        let eio = || io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        let cases: Vec<(Error, &str)> = vec![
            (Error::io("read", "/x", eio()), "io"),
            (Error::create("create", "/x", eio()), "create"),
            (Error::sync("/x", eio()), "sync"),
            (
                Error::Config {
                    path: "/c".into(),
                    msg: "bad".into(),
                },
                "config",
            ),
            (
                Error::Stock {
                    problems: Problems(vec![]),
                },
                "stock",
            ),
            (
                Error::StockBusy {
                    problems: Problems(vec![]),
                },
                "stock_busy",
            ),
            (Error::bad_input("x"), "bad_input"),
            (Error::busy("x"), "busy"),
            (Error::unsafe_env("x"), "unsafe"),
            (Error::usage("x"), "usage"),
            (
                Error::AfterSwitch {
                    generation: 1,
                    what: "x".into(),
                    source: None,
                },
                "after_switch",
            ),
            (Error::RolledBack { what: "x".into() }, "rolled_back"),
            (Error::supervisor("x"), "supervisor"),
        ];
        for (err, kind) in cases {
            assert_eq!(err.kind(), kind, "{err:?}");
            let doc = err.to_json();
            assert_eq!(doc["error"]["kind"], kind);
            assert_eq!(doc["error"]["exit_code"], err.exit_code());
        }
    }

    #[test]
    fn json_error_carries_path_and_problems() {
        let err = Error::io("read", "/etc/x", io::Error::other("boom"));
        assert_eq!(
            err.to_json(),
            serde_json::json!({"error": {
                "kind": "io", "exit_code": 74, "message": "read /etc/x: boom", "path": "/etc/x",
            }})
        );
        let after = Error::AfterSwitch {
            generation: 4,
            what: "the scan directory is stale".into(),
            source: Some(Box::new(err)),
        };
        assert_eq!(after.to_json()["error"]["path"], "/etc/x");
        assert_eq!(after.to_json()["error"]["generation"], 4);
        let stock = Error::StockBusy {
            problems: Problems(vec![Problem {
                path: "/s/web/run.dpkg-new".into(),
                what: "dpkg is unpacking".into(),
                fix: "retry".into(),
                transient: true,
            }]),
        };
        let doc = stock.to_json();
        assert_eq!(doc["error"]["path"], serde_json::Value::Null);
        assert_eq!(
            doc["error"]["problems"],
            serde_json::json!([{
                "path": "/s/web/run.dpkg-new", "what": "dpkg is unpacking", "fix": "retry",
                "transient": true,
            }])
        );
    }

    #[test]
    fn chain_joins_sources() {
        let err = Error::io("read", "/etc/x", io::Error::other("boom"));
        assert_eq!(err.chain(), "read /etc/x: boom");
    }
}
