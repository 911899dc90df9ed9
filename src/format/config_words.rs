//! Config errors in plain words (docs/cli.md#configuration): the YAML
//! parser's message says `expected usize` and `found character that cannot
//! start any token`; an administrator needs `keep_generations must be a
//! whole number >= 1, not -1`, `tabs cannot indent YAML`, and `did you mean
//! keep_generations?`. Pure text in, text out: no I/O.

/// What a key takes, in words, where the type alone does not say it.
const KEY_WORDS: [(&str, &str); 6] = [
    ("keep_generations", "a whole number >= 1"),
    (
        "lock_wait",
        "a number of seconds from 0 to 604800, like 30 or 0.5",
    ),
    (
        "update_lock_wait",
        "a number of seconds from 0 to 604800, like 30 or 0.5",
    ),
    (
        "stop_timeout",
        "a number of seconds from 0 to 604800, like 30 or 0.5",
    ),
    ("supervisor", "one of s6, runit, daemontools, none"),
    (
        "stock",
        "a list of paths, or of {path: ..., optional: true}",
    ),
];

/// The parser's names for types, in words.
const TYPE_WORDS: [(&str, &str); 12] = [
    ("usize", "a whole number >= 0"),
    ("u64", "a whole number >= 0"),
    ("u32", "a whole number >= 0"),
    ("u16", "a whole number >= 0"),
    ("u8", "a whole number >= 0"),
    ("i64", "a whole number"),
    ("f64", "a number"),
    ("a boolean", "true or false"),
    ("a sequence", "a list, one `- item` a line"),
    ("a map", "a mapping, one `key: value` a line"),
    ("a string", "text"),
    ("path string", "a path"),
];

/// The config error for `text`, whose parse failed with `msg`, in words.
pub(crate) fn plain_yaml_error(text: &str, msg: &str) -> String {
    if let Some(line) = tab_indented_line(text) {
        return format!("line {line}: tabs cannot indent YAML; indent with spaces");
    }
    let (body, at) = split_location(msg);
    let (path, body) = split_path(body);
    let at = at.map_or_else(String::new, |l| format!(", at {l}"));
    let key = path.unwrap_or_default();
    if let Some(rest) = body.strip_prefix("unknown field ") {
        let (field, expected) = quoted_and_choices(rest);
        let within = path.map_or_else(String::new, |p| format!(" in {p}"));
        return format!(
            "unknown key `{field}`{within}{at}; {}",
            suggest(&field, &expected)
        );
    }
    if let Some(rest) = body.strip_prefix("unknown variant ") {
        let (value, expected) = quoted_and_choices(rest);
        return format!(
            "{key} must be one of {}, not `{value}`{at}; {}",
            expected.join(", "),
            suggest(&value, &expected)
        );
    }
    let invalid = body
        .strip_prefix("invalid type: ")
        .or_else(|| body.strip_prefix("invalid value: "));
    if let (Some(rest), Some(path)) = (invalid, path) {
        if let Some((found, expected)) = rest.rsplit_once(", expected ") {
            return format!(
                "{path} must be {}, not {}{at}",
                words_for(path, expected),
                found_words(found)
            );
        }
    }
    msg.to_string()
}

/// The first line (1-based) indented with a tab, if any.
fn tab_indented_line(text: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.chars()
                .take_while(|c| c.is_whitespace())
                .any(|c| c == '\t')
                && !l.trim().is_empty()
        })
        .map(|i| i + 1)
}

/// `"… at line 3 column 7"` → (`"…"`, `Some("line 3")`).
fn split_location(msg: &str) -> (&str, Option<String>) {
    match msg.rsplit_once(" at line ") {
        Some((body, loc)) => {
            let line = loc.split(' ').next().unwrap_or(loc);
            (body, Some(format!("line {line}")))
        }
        None => (msg, None),
    }
}

/// `"limits.max_depth: invalid type: …"` → (`Some("limits.max_depth")`, `"invalid type: …"`).
fn split_path(body: &str) -> (Option<&str>, &str) {
    match body.split_once(": ") {
        Some((path, rest))
            if !path.contains(' ') && !path.is_empty() && !body.starts_with("invalid") =>
        {
            (Some(path), rest)
        }
        _ => (None, body),
    }
}

/// "`x`, expected one of `a`, `b`" → ("x", ["a", "b"]).
fn quoted_and_choices(rest: &str) -> (String, Vec<String>) {
    let mut parts = rest.split('`').skip(1).step_by(2).map(str::to_string);
    let first = parts.next().unwrap_or_default();
    (first, parts.collect())
}

