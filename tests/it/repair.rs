//! Damaged store objects (docs/cli.md#verify---repair): `verify` checks
//! any generation or all of them and names the generations safe to roll
//! back to; `verify --repair` restores a damaged object the stock still
//! holds (crash-safe at every step); a commit never reuses a damaged
//! object, so an edit through the scan directory is not "up to date".

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::*;

/// The store object directory `<scandir>/<name>` runs from.
fn live_object_dir(root: &Root, name: &str) -> PathBuf {
    std::fs::canonicalize(root.scandir().join(name)).unwrap()
}

fn edit_through_scandir(root: &Root, name: &str) {
    let run = root.scandir().join(name).join("run");
    let mut text = std::fs::read_to_string(&run).unwrap();
    text.push_str("# edited by hand\n");
    std::fs::write(&run, text).unwrap();
}

fn stock_run(root: &Root, name: &str) -> String {
    std::fs::read_to_string(root.stock().join(name).join("run")).unwrap()
}

fn bump_web(root: &Root, tag: &str) {
    root.write_stock(
        "web/run",
        &format!("#!/bin/sh\n# {tag}\nexec sleep 1000\n"),
        0o755,
    );
}

/// A commit that would reuse a damaged object for a service it starts or
/// restarts (here: the stock went back to a version staged before) restores
/// a fresh copy from the stock instead; an unchanged service's live object
/// is not re-read by a commit, `verify` finds the edit.
#[test]
fn a_commit_never_reuses_an_object_edited_through_the_scan_directory() {
    let root = Root::example();
    root.commit().ok();
    let dir = live_object_dir(&root, "web");
    let inode = root.inode(&dir);
    let v1 = stock_run(&root, "web");
    edit_through_scandir(&root, "web");

    let (kind, run) = root.error_kind(&["verify"]);
    assert_eq!(kind, "store_damaged");
    assert!(run.exited(exit::DATA_ERR));
    assert_eq!(
        run.json()["error"]["safe"],
        serde_json::json!([]),
        "{}",
        run.stdout
    );

    bump_web(&root, "v2");
    root.commit().ok();
    root.write_stock("web/run", &v1, 0o755);
    let run = root.commit().ok();
    assert!(
        run.stderr.contains("was changed in place")
            && run.stderr.contains("restored a fresh copy from the stock"),
        "{}",
        run.stderr
    );
    assert_eq!(root.live_generation(), Some(3));
    assert_eq!(
        std::fs::read_to_string(root.scandir().join("web/run")).unwrap(),
        v1
    );
    // Same name (same content), a new directory.
    assert_eq!(live_object_dir(&root, "web"), dir);
    assert_ne!(root.inode(&dir), inode);
    root.run(&["verify", "--all"]).ok();
    // And the next commit has nothing to restore.
    let run = root.commit().ok();
    assert!(!run.stderr.contains("changed in place"), "{}", run.stderr);
}

#[test]
fn verify_checks_a_generation_by_number_or_all_and_names_the_safe_ones() {
    let root = Root::example();
    root.commit().ok();
    let old_web = live_object_dir(&root, "web");
    bump_web(&root, "v2");
    root.commit().ok();
    std::fs::write(old_web.join("run"), "#!/bin/sh\nexec evil\n").unwrap();

    root.run(&["verify"]).ok();
    let (kind, run) = root.error_kind(&["verify", "1"]);
    assert_eq!(kind, "store_damaged");
    assert_eq!(run.json()["error"]["generation"], 1);
    assert_eq!(run.json()["error"]["safe"], serde_json::json!([2]));

    let run = root.run(&["verify", "--all"]).code(exit::DATA_ERR);
    assert!(
        run.stderr.contains("  generation 1: ")
            && run.stderr.contains("/web/run: content changed")
            && run.stderr.contains(
                "`svcdir-update rollback GEN` to a generation whose objects all verify: 2"
            ),
        "{}",
        run.stderr
    );
    let (kind, _) = root.error_kind(&["verify", "9"]);
    assert_eq!(kind, "no_such_generation");
    root.run(&["verify", "--all", "1"]).code(exit::USAGE);

    // Intact: one line per generation, and a JSON document for each.
    std::fs::write(old_web.join("run"), stock_run_v1()).unwrap();
    let j = root.run(&["--json", "verify", "--all"]).ok().json();
    let gens: Vec<u64> = j["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["generation"].as_u64().unwrap())
        .collect();
    assert_eq!(gens, [1, 2], "{j}");
    assert_eq!(j["generations"][0]["problems"], serde_json::json!([]));
    let text = root.run(&["verify", "--all"]).ok().stdout;
    assert!(text.contains("GEN") && text.contains("intact"), "{text}");
}

fn stock_run_v1() -> String {
    std::fs::read_to_string(fixture_stock().join("web/run")).unwrap()
}

#[test]
fn repair_restores_what_the_stock_holds_and_else_names_the_safe_generations() {
    let root = Root::example();
    root.commit().ok();
    let old_web = live_object_dir(&root, "web");
    bump_web(&root, "v2");
    root.commit().ok();
    edit_through_scandir(&root, "web");

    let run = root.run(&["verify", "--repair"]).ok();
    assert!(run.stderr.contains("restored web-"), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("generation 2: 3 objects verified, all intact")
    );
    assert_eq!(
        std::fs::read_to_string(root.scandir().join("web/run")).unwrap(),
        stock_run(&root, "web")
    );

    // Generation 1's web is no longer in the stock: only a rollback helps.
    std::fs::write(old_web.join("run"), "#!/bin/sh\nexec evil\n").unwrap();
    let (kind, run) = root.error_kind(&["verify", "--all", "--repair"]);
    assert_eq!(kind, "store_damaged");
    assert_eq!(run.json()["error"]["safe"], serde_json::json!([2]));
    assert!(
        run.stderr
            .contains("the stock no longer holds this content"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(old_web.join("run")).unwrap(),
        "#!/bin/sh\nexec evil\n"
    );
}

/// Killed at each step of a repair, the object is whole (damaged or fresh),
/// `live` is unchanged, and a second `verify --repair` finishes the job.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_repair_killed_at_any_step_is_finished_by_the_next() {
    for point in [
        "repair.after-stage",
        "repair.after-stop",
        "repair.after-exchange",
    ] {
        let root = Root::example();
        root.commit().ok();
        let dir = live_object_dir(&root, "web");
        edit_through_scandir(&root, "web");
        let out = root
            .command(&["verify", "--repair"])
            .failpoint(point)
            .output()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{point}: {out:?}"
        );
        assert_eq!(root.live_generation(), Some(1), "{point}");
        let run = std::fs::read_to_string(dir.join("run")).unwrap();
        let fresh = run == stock_run(&root, "web");
        assert_eq!(fresh, point == "repair.after-exchange", "{point}: {run}");
        root.run(&["verify", "--repair"]).ok();
        root.run(&["verify"]).ok();
        assert_eq!(
            std::fs::read_to_string(dir.join("run")).unwrap(),
            stock_run(&root, "web")
        );
        // The next writing command sweeps what the killed run left.
        root.run(&["gc"]).ok();
        let left = staging_names(&root, ".tmp-");
        assert!(left.is_empty(), "{point}: {left:?}");
    }
}

