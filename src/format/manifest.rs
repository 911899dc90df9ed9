//! The two manifest formats: a store object's per-file list and a
//! generation's service map. Both are YAML files (written in JSON style),
//! written once, never changed.
//!
//! Parsing is defensive (unknown keys rejected, every value that later
//! becomes a path checked — service names, object names, entry paths — and
//! every error names the file); this module only converts between bytes and
//! types and never does I/O: `src/state/documents.rs` reads the bytes, with a
//! size cap.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::format::yaml_guard::yaml_nesting_problem;
use crate::model::identity::{Identity, WatchedPath};
use crate::model::limits::MAX_PATH;
use crate::model::names::name_problem;
use crate::model::owners::Owners;
use crate::model::tree::{self, Entry, EntryKind};

/// `store/<name>-<digest>.manifest.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ObjectManifest {
    pub service: String,
    /// The object digest: of the entries, and of `restart_on` and
    /// `restart` when present ([`Identity::object_digest`]).
    pub digest: String,
    pub entries: Vec<Entry>,
    /// The digests of the service's `restart_on` paths (docs/design.md#identity).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_on: Vec<WatchedPath>,
    /// The generation a `commit --restart` made this object for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<u64>,
    /// Whose owners the stored entries carry when not the stock's
    /// (docs/security.md#published-objects-belong-to-the-state-owner);
    /// the entries always record the stock's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<Owners>,
}

impl ObjectManifest {
    /// What, besides its entries, the object's digest covers.
    pub(crate) fn identity(&self) -> Identity {
        Identity {
            restart_on: self.restart_on.clone(),
            restart: self.restart,
            owners: self.owners,
        }
    }

    /// The digest the object must have: recomputed from the entries and
    /// the identity, never taken from the `digest` field.
    pub(crate) fn computed_digest(&self) -> String {
        self.identity().object_digest(&tree::digest(&self.entries))
    }
}

/// `generations/<N>/.manifest.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerationManifest {
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u64>,
    /// RFC 3339, UTC.
    pub created: String,
    /// Service name → store object name.
    #[serde(deserialize_with = "map_in_one_pass")]
    pub services: BTreeMap<String, String>,
    /// The stock trees the generation was built from.
    #[serde(default)]
    pub stock: Vec<PathBuf>,
    /// The operator's note (`commit -m TEXT`): one line of at most
    /// [`MAX_NOTE_CHARS`] characters (docs/cli.md#commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A map of strings collected first and built in one pass: the entries
/// are written sorted, so `BTreeMap::from_iter` sorts them in linear time
/// and builds the tree without a search per key, where serde's own map
/// inserts one key at a time — most of a 10,000-service manifest's parse
/// (docs/performance.md#hints). A repeated key keeps its last value, as
/// one insert after another would.
fn map_in_one_pass<'de, D>(de: D) -> std::result::Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Pairs;
    impl<'de> serde::de::Visitor<'de> for Pairs {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of service names to store objects")
        }

        fn visit_map<A>(self, mut map: A) -> std::result::Result<Self::Value, A::Error>
        where
            A: serde::de::MapAccess<'de>,
        {
            let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1 << 16));
            while let Some(pair) = map.next_entry::<String, String>()? {
                pairs.push(pair);
            }
            Ok(pairs.into_iter().collect())
        }
    }
    de.deserialize_map(Pairs)
}

/// The longest note `commit -m` stores, in characters.
pub(crate) const MAX_NOTE_CHARS: usize = 200;

/// Why `note` cannot be a generation's note, or `None`.
pub(crate) fn note_problem(note: &str) -> Option<String> {
    if note.chars().count() > MAX_NOTE_CHARS {
        return Some(format!(
            "the note is longer than {MAX_NOTE_CHARS} characters"
        ));
    }
    if note.chars().any(char::is_control) {
        return Some(
            "the note holds a control character (a newline or tab, say); write one line".into(),
        );
    }
    None
}

