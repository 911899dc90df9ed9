//! The guard every YAML document passes before a parser sees it: config,
//! manifests, the rollback log, the lock record. Pure byte scanning; it
//! never reads a file and never parses YAML itself.
//!
//! It follows YAML's tokens as far as they decide where flow nesting can
//! hide (docs/security.md#yaml-is-refused-in-bounded-time): quoted scalars
//! (which may span lines), comments, plain scalars (a quote inside one, or
//! on its continuation line, starts nothing), block scalars (their content
//! is text) and document markers. A `"` in a comment once made the guard
//! think a string ran to the end, and the parser spent 15 s on what came
//! after it.

/// Deeper flow nesting than any document of ours has; serde_yaml itself
/// gives up at 128 levels, but only after its scanner has done work that
/// grows with the square of the depth (100,000 `[` took 52 s).
const MAX_FLOW_DEPTH: usize = 64;

/// Refuses YAML whose `[`/`{` nesting (outside quoted scalars, comments
/// and block scalars) is deeper than [`MAX_FLOW_DEPTH`], or that uses an
/// alias, before the parser sees it. Used for every YAML the tool reads:
/// config, manifests, the rollback log. Linear in the input.
pub(crate) fn yaml_nesting_problem(bytes: &[u8]) -> Option<String> {
    let mut lexer = Lexer::default();
    for line in bytes.split(|&b| b == b'\n') {
        if lexer.line(line) {
            return Some(format!(
                "brackets nested deeper than {MAX_FLOW_DEPTH} levels"
            ));
        }
        if lexer.aliases > 0 {
            return Some(
                "it uses an alias (`*name`), which no document here needs: write the value \
                 out (aliases can expand a few lines into gigabytes)"
                    .into(),
            );
        }
    }
    None
}

/// What the lexer is inside of, across lines.
#[derive(Debug, Default)]
struct Lexer {
    /// Flow nesting: `[` and `{` not yet closed.
    depth: usize,
    /// An open quoted scalar: its quote, and whether a `\` escapes the next byte.
    quote: Option<(u8, bool)>,
    /// In a plain scalar; in block context, a later line continues it only
    /// when indented more than this column (-1: any line does).
    plain: Option<isize>,
    /// In a block scalar (`|`, `>`): its lines are those indented more
    /// than this column, and blank ones.
    block_scalar: Option<isize>,
    /// The column of the innermost block node on this line (a `-`, `?`, or
    /// a key); -1 before any block structure.
    block_col: isize,
    /// The column where the last scalar began (the key, if a `:` follows).
    key_col: isize,
    /// Whether any block structure (`-`, `?`, `:`) was seen: before it, a
    /// plain scalar at the top continues on every line.
    structured: bool,
    /// Aliases (`*name`) seen: each copies its anchor's whole value, so a
    /// few can make gigabytes ("billion laughs").
    aliases: usize,
}

impl Lexer {
    /// Scans one line (without its `\n`); true once the nesting is too deep.
    fn line(&mut self, line: &[u8]) -> bool {
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let rest = &line[indent..];
        let blank = rest.iter().all(|b| b.is_ascii_whitespace());
        if indent == 0 && is_document_marker(line) {
            // A document marker ends strings and scalars (the parser
            // refuses one inside a quoted scalar); flow depth is kept.
            self.quote = None;
            self.plain = None;
            self.block_scalar = None;
            self.structured = false;
            return false;
        }
        let col = isize::try_from(indent).unwrap_or(isize::MAX);
        if self.quote.is_none() && self.depth == 0 {
            if let Some(n) = self.block_scalar {
                if blank || col > n {
                    return false;
                }
                self.block_scalar = None;
            }
            if let Some(n) = self.plain {
                let continues = !blank && col > n && rest.first() != Some(&b'#');
                if !continues && !blank {
                    self.plain = None;
                }
            }
            if self.plain.is_none() {
                self.block_col = if self.structured { col } else { -1 };
                self.key_col = col;
            }
        }
        self.scan(line, indent)
    }

    /// Scans `line` from byte `from`; true once the nesting is too deep.
    fn scan(&mut self, line: &[u8], from: usize) -> bool {
        let mut i = from;
        // Line start counts as whitespace (a `#` there is a comment).
        let mut after_space = true;
        while i < line.len() {
            let b = line[i];
            let next = line.get(i + 1).copied();
            if let Some((q, escaped)) = self.quote {
                self.quote = match (q, escaped, b) {
                    (b'"', true, _) => Some((q, false)),
                    (b'"', false, b'\\') => Some((q, true)),
                    (b'\'', _, b'\'') if next == Some(b'\'') => {
                        i += 1;
                        Some((q, false))
                    }
                    _ if b == q => None,
                    _ => Some((q, false)),
                };
                i += 1;
                after_space = false;
                continue;
            }
            if b == b'#' && after_space {
                // A comment ends the line, and a plain scalar.
                self.plain = None;
                return false;
            }
            after_space = b == b' ' || b == b'\t' || b == b'\r';
            if after_space {
                i += 1;
                continue;
            }
            let col = isize::try_from(i).unwrap_or(isize::MAX);
            let step = match self.plain {
                Some(_) => self.in_plain(b, next),
                None => self.token(line, i, col),
            };
            match step {
                Step::TooDeep => return true,
                Step::EndOfLine => return false,
                Step::Skip(n) => i += n,
            }
        }
        false
    }

