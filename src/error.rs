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
use std::time::Duration;

use crate::model::shown::shown;

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
    /// SIGTERM, SIGINT or SIGHUP arrived during a transaction, which was
    /// undone (before the switch) or completed (after it) first; the
    /// message says which (128 + SIGINT, as shells report an interrupt).
    pub const INTERRUPTED: u8 = 130;
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
        write!(f, "{}: {} ({})", shown(&self.path), self.what, self.fix)
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

/// A service that `--check-up` found down after a switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotUp {
    /// The service.
    pub service: String,
    /// How long it was given to come up.
    pub timeout: Duration,
    /// The generation it did not come up in.
    pub generation: u64,
    /// What the supervisor said about it.
    pub why: String,
}

impl fmt::Display for NotUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} did not come up within {}s after the switch to generation {} ({})",
            self.service,
            self.timeout.as_secs_f64(),
            self.generation,
            self.why
        )
    }
}

/// Everything that can go wrong; each variant maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing failed for a reason other than creation.
    #[error("{op} {}", shown(&path))]
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
    #[error("cannot {op} {}", shown(&path))]
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
    #[error("cannot make {} durable", shown(&path))]
    Sync {
        /// What was to be made durable.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: io::Error,
    },

    /// The config file is unreadable or wrong.
    #[error("{}: {msg}", shown(&path))]
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

    /// There is no state yet: nothing was ever committed.
    #[error("{} holds no generations yet; run `svcdir-update commit` first", shown(&state))]
    NoGenerations {
        /// The state directory.
        state: PathBuf,
    },

    /// The state directory is in another on-disk format than this version
    /// writes (docs/design.md#state-format): an older one to migrate, or a
    /// newer one.
    #[error("{}: {what}", shown(&state))]
    StateFormat {
        /// The state directory.
        state: PathBuf,
        /// Which format, and what to do.
        what: String,
    },

    /// There are generations, but `live` points at none of them yet.
    #[error("no generation is live yet; run `svcdir-update commit` first")]
    NoLiveGeneration {
        /// The state directory.
        state: PathBuf,
    },

    /// A generation asked for by number does not exist.
    #[error("generation {generation} does not exist; `svcdir-update list` shows the generations")]
    NoSuchGeneration {
        /// The number asked for.
        generation: u64,
    },

    /// `rollback` without a number, and the live generation is the oldest.
    #[error(
        "generation {live} is the oldest one left; there is nothing to roll back to \
         (`svcdir-update list` shows the generations)"
    )]
    NothingToRollBack {
        /// The live generation.
        live: u64,
    },

    /// `recover --rollback` without an interrupted transaction.
    #[error("there is no interrupted transaction to roll back; use `svcdir-update rollback [GEN]`")]
    NoInterruptedTransaction,

    /// The live generation has no service of that name.
    #[error(
        "generation {generation} has no service {service:?}; `svcdir-update status` shows what is live"
    )]
    NoSuchService {
        /// The live generation.
        generation: u64,
        /// The name asked for.
        service: String,
    },

    /// A commit would stop every live service and keep none: most often a
    /// stock path that is wrong or empty (docs/cli.md#commit).
    #[error(
        "this commit would stop all {live} live service(s) and keep none; the stock in {} \
         has {stock} service(s). Check `stock:` in the config and `svcdir-update plan`, \
         or pass --allow-stop-all if that is what you want",
        trees.iter().map(|t| t.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    StopsEverything {
        /// How many services are live.
        live: usize,
        /// How many services the stock has.
        stock: usize,
        /// The stock trees read.
        trees: Vec<PathBuf>,
    },

    /// A service's update lock file does not exist, and only root creates it.
    #[error(
        "{} does not exist; `svcdir-update commit` or `sync` (as root) creates the locks of \
         live services",
        shown(&lock)
    )]
    NoUpdateLock {
        /// The service.
        service: String,
        /// The lock file that is missing.
        lock: PathBuf,
    },

    /// A state file this tool wrote cannot be trusted: a damaged manifest,
    /// transaction log or `live` link.
    #[error("{}: {what}", shown(&path))]
    Damaged {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        what: String,
    },

    /// A generation does not resolve: a service link or object is missing
    /// or wrong.
    #[error("generation {generation}: {service} {what}")]
    DamagedGeneration {
        /// The damaged generation.
        generation: u64,
        /// The service that does not resolve.
        service: String,
        /// What is wrong with it, and what to do.
        what: String,
    },

    /// `verify` found store objects of a generation changed.
    #[error(
        "generation {generation}: {} problem(s) in store objects:\n  {}\nthe store was changed by \
         hand; {}",
        problems.len(),
        problems.join("\n  "),
        store_damaged_fix(safe)
    )]
    StoreDamaged {
        /// The (first) damaged generation verified.
        generation: u64,
        /// Each problem, naming its path.
        problems: Vec<String>,
        /// The generations whose objects all verify: safe to roll back to
        /// (docs/cli.md#verify---repair).
        safe: Vec<u64>,
    },

    /// `verify --stock` found services whose stock differs from their live
    /// version (docs/performance.md#hints).
    #[error(
        "generation {generation}: the stock differs from live for {} service(s):\n  {}\na \
         `commit --changed` missed them; a plain `svcdir-update commit` takes them",
        services.len(),
        services.join("\n  ")
    )]
    StockDrift {
        /// The live generation.
        generation: u64,
        /// Each service and how its stock differs.
        services: Vec<String>,
    },

    /// Another svcdir-update — or, when `foreign`, some other program —
    /// holds the manager lock: nothing was switched, retry later.
    #[error("{}", manager_lock_held(lock, holder.as_deref(), *foreign))]
    ManagerLockHeld {
        /// The manager lock file.
        lock: PathBuf,
        /// Who holds it, from `/proc` or the record in the lock file.
        holder: Option<String>,
        /// The holders found in `/proc` are none of them svcdir-update
        /// (docs/security.md#the-manager-lock-is-private-to-the-state-owner).
        foreign: bool,
    },

    /// Services' update locks are held: nothing was stopped or switched,
    /// retry later.
    #[error(
        "update locks are held: {}. Nothing was stopped or switched{deferred}. Retry when they \
         are released, wait longer with --wait SECS, or override with --force",
        holders.join("; ")
    )]
    UpdateLocksHeld {
        /// The services whose locks are held.
        services: Vec<String>,
        /// Per service: which lock, held by whom.
        holders: Vec<String>,
        /// What the caller leaves behind (a staged generation), or empty.
        deferred: String,
    },

    /// `lock NAME`: an update of the service holds its lock exclusively.
    #[error(
        "{} is held exclusively by {holders} (an update of {service} in progress?); retry later \
         or wait longer with --wait SECS",
        shown(&lock)
    )]
    UpdateInProgress {
        /// The service.
        service: String,
        /// Its update lock file.
        lock: PathBuf,
        /// Who holds it.
        holders: String,
    },

    /// `exec`: the pin of the service's object is held exclusively (by
    /// `svcdir-update gc`, or whoever `/proc` names).
    #[error(
        "{} is held exclusively by {holders}; retry, or wait longer with --wait SECS",
        shown(&pin)
    )]
    PinHeld {
        /// The pin file.
        pin: PathBuf,
        /// Who holds it, from `/proc`.
        holders: String,
    },

    /// `exec`: the service's live object changed on every try to pin it.
    #[error("the live object of {service} kept changing while it was being pinned; retry")]
    LiveObjectChanging {
        /// The service.
        service: String,
    },

    /// An unsafe environment: owner, mode or file system.
    #[error("{} {found}; {fix}", subject(role, path))]
    Unsafe {
        /// What the path is for ("state directory"), or empty.
        role: &'static str,
        /// The unsafe path.
        path: PathBuf,
        /// What was found there.
        found: String,
        /// How to fix it.
        fix: String,
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
    #[error("{not_up}; rolled back: generation {live} is live again")]
    RolledBack {
        /// The service that did not come up, and in which generation.
        not_up: NotUp,
        /// The generation that is live again.
        live: u64,
    },

    /// A termination signal arrived during a transaction: it was undone
    /// (before the switch) or completed (after it) before exiting.
    #[error("{}", interrupted(signal, *generation, *switched, *undo_failed))]
    Interrupted {
        /// The signal's name (`SIGTERM`).
        signal: &'static str,
        /// The generation live now, if any.
        generation: Option<u64>,
        /// The transaction had switched `live` and was completed.
        switched: bool,
        /// Before the switch: starting the stopped services again failed.
        undo_failed: bool,
    },

    /// A supervisor command failed or a service did not stop in time; when
    /// this happens before the switch, nothing was switched (retry later).
    #[error("{}{what}", service.as_ref().map(|s| format!("{} ", shown(&s))).unwrap_or_default())]
    Supervisor {
        /// The service directory the supervisor was asked about, when one was.
        service: Option<PathBuf>,
        /// What the supervisor said or did not do.
        what: String,
    },
}

