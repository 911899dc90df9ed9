//! Garbage collection (docs/design.md#gc): what gc must never remove —
//! the live generation, the `--keep N` newest, the generations an
//! interrupted transaction names, objects a running process uses — and
//! that it does remove the rest. Crash safety of gc is in the crash matrix.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use crate::harness::*;
use crate::invariant::*;

/// A root with generations 1..=n, each changing `web/run`.
fn root_with_generations(n: u64) -> Root {
    let root = Root::example();
    for i in 1..=n {
        root.write_stock(
            "web/run",
            &format!("#!/bin/sh\n# version {i}\nexec sleep 1000\n"),
            0o755,
        );
        root.commit().ok();
    }
    assert_eq!(root.live_generation(), Some(n));
    root
}

fn objects_of(root: &Root, n: u64) -> BTreeSet<String> {
    generation_services(root, n).into_values().collect()
}

fn store_objects(root: &Root) -> BTreeSet<String> {
    std::fs::read_dir(root.state().join(layout::STORE))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".manifest.yaml"))
        .collect()
}

/// Asserts no object manifest is left without its object.
pub fn assert_no_orphan_manifests(root: &Root) {
    let store = root.state().join(layout::STORE);
    for e in std::fs::read_dir(&store).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if let Some(object) = name.strip_suffix(".manifest.yaml") {
            assert!(store.join(object).is_dir(), "orphan manifest {name}");
        }
    }
}

#[test]
fn gc_keeps_the_n_newest_and_removes_the_rest_with_their_objects() {
    let root = root_with_generations(5);
    let old: BTreeSet<String> = (1..=2).flat_map(|n| objects_of(&root, n)).collect();
    let kept: BTreeSet<String> = (3..=5).flat_map(|n| objects_of(&root, n)).collect();
    let only_old: BTreeSet<String> = old.difference(&kept).cloned().collect();
    assert_eq!(only_old.len(), 2, "web of generations 1 and 2");

    let json = root.run(&["--json", "gc", "--keep", "3"]).ok().json();
    assert_eq!(generations(&root), vec![3, 4, 5]);
    assert_eq!(json["removed_generations"], serde_json::json!([1, 2]));
    let store = store_objects(&root);
    assert_eq!(
        store, kept,
        "exactly the objects of kept generations remain"
    );
    assert_no_orphan_manifests(&root);
    assert_eq!(assert_consistent(&root), Some(5));
}

