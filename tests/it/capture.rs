//! A first commit reads each stock byte once
//! (docs/performance.md#reading-each-byte-once): new services are copied
//! while the scan hashes them, and staging takes those copies. Proven with
//! strace on a real file system: every stock file is opened once.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::harness::*;
use crate::invariant::*;

/// Every kind of entry: a sparse file, a file over 1 MiB (copied extent by
/// extent), an empty one, exec bits, a kept symlink, a link resolved to a
/// file of the stock, directories deeper than a chain holds open.
fn every_kind(root: &Root) {
    root.add_service("web", "web");
    root.write_stock("web/finish", "#!/bin/sh\nexit 0\n", 0o700);
    root.write_stock("web/env/EMPTY", "", 0o644);
    root.write_stock("web/a/b/c/d/e/f/deep", "deep\n", 0o600);
    let big: Vec<u8> = (0..(3u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.stock().join("web/big.bin"), &big).unwrap();
    let sparse = std::fs::File::create(root.stock().join("web/sparse.img")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"middle", 32 << 20).unwrap();
    drop(sparse);
    std::os::unix::fs::symlink("/etc/passwd", root.stock().join("web/passwd")).unwrap();
    std::os::unix::fs::symlink("../web/run", root.stock().join("web/log-run")).unwrap();
}

/// `n` plain services `svcNNN` of 7 files and 3 directories each.
fn plain_services(root: &Root, n: usize) {
    for i in 0..n {
        let s = format!("svc{i:03}");
        root.add_service(&s, &s);
        root.write_stock(&format!("{s}/log/run"), "#!/bin/sh\nexec cat\n", 0o755);
        for (name, body) in [("NAME", s.as_str()), ("PORT", "80"), ("OPTS", "-v")] {
            root.write_stock(&format!("{s}/env/{name}"), body, 0o644);
        }
        root.write_stock(&format!("{s}/finish"), "#!/bin/sh\n", 0o755);
        root.write_stock(&format!("{s}/notification-fd"), "3\n", 0o644);
    }
}

/// Runs `commit -v` under strace; returns, for every regular file of the
/// stock, how often the commit opened it, and the run's stderr.
fn opens_of_a_commit(root: &Root) -> (BTreeMap<PathBuf, usize>, String) {
    let log = root.path().join("strace.log");
    let run = root
        .run_under(
            std::process::Command::new("strace")
                .args(["-f", "-y", "-e", "trace=open,openat,openat2", "-o"])
                .arg(&log),
            &["-v", "commit"],
        )
        .ok();
    // Stock paths as the kernel names them (a temp dir may be a link).
    let stock = std::fs::canonicalize(root.stock()).unwrap();
    let mut opens: BTreeMap<PathBuf, usize> = walkdir::WalkDir::new(&stock)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), 0))
        .collect();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        // `… = 5</path/of/the/opened/file>`
        let Some((_, fd)) = line.rsplit_once(" = ") else {
            continue;
        };
        let Some(path) = fd.split_once('<').and_then(|(_, p)| p.strip_suffix('>')) else {
            continue;
        };
        if let Some(count) = opens.get_mut(Path::new(path)) {
            *count += 1;
        }
    }
    (opens, run.stderr)
}

/// Every regular file of `service` in `live` has the stock's bytes, mode
/// and, for the sparse one, its holes.
fn assert_live_is_the_stock(root: &Root, service: &str) {
    let stock = root.stock().join(service);
    let live = std::fs::canonicalize(root.live().join(service)).unwrap();
    for entry in walkdir::WalkDir::new(&stock) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&stock).unwrap();
        let copy = live.join(rel);
        let (want, got) = (
            std::fs::metadata(entry.path()).unwrap(),
            std::fs::symlink_metadata(&copy).unwrap(),
        );
        if got.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(entry.path()).unwrap(),
                std::fs::read_link(&copy).unwrap()
            );
            continue;
        }
        assert_eq!(
            want.permissions().mode() & 0o7777,
            got.permissions().mode() & 0o7777,
            "{}",
            rel.display()
        );
        if want.is_file() {
            assert!(
                std::fs::read(entry.path()).unwrap() == std::fs::read(&copy).unwrap(),
                "{}: bytes differ",
                rel.display()
            );
        }
    }
    let sparse = std::fs::metadata(live.join("sparse.img")).unwrap();
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "the sparse file lost its holes: {} blocks",
        sparse.blocks()
    );
}

