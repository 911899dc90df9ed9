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

use crate::error::Result;
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
/// when no supervisor reads it.
pub(crate) fn send(dir: &Path, fifo: &str, command: &[u8]) -> Result<bool> {
    fs::write_fifo(&dir.join(fifo), command)
}

/// The bytes of `dir`'s status file; `None` when there is none (yet).
pub(crate) fn read_status(dir: &Path) -> Result<Option<Vec<u8>>> {
    fs::read_small(&dir.join(STATUS), STATUS_CAP)
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
}
