//! The command line: clap definitions only, one argument struct per
//! command that takes any, and the shared parser of durations. `lib::run`
//! dispatches them; nothing here reads the config or touches a file.

pub(crate) mod man;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};

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
    #[arg(long, global = true, value_name = "SECS", value_parser = parse_seconds)]
    pub wait: Option<Duration>,

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
    Plan(PlanArgs),
    /// Stage the stock as a new generation and switch to it
    Commit(CommitArgs),
    /// Switch back to an earlier generation [default: the previous one]
    Rollback(RollbackArgs),
    /// Report the live generation, a pending or interrupted transaction,
    /// locks, and the store's disk use and what gc would free; with NAME,
    /// that one service: live object and since when, supervisor's view,
    /// lock holders, pins, held back
    Status(StatusArgs),
    /// List every service: since which generation, the supervisor's view
    /// (pid, up for, wanted), held locks, pins, held back
    Services,
    /// List the generations: live, never live, failed --check-up,
    /// pinned, what changed and their notes
    List,
    /// List every finished transaction: when, who, what, from -> to, and
    /// how it ended
    History,
    /// Keep a generation (and its store objects) from `gc`, whatever its age
    Pin(PinArgs),
    /// Let `gc` collect a pinned generation again once it is old enough
    Unpin(PinArgs),
    /// Compare generations: none = stock vs live; A = A vs live; A B;
    /// `-p` shows the changed files' contents as unified diffs
    Diff(DiffArgs),
    /// Check the store objects of a generation (default: live; --all)
    /// against their manifests; --repair restores damaged ones
    Verify(VerifyArgs),
    /// Delete generations and store objects nothing needs
    Gc(GcArgs),
    /// Finish or undo an interrupted transaction
    Recover(RecoverArgs),
    /// Re-create the scan directory from live (e.g. at boot)
    Sync,
    /// Run a command holding a service's update lock shared (like `flock -s
    /// -o`); exits with the command's status, 75 if the lock is not free in
    /// time (--wait)
    Lock(LockArgs),
    /// Run a program of the live version of a service from its store object,
    /// pinned so that `gc` keeps the object until the program exits
    Exec(ExecArgs),
    /// Print a shell completion script on stdout, e.g.
    /// `svcdir-update completions bash > /usr/share/bash-completion/completions/svcdir-update`
    Completions(CompletionsArgs),
    /// Print a man page (roff) on stdout: the main page, or a command's
    #[command(hide = true)]
    Man(ManArgs),
    /// List the failpoint names (for crash tests)
    #[command(hide = true)]
    Failpoints,
}

/// The arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// All or nothing, as `commit --strict` would: any stock problem is an
    /// error (exit 65) instead of holding back that service
    #[arg(long)]
    pub strict: bool,
    /// Read every stock file instead of trusting the stat cache (a file
    /// changed behind unchanged timestamps, e.g. through a shared mapping)
    #[arg(long)]
    pub rehash: bool,
}

/// The arguments of `commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Go ahead even if services hold their update locks (this run
    /// only); every holder gone past is named as a warning
    #[arg(long)]
    pub force: bool,
    /// After the switch, wait up to SECS until every started or restarted
    /// service is up (same pid for 1 s); if one is not, roll back to the
    /// previous generation by itself and exit 3
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub check_up: Option<Duration>,
    /// Restart these services even though nothing of theirs changed: a
    /// new generation in which only they differ, switched like any commit
    #[arg(long, value_name = "NAME", num_args = 1..)]
    pub restart: Vec<String>,
    /// All or nothing: any stock problem stops the whole commit with exit
    /// 65 (75 if only files being written) and changes nothing [default:
    /// `strict` in the config, false: a service with problems is held back
    /// and the rest commits]
    #[arg(long)]
    pub strict: bool,
    /// Read every stock file instead of trusting the stat cache, and
    /// replace the cache with what was read (a file changed behind
    /// unchanged timestamps, e.g. through a shared mapping)
    #[arg(long)]
    pub rehash: bool,
    /// A note stored in the new generation, shown by `list` and `history`
    /// (one line, at most 200 characters)
    #[arg(short = 'm', long = "message", value_name = "TEXT")]
    pub message: Option<String>,
    /// Show what the commit would do and change nothing (the same as `plan`)
    #[arg(long, conflicts_with_all = ["force", "check_up", "restart"])]
    pub dry_run: bool,
    /// Go ahead even though the commit would stop every live service and
    /// start none (typically a stock path that is wrong or empty)
    #[arg(long)]
    pub allow_stop_all: bool,
    /// Read only the services these changed paths are in and keep every
    /// other live service as it is, unread (a package manager's hook); a
    /// relative path is taken from `/`, as pacman gives it; a path outside
    /// the stock trees and `restart_on` paths is ignored
    #[arg(
        long,
        value_name = "PATH",
        num_args = 1..,
        conflicts_with_all = ["restart", "rehash", "dry_run"]
    )]
    pub changed: Vec<PathBuf>,
    /// As --changed, with the paths read from FILE, one a line (`-`:
    /// standard input)
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["restart", "rehash", "dry_run"]
    )]
    pub changed_from: Option<PathBuf>,
}

