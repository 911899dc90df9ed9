//! Planning: what a transaction from one service map to another does, and
//! why. Pure functions over data — no I/O — so they are property-tested.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use itertools::{EitherOrBoth, Itertools};

use serde::{Deserialize, Serialize};

use crate::model::shown::shown;
use crate::model::tree::{Entry, EntryKind};

/// What happens to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Action {
    /// New service: its link appears and a supervisor starts it.
    Start,
    /// Content changed: the old instance stops, the new one starts.
    Restart,
    /// Removed: the old instance stops and its link goes.
    Stop,
    /// Unchanged: the very same object, untouched.
    Keep,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Start => "start",
            Action::Restart => "restart",
            Action::Stop => "stop",
            Action::Keep => "keep",
        })
    }
}

/// How one file of a service differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct FileChange {
    pub path: String,
    pub change: &'static str,
    /// The stock symlink the new file was resolved from, if any
    /// (docs/design.md#links), so a reason can say where a change came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ServiceChange {
    pub name: String,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub reason: Cow<'static, str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileChange>,
    /// The `restart_on` paths whose content changed (docs/design.md#identity).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restart_on: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Plan {
    pub services: Vec<ServiceChange>,
}

/// Counts per action, for summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counts {
    pub start: usize,
    pub restart: usize,
    pub stop: usize,
    pub keep: usize,
}

impl Counts {
    /// Every live service stops and none is kept or restarted: what a
    /// wrong or empty stock path looks like (`commit --allow-stop-all`).
    pub(crate) fn stops_everything(&self) -> bool {
        self.stop > 0 && self.keep == 0 && self.restart == 0
    }
}

impl Plan {
    pub(crate) fn is_noop(&self) -> bool {
        self.services.iter().all(|s| s.action == Action::Keep)
    }

    pub(crate) fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for s in &self.services {
            match s.action {
                Action::Start => c.start += 1,
                Action::Restart => c.restart += 1,
                Action::Stop => c.stop += 1,
                Action::Keep => c.keep += 1,
            }
        }
        c
    }

    /// Services whose running instance the transaction stops (sorted).
    pub(crate) fn to_stop(&self) -> Vec<&ServiceChange> {
        self.services
            .iter()
            .filter(|s| matches!(s.action, Action::Restart | Action::Stop))
            .collect()
    }

    /// Services that change at all (not kept), sorted by name.
    pub(crate) fn changed(&self) -> impl Iterator<Item = &ServiceChange> {
        self.services.iter().filter(|s| s.action != Action::Keep)
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} to start, {} to restart, {} to stop, {} unchanged",
            self.start, self.restart, self.stop, self.keep
        )
    }
}

/// Plans the move from `from` to `to` (service name → store object).
pub(crate) fn make(from: &BTreeMap<String, String>, to: &BTreeMap<String, String>) -> Plan {
    let services = side_by_side(from, to)
        .map(|(name, old, new)| {
            let (action, reason) = match (old, new) {
                (None, _) => (Action::Start, "new service"),
                (Some(_), None) => (Action::Stop, "removed"),
                (Some(a), Some(b)) if a == b => (Action::Keep, "unchanged"),
                _ => (Action::Restart, "content changed"),
            };
            ServiceChange {
                name: name.clone(),
                action,
                from: old.cloned(),
                to: new.cloned(),
                reason: Cow::Borrowed(reason),
                files: Vec::new(),
                restart_on: Vec::new(),
            }
        })
        .collect();
    Plan { services }
}

/// `make(from, to).counts()` without building the plan: a plan of
/// 100,000 services clones every name and object, which `list` and the
/// generation summary need not (docs/performance.md).
pub(crate) fn counts(from: &BTreeMap<String, String>, to: &BTreeMap<String, String>) -> Counts {
    let mut c = Counts::default();
    for (_, old, new) in side_by_side(from, to) {
        match (old, new) {
            (None, _) => c.start += 1,
            (Some(_), None) => c.stop += 1,
            (Some(a), Some(b)) if a == b => c.keep += 1,
            _ => c.restart += 1,
        }
    }
    c
}

