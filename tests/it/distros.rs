//! Real distributions' service directories, as they ship them
//! (docs/design.md#links): Void's agetty services, made of symlinks to
//! `agetty-generic` (vendored in fixtures/void-runit), and Debian's
//! runit-services as the real `cpsv` installs them (downloaded with
//! `apt-get download` into target/distro-debs; needs Debian's archive).
//! Links into a stock tree become files, runtime links are left out, and
//! what cannot run is refused (65) with `live` unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::harness::*;

fn void_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/void-runit/sv")
}

/// A root whose stock holds Void's agetty services and the example's
/// `cron`, committed once.
fn void_root() -> Root {
    let root = Root::empty();
    copy_tree(&void_fixture(), &root.stock());
    copy_tree(&fixture_stock().join("cron"), &root.stock().join("cron"));
    root
}

/// The store object `name` is live as, and its manifest.
fn object_and_manifest(root: &Root, name: &str) -> (PathBuf, serde_json::Value) {
    let object = std::fs::canonicalize(root.live().join(name)).unwrap();
    let manifest = manifest_of_dir(&object);
    let text = std::fs::read(&manifest).unwrap();
    (object, serde_json::from_slice(&text).unwrap())
}

/// The manifest entry at `path`.
fn entry<'a>(manifest: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no entry {path} in {manifest:#}"))
}

fn has_entry(manifest: &serde_json::Value, path: &str) -> bool {
    manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["path"] == path)
}

/// Asserts that `rel` in `object` is a regular file holding exactly `bytes`.
#[track_caller]
fn assert_file_with(object: &Path, rel: &str, bytes: &[u8]) {
    let md = std::fs::symlink_metadata(object.join(rel)).unwrap();
    assert!(md.file_type().is_file(), "{rel} is not a regular file");
    assert_eq!(std::fs::read(object.join(rel)).unwrap(), bytes, "{rel}");
}

#[test]
fn void_agetty_links_become_files_and_supervise_links_are_left_out() {
    let root = void_root();
    let run = root.commit().ok();
    for tty in ["agetty-tty1", "agetty-tty2"] {
        let notice = format!("{tty}/supervise: left out");
        assert!(run.stderr.contains(&notice), "{notice}:\n{}", run.stderr);
    }
    let generic = root.stock().join("agetty-generic");
    let run_bytes = std::fs::read(generic.join("run")).unwrap();
    let finish_bytes = std::fs::read(generic.join("finish")).unwrap();
    let conf_bytes = std::fs::read(root.stock().join("agetty-tty1/conf")).unwrap();
    for tty in ["agetty-tty1", "agetty-tty2"] {
        let (object, manifest) = object_and_manifest(&root, tty);
        assert_file_with(&object, "run", &run_bytes);
        assert_file_with(&object, "finish", &finish_bytes);
        assert_file_with(&object, "conf", &conf_bytes);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(object.join("run")).unwrap().permissions(),
        );
        assert_eq!(mode & 0o7777, 0o755, "the target's mode");
        assert_eq!(entry(&manifest, "run")["type"], "file");
        assert_eq!(
            entry(&manifest, "run")["from_link"],
            "../agetty-generic/run"
        );
        assert!(std::fs::symlink_metadata(object.join("supervise")).is_err());
        assert!(!has_entry(&manifest, "supervise"));
    }
    let (_, tty2) = object_and_manifest(&root, "agetty-tty2");
    assert_eq!(entry(&tty2, "conf")["from_link"], "../agetty-tty1/conf");
    root.run(&["verify"]).ok();
}

