//! `status` and `check` at 100,000 services
//! (docs/performance.md#status-and-check-at-100000-services) take
//! shortcuts: `status` names update locks from the lock directory's listing
//! and lstats only the held ones, and counts the store from one sorted
//! listing; `check` reads the stat cache a commit saved and keeps only the
//! programs of each service. These tests pin what they report to what it
//! was: every held lock and nothing else, the store's numbers as measured,
//! every problem and warning, a program changed behind restored stamps,
//! and nothing written.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::harness::*;

/// The held update locks `status --json` reports, as (service, holder pids).
fn held_locks(root: &Root) -> Vec<(String, Vec<u64>)> {
    let status = root.run(&["--json", "status"]).ok().json();
    status["update_locks"]
        .as_array()
        .unwrap_or_else(|| panic!("{status}"))
        .iter()
        .map(|l| {
            let pids = l["holders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["pid"].as_u64().unwrap())
                .collect();
            (l["service"].as_str().unwrap().to_string(), pids)
        })
        .collect()
}

fn lock_file(root: &Root, service: &str) -> std::path::PathBuf {
    root.runtime().join("locks").join(format!("{service}.lock"))
}

#[test]
fn status_names_every_held_update_lock_and_nothing_else() {
    let root = Root::example();
    root.commit().ok();
    assert_eq!(held_locks(&root), vec![]);
    let web = flock_holder(&lock_file(&root, "web"), "-s");
    let db = flock_holder(&lock_file(&root, "db"), "-x");
    // Held, but not lock files: a directory with the suffix, a file
    // without it.
    let dir = lock_file(&root, "zz");
    std::fs::create_dir(&dir).unwrap();
    let _dir_holder = flock_holder(&dir, "-s");
    let other = root.runtime().join("locks").join("notes.txt");
    std::fs::write(&other, "").unwrap();
    let _other_holder = flock_holder(&other, "-x");
    assert_eq!(
        held_locks(&root),
        vec![
            ("db".to_string(), vec![u64::from(db.0.id())]),
            ("web".to_string(), vec![u64::from(web.0.id())]),
        ]
    );
    let text = root.run(&["status"]).ok().stdout;
    assert!(text.contains("update locks:\n  db: held by pid "), "{text}");
    assert!(text.contains("[exclusive]"), "{text}");
    assert!(text.contains("\n  web: held by pid "), "{text}");

    // A lock file replaced since its holder opened it is no longer the
    // service's lock: the holder holds an inode the directory does not name.
    let fresh = root.runtime().join("locks").join(".fresh");
    std::fs::write(&fresh, "").unwrap();
    std::fs::rename(&fresh, lock_file(&root, "web")).unwrap();
    assert_eq!(
        held_locks(&root),
        vec![("db".to_string(), vec![u64::from(db.0.id())])]
    );
    drop(db);
    assert_eq!(held_locks(&root), vec![]);
    assert!(
        root.run(&["status"])
            .ok()
            .stdout
            .contains("update locks: none held")
    );
}

/// The numbers of `status --json`'s store, recorded or measured.
fn store_numbers(root: &Root, measured: bool) -> (Value, [u64; 5]) {
    let store = crate::summaries::store_of(root, measured);
    let numbers = crate::summaries::numbers(&store);
    (store, numbers)
}

/// The store objects of the live generation's parent that live no longer
/// references: what `gc --keep 1` would remove.
fn replaced_objects(root: &Root) -> Vec<String> {
    let status = root.run(&["--json", "gc", "--keep", "1", "--dry-run"]);
    let report = status.ok().json();
    report["removed_objects"]
        .as_array()
        .unwrap_or_else(|| panic!("{report}"))
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn status_counts_a_store_with_a_missing_object_and_a_stray_file_as_measured() {
    let root = Root::example();
    root.config("keep_generations: 1\n");
    root.commit().ok();
    root.write_stock("web/run", "#!/bin/sh\n# v2\nexec sleep 1000\n", 0o755);
    root.write_stock("db/run", "#!/bin/sh\n# v2\nexec sleep 1000\n", 0o755);
    root.commit().ok();
    let replaced = replaced_objects(&root);
    assert_eq!(replaced.len(), 2, "{replaced:?}");
    let (_, before) = store_numbers(&root, false);
    assert_eq!(before[3], 2, "{before:?}");

    // One replaced object loses its directory by hand (its manifest stays,
    // an orphan), and the store holds a stray file: neither has a ledger
    // line, both count as measured.
    let store = root.state().join("store");
    std::fs::remove_dir_all(store.join(&replaced[0])).unwrap();
    std::fs::write(store.join("stray"), "x".repeat(10_000)).unwrap();
    let (recorded, numbers) = store_numbers(&root, false);
    let (measured, measured_numbers) = store_numbers(&root, true);
    assert_eq!(numbers, measured_numbers, "{recorded} {measured}");
    assert_eq!(numbers[0], before[0] - 1, "one object fewer: {recorded}");
    assert_eq!(numbers[3], 1, "gc would remove the one left: {recorded}");
    assert_eq!(recorded["counted"], "recorded");
}

/// Now, in whole seconds.
fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Waits until every file written so far is old enough for the stat
/// cache (it keeps files unchanged for over a second), then commits.
fn commit_with_a_warm_cache(root: &Root) {
    let written = now_seconds();
    wait_until(
        "the stock to be old enough to cache",
        Duration::from_secs(10),
        || now_seconds() >= written + 2,
    );
    root.commit().ok();
}

/// The number in `check -v`'s `stat cache: N entries loaded`; `check`
/// exits `code`.
fn cache_entries_loaded(root: &Root, code: u8) -> usize {
    let run = root.run(&["-v", "check"]).code(code);
    let line = run
        .stderr
        .lines()
        .find_map(|l| l.split_once("stat cache: "))
        .unwrap_or_else(|| panic!("no stat cache line: {}", run.stderr))
        .1;
    line.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn check_with_a_warm_stat_cache_reads_a_program_changed_behind_restored_stamps() {
    let root = Root::example();
    commit_with_a_warm_cache(&root);
    assert!(
        cache_entries_loaded(&root, exit::OK) > 0,
        "check reads the stat cache"
    );
    let json = root.run(&["--json", "check"]).ok().json();
    assert_eq!(json["warnings"], serde_json::json!([]), "{json}");

    // Same size, mtime put back: only the ctime says the file changed.
    let run = root.stock().join("web/run");
    let old = std::fs::read(&run).unwrap();
    let mtime = std::fs::metadata(&run).unwrap().modified().unwrap();
    let mut changed = old.clone();
    changed[..2].copy_from_slice(b"# ");
    std::fs::write(&run, &changed).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&run)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&run).unwrap().modified().unwrap(), mtime);

    let json = root.run(&["--json", "check"]).ok().json();
    let warnings = json["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{json}");
    let warning = warnings[0].as_str().unwrap();
    assert!(
        warning.contains("web/run") && warning.contains("exec format error"),
        "{warning}"
    );
    // The scan saw the change too: the stat cache's ctime guard.
    let plan = root.run(&["--json", "plan"]).ok().json();
    assert_eq!(plan["counts"]["restart"], 1, "{plan}");
}

