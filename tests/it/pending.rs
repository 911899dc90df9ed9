//! The pending-commit marker: a commit deferred with exit 75
//! records `<state>/pending`; a later successful commit removes it — but
//! only if no new deferral was recorded after it began reading the stock.

use crate::harness::*;

fn pending(root: &Root) -> std::path::PathBuf {
    root.state().join(layout::PENDING)
}

#[test]
fn a_commit_that_cannot_get_the_manager_lock_records_a_pending_commit() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    // Someone holds the manager lock (flock(1) on <state>/.lock, one process).
    let lock = root.state().join(".lock");
    let holder = flock_holder(&lock, "-x");

    let run = root
        .run(&["--json", "--wait", "0", "commit"])
        .code(exit::TEMP_FAIL)
        .kind("manager_lock_held");
    assert!(run.stderr.contains("recorded in"), "{}", run.stderr);
    let marker = std::fs::read_to_string(pending(&root)).unwrap();
    let (when, why) = marker.split_once('\n').unwrap();
    assert!(when.contains(" pid "), "{marker}");
    assert!(!why.is_empty(), "{marker}");
    assert_eq!(root.live_generation(), Some(1));

    drop(holder);
    root.commit().ok();
    assert!(!pending(&root).exists());
    assert_eq!(root.live_generation(), Some(2));
}

#[test]
fn an_up_to_date_commit_also_clears_the_marker() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/run.dpkg-tmp", "x", 0o644);
    root.run(&["commit", "--strict"]).code(exit::TEMP_FAIL);
    assert!(pending(&root).exists());
    std::fs::remove_file(root.stock().join("web/run.dpkg-tmp")).unwrap();
    let run = root.commit().ok();
    assert!(run.stdout.contains("up to date"), "{}", run.stdout);
    assert!(!pending(&root).exists());
}

/// Regression guard for the lost-deferral race: commit A has read the
/// marker and the stock; meanwhile commit B defers (A holds the manager
/// lock) and rewrites the marker. A succeeds but must leave B's marker,
/// since B's change may be one A did not see.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_deferral_recorded_while_a_commit_runs_survives_it() {
    let root = Root::example();
    root.commit().ok();
    // An old deferral, seen by A when it starts.
    root.write_stock("web/run.dpkg-new", "x", 0o644);
    root.run(&["commit", "--strict"]).code(exit::TEMP_FAIL);
    let old = std::fs::read_to_string(pending(&root)).unwrap();
    std::fs::remove_file(root.stock().join("web/run.dpkg-new")).unwrap();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);

    let run = crate::stock_busy::commit_racing(&root, |root| {
        // B: the manager lock is A's, so B defers and records.
        root.run(&["--wait", "0", "commit"]).code(exit::TEMP_FAIL);
    })
    .ok();
    assert!(
        run.stdout.contains("generation 2 is live"),
        "{}",
        run.stdout
    );
    let now = std::fs::read_to_string(pending(&root))
        .expect("B's deferral was lost: A removed a marker written after it began");
    assert_ne!(now, old);

    // Nothing new since: the next commit (up to date) clears it.
    root.commit().ok();
    assert!(!pending(&root).exists());
}