mod supervised {
    use super::*;
    use crate::supervise_harness::*;

    /// The live instance ran from the damaged directory: the repair stops
    /// it and the scanner starts it again from the fresh copy.
    fn repair_restarts_the_service_from_the_fresh_copy(family: Family) {
        let root = Root::example();
        configure(&root, family);
        root.commit().ok();
        let scanner = Scanner::start(&root, family);
        let before = scanner.wait_pid("web");
        let dir = live_object_dir(&root, "web");
        let inode = root.inode(&dir);
        edit_through_scandir(&root, "web");

        let run = root.run(&["verify", "--repair"]).ok();
        assert!(
            run.stderr.contains("its live instance was restarted"),
            "{}",
            run.stderr
        );
        assert_ne!(root.inode(&dir), inode);
        let mut now = 0;
        wait_until("web up again from the fresh copy", REACT, || {
            now = scanner.service_pid("web").unwrap_or(0);
            now != 0 && now != before
        });
        let cwd = std::fs::read_link(format!("/proc/{now}/cwd")).unwrap();
        assert_eq!(root.inode(&cwd), root.inode(&dir));
        wait_until(
            "no supervisor left in the damaged copy",
            Duration::from_secs(20),
            || scanner.supervisors_of(&dir).len() == 1,
        );
    }

    #[test]
    fn s6_repair_restarts_the_service_from_the_fresh_copy() {
        if Family::S6.require() {
            repair_restarts_the_service_from_the_fresh_copy(Family::S6);
        }
    }

    #[test]
    fn runit_repair_restarts_the_service_from_the_fresh_copy() {
        if Family::Runit.require() {
            repair_restarts_the_service_from_the_fresh_copy(Family::Runit);
        }
    }

    #[test]
    fn daemontools_repair_restarts_the_service_from_the_fresh_copy() {
        if Family::Daemontools.require() {
            repair_restarts_the_service_from_the_fresh_copy(Family::Daemontools);
        }
    }

    /// The restart is a normal one: a held update lock of the service
    /// defers the repair (exit 75) and nothing is stopped or replaced.
    #[test]
    fn s6_repair_waits_for_the_update_lock_of_a_service_it_restarts() {
        if !Family::S6.require() {
            return;
        }
        let root = Root::example();
        configure(&root, Family::S6);
        root.commit().ok();
        let scanner = Scanner::start(&root, Family::S6);
        let before = scanner.wait_pid("web");
        let dir = live_object_dir(&root, "web");
        let inode = root.inode(&dir);
        edit_through_scandir(&root, "web");
        let holder = KillOnDrop(
            root.command(&["lock", "web", "--", "sleep", "30"])
                .spawn()
                .unwrap(),
        );
        wait_until("web's update lock held", Duration::from_secs(10), || {
            root.run(&["--json", "status"]).json()["update_locks"]
                .as_array()
                .is_some_and(|locks| !locks.is_empty())
        });
        let (kind, run) = root.error_kind(&["verify", "--repair", "--wait", "0"]);
        assert_eq!(kind, "update_locks_held", "{}", run.stderr);
        assert!(run.exited(exit::TEMP_FAIL));
        assert_eq!(root.inode(&dir), inode);
        assert_eq!(scanner.service_pid("web"), Some(before));
        drop(holder);
        root.run(&["verify", "--repair"]).ok();
        assert_ne!(root.inode(&dir), inode);
        root.run(&["verify"]).ok();
    }
}
