//! Concurrency: 4 processes × 25 commits racing while the stock
//! changes under them, and 2 readers resolving `live` all the while. No
//! reader ever sees a torn generation; the history lists every effective
//! commit exactly once; generation numbers are unique and contiguous.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::harness::*;
use crate::invariant::*;

const WRITERS: usize = 4;
const COMMITS: usize = 25;

/// Replaces a stock file by rename, so a commit never reads half of it.
fn replace_stock_file(root: &Root, rel: &str, content: &str, tag: &str) {
    let tmp = root.path().join(format!("incoming-{tag}"));
    std::fs::write(&tmp, content).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    #[allow(clippy::disallowed_methods)] // the stock, not the state
    std::fs::rename(&tmp, root.stock().join(rel)).unwrap();
}

/// Resolves `live` as a supervisor would: the generation, its manifest,
/// and every service through its link. Panics on a torn view.
fn read_live(root: &Root) {
    let target = std::fs::read_link(root.live()).expect("live always exists");
    let dir = root.state().join(&target);
    let manifest = std::fs::read(dir.join(".manifest.yaml"))
        .unwrap_or_else(|e| panic!("{}: manifest unreadable: {e}", target.display()));
    let m: serde_yaml::Value = serde_yaml::from_slice(&manifest).unwrap();
    let services = m["services"].as_mapping().unwrap();
    assert!(!services.is_empty());
    for (name, _) in services {
        let name = name.as_str().unwrap();
        if dir.join(name).join("run").is_file() {
            continue;
        }
        // Two commits since `live` was read: the generation read is now
        // neither live nor the one before, and the second commit took its
        // directory and left its dormant twin there
        // (docs/design.md#dormant-generations). A stale view, not a torn one.
        let now = std::fs::read_link(root.live()).expect("live always exists");
        assert!(
            now != target && dir.join(layout::DORMANT).exists(),
            "{}/{name} does not resolve (live is now {})",
            target.display(),
            now.display()
        );
        return;
    }
}

#[test]
fn racing_commits_and_readers_lose_and_duplicate_nothing() {
    let root = Root::example();
    for i in 0..WRITERS {
        root.add_service(&format!("p{i}"), "round -");
    }
    root.commit().ok();

    let stop = AtomicBool::new(false);
    let reads = AtomicUsize::new(0);
    let effective: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    read_live(&root);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|i| {
                let (root, effective) = (&root, &effective);
                scope.spawn(move || {
                    for round in 0..COMMITS {
                        replace_stock_file(
                            root,
                            &format!("p{i}/run"),
                            &format!("#!/bin/sh\n# p{i} round {round}\nexec sleep 1000\n"),
                            &format!("p{i}"),
                        );
                        // 75: another writer's rename hit the stock while this
                        // commit read it; retrying is what a package hook does.
                        let mut tries = 0;
                        let run = loop {
                            let run = root.run(&["--wait", "120", "commit"]);
                            tries += 1;
                            if !run.exited(exit::TEMP_FAIL) || tries == 50 {
                                break run;
                            }
                        };
                        let run = run.ok();
                        let first = run.stdout.lines().next().unwrap().to_string();
                        if let Some(rest) = first.strip_prefix("generation ") {
                            let n: u64 = rest.split(' ').next().unwrap().parse().unwrap();
                            effective.lock().unwrap().push(n);
                        } else {
                            assert!(first.starts_with("up to date"), "{first}");
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
    });
    let reads = reads.into_inner();
    assert!(reads > 10, "the readers hardly ran ({reads} reads)");

    let mut effective = effective.into_inner().unwrap();
    effective.sort_unstable();
    let unique: BTreeSet<u64> = effective.iter().copied().collect();
    assert_eq!(
        unique.len(),
        effective.len(),
        "a generation number was given twice: {effective:?}"
    );
    // The history: one line per transaction, a contiguous chain 1, 2, … .
    let history = std::fs::read_to_string(root.state().join(layout::HISTORY)).unwrap();
    let mut prev: Option<u64> = None;
    let mut tos = Vec::new();
    for line in history.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(
            (f[2], f[4], f.last().copied()),
            ("commit", "->", Some("done")),
            "{line}"
        );
        let from = f[3].parse::<u64>().ok();
        let to: u64 = f[5].parse().unwrap();
        assert_eq!(from, prev, "history chain broken at {line}");
        prev = Some(to);
        tos.push(to);
    }
    let expected: Vec<u64> = (1..=tos.len() as u64).collect();
    assert_eq!(tos, expected, "generation numbers in the history");
    assert_eq!(tos[1..], effective[..], "history vs effective commits");
    assert_eq!(generations(&root), expected, "generations on disk");
    // The last write of every writer is live.
    assert_eq!(assert_consistent(&root), tos.last().copied());
    assert_eq!(live_contents(&root), stock_contents(&root));
    for i in 0..WRITERS {
        let run = std::fs::read_to_string(root.scandir().join(format!("p{i}/run"))).unwrap();
        assert!(run.contains(&format!("round {}", COMMITS - 1)), "{run}");
    }
    println!(
        "concurrency: {} effective commits of {}, {reads} reads",
        effective.len(),
        WRITERS * COMMITS
    );
}
