//! The operator's day (docs/cli.md#history, #pin-gen, #dry-runs): what
//! happened and who did it (`history`, the marks of `list`), notes and
//! pinned generations, dry runs that change nothing, the refusal to stop
//! every service, and `check`'s warnings about programs that cannot run.

use crate::harness::*;

fn history_json(root: &Root) -> Vec<serde_json::Value> {
    root.run(&["--json", "history"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn list_json(root: &Root) -> Vec<serde_json::Value> {
    root.run(&["--json", "list"])
        .ok()
        .json()
        .as_array()
        .unwrap()
        .clone()
}

fn bump_web(root: &Root, tag: &str) {
    root.write_stock(
        "web/run",
        &format!("#!/bin/sh\n# {tag}\nexec sleep 1000\n"),
        0o755,
    );
}

#[test]
fn history_says_when_who_what_and_how_each_transaction_ended() {
    let root = Root::example();
    root.run(&["commit", "-m", "first install"]).ok();
    bump_web(&root, "v2");
    root.run(&["commit", "--message", "web v2"]).ok();
    root.run(&["rollback"]).ok();
    let h = history_json(&root);
    assert_eq!(h.len(), 3, "{h:?}");
    let me = std::process::id();
    for e in &h {
        assert_eq!(e["uid"], 0, "{e}");
        assert!(e["pid"].as_i64().unwrap() > 0 && e["pid"] != me, "{e}");
        assert!(e["time"].as_str().unwrap().ends_with('Z'), "{e}");
        assert_eq!(e["outcome"], "done");
    }
    let cmd = |i: usize| h[i]["command"].as_str().unwrap().to_string();
    assert!(cmd(0).ends_with("commit -m first install"), "{}", cmd(0));
    assert!(cmd(0).contains(&root.path().display().to_string()));
    assert!(cmd(2).ends_with(" rollback"), "{}", cmd(2));
    assert_eq!(
        (
            h[0]["kind"].as_str(),
            h[0]["from"].as_u64(),
            h[0]["to"].as_u64()
        ),
        (Some("commit"), None, Some(1))
    );
    assert_eq!(
        (h[0]["start"].as_u64(), h[1]["restart"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        (h[2]["kind"].as_str(), h[2]["to"].as_u64()),
        (Some("rollback"), Some(1))
    );
    assert_eq!(h[1]["note"], "web v2");

    let text = root.run(&["history"]).ok().stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for word in [
        "TIME", "KIND", "GEN", "CHANGES", "OUTCOME", "UID", "PID", "COMMAND", "NOTE",
    ] {
        assert!(lines[0].contains(word), "{text}");
    }
    assert!(
        lines[1].contains("- -> 1") && lines[1].contains("+3 ~0 -0"),
        "{text}"
    );
    assert!(
        lines[2].contains("1 -> 2") && lines[2].contains("web v2"),
        "{text}"
    );
    assert!(
        lines[3].contains("rollback") && lines[3].contains("2 -> 1"),
        "{text}"
    );
}

/// Lines written before `uid=`, `pid=` and `cmd=` existed are still read:
/// who is then unknown, and the rest is intact. A torn line is skipped with
/// a warning, not an error.
#[test]
fn history_reads_lines_of_earlier_versions_and_skips_torn_ones() {
    let root = Root::example();
    root.commit().ok();
    let log = root.state().join(layout::HISTORY);
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(
        "2026-01-02T03:04:05Z 2026-01-02T03:04:05Z-99-000000001 commit 1 -> 2 \
         start=0 restart=1 stop=0 done forced=2\n2026-01-02T03:04:06Z torn-lin",
    );
    std::fs::write(&log, text).unwrap();
    let run = root.run(&["--json", "history"]).ok();
    assert!(run.stderr.contains("1 line(s)"), "{}", run.stderr);
    let h = run.json();
    let old = &h[1];
    assert_eq!(
        (old["to"].as_u64(), old["forced"].as_u64()),
        (Some(2), Some(2))
    );
    assert!(old["uid"].is_null() && old["pid"].is_null() && old["command"].is_null());
    let text = root.run(&["history"]).ok().stdout;
    let last = text.lines().last().unwrap();
    assert!(
        last.contains("forced past 2 lock(s)") && last.contains(" ? "),
        "{last}"
    );
}

/// A commit killed after staging never switched: `list` says "never
/// live". One whose transaction was undone says so in the history.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn list_marks_generations_that_never_went_live_and_history_says_undone() {
    let root = Root::example();
    root.commit().ok();
    bump_web(&root, "v2");
    let out = root
        .command(&["commit"])
        .failpoint("txn.after-write")
        .output()
        .unwrap();
    assert!(!out.status.success());
    root.run(&["recover"]).ok();
    assert_eq!(root.live_generation(), Some(1));
    let h = history_json(&root);
    assert_eq!(
        (h[1]["outcome"].as_str(), h[1]["to"].as_u64()),
        (Some("undone"), Some(2)),
        "{h:?}"
    );
    let l = list_json(&root);
    assert_eq!(l.len(), 2);
    assert_eq!(
        (l[0]["never_live"].as_bool(), l[1]["never_live"].as_bool()),
        (Some(false), Some(true))
    );
    let text = root.run(&["list"]).ok().stdout;
    assert!(
        text.lines().nth(2).unwrap().contains("never live"),
        "{text}"
    );
    assert!(
        root.run(&["history"])
            .ok()
            .stdout
            .contains("undone (nothing switched)")
    );
}

/// `list` and `history` read a `--check-up` rollback from the history:
/// the generation it left is marked "failed --check-up" (the real
/// supervisor case is in supervisors.rs; here the line is written as the
/// auto-rollback writes it).
#[test]
fn a_check_up_rollback_marks_the_generation_it_left() {
    let root = Root::example();
    root.commit().ok();
    bump_web(&root, "v2");
    root.commit().ok();
    root.run(&["rollback"]).ok();
    let log = root.state().join(layout::HISTORY);
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::write(
        &log,
        text.replace(" rollback 2 -> 1 ", " auto-rollback 2 -> 1 "),
    )
    .unwrap();
    let l = list_json(&root);
    assert_eq!(l[1]["failed_check_up"], true, "{l:?}");
    assert_eq!(l[0]["failed_check_up"], false, "{l:?}");
    let h = history_json(&root);
    assert_eq!(h[1]["rolled_back_by_check_up"], true, "{h:?}");
    assert!(
        root.run(&["list"])
            .ok()
            .stdout
            .contains("failed --check-up")
    );
    assert!(
        root.run(&["history"])
            .ok()
            .stdout
            .contains("rolled back by --check-up")
    );
}

#[test]
fn list_counts_changes_against_a_parent_that_is_not_the_generation_before() {
    let root = Root::example();
    root.run(&["commit"]).ok();
    bump_web(&root, "v2");
    root.run(&["commit"]).ok();
    root.run(&["rollback", "1"]).ok();
    root.add_service("extra", "new");
    root.run(&["commit"]).ok();
    let l = list_json(&root);
    assert_eq!(l[2]["parent"], 1, "{l:?}");
    // Against generation 1 (its parent) web changed and extra is new;
    // against generation 2 only extra would be.
    assert_eq!(
        (
            l[2]["changes"]["start"].as_u64(),
            l[2]["changes"]["restart"].as_u64()
        ),
        (Some(1), Some(1)),
        "{l:?}"
    );
    assert_eq!(l[1]["changes"]["restart"], 1, "{l:?}");
}

#[test]
fn list_shows_what_each_generation_changed_its_note_and_its_pin() {
    let root = Root::example();
    root.run(&["commit", "-m", "base"]).ok();
    bump_web(&root, "v2");
    root.add_service("extra", "new");
    std::fs::remove_dir_all(root.stock().join("cron")).unwrap();
    root.run(&["commit", "-m", "web v2, extra, no cron"]).ok();
    root.run(&["pin", "1"]).ok();
    let l = list_json(&root);
    assert_eq!(l[0]["changes"], serde_json::Value::Null);
    assert_eq!(
        l[1]["changes"],
        serde_json::json!({"start": 1, "restart": 1, "stop": 1, "keep": 1})
    );
    assert_eq!(
        (l[0]["note"].as_str(), l[0]["pinned"].as_bool()),
        (Some("base"), Some(true))
    );
    assert_eq!(l[1]["pinned"], false);
    let text = root.run(&["list"]).ok().stdout;
    let rows: Vec<&str> = text.lines().collect();
    assert!(
        rows[0].contains("CHANGES") && rows[0].contains("NOTE"),
        "{text}"
    );
    assert!(
        rows[1].contains("pinned") && rows[1].ends_with("base"),
        "{text}"
    );
    assert!(
        rows[2].contains("+1 ~1 -1") && rows[2].contains("live"),
        "{text}"
    );
}

#[test]
fn a_note_is_one_short_line_and_is_not_lost_silently() {
    let root = Root::example();
    for bad in ["two\nlines", "tab\there", &"x".repeat(201)] {
        root.run(&["--json", "commit", "-m", bad])
            .code(exit::USAGE)
            .kind("usage");
        assert!(
            !root.state().join(layout::LIVE).exists(),
            "nothing committed"
        );
    }
    root.run(&["commit", "-m", &"é".repeat(200)]).ok();
    // Nothing changed: no generation, so the note has nowhere to go.
    let run = root.run(&["commit", "-m", "no change"]).ok();
    assert!(
        run.stderr.contains("the note was not stored"),
        "{}",
        run.stderr
    );
    assert_eq!(generations(&root), vec![1]);
}

/// A staged generation is reused by a retried commit only with the same
/// note: a generation never changes once published.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_retried_commit_with_another_note_stages_a_generation_of_its_own() {
    let root = Root::example();
    root.commit().ok();
    bump_web(&root, "v2");
    let out = root
        .command(&["commit", "-m", "first try"])
        .failpoint("commit.after-publish-generation")
        .output()
        .unwrap();
    assert!(!out.status.success());
    root.run(&["commit", "-m", "second try"]).ok();
    assert_eq!(root.live_generation(), Some(3));
    let l = list_json(&root);
    assert_eq!(
        (l[1]["note"].as_str(), l[1]["never_live"].as_bool()),
        (Some("first try"), Some(true))
    );
    assert_eq!(l[2]["note"], "second try");
}

#[test]
fn a_pinned_generation_and_its_objects_survive_gc_until_unpinned() {
    let root = Root::example();
    root.commit().ok();
    let gen1: Vec<String> = list_objects(&root, 1);
    for i in 2..=4 {
        bump_web(&root, &format!("v{i}"));
        root.commit().ok();
    }
    root.run(&["pin", "1"]).ok();
    let again = root.run(&["pin", "1"]).ok();
    assert!(again.stdout.contains("already pinned"), "{}", again.stdout);
    let json = root.run(&["--json", "gc", "--keep", "1"]).ok().json();
    assert_eq!(json["kept_generations"], serde_json::json!([1, 4]));
    assert_eq!(generations(&root), vec![1, 4]);
    for object in &gen1 {
        assert!(root.state().join("store").join(object).is_dir(), "{object}");
    }
    root.run(&["rollback", "1"]).ok();
    root.run(&["rollback", "4"]).ok();
    root.run(&["unpin", "1"]).ok();
    assert!(
        root.run(&["unpin", "1"])
            .ok()
            .stdout
            .contains("was not pinned")
    );
    root.run(&["gc", "--keep", "1"]).ok();
    assert_eq!(generations(&root), vec![4]);
    // Pinning what is not there is refused with the usual error.
    root.run(&["--json", "pin", "1"])
        .code(exit::DATA_ERR)
        .kind("no_such_generation");
}

/// A `pinned` file that does not parse stops gc: it must not delete what
/// an operator kept because it could not read the list.
#[test]
fn gc_refuses_when_the_list_of_pins_is_damaged() {
    let root = Root::example();
    root.commit().ok();
    bump_web(&root, "v2");
    root.commit().ok();
    std::fs::write(root.state().join("pinned"), "1\nbanana\n").unwrap();
    let (kind, run) = root.error_kind(&["gc", "--keep", "1"]);
    assert_eq!(kind, "damaged", "{}", run.stderr);
    assert!(run.stderr.contains("pinned"), "{}", run.stderr);
    assert_eq!(generations(&root), vec![1, 2]);
}

fn list_objects(root: &Root, n: u64) -> Vec<String> {
    let m = std::fs::read_to_string(
        root.state()
            .join(layout::GENERATIONS)
            .join(n.to_string())
            .join(".manifest.yaml"),
    )
    .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&m).unwrap();
    doc["services"]
        .as_mapping()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dry_runs_change_nothing_and_say_what_the_real_run_does() {
    let root = Root::example();
    root.commit().ok();
    bump_web(&root, "v2");
    root.commit().ok();
    bump_web(&root, "v3");
    let before = root.snapshot();
    let history = history_lines(&root);

    let plan = root.run(&["--json", "plan"]).ok().json();
    let dry = root.run(&["--json", "commit", "--dry-run"]).ok().json();
    assert_eq!(dry, plan);
    let dry = root.run(&["rollback", "--dry-run"]).ok().stdout;
    assert!(
        dry.starts_with("dry run: rollback would make generation 1 live again (now 2)"),
        "{dry}"
    );
    assert!(dry.contains("web  restart: run changed"), "{dry}");
    let gc_dry = root
        .run(&["--json", "gc", "--keep", "1", "--dry-run"])
        .ok()
        .json();
    assert_eq!(gc_dry["dry_run"], true);
    assert_eq!(gc_dry["removed_generations"], serde_json::json!([1]));
    assert_eq!(root.snapshot(), before, "a dry run changed something");
    assert_eq!(history_lines(&root), history);

    let gc = root.run(&["--json", "gc", "--keep", "1"]).ok().json();
    assert_eq!(gc["removed_generations"], gc_dry["removed_generations"]);
    assert_eq!(gc["removed_objects"], gc_dry["removed_objects"]);
    // A dry run is not a way around the arguments of the real one.
    root.run(&["commit", "--dry-run", "--force"])
        .code(exit::USAGE);
    root.run(&["rollback", "--dry-run", "--force"])
        .code(exit::USAGE);
}

/// An empty or wrong stock path would stop every service: refused unless
/// `--allow-stop-all` says so; `plan` (and `commit --dry-run`) warn.
#[test]
fn a_commit_that_would_stop_every_service_needs_allow_stop_all() {
    let root = Root::example();
    root.commit().ok();
    let before = root.snapshot();
    std::fs::remove_dir_all(root.stock()).unwrap();
    std::fs::create_dir(root.stock()).unwrap();
    let (kind, run) = root.error_kind(&["commit"]);
    assert_eq!(
        (kind.as_str(), run.code),
        ("stops_everything", i32::from(exit::DATA_ERR))
    );
    assert!(
        run.stderr.contains("would stop all 3 live service(s)")
            && run.stderr.contains("--allow-stop-all"),
        "{}",
        run.stderr
    );
    assert_eq!(root.snapshot(), before, "refused, yet something changed");
    assert!(
        !root.state().join(layout::PENDING).exists(),
        "not a deferral"
    );
    let doc = root.run(&["--json", "commit"]).json();
    assert_eq!(
        (
            doc["error"]["live_services"].as_u64(),
            doc["error"]["stock_services"].as_u64()
        ),
        (Some(3), Some(0))
    );
    let plan = root.run(&["plan"]).ok().stdout;
    assert!(plan.contains("refuses without --allow-stop-all"), "{plan}");
    root.run(&["commit", "--allow-stop-all"]).ok();
    assert_eq!(root.live_generation(), Some(2));
    assert_eq!(std::fs::read_dir(root.scandir()).unwrap().count(), 0);
    // From nothing live, and with any service kept, no flag is needed.
    copy_tree(&fixture_stock(), &root.stock());
    root.commit().ok();
    std::fs::remove_dir_all(root.stock().join("web")).unwrap();
    std::fs::remove_dir_all(root.stock().join("db")).unwrap();
    root.commit().ok();
    assert_eq!(root.live_generation(), Some(4));
}

#[test]
fn check_warns_of_programs_that_cannot_be_executed() {
    let root = Root::example();
    root.write_stock("web/run", "exec sleep 1000\n", 0o755);
    root.write_stock("db/run", "#!/bin/sh\r\nexec sleep 1000\r\n", 0o755);
    let run = root.run(&["check"]).ok();
    let warnings: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("warning:"))
        .collect();
    assert_eq!(warnings.len(), 2, "{}", run.stdout);
    assert!(warnings[0].contains("db/run") && warnings[0].contains("carriage return"));
    assert!(warnings[1].contains("web/run") && warnings[1].contains("exec format error"));
    let json = root.run(&["--json", "check"]).ok().json();
    assert_eq!(json["warnings"].as_array().unwrap().len(), 2);
    // An ELF binary and a script with LF line endings pass.
    std::fs::copy("/bin/true", root.stock().join("web/run")).unwrap();
    root.write_stock("db/run", "#!/bin/sh\nexec sleep 1000\n", 0o755);
    let json = root.run(&["--json", "check"]).ok().json();
    assert_eq!(json["warnings"], serde_json::json!([]));
}

/// `list` without a readable history still lists, unmarked, and says why.
#[test]
fn list_works_when_the_history_cannot_be_read() {
    let root = Root::example();
    root.commit().ok();
    let log = root.state().join(layout::HISTORY);
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let run = root.run(&["--json", "list"]).ok();
    assert!(
        run.stderr.contains("the history cannot be read"),
        "{}",
        run.stderr
    );
    assert_eq!(run.json()[0]["never_live"], false);
    root.run(&["--json", "history"]).code(exit::IO_ERR);
}

/// A history cut short by hand says nothing of the generations before it
/// begins: they are not marked "never live".
#[test]
fn a_history_cut_short_does_not_mark_older_generations_never_live() {
    let root = Root::example();
    for i in 1..=3 {
        bump_web(&root, &format!("v{i}"));
        root.commit().ok();
    }
    let log = root.state().join(layout::HISTORY);
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap().to_string();
    assert!(last.contains(" 2 -> 3 "), "{last}");
    std::fs::write(&log, format!("{last}\n")).unwrap();
    let l = list_json(&root);
    let never: Vec<bool> = l
        .iter()
        .map(|r| r["never_live"].as_bool().unwrap())
        .collect();
    assert_eq!(never, vec![false, false, false], "{l:?}");
}
