//! Bad input : every rejected stock tree and config exits
//! with its code and its `--json` error kind, names the offending path, and
//! leaves `live`, the generations and the scan directory byte-for-byte as
//! they were.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

use crate::harness::*;

/// Commits the example, breaks it with `breaks` (which returns the path the
/// message must name), then proves that `check`, `plan --strict` and
/// `commit --strict` all refuse with `code` and the error `kind`
/// (docs/json.md#errors) and that nothing the tool manages changed; then
/// that a default `commit` holds the broken service back instead
/// ([`assert_held_back_by_default`]).
#[track_caller]
fn assert_rejected(code: u8, kind: &str, breaks: impl FnOnce(&Root) -> String) -> Run {
    let (root, named, run) = assert_rejected_strictly(code, kind, breaks);
    assert_held_back_by_default(&root, &named);
    run
}

/// [`assert_rejected`] for a problem that names no single service (a
/// missing stock tree): the default commit refuses it the same way.
#[track_caller]
fn assert_rejected_always(code: u8, kind: &str, breaks: impl FnOnce(&Root) -> String) -> Run {
    let (root, named, run) = assert_rejected_strictly(code, kind, breaks);
    let before = root.snapshot();
    let (found, default_run) = root.error_kind(&["commit"]);
    default_run.code(code);
    assert_eq!(found, kind);
    assert_eq!(root.snapshot(), before, "{named}");
    run
}

#[track_caller]
fn assert_rejected_strictly(
    code: u8,
    kind: &str,
    breaks: impl FnOnce(&Root) -> String,
) -> (Root, String, Run) {
    let root = Root::example();
    root.commit().ok();
    let before = root.snapshot();
    let named = breaks(&root);
    for cmd in [&["check"][..], &["plan", "--strict"]] {
        let (found, run) = root.error_kind(cmd);
        let run = run.code(code);
        assert_eq!(found, kind, "`{cmd:?}`: {}", run.stdout);
        assert!(
            run.stderr.contains(&named),
            "`{cmd:?}` does not name {named}:\n{}",
            run.stderr
        );
    }
    let (found, run) = root.error_kind(&["commit", "--strict"]);
    let run = run.code(code);
    assert_eq!(found, kind, "commit: {}", run.stdout);
    assert!(
        run.stderr.contains(&named),
        "commit does not name {named}:\n{}",
        run.stderr
    );
    assert_eq!(
        root.snapshot(),
        before,
        "a rejected commit changed the state"
    );
    assert_eq!(root.live_generation(), Some(1));
    (root, named, run)
}

/// Without `--strict`, `plan` and `commit` exit 0, name the broken path on
/// stderr and in the JSON `held_back` list, and the scan directory and the
/// live services stay as they were (nothing else changed in the stock).
#[track_caller]
fn assert_held_back_by_default(root: &Root, named: &str) {
    let scandir_before = scandir_links(root);
    let plan = root.run(&["--json", "plan"]).ok();
    assert!(plan.stderr.contains(named), "{}", plan.stderr);
    assert!(names_path(&plan.json(), named), "{}", plan.stdout);
    let run = root.run(&["--json", "commit"]).ok();
    assert!(run.stderr.contains(named), "{}", run.stderr);
    assert!(run.stderr.contains("held back"), "{}", run.stderr);
    assert!(names_path(&run.json(), named), "{}", run.stdout);
    assert_eq!(root.live_generation(), Some(1), "{}", run.stderr);
    assert_eq!(scandir_links(root), scandir_before);
}

/// Whether a `held_back` list of `plan` or `commit` JSON names `path`,
/// shown as text is (the JSON holds the real name; the text escapes its
/// control characters as `\xNN`).
fn names_path(doc: &serde_json::Value, path: &str) -> bool {
    let escaped = |raw: &str| -> String {
        raw.chars()
            .map(|c| {
                if c.is_ascii_control() {
                    format!("\\x{:02x}", u32::from(c))
                } else {
                    c.to_string()
                }
            })
            .collect()
    };
    doc["held_back"].as_array().unwrap().iter().any(|held| {
        held["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| escaped(p["path"].as_str().unwrap()).contains(path))
    })
}

/// The scan directory's entries and where each leads.
fn scandir_links(root: &Root) -> Vec<(String, Option<PathBuf>)> {
    let mut links: Vec<_> = std::fs::read_dir(root.scandir())
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_link(e.path()).ok(),
            )
        })
        .collect();
    links.sort();
    links
}

fn show(p: PathBuf) -> String {
    p.display().to_string()
}

#[test]
fn service_name_with_a_leading_dot() {
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        root.add_service(".hidden", "x");
        show(root.stock().join(".hidden"))
    });
    assert!(run.stderr.contains("starts with a dot"), "{}", run.stderr);
}

