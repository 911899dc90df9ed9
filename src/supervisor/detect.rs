//! Which scanner watches a scan directory: s6-svscan (it listens on
//! `<scandir>/.s6-svscan/control`), runit's runsvdir (the directory is one
//! of its arguments; it does not stay in it) or daemontools' svscan (its
//! working directory). Read from the FIFO and `/proc`; used by `init` to
//! write the supervisor into a new config, and after a switch to say when
//! nothing performs the restarts it planned (docs/cli.md#supervisor-check).
//! This module only looks; it never signals a process.

use std::path::{Path, PathBuf};

use crate::config::Supervisor;

/// The scanner programs by `comm`, and their family.
const SCANNERS: [(&str, Supervisor); 3] = [
    ("s6-svscan", Supervisor::S6),
    ("runsvdir", Supervisor::Runit),
    ("svscan", Supervisor::Daemontools),
];

/// The name of the scanner program of `family` (for messages).
pub(crate) fn scanner_name(family: Supervisor) -> &'static str {
    SCANNERS
        .iter()
        .find(|(_, f)| *f == family)
        .map_or("a scanner", |(name, _)| name)
}

/// The family whose scanner watches `scandir`, if one does. A directory
/// that does not exist is watched by nobody.
pub(crate) fn scanner_of(scandir: &Path) -> Option<Supervisor> {
    if super::s6::scanner_running(scandir).unwrap_or(false) {
        return Some(Supervisor::S6);
    }
    let want = std::fs::canonicalize(scandir).ok()?;
    let processes = procfs::process::all_processes().ok()?;
    for p in processes.flatten() {
        let Ok(stat) = p.stat() else { continue };
        let Some(&(_, family)) = SCANNERS.iter().find(|(comm, _)| *comm == stat.comm) else {
            continue;
        };
        let cwd = p.cwd().ok();
        if cwd.as_deref() == Some(want.as_path()) {
            return Some(family);
        }
        let args = p.cmdline().unwrap_or_default();
        let names_it = args.iter().skip(1).any(|arg| {
            let arg = PathBuf::from(arg);
            let full = match &cwd {
                Some(cwd) if arg.is_relative() => cwd.join(arg),
                _ => arg,
            };
            std::fs::canonicalize(full).is_ok_and(|p| p == want)
        });
        if names_it {
            return Some(family);
        }
    }
    None
}
