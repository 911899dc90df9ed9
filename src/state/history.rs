//! `history.log`: one line per finished transaction, written at the end of
//! every switch and read back by `history` and `list`
//! (docs/cli.md#history).
//!
//! A line is `TIME ID KIND FROM -> TO start=N restart=N stop=N [uid=N
//! pid=N cmd=WORD] OUTCOME [forced=N]`: `forced=N` counts the update locks
//! gone past; `uid`, `pid` and `cmd` (the command line as one word, spaces
//! and control characters escaped) say who ran it. Lines written before
//! those fields existed still parse: who is then unknown (`None`). This
//! module formats and parses; `txn_log::append_history` writes.

use serde::Serialize;

use crate::error::Result;
use crate::model::plan::Action;
use crate::state::layout;
use crate::state::txn_log::TxnLog;
use crate::sys::fs::Dir;

/// The most of `history.log` read (a line is ~150 bytes: ~100,000 lines).
const MAX_HISTORY_BYTES: u64 = 16 << 20;

/// One finished transaction, as `history.log` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct HistoryEntry {
    /// When it ended (RFC 3339, UTC).
    pub time: String,
    /// The transaction id.
    pub id: String,
    /// `commit`, `rollback` or `auto-rollback`.
    pub kind: String,
    /// The generation live before (none for the first commit).
    pub from: Option<u64>,
    /// The generation it switched to (or meant to, when undone).
    pub to: u64,
    /// Services started, restarted and stopped.
    pub start: u64,
    pub restart: u64,
    pub stop: u64,
    /// `done` (switched) or `undone` (put back before the switch).
    pub outcome: String,
    /// How many held update locks `--force` went past.
    pub forced: u64,
    /// Who ran it: effective uid, pid and command line of the process that
    /// started the transaction (unknown on lines older than these fields).
    pub uid: Option<u32>,
    pub pid: Option<i32>,
    pub command: Option<String>,
}

/// The line that records `log` as ended with `outcome` (`done`, `undone`).
/// Who ran it comes before the outcome, so that the outcome (and
/// `forced=N`) stays at the end of the line where earlier readers look.
pub(crate) fn line(log: &TxnLog, outcome: &str) -> String {
    let count = |a: Action| log.services.iter().filter(|s| s.action == a).count();
    let mut out = format!(
        "{} {} {} {} -> {} start={} restart={} stop={} uid={} pid={} cmd={} {outcome}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
        log.id,
        log.kind,
        log.from.map_or_else(|| "-".to_string(), |n| n.to_string()),
        log.to,
        count(Action::Start),
        count(Action::Restart),
        count(Action::Stop),
        rustix::process::geteuid().as_raw(),
        log.holder.pid,
        escape_command(&log.holder.cmdline),
    );
    if !log.overridden.is_empty() {
        out.push_str(&format!(" forced={}", log.overridden.len()));
    }
    out
}

