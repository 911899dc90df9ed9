//! Service names: what a stock tree may call a service, and the name of a
//! store object (`<service>-<digest>`) built from one.
//!
//! A name becomes a path component under the store, the generations and the
//! scan directory, and an argument to supervisor commands, so the allowed set
//! is small and checked in one place.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::model::shown::shown;

/// The longest allowed service name, in bytes.
pub(crate) const MAX_NAME: usize = 64;

/// Why a name is not a valid service name, or `None` when it is.
/// Allowed: `[A-Za-z0-9][A-Za-z0-9@._+-]{0,63}`.
pub(crate) fn name_problem(name: &[u8]) -> Option<String> {
    // Built only for a message: every service of every manifest parsed
    // passes through here (docs/performance.md#status-and-check-at-100000-services).
    let quoted = || format!("\"{}\"", shown(OsStr::from_bytes(name)));
    if name.is_empty() {
        return Some("the service name is empty".into());
    }
    if name.len() > MAX_NAME {
        return Some(format!(
            "the service name is {} bytes long; the limit is {MAX_NAME}",
            name.len()
        ));
    }
    if name[0] == b'.' {
        return Some(format!(
            "the service name {} starts with a dot, which scanners skip",
            quoted()
        ));
    }
    if !name[0].is_ascii_alphanumeric() {
        return Some(format!(
            "the service name {} must start with a letter or digit",
            quoted()
        ));
    }
    if let Some(bad) = name
        .iter()
        .find(|b| !matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'@' | b'.' | b'_' | b'+' | b'-'))
    {
        return Some(format!(
            "the service name {} contains the byte {bad:#04x}; allowed are letters, digits and @._+-",
            quoted()
        ));
    }
    None
}

/// The name of a store object: `<service>-<digest>`.
pub(crate) fn object_name(service: &str, digest: &str) -> String {
    format!("{service}-{digest}")
}

/// Splits `<service>-<digest>` into its parts (the digest is 64 hex digits).
pub(crate) fn split_object_name(object: &str) -> Option<(&str, &str)> {
    let (service, digest) = object.rsplit_once('-')?;
    // Every byte looked at, without an early exit, so that the check is
    // vectorized: it runs for every name of a store of 200,000
    // (docs/performance.md#status-and-check-at-100000-services).
    let hex = digest
        .bytes()
        .fold(true, |all, b| all & b.is_ascii_hexdigit());
    (digest.len() == 64 && hex && !service.is_empty()).then_some((service, digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_round_trip() {
        let digest = "ab".repeat(32);
        let name = object_name("web-1.2", &digest);
        assert_eq!(split_object_name(&name), Some(("web-1.2", digest.as_str())));
        assert_eq!(split_object_name("web-123"), None);
    }

    fn is_valid_name(name: &str) -> bool {
        name_problem(name.as_bytes()).is_none()
    }

    #[test]
    fn accepts_usual_names() {
        for n in ["web", "getty@tty1", "a", "x.y_z+1-2", &"a".repeat(64)] {
            assert!(is_valid_name(n), "{n}");
        }
    }

    #[test]
    fn rejects_hostile_names() {
        for n in [
            "",
            ".hidden",
            "..",
            "a/b",
            "a\nb",
            "a\0b",
            "-x",
            &"a".repeat(65),
            "é",
            "a b",
        ] {
            assert!(!is_valid_name(n), "{n:?}");
        }
        assert!(name_problem(b"\xff").is_some());
    }
}