#[test]
fn changing_the_shared_run_changes_exactly_the_services_that_use_it() {
    let root = void_root();
    root.commit().ok();
    let objects = |root: &Root| {
        ["agetty-generic", "agetty-tty1", "agetty-tty2", "cron"]
            .map(|s| (s, root.inode(&root.live().join(s))))
    };
    let before = objects(&root);
    // A new release of the script that every agetty service links to.
    let mut shared = std::fs::read(root.stock().join("agetty-generic/run")).unwrap();
    shared.extend_from_slice(b"# a new release\n");
    std::fs::write(root.stock().join("agetty-generic/run"), &shared).unwrap();
    let plan = root.run(&["--json", "plan"]).ok().json();
    let restarted: Vec<&str> = plan["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] != "keep")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        restarted,
        ["agetty-generic", "agetty-tty1", "agetty-tty2"],
        "{plan:#}"
    );
    let tty1 = &plan["services"].as_array().unwrap()[1];
    assert_eq!(tty1["reason"], "run (via ../agetty-generic/run) changed");
    root.commit().ok();
    let after = objects(&root);
    for ((name, was), (_, now)) in before.iter().zip(&after) {
        if *name == "cron" {
            assert_eq!(was, now, "cron's object must be kept");
        } else {
            assert_ne!(was, now, "{name} must get a new object");
        }
    }
    let (tty2, _) = object_and_manifest(&root, "agetty-tty2");
    assert_file_with(&tty2, "run", &shared);
}

/// Breaks the committed Void root with `breaks`; expects `commit --strict`
/// to exit 65 naming `says`, and `live` unchanged; then a default commit
/// to hold the broken service back, naming `says`, with `live` unchanged.
#[track_caller]
fn assert_refused(breaks: impl FnOnce(&Path), says: &str) -> Run {
    let root = void_root();
    root.commit().ok();
    let before = root.snapshot();
    breaks(&root.stock());
    let (kind, run) = root.error_kind(&["commit", "--strict"]);
    let run = run.code(65);
    assert_eq!(kind, "stock", "{}", run.stdout);
    assert!(run.stderr.contains(says), "{says:?} in:\n{}", run.stderr);
    assert_eq!(
        root.snapshot(),
        before,
        "a refused commit changed the state"
    );
    assert_eq!(root.live_generation(), Some(1));
    let held = root.run(&["commit"]).ok();
    assert!(held.stderr.contains("held back"), "{}", held.stderr);
    assert!(held.stderr.contains(says), "{says:?} in:\n{}", held.stderr);
    assert_eq!(root.live_generation(), Some(1), "{}", held.stderr);
    run
}

