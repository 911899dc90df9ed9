//! Content diffs between two store objects (`diff -p`): for each changed
//! file of a service, the unified-diff hunks of a text file, or why there
//! are none (binary, too large, not a file). Reads the objects' files
//! beneath the store, never following a symlink, at most
//! [`MAX_FILE_BYTES`] of each; keeps at most [`MAX_LINES`] diff lines per
//! file and says how many it left out (docs/cli.md#diff--p-content-diffs).
//! Only reads; rendering is the command's.

use std::io::Read;

use serde::Serialize;
use similar::{ChangeTag, TextDiff};

use crate::model::plan::ServiceChange;
use crate::model::tree::{Entry, EntryKind};
use crate::state::State;
use crate::state::layout;
use crate::state::store;

/// The largest file diffed; a larger one gets a summary line with digests.
pub(crate) const MAX_FILE_BYTES: u64 = 1 << 20;

/// The most diff lines shown per file.
pub(crate) const MAX_LINES: usize = 2000;

/// Lines of context around each change, as `diff -u` and git.
const CONTEXT: usize = 3;

/// One changed path of one service, with what is shown of it.
#[derive(Debug, Serialize)]
pub(crate) struct FilePatch {
    pub service: String,
    pub path: String,
    /// As in the plan: `content`, `added`, `removed`, `mode`, `type`, …
    pub change: &'static str,
    /// BLAKE3 of the content on each side (files only).
    pub from_blake3: Option<String>,
    pub to_blake3: Option<String>,
    /// Permission bits on each side, octal (`"0755"`).
    pub from_mode: Option<String>,
    pub to_mode: Option<String>,
    /// A symlink's target on each side.
    pub from_target: Option<String>,
    pub to_target: Option<String>,
    #[serde(skip)]
    pub body: Body,
}

/// What is shown of a changed path below its header.
#[derive(Debug, Default)]
pub(crate) enum Body {
    /// Nothing to diff (a mode, owner or symlink change; a directory).
    #[default]
    None,
    /// The hunks of a text file, and how many diff lines were left out.
    Text { hunks: Vec<Hunk>, left_out: usize },
    /// Either side is not text (a NUL byte or not UTF-8).
    Binary,
    /// Either side is larger than [`MAX_FILE_BYTES`].
    TooLarge,
    /// A side could not be read (the object is damaged: `verify` says more).
    Unreadable(String),
}

/// One hunk: its `@@ -a,b +c,d @@` header and its lines.
#[derive(Debug)]
pub(crate) struct Hunk {
    pub header: String,
    pub lines: Vec<Line>,
}

/// One diff line: ' ', '-' or '+', the text without its line break, and
/// whether the file ends without one there.
#[derive(Debug)]
pub(crate) struct Line {
    pub sign: char,
    pub text: String,
    pub no_newline: bool,
}

/// The content diffs of every changed service in `changes`, in order.
pub(crate) fn patches(state: &State, changes: &[ServiceChange]) -> Vec<FilePatch> {
    let mut out = Vec::new();
    for s in changes {
        let entries = |obj: &Option<String>| {
            obj.as_deref()
                .and_then(|o| store::load_manifest(&state.store, o).ok())
                .map(|m| m.entries)
                .unwrap_or_default()
        };
        if s.from == s.to {
            continue;
        }
        let (old, new) = (entries(&s.from), entries(&s.to));
        for f in &s.files {
            let a = old.iter().find(|e| e.path == f.path);
            let b = new.iter().find(|e| e.path == f.path);
            let mut p = FilePatch {
                service: s.name.clone(),
                path: f.path.clone(),
                change: f.change,
                from_blake3: a.and_then(|e| e.blake3.as_ref()).map(ToString::to_string),
                to_blake3: b.and_then(|e| e.blake3.as_ref()).map(ToString::to_string),
                from_mode: a.map(|e| format!("{:04o}", e.mode)),
                to_mode: b.map(|e| format!("{:04o}", e.mode)),
                from_target: a.and_then(|e| e.target.clone()),
                to_target: b.and_then(|e| e.target.clone()),
                body: Body::None,
            };
            if matches!(f.change, "content" | "added" | "removed" | "type") {
                let side = |obj: &Option<String>, e: Option<&Entry>| match (obj, e) {
                    (Some(o), Some(e)) if e.kind == EntryKind::File => read_side(state, o, e),
                    _ => Ok(Some(String::new())),
                };
                p.body = match (side(&s.from, a), side(&s.to, b)) {
                    (Err(why), _) | (_, Err(why)) => Body::Unreadable(why),
                    (Ok(None), _) | (_, Ok(None)) => Body::Binary,
                    (Ok(Some(x)), Ok(Some(y))) => text_diff(&x, &y),
                };
                if is_too_large(a) || is_too_large(b) {
                    p.body = Body::TooLarge;
                }
            }
            out.push(p);
        }
    }
    out
}

