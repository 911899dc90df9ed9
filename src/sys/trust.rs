//! The one trust policy: which owners and modes make a file or directory
//! safe for root to rely on, and the one way a refusal is worded.
//!
//! Whoever can write the state, the runtime directories, the config file or
//! a stock tree chooses what root copies, switches and supervisors run; a
//! lock file someone else made could be held or swapped by them. Every such
//! path is checked here, against its already opened fd's `fstat` (or the
//! `lstat` of the very name about to be opened), and refused with exit 77
//! ([`Error::Unsafe`]) by a message that names the path, what was found and
//! the fix. This module only judges: it never opens, changes or removes
//! anything.

use std::path::Path;

use rustix::fs::{FileType, Stat};

use crate::error::{Error, Result};
use crate::model::shown::shown;

/// Who may own a trusted path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// Only the user running the tool: what the tool itself makes and
    /// writes (the state and runtime directories, the manager lock).
    Me,
    /// The user running the tool or root: what root installs for it (the
    /// config file, stock trees) and lock files root made.
    MeOrRoot,
}

/// What the user is told to do about a refused path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Remedy {
    /// `chmod go-w` / `chown` it: its content matters.
    Repair,
    /// Remove it: the tool recreates it (lock files, whose content does not).
    Remove,
}

/// One kind of trusted path: who may own it, whether group and others must
/// not write it, and whether it must be a regular file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trust {
    /// What the path is in messages ("the config file"), or empty.
    what: &'static str,
    owner: Owner,
    refuse_group_or_other_write: bool,
    /// A set-gid directory gives what is created in it its group, not
    /// ours (docs/security.md#a-set-gid-state-directory-is-refused).
    refuse_setgid: bool,
    regular_file: bool,
    remedy: Remedy,
}

impl Trust {
    /// A directory the tool writes: `<state>` and its subdirectories,
    /// `<runtime>` and its lock directories.
    pub(crate) const OWN_DIR: Trust = Trust {
        what: "",
        owner: Owner::Me,
        refuse_group_or_other_write: true,
        refuse_setgid: true,
        regular_file: false,
        remedy: Remedy::Repair,
    };

    /// A directory the tool writes, opened by a command that only reads it
    /// (`status`, `list`, `plan`, `diff`, `history`, `verify`, dry runs):
    /// one root owns is as trustworthy as one of the user's own, so any
    /// user who can read it may (docs/cli.md#non-root).
    pub(crate) const READ_DIR: Trust = Trust {
        what: "",
        owner: Owner::MeOrRoot,
        refuse_group_or_other_write: true,
        // Only what the tool creates inherits the group; reading is safe.
        refuse_setgid: false,
        regular_file: false,
        remedy: Remedy::Repair,
    };

    /// The manager lock `<state>/.lock`: a regular file of the user running
    /// the tool; its mode does not matter (only the flock does).
    pub(crate) const MANAGER_LOCK: Trust = Trust {
        what: "",
        owner: Owner::Me,
        refuse_group_or_other_write: false,
        refuse_setgid: false,
        regular_file: true,
        remedy: Remedy::Remove,
    };

    /// An update lock or a pin: a regular file of root or the user running
    /// the tool (services open it read-only; its mode does not matter).
    pub(crate) const LOCK_FILE: Trust = Trust {
        what: "",
        owner: Owner::MeOrRoot,
        refuse_group_or_other_write: false,
        refuse_setgid: false,
        regular_file: true,
        remedy: Remedy::Remove,
    };

    /// An input root installs for the tool (`what`: "config file", "stock
    /// tree"): owned by root or the user running the tool, not writable by
    /// group or others.
    pub(crate) const fn input(what: &'static str) -> Trust {
        Trust {
            what,
            owner: Owner::MeOrRoot,
            refuse_group_or_other_write: true,
            refuse_setgid: false,
            regular_file: false,
            remedy: Remedy::Repair,
        }
    }

    /// Refuses `path` (exit 77) unless its mode and owner `found` fit this
    /// policy.
    pub(crate) fn check(&self, path: &Path, found: Found) -> Result<()> {
        let me = rustix::process::geteuid().as_raw();
        self.check_as(me, found)
            .map_err(|problem| self.refusal(path, me, &problem))
    }

