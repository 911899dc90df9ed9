//! Long operations speak on a terminal (a pty from `script(1)`): commit's
//! stock reading, gc's removals and recover's sweep count their steps once
//! the run is a second old; piped, they stay silent unless `-v`
//! (docs/cli.md#progress). A failpoint stops the run before the counted
//! phase until it is over a second old, so the count is due on its first step.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::interface::stopped_processes_with;

#[derive(Clone, Copy, PartialEq)]
enum Where {
    Terminal,
    Piped,
    PipedVerbose,
}

/// Runs `svcdir-update --root ROOT ARGS` stopped at `failpoint` until it is
/// 1.2 s old, and returns what it wrote on the terminal or stderr.
fn run_late(root: &Root, args: &str, failpoint: &str, at: Where) -> String {
    let out = root.path().join("progress.out");
    let verbose = if at == Where::PipedVerbose { " -v" } else { "" };
    let line = format!(
        "{} --root {}{verbose} {args}",
        bin().display(),
        root.path().display()
    );
    let mut cmd = if at == Where::Terminal {
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .stdout(std::fs::File::create(&out).unwrap());
        cmd
    } else {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &line])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&out).unwrap());
        cmd
    };
    cmd.env_remove("SVCDIR_UPDATE_PROGRESS")
        .stdin(Stdio::null())
        .failpoint(&format!("{failpoint}=stop"));
    let started = Instant::now();
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let needle = root.path().display().to_string();
    wait_until(
        "the run to stop at its failpoint",
        Duration::from_secs(20),
        || !stopped_processes_with(&needle).is_empty(),
    );
    wait_until(
        "the run to be over a second old",
        Duration::from_secs(5),
        || started.elapsed() > Duration::from_millis(1200),
    );
    // script(1) stops itself when its child stops (job control): continue
    // whatever is stopped until the run is over.
    wait_until("the run to finish", Duration::from_secs(30), || {
        for pid in stopped_processes_with(&needle) {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        child.0.try_wait().unwrap().is_some()
    });
    assert!(child.0.wait().unwrap().success());
    std::fs::read_to_string(&out).unwrap()
}

fn progress_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.contains("s] ")).collect()
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn commit_counts_the_stock_it_reads_on_a_terminal_only() {
    if !require_tool("script", "bsdutils") {
        return;
    }
    let root = Root::example();
    let out = run_late(&root, "commit", "stock.after-choose", Where::Terminal);
    assert!(
        out.contains("] reading the stock: ") && out.contains(" of 3 services"),
        "no count on the terminal:\n{out}"
    );
    assert!(out.contains("generation 1 is live"), "{out}");
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let piped = run_late(&root, "commit", "stock.after-choose", Where::Piped);
    assert_eq!(progress_lines(&piped), Vec::<&str>::new(), "{piped}");
    root.write_stock("web/env/VERSION", "3.0\n", 0o644);
    let verbose = run_late(&root, "commit", "stock.after-choose", Where::PipedVerbose);
    assert!(
        verbose.contains("] reading the stock: ") && verbose.contains(" of 3 services"),
        "-v shows it piped:\n{verbose}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn gc_counts_its_removals_on_a_terminal_only() {
    if !require_tool("script", "bsdutils") {
        return;
    }
    let generations = |root: &Root| {
        root.commit().ok();
        for v in ["2.0", "3.0"] {
            root.write_stock("web/env/VERSION", &format!("{v}\n"), 0o644);
            root.commit().ok();
        }
    };
    let root = Root::example();
    generations(&root);
    let out = run_late(&root, "gc --keep 1", "gc.after-mark", Where::Terminal);
    // Two generations and web's two old objects.
    assert!(
        out.contains("] gc: removing: ") && out.contains(" of 4 generations and objects"),
        "no count on the terminal:\n{out}"
    );
    let piped_root = Root::example();
    generations(&piped_root);
    let piped = run_late(&piped_root, "gc --keep 1", "gc.after-mark", Where::Piped);
    assert_eq!(progress_lines(&piped), Vec::<&str>::new(), "{piped}");
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn recover_counts_its_sweep_on_a_terminal_only() {
    if !require_tool("script", "bsdutils") {
        return;
    }
    let leftovers = |root: &Root| {
        root.commit().ok();
        for i in 0..3 {
            let dir = root.state().join(format!(".tmp-left-{i}"));
            std::fs::create_dir_all(dir.join("sub")).unwrap();
            std::fs::write(dir.join("sub/file"), "x").unwrap();
        }
    };
    let root = Root::example();
    leftovers(&root);
    let out = run_late(&root, "recover", "recover.after-undo", Where::Terminal);
    assert!(
        out.contains("] recover: sweeping leftovers: 1 of 3 entries"),
        "no count on the terminal:\n{out}"
    );
    assert!(!root.state().join(".tmp-left-0").exists());
    let piped_root = Root::example();
    leftovers(&piped_root);
    let piped = run_late(&piped_root, "recover", "recover.after-undo", Where::Piped);
    assert_eq!(progress_lines(&piped), Vec::<&str>::new(), "{piped}");
}
