//! Whether a service's programs can be executed at all: `run`, `finish`
//! and those of `log/` must be an ELF binary or a script whose first line
//! is `#!interpreter`. The kernel refuses anything else with ENOEXEC, and
//! a `#!/bin/sh\r` line (a script saved with CRLF line endings) names an
//! interpreter that does not exist; both leave the service down with
//! nothing but the supervisor's log to say why. `check` reports them as
//! warnings (docs/cli.md#check). This module only reads.

use std::io::Read;
use std::path::Path;

use crate::model::tree::EntryKind;
use crate::stock::{Stock, StockService};
use crate::sys::fs::Dir;

/// The programs a supervisor executes, relative to the service directory.
pub(crate) const PROGRAMS: [&str; 4] = ["run", "finish", "log/run", "log/finish"];

/// How much of a program is read: the longest `#!` line the kernel takes.
const HEAD_BYTES: u64 = 256;

/// One line per program that cannot be executed, naming it and the fix,
/// in service order. The services are looked at side by side: at 100,000
/// services that is 300,000 files opened
/// (docs/performance.md#status-and-check-at-100000-services).
pub(crate) fn exec_format_warnings(stock: &Stock) -> Vec<String> {
    use rayon::prelude::*;
    let per_service: Vec<Vec<String>> = stock
        .services
        .par_iter()
        .map(|(_, service)| service_warnings(service))
        .collect();
    per_service.concat()
}

/// The warnings of one service's programs, in entry order.
fn service_warnings(service: &StockService) -> Vec<String> {
    let mut out = Vec::new();
    // Opened once for the service's programs, not once for each.
    let mut tree: Option<Dir> = None;
    for entry in &service.entries {
        if entry.kind != EntryKind::File || !PROGRAMS.contains(&entry.path.as_str()) {
            continue;
        }
        let path = service.dir().join(&entry.path);
        // A file the scan read a moment ago but cannot be read now is
        // the scan's business (a race), not a format problem.
        let Some(head) = read_head(service, &mut tree, &entry.path) else {
            continue;
        };
        if let Some(why) = exec_format_problem(&head) {
            out.push(format!(
                "{}: {why}",
                path.display().to_string().escape_debug()
            ));
        }
    }
    out
}

/// The first bytes of `entry` of `service`, read where the copy reads
/// them (through a shipped link, the file it leads to), never following
/// a symlink out of the stock tree. `tree` keeps the service's stock tree
/// open between calls.
fn read_head(service: &StockService, tree: &mut Option<Dir>, entry: &str) -> Option<Vec<u8>> {
    let file = match service.linked.iter().find(|l| l.entry == entry) {
        Some(l) => Dir::open(&l.tree).ok()?.open_file(&l.rel).ok()?,
        None => {
            if tree.is_none() {
                *tree = Some(Dir::open(&service.tree).ok()?);
            }
            let rel = Path::new(&service.name).join(entry);
            tree.as_ref()?.open_file(&rel).ok()?
        }
    };
    let mut head = Vec::new();
    file.take(HEAD_BYTES).read_to_end(&mut head).ok()?;
    Some(head)
}

/// Why a program starting with `head` cannot be executed, or `None`.
pub(crate) fn exec_format_problem(head: &[u8]) -> Option<String> {
    if head.starts_with(b"\x7fELF") {
        return None;
    }
    if let Some(line) = head.strip_prefix(b"#!") {
        let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
        if line.ends_with(b"\r") {
            return Some(
                "the #! line ends in a carriage return (CRLF line endings): the kernel looks \
                 for an interpreter whose name ends in \\r and the service never starts; \
                 convert the file to LF line endings, e.g. `sed -i 's/\\r$//' FILE`"
                    .into(),
            );
        }
        return None;
    }
    Some(
        "neither an ELF binary nor a script starting with #!: executing it fails with \
         'exec format error' and the service never starts; add a first line such as \
         `#!/bin/sh`"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_and_shebang_pass_others_are_named() {
        assert_eq!(exec_format_problem(b"\x7fELF\x02\x01"), None);
        assert_eq!(exec_format_problem(b"#!/bin/sh\nexec x\n"), None);
        assert_eq!(exec_format_problem(b"#!/bin/sh"), None);
        let crlf = exec_format_problem(b"#!/bin/sh\r\nexec x\r\n").expect("CRLF");
        assert!(crlf.contains("carriage return"), "{crlf}");
        for bad in [
            &b""[..],
            b"exec sleep 1\n",
            b" #!/bin/sh\n",
            b"\xef\xbb\xbf#!/bin/sh\n",
        ] {
            let why = exec_format_problem(bad).expect("flagged");
            assert!(why.contains("exec format error"), "{bad:?}: {why}");
        }
    }
}
