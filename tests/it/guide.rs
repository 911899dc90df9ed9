//! docs/guide.md works: the guide's sandbox commands live in
//! docs/guide.sh, which this test runs against a temporary directory with
//! the binary under test first in PATH; every command line of the script
//! must be quoted verbatim in the guide, so the two cannot drift apart.

use std::path::Path;
use std::process::Stdio;

use crate::harness::*;

fn docs() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

/// The script's command lines: not blank, not comments, not the prologue
/// (`set`, the DEMO check).
fn command_lines(script: &str) -> Vec<&str> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| !l.starts_with("set ") && !l.starts_with(": "))
        .collect()
}

/// Every command line of `script` (under docs/) is quoted verbatim in
/// docs/guide.md, and there are at least `at_least` of them.
fn assert_quoted_in_guide(script: &str, at_least: usize) {
    let text = std::fs::read_to_string(docs().join(script)).unwrap();
    let guide = std::fs::read_to_string(docs().join("guide.md")).unwrap();
    let quoted: Vec<&str> = guide.lines().map(str::trim).collect();
    let lines = command_lines(&text);
    assert!(lines.len() >= at_least, "{lines:?}");
    let missing: Vec<&&str> = lines.iter().filter(|l| !quoted.contains(l)).collect();
    assert!(
        missing.is_empty(),
        "docs/guide.md does not quote these lines of docs/{script}:\n{missing:#?}"
    );
}

/// Runs `script` (under docs/) with `DEMO` set and the binary under test
/// first in PATH; asserts success and returns its stdout.
fn run_guide_script(script: &str, demo: &Path) -> String {
    let path = format!(
        "{}:{}",
        bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("sh")
        .arg(docs().join(script))
        .env("DEMO", demo)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    stdout
}

#[test]
fn every_command_of_guide_sh_is_quoted_in_the_guide() {
    assert_quoted_in_guide("guide.sh", 20);
}

#[test]
fn the_guide_runs() {
    let demo = tempfile::Builder::new()
        .prefix("svcdir-guide-")
        .tempdir()
        .unwrap();
    let stdout = run_guide_script("guide.sh", demo.path());
    // What the guide says happens, in order.
    let said = [
        "generation 1 is live: 1 to start",
        "hello  restart: run changed",
        "generation 2 is live",
        "generation 1 is live again (was 2)",
        "1 objects verified, all intact",
        "commit deferred: exit 75",
        "pending:      a commit deferred at",
        "generation 2 is live",
        "nothing to recover",
        "1 link(s) added",
        "already in sync with generation 2",
        "removed 1 generation(s)",
        // The operator's day.
        "generation 2 -> new generation: 0 to start, 1 to restart",
        "generation 3 is live",
        "hello 2.1: the greeting fix",
        "generation 2 is pinned",
        "dry run: gc would remove 0 generation(s)",
        "dry run: rollback would make generation 2 live again (now 3)",
        "generation 2 is live again (was 3)",
        "pinned",
        "generation 2 is unpinned",
        // One service from every side.
        "service:      hello",
        "(since generation 2, made ",
        "hello    gen 2, ",
        "diff a/hello/run b/hello/run",
        "-echo \"hello 2.0\"\n+echo \"hello 2.1\"",
    ];
    let mut at = 0;
    for s in said {
        let found = stdout[at..]
            .find(s)
            .unwrap_or_else(|| panic!("guide output lacks {s:?} after byte {at}:\n{stdout}"));
        at += found + s.len();
    }
    let live = std::fs::read_link(demo.path().join("state/live")).unwrap();
    assert_eq!(live, Path::new("generations/2"));
    let run = std::fs::read_to_string(demo.path().join("service/hello/run")).unwrap();
    assert!(run.contains("hello 2.0"), "{run}");
    assert!(!demo.path().join("state/pending").exists());
}

#[test]
fn every_command_of_guide_s6_sh_is_quoted_in_the_guide() {
    assert_quoted_in_guide("guide-s6.sh", 8);
}

/// Kills whatever the s6 guide left running under its directory, even
/// when the test fails.
struct Reaper(std::path::PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        crate::supervise_harness::kill_everything_under(&self.0);
    }
}

/// The guide's s6 section, run with Debian's s6: one real upgrade of a
/// supervised service, health-checked, with exactly one start of each
/// version.
#[test]
fn the_s6_guide_runs_under_a_real_s6_svscan() {
    if !require_tool("s6-svscan", "s6") {
        return;
    }
    let demo = tempfile::Builder::new()
        .prefix("svcdir-guide-s6-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        demo.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let _reaper = Reaper(demo.path().to_path_buf());
    let stdout = run_guide_script("guide-s6.sh", demo.path());
    for said in [
        "generation 1 is live",
        "hello  restart: run changed",
        "generation 2 is live",
        "up (pid ",
    ] {
        assert!(stdout.contains(said), "{said:?} missing:\n{stdout}");
    }
    // Each version started exactly once, as different processes; the
    // scanner's `s6-svstat` pid is the 2.0 one.
    let log = std::fs::read_to_string(demo.path().join("hello.log")).unwrap();
    let starts: Vec<(&str, &str)> = log
        .lines()
        .filter_map(|l| l.strip_prefix("hello ")?.split_once(" as "))
        .collect();
    assert_eq!(starts.len(), 2, "{log}");
    assert_eq!((starts[0].0, starts[1].0), ("1.0", "2.0"), "{log}");
    assert_ne!(starts[0].1, starts[1].1, "{log}");
    assert!(
        stdout.contains(&format!("up (pid {})", starts[1].1)),
        "{stdout}"
    );
}

#[test]
fn the_faq_explains_every_exit_code() {
    use svcdir_update::error::exit;
    let faq = std::fs::read_to_string(docs().join("faq.md")).unwrap();
    let codes = [
        exit::OK,
        exit::AFTER_SWITCH,
        exit::USAGE,
        exit::ROLLED_BACK,
        exit::DATA_ERR,
        exit::CANT_CREATE,
        exit::IO_ERR,
        exit::TEMP_FAIL,
        exit::NO_PERM,
        exit::INTERRUPTED,
    ];
    for code in codes {
        assert!(
            faq.contains(&format!("\n### {code} — ")),
            "docs/faq.md has no section for exit {code}"
        );
    }
    // And the man page lists the same codes.
    let man = std::fs::read_to_string(docs().join("man/svcdir-update.1")).unwrap();
    for code in codes {
        assert!(
            man.contains(&format!("\\fB{code}\\fR")),
            "man page lacks {code}"
        );
    }
}
