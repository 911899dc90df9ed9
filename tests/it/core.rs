//! Core behaviour: commit, inode sharing, rollback, scan directory,
//! store fidelity, verify, JSON output and the manager lock.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::harness::*;

const SERVICES: [&str; 3] = ["cron", "db", "web"];

/// The scan directory links, name -> target.
fn scan_links(root: &Root) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(root.scandir())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let target = std::fs::read_link(e.path()).unwrap();
            (name, target)
        })
        .collect();
    out.sort();
    out
}

/// The store object directory generation `n` holds for `service`.
fn object_of(root: &Root, n: u64, service: &str) -> PathBuf {
    let link = root
        .state()
        .join(layout::GENERATIONS)
        .join(n.to_string())
        .join(service);
    std::fs::canonicalize(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display()))
}

#[test]
fn first_commit_creates_generation_one_and_links_every_service() {
    let root = Root::example();
    let run = root.commit().ok();
    assert!(
        run.stdout.contains("generation 1 is live"),
        "{}",
        run.stdout
    );
    assert_eq!(root.live_generation(), Some(1));
    for name in SERVICES {
        let link = std::fs::read_link(root.scandir().join(name)).unwrap();
        assert_eq!(link, root.live().join(name));
        assert!(root.scandir().join(name).join("run").is_file());
    }
}

#[test]
fn changing_one_service_keeps_the_inodes_of_the_others() {
    let root = Root::example();
    root.commit().ok();
    let before: Vec<(u64, u64)> = SERVICES
        .iter()
        .map(|s| root.inode(&root.scandir().join(s)))
        .collect();
    let links_before = scan_links(&root);

    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let run = root.commit().ok();
    assert!(
        run.stdout.contains("generation 2 is live"),
        "{}",
        run.stdout
    );
    assert_eq!(root.live_generation(), Some(2));

    let after: Vec<(u64, u64)> = SERVICES
        .iter()
        .map(|s| root.inode(&root.scandir().join(s)))
        .collect();
    assert_eq!(after[0], before[0], "cron must keep its directory");
    assert_eq!(after[1], before[1], "db must keep its directory");
    assert_ne!(after[2], before[2], "web changed and needs a new directory");
    assert_eq!(object_of(&root, 1, "cron"), object_of(&root, 2, "cron"));
    assert_ne!(object_of(&root, 1, "web"), object_of(&root, 2, "web"));
    assert_eq!(
        std::fs::read_to_string(root.scandir().join("web/env/VERSION")).unwrap(),
        "2.0\n"
    );
    assert_eq!(scan_links(&root), links_before, "scan dir entries changed");
}

