//! Real supervisors (issue 4): a commit restarts exactly what changed,
//! never two instances at once, and `--check-up` rolls back by itself.
//! Every test runs once with s6-svscan, once with runsvdir and once with
//! daemontools' svscan.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::supervise_harness::*;

/// A root with services `names`, committed, with a scanner running them all.
fn running(family: Family, names: &[&str]) -> (Root, Scanner) {
    let root = Root::empty();
    configure(&root, family);
    for name in names {
        add_logging_service(&root, name, "v1");
    }
    root.commit().ok();
    let scanner = Scanner::start(&root, family);
    for name in names {
        scanner.wait_pid(name);
    }
    (root, scanner)
}

fn five_services_change_one_add_one_remove_one(family: Family) {
    let (root, scanner) = running(family, &["a", "b", "c", "web", "old"]);
    let before: Vec<u32> = ["a", "b", "c"]
        .iter()
        .map(|n| scanner.wait_pid(n))
        .collect();
    let web_before = scanner.wait_pid("web");
    let old_object = live_object(&root, "old");
    let web_v1_object = live_object(&root, "web");
    let old_pid = scanner.wait_pid("old");
    let old_supervisors = scanner.supervisors_of(&old_object);
    assert_eq!(old_supervisors.len(), 1, "one supervisor for old");

    add_logging_service(&root, "web", "v2");
    add_logging_service(&root, "new", "v1");
    remove_service(&root, "old");
    let run = root.commit().ok();
    let lines = squeezed(&run.stdout);
    for line in [
        "web restart: run changed",
        "new start: new service",
        "old stop: removed from stock",
    ] {
        assert!(lines.iter().any(|l| l == line), "{line:?} in {lines:#?}");
    }

    // The changed one runs the new `run`, exactly once.
    let mut web_after = 0;
    wait_until("web v2 up", REACT, || {
        web_after = scanner.service_pid("web").unwrap_or(0);
        runs(&root, "web")
            .iter()
            .any(|(p, t)| *p == web_after && t == "v2")
    });
    assert_ne!(web_after, web_before);
    assert!(!alive(web_before), "old web {web_before} still runs");
    // The added one runs.
    scanner.wait_pid("new");
    // The removed one is gone, and so is its supervisor.
    wait_until("old's supervisor exited", REACT, || {
        old_supervisors.iter().all(|&p| !alive(p))
    });
    assert!(!alive(old_pid), "removed service {old_pid} still runs");
    assert!(!root.scandir().join("old").exists());
    // Unchanged ones kept their pid and ran once.
    let after: Vec<u32> = ["a", "b", "c"]
        .iter()
        .map(|n| scanner.wait_pid(n))
        .collect();
    assert_eq!(before, after, "unchanged services were restarted");
    for name in ["a", "b", "c"] {
        assert_eq!(runs(&root, name).len(), 1, "{name} ran more than once");
    }
    let web_runs = runs(&root, "web");
    assert_eq!(
        web_runs.iter().filter(|(_, t)| t == "v2").count(),
        1,
        "web v2 ran more than once: {web_runs:?}"
    );
    assert_eq!(scanner.service_pid("web"), Some(web_after));
    // Supervisors wrote supervise/ (and s6 event/) into the store objects;
    // those are runtime entries, which verify ignores.
    assert!(live_object(&root, "a").join("supervise").is_dir());
    root.run(&["verify"]).ok();
    // gc deletes the old objects, supervise/ FIFOs and all, once their
    // supervisors let go of them.
    wait_until("web v1's supervisor exited", REACT, || {
        scanner.supervisors_of(&web_v1_object).is_empty()
    });
    root.run(&["gc", "--keep", "1"]).ok();
    assert!(
        !web_v1_object.exists(),
        "gc left {}",
        web_v1_object.display()
    );
    assert!(!old_object.exists(), "gc left {}", old_object.display());
    // The harness leaks nothing: no scanner, supervisor or service is left.
    let mut scanner = scanner;
    scanner.kill_all();
    wait_until("nothing left running in the root", REACT, || {
        running_under(root.path()).is_empty()
    });
}

#[test]
fn s6_restarts_exactly_what_changed() {
    if !Family::S6.require() {
        return;
    }
    five_services_change_one_add_one_remove_one(Family::S6);
}

#[test]
fn runit_restarts_exactly_what_changed() {
    if !Family::Runit.require() {
        return;
    }
    five_services_change_one_add_one_remove_one(Family::Runit);
}

#[test]
fn daemontools_restarts_exactly_what_changed() {
    if !Family::Daemontools.require() {
        return;
    }
    five_services_change_one_add_one_remove_one(Family::Daemontools);
}

/// `run` takes an exclusive flock on a shared file and logs any failure to
/// take it. Like a real daemon it shuts down gracefully: on SIGTERM it
/// keeps the lock for 300 ms more, so an overlap cannot hide in a race.
fn add_locker(root: &Root, version: u32) {
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let out = out.display();
    root.write_stock(
        "locker/run",
        &format!(
            "#!/bin/sh\n\
             exec 9>>{out}/shared.lock\n\
             if flock -n -x 9; then echo \"$$ v{version}\" >> {out}/locker.log\n\
             else echo \"$$ v{version} could not lock\" >> {out}/locker.fail; exit 1; fi\n\
             sleep 100000 9>&- &\n\
             trap 'kill $!; sleep 0.3; exit 0' TERM\n\
             wait\n"
        ),
        0o755,
    );
}

