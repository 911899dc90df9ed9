//! svcdir-update: a transactional service-directory manager.
//!
//! Package managers write *stock* service directories; this library stages
//! each version as a content-addressed, immutable *store object*, groups
//! them into numbered *generations*, and switches the `live` symlink to a
//! new generation with one `rename(2)` under `flock(2)`. Supervisors watch a
//! scan directory whose links go through `live`, so unchanged services keep
//! the same inode and keep running.
//!
//! ```no_run
//! use clap::Parser;
//! use svcdir_update::{cli::Cli, run};
//!
//! let cli = Cli::parse_from(["svcdir-update", "--root", "/tmp/demo", "commit"]);
//! let out = run(&cli)?;
//! print!("{}", out.human);
//! # Ok::<(), svcdir_update::error::Error>(())
//! ```

// The folders, by layer (docs/design.md#where-things-live): `cli` parses,
// `app` runs one command each, `engine` does what a transaction does over
// the on-disk model in `state`, `stock` reads the stock trees, `locks` owns
// every lock, `model` and `format` are pure, `supervisor` drives s6 and
// runit, `sys` is the only owner of fd-relative syscalls, `output` speaks
// to the terminal.
mod app;
pub mod cli;
mod config;
mod engine;
pub mod error;
mod format;
mod locks;
mod model;
mod output;
mod state;
mod stock;
mod supervisor;
mod sys;
#[cfg(test)]
mod test_support;

use std::time::Duration;

use cli::{Cli, Command};
pub use app::Output;
use config::{Config, ConfigSource};
use error::{Error, Result};

/// Runs one parsed command line and returns its output.
pub fn run(cli: &Cli) -> Result<Output> {
    output::report::set_verbosity(if cli.quiet { -1 } else { cli.verbose as i8 });
    output::report::set_json(cli.json);
    let source = match (&cli.config, &cli.root) {
        (Some(file), _) => ConfigSource::File(file.clone()),
        (None, Some(root)) => ConfigSource::Root(root.clone()),
        (None, None) => ConfigSource::Default,
    };
    // Commands that read no config.
    match &cli.command {
        Command::Failpoints => {
            let list: Vec<&str> = sys::failpoint::ALL.to_vec();
            return Ok(Output::new(&list, format!("{}\n", list.join("\n"))));
        }
        Command::Completions { shell } => {
            let script = cli::man::completions(*shell)?;
            return Ok(Output::new(&script, script.clone()));
        }
        Command::Man { page, list } => {
            let text = if *list {
                format!("{}\n", cli::man::pages().join("\n"))
            } else {
                cli::man::render(page.as_deref().unwrap_or(cli::man::MAIN))?
            };
            return Ok(Output::new(&text, text.clone()));
        }
        _ => {}
    }
    let cfg = Config::load(&source)?;
    // `--wait` is the one knob for every wait of this run; without it each
    // lock has its own configured default (docs/update-locks.md).
    let given = cli
        .wait
        .map(|secs| {
            Duration::try_from_secs_f64(secs)
                .map_err(|_| Error::usage(format!("--wait {secs}: expected seconds ≥ 0")))
        })
        .transpose()?;
    let wait = given.unwrap_or(cfg.lock_wait);
    let locks = |force: bool| locks::update::LockPolicy {
        wait: given.unwrap_or(cfg.update_lock_wait),
        force,
    };
    match &cli.command {
        Command::Init => init(&cfg),
        Command::Check => app::check::check(&cfg),
        Command::Plan => app::commit::plan(&cfg),
        Command::Commit { force, check_up } => {
            let check_up = check_up
                .map(|secs| {
                    Duration::try_from_secs_f64(secs).map_err(|_| {
                        Error::usage(format!("--check-up {secs}: expected seconds ≥ 0"))
                    })
                })
                .transpose()?;
            if check_up.is_some() && cfg.supervisor == config::Supervisor::None {
                return Err(Error::usage(
                    "--check-up needs a supervisor to ask; set `supervisor: s6`, `runit` or `daemontools` in the config",
                ));
            }
            app::commit::commit(
                &cfg,
                &app::commit::CommitOptions {
                    wait,
                    locks: locks(*force),
                    check_up,
                },
            )
        }
        Command::Rollback { generation, force } => {
            app::rollback::rollback(&cfg, *generation, wait, locks(*force))
        }
        Command::Status => app::inspect::status(&cfg),
        Command::List => app::inspect::list(&cfg),
        Command::Diff { a, b } => app::inspect::diff(&cfg, *a, *b),
        Command::Verify => app::verify::verify(&cfg),
        Command::Gc { keep } => {
            app::gc::gc(&cfg, *keep, wait, given.unwrap_or(Duration::ZERO))
        }
        Command::Recover { rollback } => {
            app::recover::recover(&cfg, *rollback, wait, locks(false))
        }
        Command::Sync => app::sync::sync(&cfg, wait, locks(false)),
        Command::Lock { name, command } => app::lock::lock(&cfg, name, command, wait),
        Command::Exec {
            name,
            program,
            args,
        } => app::exec::exec(&cfg, name, program.as_deref(), args, wait),
        Command::Failpoints | Command::Completions { .. } | Command::Man { .. } => {
            unreachable_no_config()
        }
    }
}

fn unreachable_no_config() -> Result<Output> {
    Err(Error::usage(
        "failpoints, completions and man are handled before the config is read",
    ))
}

fn init(cfg: &Config) -> Result<Output> {
    let state = state::State::init(cfg)?;
    locks::update::locks_dir(cfg)?;
    if let Some(live) = state.live()? {
        let m = state::generation::load(&state, live)?;
        locks::update::ensure_files(cfg, m.services.keys().map(String::as_str))?;
    }
    state::scandir::open(cfg)?;
    let human = format!(
        "initialized {} (scan directory {}, runtime {})\n",
        state.path().display(),
        cfg.scandir.display(),
        cfg.runtime.display()
    );
    #[derive(serde::Serialize)]
    struct Init {
        state: String,
        scandir: String,
        runtime: String,
    }
    Ok(Output::new(
        &Init {
            state: state.path().display().to_string(),
            scandir: cfg.scandir.display().to_string(),
            runtime: cfg.runtime.display().to_string(),
        },
        human,
    ))
}
