//! A stock tree still being written: a package manager mid-unpack
//! while an operator commits by hand. The commit defers with exit 75,
//! publishes nothing, leaves `live` running the last good generation, and
//! records a pending commit.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::*;

/// Store entries and generation numbers (what "nothing published" means).
fn published(root: &Root) -> (BTreeSet<String>, BTreeSet<String>) {
    let list = |dir: std::path::PathBuf| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    (
        list(root.state().join(layout::STORE)),
        list(root.state().join(layout::GENERATIONS)),
    )
}

#[test]
fn dpkg_in_flight_files_defer_naming_the_file_and_suggesting_dpkg_configure() {
    for rel in ["web/run.dpkg-new", "web/log/run.dpkg-tmp"] {
        let root = Root::example();
        root.commit().ok();
        let before = root.snapshot();
        let stored = published(&root);
        root.write_stock(rel, "#!/bin/sh\n", 0o755);
        for cmd in [
            &["check"][..],
            &["plan", "--strict"],
            &["commit", "--strict"],
        ] {
            let run = root
                .run(&[&["--json"][..], cmd].concat())
                .code(exit::TEMP_FAIL)
                .kind("stock_busy");
            let named = root.stock().join(rel).display().to_string();
            assert!(
                run.stderr.contains(&named),
                "{cmd:?} {rel}:\n{}",
                run.stderr
            );
            assert!(
                run.stderr.contains("dpkg --configure -a"),
                "{cmd:?} {rel}:\n{}",
                run.stderr
            );
        }
        assert_eq!(
            root.snapshot(),
            before,
            "{rel}: a deferred commit changed state"
        );
        assert_eq!(published(&root), stored, "{rel}: something was published");
        assert_eq!(root.live_generation(), Some(1));
        assert!(
            root.state().join(layout::PENDING).is_file(),
            "{rel}: no pending marker"
        );
        // Once dpkg is done (the file is renamed into place), commit works
        // and clears the marker.
        std::fs::remove_file(root.stock().join(rel)).unwrap();
        root.commit().ok();
        assert!(!root.state().join(layout::PENDING).exists());
    }
}

/// Runs a commit that stops itself (SIGSTOP) right after reading the
/// stock, lets `race` write to the stock, resumes it, and returns its run.
pub(crate) fn commit_racing(root: &Root, race: impl FnOnce(&Root)) -> Run {
    let out = root.path().join("racing.out");
    let err = root.path().join("racing.err");
    let mut cmd = root.command(&["commit"]);
    cmd.failpoint("commit.after-scan=stop")
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let pid = child.0.id();
    wait_until(
        "the commit to stop after reading the stock",
        Duration::from_secs(20),
        || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
                .unwrap_or(false)
        },
    );
    race(root);
    let cont = std::process::Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(cont.success());
    let status = child.0.wait().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: std::fs::read_to_string(err).unwrap(),
    }
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn stock_changed_while_staging_defers_and_publishes_nothing() {
    // Content rewritten (the copy's hash no longer matches), and only
    // touched (same bytes: the fingerprint re-check after copying sees it).
    type Race = fn(&Root);
    let races: [(&str, Race); 2] = [
        ("rewritten", |root: &Root| {
            root.write_stock("web/run", "#!/bin/sh\n# half-unpacked\n", 0o755)
        }),
        ("touched", |root: &Root| {
            let path = root.stock().join("web/run");
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            let later = std::time::SystemTime::now() + Duration::from_secs(5);
            file.set_modified(later).unwrap();
        }),
    ];
    for (what, race) in races {
        let root = Root::example();
        root.commit().ok();
        root.write_stock("web/env/VERSION", "2.0\n", 0o644);
        let before = root.snapshot();
        let stored = published(&root);

        let run = commit_racing(&root, race).code(exit::TEMP_FAIL);
        assert!(
            run.stderr.contains(
                "stock tree changed while reading; retry when the package manager is done"
            ),
            "{what}:\n{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains(&root.stock().join("web").display().to_string()),
            "{what}: the message names the service:\n{}",
            run.stderr
        );
        assert_eq!(root.snapshot(), before, "{what}: state changed");
        assert_eq!(published(&root), stored, "{what}: something was published");
        let leftovers = staging_names(&root, ".tmp-");
        // Staging leftovers are harmless (recovery sweeps them) but none
        // may be reachable; the next commit starts by sweeping.
        assert_eq!(root.live_generation(), Some(1), "{what}");
        assert!(root.state().join(layout::PENDING).is_file(), "{what}");

        // The package manager is done: the retry publishes what is there.
        let run = root.commit().ok();
        assert!(
            run.stdout.contains("generation 2 is live"),
            "{}",
            run.stdout
        );
        assert!(!root.state().join(layout::PENDING).exists());
        let swept: Vec<_> = leftovers
            .iter()
            .filter(|n| root.state().join(n).exists())
            .collect();
        assert!(swept.is_empty(), "{what}: not swept: {swept:?}");
    }
}