fn no_overlap_across_ten_commits(family: Family) {
    let root = Root::empty();
    configure(&root, family);
    add_locker(&root, 0);
    root.commit().ok();
    let scanner = Scanner::start(&root, family);
    scanner.wait_pid("locker");
    // Up is not logged yet: a commit quick enough stops v0 before its `run`
    // wrote its line (nothing overlaps then, but the count below is off).
    wait_until("locker v0 logged", REACT, || {
        runs(&root, "locker").iter().any(|(_, t)| t == "v0")
    });
    let mut timings = Vec::new();
    for version in 1..=10 {
        add_locker(&root, version);
        let start = Instant::now();
        root.commit().ok();
        let committed = start.elapsed();
        let tag = format!("v{version}");
        wait_until(&format!("locker {tag} up"), REACT, || {
            runs(&root, "locker").iter().any(|(_, t)| *t == tag)
        });
        timings.push((committed, start.elapsed()));
    }
    let fail = root.path().join("out/locker.fail");
    assert!(
        !fail.exists(),
        "two instances overlapped:\n{}",
        std::fs::read_to_string(&fail).unwrap_or_default()
    );
    let log = runs(&root, "locker");
    assert_eq!(log.len(), 11, "each version ran exactly once: {log:?}");
    let mut commit: Vec<Duration> = timings.iter().map(|t| t.0).collect();
    let mut up: Vec<Duration> = timings.iter().map(|t| t.1).collect();
    commit.sort();
    up.sort();
    eprintln!(
        "{family:?}: commit restarting one service: median {:?} (min {:?}, max {:?}); \
         until the new instance runs: median {:?} (max {:?})",
        commit[5], commit[0], commit[9], up[5], up[9]
    );
}

#[test]
fn s6_never_runs_two_instances() {
    if !Family::S6.require() {
        return;
    }
    no_overlap_across_ten_commits(Family::S6);
}

#[test]
fn runit_never_runs_two_instances() {
    if !Family::Runit.require() {
        return;
    }
    no_overlap_across_ten_commits(Family::Runit);
}

#[test]
fn daemontools_never_runs_two_instances() {
    if !Family::Daemontools.require() {
        return;
    }
    no_overlap_across_ten_commits(Family::Daemontools);
}

