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
//! use svcdir_update::config::{Config, ConfigSource};
//! use svcdir_update::commands::commit::{commit, CommitOptions};
//!
//! let cfg = Config::load(&ConfigSource::Root("/tmp/demo".into()))?;
//! let out = commit(&cfg, &CommitOptions::default())?;
//! print!("{}", out.human);
//! # Ok::<(), svcdir_update::error::Error>(())
//! ```

pub mod cache;
pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod failpoint;
pub mod fsops;
pub mod generation;
pub mod health;
pub mod holders;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod manpage;
#[cfg(test)]
mod mutate;
pub mod names;
pub mod pending;
pub mod pin;
pub mod plan;
pub mod procsig;
pub mod progress;
pub mod report;
pub mod scandir;
pub mod state;
pub mod stock;
pub mod store;
pub mod supervisor;
pub mod transaction;
pub mod tree;
pub mod txn;
pub mod update_lock;

use std::time::Duration;

use cli::{Cli, Command};
use commands::Output;
use config::{Config, ConfigSource};
use error::{Error, Result};

/// Runs one parsed command line and returns its output.
pub fn run(cli: &Cli) -> Result<Output> {
    report::set_verbosity(if cli.quiet { -1 } else { cli.verbose as i8 });
    report::set_json(cli.json);
    let source = match (&cli.config, &cli.root) {
        (Some(file), _) => ConfigSource::File(file.clone()),
        (None, Some(root)) => ConfigSource::Root(root.clone()),
        (None, None) => ConfigSource::Default,
    };
    // Commands that read no config.
    match &cli.command {
        Command::Failpoints => {
            let list: Vec<&str> = failpoint::ALL.to_vec();
            return Ok(Output::new(&list, format!("{}\n", list.join("\n"))));
        }
        Command::Completions { shell } => {
            let script = manpage::completions(*shell)?;
            return Ok(Output::new(&script, script.clone()));
        }
        Command::Man { page, list } => {
            let text = if *list {
                format!("{}\n", manpage::pages().join("\n"))
            } else {
                manpage::render(page.as_deref().unwrap_or(manpage::MAIN))?
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
    let locks = |force: bool| update_lock::LockPolicy {
        wait: given.unwrap_or(cfg.update_lock_wait),
        force,
    };
    match &cli.command {
        Command::Init => init(&cfg),
        Command::Check => commands::check::check(&cfg),
        Command::Plan => commands::commit::plan(&cfg),
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
                    "--check-up needs a supervisor to ask; set `supervisor: s6` or `runit` in the config",
                ));
            }
            commands::commit::commit(
                &cfg,
                &commands::commit::CommitOptions {
                    wait,
                    locks: locks(*force),
                    check_up,
                },
            )
        }
        Command::Rollback { generation, force } => {
            commands::rollback::rollback(&cfg, *generation, wait, locks(*force))
        }
        Command::Status => commands::inspect::status(&cfg),
        Command::List => commands::inspect::list(&cfg),
        Command::Diff { a, b } => commands::inspect::diff(&cfg, *a, *b),
        Command::Verify => commands::verify::verify(&cfg),
        Command::Gc { keep } => {
            commands::gc::gc(&cfg, *keep, wait, given.unwrap_or(Duration::ZERO))
        }
        Command::Recover { rollback } => {
            commands::recover::recover(&cfg, *rollback, wait, locks(false))
        }
        Command::Sync => commands::sync::sync(&cfg, wait, locks(false)),
        Command::Lock { name, command } => commands::lock::lock(&cfg, name, command, wait),
        Command::Exec {
            name,
            program,
            args,
        } => commands::exec::exec(&cfg, name, program.as_deref(), args, wait),
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
    update_lock::locks_dir(cfg)?;
    if let Some(live) = state.live()? {
        let m = generation::load(&state, live)?;
        update_lock::ensure_files(cfg, m.services.keys().map(String::as_str))?;
    }
    scandir::open(cfg)?;
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