#[test]
fn rollback_returns_to_the_previous_generation_and_its_content() {
    let root = Root::example();
    root.commit().ok();
    let web_v1 = root.inode(&root.scandir().join("web"));
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    root.commit().ok();
    let web_v2 = root.inode(&root.scandir().join("web"));
    let links = scan_links(&root);

    let run = root.run(&["rollback"]).ok();
    assert!(
        run.stdout.contains("generation 1 is live again"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("env/VERSION changed"), "{}", run.stdout);
    assert_eq!(root.live_generation(), Some(1));
    assert_eq!(root.inode(&root.scandir().join("web")), web_v1);
    assert_eq!(
        std::fs::read_to_string(root.scandir().join("web/env/VERSION")).unwrap(),
        "1.0\n"
    );
    assert_eq!(scan_links(&root), links);

    // An explicit generation, forwards.
    root.run(&["rollback", "2"]).ok();
    assert_eq!(root.live_generation(), Some(2));
    assert_eq!(root.inode(&root.scandir().join("web")), web_v2);

    // Back to 1, then nothing older is left: exit 65, nothing changes.
    root.run(&["rollback", "1"]).ok();
    let snap = root.snapshot();
    let run = root
        .run(&["--json", "rollback"])
        .code(exit::DATA_ERR)
        .kind("nothing_to_roll_back");
    assert_eq!(run.json()["error"]["generation"], 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("svcdir-update list"),
        "the refusal must say where the generations are listed:\n{}",
        run.stderr
    );
    assert_eq!(root.snapshot(), snap);

    // A generation that does not exist: exit 65, nothing changes.
    let run = root
        .run(&["--json", "rollback", "9"])
        .code(exit::DATA_ERR)
        .kind("no_such_generation");
    assert_eq!(run.json()["error"]["generation"], 9, "{}", run.stdout);
    assert_eq!(root.snapshot(), snap);
}

#[test]
fn rollback_before_any_commit_says_there_are_no_generations() {
    let root = Root::example();
    let run = root
        .run(&["--json", "rollback"])
        .code(exit::DATA_ERR)
        .kind("no_generations");
    assert!(run.stderr.contains("commit"), "{}", run.stderr);
    assert_eq!(root.live_generation(), None);
}

#[test]
fn commit_with_nothing_changed_is_up_to_date_and_makes_no_generation() {
    let root = Root::example();
    root.commit().ok();
    let snap = root.snapshot();
    let run = root.commit().ok();
    assert!(run.stdout.contains("up to date"), "{}", run.stdout);
    assert_eq!(generations(&root), vec![1]);
    assert_eq!(root.snapshot(), snap);
    let plan = root.run(&["plan"]).ok();
    assert!(plan.stdout.contains("up to date"), "{}", plan.stdout);
}

#[test]
fn plan_names_the_changed_files() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    root.add_service("mail", "v1");
    std::fs::remove_dir_all(root.stock().join("cron")).unwrap();
    let run = root.run(&["plan"]).ok();
    for want in [
        "restart",
        "web",
        "env/VERSION",
        "start",
        "mail",
        "stop",
        "cron",
    ] {
        assert!(run.stdout.contains(want), "{want} missing:\n{}", run.stdout);
    }
    // plan writes nothing.
    assert_eq!(generations(&root), vec![1]);
}

#[test]
fn removed_and_added_services_change_only_their_scan_links() {
    let root = Root::example();
    root.commit().ok();
    let db = root.inode(&root.scandir().join("db"));
    std::fs::remove_dir_all(root.stock().join("cron")).unwrap();
    root.add_service("mail", "v1");
    root.commit().ok();
    let names: Vec<String> = scan_links(&root).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["db", "mail", "web"]);
    assert_eq!(root.inode(&root.scandir().join("db")), db);
    root.run(&["rollback"]).ok();
    let names: Vec<String> = scan_links(&root).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["cron", "db", "web"]);
}

#[test]
fn readers_never_see_a_missing_or_partial_generation() {
    let root = Arc::new(Root::example());
    root.commit().ok();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let root = Arc::clone(&root);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut reads = 0u64;
            let mut seen = std::collections::BTreeSet::new();
            while !stop.load(Ordering::Relaxed) {
                let target = std::fs::read_link(root.live()).expect("live must always exist");
                let n: u64 = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("generations/"))
                    .and_then(|t| t.parse().ok())
                    .unwrap_or_else(|| panic!("live points at {target:?}"));
                seen.insert(n);
                let gen_dir = root.state().join(&target);
                assert!(
                    gen_dir.join(".manifest.yaml").is_file(),
                    "generation {n} has no manifest"
                );
                for s in SERVICES {
                    let link = std::fs::read_link(root.scandir().join(s)).unwrap();
                    assert_eq!(link, root.live().join(s));
                    let run = root.scandir().join(s).join("run");
                    let md = std::fs::metadata(&run)
                        .unwrap_or_else(|e| panic!("{}: {e}", run.display()));
                    assert!(md.is_file() && md.len() > 0, "{} is partial", run.display());
                }
                let version =
                    std::fs::read_to_string(root.scandir().join("web/env/VERSION")).unwrap();
                assert!(
                    version == "1.0\n" || (version.starts_with('v') && version.ends_with('\n')),
                    "partial VERSION {version:?}"
                );
                reads += 1;
            }
            (reads, seen)
        })
    };
    for i in 0..50 {
        root.write_stock("web/env/VERSION", &format!("v{i}\n"), 0o644);
        root.commit().ok();
    }
    stop.store(true, Ordering::Relaxed);
    let (reads, seen) = reader.join().expect("the reader saw a broken state");
    assert_eq!(root.live_generation(), Some(51));
    assert!(reads > 50, "the reader ran only {reads} times");
    assert!(seen.len() > 1, "the reader saw only generations {seen:?}");
}

