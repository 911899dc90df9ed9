//! Crash safety: kill commit, rollback, gc and recover itself at
//! every named failpoint, then prove that `recover` (and the next `commit`)
//! leaves exactly the old or exactly the new generation, checked file by
//! file against the manifests.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::harness::*;
use crate::invariant::*;

/// Every failpoint name, as the binary lists them.
pub fn failpoints() -> Vec<String> {
    let run = Root::empty().run(&["failpoints"]).ok();
    let names: Vec<String> = run.stdout.lines().map(str::to_string).collect();
    assert!(names.len() > 10, "too few failpoints: {names:?}");
    names
}

/// Runs `args` with `point` armed. True when the process was killed there
/// (SIGKILL); false when the point is not on its path and it succeeded.
pub fn run_at(root: &Root, args: &[&str], point: &str) -> bool {
    let out = root.command(args).failpoint(point).output().unwrap();
    match out.status.signal() {
        Some(9) => true,
        Some(sig) => panic!("{args:?} at {point}: died of signal {sig}"),
        None => {
            assert!(
                out.status.success(),
                "{args:?} with {point} armed but not hit must succeed\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            false
        }
    }
}

/// Changes the example stock: one changed, one added, one removed service.
pub fn change_stock(root: &Root, tag: &str) {
    root.write_stock(
        "web/run",
        &format!("#!/bin/sh\n# {tag}\nexec sleep 1000\n"),
        0o755,
    );
    root.add_service(&format!("extra-{tag}"), tag);
    #[allow(clippy::disallowed_methods)] // the stock, not the state
    let _ = std::fs::remove_dir_all(root.stock().join("cron"));
}

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Commit,
    /// A third commit: its links come from generation 1's directory
    /// (docs/design.md#dormant-generations).
    CommitRecycling,
    Rollback,
    /// A rollback to generation 1, dormant after two more commits.
    RollbackDormant,
    Gc,
    /// `recover` after `commit` was killed at the given point.
    Recover(&'static str),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Next {
    Recover,
    Commit,
}

/// Builds the root for a scenario; returns it with the old and new live
/// content and the command line to crash.
fn setup(s: Scenario, base: &Path) -> (Root, Services, Services, Vec<&'static str>) {
    let root = Root::example_in(base);
    root.commit().ok();
    match s {
        Scenario::Commit => {
            let old = stock_contents(&root);
            change_stock(&root, "a");
            let new = stock_contents(&root);
            (root, old, new, vec!["commit"])
        }
        Scenario::CommitRecycling => {
            change_stock(&root, "a");
            root.commit().ok();
            let old = stock_contents(&root);
            change_stock(&root, "b");
            let new = stock_contents(&root);
            (root, old, new, vec!["commit"])
        }
        Scenario::RollbackDormant => {
            let gen1 = stock_contents(&root);
            change_stock(&root, "a");
            root.commit().ok();
            change_stock(&root, "b");
            root.commit().ok();
            assert!(root.state().join("generations/1/.dormant").exists());
            let gen3 = stock_contents(&root);
            (root, gen3, gen1, vec!["rollback", "1"])
        }
        Scenario::Rollback => {
            let gen1 = stock_contents(&root);
            change_stock(&root, "a");
            root.commit().ok();
            let gen2 = stock_contents(&root);
            (root, gen2, gen1, vec!["rollback"])
        }
        Scenario::Gc => {
            change_stock(&root, "a");
            root.commit().ok();
            change_stock(&root, "b");
            root.commit().ok();
            let gen3 = stock_contents(&root);
            assert_eq!(root.live_generation(), Some(3));
            (root, gen3.clone(), gen3, vec!["gc", "--keep", "1"])
        }
        Scenario::Recover(point) => {
            let old = stock_contents(&root);
            change_stock(&root, "a");
            assert!(
                run_at(&root, &["commit"], point),
                "commit was not killed at {point}"
            );
            let new = stock_contents(&root);
            (root, old, new, vec!["recover"])
        }
    }
}

/// One cell of the matrix; returns whether the point was hit.
fn cell(s: Scenario, point: &str, next: Next, base: &Path) -> bool {
    let (root, old, new, args) = setup(s, base);
    let what = format!("{s:?} killed at {point}, then {next:?}");
    let killed = run_at(&root, &args, point);
    if !killed {
        // Not on this command's path: it ran to completion. (For recover
        // that may mean undoing the crashed commit: old is right there.)
        let is_new = assert_old_or_new(&root, &old, &new, &what);
        assert!(
            is_new || matches!(s, Scenario::Recover(_)),
            "{what}: not new"
        );
    }
    match next {
        Next::Recover => {
            root.run(&["recover"]).ok();
            assert_old_or_new(&root, &old, &new, &what);
            if let Scenario::Gc = s {
                // The collection itself completes on the next run.
                root.run(&["gc", "--keep", "1"]).ok();
                assert_consistent(&root);
                assert_eq!(generations(&root), vec![3], "{what}");
                crate::gc::assert_no_orphan_manifests(&root);
            }
        }
        Next::Commit => {}
    }
    root.commit().ok();
    assert_consistent(&root);
    assert_eq!(live_contents(&root), stock_contents(&root), "{what}");
    killed
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn every_failpoint_of_every_command_recovers_to_old_or_new() {
    crash_matrix(&std::env::temp_dir());
}

/// The matrix with every root (stock, state, scan directory) in `base`.
fn crash_matrix(base: &Path) {
    // The migration's own points are on no path of a current state; each
    // is hit and checked by pwd::a_migration_killed_at_any_step_…; the
    // repair's are on the path of a damaged store only, checked by
    // repair::a_repair_killed_at_any_step_is_finished_by_the_next.
    let points: Vec<String> = failpoints()
        .into_iter()
        .filter(|p| !p.starts_with("migrate.") && !p.starts_with("repair."))
        .collect();
    let scenarios = [
        Scenario::Commit,
        Scenario::CommitRecycling,
        Scenario::Rollback,
        Scenario::RollbackDormant,
        Scenario::Gc,
        Scenario::Recover("commit.after-publish-objects"),
        Scenario::Recover("txn.after-stop"),
        Scenario::Recover("switch.after-rename"),
        Scenario::Recover("txn.after-scandir"),
    ];
    let hits: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    std::thread::scope(|scope| {
        for s in scenarios {
            let points = &points;
            let hits = &hits;
            scope.spawn(move || {
                for p in points {
                    // Recovery after a kill is checked both ways: by an
                    // explicit `recover` and by the next `commit`.
                    for next in [Next::Recover, Next::Commit] {
                        if matches!(s, Scenario::Recover(_)) && next == Next::Commit {
                            continue;
                        }
                        if cell(s, p, next, base) {
                            hits.lock().unwrap().insert((format!("{s:?}"), p.clone()));
                        }
                    }
                }
            });
        }
    });
    let hits = hits.into_inner().unwrap();
    let hit_points: BTreeSet<&String> = hits.iter().map(|(_, p)| p).collect();
    for p in &points {
        assert!(
            hit_points.contains(p),
            "failpoint {p} is on no command's path"
        );
    }
    // Each command is killed where it must be: the matrix is not vacuous.
    for (s, p) in [
        ("Commit", "commit.after-stage"),
        ("Commit", "switch.after-rename"),
        ("CommitRecycling", "generation.after-retire"),
        ("RollbackDormant", "generation.after-materialize"),
        ("Rollback", "txn.after-stop"),
        ("Rollback", "switch.after-symlink"),
        ("Gc", "gc.after-remove-object"),
        ("Gc", "recover.start"),
        ("Recover(\"switch.after-rename\")", "txn.after-history"),
        ("Recover(\"txn.after-stop\")", "recover.after-undo"),
    ] {
        assert!(
            hits.contains(&(s.to_string(), p.to_string())),
            "{s} was not killed at {p}"
        );
    }
    println!(
        "crash matrix on {}: {} kills over {} failpoints",
        base.display(),
        hits.len(),
        points.len()
    );
}

/// A file system of type `fs` in a loop image, made and mounted for a
/// test (root only); unmounted and deleted when dropped.
pub struct LoopFs {
    dir: tempfile::TempDir,
}

impl LoopFs {
    /// `mkfs.<fs> <mkfs_args> image`, mounted; `stat -f` must name it `kind`.
    pub fn make(fs: &str, mkfs_args: &[&str], kind: &str) -> LoopFs {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("image");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        // 320 MiB, sparse: above mkfs.xfs's 300 MiB minimum.
        std::fs::File::create(&image)
            .unwrap()
            .set_len(320 << 20)
            .unwrap();
        let mkfs = std::process::Command::new(format!("mkfs.{fs}"))
            .args(mkfs_args)
            .arg(&image)
            .output()
            .unwrap();
        assert!(mkfs.status.success(), "mkfs.{fs}: {mkfs:?}");
        let mount = std::process::Command::new("mount")
            .args(["-t", fs, "-o", "loop"])
            .arg(&image)
            .arg(&mnt)
            .output()
            .unwrap();
        assert!(mount.status.success(), "mount {fs}: {mount:?}");
        let loop_fs = LoopFs { dir };
        let found = std::process::Command::new("stat")
            .args(["-f", "-c", "%T"])
            .arg(&mnt)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&found.stdout).trim(), kind);
        loop_fs
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.path())
            .status();
    }
}

/// The crash matrix with the whole root on a real `fs` (xfs, btrfs),
/// where rename, fsync and syncfs are each file system's own.
fn crash_matrix_on(fs: &str, tool: &str, package: &str) {
    if !require_tool(tool, package) {
        return;
    }
    let loop_fs = LoopFs::make(fs, &["-q", "-f"], fs);
    crash_matrix(&loop_fs.path());
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn every_failpoint_recovers_to_old_or_new_with_the_state_on_xfs() {
    crash_matrix_on("xfs", "mkfs.xfs", "xfsprogs");
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn every_failpoint_recovers_to_old_or_new_with_the_state_on_btrfs() {
    crash_matrix_on("btrfs", "mkfs.btrfs", "btrfs-progs");
}
