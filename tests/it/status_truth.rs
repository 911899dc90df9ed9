//! `status` says what is true (docs/cli.md#status-in-flight): a commit in
//! progress is RUNNING with its pid and phase, not "interrupted"; a killed
//! one is INTERRUPTED with its staging leftovers counted; the whole pending
//! reason is shown, escaped; live services their supervisor keeps down are
//! named.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;

fn proc_state(pid: u32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 2..].chars().next()
}

fn spawn(cmd: &mut Command) -> KillOnDrop {
    KillOnDrop(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// Waits until the child, run with a `=stop` failpoint, stopped there.
fn wait_stopped(child: &Child) {
    let pid = child.id();
    wait_until(
        "the commit stopped at its failpoint",
        Duration::from_secs(30),
        || proc_state(pid) == Some('T'),
    );
}

fn status_json(root: &Root) -> serde_json::Value {
    root.run(&["--json", "status"]).ok().json()
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_commit_in_progress_is_running_with_pid_and_phase_not_interrupted() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/run", "#!/bin/sh\n# v2\nexec sleep 1000\n", 0o755);
    let commit = spawn(root.command(&["commit"]).failpoint("txn.after-write=stop"));
    wait_stopped(&commit.0);
    let pid = commit.0.id();

    let text = root.run(&["status"]).ok().stdout;
    assert!(
        text.contains("transaction:  RUNNING commit")
            && text.contains(&format!("(1 -> 2, phase Prepared) by pid {pid}\n")),
        "{text}"
    );
    assert!(
        !text.contains("INTERRUPTED") && !text.contains("recover"),
        "{text}"
    );
    let j = status_json(&root);
    assert_eq!(j["interrupted"], serde_json::Value::Null, "{j}");
    assert_eq!(j["running"]["phase"], "prepared", "{j}");
    assert_eq!(j["running"]["holder"]["pid"], pid, "{j}");
    drop(commit);

    // Killed there, the same transaction is interrupted.
    let text = root.run(&["status"]).ok().stdout;
    assert!(
        text.contains("transaction:  INTERRUPTED commit")
            && text.contains("run `svcdir-update recover`"),
        "{text}"
    );
    let j = status_json(&root);
    assert_eq!(j["running"], serde_json::Value::Null, "{j}");
    assert_eq!(j["interrupted"]["phase"], "prepared", "{j}");
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_commit_still_staging_is_running_and_a_killed_one_leaves_counted_leftovers() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/run", "#!/bin/sh\n# v2\nexec sleep 1000\n", 0o755);
    let commit = spawn(
        root.command(&["commit"])
            .failpoint("commit.after-stage=stop"),
    );
    wait_stopped(&commit.0);
    let pid = commit.0.id();
    let text = root.run(&["status"]).ok().stdout;
    assert!(
        text.contains(&format!(
            "transaction:  RUNNING (pid {pid}, preparing: no rollback log yet)"
        )),
        "{text}"
    );
    assert!(
        text.contains("staging:      2 leftover(s) (.tmp-*), the running transaction's work"),
        "{text}"
    );
    drop(commit);

    let text = root.run(&["status"]).ok().stdout;
    assert!(text.contains("transaction:  none\n"), "{text}");
    assert!(
        text.contains("staging:      2 leftover(s) (.tmp-*), left by an interrupted run"),
        "{text}"
    );
    assert_eq!(status_json(&root)["staging_leftovers"], 2);
    // The next writing command sweeps them.
    root.commit().ok();
    let text = root.run(&["status"]).ok().stdout;
    assert!(!text.contains("staging:"), "{text}");
    assert_eq!(status_json(&root)["staging_leftovers"], 0);
}

#[test]
fn the_whole_pending_reason_is_shown_escaped() {
    let root = Root::example();
    root.commit().ok();
    let long = format!("{} \u{1b}[31mred end-of-reason", "x".repeat(300));
    std::fs::write(
        root.state().join("pending"),
        format!("2026-12-02T00:00:00Z pid 1 nanos 5\n{long}\n"),
    )
    .unwrap();
    let text = root.run(&["status"]).ok().stdout;
    assert!(
        text.contains(&format!("{} \\x1b[31mred end-of-reason", "x".repeat(300))),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
}

mod supervised {
    use super::*;
    use crate::supervise_harness::*;

    #[test]
    fn s6_a_live_service_kept_down_is_named() {
        if !Family::S6.require() {
            return;
        }
        let root = Root::example();
        configure(&root, Family::S6);
        root.commit().ok();
        let scanner = Scanner::start(&root, Family::S6);
        scanner.wait_pid("web");
        let text = root.run(&["status"]).ok().stdout;
        assert!(!text.contains("down:"), "{text}");
        let out = Command::new("s6-svc")
            .arg("-d")
            .arg(root.scandir().join("web"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut text = String::new();
        wait_until("status names web down", REACT, || {
            text = root.run(&["status"]).ok().stdout;
            text.contains("down:         web (the supervisor keeps them down")
        });
        assert_eq!(status_json(&root)["down"], serde_json::json!(["web"]));

        // A user who cannot ask the supervisor still gets the report.
        if require_tool("setpriv", "util-linux") {
            let run = root
                .run_under(
                    Command::new("setpriv").args([
                        "--reuid=65534",
                        "--regid=65534",
                        "--clear-groups",
                    ]),
                    &["status"],
                )
                .ok();
            assert!(
                run.stdout.contains("live:         generation 1"),
                "{}",
                run.stdout
            );
        }
    }

    /// A commit killed after it stopped the old instance leaves it down:
    /// status says the transaction is interrupted and names the service.
    #[test]
    #[cfg_attr(
        not(feature = "failpoints"),
        ignore = "needs --features failpoints (scripts/test.sh)"
    )]
    fn s6_a_service_a_killed_commit_left_down_is_named() {
        if !Family::S6.require() {
            return;
        }
        let root = Root::example();
        configure(&root, Family::S6);
        root.commit().ok();
        let scanner = Scanner::start(&root, Family::S6);
        scanner.wait_pid("web");
        root.write_stock("web/run", "#!/bin/sh\n# v2\nexec sleep 1000\n", 0o755);
        let out = root
            .command(&["commit"])
            .failpoint("txn.after-stop")
            .output()
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{out:?}"
        );
        let text = root.run(&["status"]).ok().stdout;
        assert!(
            text.contains("transaction:  INTERRUPTED commit")
                && text.contains("down:         web (the supervisor keeps them down"),
            "{text}"
        );
        // The undo starts it again.
        root.run(&["recover"]).ok();
        wait_until("web no longer down", REACT, || {
            !root.run(&["status"]).ok().stdout.contains("down:")
        });
    }
}
