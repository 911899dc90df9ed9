//! `commit --changed PATH…` / `--changed-from FILE` below the floor
//! (docs/performance.md#hints): only the services the paths name are read,
//! every other live service keeps its object unread, and `verify --stock`
//! names what a wrong hint left behind.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use crate::harness::*;

/// `--json commit --changed PATHS…`, which must succeed.
fn hinted(root: &Root, paths: &[&str]) -> Run {
    let mut args = vec!["--json", "commit", "--changed"];
    args.extend_from_slice(paths);
    root.run(&args).ok()
}

/// The live store object of every live service, by name.
fn live_objects(root: &Root) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(root.live())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_symlink())
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            (name, std::fs::read_link(e.path()).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn object_of(root: &Root, name: &str) -> PathBuf {
    std::fs::read_link(root.live().join(name)).unwrap()
}

/// The services a `--json commit` changed: (name, action), keeps left out.
fn changes(run: &Run) -> Vec<(String, String)> {
    run.json()["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] != "keep")
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn pair(name: &str, action: &str) -> (String, String) {
    (name.to_string(), action.to_string())
}

/// The example root (web, db, cron), committed.
fn committed() -> Root {
    let root = Root::example();
    root.commit().ok();
    root
}

fn stock_path(root: &Root, rel: &str) -> String {
    root.stock().join(rel).display().to_string()
}

#[test]
fn a_hinted_commit_restarts_the_named_service_and_leaves_an_unnamed_change_to_verify_stock() {
    let root = committed();
    let db = object_of(&root, "db");
    root.add_service("web", "web v2");
    root.add_service("db", "db v2");

    let run = hinted(&root, &[&stock_path(&root, "web/run")]);
    assert_eq!(changes(&run), [pair("web", "restart")]);
    assert_eq!(object_of(&root, "db"), db, "db was not named: kept unread");
    assert!(
        std::fs::read_to_string(root.scandir().join("web/run"))
            .unwrap()
            .contains("web v2")
    );

    // The change the hint missed is drift, named by verify --stock.
    let (kind, run) = root.error_kind(&["verify", "--stock"]);
    assert_eq!(kind, "stock_drift");
    assert!(run.exited(exit::DATA_ERR));
    let drifted = run.json()["error"]["services"].clone();
    assert_eq!(drifted.as_array().unwrap().len(), 1, "{drifted}");
    assert!(
        drifted[0].as_str().unwrap().starts_with("db: "),
        "{drifted}"
    );

    // A plain commit reads everything and takes it.
    let run = root.run(&["--json", "commit"]).ok();
    assert_eq!(changes(&run), [pair("db", "restart")]);
    let run = root.run(&["verify", "--stock"]).ok();
    assert!(
        run.stdout.contains("matches live for all 3"),
        "{}",
        run.stdout
    );
}

#[test]
fn hints_add_and_remove_services() {
    let root = committed();
    root.add_service("new", "new");
    std::fs::remove_dir_all(root.stock().join("cron")).unwrap();
    let run = hinted(
        &root,
        &[&stock_path(&root, "new/run"), &stock_path(&root, "cron")],
    );
    assert_eq!(changes(&run), [pair("cron", "stop"), pair("new", "start")]);
    let names: Vec<String> = live_objects(&root).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["db", "new", "web"]);
    root.run(&["verify", "--stock"]).ok();
}

#[test]
fn paths_outside_the_stock_change_nothing_and_are_counted_at_verbose() {
    let root = committed();
    let before = live_objects(&root);
    root.add_service("web", "web v2");
    let run = root
        .run(&[
            "-v",
            "commit",
            "--changed",
            "/usr/bin/ls",
            "usr/share/doc/x",
            &root.stock().display().to_string(),
        ])
        .ok();
    assert!(run.stdout.starts_with("up to date"), "{}", run.stdout);
    assert!(
        run.stderr.contains("3 name none"),
        "the ignored paths are counted: {}",
        run.stderr
    );
    assert_eq!(live_objects(&root), before);
}

/// Relative paths, as pacman's `NeedsTargets` prints them (no leading
/// slash), read from standard input and from a file.
#[test]
fn changed_from_reads_relative_paths_from_stdin_and_from_a_file() {
    let root = committed();
    root.add_service("web", "web v2");
    root.add_service("db", "db v2");
    let relative = |rel: &str| stock_path(&root, rel).trim_start_matches('/').to_string();
    let mut child = root
        .command(&["--json", "commit", "--changed-from", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let list = format!("usr/bin/unrelated\n{}\n\n", relative("web/run"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let run = Run::from(child.wait_with_output().unwrap()).ok();
    assert_eq!(changes(&run), [pair("web", "restart")]);

    let file = root.path().join("targets");
    std::fs::write(&file, format!("{}\n", relative("db/"))).unwrap();
    let run = root
        .run(&[
            "--json",
            "commit",
            "--changed-from",
            &file.display().to_string(),
        ])
        .ok();
    assert_eq!(changes(&run), [pair("db", "restart")]);

    let (kind, run) = root.error_kind(&["commit", "--changed-from", "/nonexistent/targets"]);
    assert_eq!(kind, "io");
    assert!(run.exited(exit::IO_ERR));
}

#[test]
fn a_path_under_a_restart_on_path_restarts_its_watcher() {
    let root = Root::example();
    let daemon = root.path().join("usr/sbin/webd");
    std::fs::create_dir_all(daemon.parent().unwrap()).unwrap();
    std::fs::write(&daemon, "webd v1\n").unwrap();
    root.config(&format!("restart_on:\n  web: [{}]\n", daemon.display()));
    root.commit().ok();
    std::fs::write(&daemon, "webd v2\n").unwrap();
    let run = hinted(&root, &[&daemon.display().to_string()]);
    assert_eq!(changes(&run), [pair("web", "restart")]);
    root.run(&["verify", "--stock"]).ok();
}

/// A later stock tree overrides an earlier one for the same name: a hint
/// into the overridden copy reads the service from the later tree.
#[test]
fn an_overridden_service_is_read_from_the_tree_that_wins() {
    let root = Root::example();
    let admin = root.path().join("admin");
    std::fs::create_dir(&admin).unwrap();
    copy_tree(&root.stock().join("web"), &admin.join("web"));
    root.config("stock: [stock, admin]\n");
    root.commit().ok();
    let web = object_of(&root, "web");

    root.add_service("web", "overridden, never used");
    let run = hinted(&root, &[&stock_path(&root, "web/run")]);
    assert_eq!(changes(&run), []);
    assert_eq!(object_of(&root, "web"), web);

    std::fs::write(admin.join("web/run"), "#!/bin/sh\n# admin's web v2\n").unwrap();
    let hint = admin.join("web/run").display().to_string();
    let run = hinted(&root, &[&hint]);
    assert_eq!(changes(&run), [pair("web", "restart")]);
    assert!(
        std::fs::read_to_string(root.scandir().join("web/run"))
            .unwrap()
            .contains("admin's web v2")
    );
    root.run(&["verify", "--stock"]).ok();
}

#[test]
fn a_named_disabled_service_stops_as_in_a_full_commit() {
    let root = committed();
    root.config("disabled: [cron]\n");
    let run = hinted(&root, &[&stock_path(&root, "cron/run")]);
    assert_eq!(changes(&run), [pair("cron", "stop")]);
    root.run(&["verify", "--stock"]).ok();
}

/// With nothing live there is no generation to take the other services
/// from: the whole stock is read.
#[test]
fn a_first_hinted_commit_reads_the_whole_stock() {
    let root = Root::example();
    let run = hinted(&root, &["/usr/bin/ls"]);
    assert_eq!(
        changes(&run),
        [
            pair("cron", "start"),
            pair("db", "start"),
            pair("web", "start")
        ]
    );
}

#[test]
fn hints_do_not_combine_with_restart_or_rehash() {
    let root = committed();
    for extra in ["--restart", "--rehash", "--dry-run"] {
        let mut args = vec!["commit", "--changed", "/x", extra];
        if extra == "--restart" {
            args.push("web");
        }
        root.run(&args).code(exit::USAGE);
    }
}

/// A service no path names is not read at all: its problem is neither
/// reported nor held back by a hinted commit; what a full commit held back
/// stays recorded for `status` across hinted commits.
#[test]
fn an_unnamed_service_is_not_read_and_its_held_back_record_stays() {
    let root = committed();
    let db = object_of(&root, "db");
    std::fs::set_permissions(
        root.stock().join("db/run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    root.add_service("web", "web v2");
    let run = hinted(&root, &[&stock_path(&root, "web/run")]);
    assert!(!run.stderr.contains("db"), "db was read: {}", run.stderr);
    assert_eq!(run.json()["held_back"], serde_json::json!([]));

    // A full commit reads db and holds it back; a hinted one keeps that.
    let run = root.run(&["--json", "commit"]).ok();
    assert_eq!(run.json()["held_back"][0]["service"], "db");
    root.add_service("web", "web v3");
    let run = hinted(&root, &[&stock_path(&root, "web/run")]);
    assert_eq!(changes(&run), [pair("web", "restart")]);
    assert_eq!(run.json()["held_back"][0]["service"], "db");
    assert_eq!(object_of(&root, "db"), db);
    assert!(root.run(&["status"]).ok().stdout.contains("db: held back"));
}

/// A path through an alias (a symlink to a service of the same tree)
/// names the service it points to.
#[test]
fn a_path_through_an_alias_names_its_target() {
    let root = Root::example();
    std::os::unix::fs::symlink("web", root.stock().join("www")).unwrap();
    root.commit().ok();
    root.add_service("web", "web v2");
    let run = hinted(&root, &[&stock_path(&root, "www/run")]);
    assert_eq!(changes(&run), [pair("web", "restart")]);
    root.run(&["verify", "--stock"]).ok();
}

/// A relative path is taken from `/` (pacman's form); typed by an operator
/// in a stock tree, it names nothing there, and the commit says so instead
/// of quietly finding everything up to date.
#[test]
fn a_relative_path_that_names_a_service_only_from_the_working_directory_is_warned_about() {
    let root = committed();
    root.add_service("web", "web v2");
    let out = root
        .command(&["commit", "--changed", "web/run"])
        .current_dir(root.stock())
        .output()
        .unwrap();
    let run = Run::from(out).ok();
    assert!(run.stdout.starts_with("up to date"), "{}", run.stdout);
    assert!(
        run.stderr.contains("--changed web/run") && run.stderr.contains("pass it absolute"),
        "{}",
        run.stderr
    );
    let absolute = hinted(&root, &[&stock_path(&root, "web/run")]);
    assert_eq!(changes(&absolute), vec![pair("web", "restart")]);
}