/// Stdout, stderr and exit code of `check`, and of `check --json`.
fn check_outputs(root: &Root) -> Vec<(String, String, i32)> {
    [&["check"][..], &["--json", "check"]]
        .iter()
        .map(|args| {
            let out = root.command(args).output().unwrap();
            (
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
                out.status.code().unwrap(),
            )
        })
        .collect()
}

/// Every file below `dir`, with its bytes.
fn files_below(dir: &Path) -> Vec<(String, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().display().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn check_reports_the_same_problems_with_and_without_the_stat_cache_and_writes_nothing() {
    let root = Root::example();
    commit_with_a_warm_cache(&root);
    // A warning (a CRLF script) and a file the cache has never seen.
    root.write_stock("db/finish", "#!/bin/sh\r\nexit 0\r\n", 0o755);
    root.write_stock("web/env/NEW", "new\n", 0o644);
    assert!(cache_entries_loaded(&root, exit::OK) > 0);
    let state = files_below(&root.state());
    let warm = check_outputs(&root);
    assert_eq!(warm[0].2, i32::from(exit::OK), "{warm:?}");
    assert!(
        warm[0]
            .0
            .contains("db/finish: the #! line ends in a carriage return"),
        "{warm:?}"
    );
    // Problems: a service without `run`.
    root.add_service("broken", "x");
    std::fs::remove_file(root.stock().join("broken/run")).unwrap();
    let warm_problems = check_outputs(&root);
    assert_eq!(
        warm_problems[0].2,
        i32::from(exit::DATA_ERR),
        "{warm_problems:?}"
    );
    assert!(warm_problems[0].1.contains("broken"), "{warm_problems:?}");
    assert_eq!(
        files_below(&root.state()),
        state,
        "check wrote to the state"
    );

    std::fs::remove_file(root.state().join("cache/stat-cache.bin")).unwrap();
    assert_eq!(cache_entries_loaded(&root, exit::DATA_ERR), 0);
    assert_eq!(check_outputs(&root), warm_problems, "without the cache");
    std::fs::remove_dir_all(root.stock().join("broken")).unwrap();
    assert_eq!(check_outputs(&root), warm, "without the cache");
}