/// The arguments of `pin` and `unpin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// Generation number (see `list`)
    pub generation: u64,
}

/// The arguments of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Generation number (see `list`)
    pub generation: Option<u64>,
    /// Go ahead even if services hold their update locks (this run only)
    #[arg(long)]
    pub force: bool,
    /// Show what the rollback would do and change nothing
    #[arg(long, conflicts_with = "force")]
    pub dry_run: bool,
}

/// The arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show this one service instead of the whole state
    pub name: Option<String>,
    /// Measure the store's disk use and what gc would free by reading
    /// every store entry and every kept generation's manifest, instead of
    /// summing what commits recorded (slow with many services)
    #[arg(long, conflicts_with = "name")]
    pub usage: bool,
}

/// The arguments of `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Generation number to verify (see `list`) [default: live]
    pub generation: Option<u64>,
    /// Verify every generation, one line each
    #[arg(long, conflicts_with = "generation")]
    pub all: bool,
    /// Replace each damaged object the stock still holds (same digest) by a
    /// fresh copy, restarting a live service that ran from it; else name the
    /// generations safe to roll back to
    #[arg(long)]
    pub repair: bool,
    /// Instead: read the whole stock and name every service whose stock
    /// differs from its live version (left behind by a `commit --changed`
    /// whose paths missed it); exit 65 if one does
    #[arg(long, conflicts_with_all = ["generation", "all", "repair"])]
    pub stock: bool,
}

/// The arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The generation to compare from [default: live, compared with the stock]
    pub a: Option<u64>,
    /// The generation to compare to [default: live]; a name that is not a
    /// number is taken as SERVICE (`diff -p 3 web`: 3 against live, web only)
    #[arg(value_name = "B")]
    pub b: Option<String>,
    /// Only this service
    pub service: Option<String>,
    /// Show the content of changed files as unified diffs, like `git diff`
    /// (text files; a summary line for binary or huge ones); needs A
    #[arg(short = 'p', long = "patch")]
    pub patch: bool,
}

/// The arguments of `gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep the N newest generations [default: `keep_generations`, 5]
    #[arg(long, value_name = "N")]
    pub keep: Option<usize>,
    /// Say what would be removed and remove nothing (takes no lock)
    #[arg(long)]
    pub dry_run: bool,
}

/// The arguments of `recover`.
#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Undo a transaction that had already switched, instead of finishing it
    #[arg(long)]
    pub rollback: bool,
}

/// The arguments of `lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The service whose lock to hold
    pub name: String,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// The arguments of `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The service
    pub name: String,
    /// The program, relative to the service directory [default: run]
    pub program: Option<PathBuf>,
    /// Arguments for the program, after `--`
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<OsString>,
}

/// The arguments of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    pub shell: clap_complete::Shell,
}

/// The arguments of `man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The page: `svcdir-update` or `svcdir-update-COMMAND` [default: svcdir-update]
    pub page: Option<String>,
    /// List the page names instead
    #[arg(long)]
    pub list: bool,
}

/// The longest `--wait` or `--check-up` taken (a week).
const MAX_SECS: f64 = crate::model::limits::MAX_WAIT_SECS;

/// Parses the SECS of `--wait` and `--check-up`: a finite number of
/// seconds from 0 to [`MAX_SECS`], fractions allowed (`0.5`).
fn parse_seconds(arg: &str) -> Result<Duration, String> {
    let secs: f64 = arg
        .parse()
        .map_err(|_| "expected seconds ≥ 0, like 30 or 0.5".to_string())?;
    if !(0.0..=MAX_SECS).contains(&secs) {
        // NaN and the infinities fail here too.
        return Err(format!(
            "expected seconds ≥ 0 and at most {MAX_SECS} (a week)"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|e| format!("expected seconds ≥ 0: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_take_fractions_and_zero() {
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds("120"), Ok(Duration::from_secs(120)));
    }

    #[test]
    fn seconds_refuse_negative_non_finite_and_absurd_values() {
        for bad in [
            "-1", "-0.001", "NaN", "inf", "-inf", "1e30", "604801", "", "soon",
        ] {
            let err = parse_seconds(bad).expect_err(bad);
            assert!(err.starts_with("expected seconds ≥ 0"), "{bad}: {err}");
        }
    }

    #[test]
    fn wait_and_check_up_are_parsed_as_durations() {
        let cli = Cli::try_parse_from([
            "svcdir-update",
            "--wait",
            "2.5",
            "commit",
            "--check-up",
            "5",
        ])
        .expect("parses");
        assert_eq!(cli.wait, Some(Duration::from_millis(2500)));
        let Command::Commit(args) = cli.command else {
            panic!("not commit: {:?}", cli.command);
        };
        assert_eq!(args.check_up, Some(Duration::from_secs(5)));
        let err = Cli::try_parse_from(["svcdir-update", "--wait", "inf", "commit"])
            .expect_err("inf is refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(err.to_string().contains("expected seconds ≥ 0"), "{err}");
    }
}
