//! The one error type of svcdir-update and its mapping to exit codes.
//!
//! Every variant carries the context needed to act on it (the path, the
//! operation, the fix) and maps to exactly one exit code of design §6.
//! This module never prints; `main` prints the `Display` and the `source()`
//! chain.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Exit codes of design §6 (sysexits where one fits).
pub mod exit {
    pub const OK: u8 = 0;
    /// The switch happened but a later step failed: partially applied.
    pub const AFTER_SWITCH: u8 = 1;
    pub const USAGE: u8 = 2;
    /// A commit whose health check failed and that rolled itself back.
    pub const ROLLED_BACK: u8 = 3;
    pub const DATA_ERR: u8 = 65;
    pub const CANT_CREATE: u8 = 73;
    pub const IO_ERR: u8 = 74;
    pub const TEMP_FAIL: u8 = 75;
    pub const NO_PERM: u8 = 77;
}

/// One problem found in a stock tree; `check` reports all of them at once.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub what: String,
    pub fix: String,
    /// True when the problem is a sign of a package manager still at work
    /// (exit 75, retry later) rather than bad content (exit 65).
    pub transient: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.path.display(), self.what, self.fix)
    }
}

/// A list of problems, displayed one per line.
#[derive(Debug)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing failed for a reason other than creation.
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Making a new file, directory, link or name failed.
    #[error("cannot {op} {}", path.display())]
    Create {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Making data durable failed (fsync, syncfs). Never retried-and-ignored.
    #[error("cannot make {} durable", path.display())]
    Sync {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{}: {msg}", path.display())]
    Config { path: PathBuf, msg: String },

    #[error("the stock tree has {} problem(s):{problems}", problems.0.len())]
    Stock { problems: Problems },

    #[error("the stock tree is being changed:{problems}")]
    StockBusy { problems: Problems },

    #[error("{what}")]
    BadInput { what: String },

    #[error("{what}")]
    Busy { what: String },

    #[error("{what}")]
    Unsafe { what: String },

    #[error("{what}")]
    Usage { what: String },

    /// Something failed after `live` was switched: the new generation is live
    /// but a later step (scan directory, notification) did not finish.
    #[error("generation {generation} is live, but {what}")]
    AfterSwitch {
        generation: u64,
        what: String,
        #[source]
        source: Option<Box<Error>>,
    },

    #[error("{what}")]
    RolledBack { what: String },

    /// A supervisor command failed or a service did not stop in time; when
    /// this happens before the switch, nothing was switched (retry later).
    #[error("{what}")]
    Supervisor { what: String },
}

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
    /// The exit code of design §6 for this error.
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

    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn create(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Create {
            op,
            path: path.into(),
            source,
        }
    }

    pub fn sync(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Sync {
            path: path.into(),
            source,
        }
    }

    pub fn bad_input(what: impl Into<String>) -> Self {
        Error::BadInput { what: what.into() }
    }

    pub fn busy(what: impl Into<String>) -> Self {
        Error::Busy { what: what.into() }
    }

    pub fn usage(what: impl Into<String>) -> Self {
        Error::Usage { what: what.into() }
    }

    pub fn supervisor(what: impl Into<String>) -> Self {
        Error::Supervisor { what: what.into() }
    }

    pub fn unsafe_env(what: impl Into<String>) -> Self {
        Error::Unsafe { what: what.into() }
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
    fn chain_joins_sources() {
        let err = Error::io("read", "/etc/x", io::Error::other("boom"));
        assert_eq!(err.chain(), "read /etc/x: boom");
    }
}