/// A manifest type that can check its own values after parsing: a value
/// that will name a file must not be able to name one elsewhere.
pub(crate) trait Document: for<'de> Deserialize<'de> {
    /// Why the parsed value cannot be trusted, or `None`.
    fn problem(&self) -> Option<String>;
}

impl Document for GenerationManifest {
    fn problem(&self) -> Option<String> {
        if self.generation == 0 {
            return Some("generation 0 does not exist".into());
        }
        if self.parent.is_some_and(|p| p >= self.generation) {
            return Some("the parent is not older than the generation".into());
        }
        if let Some(why) = self.note.as_deref().and_then(note_problem) {
            return Some(why);
        }
        for (service, object) in &self.services {
            if let Some(why) = name_problem(service.as_bytes()) {
                return Some(why);
            }
            // `<service>-<digest>`, as `model::names::split_object_name` reads it, checked
            // without a search for the last dash: 10,000 of these per parse.
            let digest = object
                .strip_prefix(service.as_str())
                .and_then(|rest| rest.strip_prefix('-'));
            if !digest.is_some_and(is_digest) {
                return Some(format!("{object:?} is not a store object of {service:?}"));
            }
        }
        None
    }
}

impl Document for ObjectManifest {
    fn problem(&self) -> Option<String> {
        if let Some(why) = name_problem(self.service.as_bytes()) {
            return Some(why);
        }
        if !is_digest(&self.digest) {
            return Some(format!("{:?} is not a digest", self.digest));
        }
        for w in &self.restart_on {
            if !w.path.starts_with('/')
                || w.path.len() > MAX_PATH
                || w.path.chars().any(char::is_control)
            {
                return Some(format!(
                    "restart_on path {:?} is not an absolute path",
                    w.path
                ));
            }
            if !is_digest(&w.digest) {
                return Some(format!("restart_on digest {:?} is not a digest", w.digest));
            }
        }
        match self.entries.first() {
            Some(e) if e.path == tree::ROOT && e.kind == EntryKind::Dir => {}
            _ => return Some("the first entry is not the service directory `.`".into()),
        }
        for e in &self.entries[1..] {
            if let Some(why) = entry_path_problem(&e.path) {
                return Some(format!("entry {:?}: {why}", e.path));
            }
            let ok = match e.kind {
                EntryKind::File => {
                    e.size.is_some()
                        && e.blake3.is_some()
                        && e.from_link.as_deref().is_none_or(is_link_target)
                }
                EntryKind::Symlink => {
                    e.target.as_deref().is_some_and(is_link_target) && e.from_link.is_none()
                }
                EntryKind::Dir => e.from_link.is_none(),
            };
            if !ok {
                return Some(format!("entry {:?} lacks its size, hash or target", e.path));
            }
        }
        None
    }
}

/// A symlink target as stock validation admits it: not empty, no control
/// character.
fn is_link_target(target: &str) -> bool {
    !target.is_empty() && !target.chars().any(char::is_control)
}

/// 64 lowercase hex digits (a BLAKE3 digest as written by this tool).
fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Why `path` cannot be an entry below a service directory: empty,
/// absolute, `.`/`..`/empty components, control characters, too long.
pub(crate) fn entry_path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() || path.len() > MAX_PATH {
        return Some("empty or too long");
    }
    if path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some("not a plain relative path");
    }
    if path.chars().any(char::is_control) {
        return Some("holds a control character");
    }
    None
}

