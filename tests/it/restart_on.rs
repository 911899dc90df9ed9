//! `restart_on` and `commit --restart` (docs/design.md#identity): the
//! content of a daemon's binary or config is part of its service's
//! identity, so changing only it makes a new store object — restarted —
//! for that service and nothing else; `commit --restart NAME` restarts
//! named services whose content did not change, as a transaction.

use std::path::{Path, PathBuf};

use crate::harness::*;

/// A root with the example stock (web, db, cron) whose config watches
/// `<root>/usr/sbin/webd` and `<root>/etc/web/` for web, committed.
fn watched_root() -> Root {
    let root = Root::example();
    write(&daemon(&root), "webd v1\n");
    write(&config_dir(&root).join("web.conf"), "port 80\n");
    root.config(&format!(
        "restart_on:\n  web: [{}, {}]\n",
        daemon(&root).display(),
        config_dir(&root).display()
    ));
    root.commit().ok();
    root
}

fn daemon(root: &Root) -> PathBuf {
    root.path().join("usr/sbin/webd")
}

fn config_dir(root: &Root) -> PathBuf {
    root.path().join("etc/web")
}

fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// The store object the live generation uses for `name`, and its inode.
fn object(root: &Root, name: &str) -> (PathBuf, (u64, u64)) {
    let dir = std::fs::canonicalize(root.live().join(name)).unwrap();
    let inode = root.inode(&dir);
    (dir, inode)
}

fn objects(root: &Root) -> Vec<(PathBuf, (u64, u64))> {
    ["cron", "db", "web"]
        .iter()
        .map(|n| object(root, n))
        .collect()
}

/// Every path below `dir`, relative, sorted.
fn relative_paths(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap().path().strip_prefix(dir).unwrap().to_path_buf())
        .collect()
}

/// The plan's line for `name`, whitespace squeezed.
fn plan_line(root: &Root, name: &str) -> String {
    let run = root.run(&["plan"]).ok();
    run.stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no line for {name} in:\n{}", run.stdout))
}

#[test]
fn a_changed_restart_on_file_makes_a_new_object_for_its_service_only() {
    let root = watched_root();
    let before = objects(&root);
    // Watching alone changes nothing on the next run.
    assert!(root.commit().ok().stdout.starts_with("up to date"));
    assert_eq!(objects(&root), before);

    write(&daemon(&root), "webd v2\n");
    let want = format!(
        "web restart: {} changed (restart_on)",
        daemon(&root).display()
    );
    assert_eq!(plan_line(&root, "web"), want);
    let json = root.run(&["--json", "plan"]).ok().json();
    let web = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web")
        .unwrap()
        .clone();
    assert_eq!(web["action"], "restart");
    assert_eq!(web["restart_on"][0], daemon(&root).display().to_string());
    assert_eq!(json["counts"]["restart"], 1);

    root.commit().ok();
    let after = objects(&root);
    assert_eq!(after[0], before[0], "cron's object changed");
    assert_eq!(after[1], before[1], "db's object changed");
    assert_ne!(after[2].0, before[2].0, "web kept its object");
    assert_ne!(after[2].1, before[2].1, "web kept its inode");
    // Only the digest is recorded: nothing of the watched paths is copied.
    assert_eq!(
        relative_paths(&after[2].0),
        relative_paths(&root.stock().join("web")),
        "web's object holds more than its stock"
    );
    let manifest = manifest_of_dir(&after[2].0);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    assert_eq!(manifest["restart_on"].as_array().unwrap().len(), 2);
    root.run(&["verify"]).ok();
    // The recorded digests are part of the object's identity: `verify`
    // notices one edited by hand.
    let manifest_path = manifest_of_dir(&after[2].0);
    let text = std::fs::read_to_string(&manifest_path).unwrap();
    let recorded = manifest["restart_on"][0]["digest"].as_str().unwrap();
    std::fs::write(&manifest_path, text.replace(recorded, &"0".repeat(64))).unwrap();
    let run = root.run(&["verify"]);
    assert!(!run.exited(0), "verify passed an edited restart_on digest");
    assert!(run.stdout.contains("does not match") || run.stderr.contains("does not match"));
    std::fs::write(&manifest_path, text).unwrap();
    root.run(&["verify"]).ok();

    // A file inside a watched directory counts too.
    write(&config_dir(&root).join("web.conf"), "port 8080\n");
    assert_eq!(
        plan_line(&root, "web"),
        format!(
            "web restart: {} changed (restart_on)",
            config_dir(&root).display()
        )
    );
}

#[test]
fn restart_on_never_follows_a_symlink_out_and_names_a_missing_path() {
    let root = watched_root();
    // A link in a watched directory counts by its target text, not by
    // what it points at.
    let outside = root.path().join("outside");
    write(&outside, "a\n");
    std::os::unix::fs::symlink(&outside, config_dir(&root).join("link")).unwrap();
    root.commit().ok();
    let before = objects(&root);
    write(&outside, "b\n");
    assert!(root.commit().ok().stdout.starts_with("up to date"));
    assert_eq!(objects(&root), before);

    // A missing path is a problem of that service, naming path and fix.
    std::fs::remove_file(daemon(&root)).unwrap();
    let snapshot = root.snapshot();
    let (kind, run) = root.error_kind(&["commit", "--strict"]);
    assert_eq!(kind, "stock", "{}", run.stderr);
    assert!(run.exited(65));
    let (kind, _) = root.error_kind(&["check"]);
    assert_eq!(kind, "stock", "check does not see the missing path");
    let (_, run) = root.error_kind(&["plan", "--strict"]);
    let shown = format!("{}{}", run.stdout, run.stderr);
    assert!(
        shown.contains(&daemon(&root).display().to_string())
            && shown.contains("restart_on")
            && shown.contains("does not exist"),
        "{shown}"
    );
    assert_eq!(root.snapshot(), snapshot, "a failed commit changed state");
    // By default the service is held back: its live version stays.
    let before = objects(&root);
    let run = root.run(&["--json", "commit"]).ok();
    let held = run.json()["held_back"].to_string();
    assert!(
        held.contains(&daemon(&root).display().to_string()) && held.contains("restart_on"),
        "{}",
        run.stdout
    );
    assert_eq!(objects(&root), before);
}