/// "did you mean `keep_generations`?" for a near miss, else the choices.
fn suggest(given: &str, choices: &[String]) -> String {
    let best = choices
        .iter()
        .map(|c| (strsim::damerau_levenshtein(given, c), c))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, c)) if d <= (given.chars().count() / 3).max(2) => format!("did you mean `{c}`?"),
        _ if choices.is_empty() => "see docs/cli.md#configuration for the keys".into(),
        _ => format!("the keys here are {}", choices.join(", ")),
    }
}

/// What `path` takes, in words: by key, else by the parser's type name.
fn words_for(path: &str, expected: &str) -> String {
    let key = path.rsplit('.').next().unwrap_or(path);
    if let Some((_, words)) = KEY_WORDS.iter().find(|(k, _)| *k == key) {
        return (*words).to_string();
    }
    if let Some((_, words)) = TYPE_WORDS.iter().find(|(t, _)| *t == expected) {
        return (*words).to_string();
    }
    if expected.starts_with("struct ") {
        return "a mapping, one `key: value` a line".into();
    }
    expected.to_string()
}

/// "integer `-1`" → "-1"; "string \"abc\"" → "\"abc\""; "sequence" → "a list".
fn found_words(found: &str) -> String {
    if let Some((_, value)) = found.split_once(' ') {
        return value.trim_matches('`').to_string();
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        "unit" => "nothing".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parser's own message for `text`, as `config.rs` gets it.
    fn said(text: &str, msg: &str) -> String {
        plain_yaml_error(text, msg)
    }

    #[test]
    fn types_are_named_in_words_with_the_key_and_line() {
        assert_eq!(
            said(
                "",
                "keep_generations: invalid type: integer `-1`, expected usize at line 1 column 19"
            ),
            "keep_generations must be a whole number >= 1, not -1, at line 1"
        );
        assert_eq!(
            said(
                "",
                "lock_wait: invalid type: string \"soon\", expected f64 at line 2 column 12"
            ),
            "lock_wait must be a number of seconds from 0 to 604800, like 30 or 0.5, not \"soon\", at line 2"
        );
        assert_eq!(
            said(
                "",
                "limits.max_entries: invalid type: integer `-5`, expected u64 at line 1 column 23"
            ),
            "limits.max_entries must be a whole number >= 0, not -5, at line 1"
        );
        assert_eq!(
            said(
                "",
                "strict: invalid type: string \"yes please\", expected a boolean at line 1 column 9"
            ),
            "strict must be true or false, not \"yes please\", at line 1"
        );
    }

    #[test]
    fn a_near_miss_key_gets_a_suggestion_and_a_far_one_the_list() {
        let msg = "unknown field `keep_generation`, expected one of `stock`, `state`, \
                   `keep_generations` at line 1 column 1";
        assert_eq!(
            said("", msg),
            "unknown key `keep_generation`, at line 1; did you mean `keep_generations`?"
        );
        let far = "unknown field `colour`, expected one of `stock`, `state`";
        assert_eq!(
            said("", far),
            "unknown key `colour`; the keys here are stock, state"
        );
        let nested = "limits: unknown field `max_entry`, expected one of `max_entries`, \
                      `max_file_size`, `max_depth` at line 1 column 10";
        assert_eq!(
            said("", nested),
            "unknown key `max_entry` in limits, at line 1; did you mean `max_entries`?"
        );
        let variant = "supervisor: unknown variant `s7`, expected one of `s6`, `runit`, \
                       `daemontools`, `none` at line 1 column 13";
        assert_eq!(
            said("", variant),
            "supervisor must be one of s6, runit, daemontools, none, not `s7`, at line 1; \
             did you mean `s6`?"
        );
    }

    #[test]
    fn a_tab_in_the_indentation_is_named_with_its_line() {
        assert_eq!(
            said(
                "stock:\n\t- stock\n",
                "found character that cannot start any token"
            ),
            "line 2: tabs cannot indent YAML; indent with spaces"
        );
        // A tab inside a value is not indentation.
        let msg = "something else";
        assert_eq!(said("state: a\tb\n", msg), msg);
    }

    #[test]
    fn no_fix_holds_nested_parentheses() {
        for msg in [
            "keep_generations: invalid type: integer `-1`, expected usize at line 1 column 19",
            "unknown field `x`, expected one of `stock` at line 1 column 1",
        ] {
            let out = said("", msg);
            let mut depth = 0;
            for c in out.chars() {
                depth += i32::from(c == '(') - i32::from(c == ')');
                assert!(depth <= 1, "{out}");
            }
        }
    }
}