/// Parses manifest bytes; the error names the file and says what to do.
///
/// Manifests are written as JSON, which is also YAML (YAML 1.2 is a
/// superset of JSON), so any YAML tool reads them — but JSON parses about
/// ten times faster, which matters for a generation of 10,000 services.
/// A manifest edited into block-style YAML by hand still loads.
pub(crate) fn parse<T: Document>(bytes: &[u8], path: &Path) -> Result<T> {
    let damaged = |why: String| {
        Error::damaged(
            path,
            format!(
                "the manifest is damaged ({why}); run `svcdir-update verify` and restore it from \
                 a backup or remove the generation"
            ),
        )
    };
    let value: T = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(_) => {
            if let Some(why) = yaml_nesting_problem(bytes) {
                return Err(damaged(why));
            }
            serde_yaml::from_slice(bytes).map_err(|e| damaged(e.to_string()))?
        }
    };
    match value.problem() {
        None => Ok(value),
        Some(why) => Err(damaged(why)),
    }
}

/// Serializes a manifest as pretty JSON (valid YAML; see [`parse`]).
pub(crate) fn to_bytes<T: Serialize>(value: &T, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::io("cannot serialize", path, std::io::Error::other(e)))?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> ObjectManifest {
        let run = Entry {
            path: "run".into(),
            kind: EntryKind::File,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: Some(3),
            blake3: Some(blake3::hash(b"run").into()),
            target: None,
            from_link: None,
        };
        let link = Entry {
            path: "env/link".into(),
            kind: EntryKind::Symlink,
            mode: 0o777,
            uid: 0,
            gid: 0,
            size: None,
            blake3: None,
            target: Some("/etc/hostname".into()),
            from_link: None,
        };
        let mut entries = vec![
            Entry {
                path: tree::ROOT.into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                uid: 0,
                gid: 0,
                size: None,
                blake3: None,
                target: None,
                from_link: None,
            },
            run,
            link,
        ];
        tree::sort_entries(&mut entries);
        ObjectManifest {
            service: "web".into(),
            digest: tree::digest(&entries),
            entries,
            restart_on: Vec::new(),
            restart: None,
            owners: None,
        }
    }

    fn generation() -> GenerationManifest {
        GenerationManifest {
            generation: 7,
            parent: Some(6),
            created: "2026-01-01T00:00:00Z".into(),
            services: [
                ("web".to_string(), format!("web-{}", "a".repeat(64))),
                ("db".to_string(), format!("db-{}", "0".repeat(64))),
            ]
            .into_iter()
            .collect(),
            stock: vec!["/usr/share/svcdir-update/stock".into()],
            note: None,
        }
    }

    /// Services in any order, and a repeated name, read as a map built one
    /// insert at a time would hold them: sorted, the last value kept.
    #[test]
    fn services_are_read_in_one_pass_as_inserts_would_read_them() {
        let (a, b, c) = ("a".repeat(64), "b".repeat(64), "c".repeat(64));
        let text = format!(
            r#"{{"generation": 2, "created": "2026-01-01T00:00:00Z", "services":
               {{"web": "web-{a}", "db": "db-{b}", "web": "web-{c}"}}}}"#
        );
        for bytes in [
            text.clone().into_bytes(),
            text.replace('\n', " ").into_bytes(),
        ] {
            let m: GenerationManifest = parse(&bytes, path()).unwrap();
            let got: Vec<(&str, &str)> = m
                .services
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let (db, web) = (format!("db-{b}"), format!("web-{c}"));
            assert_eq!(got, [("db", db.as_str()), ("web", web.as_str())]);
        }
    }

    /// The JSON this tool writes and the same document in block YAML.
    fn samples<T: Serialize>(value: &T) -> Vec<Vec<u8>> {
        let path = Path::new("/s/m");
        vec![
            to_bytes(value, path).unwrap(),
            serde_yaml::to_string(value).unwrap().into_bytes(),
        ]
    }

    fn path() -> &'static Path {
        Path::new("/state/store/web-x.manifest.yaml")
    }

    /// An object of a service with `restart_on`, a restart marker and
    /// foreign owners re-owned by the store.
    fn watched_object() -> ObjectManifest {
        let mut m = object();
        m.owners = Some(Owners::Store);
        m.restart_on = vec![WatchedPath {
            path: "/usr/sbin/web".into(),
            digest: "b".repeat(64),
        }];
        m.restart = Some(4);
        m.digest = m.computed_digest();
        m
    }

    #[test]
    fn samples_parse_back() {
        for sample in [object(), watched_object()] {
            for bytes in samples(&sample) {
                assert_eq!(parse::<ObjectManifest>(&bytes, path()).unwrap(), sample);
            }
        }
        // The identity is part of the digest; without it, the tree digest.
        assert_eq!(object().computed_digest(), object().digest);
        assert_ne!(watched_object().digest, object().digest);
        for bytes in samples(&generation()) {
            assert_eq!(
                parse::<GenerationManifest>(&bytes, path()).unwrap(),
                generation()
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::test_support::mutate::config())]
        /// A damaged object manifest is a manifest or an error naming the file, exit 65.
        #[test]
        fn damaged_object_manifest_is_a_clear_error(bytes in crate::test_support::mutate::damaged(samples(&object()))) {
            if let Err(e) = parse::<ObjectManifest>(&bytes, path()) {
                proptest::prop_assert_eq!(e.exit_code(), 65);
                proptest::prop_assert!(e.to_string().contains(path().to_str().unwrap_or_default()));
            }
        }

        /// A damaged generation manifest is a manifest or an error naming the file, exit 65.
        #[test]
        fn damaged_generation_manifest_is_a_clear_error(bytes in crate::test_support::mutate::damaged(samples(&generation()))) {
            if let Err(e) = parse::<GenerationManifest>(&bytes, path()) {
                proptest::prop_assert_eq!(e.exit_code(), 65);
                proptest::prop_assert!(e.to_string().contains(path().to_str().unwrap_or_default()));
            }
        }
    }

    /// Well-formed manifests whose values would name files elsewhere.
    #[test]
    fn values_that_would_escape_are_refused() {
        let mut bad_objects = Vec::new();
        for p in [
            "../../etc/shadow",
            "/etc/shadow",
            "env/../../x",
            "a//b",
            "a/./b",
            "",
            "a\nb",
        ] {
            let mut m = object();
            m.entries[1].path = p.into();
            bad_objects.push(m);
        }
        let mut m = object();
        m.service = "../web".into();
        bad_objects.push(m);
        let mut m = object();
        m.entries[0].path = "run".into();
        bad_objects.push(m);
        for (path, digest) in [
            ("usr/sbin/web", "a".repeat(64)),
            ("/usr/sbin/web", "x".into()),
        ] {
            let mut m = object();
            m.restart_on = vec![WatchedPath {
                path: path.into(),
                digest,
            }];
            bad_objects.push(m);
        }
        for m in bad_objects {
            let bytes = to_bytes(&m, path()).unwrap();
            let err = parse::<ObjectManifest>(&bytes, path()).unwrap_err();
            assert_eq!(err.exit_code(), 65, "{m:?}");
        }
        let mut bad_generations = Vec::new();
        for (name, object) in [
            ("../x", format!("../x-{}", "a".repeat(64))),
            ("web", "../../../../etc".to_string()),
            ("web", format!("db-{}", "a".repeat(64))),
            ("web", format!("web-{}", "A".repeat(64))),
        ] {
            let mut g = generation();
            g.services.insert(name.into(), object);
            bad_generations.push(g);
        }
        let mut g = generation();
        g.parent = Some(7);
        bad_generations.push(g);
        for g in bad_generations {
            let bytes = to_bytes(&g, path()).unwrap();
            let err = parse::<GenerationManifest>(&bytes, path()).unwrap_err();
            assert_eq!(err.exit_code(), 65, "{g:?}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_the_yaml_parser() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let start = std::time::Instant::now();
        let err = parse::<GenerationManifest>(deep.as_bytes(), path()).unwrap_err();
        assert_eq!(err.exit_code(), 65);
        assert!(err.to_string().contains("nested"), "{err}");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }
}
