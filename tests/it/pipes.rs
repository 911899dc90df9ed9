//! A closed stdout or stderr is a normal end of output (docs/json.md#errors):
//! every command, run with its reader gone, does its work and exits with
//! the code it would have had, never 101 from a panicking `println!`; a
//! commit whose warning is due while stderr is closed still finishes its
//! transaction.

use std::process::Stdio;
use svcdir_update::error::exit;

use crate::harness::*;

/// Runs `args` with stdout closed and asserts the normal exit `code` and
/// no panic.
#[track_caller]
fn assert_quiet_end(root: &Root, args: &[&str], code: u8) -> Run {
    let mut cmd = root.command(args);
    cmd.stdout(closed_pipe()).stderr(Stdio::piped());
    let run = Run::from(cmd.output().unwrap()).code(code);
    assert!(
        !run.stderr.contains("panicked"),
        "`{}` panicked on a closed stdout:\n{}",
        args.join(" "),
        run.stderr
    );
    run
}

#[test]
fn every_command_ends_normally_when_stdout_is_closed() {
    let root = Root::example();
    root.write_stock("quick/run", "#!/bin/sh\nexit 0\n", 0o755);
    assert_quiet_end(&root, &["init"], exit::OK);
    assert_quiet_end(&root, &["check"], exit::OK);
    assert_quiet_end(&root, &["plan"], exit::OK);
    assert_quiet_end(&root, &["commit"], exit::OK);
    assert_eq!(root.live_generation(), Some(1));
    assert!(!root.state().join(".txn.yaml").exists());
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    assert_quiet_end(&root, &["--json", "commit"], exit::OK);
    assert_eq!(root.live_generation(), Some(2));
    assert!(!root.state().join(".txn.yaml").exists());
    assert_eq!(history_lines(&root), 2);
    assert_quiet_end(&root, &["rollback"], exit::OK);
    assert_eq!(root.live_generation(), Some(1));
    for args in [
        &["status"][..],
        &["--json", "status"],
        &["list"],
        &["diff"],
        &["diff", "1", "2"],
        &["verify"],
        &["gc", "--keep", "1"],
        &["recover"],
        &["sync"],
        &["lock", "web", "--", "true"],
        &["exec", "quick"],
        &["failpoints"],
        &["completions", "bash"],
        &["man"],
        &["man", "--list"],
        &["--help"],
        &["commit", "--help"],
        &["--version"],
    ] {
        assert_quiet_end(&root, args, exit::OK);
    }
    // Failures keep their codes: the error document is lost, not the code.
    assert_quiet_end(&root, &["--json", "--bogus"], exit::USAGE);
    assert_quiet_end(
        &root,
        &["--json", "lock", "bad name", "--", "true"],
        exit::USAGE,
    );
    assert_quiet_end(&root, &["--json", "rollback", "99"], exit::DATA_ERR);
    // `lock` passes on its command's status with stdout closed too.
    assert_quiet_end(&root, &["lock", "web", "--", "false"], 1);
}

/// A committed example root whose next commit adds a service `extra`
/// under a name the scan directory already holds something foreign at:
/// the commit warns half-way through its transaction.
fn root_whose_commit_warns() -> Root {
    let root = Root::example();
    root.commit().ok();
    std::fs::create_dir(root.scandir().join("extra")).unwrap();
    root.add_service("extra", "x");
    root
}

#[test]
fn a_warning_due_while_stderr_is_closed_does_not_interrupt_the_commit() {
    // The warning is real: with stderr open the same commit says so.
    let open = root_whose_commit_warns();
    let warned = open.commit().ok();
    assert!(
        warned.stderr.contains("was not made by svcdir-update"),
        "{}",
        warned.stderr
    );
    let root = root_whose_commit_warns();
    let mut cmd = root.command(&["commit"]);
    cmd.stderr(closed_pipe());
    let run = Run::from(cmd.output().unwrap()).ok();
    assert_eq!(
        run.stdout,
        warned
            .stdout
            .replace(&show(open.path()), &show(root.path()))
    );
    assert_eq!(root.live_generation(), Some(2));
    assert!(
        !root.state().join(".txn.yaml").exists(),
        "the transaction was left half-way"
    );
    assert_eq!(history_lines(&root), 2);
}

fn show(path: &std::path::Path) -> String {
    path.display().to_string()
}

#[test]
fn an_error_with_stdout_and_stderr_closed_keeps_its_code() {
    let root = Root::example();
    root.commit().ok();
    std::fs::remove_file(root.stock().join("cron/run")).unwrap();
    let mut cmd = root.command(&["--json", "commit", "--strict"]);
    cmd.stdout(closed_pipe()).stderr(closed_pipe());
    let run = Run::from(cmd.output().unwrap()).code(exit::DATA_ERR);
    assert_eq!(run.stderr, "");
    assert_eq!(root.live_generation(), Some(1));
}
