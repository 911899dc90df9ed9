//! Talking to a supervisor through its own files, as its tools do, but
//! without a process per command or per poll
//! (docs/supervisors.md#control-and-status):
//!
//! - a command is bytes written to the control FIFO the supervisor reads
//!   (`<dir>/supervise/control`; s6-svscan's `.s6-svscan/control`), opened
//!   write-only and non-blocking, so "no reader" (`ENXIO`) is the answer
//!   "no supervisor runs for it" and never a wait;
//! - a status is the small binary file the supervisor replaces by rename at
//!   every change (`<dir>/supervise/status`), so one read sees one whole
//!   version. Its time stamps are TAI64N labels ([`secs_since`]).
//!
//! This module never decides what a status means: each adapter parses its
//! own family's format. No program is ever run: the caller's `PATH` cannot
//! choose what runs as root (docs/security.md#supervisor-tools).

use std::path::Path;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::sys::fs;

/// The file every family keeps its control FIFO in, below the service
/// directory.
pub(crate) const CONTROL: &str = "supervise/control";

/// The file every family keeps its status in, below the service directory.
pub(crate) const STATUS: &str = "supervise/status";

/// Larger than any status file a supported supervisor writes (s6 2.13: 43
/// bytes); a larger file is noticed by its length.
const STATUS_CAP: usize = 64;

/// Writes `command` to the control FIFO `fifo` below `dir`. `Ok(false)`
/// when no supervisor reads it. A failure is the supervisor's (exit 75,
/// like a tool that failed), naming the directory, the command and why.
pub(crate) fn send(dir: &Path, fifo: &str, command: &[u8]) -> Result<bool> {
    fs::write_fifo(&dir.join(fifo), command).map_err(|e| {
        Error::supervisor_of(
            dir,
            format!(
                "was not sent `{}`: {}",
                String::from_utf8_lossy(command),
                e.chain()
            ),
        )
    })
}

/// The bytes of `dir`'s status file; `None` when there is none (yet). A
/// failure is the supervisor's (exit 75), naming the directory and why.
pub(crate) fn read_status(dir: &Path) -> Result<Option<Vec<u8>>> {
    fs::read_small(&dir.join(STATUS), STATUS_CAP)
        .map_err(|e| Error::supervisor_of(dir, format!("has no readable status: {}", e.chain())))
}

/// TAI64 labels count from 2^62 (cr.yp.to/libtai/tai64.html).
const TAI64_EPOCH: u64 = 1 << 62;

/// Whole seconds from the TAI64N label in `label[..12]` to now, or 0 for a
/// label in the future (as the tools show it). `tai_ahead_of_utc` is how
/// many seconds the family's labels run ahead of the system's UTC clock:
/// 10 for libtai (runit, daemontools), 37 for skalibs (s6; see
/// [`super::s6`]).
pub(crate) fn secs_since(label: &[u8], tai_ahead_of_utc: u64, now: SystemTime) -> u64 {
    let Some((secs, nanos)) = label
        .get(..8)
        .zip(label.get(8..12))
        .and_then(|(s, n)| Some((s.try_into().ok()?, n.try_into().ok()?)))
        .map(|(s, n): ([u8; 8], [u8; 4])| (u64::from_be_bytes(s), u32::from_be_bytes(n)))
    else {
        return 0;
    };
    let Some(unix_secs) = secs.checked_sub(TAI64_EPOCH + tai_ahead_of_utc) else {
        return 0;
    };
    let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
        return 0;
    };
    let then = i128::from(unix_secs) * 1_000_000_000 + i128::from(nanos);
    let now = i128::try_from(now.as_nanos()).unwrap_or(i128::MAX);
    u64::try_from((now - then).max(0) / 1_000_000_000).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn label(unix: u64, nanos: u32, ahead: u64) -> [u8; 12] {
        let mut out = [0; 12];
        out[..8].copy_from_slice(&(TAI64_EPOCH + ahead + unix).to_be_bytes());
        out[8..].copy_from_slice(&nanos.to_be_bytes());
        out
    }

    #[test]
    fn seconds_since_a_tai64n_label() {
        let now = SystemTime::UNIX_EPOCH + Duration::new(1_000_000, 500_000_000);
        assert_eq!(secs_since(&label(999_990, 0, 10), 10, now), 10);
        assert_eq!(secs_since(&label(999_990, 600_000_000, 10), 10, now), 9);
        // skalibs' frame runs 27 s ahead of libtai's: a label read in the
        // wrong frame is 27 s off.
        assert_eq!(secs_since(&label(999_990, 0, 37), 37, now), 10);
        assert_eq!(secs_since(&label(999_990, 0, 10), 37, now), 37);
        assert_eq!(secs_since(&label(999_990, 0, 37), 10, now), 0);
        // Future, garbage and short labels read as 0.
        assert_eq!(secs_since(&label(1_000_100, 0, 10), 10, now), 0);
        assert_eq!(secs_since(&[0; 12], 10, now), 0);
        assert_eq!(secs_since(&[1, 2, 3], 10, now), 0);
    }

    #[test]
    fn a_command_to_no_supervisor_is_not_sent_and_odd_files_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // No supervise/ at all, then a FIFO nobody reads: no supervisor.
        assert!(!send(dir, CONTROL, b"d").unwrap());
        std::fs::create_dir(dir.join("supervise")).unwrap();
        let fifo = dir.join(CONTROL);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(!send(dir, CONTROL, b"d").unwrap());
        // A reader: the byte arrives.
        let reader = rustix::fs::open(
            &fifo,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        assert!(send(dir, CONTROL, b"du").unwrap());
        let mut got = [0u8; 4];
        assert_eq!(rustix::io::read(&reader, &mut got).unwrap(), 2);
        assert_eq!(&got[..2], b"du");
        // A regular file where the FIFO should be is never written.
        std::fs::remove_file(&fifo).unwrap();
        std::fs::write(&fifo, "").unwrap();
        let err = send(dir, CONTROL, b"d").unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::TEMP_FAIL);
        assert!(err.to_string().contains("not a FIFO"), "{err}");
        assert_eq!(std::fs::read(&fifo).unwrap(), b"");
        // Status: missing is None; a FIFO or a symlink is an error.
        assert_eq!(read_status(dir).unwrap(), None);
        fs::Dir::open(&dir.join("supervise"))
            .unwrap()
            .symlink(&fifo, "status")
            .unwrap();
        let err = read_status(dir).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::TEMP_FAIL);
        std::fs::remove_file(dir.join(STATUS)).unwrap();
        std::fs::write(dir.join(STATUS), [7u8; 100]).unwrap();
        assert_eq!(read_status(dir).unwrap().unwrap().len(), STATUS_CAP + 1);
    }
}
