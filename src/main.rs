//! The `svcdir-update` binary: parse, run, print, map the error to an exit code.

use std::process::ExitCode;

use clap::Parser;
use svcdir_update::{cli::Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(out) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out.json).unwrap_or_default()
                );
            } else {
                print!("{}", out.human);
            }
            ExitCode::from(out.code)
        }
        Err(err) => {
            eprintln!("svcdir-update: error: {}", err.chain());
            ExitCode::from(err.exit_code())
        }
    }
}
