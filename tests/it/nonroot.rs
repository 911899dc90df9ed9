//! A user who is not root (docs/cli.md#non-root): the commands that only
//! read work on root's state where permissions allow; the ones that write
//! say to run as root (or the state owner) — never to hand root's state to
//! that user with `chown` — and change nothing.

use crate::harness::*;

fn as_nobody(root: &Root, args: &[&str]) -> Run {
    root.run_under(
        std::process::Command::new("setpriv").args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]),
        args,
    )
}

/// Root's state, two generations, with a change in the stock not committed.
fn roots_state() -> Root {
    let root = Root::example();
    root.run(&["commit", "-m", "base"]).ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    root.commit().ok();
    root.write_stock("web/env/VERSION", "3.0\n", 0o644);
    root
}

#[test]
fn reading_commands_work_for_another_user_on_roots_state() {
    if !require_tool("setpriv", "util-linux") {
        return;
    }
    let root = roots_state();
    let before = root.snapshot();
    let said = |args: &[&str], what: &str| {
        let run = as_nobody(&root, args).ok();
        assert!(
            run.stdout.contains(what),
            "{args:?}: {}\n{}",
            run.stdout,
            run.stderr
        );
    };
    said(&["status"], "live:         generation 2");
    said(&["list"], "base");
    said(&["plan"], "web  restart: env/VERSION changed");
    said(
        &["commit", "--dry-run"],
        "web  restart: env/VERSION changed",
    );
    said(&["diff", "1"], "web  restart");
    said(&["history"], "1 -> 2");
    said(&["verify"], "all intact");
    said(&["check"], "stock OK");
    said(
        &["gc", "--keep", "1", "--dry-run"],
        "would remove 1 generation(s)",
    );
    said(
        &["rollback", "--dry-run"],
        "dry run: rollback would make generation 1 live",
    );
    assert_eq!(
        root.snapshot(),
        before,
        "a reading command changed the state"
    );
}

#[test]
fn writing_commands_tell_another_user_to_run_as_root_and_change_nothing() {
    if !require_tool("setpriv", "util-linux") {
        return;
    }
    let root = roots_state();
    let before = root.snapshot();
    let history = history_lines(&root);
    for args in [
        &["commit"][..],
        &["rollback"],
        &["gc"],
        &["pin", "1"],
        &["unpin", "1"],
        &["sync"],
        &["recover"],
        &["init"],
    ] {
        let run = as_nobody(&root, &[&["--json"], args].concat()).code(exit::NO_PERM);
        assert_eq!(run.error_kind(), "unsafe", "{args:?}");
        assert!(
            run.stderr
                .contains("is owned by root, not by uid 65534, who runs this")
                && run
                    .stderr
                    .contains("must run as root (or as its owner); run it with sudo"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(!run.stderr.contains("chown"), "{args:?}: {}", run.stderr);
    }
    assert_eq!(root.snapshot(), before);
    assert_eq!(history_lines(&root), history);
    assert!(!root.state().join("pinned").exists());
}

/// A file only root may read (0600) cannot be verified by another user:
/// that is said as such (exit 74, naming the file), not as a store changed
/// by hand (65).
#[test]
fn verify_as_another_user_says_what_it_could_not_read_not_that_the_store_changed() {
    if !require_tool("setpriv", "util-linux") {
        return;
    }
    let root = Root::example();
    root.write_stock("web/secret", "s3cret\n", 0o600);
    root.commit().ok();
    let run = as_nobody(&root, &["--json", "verify"]).code(exit::IO_ERR);
    assert_eq!(run.error_kind(), "io");
    assert!(
        run.stderr.contains("web/secret: Permission denied")
            && run.stderr.contains("run `svcdir-update verify` as root"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("changed by hand"), "{}", run.stderr);
    root.run(&["verify"]).ok();
}