/// Two service maps walked side by side in name order, as (name, object in
/// `from`, object in `to`): one comparison per name where a lookup of each
/// name in the other map costs a search — the bulk of planning a
/// generation of 10,000 services (docs/performance.md#hints).
pub(crate) fn side_by_side<'a>(
    from: &'a BTreeMap<String, String>,
    to: &'a BTreeMap<String, String>,
) -> impl Iterator<Item = (&'a String, Option<&'a String>, Option<&'a String>)> {
    from.iter()
        .merge_join_by(to.iter(), |a, b| a.0.cmp(b.0))
        .map(|pair| match pair {
            EitherOrBoth::Left((name, old)) => (name, Some(old), None),
            EitherOrBoth::Right((name, new)) => (name, None, Some(new)),
            EitherOrBoth::Both((name, old), (_, new)) => (name, Some(old), Some(new)),
        })
}

/// Plans a switch back (or forward) to the existing generation `n`, with
/// reasons that say so: "start: in generation 3", "stop: not in
/// generation 3", "restart: as in generation 3".
pub(crate) fn make_to_generation(
    from: &BTreeMap<String, String>,
    to: &BTreeMap<String, String>,
    n: u64,
) -> Plan {
    let mut plan = make(from, to);
    for s in &mut plan.services {
        s.reason = match s.action {
            Action::Start => format!("in generation {n}").into(),
            Action::Stop => format!("not in generation {n}").into(),
            Action::Restart => format!("as in generation {n}").into(),
            Action::Keep => continue,
        };
    }
    plan
}

/// The file-level differences between two entry lists (both sorted).
pub(crate) fn diff_entries(old: &[Entry], new: &[Entry]) -> Vec<FileChange> {
    let old_map: BTreeMap<&str, &Entry> = old.iter().map(|e| (e.path.as_str(), e)).collect();
    let new_map: BTreeMap<&str, &Entry> = new.iter().map(|e| (e.path.as_str(), e)).collect();
    let paths: BTreeSet<&str> = old_map.keys().chain(new_map.keys()).copied().collect();
    let mut out = Vec::new();
    for path in paths {
        let change = match (old_map.get(path), new_map.get(path)) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (Some(a), Some(b)) => {
                if a.kind != b.kind {
                    "type"
                } else if a.kind == EntryKind::File && a.blake3 != b.blake3 {
                    "content"
                } else if a.kind == EntryKind::Symlink && a.target != b.target {
                    "target"
                } else if a.from_link != b.from_link {
                    "link"
                } else if a.mode != b.mode {
                    "mode"
                } else if (a.uid, a.gid) != (b.uid, b.gid) {
                    "owner"
                } else {
                    continue;
                }
            }
            (None, None) => continue,
        };
        out.push(FileChange {
            path: path.to_string(),
            change,
            via: new_map.get(path).and_then(|e| e.from_link.clone()),
        });
    }
    out
}

/// A short human reason from file changes: "run changed", "run, env/A changed",
/// "5 files changed". File names and link targets are the stock's: shown
/// escaped, so that bidi characters cannot reorder the plan
/// (docs/security.md#outside-text-is-shown-escaped).
pub(crate) fn describe_files(files: &[FileChange]) -> String {
    match files.len() {
        0 => "content changed".into(),
        1..=3 => {
            let list: Vec<String> = files
                .iter()
                .map(|f| match (f.change, &f.via) {
                    ("content", None) => shown(&f.path).to_string(),
                    ("content", Some(link)) => {
                        format!("{} (via {})", shown(&f.path), shown(link))
                    }
                    (other, _) => format!("{} ({other})", shown(&f.path)),
                })
                .collect();
            format!("{} changed", list.join(", "))
        }
        n => format!("{n} files changed"),
    }
}

