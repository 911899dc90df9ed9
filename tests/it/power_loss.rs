//! What a power cut may lose after a transaction is over, and how the tool
//! gets it back (docs/durability.md#the-switch-and-symlinks): a new symlink
//! — `live`, or a changed service's link in the generation — that the file
//! system wrote late. The loss is simulated by deleting (or bending) the
//! link on a real file system; the barrier itself is observed with strace.

use std::process::Command;

use crate::harness::*;
use crate::invariant::*;
use crate::slow::crash::{LoopFs, change_stock};

/// A root with generation 2 live (web changed, one service added, cron
/// removed) and no transaction in flight.
fn root_at_generation_2() -> Root {
    let root = Root::example();
    root.commit().ok();
    change_stock(&root, "a");
    root.commit().ok();
    assert_eq!(root.live_generation(), Some(2));
    assert!(!root.state().join(layout::TXN).exists());
    root
}

#[test]
fn a_lost_live_link_is_made_again_by_recover_from_the_history() {
    let root = root_at_generation_2();
    let want = live_contents(&root);
    std::fs::remove_file(root.live()).unwrap();
    // Before the fix: "nothing to recover", and live stayed missing.
    let run = root.run(&["recover"]).ok();
    assert!(
        run.stdout.contains("generation 2"),
        "recover must say what it did:\n{}",
        run.stdout
    );
    assert!(run.stderr.contains("missing"), "{}", run.stderr);
    assert_eq!(root.live_generation(), Some(2));
    assert_eq!(live_contents(&root), want);
    assert_consistent(&root);
    let json = root.run(&["--json", "recover"]).ok().json();
    assert!(json.get("relinked_live").is_none(), "only once: {json}");
}

#[test]
fn sync_makes_a_lost_live_link_again_and_rebuilds_the_scan_directory() {
    let root = root_at_generation_2();
    let want = live_contents(&root);
    std::fs::remove_file(root.live()).unwrap();
    // Before the fix: exit 65, "no live generation".
    root.run(&["sync"]).ok();
    assert_eq!(root.live_generation(), Some(2));
    assert_eq!(live_contents(&root), want);
    assert_consistent(&root);
}

#[test]
fn a_dangling_live_link_is_pointed_at_the_generation_the_history_records() {
    let root = root_at_generation_2();
    // A rollback is recorded as done too: its `to` is what must be live.
    root.run(&["rollback"]).ok();
    assert_eq!(root.live_generation(), Some(1));
    let want = live_contents(&root);
    std::fs::remove_file(root.live()).unwrap();
    std::os::unix::fs::symlink("generations/9", root.live()).unwrap();
    // Before the fix: `verify` and `rollback` exit 65 until a commit.
    let json = root.run(&["--json", "recover"]).ok().json();
    assert_eq!(json["relinked_live"], 1, "{json}");
    assert_eq!(root.live_generation(), Some(1));
    assert_eq!(live_contents(&root), want);
    root.run(&["verify"]).ok();
}

#[test]
fn a_lost_live_link_whose_generation_is_gone_takes_the_newest_complete_one() {
    let root = root_at_generation_2();
    std::fs::remove_file(root.live()).unwrap();
    std::fs::remove_file(root.state().join("generations/2/.manifest.yaml")).unwrap();
    let run = root.run(&["recover"]).ok();
    assert!(run.stderr.contains("newest complete"), "{}", run.stderr);
    assert_eq!(root.live_generation(), Some(1));
}

#[test]
fn an_undone_first_commit_leaves_no_live_link_to_make() {
    let root = Root::example();
    let log = root.state().join(layout::HISTORY);
    std::fs::create_dir_all(root.state()).unwrap();
    std::fs::write(
        &log,
        "2026-01-01T00:00:00Z t1 commit - -> 1 start=3 restart=0 stop=0 undone\n",
    )
    .unwrap();
    root.run(&["init"]).ok();
    let run = root.run(&["recover"]).ok();
    assert!(run.stdout.contains("nothing to recover"), "{}", run.stdout);
    assert!(!root.live().exists() && root.live().symlink_metadata().is_err());
}

/// Removes generation 2's link of `web` (changed by the commit, so a new
/// symlink, not a hard link to generation 1's).
fn lose_the_changed_link(root: &Root) -> std::path::PathBuf {
    let link = root.state().join("generations/2/web");
    let target = std::fs::read_link(&link).unwrap();
    assert_ne!(
        std::fs::read_link(root.state().join("generations/1/web")).unwrap(),
        target,
        "web must be a changed service"
    );
    std::fs::remove_file(&link).unwrap();
    target
}

#[test]
fn a_no_op_commit_makes_a_lost_link_of_the_live_generation_again() {
    let root = root_at_generation_2();
    let want = live_contents(&root);
    let target = lose_the_changed_link(&root);
    root.run(&["verify"]).code(exit::DATA_ERR);
    // Before the fix: "up to date", and web stayed down.
    let run = root.commit().ok();
    assert!(run.stderr.contains("web"), "{}", run.stderr);
    assert_eq!(
        std::fs::read_link(root.state().join("generations/2/web")).unwrap(),
        target
    );
    assert_eq!(root.live_generation(), Some(2), "no new generation");
    assert_eq!(live_contents(&root), want);
    assert_consistent(&root);
}

