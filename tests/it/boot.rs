//! Boot: `svcdir-update sync` as the step before the scanner
//! starts. At boot /run is a fresh tmpfs: the scan directory and the
//! update-lock files are gone, the state directory is intact.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::harness::*;

const SERVICES: [&str; 3] = ["cron", "db", "web"];

#[test]
fn sync_after_a_reboot_recreates_every_link_and_lock_file_then_reports_no_change() {
    let root = Root::example();
    root.commit().ok();
    let objects: Vec<_> = SERVICES
        .iter()
        .map(|s| root.inode(&root.scandir().join(s)))
        .collect();
    let history = history_lines(&root);
    // The reboot: /run is empty again.
    std::fs::remove_dir_all(root.scandir()).unwrap();
    std::fs::remove_dir_all(root.runtime()).unwrap();

    let run = root.run(&["--json", "sync"]).ok();
    let json = run.json();
    assert_eq!(json["added"], serde_json::json!(SERVICES), "{json}");
    assert_eq!(json["removed"], serde_json::json!([]), "{json}");
    for (s, inode) in SERVICES.iter().zip(&objects) {
        let link = root.scandir().join(s);
        assert_eq!(std::fs::read_link(&link).unwrap(), root.live().join(s));
        // The very same store objects as before the reboot.
        assert_eq!(root.inode(&link), *inode, "{s}");
        let lock = root.runtime().join("locks").join(format!("{s}.lock"));
        let md = std::fs::metadata(&lock).unwrap_or_else(|e| panic!("{}: {e}", lock.display()));
        assert!(md.is_file());
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.len()),
            (0o644, 0, 0),
            "{s}"
        );
    }
    assert_eq!(history_lines(&root), history, "sync is not a commit");

    // Idempotent: the second run changes nothing and says so.
    let before = root.snapshot();
    let run = root.run(&["sync"]).ok();
    assert!(
        run.stdout.contains("already in sync with generation 1"),
        "{}",
        run.stdout
    );
    assert_eq!(root.snapshot(), before);
    let json = root.run(&["--json", "sync"]).ok().json();
    assert_eq!(json["added"], serde_json::json!([]));
    assert_eq!(json["removed"], serde_json::json!([]));
}

#[test]
fn sync_removes_links_of_services_no_longer_live() {
    let root = Root::example();
    root.commit().ok();
    // A stale link the tool made (it points into live) for a service that
    // is not live any more, e.g. left by a crash before a scan-dir sync.
    std::os::unix::fs::symlink(root.live().join("gone"), root.scandir().join("gone")).unwrap();
    let run = root.run(&["sync"]).ok();
    assert!(run.stdout.contains("1 removed"), "{}", run.stdout);
    assert!(std::fs::symlink_metadata(root.scandir().join("gone")).is_err());
    for s in SERVICES {
        assert!(root.scandir().join(s).join("run").is_file());
    }
}

#[test]
fn sync_without_any_generation_says_to_commit_first() {
    let root = Root::example();
    let run = root
        .run(&["--json", "sync"])
        .code(exit::DATA_ERR)
        .kind("no_generations");
    assert_eq!(
        run.json()["error"]["path"],
        root.state().display().to_string()
    );
    assert!(
        run.stderr.contains("svcdir-update commit"),
        "{}",
        run.stderr
    );
}

#[test]
fn boot_snippets_are_valid_shell_and_call_sync() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/integration/boot");
    for name in ["s6-linux-init-rc.init", "runit-1"] {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("svcdir-update sync"), "{name}");
        let status = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "sh -n {name}");
    }
}
