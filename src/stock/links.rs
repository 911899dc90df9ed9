//! Where a symlink shipped inside a stock service leads (docs/design.md#links).
//!
//! A link whose target lies beneath a configured stock tree (relative, from
//! the link's own directory, or absolute under the tree's configured path)
//! is followed there fd-relative, one hop at a time, through
//! [`crate::sys::fs::Dir`] (`RESOLVE_BENEATH`, no symlink in any directory
//! component), for at most [`MAX_HOPS`] links. Anything else is "outside":
//! its content is never read; only whether it exists is asked, with one
//! `stat`, for the entries the supervisor executes. This module reads only;
//! what to do with a resolution is the walker's decision.

use std::path::{Component, Path, PathBuf};

use rustix::fs::Stat;

use crate::error::Result;
use crate::sys::fs::{Dir, Kind};

/// Links followed before a chain counts as a loop (Linux's own limit for
/// one path is 40; a service directory needs one or two).
pub(super) const MAX_HOPS: usize = 8;

/// The entries a supervisor executes: a link here must lead to an
/// executable file, or the service cannot start.
pub(super) const EXECUTED: [&str; 3] = ["run", "finish", "log/run"];

/// Where a link leads.
#[derive(Debug)]
pub(super) enum Resolution {
    /// A regular file beneath the stock tree `roots[root]`, at `rel`.
    File {
        root: usize,
        rel: PathBuf,
        stat: Stat,
    },
    /// A directory beneath a stock tree (kept as a link, see docs/design.md#links).
    Dir { path: PathBuf },
    /// A path outside every stock tree (kept as a link).
    Outside { path: PathBuf },
    /// Nothing beneath a stock tree has this name.
    Dangling { path: PathBuf },
    /// More than [`MAX_HOPS`] links in a row.
    Loop,
    /// Something beneath a stock tree that cannot be followed, and why.
    Unusable { path: PathBuf, why: &'static str },
}

/// Resolves the link at `link` (its path through its configured stock tree)
/// whose target is `target`, beneath the open stock trees `roots`.
pub(super) fn resolve(roots: &[Dir], link: &Path, target: &str) -> Result<Resolution> {
    let mut link = link.to_path_buf();
    let mut target = target.to_string();
    for _ in 0..MAX_HOPS {
        let path = target_path(&link, &target);
        let Some((index, rel)) = beneath(roots, &path) else {
            return Ok(Resolution::Outside { path });
        };
        let root = &roots[index];
        if rel.as_os_str().is_empty() {
            return Ok(Resolution::Dir { path });
        }
        let st = match root.try_stat(&rel) {
            Ok(Some(st)) => st,
            Ok(None) => return Ok(Resolution::Dangling { path }),
            Err(_) => {
                return Ok(Resolution::Unusable {
                    path,
                    why: "a directory on the way is a symlink or not a directory \
                          (only the last component of each link is followed)",
                });
            }
        };
        match Kind::of(&st) {
            Kind::File => {
                return Ok(Resolution::File {
                    root: index,
                    rel,
                    stat: st,
                });
            }
            Kind::Dir => return Ok(Resolution::Dir { path }),
            Kind::Other(_) => {
                return Ok(Resolution::Unusable {
                    path,
                    why: "it is neither a file nor a directory",
                });
            }
            Kind::Symlink => {
                let Some(next) = root.read_link(&rel)?.to_str().map(str::to_string) else {
                    return Ok(Resolution::Unusable {
                        path,
                        why: "a link on the way has a target that is not UTF-8",
                    });
                };
                target = next;
                link = path;
            }
        }
    }
    Ok(Resolution::Loop)
}

/// What `stat` says of a link target outside every stock tree.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum OutsideTarget {
    Missing,
    NotExecutableFile,
    ExecutableFile,
}

/// Checks an outside target by path, following links as the supervisor
/// will: one `stat`, never a read of its content.
pub(super) fn check_outside(path: &Path) -> OutsideTarget {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(_) => OutsideTarget::Missing,
        Ok(md) if md.is_file() && md.permissions().mode() & 0o111 != 0 => {
            OutsideTarget::ExecutableFile
        }
        Ok(_) => OutsideTarget::NotExecutableFile,
    }
}