fn relink(link: PathBuf, target: &str) {
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn dangling_looping_and_unusable_links_to_run_are_refused() {
    assert_refused(
        |stock| relink(stock.join("agetty-tty2/run"), "../agetty-generic/gone"),
        "agetty-tty2/run: is a symlink to",
    );
    assert_refused(
        |stock| relink(stock.join("agetty-tty2/run"), "../agetty-tty2/run"),
        "agetty-tty2/run: is a symlink loop",
    );
    assert_refused(
        |stock| relink(stock.join("agetty-tty2/finish"), "/nonexistent/finish"),
        "/nonexistent/finish, which does not exist",
    );
    let run = assert_refused(
        |stock| {
            let plain = stock.parent().unwrap().join("plain.txt");
            std::fs::write(&plain, "not a program\n").unwrap();
            relink(stock.join("agetty-tty1/run"), plain.to_str().unwrap());
        },
        "plain.txt, which is not an executable file",
    );
    assert!(!run.stderr.contains("has no `run`"), "{}", run.stderr);
    // A symlinked log/run is judged as a link, never reported as missing.
    let run = assert_refused(
        |stock| {
            std::fs::create_dir(stock.join("cron/log")).unwrap();
            std::os::unix::fs::symlink("../../agetty-generic/none", stock.join("cron/log/run"))
                .unwrap();
        },
        "cron/log/run: is a symlink to",
    );
    assert!(!run.stderr.contains("has no"), "{}", run.stderr);
}

#[test]
fn other_dangling_links_are_kept_and_reported_by_check_and_verify() {
    let root = void_root();
    std::os::unix::fs::symlink("/nonexistent/data", root.stock().join("cron/data")).unwrap();
    std::os::unix::fs::symlink("../agetty-generic/missing", root.stock().join("cron/conf"))
        .unwrap();
    let check = root.run(&["check"]).ok();
    for path in ["cron/data: dangling symlink", "cron/conf: dangling symlink"] {
        assert!(check.stdout.contains(path), "{path}:\n{}", check.stdout);
    }
    root.commit().ok();
    let (object, _) = object_and_manifest(&root, "cron");
    assert_eq!(
        std::fs::read_link(object.join("data")).unwrap(),
        Path::new("/nonexistent/data")
    );
    let verify = root.run(&["--json", "verify"]).ok().json();
    let notes = verify["notes"].to_string();
    assert!(notes.contains("data: dangling symlink"), "{verify:#}");
    assert!(notes.contains("conf: dangling symlink"), "{verify:#}");
}

#[test]
fn s6_rc_source_is_refused_as_such() {
    for kind in ["longrun", "oneshot", "bundle"] {
        let run = assert_refused(
            |stock| {
                std::fs::create_dir(stock.join("src")).unwrap();
                std::fs::write(stock.join("src/type"), format!("{kind}\n")).unwrap();
                std::fs::write(stock.join("src/run"), "#!/bin/execlineb -P\nfoo\n").unwrap();
            },
            "this is s6-rc source",
        );
        assert!(run.stderr.contains("s6-rc-compile"), "{}", run.stderr);
        assert!(!run.stderr.contains("chmod +x"), "{}", run.stderr);
    }
}

/// Debian's packages in target/distro-debs, extracted into one directory
/// per test (scripts/test.sh downloads them). `None` only where the test
/// may leave itself out ([`require_available`]: never in CI).
fn debian_runit() -> Option<tempfile::TempDir> {
    static DEBS: OnceLock<Option<PathBuf>> = OnceLock::new();
    let debs = DEBS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/distro-debs");
        std::fs::create_dir_all(&dir).unwrap();
        let have = |dir: &Path| {
            let names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            ["runit_", "runit-services_"].iter().all(|p| {
                names
                    .iter()
                    .any(|n| n.starts_with(p) && n.ends_with(".deb"))
            })
        };
        if !have(&dir) {
            let out = Command::new("apt-get")
                .args(["download", "runit", "runit-services"])
                .current_dir(&dir)
                .output();
            if !have(&dir) {
                let missing = format!(
                    "Debian's runit and runit-services packages could not be downloaded \
                     into {} (`apt-get update` first, or run scripts/test.sh): {out:?}",
                    dir.display()
                );
                if !require_available(&missing) {
                    return None;
                }
            }
        }
        Some(dir)
    });
    let debs = debs.as_ref()?;
    let tree = tempfile::tempdir().unwrap();
    for deb in std::fs::read_dir(debs).unwrap() {
        let deb = deb.unwrap().path();
        if deb.extension().is_some_and(|e| e == "deb") {
            let ok = Command::new("dpkg-deb")
                .arg("-x")
                .arg(&deb)
                .arg(tree.path())
                .status()
                .unwrap();
            assert!(ok.success(), "dpkg-deb -x {}", deb.display());
        }
    }
    Some(tree)
}

