//! The one way to render text that came from outside the tool — names and
//! paths from the stock and the state, holders' command lines, what a
//! supervisor said — so that it can neither drive root's terminal nor
//! forge or reorder what is shown (docs/security.md#outside-text-is-shown-escaped).
//!
//! [`shown`] escapes every control character (C0 with `\n` and `\t`, DEL,
//! C1), every invisible format character that reorders or hides text
//! (bidi embeddings, overrides and isolates, marks, zero-width characters,
//! the BOM, line and paragraph separators), backslashes (so an escape is
//! never ambiguous), and bytes that are not UTF-8. [`terminal_safe`] and
//! [`json_safe`] are the last pass over everything written, in
//! `crate::output`: they keep the tool's own line breaks and catch a
//! rendering that forgot [`shown`]. Pure functions; no I/O.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fmt::{self, Write as _};
use std::os::unix::ffi::OsStrExt;

/// Text from outside, displayed escaped; see [`shown`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shown<'a>(&'a [u8]);

/// `text` (a name, a path, a command line: anything that is an `OsStr`)
/// for display: `\n`, `\t`, `\r`, `\\`; `\x1b` for other ASCII controls and
/// bytes that are not UTF-8; `\u{202e}` for C1 controls and format
/// characters. Everything else is shown as it is.
pub(crate) fn shown<T: AsRef<OsStr> + ?Sized>(text: &T) -> Shown<'_> {
    Shown(text.as_ref().as_bytes())
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\n' => f.write_str("\\n")?,
                    '\t' => f.write_str("\\t")?,
                    '\r' => f.write_str("\\r")?,
                    c => write_char(f, c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// Writes `c`, escaped when it is a control or hidden character.
fn write_char(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    if c.is_ascii_control() {
        write!(out, "\\x{:02x}", u32::from(c))
    } else if is_hidden(c) {
        write!(out, "\\u{{{:x}}}", u32::from(c))
    } else {
        out.write_char(c)
    }
}

/// Characters that are not ASCII and change how the text around them is
/// shown or are not shown at all: C1 controls (U+0080–009F; U+009B is a CSI
/// to some terminals), Unicode's format characters (category Cf: bidi
/// marks, embeddings, overrides and isolates, zero-width characters, the
/// BOM, tags) and the line and paragraph separators (Zl, Zp).
pub(crate) fn is_hidden(c: char) -> bool {
    matches!(
        u32::from(c),
        0x80..=0x9f
            | 0xad
            | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x890..=0x891
            | 0x8e2
            | 0x180e
            | 0x200b..=0x200f
            | 0x2028..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0x110bd
            | 0x110cd
            | 0x13430..=0x1343f
            | 0x1bca0..=0x1bca3
            | 0x1d173..=0x1d17a
            | 0xe0001
            | 0xe0020..=0xe007f
    )
}

/// Whether `c` may not reach a terminal as it is: a control character
/// other than the line break and tab the tool itself writes, or a hidden one.
fn is_unsafe_for_terminal(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || is_hidden(c)
}

/// The last pass over text bound for stdout or stderr: escapes (as
/// [`shown`] does) every control character except `\n` and `\t`, and every
/// hidden character. The text stays as it is when there is none.
pub(crate) fn terminal_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_for_terminal) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        // Writing to a String cannot fail.
        let _ = if is_unsafe_for_terminal(c) {
            write_char(&mut out, c)
        } else {
            out.write_char(c)
        };
    }
    Cow::Owned(out)
}

/// A serialized JSON document with DEL, C1 and hidden characters written
/// as `\uXXXX` escapes (serde_json escapes only C0). Outside strings a
/// JSON document is ASCII, so this changes only the inside of strings,
/// and every string decodes to the same value: the document stays valid
/// and means the same, but cannot reorder or drive a terminal.
pub(crate) fn json_safe(doc: &str) -> Cow<'_, str> {
    let unsafe_in_json = |c: char| c == '\x7f' || is_hidden(c);
    if !doc.chars().any(unsafe_in_json) {
        return Cow::Borrowed(doc);
    }
    let mut out = String::with_capacity(doc.len() + 16);
    for c in doc.chars() {
        if unsafe_in_json(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` cut to at most `max` characters, with `…` when it was longer:
/// for text from outside whose length is not ours to choose (a command
/// line), so that what is stored and shown stays bounded.
pub(crate) fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_format_characters_and_bad_bytes_are_escaped() {
        let cases: &[(&[u8], &str)] = &[
            (b"web", "web"),
            (b"a\x1b[31mred", "a\\x1b[31mred"),
            (b"b\x07bell", "b\\x07bell"),
            (b"c\nforged", "c\\nforged"),
            (b"tab\there\r", "tab\\there\\r"),
            (b"del\x7f", "del\\x7f"),
            (b"back\\slash", "back\\\\slash"),
            ("d\u{202e}evil".as_bytes(), "d\\u{202e}evil"),
            ("csi\u{9b}31m".as_bytes(), "csi\\u{9b}31m"),
            (
                "\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}\u{feff}".as_bytes(),
                "\\u{2066}\\u{2069}\\u{200e}\\u{200f}\\u{61c}\\u{feff}",
            ),
            ("l\u{2028}p\u{2029}".as_bytes(), "l\\u{2028}p\\u{2029}"),
            (b"bad\xff\xfe", "bad\\xff\\xfe"),
            ("café ∑ 日本".as_bytes(), "café ∑ 日本"),
        ];
        for (raw, want) in cases {
            let raw = OsStr::from_bytes(raw);
            assert_eq!(shown(raw).to_string(), *want, "{raw:?}");
        }
    }

    #[test]
    fn every_bidi_and_separator_character_is_hidden() {
        for c in (0x202a..=0x202e)
            .chain(0x2066..=0x2069)
            .chain([0x2028, 0x2029, 0x200e, 0x200f, 0x61c, 0xfeff])
        {
            let c = char::from_u32(c).unwrap_or_default();
            assert!(is_hidden(c), "{c:?}");
            assert!(!shown(&c.to_string()).to_string().contains(c), "{c:?}");
        }
    }

    #[test]
    fn the_last_pass_keeps_line_breaks_and_escapes_the_rest() {
        assert!(matches!(
            terminal_safe("a\n\tb\n"),
            Cow::Borrowed("a\n\tb\n")
        ));
        assert_eq!(terminal_safe("x\x1b]0;t\x07\n"), "x\\x1b]0;t\\x07\n");
        assert_eq!(terminal_safe("r\u{202e}l\r"), "r\\u{202e}l\\x0d");
    }

    #[test]
    fn json_stays_valid_and_means_the_same() {
        let value = serde_json::json!({"name": "d\u{202e}e\u{9b}v\u{7f}\u{1b}", "x": "\u{e0041}"});
        let doc = serde_json::to_string(&value).unwrap_or_default();
        let safe = json_safe(&doc);
        assert!(safe.is_ascii(), "{safe}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&safe).ok(),
            Some(value)
        );
    }

    #[test]
    fn bounded_cuts_at_a_character_and_says_so() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcd", 3), "abc…");
        assert_eq!(bounded("ééé", 2), "éé…");
    }
}