    /// A byte inside a plain scalar: only `: `, ` #` (handled by the
    /// caller) and, in flow context, flow indicators end it.
    fn in_plain(&mut self, b: u8, next: Option<u8>) -> Step {
        let flow = self.depth > 0;
        if b == b':' && ends_indicator(next, flow) {
            self.plain = None;
            self.value_indicator();
            return Step::Skip(1);
        }
        if flow && matches!(b, b',' | b'[' | b']' | b'{' | b'}') {
            self.plain = None;
            return self.flow_indicator(b);
        }
        Step::Skip(1)
    }

    /// The first byte of a token: what it starts.
    fn token(&mut self, line: &[u8], i: usize, col: isize) -> Step {
        let b = line[i];
        let next = line.get(i + 1).copied();
        let flow = self.depth > 0;
        match b {
            b'"' | b'\'' => {
                self.key_col = col;
                self.quote = Some((b, false));
                Step::Skip(1)
            }
            b'[' | b'{' | b']' | b'}' | b',' => self.flow_indicator(b),
            b'-' | b'?' if ends_indicator(next, false) => {
                if !flow {
                    self.structured = true;
                    self.block_col = col;
                    self.key_col = col + 2;
                }
                Step::Skip(1)
            }
            b':' if ends_indicator(next, flow) => {
                self.value_indicator();
                Step::Skip(1)
            }
            b'|' | b'>' if !flow => {
                self.block_scalar = Some(self.block_col);
                Step::EndOfLine
            }
            b'!' | b'&' | b'*' => {
                self.aliases += usize::from(b == b'*');
                // A tag, an anchor or an alias: one word, then a new token.
                let len = line[i..]
                    .iter()
                    .take_while(|&&c| !(c == b' ' || c == b'\t' || (flow && b",[]{}".contains(&c))))
                    .count();
                Step::Skip(len.max(1))
            }
            _ => {
                self.key_col = col;
                self.plain = Some(if flow || !self.structured {
                    -1
                } else {
                    self.block_col
                });
                Step::Skip(1)
            }
        }
    }

    /// `[`, `{`, `]`, `}` or `,` outside a scalar.
    fn flow_indicator(&mut self, b: u8) -> Step {
        match b {
            b'[' | b'{' => {
                self.depth += 1;
                if self.depth > MAX_FLOW_DEPTH {
                    return Step::TooDeep;
                }
            }
            b']' | b'}' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
        Step::Skip(1)
    }

    /// A `:` that separates a key from its value.
    fn value_indicator(&mut self) {
        if self.depth == 0 {
            self.structured = true;
            self.block_col = self.key_col;
        }
    }
}

/// What the scan does next.
enum Step {
    /// Moves on by this many bytes.
    Skip(usize),
    /// The rest of the line is not YAML tokens (a block scalar's header).
    EndOfLine,
    /// The nesting is too deep.
    TooDeep,
}

/// Whether `-`, `?` or `:` followed by `next` is an indicator: followed by
/// whitespace or the line's end, or (a `:` in flow context) a flow indicator.
fn ends_indicator(next: Option<u8>, flow: bool) -> bool {
    match next {
        None | Some(b' ' | b'\t' | b'\r') => true,
        Some(c) => flow && b",[]{}".contains(&c),
    }
}

/// `---` or `...` at the start of a line, alone or before whitespace.
fn is_document_marker(line: &[u8]) -> bool {
    (line.starts_with(b"---") || line.starts_with(b"..."))
        && line.get(3).is_none_or(|b| b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;

    /// The bound every refusal or parse must keep: generous for a debug
    /// build on a shared machine; the pathologies it catches take 15 s+.
    const BOUND: Duration = Duration::from_secs(1);

    /// 100,000 levels of nesting, the payload every bypass tries to hide.
    fn deep() -> String {
        format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))
    }

    /// The guard, then (if it lets the document pass) the parser, timed.
    fn guarded_parse(doc: &[u8]) -> (bool, Duration) {
        let start = Instant::now();
        let refused = yaml_nesting_problem(doc).is_some();
        if !refused {
            let _ = serde_yaml::from_slice::<serde_yaml::Value>(doc);
        }
        (refused, start.elapsed())
    }

    #[test]
    fn brackets_in_quoted_strings_do_not_count() {
        let quoted = format!("a: \"{}\"\nb: '{}'\n", "[".repeat(100), "{".repeat(100));
        assert_eq!(yaml_nesting_problem(quoted.as_bytes()), None);
        assert!(yaml_nesting_problem("[".repeat(65).as_bytes()).is_some());
    }