#[test]
fn sync_makes_a_lost_or_bent_link_of_the_live_generation_again() {
    let root = root_at_generation_2();
    let target = lose_the_changed_link(&root);
    // A link that exists but names the wrong thing is lost too.
    let db = root.state().join("generations/2/db");
    std::fs::remove_file(&db).unwrap();
    std::os::unix::fs::symlink("../../store/gone", &db).unwrap();
    // Before the fix: "already in sync".
    root.run(&["sync"]).ok();
    assert_eq!(
        std::fs::read_link(root.state().join("generations/2/web")).unwrap(),
        target
    );
    root.run(&["verify"]).ok();
    assert_consistent(&root);
}

/// The system calls of `args` that matter to the order of the barrier.
fn barrier_trace(root: &Root, args: &[&str]) -> Vec<String> {
    traced(root, &["-e", "trace=syncfs,unlink,unlinkat"], args, |l| {
        l.contains("syncfs(") || l.contains(layout::TXN)
    })
}

/// The lines of `strace -f -qq <options>` of `args` in `root` that `keep`
/// takes.
fn traced(root: &Root, options: &[&str], args: &[&str], keep: fn(&str) -> bool) -> Vec<String> {
    let trace = root.path().join("strace.out");
    root.run_under(
        Command::new("strace")
            .args(["-f", "-qq"])
            .args(options)
            .arg("-o")
            .arg(&trace),
        args,
    )
    .ok();
    std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| keep(l))
        .map(str::to_string)
        .collect()
}

/// A root with generation 1 live and the stock changed, on a new ext4
/// made with `mkfs_args`.
fn root_on_ext4(mkfs_args: &[&str]) -> (LoopFs, Root) {
    let fs = LoopFs::make("ext4", mkfs_args, "ext2/ext3");
    let root = Root::example_in(&fs.path());
    root.commit().ok();
    change_stock(&root, "a");
    (fs, root)
}

#[test]
fn the_switch_is_made_durable_by_syncfs_before_its_log_is_removed_on_ext4_without_a_journal() {
    if !require_tool("strace", "strace") || !require_tool("mkfs.ext4", "e2fsprogs") {
        return;
    }
    let (_fs, root) = root_on_ext4(&["-q", "-F", "-O", "^has_journal"]);
    // A small commit (per-file fsync): before the fix, no syncfs at all.
    let calls = barrier_trace(&root, &["commit"]);
    let removal = calls
        .iter()
        .position(|l| l.contains(layout::TXN) && !l.contains(".tmp-"))
        .unwrap_or_else(|| panic!("the log is never removed: {calls:#?}"));
    assert!(
        calls[..removal].iter().any(|l| l.contains("syncfs(")),
        "no syncfs before the log is removed: {calls:#?}"
    );
    // And one before the generation is published, and one before the new
    // objects are: where the links need a syncfs, the copies take one too
    // rather than an fsync each (docs/durability.md#per-file-fsync-or-one-syncfs).
    let syncfs = calls.iter().filter(|l| l.contains("syncfs(")).count();
    assert_eq!(syncfs, 3, "{calls:#?}");
}

#[test]
fn a_journaled_ext4_keeps_new_symlinks_by_directory_fsync_and_needs_no_syncfs() {
    if !require_tool("strace", "strace") || !require_tool("mkfs.ext4", "e2fsprogs") {
        return;
    }
    let (_fs, root) = root_on_ext4(&["-q", "-F"]);
    let calls = barrier_trace(&root, &["commit"]);
    assert!(
        !calls.iter().any(|l| l.contains("syncfs(")),
        "a small commit on a journaled ext4 syncs the whole file system: {calls:#?}"
    );
    assert_consistent(&root);
}

/// The `fsync`s of a commit in `root`, each with the path of its descriptor.
fn fsyncs_of_a_commit(root: &Root) -> Vec<String> {
    traced(root, &["-y", "-e", "trace=fsync"], &["commit"], |l| {
        l.contains("fsync(")
    })
}

#[test]
fn new_copies_are_synced_file_by_file_only_where_no_syncfs_comes_anyway() {
    if !require_tool("strace", "strace") || !require_tool("mkfs.ext4", "e2fsprogs") {
        return;
    }
    // `web` and `extra-a` are new objects: a few files, below the syncfs
    // threshold, so a journaled ext4 fsyncs each file of their copies.
    let staged_file = |l: &String| l.contains("/.tmp-web-") && l.contains("/web/run>");
    let (_fs, root) = root_on_ext4(&["-q", "-F"]);
    let calls = fsyncs_of_a_commit(&root);
    assert!(
        calls.iter().any(staged_file),
        "a journaled ext4 keeps no copy by fsync: {calls:#?}"
    );
    // Without a journal the generation's links need a syncfs: the copies
    // are kept by one before them, not by an fsync each.
    let (_fs, root) = root_on_ext4(&["-q", "-F", "-O", "^has_journal"]);
    let calls = fsyncs_of_a_commit(&root);
    assert!(
        !calls.iter().any(staged_file),
        "copies fsynced one by one though a syncfs keeps them: {calls:#?}"
    );
    assert_consistent(&root);
}
