//! Text from outside reaches no terminal raw (docs/security.md#outside-text-is-shown-escaped):
//! stock directory names with escape sequences, a bell, a line break or a
//! bidi override, file names with bidi isolates, and a lock holder whose
//! argv carries escapes and 1.2 MB — in every command's stdout and stderr,
//! with and without `--json` — are shown escaped, and the JSON stays valid
//! and means the raw names.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// What a terminal must never receive from this tool: a control character
/// other than `\n` and `\t` (C0, DEL, C1) or a format character that
/// reorders or hides text (bidi marks, embeddings, overrides, isolates,
/// zero-width characters, the BOM, line and paragraph separators).
fn raw_character(bytes: &[u8]) -> Option<String> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return Some(format!("bytes that are not UTF-8 at {}", e.valid_up_to())),
    };
    text.chars()
        .find(|&c| {
            let u = u32::from(c);
            (c.is_control() && c != '\n' && c != '\t')
                || matches!(
                    u,
                    0x61c | 0xad | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2069 | 0xfeff
                )
        })
        .map(|c| format!("{c:?}"))
}

/// Runs the binary and checks its raw stdout and stderr: no raw character,
/// no forged line, JSON (with `--json`) that parses. Returns both streams.
#[track_caller]
fn run_clean(root: &Root, args: &[&str]) -> (i32, String, String) {
    let out = root.command(args).output().unwrap();
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        if let Some(found) = raw_character(bytes) {
            panic!(
                "{args:?}: {stream} holds {found}:\n{}",
                String::from_utf8_lossy(bytes)
            );
        }
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.lines().any(|l| l.starts_with("svcdir-update: forged")),
            "{args:?}: a forged line on {stream}:\n{text}"
        );
    }
    let stdout = String::from_utf8(out.stdout).unwrap();
    if args.contains(&"--json") && !stdout.is_empty() {
        assert!(
            serde_json::from_str::<serde_json::Value>(&stdout).is_ok(),
            "{args:?}: not JSON:\n{stdout}"
        );
    }
    (
        out.status.code().unwrap_or(-1),
        stdout,
        String::from_utf8(out.stderr).unwrap(),
    )
}

const RED: &str = "a\x1b[31mred";
const BELL: &str = "b\x07bell";
const FORGED: &str = "c\nsvcdir-update: forged";
const OVERRIDE: &str = "d\u{202e}evil";