#[test]
fn commit_restart_changes_only_the_named_services_object_once() {
    let root = Root::example();
    root.commit().ok();
    let before = objects(&root);
    let run = root.run(&["commit", "--restart", "web"]).ok();
    let lines: Vec<String> = run
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l == "web restart: requested (--restart)"),
        "{lines:#?}"
    );
    let after = objects(&root);
    assert_eq!(after[..2], before[..2], "cron or db changed object");
    assert_ne!(after[2].1, before[2].1, "web kept its inode");
    assert_eq!(root.live_generation(), Some(2));
    // The restart is done: the next commit keeps web's new object.
    assert!(root.commit().ok().stdout.starts_with("up to date"));
    assert_eq!(objects(&root), after);
    root.run(&["verify"]).ok();
    // A second request restarts again.
    root.run(&["commit", "--restart", "web"]).ok();
    assert_ne!(object(&root, "web").1, after[2].1);

    // An unknown name is a usage error, and nothing switches.
    let snapshot = root.snapshot();
    let run = root.run(&["commit", "--restart", "web", "nosuch"]);
    assert!(run.exited(2), "{}", run.stderr);
    assert!(run.stderr.contains("nosuch"), "{}", run.stderr);
    assert_eq!(root.snapshot(), snapshot);
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_restart_commit_killed_after_the_stop_recovers_to_old_or_new() {
    use crate::invariant::assert_consistent;
    let root = Root::example();
    root.commit().ok();
    let old = object(&root, "web");
    let killed =
        crate::slow::crash::run_at(&root, &["commit", "--restart", "web"], "txn.after-stop");
    assert!(killed, "commit --restart did not reach txn.after-stop");
    root.run(&["recover"]).ok();
    assert_consistent(&root);
    let web = object(&root, "web");
    match root.live_generation() {
        Some(1) => assert_eq!(web, old),
        Some(2) => assert_ne!(web.1, old.1),
        other => panic!("live is {other:?} after recover"),
    }
    // Whichever it is, the next commit has nothing left to do.
    assert!(root.commit().ok().stdout.starts_with("up to date"));
}

/// With a real scanner: only the service whose `restart_on` file changed,
/// and then only the one named by `--restart`, gets a new pid.
mod supervisors {
    use std::time::Duration;

    use super::{daemon, write};
    use crate::harness::*;
    use crate::supervise_harness::*;

    fn only_the_watched_then_the_named_service_restarts(family: Family) {
        let root = Root::empty();
        for name in ["a", "db", "web"] {
            add_logging_service(&root, name, "v1");
        }
        write(&daemon(&root), "webd v1\n");
        root.config(&format!(
            "supervisor: {}\nstop_timeout: 10\nrestart_on: {{web: [{}]}}\n",
            family.config_name(),
            daemon(&root).display()
        ));
        root.commit().ok();
        let scanner = Scanner::start(&root, family);
        let pids =
            |names: &[&str]| -> Vec<u32> { names.iter().map(|n| scanner.wait_pid(n)).collect() };
        let before = pids(&["a", "db", "web"]);

        write(&daemon(&root), "webd v2\n");
        root.commit().ok();
        let mut web = 0;
        wait_until("web restarted", REACT, || {
            web = scanner.service_pid("web").unwrap_or(0);
            web != 0 && web != before[2]
        });
        assert!(!alive(before[2]), "old web {} still runs", before[2]);
        assert_eq!(pids(&["a", "db"]), before[..2], "a or db was restarted");

        root.run(&["commit", "--restart", "db"]).ok();
        let mut db = 0;
        wait_until("db restarted", REACT, || {
            db = scanner.service_pid("db").unwrap_or(0);
            db != 0 && db != before[1]
        });
        assert_eq!(
            pids(&["a", "web"]),
            [before[0], web],
            "a or web was restarted"
        );
        assert_eq!(runs(&root, "db").len(), 2, "db ran other than twice");
        assert_eq!(runs(&root, "a").len(), 1, "a ran more than once");
        let mut scanner = scanner;
        scanner.kill_all();
        wait_until(
            "nothing left running in the root",
            Duration::from_secs(20),
            || running_under(root.path()).is_empty(),
        );
    }

    #[test]
    fn s6_restarts_only_the_watched_then_the_named_service() {
        if !Family::S6.require() {
            return;
        }
        only_the_watched_then_the_named_service_restarts(Family::S6);
    }

    #[test]
    fn runit_restarts_only_the_watched_then_the_named_service() {
        if !Family::Runit.require() {
            return;
        }
        only_the_watched_then_the_named_service_restarts(Family::Runit);
    }
}
