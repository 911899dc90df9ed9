//! The rollback log (`<state>/.txn.yaml`) and the history (`history.log`).
//!
//! The log describes the transaction in flight: from which generation to
//! which, what happens to each service, the phase reached, the services
//! stopped so far, and who runs it. It is written atomically (temp, fsync,
//! rename, fsync) before every phase change, and carries a BLAKE3 checksum
//! as its last line, so a torn or damaged log is detected, never guessed at.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::names::{name_problem, split_object_name};
use crate::model::plan::Action;
use crate::model::shown::shown;
use crate::state::layout;
use crate::sys::fs::Dir;
use crate::sys::process::ProcessSignature;

const CHECKSUM_PREFIX: &str = "checksum: ";
const MAX_LOG_BYTES: u64 = 64 << 20;
/// How much of the end of `history.log` is read to find its last line.
const HISTORY_TAIL: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Phase {
    /// Staged and published; nothing stopped or switched yet.
    Prepared,
    /// Stopping old instances (see `stopped`).
    Stopping,
    /// About to rename `live` (it may or may not have happened).
    Switching,
    /// `live` points at `to`; scan directory and history remain.
    Switched,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum TxnKind {
    Commit,
    Rollback,
    /// A commit whose health check failed, going back to `to`.
    AutoRollback,
}

impl std::fmt::Display for TxnKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TxnKind::Commit => "commit",
            TxnKind::Rollback => "rollback",
            TxnKind::AutoRollback => "auto-rollback",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TxnService {
    pub name: String,
    pub action: Action,
    /// The store object of the old instance (what is stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TxnLog {
    pub id: String,
    pub kind: TxnKind,
    pub from: Option<u64>,
    pub to: u64,
    pub phase: Phase,
    pub started: String,
    pub services: Vec<TxnService>,
    /// Services whose old instance was running (or meant to) and that this
    /// transaction stops or stopped: an undo starts exactly these again.
    /// Each is recorded before its stop begins.
    #[serde(default)]
    pub stopped: Vec<String>,
    pub holder: ProcessSignature,
    /// Update locks this transaction went past (`--force`), as messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<String>,
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "start" => Ok(Action::Start),
            "restart" => Ok(Action::Restart),
            "stop" => Ok(Action::Stop),
            "keep" => Ok(Action::Keep),
            other => Err(serde::de::Error::custom(format!(
                "unknown action {other:?}"
            ))),
        }
    }
}

/// Serializes a log with its checksum line.
pub(crate) fn encode(log: &TxnLog) -> Result<Vec<u8>> {
    let body = serde_yaml::to_string(log)
        .map_err(|e| Error::io("cannot serialize", layout::TXN, std::io::Error::other(e)))?;
    let sum = blake3::hash(body.as_bytes()).to_hex();
    Ok(format!("{body}{CHECKSUM_PREFIX}{sum}\n").into_bytes())
}

/// Parses a log; any damage is an error that says what to do.
pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<TxnLog> {
    let damaged = |why: &str| {
        Error::damaged(
            path,
            format!(
                "the transaction log is damaged ({why}); it cannot be trusted to finish or undo \
                 the interrupted transaction. Check `svcdir-update status` and `verify`, then \
                 move the file away and run `svcdir-update rollback GEN` to choose a generation \
                 by hand"
            ),
        )
    };
    let text = std::str::from_utf8(bytes).map_err(|_| damaged("not UTF-8"))?;
    let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
    let (body, last) = text.split_at(body_end);
    let sum = last
        .trim_end()
        .strip_prefix(CHECKSUM_PREFIX)
        .ok_or_else(|| damaged("no checksum line: truncated?"))?;
    if blake3::hash(body.as_bytes()).to_hex().as_str() != sum {
        return Err(damaged("checksum mismatch"));
    }
    if let Some(why) = crate::format::yaml_guard::yaml_nesting_problem(body.as_bytes()) {
        return Err(damaged(&why));
    }
    let log: TxnLog = serde_yaml::from_str(body).map_err(|e| damaged(&e.to_string()))?;
    // A checksum proves the file is whole, not that this tool wrote it: its
    // names become paths and supervisor arguments, so they are held to the
    // rules of manifest values (docs/security.md#names-read-from-the-rollback-log).
    match log_problem(&log) {
        Some(why) => Err(damaged(&why)),
        None => Ok(log),
    }
}

/// The longest transaction id accepted (ours are about 40 bytes).
const MAX_ID: usize = 64;