fn is_too_large(e: Option<&Entry>) -> bool {
    e.is_some_and(|e| e.kind == EntryKind::File && e.size.unwrap_or(0) > MAX_FILE_BYTES)
}

/// A file of `object` as text; `Ok(None)` when it is binary. A file larger
/// than the cap is read only up to it (the caller says it is too large).
fn read_side(state: &State, object: &str, e: &Entry) -> Result<Option<String>, String> {
    let rel = format!("{}/{}", layout::object_service_dir(object), e.path);
    let file = state.store.open_file(&rel).map_err(|e| e.chain())?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|err| format!("cannot read {}: {err}", state.store.join(&rel).display()))?;
    if bytes.contains(&0) {
        return Ok(None);
    }
    Ok(String::from_utf8(bytes).ok())
}

/// The unified-diff hunks from `old` to `new`, at most [`MAX_LINES`] lines.
fn text_diff(old: &str, new: &str) -> Body {
    let diff = TextDiff::from_lines(old, new);
    let mut hunks = Vec::new();
    let mut shown = 0;
    let mut left_out = 0;
    for hunk in diff.unified_diff().context_radius(CONTEXT).iter_hunks() {
        let mut lines = Vec::new();
        for change in hunk.iter_changes() {
            if shown >= MAX_LINES {
                left_out += 1;
                continue;
            }
            shown += 1;
            let value = change.value();
            lines.push(Line {
                sign: match change.tag() {
                    ChangeTag::Equal => ' ',
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                },
                text: value.strip_suffix('\n').unwrap_or(value).to_string(),
                no_newline: change.missing_newline(),
            });
        }
        if !lines.is_empty() {
            hunks.push(Hunk {
                header: hunk.header().to_string(),
                lines,
            });
        }
    }
    Body::Text { hunks, left_out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(body: &Body) -> Vec<String> {
        let Body::Text { hunks, .. } = body else {
            panic!("not text: {body:?}");
        };
        hunks
            .iter()
            .flat_map(|h| {
                std::iter::once(h.header.clone())
                    .chain(h.lines.iter().map(|l| format!("{}{}", l.sign, l.text)))
            })
            .collect()
    }

    #[test]
    fn a_changed_line_is_one_hunk_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        assert_eq!(
            lines(&text_diff(old, new)),
            [
                "@@ -2,7 +2,7 @@",
                " b",
                " c",
                " d",
                "-e",
                "+E",
                " f",
                " g",
                " h"
            ]
        );
    }

    #[test]
    fn a_missing_final_newline_is_said() {
        let Body::Text { hunks, .. } = text_diff("1.0\n", "2.0") else {
            panic!("not text");
        };
        let last = hunks[0].lines.last().expect("a line");
        assert_eq!(
            (last.sign, last.text.as_str(), last.no_newline),
            ('+', "2.0", true)
        );
    }

    #[test]
    fn a_huge_diff_is_cut_and_counts_what_it_left_out() {
        let new: String = (0..MAX_LINES + 10).map(|i| format!("{i}\n")).collect();
        let Body::Text { hunks, left_out } = text_diff("", &new) else {
            panic!("not text");
        };
        let kept: usize = hunks.iter().map(|h| h.lines.len()).sum();
        assert_eq!((kept, left_out), (MAX_LINES, 10));
    }
}