#[test]
fn service_name_too_long() {
    let name = "a".repeat(65);
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        root.add_service(&name, "x");
        show(root.stock().join(&name))
    });
    assert!(run.stderr.contains("65 bytes long"), "{}", run.stderr);
}

#[test]
fn service_name_with_bad_characters() {
    for name in ["a b", "-dash", "semi;colon", "é"] {
        assert_rejected(exit::DATA_ERR, "stock", |root| {
            root.add_service(name, "x");
            show(root.stock().join(name))
        });
    }
}

#[test]
fn service_without_run() {
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        std::fs::remove_file(root.stock().join("cron/run")).unwrap();
        show(root.stock().join("cron"))
    });
    assert!(run.stderr.contains("has no `run`"), "{}", run.stderr);
}

#[test]
fn run_not_executable() {
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        let run = root.stock().join("cron/run");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o644)).unwrap();
        show(root.stock().join("cron"))
    });
    assert!(run.stderr.contains("not executable"), "{}", run.stderr);
}

/// A linked `run` is resolved (docs/design.md#links), so it must lead to a
/// file: a link to a directory is refused, and says so.
#[test]
fn run_is_a_symlink_to_a_directory() {
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        let dir = root.stock().join("cron");
        std::fs::remove_file(dir.join("run")).unwrap();
        std::fs::create_dir(dir.join("bin")).unwrap();
        std::os::unix::fs::symlink("bin", dir.join("run")).unwrap();
        show(dir.join("run"))
    });
    assert!(
        run.stderr.contains("is a symlink to the directory"),
        "{}",
        run.stderr
    );
}

#[test]
fn log_without_executable_log_run() {
    assert_rejected(exit::DATA_ERR, "stock", |root| {
        let run = root.stock().join("web/log/run");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o644)).unwrap();
        show(root.stock().join("web/log"))
    });
    assert_rejected(exit::DATA_ERR, "stock", |root| {
        std::fs::create_dir(root.stock().join("db/log")).unwrap();
        show(root.stock().join("db/log"))
    });
}

#[test]
fn fifo_in_a_service() {
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        let path = root.stock().join("cron/fifo");
        let ok = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(ok.success());
        show(path)
    });
    assert!(run.stderr.contains("is a FIFO"), "{}", run.stderr);
}

#[test]
fn socket_in_a_service() {
    let mut keep = None;
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        let path = root.stock().join("cron/sock");
        keep = Some(std::os::unix::net::UnixListener::bind(&path).unwrap());
        show(path)
    });
    assert!(run.stderr.contains("is a socket"), "{}", run.stderr);
}

#[test]
fn device_node_in_a_service() {
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        let path = root.stock().join("web/env/null");
        let ok = Command::new("mknod")
            .arg(&path)
            .args(["c", "1", "3"])
            .status()
            .unwrap();
        assert!(ok.success(), "mknod needs root");
        show(path)
    });
    assert!(run.stderr.contains("character device"), "{}", run.stderr);
}

#[test]
fn shipped_runtime_entries() {
    for rel in [
        "cron/supervise",
        "cron/event",
        "web/log/supervise",
        "web/log/event",
    ] {
        assert_rejected(exit::DATA_ERR, "stock", |root| {
            let path = root.stock().join(rel);
            std::fs::create_dir(&path).unwrap();
            show(path)
        });
    }
    // A plain file under a runtime name is just as wrong.
    assert_rejected(exit::DATA_ERR, "stock", |root| {
        let path = root.stock().join("db/supervise");
        std::fs::write(&path, "").unwrap();
        show(path)
    });
}

#[test]
fn non_utf8_file_name() {
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        let name = OsStr::from_bytes(b"bad-\xff-name");
        std::fs::write(root.stock().join("cron").join(name), "x").unwrap();
        show(root.stock().join("cron/bad-"))
    });
    assert!(run.stderr.contains("not valid UTF-8"), "{}", run.stderr);
}

#[test]
fn non_utf8_service_name() {
    assert_rejected(exit::DATA_ERR, "stock", |root| {
        let dir = root.stock().join(OsStr::from_bytes(b"svc\xfe"));
        std::fs::create_dir(&dir).unwrap();
        show(root.stock().join("svc"))
    });
}

#[test]
fn control_character_in_a_file_name() {
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        std::fs::write(root.stock().join("cron/a\x01b"), "x").unwrap();
        show(root.stock().join("cron/a\\x01b"))
    });
    assert!(run.stderr.contains("control character"), "{}", run.stderr);
}

#[test]
fn newline_in_a_service_name() {
    assert_rejected(exit::DATA_ERR, "stock", |root| {
        root.add_service("we\nb", "x");
        show(root.stock().join("we"))
    });
}

