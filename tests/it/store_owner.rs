//! Who can change what is published (docs/security.md#published-objects-belong-to-the-state-owner):
//! store objects owned by the state owner whatever the stock's owners, a
//! set-gid or default-ACL state refused, `verify` naming every planted
//! entry, and `exec` keeping to the store object.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use svcdir_update::error::exit;

use crate::harness::*;

/// uid and gid of `nobody` / `nogroup` on Debian.
const NOBODY: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, PermissionsExt::from_mode(mode)).unwrap();
}

/// A committed example with a pending change to `web`, `spoil`ed: the
/// commit exits 77 naming `named` and saying `fix`, and changes nothing;
/// after `repair` it commits and `verify` is clean.
#[track_caller]
fn assert_refused_77(spoil: impl FnOnce(&Root) -> PathBuf, fix: &str, repair: impl FnOnce(&Root)) {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let before = root.snapshot();
    let named = spoil(&root);
    let run = root
        .run(&["--json", "commit"])
        .code(exit::NO_PERM)
        .kind("unsafe");
    assert!(
        run.stderr.contains(&named.display().to_string()) && run.stderr.contains(fix),
        "the refusal does not name {} and `{fix}`:\n{}",
        named.display(),
        run.stderr
    );
    assert!(
        root.snapshot() == before,
        "a refused commit changed the state"
    );
    repair(&root);
    root.commit().ok();
    assert_eq!(root.live_generation(), Some(2));
    root.run(&["verify"]).ok();
}

#[test]
fn set_gid_state_is_refused_with_77_before_anything_is_created() {
    // Before the refusal, objects and manifests made in a set-gid state
    // (group nogroup) belonged to nogroup, not to root.
    assert_refused_77(
        |root| {
            std::os::unix::fs::chown(root.state(), None, Some(NOBODY)).unwrap();
            chmod(&root.state(), 0o2755);
            root.state()
        },
        "chmod g-s",
        |root| chmod(&root.state(), 0o755),
    );
    let root = Root::example();
    std::fs::create_dir(root.state()).unwrap();
    std::os::unix::fs::chown(root.state(), None, Some(NOBODY)).unwrap();
    chmod(&root.state(), 0o2755);
    root.run(&["--json", "commit"])
        .code(exit::NO_PERM)
        .kind("unsafe");
    assert!(
        !root.state().join("store").exists(),
        "nothing is created in a set-gid state"
    );
}

#[test]
fn set_gid_store_is_refused_with_77() {
    assert_refused_77(
        |root| {
            let store = root.state().join("store");
            std::os::unix::fs::chown(&store, None, Some(NOBODY)).unwrap();
            chmod(&store, 0o2755);
            store
        },
        "chmod g-s",
        |root| chmod(&root.state().join("store"), 0o755),
    );
}

fn setfacl(args: &[&str], path: &Path) {
    let ok = Command::new("setfacl")
        .args(args)
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "setfacl {args:?} {}", path.display());
}

#[test]
fn default_acl_on_the_state_is_refused_with_77() {
    if !require_tool("setfacl", "acl") {
        return;
    }
    // Before the refusal, every object inherited `user:nobody:rwx` (masked
    // by the group bits) from the state's default ACL.
    let state = |root: &Root| root.state();
    let store = |root: &Root| root.state().join("store");
    let generations = |root: &Root| root.state().join("generations");
    for dir in [state, store, generations] {
        assert_refused_77(
            |root| {
                setfacl(&["-d", "-m", "u:nobody:rwx"], &dir(root));
                dir(root)
            },
            "setfacl -k",
            |root| setfacl(&["-k"], &dir(root)),
        );
    }
}

#[test]
fn exec_resolves_the_program_beneath_the_object_and_refuses_links_out() {
    let root = Root::example();
    let web = root.stock().join("web");
    std::os::unix::fs::symlink("/usr/bin", web.join("bin")).unwrap();
    std::os::unix::fs::symlink("../..", web.join("up")).unwrap();
    root.write_stock(
        "web/tools/hello",
        "#!/bin/sh\necho \"hello from $(pwd)\"\n",
        0o755,
    );
    std::os::unix::fs::symlink("tools", web.join("alias")).unwrap();
    root.commit().ok();
    // Before: `bin/id` ran /usr/bin/id, which is not pinned with the object.
    for (program, link) in [
        ("bin/id", "bin -> /usr/bin"),
        ("up/usr/bin/id", "up -> ../.."),
    ] {
        let run = root
            .run(&["--json", "exec", "web", program])
            .code(exit::NO_PERM)
            .kind("unsafe");
        assert!(
            run.stderr.contains("leads out of the store object") && run.stderr.contains(link),
            "{program}: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains("uid="),
            "{program} ran: {}",
            run.stdout
        );
    }
    // A link inside the object is followed there.
    let run = root.run(&["exec", "web", "alias/hello"]).ok();
    assert!(run.stdout.contains("hello from"), "{}", run.stdout);
}