/// The command line as one word: spaces, backslashes and control
/// characters (a newline would end the line) written as escapes.
fn escape_command(cmd: &str) -> String {
    let mut out = String::with_capacity(cmd.len());
    for c in cmd.chars() {
        match c {
            ' ' => out.push_str("\\x20"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape_command`]; an escape it cannot read stays as written.
fn unescape_command(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let esc = &rest[i..];
        let (c, len) = if esc.starts_with("\\\\") {
            (Some('\\'), 2)
        } else if let Some(hex) = esc.strip_prefix("\\x").and_then(|h| h.get(..2)) {
            (u8::from_str_radix(hex, 16).ok().map(char::from), 4)
        } else if let Some(body) = esc.strip_prefix("\\u{").and_then(|b| b.split_once('}')) {
            let c = u32::from_str_radix(body.0, 16)
                .ok()
                .and_then(char::from_u32);
            (c, 4 + body.0.len())
        } else {
            match esc.as_bytes().get(1) {
                Some(b'n') => (Some('\n'), 2),
                Some(b't') => (Some('\t'), 2),
                Some(b'r') => (Some('\r'), 2),
                _ => (None, 1),
            }
        };
        match c {
            Some(c) => out.push(c),
            None => out.push_str(&esc[..len]),
        }
        rest = &esc[len..];
    }
    out.push_str(rest);
    out
}

/// Parses one line; `None` for a line that is not a history line (a torn
/// last line after a power cut, or text added by hand).
pub(crate) fn parse_line(line: &str) -> Option<HistoryEntry> {
    let mut words = line.split(' ');
    let (time, id, kind, from, arrow, to) = (
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
        words.next()?,
    );
    if arrow != "->" {
        return None;
    }
    let mut entry = HistoryEntry {
        time: time.to_string(),
        id: id.to_string(),
        kind: kind.to_string(),
        from: if from == "-" {
            None
        } else {
            Some(from.parse().ok()?)
        },
        to: to.parse().ok()?,
        start: 0,
        restart: 0,
        stop: 0,
        outcome: String::new(),
        forced: 0,
        uid: None,
        pid: None,
        command: None,
    };
    for word in words {
        match word.split_once('=') {
            Some(("start", n)) => entry.start = n.parse().ok()?,
            Some(("restart", n)) => entry.restart = n.parse().ok()?,
            Some(("stop", n)) => entry.stop = n.parse().ok()?,
            Some(("forced", n)) => entry.forced = n.parse().ok()?,
            Some(("uid", n)) => entry.uid = n.parse().ok(),
            Some(("pid", n)) => entry.pid = n.parse().ok(),
            Some(("cmd", c)) => entry.command = Some(unescape_command(c)),
            // A field a later version adds is skipped, not an error.
            Some(_) => {}
            None => entry.outcome = word.to_string(),
        }
    }
    (!entry.outcome.is_empty()).then_some(entry)
}

/// Every transaction `history.log` records, oldest first, and how many
/// lines could not be read (torn or foreign). No history yet is empty.
pub(crate) fn read(state: &Dir) -> Result<(Vec<HistoryEntry>, usize)> {
    if state.try_stat(layout::HISTORY)?.is_none() {
        return Ok((Vec::new(), 0));
    }
    let bytes = state.read_capped(layout::HISTORY, MAX_HISTORY_BYTES)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut entries = Vec::new();
    let mut unreadable = 0;
    for l in text.lines().filter(|l| !l.trim().is_empty()) {
        match parse_line(l) {
            Some(e) => entries.push(e),
            None => unreadable += 1,
        }
    }
    Ok((entries, unreadable))
}

/// What the history says of one generation, for `list`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GenerationFate {
    /// Some transaction switched to it.
    pub went_live: bool,
    /// A `--check-up` rolled back from it (a started service was not up).
    pub failed_check_up: bool,
}

/// The fate of generation `n` according to `entries`.
pub(crate) fn fate(entries: &[HistoryEntry], n: u64) -> GenerationFate {
    let done = || entries.iter().filter(|e| e.outcome == "done");
    GenerationFate {
        went_live: done().any(|e| e.to == n),
        failed_check_up: done().any(|e| e.kind == "auto-rollback" && e.from == Some(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_earlier_versions_still_parse() {
        let old = "2026-01-01T00:00:00Z 2026-01-01T00:00:00Z-42-000000001 commit 1 -> 2 \
                   start=1 restart=2 stop=0 done forced=1";
        let e = parse_line(old).expect("parses");
        assert_eq!(
            (e.from, e.to, e.start, e.restart, e.stop),
            (Some(1), 2, 1, 2, 0)
        );
        assert_eq!((e.outcome.as_str(), e.forced), ("done", 1));
        assert_eq!((e.uid, e.pid, e.command), (None, None, None));
        let first = "2026-01-01T00:00:00Z x commit - -> 1 start=3 restart=0 stop=0 done";
        assert_eq!(parse_line(first).expect("parses").from, None);
    }

    #[test]
    fn who_is_read_back_with_the_command_unescaped() {
        let l = "2026-01-01T00:00:00Z x rollback 3 -> 2 start=0 restart=1 stop=0 \
                 uid=0 pid=77 cmd=svcdir-update\\x20--root\\x20/a\\x20b\\x20rollback\\x202 undone";
        let e = parse_line(l).expect("parses");
        assert_eq!((e.uid, e.pid), (Some(0), Some(77)));
        assert_eq!(
            e.command.as_deref(),
            Some("svcdir-update --root /a b rollback 2")
        );
        assert_eq!(e.outcome, "undone");
    }

    #[test]
    fn torn_and_foreign_lines_are_not_entries() {
        for bad in [
            "",
            "2026-01-01T00:00:00Z x commit 1",
            "2026-01-01T00:00:00Z x commit 1 => 2 start=0 restart=0 stop=0 done",
            "2026-01-01T00:00:00Z x commit 1 -> 2 start=0 restart=0 stop=0",
            "2026-01-01T00:00:00Z x commit 1 -> two start=0 restart=0 stop=0 done",
        ] {
            assert_eq!(parse_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_newline_or_space_in_the_command_cannot_split_the_line() {
        let cmd = "sh -c 'a\nb' \\x20 \u{7f} é";
        let word = escape_command(cmd);
        assert!(!word.contains(' ') && !word.contains('\n'), "{word}");
        assert_eq!(unescape_command(&word), cmd);
        assert_eq!(unescape_command("a\\q\\x2"), "a\\q\\x2");
    }
}
