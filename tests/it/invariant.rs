//! The crash-safety invariant, computed independently of the tool: after
//! recovery `live` is exactly the old or exactly the new generation, every
//! file of every live object matches its manifest (BLAKE3 computed here),
//! the scan directory matches `live`, every generation on disk is complete,
//! no object lacks its manifest, and no `.tmp-*` or rollback log is left.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::harness::*;

/// Entries supervisors create inside a service directory; never compared.
const RUNTIME: &[&str] = &["supervise", "event", "log/supervise", "log/event"];

/// Service name → (relative path → kind, permissions and content digest).
pub type Services = BTreeMap<String, BTreeMap<String, String>>;

/// The content of every stock service, in comparable form.
pub fn stock_contents(root: &Root) -> Services {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(root.stock()).unwrap() {
        let e = e.unwrap();
        out.insert(
            e.file_name().into_string().unwrap(),
            service_contents(&e.path()),
        );
    }
    out
}

/// The content of every service the scan directory shows, read through the
/// links (`service/<name> -> state/live/<name> -> store/<object>`).
pub fn live_contents(root: &Root) -> Services {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(root.scandir()) else {
        return out;
    };
    for e in entries {
        let e = e.unwrap();
        out.insert(
            e.file_name().into_string().unwrap(),
            service_contents(&e.path()),
        );
    }
    out
}

/// The content of the generation `live` points at, read through
/// `state/live/<name>` (valid even before the scan directory is synced).
pub fn live_generation_contents(root: &Root) -> Services {
    let Some(g) = root.live_generation() else {
        return Services::new();
    };
    generation_services(root, g)
        .into_keys()
        .map(|name| {
            let c = service_contents(&root.live().join(&name));
            (name, c)
        })
        .collect()
}

/// One service directory (resolved through links) as path → description.
pub fn service_contents(dir: &Path) -> BTreeMap<String, String> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut out = BTreeMap::new();
    let walk = walkdir::WalkDir::new(&dir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let rel = e.path().strip_prefix(&dir).unwrap().to_str().unwrap();
            !RUNTIME.contains(&rel)
        });
    for entry in walk {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&dir).unwrap();
        let md = entry.path().symlink_metadata().unwrap();
        let perm = md.mode() & 0o777;
        let value = if md.file_type().is_symlink() {
            format!(
                "link {}",
                std::fs::read_link(entry.path()).unwrap().display()
            )
        } else if md.is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            format!("file {perm:o} {}", blake3::hash(&bytes).to_hex())
        } else {
            format!("dir {perm:o}")
        };
        out.insert(rel.to_str().unwrap().to_string(), value);
    }
    out
}

fn yaml(path: &Path) -> serde_yaml::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A manifest file's identity: path, dev, inode, size, mtime (s, ns).
type FileId = (std::path::PathBuf, u64, u64, u64, i64, i64);

thread_local! {
    /// Parsed manifests by (path, dev, inode, size, mtime): manifests are
    /// written once, so a file with the same identity has the same content;
    /// parsing YAML again dominates loops over large trees otherwise.
    static PARSED: std::cell::RefCell<BTreeMap<FileId, serde_yaml::Value>> =
        const { std::cell::RefCell::new(BTreeMap::new()) };
}

/// [`yaml`], parsing each distinct manifest file once per thread.
fn yaml_cached(path: &Path) -> serde_yaml::Value {
    let md = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let key = (
        path.to_path_buf(),
        md.dev(),
        md.ino(),
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
    );
    if let Some(v) = PARSED.with(|p| p.borrow().get(&key).cloned()) {
        return v;
    }
    let v = yaml(path);
    PARSED.with(|p| p.borrow_mut().insert(key, v.clone()));
    v
}