/// The path a link at `link` with `target` names, made absolute and
/// lexically normal: a relative target starts in the link's own directory.
fn target_path(link: &Path, target: &str) -> PathBuf {
    let joined = match link.parent() {
        Some(dir) => dir.join(target),
        None => PathBuf::from(target),
    };
    normalize(&joined)
}

/// Removes `.` and resolves `..` by text. Sound here because every
/// directory the resolution then enters is opened without following a
/// symlink, so no `..` can mean something else on disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The stock tree that holds `path` (the deepest, if trees nest) and the
/// path relative to it; `None` when it is outside every tree.
fn beneath(roots: &[Dir], path: &Path) -> Option<(usize, PathBuf)> {
    roots
        .iter()
        .enumerate()
        .filter_map(|(index, root)| {
            let root_path = normalize(root.path());
            let rel = path.strip_prefix(&root_path).ok()?;
            Some((root_path.components().count(), index, rel.to_path_buf()))
        })
        .max_by_key(|(depth, _, _)| *depth)
        .map(|(_, index, rel)| (index, rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symlink(target: &str, link: PathBuf) {
        let parent = link.parent().unwrap();
        let name = link.file_name().unwrap();
        Dir::open(parent).unwrap().symlink(target, name).unwrap();
    }

    /// A stock tree with a shared `generic/run`, and the resolution of a
    /// link at `tty1/<name>` with `target`.
    fn resolved(setup: impl FnOnce(&Path), name: &str, target: &str) -> Resolution {
        let tmp = tempfile::tempdir().unwrap();
        let tree = tmp.path().join("sv");
        std::fs::create_dir_all(tree.join("generic")).unwrap();
        std::fs::create_dir_all(tree.join("tty1")).unwrap();
        std::fs::write(tree.join("generic/run"), "#!/bin/sh\n").unwrap();
        std::fs::write(tmp.path().join("outside"), "secret").unwrap();
        setup(&tree);
        let roots = [Dir::open_following(&tree).unwrap()];
        resolve(&roots, &tree.join("tty1").join(name), target).unwrap()
    }

    #[test]
    fn links_resolve_beneath_the_stock_tree_only() {
        let none = |_: &Path| {};
        assert!(matches!(
            resolved(none, "run", "../generic/run"),
            Resolution::File { root: 0, ref rel, .. } if rel == Path::new("generic/run")
        ));
        assert!(matches!(
            resolved(none, "run", "../generic"),
            Resolution::Dir { .. }
        ));
        assert!(matches!(
            resolved(none, "run", "../nothing"),
            Resolution::Dangling { .. }
        ));
        assert!(matches!(
            resolved(none, "run", "../../outside"),
            Resolution::Outside { .. }
        ));
        assert!(matches!(
            resolved(none, "run", "/etc/hostname"),
            Resolution::Outside { .. }
        ));
        // A chain of two links is followed; a loop is not followed forever.
        let chain = |tree: &Path| symlink("run", tree.join("generic/run2"));
        assert!(matches!(
            resolved(chain, "run", "../generic/run2"),
            Resolution::File { ref rel, .. } if rel == Path::new("generic/run")
        ));
        let looped = |tree: &Path| {
            symlink("../tty1/run", tree.join("generic/back"));
            symlink("../generic/back", tree.join("tty1/run"));
        };
        assert!(matches!(
            resolved(looped, "run", "../generic/back"),
            Resolution::Loop
        ));
        // A symlinked directory on the way is never followed.
        let via_dir = |tree: &Path| symlink("generic", tree.join("alias"));
        assert!(matches!(
            resolved(via_dir, "run", "../alias/run"),
            Resolution::Unusable { .. }
        ));
    }

    #[test]
    fn relative_targets_start_in_the_links_own_directory() {
        let link = Path::new("/etc/sv/agetty-tty1/run");
        assert_eq!(
            target_path(link, "../agetty-generic/run"),
            Path::new("/etc/sv/agetty-generic/run")
        );
        assert_eq!(
            target_path(Path::new("/etc/sv/web/log/run"), "/etc/sv/svlogd/./run"),
            Path::new("/etc/sv/svlogd/run")
        );
        assert_eq!(
            target_path(link, "../../../../../x"),
            Path::new("/x"),
            "`..` stops at /"
        );
    }
}
