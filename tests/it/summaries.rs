//! Generation summaries and the store-usage ledger
//! (docs/performance.md#status-and-list-at-100000-services): `list` and
//! `status` read numbers recorded at commit time, and say the same as the
//! slow count that reads every manifest and lstats every store entry —
//! also on a state made before the records existed.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::harness::*;

/// The store numbers `status` reports, with `--usage` (measured) or
/// without (recorded).
pub(crate) fn store_of(root: &Root, measured: bool) -> Value {
    let args: &[&str] = if measured {
        &["--json", "status", "--usage"]
    } else {
        &["--json", "status"]
    };
    root.run(args).ok().json()["store"].clone()
}

/// The numbers both ways must agree on.
pub(crate) fn numbers(store: &Value) -> [u64; 5] {
    [
        "objects",
        "bytes",
        "gc_generations",
        "gc_objects",
        "gc_bytes",
    ]
    .map(|k| {
        store[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {store}"))
    })
}

/// Four generations, each changing something: a new service, a changed
/// one, a removed one.
fn history_of_changes(root: &Root) {
    root.commit().ok();
    root.write_stock("web/run", "#!/bin/sh\n# v2\nexec sleep 1000\n", 0o755);
    root.add_service("extra", "new");
    root.commit().ok();
    std::fs::remove_dir_all(root.stock().join("cron")).unwrap();
    root.run(&["commit", "-m", "no cron"]).ok();
    root.write_stock("db/run", "#!/bin/sh\n# v2\nexec sleep 1000\n", 0o755);
    root.commit().ok();
}

fn summaries(root: &Root) -> Vec<std::path::PathBuf> {
    generations(root)
        .into_iter()
        .map(|n| {
            root.state()
                .join("generations")
                .join(n.to_string())
                .join(".summary.json")
        })
        .collect()
}

/// What a state made before summaries and the ledger looks like.
fn forget_records(root: &Root) {
    for s in summaries(root) {
        std::fs::remove_file(s).unwrap();
    }
    std::fs::remove_file(root.state().join("store-usage.log")).unwrap();
}

fn services_of(manifest: &Path) -> BTreeMap<String, String> {
    let m: Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    serde_json::from_value(m["services"].clone()).unwrap()
}

#[test]
fn recorded_store_use_equals_the_measured_count() {
    let root = Root::example();
    root.config("keep_generations: 2\n");
    history_of_changes(&root);
    let (recorded, measured) = (store_of(&root, false), store_of(&root, true));
    assert_eq!(
        numbers(&recorded),
        numbers(&measured),
        "{recorded} {measured}"
    );
    assert_eq!(numbers(&recorded)[2], 2, "generations 1 and 2 would go");
    assert!(numbers(&recorded)[3] > 0 && numbers(&recorded)[4] > 0);
    assert_eq!(recorded["counted"], "recorded");
    assert_eq!(recorded["measured_objects"], 0, "{recorded}");
    assert_eq!(measured["counted"], "measured");
    assert_eq!(measured["measured_objects"], measured["objects"]);
    let text = root.run(&["status"]).ok().stdout;
    assert!(
        text.contains("(as commits recorded them; `status --usage` measures)"),
        "{text}"
    );
    assert!(
        root.run(&["status", "--usage"])
            .ok()
            .stdout
            .contains("(measured)")
    );

    // After gc the lines of the collected objects are ignored.
    root.run(&["gc", "--keep", "2"]).ok();
    let (recorded, measured) = (store_of(&root, false), store_of(&root, true));
    assert_eq!(
        numbers(&recorded),
        numbers(&measured),
        "{recorded} {measured}"
    );
    assert_eq!(recorded["measured_objects"], 0, "{recorded}");
}

#[test]
fn a_torn_or_foreign_usage_line_is_measured_around() {
    let root = Root::example();
    history_of_changes(&root);
    let ledger = root.state().join("store-usage.log");
    let text = std::fs::read_to_string(&ledger).unwrap();
    // The last line cut in its object name, as a crash could leave it.
    let cut = text.trim_end().rsplit_once('\n').unwrap().0.to_string();
    std::fs::write(
        &ledger,
        format!("{}\n12 web-\nnot a line\n", &cut[..cut.len() - 3]),
    )
    .unwrap();
    let (recorded, measured) = (store_of(&root, false), store_of(&root, true));
    assert_eq!(
        numbers(&recorded),
        numbers(&measured),
        "{recorded} {measured}"
    );
    assert_eq!(recorded["measured_objects"], 2, "{recorded}");
}

#[test]
fn list_counts_are_what_the_manifests_say_with_and_without_summaries() {
    let root = Root::example();
    history_of_changes(&root);
    // Rollback makes no generation; the list stays the same shape.
    root.run(&["rollback"]).ok();
    for s in summaries(&root) {
        assert!(s.is_file(), "{} was not written", s.display());
    }
    let with = root.run(&["--json", "list"]).ok().json();
    let gens = root.state().join("generations");
    for row in with.as_array().unwrap() {
        let n = row["generation"].as_u64().unwrap();
        let mine = services_of(&gens.join(n.to_string()).join(".manifest.yaml"));
        assert_eq!(row["services"].as_u64().unwrap() as usize, mine.len());
        let Some(parent) = row["parent"].as_u64() else {
            assert!(row["changes"].is_null());
            continue;
        };
        let theirs = services_of(&gens.join(parent.to_string()).join(".manifest.yaml"));
        let start = mine.keys().filter(|s| !theirs.contains_key(*s)).count();
        let stop = theirs.keys().filter(|s| !mine.contains_key(*s)).count();
        let restart = mine
            .iter()
            .filter(|(s, o)| theirs.get(*s).is_some_and(|t| t != *o))
            .count();
        let c = &row["changes"];
        assert_eq!(
            [&c["start"], &c["restart"], &c["stop"], &c["keep"]].map(|v| v.as_u64().unwrap()),
            [start, restart, stop, mine.len() - start - restart].map(|v| v as u64),
            "generation {n}: {row}"
        );
    }
    assert_eq!(with[2]["note"], "no cron");
    let text = root.run(&["list"]).ok().stdout;

    // A state made before summaries lists the very same.
    forget_records(&root);
    assert_eq!(root.run(&["--json", "list"]).ok().json(), with);
    assert_eq!(root.run(&["list"]).ok().stdout, text);
    // As does one whose summary does not fit its generation (edited by hand).
    std::fs::write(
        gens.join("3/.summary.json"),
        std::fs::read(gens.join("2/.manifest.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(root.run(&["--json", "list"]).ok().json(), with);
}

#[test]
fn changes_from_a_collected_parent_are_not_shown() {
    let root = Root::example();
    history_of_changes(&root);
    root.run(&["gc", "--keep", "2"]).ok();
    let rows = root.run(&["--json", "list"]).ok().json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // Generation 3's parent, 2, is gone: nothing to compare with, as
    // without summaries.
    assert_eq!(rows[0]["parent"], 2);
    assert!(rows[0]["changes"].is_null(), "{}", rows[0]);
    assert!(!rows[1]["changes"].is_null(), "{}", rows[1]);
}

#[test]
fn an_old_state_is_measured_then_recorded_by_the_next_commit() {
    let root = Root::example();
    root.config("keep_generations: 2\n");
    history_of_changes(&root);
    forget_records(&root);
    let (recorded, measured) = (store_of(&root, false), store_of(&root, true));
    assert_eq!(
        numbers(&recorded),
        numbers(&measured),
        "{recorded} {measured}"
    );
    assert_eq!(recorded["measured_objects"], recorded["objects"]);
    // The next commit records every object, not only its new ones.
    root.write_stock("web/run", "#!/bin/sh\n# v3\nexec sleep 1000\n", 0o755);
    root.commit().ok();
    let ledger = std::fs::read_to_string(root.state().join("store-usage.log")).unwrap();
    let (recorded, measured) = (store_of(&root, false), store_of(&root, true));
    assert_eq!(
        ledger.lines().count() as u64,
        recorded["objects"].as_u64().unwrap(),
        "{ledger}"
    );
    assert_eq!(
        numbers(&recorded),
        numbers(&measured),
        "{recorded} {measured}"
    );
    assert_eq!(recorded["measured_objects"], 0);
}
