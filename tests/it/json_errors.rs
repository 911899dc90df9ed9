//! With `--json`, a failure is one error document on stdout
//! (docs/json.md#errors): its `kind` names the `Error` variant, its
//! `exit_code` is the process's, and the human message stays on stderr.
//! Real failures, one per exit code scripts branch on.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;
use svcdir_update::error::exit;

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
    let (kind, run) = root.error_kind(&["commit", "--strict"]);
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
    let (kind, run) = root.error_kind(&["commit", "--strict"]);
    assert_eq!((kind.as_str(), run.code), ("stock_busy", 75));
    let problem = &run.json()["error"]["problems"][0];
    assert_eq!(problem["transient"], true, "{}", run.stdout);
    assert_eq!(
        problem["path"],
        root.stock().join("web/run.dpkg-new").display().to_string()
    );
}

#[test]
fn a_held_update_lock_is_kind_update_locks_held_with_the_services() {
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
    assert_eq!((kind.as_str(), run.code), ("update_locks_held", 75));
    let error = &run.json()["error"];
    assert_eq!(
        error["services"],
        serde_json::json!(["web"]),
        "{}",
        run.stdout
    );
    let holders = error["holders"].as_array().cloned().unwrap_or_default();
    assert!(
        holders.len() == 1
            && holders[0]
                .as_str()
                .is_some_and(|h| h.starts_with("web: ") && h.contains("sleep 30")),
        "the holder of web's lock is not named: {}",
        run.stdout
    );
    assert_eq!(root.live_generation(), Some(1));
    drop(holder);
}

#[test]
fn a_group_writable_state_is_kind_unsafe_with_path_and_fix() {
    let root = Root::example();
    root.commit().ok();
    std::fs::set_permissions(root.state(), std::fs::Permissions::from_mode(0o775)).unwrap();
    let (kind, run) = root.error_kind(&["commit"]);
    assert_eq!((kind.as_str(), run.code), ("unsafe", 77));
    let error = &run.json()["error"];
    assert_eq!(error["path"], root.state().display().to_string());
    assert_eq!(
        error["fix"],
        format!("run `chmod go-w {}`", root.state().display())
    );
    insta::assert_snapshot!("json_error_unsafe_state", normalized(&root, &run));
}

#[test]
fn a_missing_generation_is_kind_no_such_generation() {
    let root = Root::example();
    root.commit().ok();
    let (kind, run) = root.error_kind(&["rollback", "9"]);
    assert_eq!((kind.as_str(), run.code), ("no_such_generation", 65));
    assert_eq!(run.json()["error"]["generation"], 9);
    insta::assert_snapshot!("json_error_no_such_generation", normalized(&root, &run));
    assert_eq!(root.live_generation(), Some(1));
}

#[test]
fn before_the_first_commit_the_kinds_say_what_is_missing() {
    let root = Root::example();
    for args in [
        &["rollback"][..],
        &["verify"],
        &["exec", "web"],
        &["diff", "1"],
    ] {
        let (kind, run) = root.error_kind(args);
        assert_eq!(
            (kind.as_str(), run.code),
            ("no_generations", 65),
            "{args:?}"
        );
        assert_eq!(
            run.json()["error"]["path"],
            root.state().display().to_string(),
            "{args:?}"
        );
    }
}

#[test]
fn an_unknown_service_is_kind_no_such_service() {
    let root = Root::example();
    root.commit().ok();
    let (kind, run) = root.error_kind(&["exec", "nosuch"]);
    assert_eq!((kind.as_str(), run.code), ("no_such_service", 65));
    let error = &run.json()["error"];
    assert_eq!(
        (&error["service"], &error["generation"]),
        (&serde_json::json!("nosuch"), &serde_json::json!(1)),
        "{}",
        run.stdout
    );
}

#[test]
fn a_damaged_manifest_is_kind_damaged_and_names_it() {
    let root = Root::example();
    root.commit().ok();
    let manifest = root
        .state()
        .join(layout::GENERATIONS)
        .join("1")
        .join(".manifest.yaml");
    std::fs::write(&manifest, "generation: [\n").unwrap();
    let (kind, run) = root.error_kind(&["verify"]);
    assert_eq!((kind.as_str(), run.code), ("damaged", 65));
    assert_eq!(run.json()["error"]["path"], manifest.display().to_string());
}

#[test]
fn a_changed_store_object_is_kind_store_damaged_with_verify_problems() {
    let root = Root::example();
    root.commit().ok();
    let link = root
        .state()
        .join(layout::GENERATIONS)
        .join("1")
        .join("cron");
    let run_file = std::fs::canonicalize(&link).unwrap().join("run");
    std::fs::set_permissions(&run_file, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (kind, run) = root.error_kind(&["verify"]);
    assert_eq!((kind.as_str(), run.code), ("store_damaged", 65));
    let error = &run.json()["error"];
    assert_eq!(error["generation"], 1, "{}", run.stdout);
    let problems = error["problems"].as_array().cloned().unwrap_or_default();
    assert!(
        problems.len() == 1
            && problems[0]
                .as_str()
                .is_some_and(|p| p.contains(&run_file.display().to_string())),
        "the problem does not name {}: {}",
        run_file.display(),
        run.stdout
    );
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