    /// What is wrong with `found` for a process running as uid `me`.
    fn check_as(&self, me: u32, found: Found) -> std::result::Result<(), Problem> {
        let file_type = FileType::from_raw_mode(found.mode);
        if self.regular_file && file_type != FileType::RegularFile {
            return Err(Problem::NotARegularFile(file_type));
        }
        if self.refuse_group_or_other_write && found.mode & 0o022 != 0 {
            return Err(Problem::Writable(found.mode));
        }
        if self.refuse_setgid && found.mode & 0o2000 != 0 {
            return Err(Problem::SetGid(found.mode));
        }
        let owner_ok = match self.owner {
            Owner::Me => found.uid == me,
            Owner::MeOrRoot => found.uid == me || found.uid == 0,
        };
        if !owner_ok {
            return Err(Problem::Owner(found.uid));
        }
        Ok(())
    }

    /// The one refusal: what the path is, what was found, the fix
    /// ([`Error::Unsafe`] words them).
    fn refusal(&self, path: &Path, me: u32, problem: &Problem) -> Error {
        let path_shown = shown(&path);
        let (found, fix) = match (problem, self.remedy) {
            (Problem::NotARegularFile(kind), _) => (
                format!("is {}, not a regular file", kind_name(*kind)),
                RECREATE.to_string(),
            ),
            (Problem::Writable(mode), remedy) => {
                let fix = match remedy {
                    Remedy::Repair => format!("run `chmod go-w {path_shown}`"),
                    Remedy::Remove => RECREATE.to_string(),
                };
                let found = format!(
                    "is writable by {} (mode {:04o})",
                    writers(*mode),
                    mode & 0o7777
                );
                (found, fix)
            }
            (Problem::SetGid(mode), _) => (
                format!(
                    "is set-gid (mode {:04o}): what svcdir-update creates in it would get \
                     the directory's group instead of its own",
                    mode & 0o7777
                ),
                format!("run `chmod g-s {path_shown}`"),
            ),
            // A user who forgot sudo: handing root's directory to them
            // (`chown`) would be the wrong fix.
            (Problem::Owner(uid), Remedy::Repair) if self.owner == Owner::Me && me != 0 => (
                format!(
                    "is owned by {}, not by uid {me}, who runs this",
                    if *uid == 0 {
                        "root".to_string()
                    } else {
                        format!("uid {uid}")
                    }
                ),
                format!(
                    "a command that writes it must run as root (or as its owner{}); run it \
                     with sudo. status, list, plan, diff, history, verify and check only read, \
                     and work as any user who can read it",
                    if *uid == 0 {
                        String::new()
                    } else {
                        format!(", uid {uid}")
                    }
                ),
            ),
            (Problem::Owner(uid), remedy) => {
                let (allowed, new_owner) = match self.owner {
                    Owner::Me => (format!("uid {me}, who runs this"), me.to_string()),
                    Owner::MeOrRoot if me == 0 => ("root, who runs this".into(), "root".into()),
                    Owner::MeOrRoot => (format!("root or uid {me}, who runs this"), "root".into()),
                };
                let fix = match remedy {
                    Remedy::Repair => format!("run `chown {new_owner} {path_shown}`"),
                    Remedy::Remove => RECREATE.to_string(),
                };
                (format!("is owned by uid {uid}, not by {allowed}"), fix)
            }
        };
        Error::Unsafe {
            role: self.what,
            path: path.to_path_buf(),
            found,
            fix,
        }
    }
}

/// The fix for a file the tool makes itself and can make again.
const RECREATE: &str = "remove it, the tool recreates it";

/// Refuses (exit 77) `path`, a symlink where a lock file must be: found by
/// `O_NOFOLLOW` before there is anything to stat.
pub(crate) fn refuse_symlink(path: &Path) -> Error {
    Error::Unsafe {
        role: "",
        path: path.to_path_buf(),
        found: "is a symlink, not a regular file".into(),
        fix: RECREATE.into(),
    }
}

