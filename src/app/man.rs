//! `man [PAGE] [--list]` (hidden): print a man page (roff), or list the
//! page names. Reads no config.

use super::Output;
use crate::cli::{ManArgs, man};
use crate::error::Result;

pub(crate) fn man(args: &ManArgs) -> Result<Output> {
    let text = if args.list {
        format!("{}\n", man::pages().join("\n"))
    } else {
        man::render(args.page.as_deref().unwrap_or(man::MAIN))?
    };
    Ok(Output::new(&text, text.clone()))
}