/// Debian's `cpsv a cron anacron chrony` into the root's stock, as on a
/// Debian system whose /etc/sv is the stock tree; svlogd (from the runit
/// package) sits beside them, disabled, as the shared log script.
fn debian_root(debian: &Path) -> Root {
    let root = Root::empty();
    root.config("disabled: [svlogd]\n");
    copy_tree(&debian.join("etc/sv/svlogd"), &root.stock().join("svlogd"));
    let out = Command::new("sh")
        .arg(debian.join("usr/bin/cpsv"))
        .args(["a", "cron", "anacron", "chrony"])
        .env("CPSV_DEST", root.stock())
        .env("CPSV_SOURCE", debian.join("usr/share/runit/sv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cpsv: {out:?}");
    root
}

#[test]
fn debian_cpsv_services_commit_as_installed() {
    let Some(debian) = debian_runit() else {
        return;
    };
    let root = debian_root(debian.path());
    let stock = root.stock();
    // What cpsv made: runtime links, and log/run -> /etc/sv/svlogd/run.
    assert_eq!(
        std::fs::read_link(stock.join("cron/supervise")).unwrap(),
        Path::new("/run/runit/supervise/cron")
    );
    assert_eq!(
        std::fs::read_link(stock.join("anacron/log/run")).unwrap(),
        Path::new("/etc/sv/svlogd/run")
    );
    // With the stock tree at /etc/sv, that link leads into it: here the
    // same link, absolute, into this root's stock tree.
    let svlogd_run = stock.join("svlogd/run");
    relink(stock.join("anacron/log/run"), svlogd_run.to_str().unwrap());
    let run = root.commit().ok();
    for notice in [
        "cron/supervise: left out",
        "anacron/log/supervise: left out",
    ] {
        assert!(run.stderr.contains(notice), "{notice}:\n{}", run.stderr);
    }
    assert!(
        run.stderr
            .contains("chrony/log/run: kept as a symlink to /etc/sv/svlogd/run")
            && run.stderr.contains("not versioned"),
        "{}",
        run.stderr
    );
    let svlogd_bytes = std::fs::read(&svlogd_run).unwrap();
    let (anacron, manifest) = object_and_manifest(&root, "anacron");
    assert_file_with(&anacron, "log/run", &svlogd_bytes);
    assert_eq!(
        entry(&manifest, "log/run")["from_link"],
        svlogd_run.to_str().unwrap()
    );
    for rel in ["supervise", "log/supervise"] {
        assert!(!has_entry(&manifest, rel), "{rel} in {manifest:#}");
    }
    let (chrony, _) = object_and_manifest(&root, "chrony");
    assert_eq!(
        std::fs::read_link(chrony.join("log/run")).unwrap(),
        Path::new("/etc/sv/svlogd/run")
    );
    // A new svlogd/run changes anacron only.
    let cron_before = root.inode(&root.live().join("cron"));
    let chrony_before = root.inode(&root.live().join("chrony"));
    let anacron_before = root.inode(&root.live().join("anacron"));
    let mut changed = svlogd_bytes;
    changed.extend_from_slice(b"# new svlogd\n");
    std::fs::write(&svlogd_run, &changed).unwrap();
    root.commit().ok();
    assert_eq!(root.inode(&root.live().join("cron")), cron_before);
    assert_eq!(root.inode(&root.live().join("chrony")), chrony_before);
    assert_ne!(root.inode(&root.live().join("anacron")), anacron_before);
    root.run(&["verify"]).ok();
}

/// Real runsvdir: run-time links are left out, so the old and the new
/// instance of a changed service each get their own `supervise/` inside
/// their own object, and the restart is not stalled on `supervise/lock`.
mod supervisors {
    use super::*;
    use crate::supervise_harness::*;

    #[test]
    fn runit_restart_is_not_stalled_by_a_shipped_supervise_link() {
        let root = Root::empty();
        configure(&root, Family::Runit);
        add_logging_service(&root, "web", "v1");
        // Where Debian's link points; if it were kept, both instances would
        // lock the one directory there.
        let shared = root.path().join("runit-supervise/web");
        std::fs::create_dir_all(&shared).unwrap();
        std::os::unix::fs::symlink(&shared, root.stock().join("web/supervise")).unwrap();
        let run = root.commit().ok();
        assert!(
            run.stderr.contains("web/supervise: left out"),
            "{}",
            run.stderr
        );
        let v1 = live_object(&root, "web");
        assert!(std::fs::symlink_metadata(v1.join("supervise")).is_err());

        let scanner = Scanner::start(&root, Family::Runit);
        let v1_pid = scanner.wait_pid("web");
        assert!(
            std::fs::symlink_metadata(v1.join("supervise"))
                .unwrap()
                .is_dir(),
            "runsv made its own supervise/ in the object"
        );

        add_logging_service(&root, "web", "v2");
        root.commit().ok();
        let v2 = live_object(&root, "web");
        assert_ne!(v1, v2);
        let mut v2_pid = 0;
        wait_until("web v2 up", REACT, || {
            v2_pid = scanner.service_pid("web").unwrap_or(0);
            runs(&root, "web")
                .iter()
                .any(|(p, t)| *p == v2_pid && t == "v2")
        });
        assert_ne!(v1_pid, v2_pid);
        assert!(v2.join("supervise/lock").exists());
        assert!(
            std::fs::read_dir(&shared).unwrap().next().is_none(),
            "nothing used the shipped link's target"
        );
        let log = std::fs::read_to_string(root.path().join("runit.log")).unwrap_or_default();
        assert!(!log.contains("unable to lock"), "{log}");
    }
}