    #[test]
    fn our_own_documents_pass() {
        let docs = [
            "stock: [a, {path: /b, optional: true}]\nsupervisor: s6\n",
            "a: \"x [ y\"\nb: 'it''s [ {'\nc: |\n  \"[[[\n  # \"\nd: [x, \"]\", y]\n",
            "- name: web\n  from: 'web-1'\n- name: \"d[b\"\n",
            "k: plain \"with' quotes [ and\n  a continuation \" [\nz: 1\n",
            "{\"generation\": 1, \"services\": {\"web\": \"web-x\"}}\n",
            "a: !tag \"[[[\"\nb: &x '{{{'\nc: 2 * 3\n",
        ];
        for doc in docs {
            assert_eq!(yaml_nesting_problem(doc.as_bytes()), None, "{doc}");
            assert!(
                serde_yaml::from_str::<serde_yaml::Value>(doc).is_ok(),
                "{doc}"
            );
        }
    }

    /// Each way to make the guard believe a string or comment runs on while
    /// the parser sees the nesting after it.
    fn bypasses() -> Vec<String> {
        let deep = deep();
        vec![
            format!("# it's \"quoted\ndisabled: {deep}\n"),
            format!("# \"\ndisabled: {deep}\n"),
            format!("a: b \"c\nd: {deep}\n"),
            format!("a: b 'c\nd: {deep}\n"),
            format!("a: |\n  \"\nd: {deep}\n"),
            format!("a: >-\n  'x\nd: {deep}\n"),
            format!("- - a\n    \"k: \"\nz: {deep}\n"),
            format!("k: plain\n  \"continued\nz: {deep}\n"),
            format!("[a \"b, {deep}]\n"),
            format!("{{a: x \"y, b: {deep}}}\n"),
            format!("a: \"\n---\n{deep}\n"),
            format!("a: !t \"]]]]]]]]]]\", b: {deep}\n"),
            format!("x: [a, # \"\n  {deep}]\n"),
        ]
    }

    #[test]
    fn every_known_bypass_is_refused_within_the_bound() {
        for (i, doc) in bypasses().iter().enumerate() {
            let (refused, took) = guarded_parse(doc.as_bytes());
            // The comment cases are the reported ones; any other may also
            // end in a quick parse error instead.
            assert!(refused || i > 1, "not refused: {:?}", &doc[..60]);
            assert!(took < BOUND, "{took:?}: {:?}", &doc[..doc.len().min(60)]);
        }
    }

    #[test]
    fn alias_bombs_and_long_keys_end_within_the_bound() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..20 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let (refused, took) = guarded_parse(bomb.as_bytes());
        assert!(refused && took < BOUND, "{took:?}");
        let long_key = format!("{}: 1\n", "k".repeat(1 << 20));
        let long_flow_key = format!("{{{}: 1}}\n", "k".repeat(1 << 20));
        for doc in [long_key, long_flow_key] {
            let (_, took) = guarded_parse(doc.as_bytes());
            assert!(took < BOUND, "{took:?}: {:?}", &doc[..40]);
        }
    }

    /// Pieces of hostile YAML: every construct the guard has to follow.
    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("# \"\n".to_string()),
            Just("# '\n".to_string()),
            Just("a: b \"c\n".to_string()),
            Just("a: b 'c\n".to_string()),
            Just("a: |\n  \"\n  [[\n".to_string()),
            Just("a: >\n  '\n".to_string()),
            Just("- - a\n    \"k: \"\n".to_string()),
            Just("k: plain\n  \"continued\n".to_string()),
            Just("a: \"\n".to_string()),
            Just("\"\n".to_string()),
            Just("'\n".to_string()),
            Just("---\n".to_string()),
            Just("...\n".to_string()),
            Just("a: !t \"]]\"\n".to_string()),
            Just("x: &a [*a, \"]\"]\n".to_string()),
            Just("y: &b [x, x]\nz: [*b, *b]\n".to_string()),
            Just("? [\n".to_string()),
            Just(": ]\n".to_string()),
            Just("\\\"\n".to_string()),
            (1usize..200).prop_map(|n| "[".repeat(n)),
            (1usize..200).prop_map(|n| "{a: ".repeat(n)),
            (1usize..200).prop_map(|n| "]".repeat(n)),
            (1usize..200).prop_map(|n| "\"]".repeat(n)),
            "[ -~]{0,20}\n",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        /// Hostile documents, each ending in deep nesting: the guard
        /// refuses, or the parser finishes, within the bound — time, not
        /// only panics.
        #[test]
        fn hostile_yaml_is_refused_or_parsed_within_the_bound(
            pieces in proptest::collection::vec(piece(), 1..12),
            tail in 0usize..3,
        ) {
            let mut doc = pieces.concat();
            doc.push_str(match tail {
                0 => "\nz: ",
                1 => "\n",
                _ => "",
            });
            doc.push_str(&"[".repeat(20_000));
            let (_, took) = guarded_parse(doc.as_bytes());
            prop_assert!(took < BOUND, "{took:?}: {:?}", &doc[..doc.len().min(300)]);
        }
    }
}