#[test]
fn verify_passes_on_an_intact_store_and_names_a_tampered_file() {
    let root = Root::example();
    root.commit().ok();
    let run = root.run(&["verify"]).ok();
    assert!(run.stdout.contains("intact"), "{}", run.stdout);

    let object = object_of(&root, 1, "web");
    let file = object.join("env/VERSION");
    let mut perms = std::fs::metadata(&file).unwrap().permissions();
    perms.set_mode(perms.mode() | 0o200);
    std::fs::set_permissions(&file, perms).unwrap();
    std::fs::write(&file, "9.9\n").unwrap();
    let run = root.run(&["verify"]).code(exit::DATA_ERR);
    assert!(
        run.stderr.contains(&file.display().to_string()) && run.stderr.contains("content changed"),
        "{}",
        run.stderr
    );
}

#[test]
fn verify_names_a_mode_change_in_a_store_object() {
    let root = Root::example();
    root.commit().ok();
    let run_file = object_of(&root, 1, "cron").join("run");
    std::fs::set_permissions(&run_file, std::fs::Permissions::from_mode(0o700)).unwrap();
    let run = root.run(&["verify"]).code(exit::DATA_ERR);
    assert!(
        run.stderr.contains(&run_file.display().to_string()) && run.stderr.contains("mode 0700"),
        "{}",
        run.stderr
    );
}

#[test]
fn json_output_of_plan_commit_status_list_diff() {
    let root = Root::example();
    let plan = root.run(&["--json", "plan"]).ok().json();
    assert_eq!(plan["live"], serde_json::Value::Null);
    assert_eq!(plan["counts"]["start"], 3);
    assert!(plan["services"].is_array());
    assert_eq!(plan["up_to_date"], false);

    let commit = root.run(&["--json", "commit"]).ok().json();
    assert_eq!(commit["generation"], 1);
    assert_eq!(commit["previous"], serde_json::Value::Null);
    assert_eq!(commit["up_to_date"], false);
    assert_eq!(commit["counts"]["start"], 3);
    assert_eq!(commit["scandir"]["added"], serde_json::json!(SERVICES));
    assert_eq!(commit["services"].as_array().unwrap().len(), 3);

    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let commit = root.run(&["--json", "commit"]).ok().json();
    assert_eq!(commit["generation"], 2);
    assert_eq!(commit["previous"], 1);
    assert_eq!(commit["counts"]["restart"], 1);
    assert_eq!(commit["counts"]["keep"], 2);

    let status = root.run(&["--json", "status"]).ok().json();
    assert_eq!(status["live"], 2);
    assert_eq!(status["generations"], serde_json::json!([1, 2]));
    assert_eq!(status["services"], 3);
    assert_eq!(status["interrupted"], serde_json::Value::Null);
    assert_eq!(status["manager_lock_held"], false);
    assert!(status["state"].as_str().unwrap().ends_with("/state"));

    let list = root.run(&["--json", "list"]).ok().json();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["generation"], 1);
    assert_eq!(rows[0]["live"], false);
    assert_eq!(rows[1]["live"], true);
    assert_eq!(rows[1]["parent"], 1);
    assert_eq!(rows[1]["services"], 3);
    assert!(rows[1]["created"].is_string());

    let diff = root.run(&["--json", "diff", "1", "2"]).ok().json();
    assert_eq!(diff["from"], "generation 1");
    assert_eq!(diff["to"], "generation 2");
    assert_eq!(diff["counts"]["restart"], 1);
    let web = diff["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web")
        .unwrap();
    assert_eq!(web["action"], "restart");
    assert_eq!(web["files"][0]["path"], "env/VERSION");

    let diff = root.run(&["--json", "diff"]).ok().json();
    assert_eq!(diff["from"], "generation 2");
    assert_eq!(diff["to"], "stock");
    assert_eq!(diff["counts"]["keep"], 3);
}

