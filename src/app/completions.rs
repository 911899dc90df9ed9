//! `completions SHELL`: print a shell completion script. Reads no config.

use super::Output;
use crate::cli::{CompletionsArgs, man};
use crate::error::Result;

pub(crate) fn completions(args: &CompletionsArgs) -> Result<Output> {
    let script = man::completions(args.shell)?;
    Ok(Output::new(&script, script.clone()))
}