/// Why a service restarts, from its changed files and changed `restart_on`
/// paths: "run changed", "/usr/sbin/nginx changed (restart_on)", or both
/// joined by "; ".
pub(crate) fn describe_restart(files: &[FileChange], restart_on: &[String]) -> String {
    let watched = match restart_on.len() {
        0 => None,
        1..=3 => Some(format!(
            "{} changed (restart_on)",
            restart_on
                .iter()
                .map(|p| shown(p).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        n => Some(format!("{n} restart_on paths changed")),
    };
    match (files.is_empty(), watched) {
        (true, Some(watched)) => watched,
        (false, Some(watched)) => format!("{}; {watched}", describe_files(files)),
        (false, None) => describe_files(files),
        // Only the identity changed: a path left `restart_on`, or an
        // earlier `--restart` marker was dropped.
        (true, None) => "restart_on changed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `side_by_side` yields every name of either map once, in order, with
    /// the object each map gives it.
    #[test]
    fn side_by_side_walks_both_maps_in_name_order() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let from = map(&[("a", "1"), ("b", "2"), ("d", "4")]);
        let to = map(&[("b", "2"), ("c", "3"), ("d", "5"), ("e", "6")]);
        let got: Vec<(&str, Option<&str>, Option<&str>)> = side_by_side(&from, &to)
            .map(|(n, a, b)| (n.as_str(), a.map(String::as_str), b.map(String::as_str)))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Some("1"), None),
                ("b", Some("2"), Some("2")),
                ("c", None, Some("3")),
                ("d", Some("4"), Some("5")),
                ("e", None, Some("6")),
            ]
        );
        let c = counts(&from, &to);
        assert_eq!((c.start, c.restart, c.stop, c.keep), (2, 1, 1, 1));
    }

    use proptest::prelude::*;

    #[test]
    fn a_file_from_a_link_says_where_it_came_from() {
        let run = |content: &[u8], from_link: Option<&str>| Entry {
            path: "run".into(),
            kind: EntryKind::File,
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: Some(content.len() as u64),
            blake3: Some(blake3::hash(content).into()),
            target: None,
            from_link: from_link.map(str::to_string),
        };
        let via = Some("../agetty-generic/run");
        let files = diff_entries(&[run(b"a", via)], &[run(b"b", via)]);
        assert_eq!(
            describe_files(&files),
            "run (via ../agetty-generic/run) changed"
        );
        let files = diff_entries(&[run(b"a", None)], &[run(b"a", via)]);
        assert_eq!(describe_files(&files), "run (link) changed");
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn plans_each_kind_of_change() {
        let plan = make(
            &map(&[("a", "a-1"), ("b", "b-1"), ("c", "c-1")]),
            &map(&[("a", "a-1"), ("b", "b-2"), ("d", "d-1")]),
        );
        let got: Vec<(&str, Action)> = plan
            .services
            .iter()
            .map(|s| (s.name.as_str(), s.action))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Action::Keep),
                ("b", Action::Restart),
                ("c", Action::Stop),
                ("d", Action::Start)
            ]
        );
        assert!(!plan.is_noop());
        assert!(make(&map(&[("a", "x")]), &map(&[("a", "x")])).is_noop());
        let back = make_to_generation(
            &map(&[("a", "a-1"), ("b", "b-2"), ("d", "d-1")]),
            &map(&[("a", "a-1"), ("b", "b-1"), ("c", "c-1")]),
            1,
        );
        let reasons: Vec<&str> = back.services.iter().map(|s| s.reason.as_ref()).collect();
        assert_eq!(
            reasons,
            [
                "unchanged",
                "as in generation 1",
                "in generation 1",
                "not in generation 1"
            ]
        );
    }

    #[test]
    fn restart_reasons_name_files_and_restart_on_paths() {
        let run = [FileChange {
            path: "run".into(),
            change: "content",
            via: None,
        }];
        let nginx = ["/usr/sbin/nginx".to_string()];
        assert_eq!(describe_restart(&run, &[]), "run changed");
        assert_eq!(
            describe_restart(&[], &nginx),
            "/usr/sbin/nginx changed (restart_on)"
        );
        assert_eq!(
            describe_restart(&run, &nginx),
            "run changed; /usr/sbin/nginx changed (restart_on)"
        );
        assert_eq!(describe_restart(&[], &[]), "restart_on changed");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn plan_covers_every_name_once_and_keeps_only_equal_objects(
            from in proptest::collection::btree_map("[a-e]", "[xy]", 0..5),
            to in proptest::collection::btree_map("[a-e]", "[xy]", 0..5),
        ) {
            let plan = make(&from, &to);
            let names: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
            prop_assert_eq!(plan.services.len(), names.len());
            for s in &plan.services {
                prop_assert_eq!(s.from.as_ref(), from.get(&s.name));
                prop_assert_eq!(s.to.as_ref(), to.get(&s.name));
                let keep = from.contains_key(&s.name) && from.get(&s.name) == to.get(&s.name);
                prop_assert_eq!(s.action == Action::Keep, keep);
            }
            // Planning back undoes: starts become stops and vice versa.
            let back = make(&to, &from);
            let c = plan.counts();
            let b = back.counts();
            prop_assert_eq!((c.start, c.stop, c.restart, c.keep), (b.stop, b.start, b.restart, b.keep));
            prop_assert_eq!(counts(&from, &to), c);
        }
    }
}