#[test]
fn store_keeps_outside_symlinks_and_owners_strips_setid_and_splits_hard_links() {
    let root = Root::example();
    let cron = root.stock().join("cron");
    std::fs::write(cron.join("data"), "payload\n").unwrap();
    // chown first: it clears set-id bits.
    std::os::unix::fs::chown(cron.join("data"), Some(1234), Some(1234)).unwrap();
    std::fs::set_permissions(cron.join("data"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::hard_link(cron.join("data"), cron.join("data-again")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", cron.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("data", cron.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", cron.join("dangling")).unwrap();
    let run = root.commit().ok();
    assert!(
        run.stderr.contains("set-id bits stripped"),
        "{}",
        run.stderr
    );

    let object = object_of(&root, 1, "cron");
    // Links out of the stock trees stay links (docs/design.md#links).
    for (name, target) in [
        ("abs-link", "/etc/hostname"),
        ("dangling", "/nonexistent/target"),
    ] {
        let md = std::fs::symlink_metadata(object.join(name)).unwrap();
        assert!(md.file_type().is_symlink(), "{name} was followed");
        assert_eq!(
            std::fs::read_link(object.join(name)).unwrap(),
            Path::new(target)
        );
    }
    // A link into the stock becomes a copy of its target, set-id stripped.
    let copied = std::fs::symlink_metadata(object.join("rel-link")).unwrap();
    assert!(copied.file_type().is_file(), "rel-link was not resolved");
    assert_eq!(
        std::fs::read(object.join("rel-link")).unwrap(),
        b"payload\n"
    );
    assert_eq!(copied.mode() & 0o7777, 0o755);
    // Owned by the state owner, not the stock's uid 1234
    // (docs/security.md#published-objects-belong-to-the-state-owner).
    assert_eq!((copied.uid(), copied.gid()), (0, 0));
    assert!(
        run.stderr.contains("dangling symlink") && run.stderr.contains("/nonexistent/target"),
        "{}",
        run.stderr
    );
    let data = std::fs::symlink_metadata(object.join("data")).unwrap();
    let again = std::fs::symlink_metadata(object.join("data-again")).unwrap();
    assert_eq!(data.mode() & 0o7777, 0o755, "set-uid must be stripped");
    assert_eq!((data.uid(), data.gid()), (0, 0), "the state owner's");
    assert_eq!((again.uid(), again.gid()), (0, 0));
    let manifest = std::fs::read_to_string(manifest_of_dir(&object)).unwrap();
    assert!(manifest.contains("1234"), "the stock's owner is recorded");
    assert_ne!(
        data.ino(),
        again.ino(),
        "hard links must become separate files"
    );
    assert_eq!(data.nlink(), 1);
    // The stock itself is untouched.
    let stock_md = std::fs::symlink_metadata(cron.join("data")).unwrap();
    assert_eq!(stock_md.mode() & 0o7777, 0o4755);
    root.run(&["verify"]).ok();
}

#[test]
fn foreign_scan_directory_entries_are_never_touched() {
    let root = Root::example();
    std::fs::create_dir(root.scandir()).unwrap();
    std::os::unix::fs::symlink("/somewhere/else", root.scandir().join("web")).unwrap();
    std::fs::write(root.scandir().join("notes.txt"), "mine\n").unwrap();
    std::os::unix::fs::symlink("/opt/other", root.scandir().join("other")).unwrap();

    let run = root.commit().ok();
    let web = root.scandir().join("web");
    assert!(
        run.stderr.contains("warning") && run.stderr.contains(&web.display().to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_link(&web).unwrap(),
        Path::new("/somewhere/else")
    );
    assert_eq!(
        std::fs::read_to_string(root.scandir().join("notes.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(
        std::fs::read_link(root.scandir().join("other")).unwrap(),
        Path::new("/opt/other")
    );
    assert_eq!(
        std::fs::read_link(root.scandir().join("db")).unwrap(),
        root.live().join("db")
    );

    // Removing web from the stock does not remove the foreign link either.
    std::fs::remove_dir_all(root.stock().join("web")).unwrap();
    root.commit().ok();
    assert_eq!(
        std::fs::read_link(&web).unwrap(),
        Path::new("/somewhere/else")
    );
    assert!(root.scandir().join("notes.txt").is_file());
}

/// Spawns `flock -x -F <state>/.lock sleep 60` and waits until it holds the
/// lock. `-F` (no fork) makes the holder the very process KillOnDrop kills;
/// with a fork, the `sleep` child would inherit the lock and outlive it.
fn hold_manager_lock(root: &Root) -> KillOnDrop {
    let lock = root.state().join(".lock");
    let child = std::process::Command::new("flock")
        .args(["-x", "-F"])
        .arg(&lock)
        .args(["sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .expect("flock(1) from util-linux");
    let holder = KillOnDrop(child);
    wait_until(
        "flock to hold the manager lock",
        Duration::from_secs(10),
        || {
            // `flock -n -s … true` fails while the exclusive holder has it.
            !std::process::Command::new("flock")
                .args(["-n", "-s"])
                .arg(&lock)
                .arg("true")
                .status()
                .unwrap()
                .success()
        },
    );
    holder
}

#[test]
fn commit_gives_up_with_75_while_another_process_holds_the_lock() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let snap = root.snapshot();
    let _holder = hold_manager_lock(&root);
    let lock = root.state().join(".lock");

    let run = root
        .run(&["--json", "--wait", "0.5", "commit"])
        .code(exit::TEMP_FAIL)
        .kind("manager_lock_held");
    assert!(
        run.stderr.contains(&lock.display().to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(run.json()["error"]["path"], lock.display().to_string());
    assert!(run.stderr.contains("waiting up to 0.5s"), "{}", run.stderr);
    assert_eq!(root.snapshot(), snap);

    let status = root.run(&["--json", "status"]).ok().json();
    assert_eq!(status["manager_lock_held"], true);
}

#[test]
fn commit_waits_for_the_lock_and_then_proceeds() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let holder = hold_manager_lock(&root);
    let mut waiter = KillOnDrop(
        root.command(&["--wait", "30", "commit"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The waiter announces itself before waiting; it cannot finish while
    // the lock is held, so it must still be running after announcing.
    // Keep the pipe open until the end: a closed stderr would kill the waiter.
    let mut stderr = std::io::BufReader::new(waiter.0.stderr.take().unwrap());
    let mut first_line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first_line).unwrap();
    assert!(first_line.contains("waiting up to 30.0s"), "{first_line}");
    assert!(waiter.0.try_wait().unwrap().is_none());
    assert_eq!(root.live_generation(), Some(1));
    drop(holder);
    let status = waiter.0.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{status:?}: {rest}");
    assert_eq!(root.live_generation(), Some(2));
}

#[test]
fn two_concurrent_commits_are_serialized() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let spawn = || {
        root.command(&["commit"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(a.status.success(), "{a:?}");
    assert!(b.status.success(), "{b:?}");
    // Exactly one made generation 2; the other found it up to date.
    assert_eq!(generations(&root), vec![1, 2]);
    assert_eq!(root.live_generation(), Some(2));
    let texts = [out(&a), out(&b)];
    assert_eq!(
        texts.iter().filter(|t| t.contains("up to date")).count(),
        1,
        "{texts:?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("generation 2 is live"))
            .count(),
        1,
        "{texts:?}"
    );
    root.run(&["verify"]).ok();
}

#[test]
fn a_broken_scan_directory_fails_before_the_switch() {
    // Regression: a scan directory that cannot be opened (here a dangling
    // symlink) used to be found only after `live` was switched (exit 1).
    let root = Root::example();
    root.commit().ok();
    std::fs::rename(root.scandir(), root.path().join("service.real")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/scan", root.scandir()).unwrap();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let run = root.commit();
    assert!(
        !run.exited(exit::OK) && !run.exited(exit::AFTER_SWITCH),
        "exit {}: {}",
        run.code,
        run.stderr
    );
    assert!(run.stderr.contains("service"), "{}", run.stderr);
    assert_eq!(root.live_generation(), Some(1));
    assert!(!root.state().join(layout::TXN).exists());
}

/// `--help` text of the real binary at a fixed width.
fn help(args: &[&str]) -> String {
    let out = std::process::Command::new(bin())
        .args(args)
        .env("COLUMNS", "100")
        .env_remove("TERM")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_snapshot() {
    insta::assert_snapshot!("help", help(&["--help"]));
}

#[test]
fn commit_help_snapshot() {
    insta::assert_snapshot!("commit_help", help(&["commit", "--help"]));
}

#[test]
fn usage_error_exits_2() {
    let root = Root::example();
    let run = root
        .run(&["--json", "rollback", "not-a-number"])
        .code(exit::USAGE)
        .kind("usage");
    assert!(run.stderr.contains("invalid value"), "{}", run.stderr);
    root.run(&["--json", "--wait", "-1", "commit"])
        .code(exit::USAGE)
        .kind("usage");
}

#[test]
fn verify_ignores_runtime_entries_a_supervisor_creates() {
    let root = Root::example();
    root.commit().ok();
    // What s6-supervise and runsv create inside the live service directory.
    let web = root.scandir().join("web");
    std::fs::create_dir(web.join("supervise")).unwrap();
    std::fs::write(web.join("supervise/status"), "x").unwrap();
    std::fs::create_dir(web.join("event")).unwrap();
    std::fs::create_dir(web.join("log/supervise")).unwrap();
    root.run(&["verify"]).ok();
    // …but anything else added by hand is reported.
    std::fs::write(web.join("extra"), "x").unwrap();
    let run = root.run(&["verify"]).code(exit::DATA_ERR);
    assert!(
        run.stderr.contains("extra: not in the manifest"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_same_size_same_mtime_rewrite_is_still_detected() {
    // The stat cache must not hide a change that keeps size and mtime
    // (ctime and, for a replaced file, the inode still differ).
    let root = Root::example();
    root.commit().ok();
    let version = root.stock().join("web/env/VERSION");
    let reference = root.path().join("reference");
    std::fs::write(&reference, "").unwrap();
    let touch_r = |path: &Path| {
        let ok = std::process::Command::new("touch")
            .arg("-r")
            .arg(&reference)
            .arg(path)
            .status()
            .unwrap();
        assert!(ok.success());
    };
    touch_r(&version);
    root.commit().ok(); // mtime changed, content did not: up to date
    assert_eq!(generations(&root), vec![1]);
    std::fs::write(&version, "9.9\n").unwrap();
    touch_r(&version);
    let run = root.commit().ok();
    assert!(
        run.stdout.contains("generation 2 is live"),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read_to_string(root.scandir().join("web/env/VERSION")).unwrap(),
        "9.9\n"
    );
}

#[test]
fn later_stock_trees_override_and_disabled_services_are_dropped() {
    let root = Root::example();
    let admin = root.path().join("admin");
    std::fs::create_dir_all(admin.join("web")).unwrap();
    std::fs::write(admin.join("web/run"), "#!/bin/sh\n# admin's web\n").unwrap();
    std::fs::set_permissions(
        admin.join("web/run"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    root.config("stock: [stock, admin]\ndisabled: [cron]\n");
    root.commit().ok();
    let names: Vec<String> = scan_links(&root).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["db", "web"]);
    assert_eq!(
        std::fs::read_to_string(root.scandir().join("web/run")).unwrap(),
        "#!/bin/sh\n# admin's web\n"
    );
    assert!(!root.scandir().join("web/env").exists());
}

/// A scan directory path that is itself a symlink (Void Linux's
/// `/var/service` points into `/etc/runit/runsvdir/`) is followed.
#[test]
fn a_scan_directory_reached_through_a_symlink_is_used() {
    let root = Root::example();
    let real = root.path().join("runsvdir-current");
    std::fs::create_dir(&real).unwrap();
    std::os::unix::fs::symlink(&real, root.path().join("var-service")).unwrap();
    root.config("scandir: var-service\n");
    root.commit().ok();
    for name in ["cron", "db", "web"] {
        assert_eq!(
            std::fs::read_link(real.join(name)).unwrap(),
            root.live().join(name),
            "{name}"
        );
    }
    assert!(
        std::fs::symlink_metadata(root.path().join("var-service"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// The harness's copy of the on-disk names (`harness::layout`, private in
/// src/state/layout.rs) is what the binary writes: a drift fails here, not
/// as a negative check (`!exists()`) elsewhere that can no longer fail.
/// The interrupted-transaction log and the pending marker are proven to
/// exist under their names by recovery.rs and stock_busy.rs.
#[test]
fn layout_names_match_the_binary() {
    let root = Root::example();
    root.commit().ok();
    let state = root.state();
    assert!(state.join(layout::HISTORY).is_file());
    assert!(state.join(layout::STORE).is_dir());
    assert!(state.join(layout::GENERATIONS).join("1").is_dir());
    assert_eq!(
        std::fs::read_link(state.join(layout::LIVE)).unwrap(),
        Path::new(layout::GENERATIONS).join("1")
    );
}

/// A `--root` reached through a symlink, and a `state:` that is one, failed
/// on the first run (74). The configured path's own symlinks are followed
/// once; beneath it, everything stays fd-relative: a symlink planted inside
/// the state is still not followed
/// (docs/security.md#a-state-path-reached-through-a-symlink).
#[test]
fn a_root_and_a_state_reached_through_symlinks_work_from_the_first_run() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real-root");
    std::fs::create_dir(&real).unwrap();
    copy_tree(&fixture_stock(), &{
        std::fs::create_dir(real.join("stock")).unwrap();
        real.join("stock")
    });
    let link = tmp.path().join("link-root");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let run = |root: &Path, args: &[&str]| {
        Run::from(
            Command::new(bin())
                .arg("--root")
                .arg(root)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    };
    // --root through a symlink: the first commit, and every later command.
    run(&link, &["commit"]).ok();
    assert!(real.join("state/generations/1").is_dir());
    std::fs::write(
        real.join("stock/web/run"),
        "#!/bin/sh\n# v2\nexec sleep 1\n",
    )
    .unwrap();
    run(&link, &["commit"]).ok();
    for args in [
        &["status"][..],
        &["list"],
        &["verify"],
        &["recover"],
        &["gc"],
    ] {
        run(&link, args).ok();
    }
    assert_eq!(
        std::fs::read_link(real.join("state/live")).unwrap(),
        Path::new("generations/2")
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // `state:` itself a symlink (to a directory made beforehand).
    let root = Root::example();
    let state_real = root.path().join("state-real");
    std::fs::create_dir(&state_real).unwrap();
    std::os::unix::fs::symlink(&state_real, root.path().join("state-link")).unwrap();
    root.config("state: state-link\n");
    root.commit().ok();
    root.run(&["status"]).ok();
    assert!(state_real.join("generations/1").is_dir());
    assert!(state_real.join("history.log").is_file());

    // Beneath the state, nothing is followed: a planted symlink is refused
    // and what it leads to is left as it was.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::rename(real.join("state/store"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, real.join("state/store")).unwrap();
    let listing = |dir: &Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing(&elsewhere);
    std::fs::write(
        real.join("stock/web/run"),
        "#!/bin/sh\n# v3\nexec sleep 1\n",
    )
    .unwrap();
    let refused = run(&link, &["commit"]);
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert_eq!(listing(&elsewhere), before);
}
