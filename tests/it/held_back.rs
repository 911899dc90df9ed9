//! Held-back services (docs/design.md#held-back): by default one broken
//! service never blocks the others. A commit takes every valid service; a
//! service with problems keeps its live version (or is not added), and is
//! named with path and fix on stderr, in `plan`, in `status` and in the
//! JSON `held_back` lists. `--strict` and `strict: true` are all or nothing.

use std::os::unix::fs::PermissionsExt;

use crate::harness::*;

/// The live `run` of a service.
fn live_run(root: &Root, service: &str) -> String {
    std::fs::read_to_string(root.live().join(service).join("run")).unwrap()
}

/// The example committed, then a good change to `web` and a broken `cron`
/// (no `run`); returns the path the problem names.
fn good_web_broken_cron(root: &Root) -> String {
    root.commit().ok();
    root.write_stock("web/run", "#!/bin/sh\n# web 2\nexec sleep 100000\n", 0o755);
    std::fs::remove_file(root.stock().join("cron/run")).unwrap();
    root.stock().join("cron").display().to_string()
}

#[test]
fn a_broken_service_keeps_its_live_version_and_the_good_one_goes_live() {
    let root = Root::example();
    let named = good_web_broken_cron(&root);
    let cron_before = live_run(&root, "cron");

    let plan = root.run(&["plan"]).ok();
    assert!(plan.stdout.contains("cron: held back"), "{}", plan.stdout);
    assert!(plan.stdout.contains(&named), "{}", plan.stdout);
    let plan = root.run(&["--json", "plan"]).ok().json();
    assert_eq!(plan["held_back"][0]["service"], "cron", "{plan}");
    assert_eq!(plan["held_back"][0]["transient"], false, "{plan}");

    let run = root.run(&["--json", "commit"]).ok();
    assert!(run.stderr.contains("cron: held back"), "{}", run.stderr);
    assert!(run.stderr.contains(&named), "{}", run.stderr);
    let doc = run.json();
    let held = &doc["held_back"][0];
    assert_eq!(held["service"], "cron", "{doc}");
    let problem = &held["problems"][0];
    assert_eq!(problem["path"], named.as_str(), "{doc}");
    assert!(problem["what"].as_str().unwrap().contains("run"), "{doc}");
    assert!(!problem["fix"].as_str().unwrap().is_empty(), "{doc}");

    assert_eq!(root.live_generation(), Some(2));
    assert!(live_run(&root, "web").contains("web 2"));
    assert_eq!(
        live_run(&root, "cron"),
        cron_before,
        "cron kept its live version"
    );
    assert!(root.scandir().join("cron/run").is_file());

    let status = root.run(&["status"]).ok();
    assert!(
        status.stdout.contains("held back:    cron"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains(&named), "{}", status.stdout);
    let status = root.run(&["--json", "status"]).ok().json();
    assert_eq!(status["held_back"][0]["service"], "cron", "{status}");

    // Fixed: the next commit takes it, and `status` no longer names it.
    root.write_stock(
        "cron/run",
        "#!/bin/sh\n# cron 2\nexec sleep 100000\n",
        0o755,
    );
    let run = root.run(&["--json", "commit"]).ok();
    assert_eq!(
        run.json()["held_back"],
        serde_json::json!([]),
        "{}",
        run.stdout
    );
    assert!(live_run(&root, "cron").contains("cron 2"));
    let status = root.run(&["--json", "status"]).ok().json();
    assert_eq!(status["held_back"], serde_json::json!([]), "{status}");
    assert!(!root.run(&["status"]).ok().stdout.contains("held back"));
}

#[test]
fn a_new_broken_service_is_not_added() {
    let root = Root::example();
    root.commit().ok();
    root.add_service("fresh", "fresh");
    root.write_stock("broken/run", "#!/bin/sh\n", 0o644);
    let run = root.run(&["commit"]).ok();
    assert!(run.stderr.contains("broken: held back"), "{}", run.stderr);
    assert!(
        run.stdout
            .contains("held back (live version kept, problems on stderr): broken"),
        "{}",
        run.stdout
    );
    assert!(root.live().join("fresh/run").is_file());
    assert!(!root.live().join("broken").exists());
    assert!(!root.scandir().join("broken").exists());
    // A held-back service cannot be restarted: a usage error, nothing done.
    let run = root
        .run(&["commit", "--restart", "broken"])
        .code(exit::USAGE);
    assert!(run.stderr.contains("held back"), "{}", run.stderr);
}

#[test]
fn strict_is_all_or_nothing_and_changes_nothing() {
    let root = Root::example();
    let named = good_web_broken_cron(&root);
    let before = root.snapshot();
    let (kind, run) = root.error_kind(&["commit", "--strict"]);
    run.code(exit::DATA_ERR);
    assert_eq!(kind, "stock");
    assert_eq!(root.snapshot(), before);
    let (kind, run) = root.error_kind(&["plan", "--strict"]);
    let run = run.code(exit::DATA_ERR);
    assert_eq!(kind, "stock");
    assert!(run.stderr.contains(&named), "{}", run.stderr);
    // `check` lists every problem and exits 65, strict or not.
    root.run(&["check"]).code(exit::DATA_ERR);

    // The same from the config.
    root.config("stock: [stock]\nstrict: true\n");
    let (kind, run) = root.error_kind(&["commit"]);
    run.code(exit::DATA_ERR);
    assert_eq!(kind, "stock");
    assert_eq!(root.snapshot(), before);
    assert_eq!(root.live_generation(), Some(1));
}

#[test]
fn a_service_being_written_is_held_back_alone_and_recorded_as_pending() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/run.dpkg-new", "#!/bin/sh\n", 0o755);
    root.write_stock(
        "cron/run",
        "#!/bin/sh\n# cron 2\nexec sleep 100000\n",
        0o755,
    );
    let run = root.run(&["--json", "commit"]).ok();
    let doc = run.json();
    assert_eq!(doc["held_back"][0]["service"], "web", "{doc}");
    assert_eq!(doc["held_back"][0]["transient"], true, "{doc}");
    assert!(live_run(&root, "cron").contains("cron 2"));
    let pending = root.state().join(layout::PENDING);
    assert!(pending.is_file(), "{}", run.stderr);
    assert!(
        std::fs::read_to_string(&pending).unwrap().contains("web"),
        "the pending marker names the service"
    );
    // The package manager is done: `sync` applies the pending commit.
    std::fs::rename(
        root.stock().join("web/run.dpkg-new"),
        root.stock().join("web/run"),
    )
    .unwrap();
    root.run(&["sync"]).ok();
    assert!(!pending.exists());
    assert_eq!(live_run(&root, "web"), "#!/bin/sh\n");
}