/// Generation manifest → service → object.
pub fn generation_services(root: &Root, n: u64) -> BTreeMap<String, String> {
    let m = yaml(&root.state().join(format!("generations/{n}/.manifest.yaml")));
    assert_eq!(m["generation"].as_u64(), Some(n), "generation {n} manifest");
    m["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap().to_string(),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Checks every file of `service` (reached through `dir`) against the
/// object manifest: kind, content BLAKE3, link target; nothing missing,
/// nothing extra.
fn check_object(root: &Root, object: &str, dir: &Path) {
    let manifest = yaml_cached(&root.state().join(format!("store/{object}.manifest.yaml")));
    let mut want = BTreeSet::new();
    for e in manifest["entries"].as_sequence().unwrap() {
        let rel = e["path"].as_str().unwrap();
        let path = dir.join(rel);
        let md = path
            .symlink_metadata()
            .unwrap_or_else(|err| panic!("{}: {err} (in manifest of {object})", path.display()));
        match e["type"].as_str().unwrap() {
            "file" => {
                assert!(md.is_file(), "{}: not a file", path.display());
                let sum = blake3::hash(&std::fs::read(&path).unwrap()).to_hex();
                assert_eq!(
                    Some(sum.as_str()),
                    e["blake3"].as_str(),
                    "{}: content does not match the manifest",
                    path.display()
                );
            }
            "symlink" => assert_eq!(
                std::fs::read_link(&path).unwrap().to_str(),
                e["target"].as_str(),
                "{}",
                path.display()
            ),
            "dir" => assert!(md.is_dir(), "{}: not a directory", path.display()),
            other => panic!("unknown entry type {other}"),
        }
        if rel != "." {
            want.insert(rel.to_string());
        }
    }
    let found: BTreeSet<String> = service_contents(dir).into_keys().collect();
    assert_eq!(found, want, "{object}: entries differ from its manifest");
}

/// How much [`assert_consistent_at`] checks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Depth {
    /// Everything: all generations, a full walk for `.tmp-*`, `verify`.
    Full,
    /// For loops over a large, growing state: the live generation and the
    /// newest one, `.tmp-*` where staging names are made (the top of
    /// state, store, generations, cache), no `verify` run.
    Quick,
}

/// Asserts every structural invariant and returns the live generation.
#[track_caller]
pub fn assert_consistent(root: &Root) -> Option<u64> {
    assert_consistent_at(root, Depth::Full)
}

/// [`assert_consistent`] at a chosen depth.
#[track_caller]
pub fn assert_consistent_at(root: &Root, depth: Depth) -> Option<u64> {
    let state = root.state();
    assert!(
        !state.join(layout::TXN).exists(),
        "a rollback log is left after recovery"
    );
    let max_depth = if depth == Depth::Full { usize::MAX } else { 2 };
    for entry in walkdir::WalkDir::new(&state).max_depth(max_depth) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_str().unwrap();
        assert!(
            !name.starts_with(".tmp-"),
            "staging leftover {}",
            entry.path().display()
        );
    }
    // Every store object has its manifest.
    let store = state.join(layout::STORE);
    for e in std::fs::read_dir(&store).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".manifest.yaml") {
            assert!(
                store.join(format!("{name}.manifest.yaml")).is_file(),
                "store object {name} has no manifest"
            );
        }
    }
    // Every generation on disk is complete.
    let mut gens = generations(root);
    if depth == Depth::Quick {
        let (live, newest) = (root.live_generation(), gens.last().copied());
        gens.retain(|&n| Some(n) == live || Some(n) == newest);
    }
    for n in gens {
        let dir = state.join(format!("generations/{n}"));
        let services = generation_services(root, n);
        let mut names: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.remove(".manifest.yaml");
        // The summary, when there is one, agrees with the manifest
        // (docs/performance.md#status-and-list-at-100000-services).
        if names.remove(".summary.json") {
            let summary = yaml(&dir.join(".summary.json"));
            assert_eq!(summary["generation"].as_u64(), Some(n), "{summary:?}");
            assert_eq!(
                summary["services"].as_u64(),
                Some(services.len() as u64),
                "generation {n}: the summary's count differs from the manifest"
            );
        }
        // A dormant generation holds its manifest, summary and the marker
        // only (docs/design.md#dormant-generations); never the live one.
        if names.contains(layout::DORMANT) {
            assert_eq!(
                names,
                BTreeSet::from([layout::DORMANT.to_string()]),
                "dormant generation {n} holds links"
            );
            assert_ne!(
                root.live_generation(),
                Some(n),
                "live generation {n} is dormant"
            );
            for object in services.values() {
                assert!(
                    store.join(object).is_dir(),
                    "generation {n}: {object} missing"
                );
            }
            continue;
        }
        assert_eq!(
            names,
            services.keys().cloned().collect::<BTreeSet<_>>(),
            "generation {n}: links differ from the manifest"
        );
        for (name, object) in &services {
            assert_eq!(
                std::fs::read_link(dir.join(name)).unwrap(),
                generation_link_target(object),
                "generation {n}: {name}"
            );
            assert!(
                store.join(object).is_dir(),
                "generation {n}: {object} missing"
            );
        }
    }
    // History: every transaction id at most once.
    let history = std::fs::read_to_string(state.join(layout::HISTORY)).unwrap_or_default();
    let mut ids = BTreeSet::new();
    for line in history.lines() {
        let id = line.split(' ').nth(1).unwrap();
        assert!(
            ids.insert(id.to_string()),
            "history lists {id} twice:\n{history}"
        );
    }

    let live = root.live_generation();
    let scan: BTreeSet<String> = std::fs::read_dir(root.scandir())
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    let Some(g) = live else {
        assert!(
            std::fs::symlink_metadata(root.live()).is_err(),
            "live exists but does not name a generation"
        );
        assert!(
            scan.is_empty(),
            "no generation is live, yet {scan:?} are linked"
        );
        return None;
    };
    let services = generation_services(root, g);
    assert_eq!(
        scan,
        services.keys().cloned().collect::<BTreeSet<_>>(),
        "the scan directory does not match live generation {g}"
    );
    for (name, object) in &services {
        let link = root.scandir().join(name);
        assert_eq!(std::fs::read_link(&link).unwrap(), root.live().join(name));
        assert_eq!(
            std::fs::canonicalize(&link).unwrap(),
            std::fs::canonicalize(root.object_dir(object)).unwrap()
        );
        check_object(root, object, &link);
    }
    if depth == Depth::Full {
        root.run(&["verify"]).ok();
    }
    Some(g)
}

/// Asserts the invariant and that the live content is exactly `old` or
/// exactly `new`; returns true when it is `new`.
#[track_caller]
pub fn assert_old_or_new(root: &Root, old: &Services, new: &Services, what: &str) -> bool {
    assert_old_or_new_at(root, old, new, what, Depth::Full)
}

/// [`assert_old_or_new`] at a chosen depth.
#[track_caller]
pub fn assert_old_or_new_at(
    root: &Root,
    old: &Services,
    new: &Services,
    what: &str,
    depth: Depth,
) -> bool {
    assert_consistent_at(root, depth);
    let live = live_contents(root);
    if &live == new {
        true
    } else if &live == old {
        false
    } else {
        panic!(
            "{what}: live is neither the old nor the new content\nlive: {:?}\nold: {:?}\nnew: {:?}",
            live.keys(),
            old.keys(),
            new.keys()
        );
    }
}
