//! File descriptors stay bounded whatever the shape of the tree
//! (docs/security.md#bounded-file-descriptors): every command that walks
//! or copies a service — check, plan, commit, verify, diff, status, gc —
//! runs with `ulimit -n 256` on a service of thousands of directories side
//! by side and one 300 directories deep; the 100,000-directory version is
//! in `slow::` (tests/it/descriptors_slow.rs).

use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// The descriptor limit every command runs under: a quarter of the usual
/// 1024, far below the number of directories.
const NOFILE: &str = "--nofile=256:256";

/// Deeper than the limit: a walk that holds each level open fails.
const DEEP: usize = 300;

/// Runs the binary under `prlimit --nofile=256:256`.
fn limited(root: &Root, args: &[&str]) -> Run {
    root.run_under(Command::new("prlimit").arg(NOFILE).arg("--"), args)
}

/// `wide`: `run` and `wide` empty directories in `data/`; `deep`: `run`
/// and a chain of 300 directories with a file at the bottom.
fn build(stock: &Path, wide: usize) {
    let data = stock.join("wide/data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..wide {
        std::fs::create_dir(data.join(format!("d{i:05}"))).unwrap();
    }
    let mut bottom = stock.join("deep");
    for _ in 0..DEEP {
        bottom.push("d");
    }
    std::fs::create_dir_all(&bottom).unwrap();
    std::fs::write(bottom.join("file"), "at the bottom\n").unwrap();
    for service in ["wide", "deep"] {
        let run = stock.join(service).join("run");
        std::fs::write(&run, "#!/bin/sh\nexec sleep 1000\n").unwrap();
        std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
}

#[test]
fn every_command_keeps_descriptors_bounded_on_wide_and_deep_trees() {
    commands_within_the_descriptor_limit(3_000);
}

/// check, plan, commit, verify, diff, status and gc under `ulimit -n 256`
/// with `wide` directories side by side and 300 nested; each exits 0.
pub fn commands_within_the_descriptor_limit(wide: usize) {
    if !require_tool("prlimit", "util-linux") {
        return;
    }
    let root = Root::example();
    root.config("limits: {max_depth: 1000}\n");
    build(&root.stock(), wide);
    limited(&root, &["check"]).ok();
    let plan = limited(&root, &["--json", "plan"]).ok().json();
    assert_eq!(plan["counts"]["start"], 5, "{plan}");
    limited(&root, &["commit"]).ok();
    assert_eq!(root.live_generation(), Some(1));
    let mut bottom = root.live().join("deep");
    for _ in 0..DEEP {
        bottom.push("d");
    }
    assert_eq!(
        std::fs::read_to_string(bottom.join("file")).unwrap(),
        "at the bottom\n"
    );
    assert!(
        root.live()
            .join(format!("wide/data/d{:05}", wide - 1))
            .is_dir()
    );
    let plan = limited(&root, &["--json", "plan"]).ok().json();
    assert_eq!(plan["up_to_date"], true, "{plan}");
    limited(&root, &["verify"]).ok();
    limited(&root, &["diff"]).ok();
    limited(&root, &["status"]).ok();

    // Without them, generation 2; gc removes generation 1 and both objects.
    let away = root.path().join("away");
    std::fs::create_dir(&away).unwrap();
    for service in ["wide", "deep"] {
        std::fs::rename(root.stock().join(service), away.join(service)).unwrap();
    }
    limited(&root, &["commit"]).ok();
    limited(&root, &["diff", "1", "2"]).ok();
    let gc = limited(&root, &["--json", "gc", "--keep", "1"]).ok().json();
    assert_eq!(gc["removed_objects"].as_array().unwrap().len(), 2, "{gc}");
    limited(&root, &["status"]).ok();
    let store: Vec<String> = std::fs::read_dir(root.state().join(layout::STORE))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("wide-") || n.starts_with("deep-"))
        .collect();
    assert!(store.is_empty(), "{store:?}");
}

/// The copy sets each directory's mode once it is filled (read-only ones
/// included), at every depth: held open or reopened by the chain.
#[test]
fn directory_modes_are_copied_at_every_depth() {
    use std::os::unix::fs::PermissionsExt;
    let root = Root::example();
    let mut dir = root.stock().join("web/tree");
    let mut made = Vec::new();
    for level in 0..10u32 {
        dir.push(format!("l{level}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("file"), format!("{level}\n")).unwrap();
        made.push((
            dir.clone(),
            [0o555, 0o750, 0o700, 0o511][level as usize % 4],
        ));
    }
    for (dir, mode) in made.iter().rev() {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    root.commit().ok();
    root.run(&["verify"]).ok();
    let stock = root.stock().join("web");
    for (dir, mode) in &made {
        let rel = dir.strip_prefix(&stock).unwrap();
        let copy = std::fs::metadata(root.live().join("web").join(rel)).unwrap();
        assert_eq!(
            copy.permissions().mode() & 0o7777,
            *mode,
            "{}",
            rel.display()
        );
    }
}
