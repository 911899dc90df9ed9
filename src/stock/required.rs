//! The entries every service must have: an executable `run`, and an
//! executable `log/run` when `log/` exists. Pure: it reads a walked entry
//! list and says what is missing; the walker reports it. A `run` or
//! `log/run` that is still a symlink after the walk leads outside the stock
//! trees, and the walker has already checked that it leads to an executable
//! file (`src/stock/links.rs`), so it counts as present here.

use crate::model::tree::{self, Entry, EntryKind};

/// One missing or unusable required entry.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct MissingEntry {
    /// Relative to the service directory (`.` for the service itself).
    pub rel: &'static str,
    pub what: &'static str,
    pub fix: &'static str,
}

/// `run` must be an executable regular file; so must `log/run` when `log/`
/// exists (a `log` that is a symlink is the walker's to judge).
pub(super) fn missing_entries(entries: &[Entry]) -> Vec<MissingEntry> {
    let find = |path: &str| entries.iter().find(|e| e.path == path);
    let mut missing = Vec::new();
    let run = find("run");
    if !is_executable(run) {
        missing.push(MissingEntry {
            rel: tree::ROOT,
            what: match run {
                None => "has no `run` file",
                Some(e) if e.kind == EntryKind::Dir => "`run` is not a regular file",
                Some(_) => "`run` is not executable",
            },
            fix: match run {
                Some(e) if e.kind == EntryKind::File => "chmod +x run",
                _ => "add an executable `run` script",
            },
        });
    }
    match find("log").map(|log| log.kind) {
        None | Some(EntryKind::Symlink) => {}
        Some(EntryKind::File) => missing.push(MissingEntry {
            rel: "log",
            what: "`log` is not a directory",
            fix: "make log/ a directory with a run script",
        }),
        Some(EntryKind::Dir) => {
            let log_run = find("log/run");
            if !is_executable(log_run) {
                missing.push(MissingEntry {
                    rel: "log",
                    what: match log_run {
                        None => "`log/` has no `log/run`",
                        Some(e) if e.kind == EntryKind::Dir => "`log/run` is not a regular file",
                        Some(_) => "`log/run` is not executable",
                    },
                    fix: match log_run {
                        Some(e) if e.kind == EntryKind::File => "chmod +x log/run",
                        _ => "add an executable log/run, or remove log/",
                    },
                });
            }
        }
    }
    missing
}

/// An executable file, or a symlink the walker kept (it leads outside the
/// stock trees to an executable file; see the module header).
fn is_executable(entry: Option<&Entry>) -> bool {
    match entry {
        Some(e) if e.kind == EntryKind::File => e.mode & 0o111 != 0,
        Some(e) => e.kind == EntryKind::Symlink,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind, mode: u32) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            size: None,
            blake3: None,
            target: None,
            from_link: None,
        }
    }

    fn whats(entries: &[Entry]) -> Vec<&'static str> {
        missing_entries(entries).iter().map(|m| m.what).collect()
    }

    #[test]
    fn run_must_be_an_executable_file() {
        let dir = entry(tree::ROOT, EntryKind::Dir, 0o755);
        assert_eq!(whats(std::slice::from_ref(&dir)), ["has no `run` file"]);
        let subdir = entry("run", EntryKind::Dir, 0o755);
        assert_eq!(
            whats(&[dir.clone(), subdir]),
            ["`run` is not a regular file"]
        );
        let link = entry("run", EntryKind::Symlink, 0o777);
        assert!(
            whats(&[dir.clone(), link]).is_empty(),
            "a kept link is vetted by the walker"
        );
        let plain = entry("run", EntryKind::File, 0o644);
        assert_eq!(whats(&[dir.clone(), plain]), ["`run` is not executable"]);
        let run = entry("run", EntryKind::File, 0o755);
        assert!(whats(&[dir, run]).is_empty());
    }

    #[test]
    fn log_needs_its_own_run() {
        let dir = entry(tree::ROOT, EntryKind::Dir, 0o755);
        let run = entry("run", EntryKind::File, 0o755);
        let log = entry("log", EntryKind::Dir, 0o755);
        let base = [dir, run];
        let with_log = [base.as_slice(), &[log]].concat();
        assert_eq!(whats(&with_log), ["`log/` has no `log/run`"]);
        let plain = entry("log/run", EntryKind::File, 0o644);
        assert_eq!(
            whats(&[with_log.as_slice(), &[plain]].concat()),
            ["`log/run` is not executable"]
        );
        let link = entry("log/run", EntryKind::Symlink, 0o777);
        assert!(whats(&[with_log.as_slice(), &[link]].concat()).is_empty());
        let log_run = entry("log/run", EntryKind::File, 0o755);
        assert!(whats(&[with_log.as_slice(), &[log_run]].concat()).is_empty());
        let log_file = entry("log", EntryKind::File, 0o755);
        assert_eq!(
            whats(&[base.as_slice(), &[log_file]].concat()),
            ["`log` is not a directory"]
        );
    }
}