/// The message of [`Error::ManagerLockHeld`]: a foreign holder is named as
/// such, with what to do about it.
fn manager_lock_held(lock: &Path, holder: Option<&str>, foreign: bool) -> String {
    let lock = shown(lock);
    match (holder, foreign) {
        (Some(holder), true) => format!(
            "{lock} is held by {holder}, which is not svcdir-update; nothing was changed. Stop \
             that process: the lock file is private to the state owner (mode 0600), so no \
             other user can take it again"
        ),
        (holder, _) => format!(
            "another svcdir-update holds {lock}{}; retry later, or wait longer with --wait SECS",
            holder.map(|h| format!(" ({h})")).unwrap_or_default()
        ),
    }
}

/// The message of [`Error::Interrupted`]: what the transaction did with
/// the signal.
fn interrupted(signal: &str, generation: Option<u64>, switched: bool, undo_failed: bool) -> String {
    let live = generation.map_or_else(
        || "no generation is live".to_string(),
        |g| format!("generation {g} is live"),
    );
    match (switched, undo_failed) {
        (true, _) => format!(
            "{signal} received during the transaction; it had switched, so it was completed \
             first: {live} and the scan directory is synced"
        ),
        (false, false) => format!(
            "{signal} received during the transaction; it was undone before the switch: the \
             services it stopped run again, {live} as before, nothing was switched. Run the \
             command again to retry"
        ),
        (false, true) => format!(
            "{signal} received during the transaction; it was stopped before the switch, but \
             starting the stopped services again failed ({live}); run `svcdir-update recover`"
        ),
    }
}