/// `--check-up SECS` with a new `run` whose body (after logging) is `dies`;
/// SECS lets the scanner start it at least once
/// ([`Family::check_up_secs`]).
fn check_up_rolls_back_a_failing_service(family: Family, dies: &str) {
    let (root, scanner) = running(family, &["web", "db"]);
    let web_v1 = scanner.wait_pid("web");
    let db_pid = scanner.wait_pid("db");
    let out = root.path().join("out").display().to_string();
    root.write_stock(
        "web/run",
        &format!("#!/bin/sh\necho \"$$ v2\" >> {out}/web.log\n{dies}\n"),
        0o755,
    );
    let secs = family.check_up_secs().to_string();
    let run = root
        .run(&["--json", "commit", "--check-up", &secs])
        .code(exit::ROLLED_BACK)
        .kind("rolled_back");
    eprintln!("{family:?} --check-up failure said:\n{}", run.stderr);
    let error = &run.json()["error"];
    assert_eq!(
        (
            &error["service"],
            &error["generation"],
            &error["failed_generation"]
        ),
        (
            &serde_json::json!("web"),
            &serde_json::json!(1),
            &serde_json::json!(2)
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains(&format!("web did not come up within {secs}s")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("generation 1 is live again"),
        "{}",
        run.stderr
    );
    assert_eq!(root.live_generation(), Some(1));
    // The old version runs again: a new process, old content.
    let mut pid = 0;
    wait_until("web v1 up again", REACT, || {
        pid = scanner.service_pid("web").unwrap_or(0);
        pid != 0
            && pid != web_v1
            && runs(&root, "web")
                .iter()
                .any(|(p, t)| *p == pid && t == "v1")
    });
    assert!(
        runs(&root, "web").iter().any(|(_, t)| t == "v2"),
        "v2 never ran"
    );
    // The failed v2 stays down: after v1 came back, no v2 run appears.
    let v2_runs = runs(&root, "web").iter().filter(|(_, t)| t == "v2").count();
    assert_eq!(scanner.service_pid("web"), Some(pid));
    assert_eq!(
        runs(&root, "web").iter().filter(|(_, t)| t == "v2").count(),
        v2_runs
    );
    assert_eq!(scanner.service_pid("db"), Some(db_pid), "db was restarted");
    let history = std::fs::read_to_string(root.state().join("history.log")).unwrap();
    assert!(history.contains("auto-rollback 2 -> 1"), "{history}");
    // `list` and `history` tell the operator afterwards (docs/cli.md#history).
    let list = root.run(&["--json", "list"]).ok().json();
    assert_eq!(list[1]["failed_check_up"], true, "{list}");
    let text = root.run(&["history"]).ok().stdout;
    assert!(text.contains("rolled back by --check-up"), "{text}");
    assert!(!root.state().join(".txn.yaml").exists());
    root.run(&["verify"]).ok();
}

#[test]
fn s6_check_up_rolls_back_by_itself() {
    if !Family::S6.require() {
        return;
    }
    check_up_rolls_back_a_failing_service(Family::S6, "exit 0");
}

#[test]
fn runit_check_up_rolls_back_by_itself() {
    if !Family::Runit.require() {
        return;
    }
    check_up_rolls_back_a_failing_service(Family::Runit, "exit 0");
}

#[test]
fn daemontools_check_up_rolls_back_by_itself() {
    if !Family::Daemontools.require() {
        return;
    }
    check_up_rolls_back_a_failing_service(Family::Daemontools, "exit 0");
}

/// Up for a moment is not up: a service that dies 300 ms after each start
/// is seen "up" by s6-svwait / sv check, yet must fail the gate.
#[test]
fn s6_check_up_rolls_back_a_service_that_dies_after_starting() {
    if !Family::S6.require() {
        return;
    }
    check_up_rolls_back_a_failing_service(Family::S6, "sleep 0.3; exit 1");
}

#[test]
fn runit_check_up_rolls_back_a_service_that_dies_after_starting() {
    if !Family::Runit.require() {
        return;
    }
    check_up_rolls_back_a_failing_service(Family::Runit, "sleep 0.3; exit 1");
}

#[test]
fn daemontools_check_up_rolls_back_a_service_that_dies_after_starting() {
    if !Family::Daemontools.require() {
        return;
    }
    check_up_rolls_back_a_failing_service(Family::Daemontools, "sleep 0.3; exit 1");
}

fn check_up_passes_for_healthy_services(family: Family) {
    let (root, scanner) = running(family, &["web"]);
    add_logging_service(&root, "web", "v2");
    add_logging_service(&root, "api", "v1");
    let run = root.run(&["commit", "--check-up", "15"]).ok();
    assert!(
        run.stdout.contains("generation 2 is live"),
        "{}",
        run.stdout
    );
    // The gate returned only once both were up, so they are up now.
    let web = scanner.service_pid("web").expect("web up after --check-up");
    assert!(
        runs(&root, "web")
            .iter()
            .any(|(p, t)| *p == web && t == "v2")
    );
    assert!(
        scanner.service_pid("api").is_some(),
        "api up after --check-up"
    );
}

#[test]
fn s6_check_up_passes_for_healthy_services() {
    if !Family::S6.require() {
        return;
    }
    check_up_passes_for_healthy_services(Family::S6);
}

#[test]
fn runit_check_up_passes_for_healthy_services() {
    if !Family::Runit.require() {
        return;
    }
    check_up_passes_for_healthy_services(Family::Runit);
}

#[test]
fn daemontools_check_up_passes_for_healthy_services() {
    if !Family::Daemontools.require() {
        return;
    }
    check_up_passes_for_healthy_services(Family::Daemontools);
}

fn sync_is_idempotent_and_notifies(family: Family) {
    let root = Root::empty();
    configure(&root, family);
    add_logging_service(&root, "web", "v1");
    add_logging_service(&root, "db", "v1");
    root.commit().ok();
    // At boot the scan directory is empty (tmpfs) and the scanner starts.
    std::fs::remove_file(root.scandir().join("web")).unwrap();
    std::fs::remove_file(root.scandir().join("db")).unwrap();
    let scanner = Scanner::start(&root, family);
    let run = root.run(&["sync"]).ok();
    assert!(run.stdout.contains("2 link(s) added"), "{}", run.stdout);
    let web = scanner.wait_pid("web");
    let db = scanner.wait_pid("db");
    let run = root.run(&["sync"]).ok();
    assert!(run.stdout.contains("already in sync"), "{}", run.stdout);
    let again = root.run(&["--json", "sync"]).ok().json();
    assert_eq!(again["added"], serde_json::json!([]));
    assert_eq!(again["removed"], serde_json::json!([]));
    assert_eq!(scanner.service_pid("web"), Some(web));
    assert_eq!(scanner.service_pid("db"), Some(db));
    assert_eq!(runs(&root, "web").len(), 1);
}

#[test]
fn s6_sync_is_idempotent() {
    if !Family::S6.require() {
        return;
    }
    sync_is_idempotent_and_notifies(Family::S6);
}

#[test]
fn runit_sync_is_idempotent() {
    if !Family::Runit.require() {
        return;
    }
    sync_is_idempotent_and_notifies(Family::Runit);
}

#[test]
fn daemontools_sync_is_idempotent() {
    if !Family::Daemontools.require() {
        return;
    }
    sync_is_idempotent_and_notifies(Family::Daemontools);
}

fn crash_after_stop_then_recover_restarts(family: Family) {
    let (root, scanner) = running(family, &["web", "db"]);
    let web_v1 = scanner.wait_pid("web");
    let db_pid = scanner.wait_pid("db");
    add_logging_service(&root, "web", "v2");
    let mut cmd = root.command(&["commit"]);
    cmd.failpoint("txn.after-stop");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), None, "the failpoint kills the commit");
    assert_eq!(root.live_generation(), Some(1), "crashed before the switch");
    // The old instance was stopped and nothing restarted it.
    assert!(!alive(web_v1));
    assert_eq!(
        scanner.service_pid("web"),
        None,
        "web stays down until recover"
    );
    let run = root.run(&["recover"]).ok();
    assert!(run.stdout.contains("undone"), "{}", run.stdout);
    let pid = scanner.wait_pid("web");
    assert_ne!(pid, web_v1);
    assert!(
        runs(&root, "web")
            .iter()
            .any(|(p, t)| *p == pid && t == "v1")
    );
    assert!(!runs(&root, "web").iter().any(|(_, t)| t == "v2"));
    assert_eq!(scanner.service_pid("db"), Some(db_pid));
    assert!(!root.state().join(".txn.yaml").exists());
}

