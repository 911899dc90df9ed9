//! With `--json`, a failure is one error document on stdout
//! (docs/json.md#errors): its `kind` names the `Error` variant, its
//! `exit_code` is the process's, and the human message stays on stderr.
//! Real failures, one per exit code scripts branch on.

use svcdir_update::error::exit;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use crate::harness::*;

/// The error document with the temporary root replaced by `[ROOT]`.
fn normalized(root: &Root, run: &Run) -> String {
    run.stdout
        .replace(&root.path().display().to_string(), "[ROOT]")
}

#[test]
fn bad_stock_is_kind_stock_with_every_problem() {
    let root = Root::example();
    root.commit().ok();
    std::fs::remove_file(root.stock().join("cron/run")).unwrap();
    std::fs::set_permissions(
        root.stock().join("web/run"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (kind, run) = root.error_kind(&["commit"]);
    assert_eq!((kind.as_str(), run.code), ("stock", 65));
    let problems = run.json()["error"]["problems"].as_array().unwrap().clone();
    assert_eq!(problems.len(), 2, "{}", run.stdout);
    assert!(problems.iter().all(|p| p["transient"] == false));
    insta::assert_snapshot!("json_error_bad_stock", normalized(&root, &run));
    assert_eq!(root.live_generation(), Some(1));
}

#[test]
fn a_stock_in_flight_is_kind_stock_busy() {
    let root = Root::example();
    root.commit().ok();
    std::fs::write(root.stock().join("web/run.dpkg-new"), "#!/bin/sh\n").unwrap();
    let (kind, run) = root.error_kind(&["commit"]);
    assert_eq!((kind.as_str(), run.code), ("stock_busy", 75));
    let problem = &run.json()["error"]["problems"][0];
    assert_eq!(problem["transient"], true, "{}", run.stdout);
    assert_eq!(
        problem["path"],
        root.stock().join("web/run.dpkg-new").display().to_string()
    );
}

#[test]
fn a_held_update_lock_is_kind_busy() {
    let root = Root::example();
    root.commit().ok();
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
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let (kind, run) = root.error_kind(&["commit", "--wait", "0"]);
    assert_eq!((kind.as_str(), run.code), ("busy", 75));
    assert!(
        run.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("web")),
        "{}",
        run.stdout
    );
    assert_eq!(root.live_generation(), Some(1));
    drop(holder);
}

#[test]
fn a_group_writable_state_is_kind_unsafe() {
    let root = Root::example();
    root.commit().ok();
    std::fs::set_permissions(root.state(), std::fs::Permissions::from_mode(0o775)).unwrap();
    let (kind, run) = root.error_kind(&["commit"]);
    assert_eq!((kind.as_str(), run.code), ("unsafe", 77));
    insta::assert_snapshot!("json_error_unsafe_state", normalized(&root, &run));
}

#[test]
fn usage_errors_are_kind_usage_from_clap_and_from_the_commands() {
    let root = Root::example();
    // clap's own: an unknown option, no command at all.
    for args in [&["--bogus", "status"][..], &[]] {
        let (kind, run) = root.error_kind(args);
        assert_eq!((kind.as_str(), run.code), ("usage", 2), "{args:?}");
        assert_eq!(run.json()["error"]["path"], serde_json::Value::Null);
    }
    let (_, run) = root.error_kind(&["--bogus", "status"]);
    insta::assert_snapshot!("json_error_usage", run.stdout);
    // The commands' own.
    for args in [
        &["--wait", "-1", "commit"][..],
        &["lock", "bad name", "--", "true"],
    ] {
        let (kind, run) = root.error_kind(args);
        assert_eq!((kind.as_str(), run.code), ("usage", 2), "{args:?}");
    }
    // `--json` after `--` belongs to the program: no document.
    let run = root
        .run(&["--bogus", "lock", "web", "--", "--json"])
        .code(exit::USAGE);
    assert_eq!(run.stdout, "");
}

#[test]
fn a_config_error_names_the_file_as_path() {
    let root = Root::example();
    root.config("supervizor: s6\n");
    let (kind, run) = root.error_kind(&["check"]);
    assert_eq!((kind.as_str(), run.code), ("config", 65));
    assert_eq!(
        run.json()["error"]["path"],
        root.path().join("config.yaml").display().to_string()
    );
}

#[test]
fn help_and_version_are_not_errors_under_json() {
    let root = Root::example();
    let run = root.run(&["--json", "--version"]).ok();
    assert!(run.stdout.starts_with("svcdir-update "), "{}", run.stdout);
    let run = root.run(&["--json", "status", "--help"]).ok();
    assert!(run.stdout.contains("Usage:"), "{}", run.stdout);
}
