//! Named crash points between the effects of every transaction.
//!
//! With the `failpoints` cargo feature, `SVCDIR_UPDATE_FAILPOINT=<name>`
//! makes [`hit`] kill the process with SIGKILL at that point (no destructors,
//! no flush — as a power cut would), `<name>=eio` makes it return an I/O
//! error instead, and `<name>=stop` stops the process with SIGSTOP until a
//! test that saw it stopped (state `T` in /proc) has raced it — e.g. written
//! to the stock — and sent SIGCONT. Without the feature, [`hit`] is an empty inline function.
//! [`ALL`] lists every name; a test proves each `hit` in the code is listed.

use crate::error::Result;

/// Every failpoint, in the order a transaction meets them.
pub(crate) const ALL: &[&str] = &[
    "migrate.after-named-copy",
    "migrate.after-relink-generations",
    "migrate.after-stop",
    "migrate.after-relink-live",
    "migrate.after-strip-object",
    "recover.start",
    "recover.after-undo",
    "recover.after-sweep",
    "stock.after-choose",
    "stock.after-capture",
    "commit.after-scan",
    "commit.after-take-capture",
    "commit.after-stage",
    "commit.after-sync",
    "commit.after-publish-objects",
    "generation.after-retire",
    "generation.after-materialize",
    "commit.after-publish-generation",
    "txn.after-write",
    "txn.after-stop",
    "switch.after-symlink",
    "switch.after-rename",
    "txn.after-switch",
    "txn.after-scandir",
    "txn.after-history",
    "gc.after-mark",
    "gc.after-remove-generation",
    "gc.after-remove-object",
    "repair.after-stage",
    "repair.after-stop",
    "repair.after-exchange",
];

/// The environment variable naming the failpoint to trigger.
#[cfg(feature = "failpoints")]
const ENV: &str = "SVCDIR_UPDATE_FAILPOINT";

#[cfg(feature = "failpoints")]
pub(crate) fn hit(name: &'static str) -> Result<()> {
    debug_assert!(
        ALL.contains(&name),
        "failpoint {name} is not in failpoint::ALL"
    );
    let Ok(wanted) = std::env::var(ENV) else {
        return Ok(());
    };
    for w in wanted.split(',') {
        let (point, action) = w.split_once('=').unwrap_or((w, "kill"));
        if point != name {
            continue;
        }
        match action {
            "eio" => {
                return Err(crate::error::Error::sync(
                    format!("<failpoint {name}>"),
                    std::io::Error::from_raw_os_error(rustix::io::Errno::IO.raw_os_error()),
                ));
            }
            "stop" => {
                let me = rustix::process::getpid();
                let _ = rustix::process::kill_process(me, rustix::process::Signal::STOP);
            }
            _ => {
                let me = rustix::process::getpid();
                let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
                // SIGKILL cannot be caught; this is never reached.
                std::process::abort();
            }
        }
    }
    Ok(())
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn hit(_name: &'static str) -> Result<()> {
    Ok(())
}

/// The extended attribute whose read tells the power-cut model that a
/// syncfs just succeeded: FUSE never forwards syncfs to its server (the
/// kernel sends `FUSE_SYNCFS` to virtiofs only), so the model would
/// otherwise never see the barrier the tool relies on.
#[cfg(feature = "failpoints")]
const SYNCFS_MARKER: &str = "user.svcdir-update.syncfs";

/// Whether a state directory on FUSE is accepted: only in a test build
/// (the `failpoints` feature), for the power-cut tests, whose state
/// directory is a FUSE model of a disk (tests/it/powercut_fs.rs,
/// docs/durability.md#the-power-cut-model). A release build refuses it
/// (exit 77).
pub(crate) fn fuse_state_allowed() -> bool {
    cfg!(feature = "failpoints")
}

/// After a successful syncfs of the file system of `fd`, in a test build:
/// tells the power-cut model (a marker xattr read, which it answers with
/// ENODATA, as any other file system does). Nothing in a release build.
pub(crate) fn tell_syncfs(fd: std::os::fd::BorrowedFd<'_>) {
    #[cfg(feature = "failpoints")]
    {
        let _ = rustix::fs::fgetxattr(fd, SYNCFS_MARKER, &mut [0u8; 0]);
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = fd;
}

#[cfg(test)]
mod tests {
    use super::ALL;

    /// Every `failpoint::hit("…")` in the sources is listed in `ALL`, and
    /// every listed name appears in the sources.
    #[test]
    fn all_lists_every_failpoint_in_the_code() {
        let mut found = std::collections::BTreeSet::new();
        for entry in walkdir::WalkDir::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")) {
            let entry = entry.unwrap();
            if entry.path().extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap();
            for part in text.split("failpoint::hit(\"").skip(1) {
                let name = part.split('"').next().unwrap();
                if name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'-')
                {
                    found.insert(name.to_string());
                }
            }
        }
        let listed: std::collections::BTreeSet<String> =
            ALL.iter().map(|s| s.to_string()).collect();
        assert_eq!(found, listed);
    }
}
