//! The guard every YAML document passes before a parser sees it: config,
//! manifests, the rollback log, the lock record. Pure byte scanning; it
//! never reads a file and never parses YAML itself.

/// Deeper flow nesting than any document of ours has; serde_yaml itself
/// gives up at 128 levels, but only after its scanner has done work that
/// grows with the square of the depth (100,000 `[` took 52 s).
const MAX_FLOW_DEPTH: usize = 64;

/// Refuses YAML whose `[`/`{` nesting (outside quoted strings) is deeper
/// than [`MAX_FLOW_DEPTH`], before the parser sees it. Used for every YAML
/// the tool reads: config, manifests, the rollback log.
pub(crate) fn yaml_nesting_problem(bytes: &[u8]) -> Option<String> {
    let (mut depth, mut quote, mut escaped) = (0usize, None::<u8>, false);
    let mut prev = b' ';
    for &b in bytes {
        // A quote starts a string only where a scalar may start (`it's` does not).
        let may_start = matches!(
            prev,
            b' ' | b'\t' | b'\n' | b'[' | b'{' | b',' | b':' | b'-'
        );
        prev = b;
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if q == b'"' && b == b'\\' {
                    escaped = true;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'"' | b'\'' if may_start => quote = Some(b),
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some(format!(
                            "brackets nested deeper than {MAX_FLOW_DEPTH} levels"
                        ));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_in_quoted_strings_do_not_count() {
        let quoted = format!("a: \"{}\"\nb: '{}'\n", "[".repeat(100), "{".repeat(100));
        assert_eq!(yaml_nesting_problem(quoted.as_bytes()), None);
        assert!(yaml_nesting_problem("[".repeat(65).as_bytes()).is_some());
    }
}
