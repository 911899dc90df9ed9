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
//! svcdir_update::output::write_output(&out, cli.json);
//! # Ok::<(), svcdir_update::error::Error>(())
//! ```

// The folders, by layer (docs/design.md#where-things-live): `cli` parses,
// `app` runs one command each, `engine` does what a transaction does over
// the on-disk model in `state`, `stock` reads the stock trees, `locks` owns
// every lock, `model` and `format` are pure, `supervisor` drives s6 and
// runit, `sys` is the only owner of fd-relative syscalls, `output` speaks
// to the terminal (public for `main`: it writes results and errors).
mod app;
pub mod cli;
mod config;
mod engine;
pub mod error;
mod format;
mod locks;
mod model;
pub mod output;
mod state;
mod stock;
mod supervisor;
mod sys;
#[cfg(test)]
mod test_support;

use app::Waits;
use cli::{Cli, Command};
use config::{Config, ConfigSource};
use error::Result;

pub use output::Output;

/// Runs one parsed command line and returns its output.
pub fn run(cli: &Cli) -> Result<Output> {
    output::report::set_verbosity(if cli.quiet { -1 } else { cli.verbose as i8 });
    output::report::set_json(cli.json);
    // After the verbosity: `-q` hides progress, `-v` shows it off a terminal.
    output::progress::begin();
    // Read only by the commands that need it (not by completions or man).
    let config = || Config::load(&config_source(cli));
    match &cli.command {
        Command::Failpoints => Ok(app::failpoints::failpoints()),
        Command::Completions(args) => app::completions::completions(args),
        Command::Man(args) => app::man::man(args),
        Command::Init => app::init::init(&config()?, new_config_path(cli).as_deref()),
        Command::Check => app::check::check(&config()?),
        Command::Plan(args) => app::plan::plan(&config()?, args),
        // `commit --dry-run` is `plan`, with the same --strict.
        Command::Commit(args) if args.dry_run => app::plan::plan(
            &config()?,
            &cli::PlanArgs {
                strict: args.strict,
                rehash: args.rehash,
            },
        ),
        Command::Commit(args) => app::commit::commit(&config()?, args, cli.wait),
        Command::Rollback(args) => app::rollback::rollback(&config()?, args, cli.wait),
        Command::Status(args) => match &args.name {
            Some(name) => app::service::service_status(&config()?, name),
            None => app::status::status(&config()?, args.usage),
        },
        Command::Services => app::service::services(&config()?),
        Command::List => app::list::list(&config()?),
        Command::History => app::history::history(&config()?),
        Command::Pin(args) => app::pin::pin(&config()?, args.generation, true, cli.wait),
        Command::Unpin(args) => app::pin::pin(&config()?, args.generation, false, cli.wait),
        Command::Diff(args) => app::diff::diff(&config()?, args),
        Command::Verify(args) if args.stock => app::verify_stock::verify_stock(&config()?),
        Command::Verify(args) => app::verify::verify(&config()?, args, cli.wait),
        Command::Gc(args) => app::gc::gc(&config()?, args, cli.wait),
        Command::Recover(args) => app::recover::recover(&config()?, args, cli.wait),
        Command::Sync => app::sync::sync(&config()?, cli.wait),
        Command::Lock(args) => {
            let cfg = config()?;
            let wait = Waits::new(&cfg, cli.wait).lock;
            app::lock::lock(&cfg, &args.name, &args.command, wait)
        }
        Command::Exec(args) => {
            let cfg = config()?;
            let wait = Waits::new(&cfg, cli.wait).lock;
            app::exec::exec(&cfg, &args.name, args.program.as_deref(), &args.args, wait)
        }
    }
}

/// Where `init` writes a new config when there is none: where it would
/// have been read from (`--config FILE` must exist, so never there).
fn new_config_path(cli: &Cli) -> Option<std::path::PathBuf> {
    match (&cli.config, &cli.root) {
        (Some(_), _) => None,
        (None, Some(root)) => Some(root.join("config.yaml")),
        (None, None) => Some(config::DEFAULT_CONFIG.into()),
    }
}

/// Where the config comes from: `--config FILE`, `--root DIR`, or the default.
fn config_source(cli: &Cli) -> ConfigSource {
    match (&cli.config, &cli.root) {
        (Some(file), _) => ConfigSource::File(file.clone()),
        (None, Some(root)) => ConfigSource::Root(root.clone()),
        (None, None) => ConfigSource::Default,
    }
}
