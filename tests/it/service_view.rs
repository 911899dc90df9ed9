//! `status NAME` and `services` without a supervisor: since which
//! generation a service has its object, who holds its update lock, which
//! programs pin it, whether it is held back (docs/cli.md#status-name-services).
//! The supervisor's part runs under s6 and runit in `slow::service_view_supervised`.

use std::time::Duration;

use crate::harness::*;

/// A child of the binary (`lock` or `exec`) that runs until dropped.
fn spawn_bin(root: &Root, args: &[&str]) -> KillOnDrop {
    KillOnDrop(root.command(args).spawn().unwrap())
}

/// Generation 1: all three; 2: web changes; 3: web back as in 1, db changes.
/// web's run to 3 is broken at 2, so web is "since 3", not "since 1".
fn three_generations() -> Root {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    root.commit().ok();
    let v1 = std::fs::read_to_string(fixture_stock().join("web/env/VERSION")).unwrap();
    root.write_stock("web/env/VERSION", &v1, 0o644);
    root.write_stock("db/env/EXTRA", "1\n", 0o644);
    root.commit().ok();
    assert_eq!(root.live_generation(), Some(3));
    root
}

#[test]
fn status_name_says_since_which_generation_in_an_unbroken_run() {
    let root = three_generations();
    let web = root.run(&["--json", "status", "web"]).ok().json();
    assert_eq!(web["service"], "web");
    assert_eq!(web["since_generation"], 3, "{web}");
    let cron = root.run(&["--json", "status", "cron"]).ok().json();
    assert_eq!(cron["since_generation"], 1, "{cron}");
    let live_cron = object_of_dir(&std::fs::canonicalize(root.live().join("cron")).unwrap());
    assert_eq!(cron["object"], live_cron.as_str());
    assert!(cron["supervisor"].is_null(), "{cron}");
    assert_eq!(cron["update_lock_holders"], serde_json::json!([]));

    let human = root.run(&["status", "cron"]).ok().stdout;
    // A human time, never clock ticks: "just now" or "N s ago" on a slow machine.
    let live_line = human.lines().find(|l| l.starts_with("live:")).unwrap();
    assert!(
        live_line.contains("(since generation 1, made ")
            && (live_line.ends_with(" just now)") || live_line.ends_with(" s ago)")),
        "{human}"
    );
    for line in [
        "update lock:  free",
        "pinned by:    nothing",
        "held back:    no",
        "pending:      none",
    ] {
        assert!(human.contains(line), "no {line:?}:\n{human}");
    }

    let all = root.run(&["services"]).ok().stdout;
    assert!(all.starts_with("live generation 3: 3 services\n"), "{all}");
    assert!(all.contains("  web      gen 3, "), "{all}");
    assert!(all.contains("  cron     gen 1, "), "{all}");
    let json = root.run(&["--json", "services"]).ok().json();
    let names: Vec<&str> = json["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cron", "db", "web"]);
}

#[test]
fn status_name_names_update_lock_holders_and_pinning_programs() {
    let root = Root::example();
    root.write_stock("web/sleeper", "#!/bin/sh\nexec sleep 30\n", 0o755);
    root.commit().ok();
    let locker = spawn_bin(&root, &["lock", "web", "--", "sleep", "30"]);
    let pinner = spawn_bin(&root, &["exec", "web", "sleeper"]);
    let mut view = serde_json::Value::Null;
    wait_until(
        "the lock and the pin to be held",
        Duration::from_secs(10),
        || {
            view = root.run(&["--json", "status", "web"]).ok().json();
            view["update_lock_holders"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
                && view["pins"].as_array().is_some_and(|a| !a.is_empty())
        },
    );
    assert_eq!(
        view["update_lock_holders"][0]["pid"],
        locker.0.id(),
        "{view}"
    );
    assert_eq!(view["update_lock_holders"][0]["mode"], "shared");
    assert_eq!(view["pins"][0]["object"], view["object"], "{view}");
    let human = root.run(&["status", "web"]).ok().stdout;
    assert!(
        human.contains(&format!("update lock:  held by pid {}", locker.0.id())),
        "{human}"
    );
    assert!(human.contains("pinned by:    pid "), "{human}");
    // The other services are not concerned.
    let db = root.run(&["--json", "status", "db"]).ok().json();
    assert_eq!(db["update_lock_holders"], serde_json::json!([]));
    assert_eq!(db["pins"], serde_json::json!([]));
    let all = root.run(&["services"]).ok().stdout;
    let web_line = all
        .lines()
        .find(|l| l.trim_start().starts_with("web "))
        .unwrap();
    assert!(web_line.contains("update lock held, pinned by 1"), "{all}");
    drop((locker, pinner));
}

#[test]
fn status_name_shows_a_held_back_service_with_its_live_version_and_escaped_names() {
    let root = Root::example();
    root.commit().ok();
    std::fs::remove_file(root.stock().join("db/run")).unwrap();
    std::fs::create_dir_all(root.stock().join("new\nline")).unwrap();
    root.commit().ok();
    let db = root.run(&["--json", "status", "db"]).ok().json();
    assert!(db["object"].is_string(), "the live version is kept: {db}");
    assert_eq!(db["held_back"]["service"], "db", "{db}");
    let human = root.run(&["status", "db"]).ok().stdout;
    assert!(
        human.contains("held back:    db: held back (fix it"),
        "{human}"
    );
    assert!(human.contains("has no `run` file"), "{human}");

    // Held back and never live: listed, said not live, escaped.
    let all = root.run(&["services"]).ok().stdout;
    let line = all.lines().find(|l| l.contains("new\\nline")).expect(&all);
    assert!(
        line.contains("not live") && line.contains("held back"),
        "{all}"
    );
    let new = root.run(&["--json", "status", "new\nline"]).ok().json();
    assert!(new["object"].is_null(), "{new}");
    assert!(new["since_generation"].is_null(), "{new}");
}

#[test]
fn status_of_an_unknown_service_names_it_and_the_fix() {
    let root = Root::example();
    let (kind, before) = root.error_kind(&["status", "web"]);
    assert!(before.exited(exit::DATA_ERR), "{}", before.stderr);
    assert_eq!(kind, "no_generations");
    root.commit().ok();
    let (kind, _) = root.error_kind(&["status", "nope"]);
    assert_eq!(kind, "no_such_service");
    let run = root.run(&["status", "nope"]).code(exit::DATA_ERR);
    assert!(
        run.stderr.contains("generation 1 has no service \"nope\"")
            && run.stderr.contains("`svcdir-update status`"),
        "{}",
        run.stderr
    );
}

#[test]
fn pending_commit_is_shown_for_the_service() {
    let root = Root::example();
    root.commit().ok();
    std::fs::write(
        root.state().join(layout::PENDING),
        "2026-12-02T10:00:00Z nanos 1 pid 42\nthe stock was being written\n",
    )
    .unwrap();
    let human = root.run(&["status", "web"]).ok().stdout;
    assert!(
        human.contains("pending:      a deferred commit: the stock was being written"),
        "{human}"
    );
}