/// Why a parsed log names something it must not — a service name that is
/// not one, an object that is not `<service>-<64 hex>` of its service, an
/// id that would break the history line — or `None`. Names the field.
fn log_problem(log: &TxnLog) -> Option<String> {
    let id_ok = !log.id.is_empty()
        && log.id.len() <= MAX_ID
        && log
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-:.".contains(&b));
    if !id_ok {
        return Some(format!(
            "field `id`: {} is not a transaction id",
            shown(&log.id)
        ));
    }
    for s in &log.services {
        if let Some(why) = name_problem(s.name.as_bytes()) {
            return Some(format!("field `services[].name`: {why}"));
        }
        let Some(object) = &s.from else { continue };
        let is_its_object = split_object_name(object).is_some_and(|(service, digest)| {
            service == s.name
                && digest
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if !is_its_object {
            return Some(format!(
                "field `services[].from` of {}: {} is not a store object of that service",
                s.name,
                shown(object)
            ));
        }
    }
    for name in &log.stopped {
        if let Some(why) = name_problem(name.as_bytes()) {
            return Some(format!("field `stopped`: {why}"));
        }
    }
    None
}

/// Writes the log atomically and durably.
pub(crate) fn write(state: &Dir, log: &TxnLog) -> Result<()> {
    state.write_atomic(layout::TXN, &encode(log)?, 0o644)
}

/// Reads the log of an interrupted transaction, if any.
pub(crate) fn read(state: &Dir) -> Result<Option<TxnLog>> {
    if state.try_stat(layout::TXN)?.is_none() {
        return Ok(None);
    }
    let bytes = state.read_capped(layout::TXN, MAX_LOG_BYTES)?;
    decode(&bytes, &state.join(layout::TXN)).map(Some)
}

/// Removes the log (the transaction is over) durably.
pub(crate) fn remove(state: &Dir) -> Result<()> {
    state.remove_if_exists(layout::TXN)?;
    state.sync()
}

/// Appends the line that ends transaction `id` to `history.log` and fsyncs
/// it — unless the last line already records `id`: a run killed between
/// the append and the removal of the log is finished again by `recover`,
/// and must not list the transaction twice. (Under the manager lock, the
/// interrupted transaction's line can only be the last one.)
pub(crate) fn append_history(state: &Dir, id: &str, line: &str) -> Result<()> {
    if last_history_id(state)?.as_deref() == Some(id) {
        return Ok(());
    }
    let path = state.join(layout::HISTORY);
    let mut file = state.open_append(layout::HISTORY, 0o644)?;
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| Error::create("append to", &path, e))?;
    crate::sys::fs::sync_file(&file, &path)
}

/// The transaction id (second field) of the last line of `history.log`.
fn last_history_id(state: &Dir) -> Result<Option<String>> {
    Ok(last_history_line(state)?
        .as_deref()
        .and_then(|l| l.split(' ').nth(1))
        .map(str::to_string))
}

/// The generation the last line of `history.log` left live: `to` of a
/// transaction `done`, `from` of one `undone`. `Ok(None)` when there is no
/// history, the last transaction was an undone first commit, or the line
/// is not one this version writes (the caller then looks for another way).
pub(crate) fn last_live_in_history(state: &Dir) -> Result<Option<u64>> {
    let Some(line) = last_history_line(state)? else {
        return Ok(None);
    };
    // One parser for every version's lines (src/state/history.rs).
    let Some(entry) = crate::state::history::parse_line(&line) else {
        return Ok(None);
    };
    Ok(match entry.outcome.as_str() {
        "done" => Some(entry.to),
        "undone" => entry.from,
        _ => None,
    })
}

/// The last line of `history.log`, if it has one.
fn last_history_line(state: &Dir) -> Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    if state.try_stat(layout::HISTORY)?.is_none() {
        return Ok(None);
    }
    let path = state.join(layout::HISTORY);
    let mut file = state.open_file(layout::HISTORY)?;
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(|e| Error::io("cannot read", &path, e))?;
    file.seek(SeekFrom::Start(len.saturating_sub(HISTORY_TAIL)))
        .map_err(|e| Error::io("cannot read", &path, e))?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail)
        .map_err(|e| Error::io("cannot read", &path, e))?;
    Ok(String::from_utf8_lossy(&tail)
        .lines()
        .last()
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TxnLog {
        TxnLog {
            id: "t1".into(),
            kind: TxnKind::Commit,
            from: Some(1),
            to: 2,
            phase: Phase::Prepared,
            started: "2026-01-01T00:00:00Z".into(),
            services: vec![TxnService {
                name: "web".into(),
                action: Action::Restart,
                from: Some(format!("web-{}", "ab".repeat(32))),
            }],
            stopped: vec![],
            holder: ProcessSignature::myself(),
            overridden: vec![],
        }
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let bytes = encode(&sample()).unwrap();
        assert_eq!(decode(&bytes, Path::new("log")).unwrap(), sample());
        let truncated = &bytes[..bytes.len() / 2];
        assert!(decode(truncated, Path::new("log")).is_err());
        let nul = vec![0u8; bytes.len()];
        assert!(decode(&nul, Path::new("log")).is_err());
        let mut flipped = bytes.clone();
        flipped[5] ^= 0x01;
        assert!(decode(&flipped, Path::new("log")).is_err());
        let unknown_phase = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("phase: prepared", "phase: exploded");
        assert!(decode(unknown_phase.as_bytes(), Path::new("log")).is_err());
    }

    /// Re-signs a (damaged) body, so that the YAML parser, not the
    /// checksum, has to catch the damage.
    fn resigned(body: &[u8]) -> Vec<u8> {
        let mut out = body.to_vec();
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        let sum = blake3::hash(&out).to_hex();
        out.extend_from_slice(format!("{CHECKSUM_PREFIX}{sum}\n").as_bytes());
        out
    }

    fn body() -> Vec<u8> {
        serde_yaml::to_string(&sample()).unwrap().into_bytes()
    }

    proptest::proptest! {
        #![proptest_config(crate::test_support::mutate::config())]
        /// A damaged log is a log or a clear error, exit 65; never a panic.
        #[test]
        fn damaged_log_is_a_clear_error(bytes in crate::test_support::mutate::damaged(vec![encode(&sample()).unwrap()])) {
            if let Err(e) = decode(&bytes, Path::new("/state/.txn.yaml")) {
                proptest::prop_assert_eq!(e.exit_code(), 65);
                proptest::prop_assert!(
                    e.kind() == "damaged" && e.path() == Some(Path::new("/state/.txn.yaml"))
                );
            }
        }

        /// The same with a valid checksum over the damaged body: the
        /// parser itself refuses, or yields a log.
        #[test]
        fn damaged_but_resigned_log_is_a_clear_error(body in crate::test_support::mutate::damaged(vec![body()])) {
            if let Err(e) = decode(&resigned(&body), Path::new("/state/.txn.yaml")) {
                proptest::prop_assert_eq!(e.exit_code(), 65);
                proptest::prop_assert!(
                    e.kind() == "damaged" && e.path() == Some(Path::new("/state/.txn.yaml"))
                );
            }
        }
    }

    #[test]
    fn resigned_names_that_would_lead_elsewhere_are_damaged() {
        let body = String::from_utf8(body()).unwrap();
        let object = format!("web-{}", "ab".repeat(32));
        for (field, planted) in [
            ("services[].from", body.replace(&object, "../../../x/svc")),
            ("services[].from", body.replace(&object, "/etc/web")),
            (
                "services[].from",
                body.replace(&object, &format!("db-{}", "ab".repeat(32))),
            ),
            ("services[].name", body.replace("name: web", "name: ../web")),
            ("stopped", body.replace("stopped: []", "stopped: [/x]")),
            ("id", body.replace("id: t1", "id: 't 1'")),
        ] {
            assert_ne!(planted, body, "{field}");
            let err =
                decode(&resigned(planted.as_bytes()), Path::new("/s/.txn.yaml")).expect_err(field);
            assert_eq!((err.exit_code(), err.kind()), (65, "damaged"), "{field}");
            assert!(
                err.to_string().contains(&format!("field `{field}`")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_last_history_line_says_which_generation_it_left_live() {
        let dir = tempfile::tempdir().unwrap();
        let state = Dir::open(dir.path()).unwrap();
        assert_eq!(last_live_in_history(&state).unwrap(), None);
        let mut log = sample();
        for (line, live) in [
            (history_line_for(&log, "done"), Some(2)),
            (history_line_for(&log, "undone"), Some(1)),
        ] {
            append_history(&state, &log.id, &line).unwrap();
            assert_eq!(last_live_in_history(&state).unwrap(), live, "{line}");
            log.id.push('x');
        }
        log.from = None;
        let line = history_line_for(&log, "undone");
        append_history(&state, &log.id, &line).unwrap();
        assert_eq!(last_live_in_history(&state).unwrap(), None, "{line}");
    }

    /// The line the switch writes (the format this parser must follow).
    fn history_line_for(log: &TxnLog, outcome: &str) -> String {
        crate::state::history::line(log, outcome)
    }

    #[test]
    fn resigning_the_sample_keeps_it_valid() {
        assert_eq!(
            decode(&resigned(&body()), Path::new("log")).unwrap(),
            sample()
        );
    }
}