#[test]
fn gc_never_removes_the_live_generation_even_when_it_is_old() {
    let root = root_with_generations(4);
    root.run(&["rollback", "1"]).ok();
    root.run(&["gc", "--keep", "1"]).ok();
    assert_eq!(generations(&root), vec![1, 4]);
    assert_eq!(assert_consistent(&root), Some(1));
    assert!(store_objects(&root).is_superset(&objects_of(&root, 1)));
    // --keep 0 still keeps live (and is taken as 1).
    root.run(&["gc", "--keep", "0"]).ok();
    assert_eq!(assert_consistent(&root), Some(1));
    assert!(generations(&root).contains(&1));
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn gc_keeps_the_generations_an_interrupted_transaction_names() {
    let root = root_with_generations(3);
    // A rollback 3 -> 1 dies before the switch: its log names 1 and 3.
    assert!(crate::slow::crash::run_at(
        &root,
        &["rollback", "1"],
        "txn.after-stop"
    ));
    assert!(root.state().join(layout::TXN).exists());
    root.run(&["gc", "--keep", "1"]).ok();
    // Recovery undid the rollback (live 3); 1 is kept as the log named it,
    // 2 is collected.
    assert_eq!(generations(&root), vec![1, 3]);
    assert_eq!(assert_consistent(&root), Some(3));
    // Without the log, the next gc collects 1.
    root.run(&["gc", "--keep", "1"]).ok();
    assert_eq!(generations(&root), vec![3]);
}

#[test]
fn gc_keeps_an_object_a_running_process_uses_until_it_exits() {
    for how in ["cwd", "open file"] {
        let root = root_with_generations(2);
        let web1 = objects_of(&root, 1)
            .into_iter()
            .find(|o| o.starts_with("web-"))
            .unwrap();
        assert!(!objects_of(&root, 2).contains(&web1));
        let dir = root.object_dir(&web1);
        let mut sleep = Command::new("sleep");
        sleep.arg("1000");
        match how {
            "cwd" => {
                sleep.current_dir(&dir);
            }
            _ => {
                sleep.stdin(std::fs::File::open(dir.join("env/VERSION")).unwrap());
            }
        }
        // spawn returns after exec: cwd and fds are in place. The Command
        // keeps its stdin File open in this process; drop it.
        let child = KillOnDrop(sleep.stdout(Stdio::null()).spawn().unwrap());
        drop(sleep);

        let json = root.run(&["--json", "gc", "--keep", "1"]).ok().json();
        assert_eq!(generations(&root), vec![2], "{how}");
        assert_eq!(json["in_use"], serde_json::json!([web1]), "{how}");
        assert!(
            dir.join("run").is_file(),
            "{how}: gc removed an object in use"
        );
        assert!(
            root.state()
                .join(format!("store/{web1}.manifest.yaml"))
                .is_file()
        );

        drop(child);
        root.run(&["gc", "--keep", "1"]).ok();
        assert!(!dir.exists(), "{how}: unused object not collected");
        assert_no_orphan_manifests(&root);
        assert_consistent(&root);
    }
}

#[test]
fn gc_with_a_damaged_rollback_log_removes_nothing() {
    let root = root_with_generations(3);
    std::fs::write(root.state().join(layout::TXN), b"id: x\nchecksum: 00\n").unwrap();
    let before = root.snapshot();
    let objects = store_objects(&root);
    let run = root
        .run(&["--json", "gc", "--keep", "1"])
        .code(exit::DATA_ERR)
        .kind("damaged");
    assert!(run.stderr.contains("damaged"), "{}", run.stderr);
    assert_eq!(
        run.json()["error"]["path"],
        root.state().join(layout::TXN).display().to_string()
    );
    assert_eq!(root.snapshot(), before);
    assert_eq!(store_objects(&root), objects);
}

/// The state directory reached through a symlink (`state:` names a path
/// with a linked component, as when /var/lib is a link to another disk):
/// /proc reports a process's cwd by its real path, so gc must compare
/// identities, not path strings (docs/security.md#gc-and-a-state-path-through-a-symlink).
#[test]
fn gc_keeps_an_object_in_use_when_the_state_path_goes_through_a_symlink() {
    let root = Root::example();
    let real = root.path().join("disk");
    // The state directory itself exists; the link is a component above it.
    std::fs::create_dir_all(real.join("state")).unwrap();
    std::os::unix::fs::symlink(&real, root.path().join("link")).unwrap();
    root.config("state: link/state\n");
    for i in 1..=2 {
        root.write_stock(
            "web/run",
            &format!("#!/bin/sh\n# version {i}\nexec sleep 1000\n"),
            0o755,
        );
        root.commit().ok();
    }
    let store = real.join("state").join(layout::STORE);
    let web1 = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("web-") && !n.ends_with(".manifest.yaml"))
        .find(|n| {
            let g2 = std::fs::read_link(real.join("state/generations/2/web")).unwrap();
            !g2.to_str().unwrap().contains(n.as_str())
        })
        .expect("the object of web's first version");
    let dir = store.join(&web1).join("web");
    // The real path, as a service started from the scan directory has it.
    let child = KillOnDrop(
        Command::new("sleep")
            .arg("1000")
            .current_dir(std::fs::canonicalize(&dir).unwrap())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let json = root.run(&["--json", "gc", "--keep", "1"]).ok().json();
    assert_eq!(json["removed_generations"], serde_json::json!([1]));
    assert_eq!(json["in_use"], serde_json::json!([web1]));
    assert!(dir.join("run").is_file(), "gc removed an object in use");
    drop(child);
    let json = root.run(&["--json", "gc", "--keep", "1"]).ok().json();
    assert_eq!(json["removed_objects"], serde_json::json!([web1]));
    assert!(!dir.exists(), "unused object not collected");
}
