//! The `svcdir-update` binary: parse, run, write, map the error to an exit
//! code. Writing goes through `output`, which never panics on a closed
//! stdout or stderr.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
use svcdir_update::{cli::Cli, output, run};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            return ExitCode::from(output::write_clap_error(&err, output::asks_for_json(&args)));
        }
    };
    match run(&cli) {
        Ok(out) => {
            output::write_output(&out, cli.json);
            ExitCode::from(out.code)
        }
        Err(err) => {
            output::write_error(&err, cli.json);
            ExitCode::from(err.exit_code())
        }
    }
}
