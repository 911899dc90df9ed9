//! The command line: clap definitions only. `lib::run` dispatches them.

pub(crate) mod man;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgGroup, Parser, Subcommand};

/// Transactional service-directory manager for s6, runit and daemontools.
///
/// Packages write the stock tree; svcdir-update stages each new version as a
/// complete, immutable generation and switches the live tree to it with one
/// atomic rename. Unchanged services keep their very directory, so scanners
/// restart only what changed.
#[derive(Debug, Parser)]
#[command(name = "svcdir-update", version, propagate_version = true)]
#[command(group(ArgGroup::new("where").args(["config", "root"])))]
pub struct Cli {
    /// Config file [default: /etc/svcdir-update/config.yaml if it exists]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Put everything under DIR: DIR/stock, DIR/state, DIR/run, DIR/service
    /// (the scan directory), and read DIR/config.yaml when present
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Print one JSON document on stdout (plan, commit, status, list, diff, …)
    #[arg(long, global = true)]
    pub json: bool,

    /// Say more on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Say only warnings and errors on stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Seconds this run may wait for whatever blocks it before giving up
    /// with exit 75: the manager lock [default: `lock_wait`, 60], the update
    /// locks of services to stop or restart [default: `update_lock_wait`, 0],
    /// the service lock of `lock` [default: `lock_wait`], pinned programs
    /// in `gc` [default: 0, do not wait]
    #[arg(long, global = true, value_name = "SECS")]
    pub wait: Option<f64>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands, one variant each.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the state layout (idempotent)
    Init,
    /// Validate the stock trees and list every problem
    Check,
    /// Show what `commit` would do, and why
    Plan,
    /// Stage the stock as a new generation and switch to it
    Commit {
        /// Go ahead even if services hold their update locks (this run
        /// only); every holder gone past is named as a warning
        #[arg(long)]
        force: bool,
        /// After the switch, wait up to SECS until every started or restarted
        /// service is up (same pid for 1 s); if one is not, roll back to the
        /// previous generation by itself and exit 3
        #[arg(long, value_name = "SECS")]
        check_up: Option<f64>,
    },
    /// Switch back to an earlier generation [default: the previous one]
    Rollback {
        /// Generation number (see `list`)
        generation: Option<u64>,
        /// Go ahead even if services hold their update locks (this run only)
        #[arg(long)]
        force: bool,
    },
    /// Report the live generation, a pending or interrupted transaction,
    /// locks, and the store's disk use and what gc would free
    Status,
    /// List the generations
    List,
    /// Compare generations: none = stock vs live; A = A vs live; A B
    Diff {
        /// The generation to compare from [default: live, compared with the stock]
        a: Option<u64>,
        /// The generation to compare to [default: live]
        b: Option<u64>,
    },
    /// Check the live store objects against their manifests
    Verify,
    /// Delete generations and store objects nothing needs
    Gc {
        /// Keep the N newest generations [default: `keep_generations`, 5]
        #[arg(long, value_name = "N")]
        keep: Option<usize>,
    },
    /// Finish or undo an interrupted transaction
    Recover {
        /// Undo a transaction that had already switched, instead of finishing it
        #[arg(long)]
        rollback: bool,
    },
    /// Re-create the scan directory from live (e.g. at boot)
    Sync,
    /// Run a command holding a service's update lock shared (like `flock -s
    /// -o`); exits with the command's status, 75 if the lock is not free in
    /// time (--wait)
    Lock {
        /// The service whose lock to hold
        name: String,
        /// The command and its arguments, after `--`
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<OsString>,
    },
    /// Run a program of the live version of a service from its store object,
    /// pinned so that `gc` keeps the object until the program exits
    Exec {
        /// The service
        name: String,
        /// The program, relative to the service directory [default: run]
        program: Option<PathBuf>,
        /// Arguments for the program, after `--`
        #[arg(last = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Print a shell completion script on stdout, e.g.
    /// `svcdir-update completions bash > /usr/share/bash-completion/completions/svcdir-update`
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff) on stdout: the main page, or a command's
    #[command(hide = true)]
    Man {
        /// The page: `svcdir-update` or `svcdir-update-COMMAND` [default: svcdir-update]
        page: Option<String>,
        /// List the page names instead
        #[arg(long)]
        list: bool,
    },
    /// List the failpoint names (for crash tests)
    #[command(hide = true)]
    Failpoints,
}