/// How an [`Error::Unsafe`] names its path: "the state directory `/x`" or "`/x`".
fn subject(role: &str, path: &Path) -> String {
    if role.is_empty() {
        format!("`{}`", shown(&path))
    } else {
        format!("the {role} `{}`", shown(&path))
    }
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
            Error::Unsafe { .. } => exit::NO_PERM,
            Error::Usage { .. } => exit::USAGE,
            Error::AfterSwitch { .. } => exit::AFTER_SWITCH,
            Error::RolledBack { .. } => exit::ROLLED_BACK,
            Error::Interrupted { .. } => exit::INTERRUPTED,
            Error::Config { .. }
            | Error::Stock { .. }
            | Error::NoGenerations { .. }
            | Error::StateFormat { .. }
            | Error::NoLiveGeneration { .. }
            | Error::NoSuchGeneration { .. }
            | Error::NothingToRollBack { .. }
            | Error::NoInterruptedTransaction
            | Error::NoSuchService { .. }
            | Error::StopsEverything { .. }
            | Error::NoUpdateLock { .. }
            | Error::Damaged { .. }
            | Error::DamagedGeneration { .. }
            | Error::StoreDamaged { .. }
            | Error::StockDrift { .. } => exit::DATA_ERR,
            Error::StockBusy { .. }
            | Error::ManagerLockHeld { .. }
            | Error::UpdateLocksHeld { .. }
            | Error::UpdateInProgress { .. }
            | Error::PinHeld { .. }
            | Error::LiveObjectChanging { .. }
            | Error::Supervisor { .. } => exit::TEMP_FAIL,
        }
    }

    /// True when nothing was switched and the same command can succeed
    /// later: a lock or pin is held, the stock is being written, or a
    /// supervisor did not answer in time (exit 75). `commit` records such a
    /// run as pending and `sync` retries it (docs/cli.md#commit).
    pub(crate) fn is_deferral(&self) -> bool {
        matches!(
            self,
            Error::StockBusy { .. }
                | Error::ManagerLockHeld { .. }
                | Error::UpdateLocksHeld { .. }
                | Error::UpdateInProgress { .. }
                | Error::PinHeld { .. }
                | Error::LiveObjectChanging { .. }
                | Error::Supervisor { .. }
        )
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

    pub(crate) fn damaged(path: impl Into<PathBuf>, what: impl Into<String>) -> Self {
        Error::Damaged {
            path: path.into(),
            what: what.into(),
        }
    }

    pub(crate) fn usage(what: impl Into<String>) -> Self {
        Error::Usage { what: what.into() }
    }

    /// A supervisor failure not about one service (a command that failed).
    pub(crate) fn supervisor(what: impl Into<String>) -> Self {
        Error::Supervisor {
            service: None,
            what: what.into(),
        }
    }

    /// A supervisor failure about the service directory `service`; `what`
    /// follows its path in the message.
    pub(crate) fn supervisor_of(service: &Path, what: impl Into<String>) -> Self {
        Error::Supervisor {
            service: Some(service.to_path_buf()),
            what: what.into(),
        }
    }

    /// What to do after a failure the message alone does not finish: the
    /// disk is full, or a file cannot be changed even by root (an
    /// attribute, a read-only mount). Printed after the message and added
    /// to the JSON document as `advice` (docs/json.md#errors). An error
    /// after the switch is an [`Error::AfterSwitch`], so for these nothing
    /// was switched by this run.
    pub fn advice(&self) -> Option<String> {
        let (Error::Io { source, path, .. }
        | Error::Create { source, path, .. }
        | Error::Sync { source, path }) = self
        else {
            return None;
        };
        let shown = path.display();
        let errno = source.raw_os_error()?;
        if is_no_space(source) && errno != rustix::io::Errno::IO.raw_os_error() {
            return Some(format!(
                "nothing was switched. The file system of {shown} is full: free space there \
                 — `svcdir-update gc` removes old generations and the store objects only they \
                 use, and `svcdir-update status` says how much that frees — then run the \
                 command again"
            ));
        }
        if errno == rustix::io::Errno::PERM.raw_os_error() {
            return Some(format!(
                "nothing was switched. Not even root may change {shown} or its directory: an \
                 attribute is in the way — `lsattr -d` shows it, `chattr -i` or `chattr -a` \
                 clears immutable or append-only — or its file system refuses; fix that, then \
                 run the command again"
            ));
        }
        if errno == rustix::io::Errno::ROFS.raw_os_error() {
            return Some(format!(
                "nothing was switched. {shown} is on a read-only file system: remount it \
                 read-write, then run the command again"
            ));
        }
        None
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
            Error::NoGenerations { .. } => "no_generations",
            Error::StateFormat { .. } => "state_format",
            Error::NoLiveGeneration { .. } => "no_live_generation",
            Error::NoSuchGeneration { .. } => "no_such_generation",
            Error::NothingToRollBack { .. } => "nothing_to_roll_back",
            Error::NoInterruptedTransaction => "no_interrupted_transaction",
            Error::NoSuchService { .. } => "no_such_service",
            Error::StopsEverything { .. } => "stops_everything",
            Error::NoUpdateLock { .. } => "no_update_lock",
            Error::Damaged { .. } => "damaged",
            Error::DamagedGeneration { .. } => "damaged_generation",
            Error::StoreDamaged { .. } => "store_damaged",
            Error::StockDrift { .. } => "stock_drift",
            Error::ManagerLockHeld { .. } => "manager_lock_held",
            Error::UpdateLocksHeld { .. } => "update_locks_held",
            Error::UpdateInProgress { .. } => "update_in_progress",
            Error::PinHeld { .. } => "pin_held",
            Error::LiveObjectChanging { .. } => "live_object_changing",
            Error::Unsafe { .. } => "unsafe",
            Error::Usage { .. } => "usage",
            Error::AfterSwitch { .. } => "after_switch",
            Error::RolledBack { .. } => "rolled_back",
            Error::Interrupted { .. } => "interrupted",
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
            | Error::Config { path, .. }
            | Error::Damaged { path, .. }
            | Error::Unsafe { path, .. }
            | Error::NoGenerations { state: path }
            | Error::StateFormat { state: path, .. }
            | Error::NoLiveGeneration { state: path }
            | Error::NoUpdateLock { lock: path, .. }
            | Error::ManagerLockHeld { lock: path, .. }
            | Error::UpdateInProgress { lock: path, .. }
            | Error::PinHeld { pin: path, .. } => Some(path),
            Error::Supervisor { service, .. } => service.as_deref(),
            Error::AfterSwitch { source, .. } => source.as_deref().and_then(Error::path),
            _ => None,
        }
    }

    /// The error as the one document `--json` prints (docs/json.md#errors):
    /// `{"error": {"kind", "exit_code", "message", "path", …}}`, with the
    /// variant's own fields (problems, generation, service, holders…) where
    /// it has them.
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "kind": self.kind(),
            "exit_code": self.exit_code(),
            "message": self.chain(),
            "path": self.path().map(|p| p.display().to_string()),
        });
        if let (Some(fields), Some(error)) = (self.json_fields(), error.as_object_mut()) {
            error.extend(fields);
        }
        if let (Some(advice), Some(error)) = (self.advice(), error.as_object_mut()) {
            error.insert("advice".into(), serde_json::Value::String(advice));
        }
        serde_json::json!({ "error": error })
    }

    /// The keys a variant adds to its error document (docs/json.md#errors).
    fn json_fields(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        use serde_json::json;
        let fields = match self {
            Error::Stock { problems } | Error::StockBusy { problems } => {
                json!({"problems": problems.0.iter().map(Problem::to_json).collect::<Vec<_>>()})
            }
            Error::StoreDamaged {
                generation,
                problems,
                safe,
            } => json!({"generation": generation, "problems": problems, "safe": safe}),
            Error::StockDrift {
                generation,
                services,
            } => json!({"generation": generation, "services": services}),
            Error::AfterSwitch { generation, .. }
            | Error::NoSuchGeneration { generation }
            | Error::NothingToRollBack {
                live: generation, ..
            } => json!({"generation": generation}),
            Error::NoSuchService {
                generation,
                service,
            }
            | Error::DamagedGeneration {
                generation,
                service,
                ..
            } => json!({"generation": generation, "service": service}),
            Error::StopsEverything { live, stock, .. } => {
                json!({"live_services": live, "stock_services": stock})
            }
            Error::RolledBack { not_up, live } => json!({
                "generation": live,
                "failed_generation": not_up.generation,
                "service": not_up.service,
            }),
            Error::NoUpdateLock { service, .. } | Error::LiveObjectChanging { service } => {
                json!({"service": service})
            }
            Error::UpdateInProgress {
                service, holders, ..
            } => json!({"service": service, "holders": [holders]}),
            Error::PinHeld { holders, .. } => json!({"holders": [holders]}),
            Error::ManagerLockHeld { holder, .. } => {
                json!({"holders": holder.iter().collect::<Vec<_>>()})
            }
            Error::UpdateLocksHeld {
                services, holders, ..
            } => json!({"services": services, "holders": holders}),
            Error::Unsafe { found, fix, .. } => json!({"found": found, "fix": fix}),
            Error::Interrupted {
                signal,
                generation,
                switched,
                ..
            } => json!({"signal": signal, "generation": generation, "switched": switched}),
            _ => return None,
        };
        match fields {
            serde_json::Value::Object(map) => Some(map),
            _ => None,
        }
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

/// What to do about damaged store objects: restore them from the stock,
/// or roll back to a generation whose objects all verify.
fn store_damaged_fix(safe: &[u64]) -> String {
    let repair = "`svcdir-update verify --repair` restores objects the stock still holds";
    if safe.is_empty() {
        return format!("{repair}; no generation verifies intact: fix the stock and commit");
    }
    let gens: Vec<String> = safe.iter().map(u64::to_string).collect();
    format!(
        "{repair}, or `svcdir-update rollback GEN` to a generation whose objects all verify: {}",
        gens.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of every variant, with its exit code and kind.
    // A table of every variant: one entry per line reads better than helpers.
    #[allow(clippy::too_many_lines)]
    fn one_of_each() -> Vec<(Error, u8, &'static str)> {
        let eio = || io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error());
        let eacces = || io::Error::from_raw_os_error(rustix::io::Errno::ACCESS.raw_os_error());
        let enospc = || io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        let problems = || Problems(vec![]);
        vec![
            (Error::io("read", "/x", eio()), 74, "io"),
            (Error::create("create", "/x", eacces()), 73, "create"),
            (Error::create("create", "/x", enospc()), 74, "create"),
            (Error::sync("/x", eio()), 74, "sync"),
            (
                Error::Config {
                    path: "/c".into(),
                    msg: "bad".into(),
                },
                65,
                "config",
            ),
            (
                Error::Stock {
                    problems: problems(),
                },
                65,
                "stock",
            ),
            (
                Error::StockBusy {
                    problems: problems(),
                },
                75,
                "stock_busy",
            ),
            (
                Error::NoGenerations { state: "/s".into() },
                65,
                "no_generations",
            ),
            (
                Error::NoLiveGeneration { state: "/s".into() },
                65,
                "no_live_generation",
            ),
            (
                Error::StateFormat {
                    state: "/s".into(),
                    what: "x".into(),
                },
                65,
                "state_format",
            ),
            (
                Error::NoSuchGeneration { generation: 9 },
                65,
                "no_such_generation",
            ),
            (
                Error::NothingToRollBack { live: 1 },
                65,
                "nothing_to_roll_back",
            ),
            (
                Error::NoInterruptedTransaction,
                65,
                "no_interrupted_transaction",
            ),
            (
                Error::NoSuchService {
                    generation: 1,
                    service: "web".into(),
                },
                65,
                "no_such_service",
            ),
            (
                Error::NoUpdateLock {
                    service: "web".into(),
                    lock: "/l/web".into(),
                },
                65,
                "no_update_lock",
            ),
            (Error::damaged("/s/.txn.yaml", "x"), 65, "damaged"),
            (
                Error::DamagedGeneration {
                    generation: 1,
                    service: "web".into(),
                    what: "x".into(),
                },
                65,
                "damaged_generation",
            ),
            (
                Error::StoreDamaged {
                    generation: 1,
                    problems: vec!["x".into()],
                    safe: vec![],
                },
                65,
                "store_damaged",
            ),
            (
                Error::StockDrift {
                    generation: 1,
                    services: vec!["x".into()],
                },
                65,
                "stock_drift",
            ),
            (
                Error::ManagerLockHeld {
                    lock: "/l".into(),
                    holder: None,
                    foreign: false,
                },
                75,
                "manager_lock_held",
            ),
            (
                Error::UpdateLocksHeld {
                    services: vec!["web".into()],
                    holders: vec!["web: x".into()],
                    deferred: String::new(),
                },
                75,
                "update_locks_held",
            ),
            (
                Error::UpdateInProgress {
                    service: "web".into(),
                    lock: "/l/web".into(),
                    holders: "pid 1".into(),
                },
                75,
                "update_in_progress",
            ),
            (
                Error::PinHeld {
                    pin: "/p".into(),
                    holders: "pid 1".into(),
                },
                75,
                "pin_held",
            ),
            (
                Error::LiveObjectChanging {
                    service: "web".into(),
                },
                75,
                "live_object_changing",
            ),
            (
                Error::Unsafe {
                    role: "",
                    path: "/s".into(),
                    found: "x".into(),
                    fix: "y".into(),
                },
                77,
                "unsafe",
            ),
            (Error::usage("x"), 2, "usage"),
            (
                Error::AfterSwitch {
                    generation: 1,
                    what: "x".into(),
                    source: None,
                },
                1,
                "after_switch",
            ),
            (
                Error::RolledBack {
                    not_up: NotUp {
                        service: "web".into(),
                        timeout: Duration::from_secs(5),
                        generation: 2,
                        why: "down".into(),
                    },
                    live: 1,
                },
                3,
                "rolled_back",
            ),
            (Error::supervisor("x"), 75, "supervisor"),
            (
                Error::Interrupted {
                    signal: "SIGTERM",
                    generation: Some(1),
                    switched: false,
                    undo_failed: false,
                },
                130,
                "interrupted",
            ),
            (
                Error::StopsEverything {
                    live: 3,
                    stock: 0,
                    trees: vec!["/s".into()],
                },
                65,
                "stops_everything",
            ),
            (
                Error::supervisor_of(Path::new("/scan/web"), "x"),
                75,
                "supervisor",
            ),
        ]
    }

    /// The position of `err`'s variant in the enum. The match has no
    /// wildcard, so a new variant does not compile until it is added here,
    /// and then [`one_of_each`] must show it too.
    fn variant_index(err: &Error) -> usize {
        match err {
            Error::Io { .. } => 0,
            Error::Create { .. } => 1,
            Error::Sync { .. } => 2,
            Error::Config { .. } => 3,
            Error::Stock { .. } => 4,
            Error::StockBusy { .. } => 5,
            Error::NoGenerations { .. } => 6,
            Error::NoLiveGeneration { .. } => 7,
            Error::NoSuchGeneration { .. } => 8,
            Error::NothingToRollBack { .. } => 9,
            Error::NoInterruptedTransaction => 10,
            Error::NoSuchService { .. } => 11,
            Error::NoUpdateLock { .. } => 12,
            Error::Damaged { .. } => 13,
            Error::DamagedGeneration { .. } => 14,
            Error::StoreDamaged { .. } => 15,
            Error::ManagerLockHeld { .. } => 16,
            Error::UpdateLocksHeld { .. } => 17,
            Error::UpdateInProgress { .. } => 18,
            Error::PinHeld { .. } => 19,
            Error::LiveObjectChanging { .. } => 20,
            Error::Unsafe { .. } => 21,
            Error::Usage { .. } => 22,
            Error::AfterSwitch { .. } => 23,
            Error::RolledBack { .. } => 24,
            Error::Supervisor { .. } => 25,
            Error::StateFormat { .. } => 26,
            Error::Interrupted { .. } => 27,
            Error::StopsEverything { .. } => 28,
            Error::StockDrift { .. } => 29,
        }
    }

    #[test]
    fn every_variant_maps_to_its_exit_code() {
        let cases = one_of_each();
        let mut seen: Vec<usize> = cases.iter().map(|(e, _, _)| variant_index(e)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..=29).collect::<Vec<_>>(), "a variant has no case");
        for (err, code, _) in cases {
            assert_eq!(err.exit_code(), code, "{err:?}");
            assert_eq!(err.is_deferral(), code == exit::TEMP_FAIL, "{err:?}");
        }
    }

    #[test]
    fn every_variant_maps_to_its_kind() {
        for (err, _, kind) in one_of_each() {
            assert_eq!(err.kind(), kind, "{err:?}");
            let doc = err.to_json();
            assert_eq!(doc["error"]["kind"], kind);
            assert_eq!(doc["error"]["exit_code"], err.exit_code());
            assert_eq!(doc["error"]["message"], err.chain());
        }
    }

    #[test]
    fn every_variant_with_a_path_names_it() {
        let with_path: Vec<&str> = one_of_each()
            .iter()
            .filter(|(e, _, _)| e.path().is_some())
            .map(|(_, _, kind)| *kind)
            .collect();
        assert_eq!(
            with_path,
            [
                "io",
                "create",
                "create",
                "sync",
                "config",
                "no_generations",
                "no_live_generation",
                "state_format",
                "no_update_lock",
                "damaged",
                "manager_lock_held",
                "update_in_progress",
                "pin_held",
                "unsafe",
                "supervisor",
            ]
        );
        for (err, _, _) in one_of_each() {
            let Some(path) = err.path() else { continue };
            let said = err.to_json()["error"]["path"].clone();
            assert_eq!(said, path.display().to_string(), "{err:?}");
        }
    }

    #[test]
    fn typed_errors_keep_their_words_and_add_their_fields() {
        let unsafe_state = Error::Unsafe {
            role: "state directory",
            path: "/srv/state".into(),
            found: "is writable by group (mode 0775)".into(),
            fix: "run `chmod go-w /srv/state`".into(),
        };
        assert_eq!(
            unsafe_state.to_string(),
            "the state directory `/srv/state` is writable by group (mode 0775); \
             run `chmod go-w /srv/state`"
        );
        let doc = unsafe_state.to_json();
        assert_eq!(doc["error"]["path"], "/srv/state");
        assert_eq!(doc["error"]["fix"], "run `chmod go-w /srv/state`");
        let missing = Error::NoSuchGeneration { generation: 9 };
        assert!(
            missing
                .to_string()
                .starts_with("generation 9 does not exist")
        );
        assert_eq!(missing.to_json()["error"]["generation"], 9);
        let held = Error::UpdateLocksHeld {
            services: vec!["db".into(), "web".into()],
            holders: vec!["db: /l/db is held by pid 7".into(), "web: x".into()],
            deferred: ", generation 2 stays staged".into(),
        };
        assert!(
            held.to_string().starts_with(
                "update locks are held: db: /l/db is held by pid 7; web: x. Nothing was stopped \
                 or switched, generation 2 stays staged."
            ),
            "{held}"
        );
        assert_eq!(
            held.to_json()["error"]["services"],
            serde_json::json!(["db", "web"])
        );
        let rolled = Error::RolledBack {
            not_up: NotUp {
                service: "web".into(),
                timeout: Duration::from_millis(5500),
                generation: 2,
                why: "down".into(),
            },
            live: 1,
        };
        assert_eq!(
            rolled.to_string(),
            "web did not come up within 5.5s after the switch to generation 2 (down); \
             rolled back: generation 1 is live again"
        );
        let doc = rolled.to_json();
        assert_eq!(
            (&doc["error"]["service"], &doc["error"]["generation"]),
            (&serde_json::json!("web"), &serde_json::json!(1))
        );
        let stuck = Error::supervisor_of(Path::new("/scan/web"), "did not stop within 5s: up");
        assert_eq!(stuck.to_string(), "/scan/web did not stop within 5s: up");
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