/// Makes nested directories under `base` whose full relative path exceeds
/// 4096 bytes, with components of `component` (≤ 255 bytes each, fewer than
/// the 32 levels `max_depth` allows). `mkdir -p` walks component by
/// component, so it works past PATH_MAX.
fn make_deep(base: &std::path::Path, component: &str) -> usize {
    let mut rel = PathBuf::new();
    while rel.as_os_str().len() <= 4200 {
        rel.push(component);
    }
    let ok = Command::new("mkdir")
        .arg("-p")
        .arg(&rel)
        .current_dir(base)
        .status()
        .unwrap();
    assert!(ok.success(), "mkdir -p of a deep tree");
    rel.components().count()
}

#[test]
fn path_over_4096_bytes() {
    let component = "d".repeat(250);
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        let levels = make_deep(&root.stock().join("cron"), &component);
        assert!(levels < 32, "{levels} levels would hit max_depth instead");
        show(root.stock().join("cron").join(&component[..64]))
    });
    assert!(run.stderr.contains("the limit is 4096"), "{}", run.stderr);
}

#[test]
fn path_over_4096_bytes_with_multibyte_names() {
    // Regression: the message cut the path at byte 64, inside a two-byte
    // character, and the scan panicked.
    let component = format!("x{}", "é".repeat(120));
    let run = assert_rejected(exit::DATA_ERR, "stock", |root| {
        make_deep(&root.stock().join("cron"), &component);
        show(root.stock().join("cron/x"))
    });
    assert!(run.stderr.contains("the limit is 4096"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn dpkg_files_in_flight_are_transient() {
    let run = assert_rejected(exit::TEMP_FAIL, "stock_busy", |root| {
        let path = root.stock().join("web/run.dpkg-new");
        std::fs::write(&path, "#!/bin/sh\n").unwrap();
        show(path)
    });
    assert!(run.stderr.contains("dpkg"), "{}", run.stderr);
}

#[test]
fn missing_stock_directory() {
    let run = assert_rejected_always(exit::DATA_ERR, "stock", |root| {
        std::fs::remove_dir_all(root.stock()).unwrap();
        show(root.stock())
    });
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}

#[test]
fn missing_optional_stock_tree_is_fine() {
    let root = Root::example();
    root.config("stock:\n  - stock\n  - {path: extra, optional: true}\n");
    root.commit().ok();
    assert_eq!(root.live_generation(), Some(1));
    root.config("stock:\n  - stock\n  - extra\n");
    let before = root.snapshot();
    let (kind, run) = root.error_kind(&["commit"]);
    let run = run.code(exit::DATA_ERR);
    assert_eq!(kind, "stock", "{}", run.stdout);
    assert!(
        run.stderr
            .contains(&root.path().join("extra").display().to_string()),
        "{}",
        run.stderr
    );
    assert_eq!(root.snapshot(), before);
}

#[test]
fn config_with_an_unknown_key() {
    let run = assert_rejected_always(exit::DATA_ERR, "config", |root| {
        root.config("supervizor: s6\n");
        show(root.path().join("config.yaml"))
    });
    assert!(run.stderr.contains("supervizor"), "{}", run.stderr);
}

#[test]
fn config_with_a_wrong_type() {
    let run = assert_rejected_always(exit::DATA_ERR, "config", |root| {
        root.config("keep_generations: many\n");
        show(root.path().join("config.yaml"))
    });
    assert!(run.stderr.contains("keep_generations"), "{}", run.stderr);
    assert_rejected_always(exit::DATA_ERR, "config", |root| {
        root.config("stock: 7\n");
        show(root.path().join("config.yaml"))
    });
}

/// A wait too long to add to a clock (`1e19` seconds) is a clear error,
/// in the config (65) as on the command line (2), never a panic.
#[test]
fn waits_beyond_a_week_are_refused() {
    for key in ["lock_wait", "update_lock_wait", "stop_timeout"] {
        let run = assert_rejected_always(exit::DATA_ERR, "config", |root| {
            root.config(&format!("{key}: 1e19\n"));
            show(root.path().join("config.yaml"))
        });
        assert!(run.stderr.contains(key), "{}", run.stderr);
        assert!(run.stderr.contains("a week"), "{}", run.stderr);
    }
    let root = Root::example();
    root.commit().ok();
    let before = root.snapshot();
    for args in [
        &["--wait", "1e19", "commit"][..],
        &["commit", "--check-up", "1e19"][..],
        &["--wait", "NaN", "gc"][..],
    ] {
        let run = root.run(args).code(exit::USAGE);
        assert!(
            run.stderr.contains("a week") || run.stderr.contains("seconds"),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
    assert_eq!(root.snapshot(), before);
}

#[test]
fn check_lists_every_problem_at_once() {
    let root = Root::example();
    root.commit().ok();
    let before = root.snapshot();
    let stock = root.stock();
    root.add_service(".hidden", "x");
    std::fs::remove_file(stock.join("cron/run")).unwrap();
    std::fs::set_permissions(
        stock.join("web/log/run"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::create_dir(stock.join("db/supervise")).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(stock.join("db/fifo"))
            .status()
            .unwrap()
            .success()
    );
    let run = root.run(&["check"]).code(exit::DATA_ERR);
    assert!(
        run.stderr.contains("5 problem(s)"),
        "not all problems at once:\n{}",
        run.stderr
    );
    for path in [
        stock.join(".hidden"),
        stock.join("cron"),
        stock.join("web/log"),
        stock.join("db/supervise"),
        stock.join("db/fifo"),
    ] {
        assert!(
            run.stderr.contains(&path.display().to_string()),
            "{} not named:\n{}",
            path.display(),
            run.stderr
        );
    }
    // The same five, one by one, in the --json error document.
    let (kind, run) = root.error_kind(&["check"]);
    assert_eq!(kind, "stock");
    let problems = run.json()["error"]["problems"].as_array().unwrap().len();
    assert_eq!(problems, 5, "{}", run.stdout);
    root.run(&["commit", "--strict"]).code(exit::DATA_ERR);
    assert_eq!(root.snapshot(), before);
    // By default the three broken services and the bad name are held back
    // (all five problems named) and nothing is switched.
    let run = root.run(&["--json", "commit"]).ok();
    let held = run.json()["held_back"].as_array().unwrap().clone();
    let names: Vec<&str> = held
        .iter()
        .map(|h| h["service"].as_str().unwrap())
        .collect();
    assert_eq!(names, [".hidden", "cron", "db", "web"], "{}", run.stdout);
    let problems: usize = held
        .iter()
        .map(|h| h["problems"].as_array().unwrap().len())
        .sum();
    assert_eq!(problems, 5, "{}", run.stdout);
    assert_eq!(root.live_generation(), Some(1));
}

#[test]
fn a_good_stock_checks_clean() {
    let root = Root::example();
    let run = root.run(&["check"]).ok();
    assert!(
        run.stdout.contains("stock OK: 3 services"),
        "{}",
        run.stdout
    );
}

#[test]
fn error_message_snapshot() {
    let root = Root::example();
    root.commit().ok();
    std::fs::remove_file(root.stock().join("cron/run")).unwrap();
    let mode = std::fs::Permissions::from_mode(0o644);
    std::fs::set_permissions(root.stock().join("web/run"), mode).unwrap();
    let run = root.run(&["check"]).code(exit::DATA_ERR);
    let text = run
        .stderr
        .replace(&root.path().display().to_string(), "[ROOT]");
    insta::assert_snapshot!("bad_stock_error", text);
}

#[test]
fn group_writable_state_is_refused_with_77() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let before = root.snapshot();
    std::fs::set_permissions(root.state(), std::fs::Permissions::from_mode(0o775)).unwrap();
    let (kind, run) = root.error_kind(&["commit"]);
    let run = run.code(exit::NO_PERM);
    assert_eq!(kind, "unsafe", "{}", run.stdout);
    assert!(
        run.stderr.contains(&show(root.state())) && run.stderr.contains("chmod go-w"),
        "{}",
        run.stderr
    );
    assert_eq!(root.snapshot(), before);
    std::fs::set_permissions(root.state(), std::fs::Permissions::from_mode(0o755)).unwrap();
    root.commit().ok();
    assert_eq!(root.live_generation(), Some(2));
}

/// A quote in a comment once hid 100,000 levels of nesting from the YAML
/// guard, and the parser spent 15 s on them: every config is refused or
/// read within a second (docs/security.md#yaml-is-refused-in-bounded-time).
#[test]
fn a_quote_in_a_config_comment_hides_no_nesting() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for yaml in [
        format!("# it's \"quoted\ndisabled: {deep}\n"),
        format!("supervisor: none # \"\ndisabled: {deep}\n"),
        format!("keep_generations: 3\nstate: x \"y\ndisabled: {deep}\n"),
    ] {
        let start = std::time::Instant::now();
        let run = assert_rejected_always(exit::DATA_ERR, "config", |root| {
            root.config(&yaml);
            show(root.path().join("config.yaml"))
        });
        assert!(run.stderr.contains("nested deeper"), "{}", run.stderr);
        // Seven runs of the binary in assert_rejected_always, each refusing.
        assert!(
            start.elapsed() < std::time::Duration::from_secs(7),
            "{:?}",
            start.elapsed()
        );
    }
}
