//! The everyday interface: `--help` of every command and the man
//! pages are snapshots, completions parse, progress shows when asked, and
//! every `--json` document keeps its shape (snapshots with times, paths,
//! digests and pids normalized; docs/json.md describes them).

use std::path::Path;

use crate::harness::*;

fn tool(args: &[&str]) -> Run {
    let out = std::process::Command::new(bin())
        .args(args)
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    Run::from(out)
}

/// The visible commands, from the man page list.
fn commands() -> Vec<String> {
    tool(&["man", "--list"])
        .ok()
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("svcdir-update-"))
        .map(str::to_string)
        .collect()
}

#[test]
fn help_of_every_command_is_stable() {
    insta::assert_snapshot!("help", tool(&["--help"]).ok().stdout);
    let commands = commands();
    assert!(commands.len() >= 14, "{commands:?}");
    for name in commands {
        let run = tool(&[&name, "--help"]).ok();
        insta::assert_snapshot!(format!("help_{name}"), run.stdout);
    }
}

#[test]
fn man_pages_in_docs_are_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    let pages: Vec<String> = tool(&["man", "--list"])
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".1").map(str::to_string))
        .collect();
    on_disk.sort();
    let mut wanted = pages.clone();
    wanted.sort();
    assert_eq!(
        on_disk, wanted,
        "docs/man/ does not hold one page per command; run scripts/gen-man.sh"
    );
    for page in pages {
        let rendered = tool(&["man", &page]).ok().stdout;
        let checked_in = std::fs::read_to_string(dir.join(format!("{page}.1"))).unwrap();
        assert!(
            rendered == checked_in,
            "docs/man/{page}.1 is stale; run scripts/gen-man.sh"
        );
    }
    // The main page documents what --help cannot: exit codes and files.
    let main = tool(&["man"]).ok().stdout;
    for needle in [
        "EXIT STATUS",
        "\\fB75\\fR",
        "FILES",
        "/var/lib/svcdir-update",
    ] {
        assert!(main.contains(needle), "main page lacks {needle}");
    }
    // `man -l` renders it.
    if require_tool("man", "man-db") {
        let out = std::process::Command::new("man")
            .args(["-l", "-"])
            .stdin(std::fs::File::open(dir.join("svcdir-update.1")).unwrap())
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("EXIT STATUS"),
            "man -l: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn completions_name_every_command_and_bash_parses_them() {
    let commands = commands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = tool(&["completions", shell]).ok().stdout;
        for name in &commands {
            assert!(script.contains(name.as_str()), "{shell} lacks {name}");
        }
    }
    let bash = tool(&["completions", "bash"]).ok().stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("svcdir-update.bash");
    std::fs::write(&file, &bash).unwrap();
    let status = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .unwrap();
    assert!(status.success());
    // Completing `svcdir-update com` in bash offers commit and completions.
    let script = format!(
        "source {}; COMP_WORDS=(svcdir-update com); COMP_CWORD=1; \
         _svcdir__update svcdir-update com svcdir-update; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .output()
        .unwrap();
    let offered = String::from_utf8_lossy(&out.stdout);
    assert!(
        offered.lines().any(|l| l == "commit") && offered.lines().any(|l| l == "completions"),
        "{offered}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tool(&["completions", "tcsh"]).code(exit::USAGE);
}

#[test]
fn progress_phases_show_when_forced_and_never_on_a_pipe_by_default() {
    let root = Root::example();
    let run = root.run(&["commit"]).ok();
    assert!(!run.stderr.contains("read the stock"), "{}", run.stderr);

    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let out = root
        .command(&["commit"])
        .env("SVCDIR_UPDATE_PROGRESS", "always")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let phases = [
        "read the stock: 3 services; plan: 0 to start, 1 to restart, 0 to stop, 2 unchanged",
        "copied 1 new store objects",
        "generation 2 staged; switching",
        "generation 2 is live; scan directory synced",
    ];
    let mut at = 0;
    for phase in phases {
        let found = stderr[at..]
            .find(phase)
            .unwrap_or_else(|| panic!("no {phase:?} after byte {at}:\n{stderr}"));
        at += found + phase.len();
    }
    // Progress never reaches stdout, and -q silences it.
    assert!(!String::from_utf8_lossy(&out.stdout).contains("switching"));
    root.write_stock("web/env/VERSION", "3.0\n", 0o644);
    let out = root
        .command(&["-q", "commit"])
        .env("SVCDIR_UPDATE_PROGRESS", "always")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replaces what differs between runs: the root path, 64-hex digests,
/// RFC 3339 times, transaction ids, and process identities.
fn normalize(value: &mut serde_json::Value, root: &str) {
    use serde_json::Value;
    match value {
        Value::String(s) => *s = normalize_str(s, root),
        Value::Array(items) => items.iter_mut().for_each(|v| normalize(v, root)),
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match key.as_str() {
                    "pid" | "start_time" | "uid" | "gid" | "bytes" | "gc_bytes" | "boot_id"
                    | "cmdline" | "command" => *v = Value::String(format!("[{key}]")),
                    // A transaction id: time, pid, nanoseconds.
                    "id" if v.is_string() => *v = Value::String("[ID]".into()),
                    "pending" if v.is_string() => {
                        // Line 1 is when and who; keep the reason.
                        let text = v.as_str().unwrap_or_default();
                        let why = text.split_once('\n').map_or("", |(_, why)| why);
                        *v = Value::String(format!("[WHEN]\n{}", normalize_str(why, root)));
                    }
                    _ => normalize(v, root),
                }
            }
        }
        _ => {}
    }
}

