//! `recover` (docs/design.md#recover---rollback): a damaged rollback log is never guessed
//! at — every writing command refuses with exit 65 and a message saying
//! what to do, nothing changes, and `status` shows the damage — and
//! `recover --rollback` undoes a transaction that had already switched.

use crate::harness::*;
use crate::invariant::*;
use crate::slow::crash::{change_stock, run_at};

/// A root whose commit 1 -> 2 died before the switch, leaving a real log.
fn root_with_interrupted_commit() -> Root {
    let root = Root::example();
    root.commit().ok();
    change_stock(&root, "a");
    assert!(run_at(&root, &["commit"], "txn.after-stop"));
    assert!(root.state().join(layout::TXN).is_file());
    root
}

/// Re-seals a log body with a correct checksum line.
fn with_checksum(body: &str) -> Vec<u8> {
    format!(
        "{body}checksum: {}\n",
        blake3::hash(body.as_bytes()).to_hex()
    )
    .into_bytes()
}

fn body_of(log: &[u8]) -> String {
    let text = String::from_utf8(log.to_vec()).unwrap();
    let at = text.rfind("checksum: ").unwrap();
    text[..at].to_string()
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_damaged_log_stops_every_writing_command_and_changes_nothing() {
    let root = root_with_interrupted_commit();
    let log_path = root.state().join(layout::TXN);
    let good = std::fs::read(&log_path).unwrap();
    assert_eq!(with_checksum(&body_of(&good)), good, "the test's checksum");
    let mut flipped = good.clone();
    let at = body_of(&good).find("to: 2").unwrap() + 4;
    flipped[at] = b'3';
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("checksum wrong", flipped),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("NUL-filled", vec![0u8; good.len()]),
        ("empty", Vec::new()),
        (
            "unknown phase",
            with_checksum(&body_of(&good).replace("phase: stopping", "phase: exploded")),
        ),
    ];
    for (what, bytes) in cases {
        assert_ne!(bytes, good, "{what}");
        std::fs::write(&log_path, &bytes).unwrap();
        let before = root.snapshot();
        for args in [
            &["recover"][..],
            &["recover", "--rollback"],
            &["commit"],
            &["rollback", "1"],
            &["gc"],
            &["sync"],
        ] {
            let run = root
                .run(&[&["--json"], args].concat())
                .code(exit::DATA_ERR)
                .kind("damaged");
            assert_eq!(
                run.json()["error"]["path"],
                log_path.display().to_string(),
                "{what}, {args:?}"
            );
            assert!(
                run.stderr
                    .contains(".txn.yaml: the transaction log is damaged")
                    && run.stderr.contains("move the file away"),
                "{what}, {args:?}: the message must say what to do:\n{}",
                run.stderr
            );
            assert_eq!(
                root.snapshot(),
                before,
                "{what}, {args:?} changed the state"
            );
            assert_eq!(std::fs::read(&log_path).unwrap(), bytes, "{what}, {args:?}");
        }
        let status = root.run(&["status"]).ok();
        assert!(
            status.stdout.contains("DAMAGED LOG"),
            "{what}: status must show the damage:\n{}",
            status.stdout
        );
        let json = root.run(&["--json", "status"]).ok().json();
        assert!(json["log_error"].is_string(), "{what}: {json}");
    }
    // The intact log is still understood: recover undoes the commit.
    std::fs::write(&log_path, &good).unwrap();
    let status = root.run(&["status"]).ok();
    assert!(status.stdout.contains("INTERRUPTED"), "{}", status.stdout);
    root.run(&["recover"]).ok();
    assert_eq!(assert_consistent(&root), Some(1));
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn recover_rollback_undoes_a_switched_transaction() {
    let root = Root::example();
    root.commit().ok();
    let gen1 = stock_contents(&root);
    let web_ino = root.inode(&root.scandir().join("web"));
    change_stock(&root, "a");
    // Killed after the switch: live is 2, scan directory and history not done.
    assert!(run_at(&root, &["commit"], "txn.after-switch"));
    assert_eq!(root.live_generation(), Some(2));

    let run = root.run(&["recover", "--rollback"]).ok();
    assert!(run.stdout.contains("undone"), "{}", run.stdout);
    assert_eq!(assert_consistent(&root), Some(1));
    assert_eq!(live_contents(&root), gen1);
    // Same object, same inode: the scanner keeps the old instance.
    assert_eq!(root.inode(&root.scandir().join("web")), web_ino);
    let history = std::fs::read_to_string(root.state().join(layout::HISTORY)).unwrap();
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(lines[1].contains("commit 1 -> 2") && lines[1].ends_with("done"));
    assert!(lines[2].contains("rollback 2 -> 1") && lines[2].ends_with("done"));

    // Without an interrupted transaction, --rollback refuses (nothing changes).
    let before = root.snapshot();
    let run = root
        .run(&["--json", "recover", "--rollback"])
        .code(exit::DATA_ERR)
        .kind("no_interrupted_transaction");
    assert!(run.stderr.contains("rollback [GEN]"), "{}", run.stderr);
    assert_eq!(root.snapshot(), before);
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn recover_rollback_of_an_unswitched_transaction_just_undoes_it() {
    let root = root_with_interrupted_commit();
    root.run(&["recover", "--rollback"]).ok();
    assert_eq!(assert_consistent(&root), Some(1));
}

/// A power cut can lose the new `live` link or leave it dangling: recover
/// decides by the log and by which generation is complete, not by trust.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn recover_repairs_a_lost_or_dangling_live_link_by_the_log() {
    for (point, damage, want_new) in [
        ("switch.after-symlink", "missing", true),
        ("switch.after-symlink", "dangling", true),
        ("txn.after-stop", "missing", false),
        ("txn.after-stop", "dangling", false),
    ] {
        let root = Root::example();
        root.commit().ok();
        let old = stock_contents(&root);
        change_stock(&root, "a");
        let new = stock_contents(&root);
        assert!(run_at(&root, &["commit"], point));
        std::fs::remove_file(root.live()).unwrap();
        if damage == "dangling" {
            #[allow(clippy::disallowed_methods)] // simulating damage in the state
            std::os::unix::fs::symlink("generations/99", root.live()).unwrap();
        }
        root.run(&["recover"]).ok();
        let is_new = assert_old_or_new(&root, &old, &new, &format!("{point}, {damage}"));
        assert_eq!(is_new, want_new, "{point}, {damage}");
    }
}

/// A log whose checksum is right but whose names point elsewhere (planted,
/// or written by something else) is damaged: its object and service names
/// become paths and supervisor arguments, so they are held to the rules of
/// manifest values (docs/security.md#names-read-from-the-rollback-log).
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_resigned_log_naming_objects_outside_the_store_is_damaged() {
    let root = root_with_interrupted_commit();
    let log_path = root.state().join(layout::TXN);
    let good = std::fs::read(&log_path).unwrap();
    let body = body_of(&good);
    let from_line = body
        .lines()
        .find(|l| l.trim_start().starts_with("from: web-"))
        .unwrap()
        .to_string();
    let outside = root.path().join("x/svc");
    std::fs::create_dir_all(&outside).unwrap();
    let with_from = |from: &str| {
        body.replace(&from_line, &format!("  from: {from}"))
            .replace("stopped: []", "stopped: [web]")
    };
    let cases = [
        ("services[].from", with_from("../../../x/svc")),
        ("services[].from", with_from(&outside.display().to_string())),
        (
            "services[].from",
            with_from(&format!("db-{}", "a".repeat(64))),
        ),
        (
            "services[].name",
            body.replace("- name: web", "- name: ../../x/svc"),
        ),
        ("stopped", body.replace("stopped: []", "stopped: ['../x']")),
        (
            "id",
            format!("id: \"a\\nb\"\n{}", body.split_once('\n').unwrap().1),
        ),
    ];
    for (field, planted) in cases {
        assert_ne!(planted, body, "{field}");
        std::fs::write(&log_path, with_checksum(&planted)).unwrap();
        let before = root.snapshot();
        for args in [&["recover"][..], &["commit"], &["status"]] {
            if args == ["status"] {
                let status = root.run(&["--json", "status"]).ok().json();
                let said = status["log_error"].as_str().unwrap_or_default().to_string();
                assert!(
                    said.contains(field),
                    "{field}: status must name it: {status}"
                );
                continue;
            }
            let run = root
                .run(&[&["--json"], args].concat())
                .code(exit::DATA_ERR)
                .kind("damaged");
            assert_eq!(run.json()["error"]["path"], log_path.display().to_string());
            assert!(
                run.stderr.contains(field) && run.stderr.contains("move the file away"),
                "{field}, {args:?}: the message must name the field and the fix:\n{}",
                run.stderr
            );
            assert_eq!(
                root.snapshot(),
                before,
                "{field}, {args:?} changed the state"
            );
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "{field}");
    }
    // The log as written is still understood: recover undoes the commit.
    std::fs::write(&log_path, &good).unwrap();
    root.run(&["recover"]).ok();
    assert_eq!(assert_consistent(&root), Some(1));
}

/// `live` leading outside the state (or to a generation that does not
/// exist) made every command say "run recover", and `recover` said
/// "nothing to recover". It repoints `live` to the newest complete
/// generation and says so (docs/security.md#a-live-link-that-leads-nowhere).
#[test]
fn recover_repoints_a_live_link_that_leads_nowhere() {
    let elsewhere = tempfile::tempdir().unwrap();
    for (bad, json) in [
        (elsewhere.path().to_path_buf(), false),
        (std::path::PathBuf::from("generations/99"), true),
        (std::path::PathBuf::from("../../x"), false),
    ] {
        let root = Root::example();
        root.commit().ok();
        for tag in ["b", "c"] {
            root.write_stock(
                "web/run",
                &format!("#!/bin/sh\n# {tag}\nexec sleep 1\n"),
                0o755,
            );
            root.commit().ok();
        }
        assert_eq!(generations(&root), [1, 2, 3]);
        // Generation 3 is not complete (a link lost): 2 is the newest complete one.
        std::fs::remove_file(root.state().join("generations/3/db")).unwrap();
        std::fs::remove_file(root.live()).unwrap();
        #[allow(clippy::disallowed_methods)] // planting the damage
        std::os::unix::fs::symlink(&bad, root.live()).unwrap();
        let (kind, run) = root.error_kind(&["status"]);
        run.code(exit::DATA_ERR);
        assert!(
            ["damaged", "no_such_generation"].contains(&kind.as_str()),
            "{bad:?}: {kind}"
        );
        let run = if json {
            root.run(&["--json", "recover"]).ok()
        } else {
            root.run(&["recover"]).ok()
        };
        if json {
            assert_eq!(run.json()["relinked_live"], 2, "{}", run.stdout);
            assert_eq!(run.json()["live"], 2, "{}", run.stdout);
        } else {
            assert!(
                run.stdout
                    .contains(&format!("live pointed at {}", bad.display()))
                    && run.stdout.contains("now points at generation 2"),
                "{bad:?}: recover must say what it did:\n{}",
                run.stdout
            );
        }
        assert_eq!(root.live_generation(), Some(2), "{bad:?}");
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
        // Every command works again; a second recover has nothing to do.
        root.run(&["status"]).ok();
        root.run(&["list"]).ok();
        assert!(
            root.run(&["recover"])
                .ok()
                .stdout
                .contains("nothing to recover")
        );
        root.commit().ok();
        assert!(root.live_generation().is_some_and(|n| n >= 2));
    }
}
