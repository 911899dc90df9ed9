//! A service learns its name from `$PWD` (docs/design.md#on-disk-layout):
//! the directory a supervisor runs it in ends in `/<name>`, in every
//! generation; and a state directory 0.1 wrote (objects without the named
//! directory, no `format` marker) is migrated by the next writing command,
//! crash-safely at every step.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;
use crate::invariant::*;
use crate::slow::crash::{change_stock, failpoints, run_at};

/// The physical directory the live generation runs `name` in, as runsv
/// and s6-supervise `chdir` to it.
fn running_dir(root: &Root, name: &str) -> PathBuf {
    std::fs::canonicalize(root.live().join(name)).unwrap()
}

#[test]
fn void_agetty_sees_its_tty_not_the_digest() {
    let root = Root::empty();
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/void-runit/sv"),
        &root.stock(),
    );
    root.commit().ok();
    let dir = running_dir(&root, "agetty-tty1");
    assert!(dir.ends_with("agetty-tty1"), "{}", dir.display());
    // A stub `chpst` records what agetty would have been given.
    let stubs = root.path().join("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let said = root.path().join("chpst.args");
    std::fs::write(
        stubs.join("chpst"),
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", said.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        stubs.join("chpst"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap());
    let status = Command::new("./run")
        .current_dir(&dir)
        .env_remove("PWD")
        .env("PATH", path)
        .status()
        .unwrap();
    assert!(status.success());
    let args = std::fs::read_to_string(&said).unwrap();
    assert!(
        args.lines().any(|a| a == "tty1"),
        "agetty was not given tty1: {args:?}"
    );
    assert!(
        !args.lines().any(|a| a.len() == 64),
        "agetty was given a digest: {args:?}"
    );
}

#[test]
fn every_generation_links_the_named_directory_and_unchanged_keeps_its_inode() {
    let root = Root::example();
    root.commit().ok();
    let db = running_dir(&root, "db");
    let web = running_dir(&root, "web");
    assert_eq!(db.file_name().unwrap(), "db");
    assert_eq!(
        std::fs::read_link(root.state().join("generations/1/web")).unwrap(),
        generation_link_target(&object_of_dir(&web))
    );
    change_stock(&root, "two");
    root.commit().ok();
    assert_eq!(running_dir(&root, "db"), db, "db's object changed");
    assert_eq!(root.inode(&running_dir(&root, "db")), root.inode(&db));
    let web2 = running_dir(&root, "web");
    assert_ne!(web2, web);
    assert!(web2.ends_with("web"), "{}", web2.display());
    root.run(&["verify"]).ok();
}

/// Turns the committed state of `root` into what 0.1 wrote: each object's
/// named directory becomes the object itself, every generation link names
/// the object, and there is no `format` marker.
pub fn make_format_1(root: &Root) {
    let store = root.state().join(layout::STORE);
    for e in std::fs::read_dir(&store).unwrap() {
        let object = e.unwrap().file_name().into_string().unwrap();
        if object.ends_with(".manifest.yaml") || object.starts_with('.') {
            continue;
        }
        let outer = store.join(&object);
        let named = root.object_dir(&object);
        let aside = store.join(format!(".aside-{object}"));
        std::fs::rename(&named, &aside).unwrap();
        std::fs::remove_dir(&outer).unwrap();
        std::fs::rename(&aside, &outer).unwrap();
    }
    for n in generations(root) {
        let dir = root.state().join(layout::GENERATIONS).join(n.to_string());
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            if !e.file_type().unwrap().is_symlink() {
                continue;
            }
            let object = object_of_dir(&std::fs::read_link(e.path()).unwrap());
            std::fs::remove_file(e.path()).unwrap();
            std::os::unix::fs::symlink(format!("../../store/{object}"), e.path()).unwrap();
        }
    }
    std::fs::remove_file(root.state().join("format")).unwrap();
}

/// A root with two generations, turned into a 0.1 state.
fn format_1_root() -> (Root, Services) {
    let root = Root::example();
    root.commit().ok();
    change_stock(&root, "two");
    root.commit().ok();
    let live = live_contents(&root);
    make_format_1(&root);
    assert_eq!(live_contents(&root), live, "the 0.1 state runs the same");
    (root, live)
}

/// `services` without the named directory a migration adds inside a
/// format-1 object (`<name>/…` in the service `<name>`).
fn without_named_copies(mut services: Services) -> Services {
    for (name, contents) in &mut services {
        contents.retain(|path, _| path != name && !path.starts_with(&format!("{name}/")));
    }
    services
}

fn format_marker(root: &Root) -> Option<String> {
    std::fs::read_to_string(root.state().join("format")).ok()
}

#[test]
fn a_state_0_1_wrote_is_refused_by_readers_and_migrated_by_the_next_commit() {
    let (root, live) = format_1_root();
    for reader in [&["status"][..], &["list"], &["verify"], &["plan"]] {
        let (kind, run) = root.error_kind(reader);
        assert_eq!(kind, "state_format", "{reader:?}");
        assert!(
            run.stderr.contains("to migrate"),
            "{reader:?}: {}",
            run.stderr
        );
    }
    root.commit().ok();
    assert_eq!(format_marker(&root).as_deref(), Some("3\n"));
    assert_eq!(live_contents(&root), live, "migration changed a service");
    for name in live.keys() {
        assert!(running_dir(&root, name).ends_with(name));
    }
    assert_consistent(&root);
    root.run(&["verify"]).ok();
    // Older generations were migrated too: rollback reaches them.
    root.run(&["rollback"]).ok();
    assert_consistent(&root);
    change_stock(&root, "three");
    root.commit().ok();
    assert_consistent(&root);
    root.run(&["verify"]).ok();
}

#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn a_migration_killed_at_any_step_runs_the_same_services_and_recover_finishes_it() {
    let points: Vec<String> = failpoints()
        .into_iter()
        .filter(|p| p.starts_with("migrate."))
        .collect();
    assert!(points.len() >= 5, "{points:?}");
    for point in &points {
        let (root, live) = format_1_root();
        assert!(run_at(&root, &["commit"], point), "{point} not hit");
        // Never broken: every scan directory entry runs the same files
        // (a format-1 object may hold its named copy already).
        assert_eq!(
            without_named_copies(live_contents(&root)),
            live,
            "{point}: a service changed"
        );
        root.run(&["recover"]).ok();
        assert_eq!(format_marker(&root).as_deref(), Some("3\n"), "{point}");
        assert_eq!(live_contents(&root), live, "{point}: after recover");
        assert_consistent(&root);
        root.run(&["verify"]).ok();
        root.commit().ok();
        assert_consistent(&root);
    }
}