fn normalize_str(s: &str, root: &str) -> String {
    let s = s.replace(root, "[ROOT]");
    let bytes: Vec<char> = s.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        // 64 hex digits: a digest.
        let hex = bytes[i..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if hex >= 64 {
            out.push_str("[DIGEST]");
            i += hex;
            continue;
        }
        // 2026-11-22T04:37:55Z (optionally -PID after it: a transaction id).
        if bytes.len() - i >= 20
            && bytes[i..i + 4].iter().all(char::is_ascii_digit)
            && bytes[i + 4] == '-'
            && bytes[i + 10] == 'T'
            && bytes[i + 19] == 'Z'
        {
            out.push_str("[TIME]");
            i += 20;
            if bytes.get(i) == Some(&'-') {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                if digits > 0 {
                    out.push_str("-[PID]");
                    i += 1 + digits;
                }
            }
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[test]
fn json_documents_keep_their_shape() {
    let root = Root::example();
    let path = root.path().display().to_string();
    let snap = |name: &str, args: &[&str]| {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let run = root.run(&full).ok();
        let mut json = run.json();
        normalize(&mut json, &path);
        insta::assert_snapshot!(
            format!("json_{name}"),
            serde_json::to_string_pretty(&json).unwrap()
        );
    };
    snap("init", &["init"]);
    snap("check", &["check"]);
    snap("plan_first", &["plan"]);
    snap("commit_first", &["commit"]);
    snap("commit_up_to_date", &["commit"]);
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    root.add_service("extra", "new");
    std::fs::remove_dir_all(root.stock().join("cron")).unwrap();
    snap("plan", &["plan"]);
    snap("commit", &["commit"]);
    snap("list", &["list"]);
    snap("diff", &["diff", "1", "2"]);
    snap("status", &["status"]);
    snap("verify", &["verify"]);
    snap("rollback", &["rollback"]);
    snap("sync", &["sync"]);
    snap("recover", &["recover"]);
    // A deferred commit: recorded as pending, shown by status, applied by sync.
    root.write_stock("db/run.dpkg-new", "#!/bin/sh\n", 0o755);
    root.run(&["commit", "--strict"]).code(exit::TEMP_FAIL);
    snap("status_pending", &["status"]);
    std::fs::remove_file(root.stock().join("db/run.dpkg-new")).unwrap();
    snap("sync_pending", &["sync"]);
    // A broken service, held back by default (docs/json.md#commit).
    root.write_stock("web/run", "#!/bin/sh\n", 0o644);
    snap("plan_held_back", &["plan"]);
    snap("commit_held_back", &["commit"]);
    snap("status_held_back", &["status"]);
    snap("rollback_dry_run", &["rollback", "--dry-run"]);
    snap("gc_dry_run", &["gc", "--keep", "1", "--dry-run"]);
    snap("gc", &["gc", "--keep", "1"]);
    snap("history", &["history"]);
    snap("pin", &["pin", "2"]);
}

/// The pids of stopped processes whose command line contains `needle`.
pub fn stopped_processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains(needle) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('T'))
        {
            out.push(pid);
        }
    }
    out
}

/// On a real terminal (a pty from `script(1)`): a quick commit prints no
/// progress; one that takes longer than a second (held stopped after
/// reading the stock) prints the phases after the first second only.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn progress_shows_on_a_terminal_once_a_commit_takes_over_a_second() {
    use std::time::{Duration, Instant};
    if !require_tool("script", "bsdutils") {
        return;
    }
    let root = Root::example();
    root.commit().ok();
    let line = format!(
        "{} --root {} commit",
        bin().display(),
        root.path().display()
    );
    let in_pty = |failpoint: Option<&str>| {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env_remove("SVCDIR_UPDATE_PROGRESS")
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(root.path().join("pty.out")).unwrap());
        if let Some(fp) = failpoint {
            cmd.failpoint(fp);
        }
        cmd
    };

    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let status = in_pty(None).status().unwrap();
    assert!(status.success());
    let out = std::fs::read_to_string(root.path().join("pty.out")).unwrap();
    assert!(out.contains("generation 2 is live"), "{out}");
    assert!(
        !out.contains("switching"),
        "a quick commit showed progress:\n{out}"
    );

    root.write_stock("web/env/VERSION", "3.0\n", 0o644);
    let started = Instant::now();
    let mut script = KillOnDrop(in_pty(Some("commit.after-scan=stop")).spawn().unwrap());
    let needle = root.path().display().to_string();
    wait_until(
        "the commit to stop after reading the stock",
        Duration::from_secs(20),
        || !stopped_processes_with(&needle).is_empty(),
    );
    // The run must be over a second old when it goes on.
    wait_until("a second to pass", Duration::from_secs(5), || {
        started.elapsed() > Duration::from_millis(1200)
    });
    // script(1) stops itself when its child stops (job control): continue
    // whatever is stopped until script has finished.
    wait_until(
        "the commit under script(1) to finish",
        Duration::from_secs(20),
        || {
            for pid in stopped_processes_with(&needle) {
                let _ = std::process::Command::new("kill")
                    .args(["-CONT", &pid.to_string()])
                    .status();
            }
            script.0.try_wait().unwrap().is_some()
        },
    );
    assert!(script.0.wait().unwrap().success());
    let out = std::fs::read_to_string(root.path().join("pty.out")).unwrap();
    assert!(out.contains("generation 3 is live"), "{out}");
    for phase in [
        "generation 3 staged; switching",
        "generation 3 is live; scan directory synced",
    ] {
        assert!(out.contains(phase), "no {phase:?} on the terminal:\n{out}");
    }
    // The phase before the first second stays quiet.
    assert!(!out.contains("read the stock"), "{out}");
}