#[test]
fn a_first_commit_opens_each_stock_file_once_and_its_objects_verify() {
    if !require_tool("strace", "strace") {
        return;
    }
    // A few entries (fsync per file) and more than 400 (one syncfs).
    for services in [0, 60] {
        let root = Root::empty();
        every_kind(&root);
        plain_services(&root, services);
        let (opens, stderr) = opens_of_a_commit(&root);
        // `web/run` is read for itself and for `log-run`, the link to it.
        let run = std::fs::canonicalize(root.stock().join("web/run")).unwrap();
        let twice: Vec<_> = opens
            .iter()
            .filter(|(path, n)| **n != if **path == run { 2 } else { 1 })
            .collect();
        assert!(
            twice.is_empty(),
            "{services} services: stock files not opened exactly once: {twice:?}\n{stderr}"
        );
        let copied = format!(
            "{} new services ({} files) copied while reading",
            services + 1,
            7 * services + 7
        );
        assert!(stderr.contains(&copied), "{copied}:\n{stderr}");
        assert!(
            stderr.contains(&format!("{} of them copied while reading", services + 1)),
            "{stderr}"
        );
        root.run(&["verify"]).ok();
        assert_consistent(&root);
        // Not `stock_contents`: the link `log-run` is stored as a file.
        assert_live_is_the_stock(&root, "web");
        let leftovers = staging_names(&root, ".tmp-");
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// A service the store already holds an object of (here: one changed
/// since the last commit) is hashed by the scan and copied by staging,
/// as before: only services new to the store are captured.
#[test]
fn services_the_store_already_holds_are_not_captured() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2\n", 0o644);
    root.add_service("added", "added");
    let run = root.run(&["-v", "commit"]).ok();
    assert!(
        run.stderr
            .contains("1 new services (1 files) copied while reading"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("staging 2 new store objects")
            && run.stderr.contains("1 of them copied while reading"),
        "{}",
        run.stderr
    );
    root.run(&["verify"]).ok();
    assert_eq!(live_contents(&root), stock_contents(&root));
}

/// A file rewritten or touched after the scan copied it: the re-check of
/// the fingerprints before publishing refuses the copy (exit 75), nothing
/// is published and no copy is left; the retry publishes what is there.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_file_changed_after_it_was_captured_is_refused_and_the_retry_publishes_it() {
    type Race = fn(&Root);
    let races: [(&str, Race); 2] = [
        ("rewritten", |root: &Root| {
            root.write_stock("web/run", "#!/bin/sh\n# half-unpacked\n", 0o755)
        }),
        ("touched", |root: &Root| {
            let file = std::fs::File::options()
                .write(true)
                .open(root.stock().join("web/run"))
                .unwrap();
            let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
            file.set_modified(later).unwrap();
        }),
    ];
    for (what, race) in races {
        let root = Root::example();
        let run = crate::stock_busy::commit_racing(&root, race).code(exit::TEMP_FAIL);
        assert!(
            run.stderr.contains("stock tree changed while reading"),
            "{what}:\n{}",
            run.stderr
        );
        assert_eq!(root.live_generation(), None, "{what}");
        let store: Vec<_> = std::fs::read_dir(root.state().join(layout::STORE))
            .unwrap()
            .collect();
        assert!(store.is_empty(), "{what}: published {store:?}");
        let leftovers = staging_names(&root, ".tmp-capture:");
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
        root.commit().ok();
        root.run(&["verify"]).ok();
        assert_eq!(live_contents(&root), stock_contents(&root), "{what}");
    }
}

/// Killed while capturing, or just after staging took a copy: only
/// `.tmp-*` names are left, which `recover` (or the next commit) removes;
/// nothing was live and the next commit makes the stock live.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_first_commit_killed_while_capturing_leaves_only_what_recovery_sweeps() {
    for point in ["stock.after-capture", "commit.after-take-capture"] {
        for next in ["recover", "commit"] {
            let root = Root::example();
            assert!(
                crate::slow::crash::run_at(&root, &["commit"], point),
                "not killed at {point}"
            );
            let left = staging_names(&root, ".tmp-");
            assert!(!left.is_empty(), "{point}: the kill left no copy to sweep");
            assert_eq!(root.live_generation(), None, "{point}");
            root.run(&[next]).ok();
            if next == "recover" {
                let swept = left.iter().filter(|n| root.state().join(n).exists());
                assert_eq!(swept.count(), 0, "{point}: not swept: {left:?}");
            }
            root.commit().ok();
            assert_consistent(&root);
            assert_eq!(live_contents(&root), stock_contents(&root), "{point}");
        }
    }
}

/// A first commit over `limits: max_stage_bytes` stops copying at the
/// limit, is refused naming the key (exit 65), and leaves no copy.
#[test]
fn a_first_commit_over_the_staged_bytes_limit_leaves_no_copy() {
    let root = Root::example();
    let big = root.stock().join("web/env/big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    root.config("limits: {max_stage_bytes: 209715200}\n");
    let (kind, run) = root.error_kind(&["commit"]);
    assert_eq!(run.code, i32::from(exit::DATA_ERR), "{}", run.stderr);
    assert_eq!(kind, "stock");
    assert!(run.stderr.contains("max_stage_bytes"), "{}", run.stderr);
    let leftovers = staging_names(&root, ".tmp-");
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(root.live_generation(), None);
}

/// The peak RSS (KiB, GNU time's `%M`) of a first commit of `n` plain
/// services.
fn first_commit_peak_kib(n: usize) -> u64 {
    let root = Root::empty();
    plain_services(&root, n);
    let report = root.path().join("time.out");
    root.run_under(
        std::process::Command::new("/usr/bin/time")
            .args(["-f", "%M", "-o"])
            .arg(&report),
        &["-q", "commit"],
    )
    .ok();
    let text = std::fs::read_to_string(&report).unwrap();
    text.trim().parse().unwrap_or_else(|_| panic!("{text:?}"))
}

/// What a first commit holds per new service until staging copies it
/// stays small (docs/performance.md#first-commit-memory-at-100000-services):
/// the peak grows by less than 4 KiB per service. Two sizes, so that what
/// every run holds whatever its size (the binary, thread stacks) cancels
/// out. It grew by ≈ 5.5 KiB per service when every new service kept its
/// entries unpacked and the stat cache was copied to be saved (545 MiB at
/// 100,000 services); ≈ 2.4 KiB since.
#[test]
fn a_first_commit_holds_little_per_new_service() {
    if !require_tool("/usr/bin/time", "time") {
        return;
    }
    let (small, large) = (500, 2_500);
    let grown = first_commit_peak_kib(large).saturating_sub(first_commit_peak_kib(small));
    let per_service = grown as f64 / (large - small) as f64;
    assert!(
        per_service < 4.0,
        "{per_service:.2} KiB per service ({grown} KiB more for {} more services)",
        large - small
    );
}
