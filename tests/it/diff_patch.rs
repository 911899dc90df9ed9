//! `diff -p A B [SERVICE]`: unified diffs of changed text files, a summary
//! line for binary and huge ones, escaped contents, and `--json` with paths
//! and digests (docs/cli.md#diff--p-content-diffs).

use crate::harness::*;

/// Generation 1 is the example; 2 changes web's VERSION and run, adds a
/// binary file to db, and makes cron's run executable by group only.
fn two_generations() -> Root {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let run = std::fs::read_to_string(root.stock().join("web/run")).unwrap();
    root.write_stock(
        "web/run",
        &format!("{run}echo \"\x1b[2J\u{202e}x\"\tdone\n"),
        0o755,
    );
    std::fs::write(root.stock().join("db/blob"), [0u8, 1, 2, 255]).unwrap();
    root.commit().ok();
    root
}

#[test]
fn diff_p_shows_unified_diffs_of_changed_text_files() {
    let root = two_generations();
    let out = root.run(&["diff", "-p", "1", "2"]).ok().stdout;
    let expected = "diff a/web/env/VERSION b/web/env/VERSION\n\
                    --- a/web/env/VERSION\n\
                    +++ b/web/env/VERSION\n\
                    @@ -1 +1 @@\n\
                    -1.0\n\
                    +2.0\n";
    assert!(out.contains(expected), "{out}");
    assert!(
        out.contains("diff a/web/run b/web/run\n--- a/web/run\n+++ b/web/run\n@@ -"),
        "{out}"
    );
    // Outside text is escaped, the file's own tab kept.
    assert!(
        out.contains("+echo \"\\x1b[2J\\u{202e}x\"\tdone\n"),
        "{out}"
    );
    assert!(
        !out.contains('\x1b') && !out.contains('\u{202e}'),
        "{out:?}"
    );
    assert!(
        out.contains("diff a/db/blob b/db/blob\nnew file mode 0644\nBinary files /dev/null and b/db/blob differ\n"),
        "{out}"
    );
}

#[test]
fn diff_p_for_one_service_and_as_json_gives_paths_and_digests() {
    let root = two_generations();
    let out = root.run(&["diff", "-p", "1", "2", "web"]).ok().stdout;
    assert!(out.contains("+2.0"), "{out}");
    assert!(!out.contains("db/blob"), "{out}");
    let json = root.run(&["--json", "diff", "-p", "1", "web"]).ok().json();
    let files = json["files"].as_array().unwrap();
    let version = files
        .iter()
        .find(|f| f["path"] == "env/VERSION")
        .expect("VERSION");
    assert_eq!(version["service"], "web");
    assert_eq!(version["change"], "content");
    let blake3 = |s: &str| blake3::hash(s.as_bytes()).to_hex().to_string();
    assert_eq!(
        version["from_blake3"],
        blake3("1.0\n").as_str(),
        "{version}"
    );
    assert_eq!(version["to_blake3"], blake3("2.0\n").as_str(), "{version}");
    assert_eq!(version["to_mode"], "0644");
    // Without -p, no `files`: the document stays as it was.
    let plain = root.run(&["--json", "diff", "1", "2"]).ok().json();
    assert!(plain.get("files").is_none(), "{plain}");
}

#[test]
fn diff_p_bounds_huge_files_and_says_so() {
    let root = Root::example();
    let small: String = (0..3000).map(|i| format!("line {i}\n")).collect();
    root.write_stock("web/env/LIST", &small, 0o644);
    root.write_stock("web/env/BIG", &"x".repeat(2 << 20), 0o644);
    root.commit().ok();
    let changed: String = (0..3000).map(|i| format!("LINE {i}\n")).collect();
    root.write_stock("web/env/LIST", &changed, 0o644);
    root.write_stock("web/env/BIG", &"y".repeat(2 << 20), 0o644);
    root.commit().ok();
    let out = root.run(&["diff", "-p", "1", "2"]).ok().stdout;
    assert!(
        out.contains("… 4000 more diff line(s) not shown (at most 2000 per file)"),
        "{}",
        &out[out.len().saturating_sub(400)..]
    );
    assert!(
        out.contains("diff a/web/env/BIG b/web/env/BIG\nnot diffed: larger than 1 MiB (blake3 "),
        "no BIG summary"
    );
    assert!(out.len() < 200_000, "{} bytes", out.len());
}

#[test]
fn diff_p_without_a_generation_is_a_usage_error_naming_the_fix() {
    let root = Root::example();
    root.commit().ok();
    let run = root.run(&["diff", "-p"]).code(exit::USAGE);
    assert!(
        run.stderr.contains("`svcdir-update diff -p 3`"),
        "{}",
        run.stderr
    );
    let (kind, _) = root.error_kind(&["diff", "1", "1", "nope"]);
    assert_eq!(kind, "usage");
}