/// A crash after the stop: recover restarts what was running, and only
/// that — a service an administrator had taken down stays down.
fn recover_leaves_an_admin_downed_service_down(family: Family) {
    let (root, scanner) = running(family, &["web", "db"]);
    let web_v1 = scanner.wait_pid("web");
    admin_down(family, &root.scandir().join("db"));
    assert_eq!(scanner.service_pid("db"), None);
    add_logging_service(&root, "web", "v2");
    add_logging_service(&root, "db", "v2");
    let mut cmd = root.command(&["commit"]);
    cmd.failpoint("txn.after-stop");
    assert_eq!(cmd.output().unwrap().status.code(), None);
    let log = std::fs::read_to_string(root.state().join(".txn.yaml")).unwrap();
    assert!(log.contains("stopped:\n- web\n"), "{log}");
    root.run(&["recover"]).ok();
    let pid = scanner.wait_pid("web");
    assert_ne!(pid, web_v1);
    // Give db every chance to be (wrongly) started: web is up again, so the
    // undo is over; db must still be down.
    assert_eq!(
        scanner.service_pid("db"),
        None,
        "undo started a downed service"
    );
    assert_eq!(runs(&root, "db").len(), 1);
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn s6_recover_leaves_an_admin_downed_service_down() {
    if !Family::S6.require() {
        return;
    }
    recover_leaves_an_admin_downed_service_down(Family::S6);
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn runit_recover_leaves_an_admin_downed_service_down() {
    if !Family::Runit.require() {
        return;
    }
    recover_leaves_an_admin_downed_service_down(Family::Runit);
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn daemontools_recover_leaves_an_admin_downed_service_down() {
    if !Family::Daemontools.require() {
        return;
    }
    recover_leaves_an_admin_downed_service_down(Family::Daemontools);
}

/// The output's lines with runs of spaces squeezed (columns are padded).
fn squeezed(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn plan_lines_say_what_and_why() {
    let root = Root::empty();
    for name in ["keepme", "web", "old"] {
        add_logging_service(&root, name, "v1");
    }
    root.commit().ok();
    add_logging_service(&root, "web", "v2");
    add_logging_service(&root, "new", "v1");
    remove_service(&root, "old");
    let plan = squeezed(&root.run(&["plan"]).ok().stdout);
    for line in [
        "web restart: run changed",
        "new start: new service",
        "old stop: removed from stock",
    ] {
        assert!(plan.iter().any(|l| l == line), "{line:?} in {plan:#?}");
    }
    assert!(!plan.iter().any(|l| l.contains("keepme")), "{plan:#?}");
    let verbose = squeezed(&root.run(&["-v", "plan"]).ok().stdout);
    assert!(
        verbose.iter().any(|l| l == "keepme keep: unchanged"),
        "{verbose:#?}"
    );
    let commit = squeezed(&root.commit().ok().stdout);
    assert!(
        commit.iter().any(|l| l == "web restart: run changed"),
        "{commit:#?}"
    );
}

#[test]
fn check_up_without_a_supervisor_is_a_usage_error() {
    let root = Root::empty();
    add_logging_service(&root, "web", "v1");
    let run = root
        .run(&["--json", "commit", "--check-up", "5"])
        .code(exit::USAGE)
        .kind("usage");
    assert!(
        run.stderr.contains("--check-up needs a supervisor"),
        "{}",
        run.stderr
    );
    assert_eq!(root.live_generation(), None, "nothing was committed");
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn s6_recover_restarts_what_a_crash_stopped() {
    if !Family::S6.require() {
        return;
    }
    crash_after_stop_then_recover_restarts(Family::S6);
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn runit_recover_restarts_what_a_crash_stopped() {
    if !Family::Runit.require() {
        return;
    }
    crash_after_stop_then_recover_restarts(Family::Runit);
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn daemontools_recover_restarts_what_a_crash_stopped() {
    if !Family::Daemontools.require() {
        return;
    }
    crash_after_stop_then_recover_restarts(Family::Daemontools);
}

fn crash_after_switch_then_recover_finishes(family: Family) {
    let (root, scanner) = running(family, &["web", "db"]);
    let web_v1 = scanner.wait_pid("web");
    let db_pid = scanner.wait_pid("db");
    add_logging_service(&root, "web", "v2");
    add_logging_service(&root, "api", "v1");
    let mut cmd = root.command(&["commit"]);
    cmd.failpoint("txn.after-switch");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), None, "the failpoint kills the commit");
    assert_eq!(root.live_generation(), Some(2), "crashed after the switch");
    assert!(!alive(web_v1), "the old web was stopped before the switch");
    let run = root.run(&["recover"]).ok();
    assert!(run.stdout.contains("finished"), "{}", run.stdout);
    // Finishing links api and notifies the scanner: v2 and api run.
    let mut pid = 0;
    wait_until("web v2 up", REACT, || {
        pid = scanner.service_pid("web").unwrap_or(0);
        runs(&root, "web")
            .iter()
            .any(|(p, t)| *p == pid && t == "v2")
    });
    scanner.wait_pid("api");
    assert_eq!(scanner.service_pid("db"), Some(db_pid));
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn s6_recover_finishes_a_switched_commit() {
    if !Family::S6.require() {
        return;
    }
    crash_after_switch_then_recover_finishes(Family::S6);
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn runit_recover_finishes_a_switched_commit() {
    if !Family::Runit.require() {
        return;
    }
    crash_after_switch_then_recover_finishes(Family::Runit);
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn daemontools_recover_finishes_a_switched_commit() {
    if !Family::Daemontools.require() {
        return;
    }
    crash_after_switch_then_recover_finishes(Family::Daemontools);
}

/// A service with a logger (`log/run`): both run from the new object after
/// the commit, the old logger and its supervisor are gone, and the log
/// holds the output of both versions.
fn service_with_a_logger_restarts_with_it(family: Family) {
    let root = Root::empty();
    configure(&root, family);
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let add = |tag: &str| {
        root.write_stock(
            "web/run",
            &format!("#!/bin/sh\necho \"web {tag} $$\"\nexec sleep 100000\n"),
            0o755,
        );
        root.write_stock(
            "web/log/run",
            &format!("#!/bin/sh\nexec cat >> {}/web.out\n", out.display()),
            0o755,
        );
    };
    add("v1");
    root.commit().ok();
    let scanner = Scanner::start(&root, family);
    let logger = root.scandir().join("web/log");
    let web_v1 = scanner.wait_pid("web");
    wait_until("the logger is up", REACT, || {
        service_pid(family, &logger).is_some()
    });
    let logger_v1 = service_pid(family, &logger).unwrap();
    let old_object = live_object(&root, "web");
    let text = || std::fs::read_to_string(out.join("web.out")).unwrap_or_default();
    wait_until("v1 logged", REACT, || text().contains("web v1"));

    add("v2");
    root.commit().ok();
    wait_until("v2 logged", REACT, || text().contains("web v2"));
    let web_v2 = scanner.wait_pid("web");
    assert_ne!(web_v2, web_v1);
    assert!(
        !alive(web_v1) && !alive(logger_v1),
        "old instance or logger left"
    );
    wait_until("the new logger is up", REACT, || {
        service_pid(family, &logger).is_some_and(|p| p != logger_v1)
    });
    wait_until("old supervisors exited", REACT, || {
        scanner.supervisors_of(&old_object).is_empty()
            && scanner.supervisors_of(&old_object.join("log")).is_empty()
    });
    assert_eq!(text().matches("web v2").count(), 1, "{}", text());
}

#[test]
fn s6_service_with_a_logger_restarts_with_it() {
    if !Family::S6.require() {
        return;
    }
    service_with_a_logger_restarts_with_it(Family::S6);
}

#[test]
fn runit_service_with_a_logger_restarts_with_it() {
    if !Family::Runit.require() {
        return;
    }
    service_with_a_logger_restarts_with_it(Family::Runit);
}

#[test]
fn daemontools_service_with_a_logger_restarts_with_it() {
    if !Family::Daemontools.require() {
        return;
    }
    service_with_a_logger_restarts_with_it(Family::Daemontools);
}

fn rollback_restarts_only_what_differs(family: Family) {
    let (root, scanner) = running(family, &["web", "db"]);
    let db = scanner.wait_pid("db");
    add_logging_service(&root, "web", "v2");
    root.commit().ok();
    let mut v2 = 0;
    wait_until("web v2 up", REACT, || {
        v2 = scanner.service_pid("web").unwrap_or(0);
        runs(&root, "web")
            .iter()
            .any(|(p, t)| *p == v2 && t == "v2")
    });
    let run = root.run(&["rollback"]).ok();
    let lines = squeezed(&run.stdout);
    assert!(
        lines.iter().any(|l| l == "web restart: run changed"),
        "{lines:#?}"
    );
    assert!(!alive(v2), "v2 still runs after the rollback");
    let mut v1 = 0;
    wait_until("web v1 up again", REACT, || {
        v1 = scanner.service_pid("web").unwrap_or(0);
        v1 != 0
            && runs(&root, "web")
                .iter()
                .any(|(p, t)| *p == v1 && t == "v1")
    });
    assert_eq!(runs(&root, "web").len(), 3, "{:?}", runs(&root, "web"));
    assert_eq!(scanner.service_pid("db"), Some(db));
}

#[test]
fn s6_rollback_restarts_only_what_differs() {
    if !Family::S6.require() {
        return;
    }
    rollback_restarts_only_what_differs(Family::S6);
}

#[test]
fn runit_rollback_restarts_only_what_differs() {
    if !Family::Runit.require() {
        return;
    }
    rollback_restarts_only_what_differs(Family::Runit);
}

#[test]
fn daemontools_rollback_restarts_only_what_differs() {
    if !Family::Daemontools.require() {
        return;
    }
    rollback_restarts_only_what_differs(Family::Daemontools);
}

/// svscan keeps no file to ask and cannot be told to rescan: a commit says
/// when no svscan works in the scan directory, and is quiet when one does.
#[test]
fn daemontools_commit_says_when_no_svscan_runs() {
    if !Family::Daemontools.require() {
        return;
    }
    let root = Root::empty();
    configure(&root, Family::Daemontools);
    add_logging_service(&root, "web", "v1");
    let alone = root.commit().ok();
    assert!(
        alone.stderr.contains("no svscan runs on"),
        "{}",
        alone.stderr
    );
    let scanner = Scanner::start(&root, Family::Daemontools);
    scanner.wait_pid("web");
    add_logging_service(&root, "web", "v2");
    let watched = root.commit().ok();
    assert!(
        !watched.stderr.contains("no svscan runs on"),
        "{}",
        watched.stderr
    );
    wait_until("web v2 up", REACT, || {
        let pid = scanner.service_pid("web").unwrap_or(0);
        runs(&root, "web")
            .iter()
            .any(|(p, t)| *p == pid && t == "v2")
    });
}

/// How long a [`add_graceful_service`] takes to shut down after its TERM.
const GRACE_SECS: f64 = 0.5;

/// A service that logs "PID TAG" to `<root>/out/NAME.log` (for [`runs`])
/// and, to `<root>/out/NAME.times`, "start TAG T" when it starts and
/// "term TAG T" / "exit TAG T" around a graceful shutdown of
/// [`GRACE_SECS`] on SIGTERM (T: seconds since the epoch).
fn add_graceful_service(root: &Root, name: &str, tag: &str) {
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let times = format!("{}/{name}.times", out.display());
    root.write_stock(
        &format!("{name}/run"),
        &format!(
            "#!/bin/sh\n\
             echo \"$$ {tag}\" >> {out}/{name}.log\n\
             echo \"start {tag} $(date +%s.%N)\" >> {times}\n\
             sleep 100000 &\n\
             trap 'echo \"term {tag} $(date +%s.%N)\" >> {times}; kill $!; sleep {GRACE_SECS}; \
             echo \"exit {tag} $(date +%s.%N)\" >> {times}; exit 0' TERM\n\
             wait\n",
            out = out.display()
        ),
        0o755,
    );
}

/// The time `name` logged for `event` ("start", "term", "exit") of `tag`.
fn event_time(root: &Root, name: &str, event: &str, tag: &str) -> Option<f64> {
    let path = root.path().join("out").join(format!("{name}.times"));
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next()? == event && words.next()? == tag).then_some(())?;
        words.next()?.parse().ok()
    })
}

/// The most of `spans` (start, end) that cover one instant.
fn most_at_once(spans: &[(f64, f64)]) -> usize {
    spans
        .iter()
        .map(|&(at, _)| spans.iter().filter(|&&(s, e)| s <= at && at < e).count())
        .max()
        .unwrap_or(0)
}

/// A commit restarting 20 services stops them side by side, at most
/// `max_parallel_stops` (here 8) at once, never two instances of one
/// service at a time, and leaves the unchanged ones alone.
fn twenty_restarts_stop_side_by_side(family: Family) {
    let names: Vec<String> = (0..20).map(|i| format!("svc{i:02}")).collect();
    let root = Root::empty();
    root.config(&format!(
        "supervisor: {}\nstop_timeout: 10\nmax_parallel_stops: 8\n",
        family.config_name()
    ));
    for name in &names {
        add_graceful_service(&root, name, "v1");
    }
    add_logging_service(&root, "keep", "v1");
    root.commit().ok();
    let scanner = Scanner::start(&root, family);
    for name in &names {
        scanner.wait_pid(name);
    }
    let keep = scanner.wait_pid("keep");

    for name in &names {
        add_graceful_service(&root, name, "v2");
    }
    let run = root.run(&["-v", "commit"]).ok();
    // -v: one line per service stop, not one per poll.
    for name in &names {
        let prefix = format!("svcdir-update: {name}: stop began at +");
        let lines = run
            .stderr
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .count();
        assert_eq!(lines, 1, "{name}'s stop lines in:\n{}", run.stderr);
    }
    assert!(!run.stderr.contains("running `"), "{}", run.stderr);

    let mut spans = Vec::new();
    for name in &names {
        wait_until(&format!("{name} v2 up"), REACT, || {
            event_time(&root, name, "start", "v2").is_some()
        });
        let term = event_time(&root, name, "term", "v1").unwrap();
        let exit = event_time(&root, name, "exit", "v1").unwrap();
        let started = event_time(&root, name, "start", "v2").unwrap();
        assert!(
            exit < started,
            "{name}: v2 started at {started} before v1 exited at {exit}"
        );
        let tags: Vec<String> = runs(&root, name).into_iter().map(|(_, t)| t).collect();
        assert_eq!(tags, ["v1", "v2"], "{name} ran once per version");
        spans.push((term, exit));
    }
    let first = spans.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
    let last = spans.iter().map(|s| s.0).fold(0.0, f64::max);
    let at_once = most_at_once(&spans);
    eprintln!(
        "{family:?}: 20 TERMs within {:.3}s; at most {at_once} services shutting down at once",
        last - first
    );
    // One by one, the last TERM would come at least 19 graceful shutdowns
    // after the first.
    assert!(
        last - first < 5.0 * GRACE_SECS,
        "TERMs spread over {:.3}s",
        last - first
    );
    assert!((2..=8).contains(&at_once), "{at_once} at once: {spans:?}");
    assert_eq!(
        scanner.service_pid("keep"),
        Some(keep),
        "keep was restarted"
    );
    assert_eq!(runs(&root, "keep").len(), 1);
}

#[test]
fn s6_stops_twenty_services_side_by_side() {
    if !Family::S6.require() {
        return;
    }
    twenty_restarts_stop_side_by_side(Family::S6);
}

#[test]
fn runit_stops_twenty_services_side_by_side() {
    if !Family::Runit.require() {
        return;
    }
    twenty_restarts_stop_side_by_side(Family::Runit);
}

#[test]
fn daemontools_stops_twenty_services_side_by_side() {
    if !Family::Daemontools.require() {
        return;
    }
    twenty_restarts_stop_side_by_side(Family::Daemontools);
}

/// A service that logs "PID TAG" and then ignores SIGTERM: it never stops.
fn add_stuck_service(root: &Root, name: &str, tag: &str) {
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    root.write_stock(
        &format!("{name}/run"),
        &format!(
            "#!/bin/sh\necho \"$$ {tag}\" >> {}/{name}.log\ntrap '' TERM\nexec sleep 100000\n",
            out.display()
        ),
        0o755,
    );
}

/// Two services that ignore SIGTERM fail the commit (exit 75) naming both;
/// nothing is switched, and the service that did stop runs again.
fn services_that_do_not_stop_fail_the_commit(family: Family) {
    let root = Root::empty();
    // Long enough for a service that does stop: daemontools' supervise
    // sleeps a second after each start and reads no command meanwhile, so
    // a stop sent just after the start can take that second on its own.
    root.config(&format!(
        "supervisor: {}\nstop_timeout: 3\n",
        family.config_name()
    ));
    add_stuck_service(&root, "stuck-a", "v1");
    add_stuck_service(&root, "stuck-b", "v1");
    add_logging_service(&root, "web", "v1");
    add_logging_service(&root, "db", "v1");
    root.commit().ok();
    let scanner = Scanner::start(&root, family);
    let pids: Vec<u32> = ["stuck-a", "stuck-b", "web", "db"]
        .iter()
        .map(|n| scanner.wait_pid(n))
        .collect();

    add_stuck_service(&root, "stuck-a", "v2");
    add_stuck_service(&root, "stuck-b", "v2");
    add_logging_service(&root, "web", "v2");
    let run = root
        .run(&["--json", "commit"])
        .code(exit::TEMP_FAIL)
        .kind("supervisor");
    assert!(
        run.stderr.contains("stuck-a, stuck-b did not stop"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("web did not stop"), "{}", run.stderr);
    assert_eq!(root.live_generation(), Some(1), "nothing was switched");
    assert!(!root.state().join(".txn.yaml").exists());
    let history = std::fs::read_to_string(root.state().join("history.log")).unwrap();
    assert!(history.trim_end().ends_with("undone"), "{history}");
    // web was stopped and is started again, from the old object.
    let mut web = 0;
    wait_until("web v1 up again", REACT, || {
        web = scanner.service_pid("web").unwrap_or(0);
        web != 0 && web != pids[2]
    });
    let web_runs = runs(&root, "web");
    assert_eq!(web_runs.len(), 2, "{web_runs:?}");
    assert!(web_runs.iter().all(|(_, t)| t == "v1"), "{web_runs:?}");
    // The stuck ones never went down, and db was not touched.
    assert_eq!(scanner.service_pid("stuck-a"), Some(pids[0]));
    assert_eq!(scanner.service_pid("stuck-b"), Some(pids[1]));
    assert_eq!(scanner.service_pid("db"), Some(pids[3]));
}

#[test]
fn s6_services_that_do_not_stop_fail_the_commit() {
    if !Family::S6.require() {
        return;
    }
    services_that_do_not_stop_fail_the_commit(Family::S6);
}

#[test]
fn runit_services_that_do_not_stop_fail_the_commit() {
    if !Family::Runit.require() {
        return;
    }
    services_that_do_not_stop_fail_the_commit(Family::Runit);
}

#[test]
fn daemontools_services_that_do_not_stop_fail_the_commit() {
    if !Family::Daemontools.require() {
        return;
    }
    services_that_do_not_stop_fail_the_commit(Family::Daemontools);
}

/// The `$PWD` `name`'s `run` (or, with `log`, its `log/run`) wrote.
fn said_pwd(root: &Root, file: &str) -> Option<String> {
    let text = std::fs::read_to_string(root.path().join("out").join(file)).ok()?;
    text.strip_suffix('\n').map(str::to_string)
}

/// Adds `web`, whose `run` and `log/run` each write their `$PWD` (whole,
/// by rename) before they exec a sleep.
fn add_pwd_service(root: &Root) {
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    for (rel, file) in [("web/run", "web.pwd"), ("web/log/run", "web-log.pwd")] {
        let to = out.join(file);
        root.write_stock(
            rel,
            &format!(
                "#!/bin/sh\necho \"$PWD\" > {to}.tmp && mv {to}.tmp {to}\nexec sleep 100000\n",
                to = to.display()
            ),
            0o755,
        );
    }
}

fn pwd_ends_in_the_service_name(family: Family) {
    let root = Root::empty();
    configure(&root, family);
    add_pwd_service(&root);
    add_logging_service(&root, "db", "v1");
    root.commit().ok();
    let scanner = Scanner::start(&root, family);
    let web_pid = scanner.wait_pid("web");
    wait_until("web and its logger said their $PWD", REACT, || {
        said_pwd(&root, "web.pwd").is_some() && said_pwd(&root, "web-log.pwd").is_some()
    });
    let object = live_object(&root, "web");
    let pwd = said_pwd(&root, "web.pwd").unwrap();
    assert!(pwd.ends_with("/web"), "{pwd}");
    assert_eq!(Path::new(&pwd), object);
    let log_pwd = said_pwd(&root, "web-log.pwd").unwrap();
    assert!(log_pwd.ends_with("/web/log"), "{log_pwd}");
    // An unchanged service keeps its pid and its directory's inode.
    let inode = root.inode(&object);
    add_logging_service(&root, "db", "v2");
    root.commit().ok();
    wait_until("db v2 up", REACT, || {
        runs(&root, "db").iter().any(|(_, t)| t == "v2")
    });
    assert_eq!(scanner.service_pid("web"), Some(web_pid));
    assert_eq!(live_object(&root, "web"), object);
    assert_eq!(root.inode(&live_object(&root, "web")), inode);
}

#[test]
fn s6_pwd_ends_in_the_service_name() {
    if !Family::S6.require() {
        return;
    }
    pwd_ends_in_the_service_name(Family::S6);
}

#[test]
fn runit_pwd_ends_in_the_service_name() {
    if !Family::Runit.require() {
        return;
    }
    pwd_ends_in_the_service_name(Family::Runit);
}

/// A state 0.1 wrote, its services running from the 0.1 paths: the
/// migration moves each to its named directory (one restart, never two
/// instances at once), and they keep running.
fn migration_moves_running_services_to_named_dirs(family: Family) {
    let root = Root::empty();
    configure(&root, family);
    add_pwd_service(&root);
    add_logging_service(&root, "db", "v1");
    root.commit().ok();
    crate::pwd::make_format_1(&root);
    let scanner = Scanner::start(&root, family);
    let db_before = scanner.wait_pid("db");
    let web_before = scanner.wait_pid("web");
    let old_web = live_object(&root, "web");
    wait_until("web said its 0.1 $PWD", REACT, || {
        said_pwd(&root, "web.pwd").is_some_and(|p| Path::new(&p) == old_web)
    });

    root.commit().ok();
    assert_eq!(
        std::fs::read_to_string(root.state().join("format")).unwrap(),
        "3\n"
    );
    let new_web = live_object(&root, "web");
    assert!(new_web.ends_with("web"), "{}", new_web.display());
    wait_until("web runs from its named directory", REACT, || {
        said_pwd(&root, "web.pwd").is_some_and(|p| Path::new(&p) == new_web)
            && said_pwd(&root, "web-log.pwd").is_some_and(|p| p.ends_with("/web/log"))
    });
    let db_after = scanner.wait_pid("db");
    assert_ne!(db_after, db_before);
    assert!(
        !alive(db_before),
        "db's 0.1 instance {db_before} still runs"
    );
    assert!(
        !alive(web_before),
        "web's 0.1 instance {web_before} still runs"
    );
    let db_runs = runs(&root, "db");
    assert_eq!(
        db_runs.len(),
        2,
        "db ran other than once per layout: {db_runs:?}"
    );
    root.run(&["verify"]).ok();
}

#[test]
fn s6_migration_moves_running_services_to_named_dirs() {
    if !Family::S6.require() {
        return;
    }
    migration_moves_running_services_to_named_dirs(Family::S6);
}

#[test]
fn runit_migration_moves_running_services_to_named_dirs() {
    if !Family::Runit.require() {
        return;
    }
    migration_moves_running_services_to_named_dirs(Family::Runit);
}

/// The supervisors' tools, by every name a commit once ran or might run.
const SUPERVISOR_TOOLS: [&str; 12] = [
    "s6-svc",
    "s6-svstat",
    "s6-svwait",
    "s6-svscanctl",
    "s6-svok",
    "s6-svlisten1",
    "sv",
    "runsvctrl",
    "runsvstat",
    "svc",
    "svstat",
    "svok",
];

/// A hostile directory first in the caller's `PATH` holds fake supervisor
/// tools that leave a marker when run: a commit that stops, restarts and
/// starts services and waits for them (`--check-up`), and a `sync`, run
/// none of them, and still work (docs/security.md#supervisor-tools).
fn tools_in_the_callers_path_are_never_run(family: Family) {
    let (root, scanner) = running(family, &["web", "db"]);
    let evil = root.path().join("evil-bin");
    let marker = root.path().join("evil-ran");
    std::fs::create_dir(&evil).unwrap();
    for tool in SUPERVISOR_TOOLS {
        let fake = evil.join(tool);
        std::fs::write(
            &fake,
            format!("#!/bin/sh\necho \"$0 $*\" >> {}\n", marker.display()),
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let path = format!(
        "{}:{}",
        evil.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let web_before = scanner.wait_pid("web");
    add_logging_service(&root, "web", "v2");
    add_logging_service(&root, "new", "v1");
    remove_service(&root, "db");
    let secs = family.check_up_secs().to_string();
    let run = |args: &[&str]| {
        let mut cmd = root.command(args);
        cmd.env("PATH", &path);
        Run::from(cmd.output().unwrap())
    };
    run(&["commit", "--check-up", &secs]).ok();
    run(&["sync"]).ok();
    let ran = std::fs::read_to_string(&marker).unwrap_or_default();
    assert!(ran.is_empty(), "tools from the caller's PATH ran:\n{ran}");
    // And the commit did its work with the real supervisor.
    let web_after = scanner.wait_pid("web");
    assert_ne!(web_after, web_before);
    assert!(!alive(web_before), "old web {web_before} still runs");
    assert!(
        runs(&root, "web")
            .iter()
            .any(|(p, t)| *p == web_after && t == "v2")
    );
    scanner.wait_pid("new");
    // The fakes would have been found: the marker is what running one does.
    let probe = std::process::Command::new("sh")
        .args(["-c", SUPERVISOR_TOOLS[0]])
        .env("PATH", &path)
        .status()
        .unwrap();
    assert!(probe.success());
    assert!(
        marker.exists(),
        "the fake tools leave no marker: a test that cannot fail"
    );
}

#[test]
fn s6_never_runs_tools_from_the_callers_path() {
    if !Family::S6.require() {
        return;
    }
    tools_in_the_callers_path_are_never_run(Family::S6);
}

#[test]
fn runit_never_runs_tools_from_the_callers_path() {
    if !Family::Runit.require() {
        return;
    }
    tools_in_the_callers_path_are_never_run(Family::Runit);
}

#[test]
fn daemontools_never_runs_tools_from_the_callers_path() {
    if !Family::Daemontools.require() {
        return;
    }
    tools_in_the_callers_path_are_never_run(Family::Daemontools);
}
