//! Man pages and shell completions, generated from the clap definitions in
//! [`crate::cli`] so they never drift from `--help`.
//!
//! One page per command, like git: `svcdir-update(1)` (global options, the
//! command list, exit status, files) and `svcdir-update-COMMAND(1)`. The
//! checked-in copies under `docs/man/` are compared with these by a test;
//! `scripts/gen-man.sh` regenerates them. This module only renders text; it
//! writes no files.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, Result};

/// The main page's name.
pub(crate) const MAIN: &str = "svcdir-update";

/// Sections appended to the main page (roff).
const MAIN_EXTRA: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success (also: nothing to do).
.TP
\fB1\fR
Failed after the switch: the new generation is live but a later step (scan directory, notification) did not finish; see \fBsvcdir-update status\fR.
.TP
\fB2\fR
Usage error.
.TP
\fB3\fR
A health check failed and the commit rolled itself back.
.TP
\fB65\fR
Bad input: the stock, the config or a damaged rollback log; every problem is named.
.TP
\fB73\fR
Cannot create a file, directory or link.
.TP
\fB74\fR
I/O error (fsync, ENOSPC).
.TP
\fB75\fR
Busy or deferred: the manager lock or an update lock is held, or the stock is being written; retry later. A deferred \fBcommit\fR is recorded as pending and applied by the next \fBcommit\fR or \fBsync\fR.
.TP
\fB77\fR
Unsafe permissions or file system (group/world-writable state, NFS).
.TP
\fB130\fR
Interrupted: SIGTERM, SIGINT or SIGHUP arrived during a transaction, which was undone (before the switch) or completed (after it) first; the message says which.
.SH FILES
.TP
\fI/etc/svcdir-update/config.yaml\fR
The config file.
.TP
\fI/usr/share/svcdir-update/stock\fR, \fI/etc/svcdir-update/stock\fR
The stock trees (packages, then the administrator).
.TP
\fI/var/lib/svcdir-update\fR
The state: store, generations, \fIlive\fR, \fIhistory.log\fR, \fIpending\fR.
.TP
\fI/run/svcdir-update/locks\fR
Per-service update locks.
.TP
\fI/run/service\fR
The scan directory.
.SH "SEE ALSO"
The guide (docs/guide.md), the FAQ (docs/faq.md), docs/update-locks.md and docs/json.md in the sources; s6\-svscan(8), runsvdir(8), svscan(8), deb\-triggers(5).
"#;

fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// Every page name: the main page, then one per visible command.
pub(crate) fn pages() -> Vec<String> {
    let mut out = vec![MAIN.to_string()];
    out.extend(
        command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| format!("{MAIN}-{}", s.get_name())),
    );
    out
}

/// Renders one page as roff.
pub(crate) fn render(page: &str) -> Result<String> {
    let cmd = command();
    let mut buf = Vec::new();
    let fail = |e: std::io::Error| Error::io("cannot render man page", page, e);
    if page == MAIN {
        clap_mangen::Man::new(cmd).render(&mut buf).map_err(fail)?;
        buf.extend_from_slice(MAIN_EXTRA.as_bytes());
    } else {
        let sub = page
            .strip_prefix(MAIN)
            .and_then(|s| s.strip_prefix('-'))
            .and_then(|name| {
                cmd.get_subcommands()
                    .find(|s| !s.is_hide_set() && s.get_name() == name)
                    .map(|s| s.clone().bin_name(format!("{MAIN} {name}")))
            })
            .ok_or_else(|| {
                Error::usage(format!(
                    "no man page {page:?}; pages: {}",
                    pages().join(" ")
                ))
            })?;
        clap_mangen::Man::new(sub.display_name(page))
            .render(&mut buf)
            .map_err(fail)?;
    }
    String::from_utf8(buf).map_err(|e| Error::usage(format!("man page {page}: {e}")))
}

/// A completion script for `shell`: every command a person may type
/// (hidden ones left out) with its options.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<String> {
    let mut cmd = visible_command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, MAIN, &mut buf);
    let script = String::from_utf8(buf).map_err(|e| Error::usage(format!("completions: {e}")))?;
    Ok(match shell {
        // clap_complete spells the hyphen of the program name one way in
        // the names it gives `cmd` and another in the `case` labels that
        // test it, so nothing after the command completed (`commit
        // --<TAB>`); one spelling for both.
        clap_complete::Shell::Bash => {
            script.replace(&MAIN.replace('-', "__subcmd__"), &MAIN.replace('-', "__"))
        }
        _ => script,
    })
}

/// The command line without its hidden commands (`man`, `failpoints`):
/// completion generators offer every subcommand, hidden or not.
fn visible_command() -> clap::Command {
    let full = Cli::command();
    clap::Command::new(MAIN)
        .version(env!("CARGO_PKG_VERSION"))
        .propagate_version(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned())
}