/// Refuses (exit 77) `path`, a directory of ours that carries a default
/// ACL: every file and directory created in it inherits the ACL's named
/// users and groups, so they could read or write store objects whatever
/// mode the tool sets (docs/security.md#a-default-acl-on-the-state-is-refused).
pub(crate) fn refuse_default_acl(path: &Path) -> Error {
    Error::Unsafe {
        role: "",
        path: path.to_path_buf(),
        found: "has a default ACL, which would give its named users and groups access to \
                everything svcdir-update creates there"
            .into(),
        fix: format!("run `setfacl -k {}`", shown(path)),
    }
}

/// The mode and owner of a path, from `fstat`/`lstat` or [`std::fs::Metadata`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    /// `st_mode`, file type bits included.
    pub mode: u32,
    pub uid: u32,
}

impl From<&Stat> for Found {
    fn from(st: &Stat) -> Found {
        // `st_mode` is u32 on Linux, but not on every target rustix knows.
        #[allow(clippy::unnecessary_cast)]
        let mode = st.st_mode as u32;
        Found {
            mode,
            uid: st.st_uid,
        }
    }
}

impl From<&std::fs::Metadata> for Found {
    fn from(md: &std::fs::Metadata) -> Found {
        use std::os::unix::fs::MetadataExt;
        Found {
            mode: md.mode(),
            uid: md.uid(),
        }
    }
}

/// Why a path is not trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Problem {
    NotARegularFile(FileType),
    /// Writable by group or others; the mode found.
    Writable(u32),
    /// Owned by someone not allowed; the uid found.
    Owner(u32),
    /// A set-gid directory; the mode found.
    SetGid(u32),
}

/// "group", "others" or "group and others", from the write bits of `mode`.
fn writers(mode: u32) -> &'static str {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => "group and others",
        (true, false) => "group",
        _ => "others",
    }
}

fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Symlink => "a symlink",
        FileType::Directory => "a directory",
        FileType::Fifo => "a fifo",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        _ => "a special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: u32 = 0o100_000;
    const DIR: u32 = 0o040_000;
    const LINK: u32 = 0o120_000;
    const ME: u32 = 1000;

    fn verdict(trust: Trust, mode: u32, uid: u32) -> std::result::Result<(), Problem> {
        trust.check_as(ME, Found { mode, uid })
    }

    #[test]
    fn own_directories_are_mine_and_not_writable_by_others() {
        let t = Trust::OWN_DIR;
        assert_eq!(verdict(t, DIR | 0o755, ME), Ok(()));
        assert_eq!(verdict(t, DIR | 0o700, ME), Ok(()));
        assert_eq!(verdict(t, DIR | 0o1755, ME), Ok(()));
        assert_eq!(
            verdict(t, DIR | 0o2755, ME),
            Err(Problem::SetGid(DIR | 0o2755))
        );
        assert_eq!(
            verdict(t, DIR | 0o775, ME),
            Err(Problem::Writable(DIR | 0o775))
        );
        assert_eq!(
            verdict(t, DIR | 0o757, ME),
            Err(Problem::Writable(DIR | 0o757))
        );
        // Root's directory is not mine when I am not root.
        assert_eq!(verdict(t, DIR | 0o755, 0), Err(Problem::Owner(0)));
        assert_eq!(verdict(t, DIR | 0o755, 65534), Err(Problem::Owner(65534)));
    }

    #[test]
    fn inputs_may_be_roots_and_not_writable_by_others() {
        let t = Trust::input("config file");
        assert_eq!(verdict(t, FILE | 0o644, ME), Ok(()));
        assert_eq!(verdict(t, FILE | 0o644, 0), Ok(()));
        assert_eq!(verdict(t, DIR | 0o755, 0), Ok(()));
        assert_eq!(
            verdict(t, FILE | 0o664, 0),
            Err(Problem::Writable(FILE | 0o664))
        );
        assert_eq!(verdict(t, FILE | 0o644, 65534), Err(Problem::Owner(65534)));
    }

    #[test]
    fn lock_files_must_be_regular_files_of_the_right_owner_whatever_their_mode() {
        let t = Trust::LOCK_FILE;
        assert_eq!(verdict(t, FILE | 0o644, 0), Ok(()));
        assert_eq!(verdict(t, FILE | 0o666, ME), Ok(()));
        assert_eq!(
            verdict(t, LINK | 0o777, 0),
            Err(Problem::NotARegularFile(FileType::Symlink))
        );
        assert_eq!(verdict(t, FILE | 0o644, 65534), Err(Problem::Owner(65534)));
        let m = Trust::MANAGER_LOCK;
        assert_eq!(verdict(m, FILE | 0o666, ME), Ok(()));
        assert_eq!(verdict(m, FILE | 0o644, 0), Err(Problem::Owner(0)));
        assert_eq!(
            verdict(m, DIR | 0o755, ME),
            Err(Problem::NotARegularFile(FileType::Directory))
        );
    }

    #[test]
    fn a_directory_to_read_may_be_roots_but_not_writable_by_others() {
        let t = Trust::READ_DIR;
        assert_eq!(verdict(t, DIR | 0o755, 0), Ok(()));
        assert_eq!(verdict(t, DIR | 0o755, ME), Ok(()));
        assert_eq!(verdict(t, DIR | 0o755, 65534), Err(Problem::Owner(65534)));
        assert_eq!(
            verdict(t, DIR | 0o757, 0),
            Err(Problem::Writable(DIR | 0o757))
        );
    }

    #[test]
    fn refusals_name_the_path_what_was_found_and_the_fix() {
        let path = Path::new("/srv/state");
        let said = |t: Trust, p: Problem| t.refusal(path, ME, &p).to_string();
        let said_to_root = |t: Trust, p: Problem| t.refusal(path, 0, &p).to_string();
        assert_eq!(
            said(Trust::OWN_DIR, Problem::Writable(DIR | 0o775)),
            "`/srv/state` is writable by group (mode 0775); run `chmod go-w /srv/state`"
        );
        assert_eq!(
            said(Trust::input("stock tree"), Problem::Writable(DIR | 0o777)),
            "the stock tree `/srv/state` is writable by group and others (mode 0777); \
             run `chmod go-w /srv/state`"
        );
        // Never "chown it to me": a user who forgot sudo is told to use it.
        assert_eq!(
            said(Trust::OWN_DIR, Problem::SetGid(DIR | 0o2755)),
            "`/srv/state` is set-gid (mode 2755): what svcdir-update creates in it would get \
             the directory's group instead of its own; run `chmod g-s /srv/state`"
        );
        assert_eq!(
            said(Trust::OWN_DIR, Problem::Owner(0)),
            "`/srv/state` is owned by root, not by uid 1000, who runs this; a command that \
             writes it must run as root (or as its owner); run it with sudo. status, list, \
             plan, diff, history, verify and check only read, and work as any user who can \
             read it"
        );
        assert!(
            said(Trust::OWN_DIR, Problem::Owner(65534))
                .contains("must run as root (or as its owner, uid 65534); run it with sudo")
        );
        assert_eq!(
            said_to_root(Trust::OWN_DIR, Problem::Owner(65534)),
            "`/srv/state` is owned by uid 65534, not by uid 0, who runs this; \
             run `chown 0 /srv/state`"
        );
        assert_eq!(
            said(Trust::input("config file"), Problem::Owner(65534)),
            "the config file `/srv/state` is owned by uid 65534, not by root or uid 1000, \
             who runs this; run `chown root /srv/state`"
        );
        assert_eq!(
            said_to_root(Trust::LOCK_FILE, Problem::Owner(65534)),
            "`/srv/state` is owned by uid 65534, not by root, who runs this; \
             remove it, the tool recreates it"
        );
        assert_eq!(
            said(
                Trust::LOCK_FILE,
                Problem::NotARegularFile(FileType::Symlink)
            ),
            "`/srv/state` is a symlink, not a regular file; remove it, the tool recreates it"
        );
        assert_eq!(
            said(Trust::MANAGER_LOCK, Problem::Owner(65534)),
            "`/srv/state` is owned by uid 65534, not by uid 1000, who runs this; \
             remove it, the tool recreates it"
        );
    }
}