#[test]
fn stock_names_with_escapes_and_bidi_characters_are_shown_escaped() {
    let root = Root::example();
    root.commit().ok();
    for name in [RED, BELL, FORGED, OVERRIDE] {
        root.add_service(name, "x");
    }
    // A file name the stock may use (not a control character), whose bidi
    // isolates would reorder the plan's "… changed" reason.
    root.write_stock("web/\u{2067}nur\u{2069}.conf", "x", 0o644);
    root.write_stock("web/env/\u{200f}\u{61c}\u{feff}\u{2028}", "x", 0o644);
    for args in [
        &["plan"][..],
        &["-v", "plan"],
        &["check"],
        &["--json", "check"],
        &["--json", "plan"],
        &["commit"],
    ] {
        let (_, stdout, stderr) = run_clean(&root, args);
        let all = format!("{stdout}{stderr}");
        assert!(
            all.contains("a\\x1b[31mred") || args.contains(&"--json"),
            "{args:?} must name the service, escaped:\n{all}"
        );
    }
    let (_, plan, _) = run_clean(&root, &["-v", "plan"]);
    assert!(
        plan.contains("up to date") || plan.contains("web"),
        "{plan}"
    );
    // The commit took web with its new files; `status` shows the held-back
    // names, escaped, and `--json` keeps them as they are.
    for args in [
        &["status"][..],
        &["--json", "status"],
        &["list"],
        &["verify"],
    ] {
        run_clean(&root, args);
    }
    let (_, status, _) = run_clean(&root, &["status"]);
    for shown in [
        "a\\x1b[31mred",
        "b\\x07bell",
        "c\\nsvcdir-update: forged",
        "d\\u{202e}evil",
    ] {
        assert!(
            status.contains(shown),
            "status must show {shown}:\n{status}"
        );
    }
    let (_, json, _) = run_clean(&root, &["--json", "status"]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let held: Vec<&str> = doc["held_back"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["service"].as_str())
        .collect();
    for name in [RED, BELL, FORGED, OVERRIDE] {
        assert!(
            held.contains(&name),
            "--json keeps {name:?} as it is: {held:?}"
        );
    }
    // The reason for web's restart named the new files, escaped.
    root.write_stock("web/\u{2067}nur\u{2069}.conf", "y", 0o644);
    let (_, plan, _) = run_clean(&root, &["plan"]);
    assert!(
        plan.contains("\\u{2067}nur\\u{2069}.conf changed"),
        "{plan}"
    );
}

/// A shell that takes the update lock of `web` shared and stays, with an
/// argv of escapes, a forged line, a bidi override and 1.2 MB of
/// arguments (ten of 120,000 bytes: one argument may hold 128 KiB).
fn hold_with_hostile_argv(lock: &Path) -> KillOnDrop {
    let big = "A".repeat(120_000);
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(
            "exec 9<\"$1\"; flock -s 9 || exit 9; shift; \
             exec -a \"$(printf '\\033]0;pwned\\007\\033[31m\\nsvcdir-update: forged\\342\\200\\256')\" \
             bash -c 'sleep 60; :' \"$@\"",
        )
        .arg("holder")
        .arg(lock);
    for _ in 0..10 {
        cmd.arg(&big);
    }
    let child = cmd.stdin(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    let holder = KillOnDrop(child);
    wait_until("the holder took the lock", Duration::from_secs(10), || {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.windows(6).any(|w| w == b"pwned\x07"))
    });
    holder
}

#[test]
fn a_lock_holders_argv_is_shown_escaped_and_bounded() {
    if !require_tool("flock", "util-linux") || !require_tool("bash", "bash") {
        return;
    }
    let root = Root::example();
    root.commit().ok();
    let lock = root.runtime().join("locks/web.lock");
    let _holder = hold_with_hostile_argv(&lock);
    root.write_stock("web/run", "#!/bin/sh\n# changed\nexec sleep 1000\n", 0o755);
    for args in [
        &["--wait", "0", "commit"][..],
        &["--json", "--wait", "0", "commit"],
    ] {
        let (code, stdout, stderr) = run_clean(&root, args);
        assert_eq!(
            code,
            i32::from(exit::TEMP_FAIL),
            "{args:?}\n{stdout}\n{stderr}"
        );
        assert!(
            stderr.contains("\\x1b]0;pwned\\x07\\x1b[31m\\nsvcdir-update: forged\\u{202e}"),
            "{args:?}: the holder's argv, escaped:\n{stderr}"
        );
        assert!(
            stderr.len() < 16 << 10,
            "{args:?}: {} bytes on stderr",
            stderr.len()
        );
        assert!(
            stdout.len() < 16 << 10,
            "{args:?}: {} bytes on stdout",
            stdout.len()
        );
    }
    let pending = std::fs::read(root.state().join(layout::PENDING)).unwrap();
    assert!(
        pending.len() <= 8 << 10,
        "pending is {} bytes",
        pending.len()
    );
    assert_eq!(
        raw_character(&pending),
        None,
        "{}",
        String::from_utf8_lossy(&pending)
    );
    for args in [&["status"][..], &["--json", "status"]] {
        let (code, stdout, _) = run_clean(&root, args);
        assert_eq!(code, 0, "{stdout}");
        assert!(stdout.len() < 16 << 10, "{args:?}: {} bytes", stdout.len());
        assert!(
            stdout.contains("pwned"),
            "{args:?} names the holder:\n{stdout}"
        );
    }
    let (_, json, _) = run_clean(&root, &["--json", "status"]);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let cmdline = doc["update_locks"][0]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["cmdline"].as_str())
        .find(|c| c.contains("pwned"))
        .unwrap_or_else(|| panic!("{doc}"))
        .to_string();
    assert!(
        cmdline.starts_with("\x1b]0;pwned\x07"),
        "--json keeps the argv as it is: {cmdline:?}"
    );
    assert!(
        cmdline.chars().count() <= 257 && cmdline.ends_with('…'),
        "{}",
        cmdline.len()
    );
    let _ = std::ffi::OsStr::from_bytes(b"");
}