#[test]
fn an_alias_in_the_same_tree_is_supervised_once() {
    let root = Root::example();
    std::os::unix::fs::symlink("web", root.stock().join("www")).unwrap();
    let check = root.run(&["check"]).ok();
    assert!(check.stdout.contains("an alias of web"), "{}", check.stdout);
    let run = root.run(&["commit"]).ok();
    assert!(run.stderr.contains("an alias of web"), "{}", run.stderr);
    assert!(root.live().join("web/run").is_file());
    assert!(!root.live().join("www").exists());
    assert!(!root.scandir().join("www").exists());
}

#[test]
fn a_symlink_out_of_the_tree_is_held_back_as_that_name() {
    let root = Root::example();
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, root.stock().join("ext")).unwrap();
    let run = root.run(&["--json", "commit"]).ok();
    assert_eq!(
        run.json()["held_back"][0]["service"],
        "ext",
        "{}",
        run.stdout
    );
    assert!(root.live().join("web/run").is_file());
    assert!(!root.live().join("ext").exists());
}

/// `disabled:` and a later tree's override apply before any top-level
/// check: a bad entry that is disabled or overridden is no problem.
#[test]
fn disabled_and_overridden_bad_entries_are_no_problem() {
    let root = Root::example();
    std::fs::write(root.stock().join("notes.txt"), "x").unwrap();
    std::fs::write(root.stock().join("db2"), "x").unwrap();
    let extra = root.path().join("extra");
    std::fs::create_dir_all(extra.join("db2")).unwrap();
    let run_file = extra.join("db2/run");
    std::fs::write(&run_file, "#!/bin/sh\nexec sleep 100000\n").unwrap();
    std::fs::set_permissions(&run_file, std::fs::Permissions::from_mode(0o755)).unwrap();
    root.config("stock: [stock, extra]\ndisabled: [notes.txt]\nstrict: true\n");
    let check = root.run(&["check"]).ok();
    assert!(
        check.stdout.contains("stock OK: 4 services"),
        "{}",
        check.stdout
    );
    root.commit().ok();
    assert!(root.live().join("db2/run").is_file());
}

#[test]
fn s6rc_source_is_held_back_like_any_other_problem() {
    let root = Root::example();
    root.commit().ok();
    root.add_service("oneshot-src", "x");
    root.write_stock("oneshot-src/type", "oneshot\n", 0o644);
    let run = root.run(&["--json", "commit"]).ok();
    let doc = run.json();
    assert_eq!(doc["held_back"][0]["service"], "oneshot-src", "{doc}");
    assert!(run.stderr.contains("s6-rc source"), "{}", run.stderr);
    assert!(!root.live().join("oneshot-src").exists());
}
