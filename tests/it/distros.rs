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
    debian_root_with(debian, &["cron", "anacron", "chrony"])
}

/// [`debian_root`] with `cpsv a SERVICES…`.
fn debian_root_with(debian: &Path, services: &[&str]) -> Root {
    let root = Root::empty();
    root.config("disabled: [svlogd]\n");
    copy_tree(&debian.join("etc/sv/svlogd"), &root.stock().join("svlogd"));
    let out = Command::new("sh")
        .arg(debian.join("usr/bin/cpsv"))
        .arg("a")
        .args(services)
        .env("CPSV_DEST", root.stock())
        .env("CPSV_SOURCE", debian.join("usr/share/runit/sv"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cpsv: {out:?}");
    root
}

/// Every service Debian's runit-services ships, installed by its own
/// `cpsv` as on a Debian system: all commit, none is held back, and their
/// `supervise` links are left out.
#[test]
fn debian_every_runit_services_service_commits() {
    let Some(debian) = debian_runit() else {
        return;
    };
    let shipped: Vec<String> = std::fs::read_dir(debian.path().join("usr/share/runit/sv"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(shipped.len() >= 20, "runit-services ships {shipped:?}");
    let names: Vec<&str> = shipped.iter().map(String::as_str).collect();
    let root = debian_root_with(debian.path(), &names);
    let run = root.run(&["--json", "commit"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let held = doc["held_back"]
        .as_array()
        .expect("commit --json lists held_back");
    assert!(held.is_empty(), "held back: {held:#?}");
    for name in &shipped {
        let live = root.live().join(name);
        assert!(live.join("run").exists(), "{name} is not live");
        assert!(
            std::fs::symlink_metadata(live.join("supervise")).is_err(),
            "{name}/supervise was copied"
        );
    }
    assert!(
        run.stderr.contains("/supervise: left out"),
        "{}",
        run.stderr
    );
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

    /// The value of `var` in the environment `pid` was exec'd with.
    fn environ_var(pid: u32, var: &str) -> Option<String> {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let prefix = format!("{var}=");
        environ
            .split(|&b| b == 0)
            .filter_map(|kv| std::str::from_utf8(kv).ok())
            .find_map(|kv| kv.strip_prefix(&prefix).map(str::to_owned))
    }

    /// Waits until `name`'s service process is `comm` (the exec chain
    /// from `run` has ended in the daemon) and returns its pid.
    #[track_caller]
    fn wait_for_daemon(scanner: &Scanner, name: &str, comm_is: &str) -> u32 {
        let mut pid = 0;
        wait_until(&format!("{name} running {comm_is}"), REACT, || {
            pid = scanner.service_pid(name).unwrap_or(0);
            pid != 0 && comm(pid).as_deref() == Some(comm_is)
        });
        pid
    }

    fn write_executable(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }

    /// Debian's runit-services `haveged` (its `run` is
    /// `#!/usr/bin/env /lib/runit/invoke-run`) installed by `cpsv`, its
    /// `log/run` the svlogd script, beside one service of ours, `web`.
    fn debian_haveged_root(debian: &Path) -> Root {
        let root = Root::empty();
        root.config("supervisor: runit\nstop_timeout: 10\ndisabled: [svlogd]\n");
        copy_tree(&debian.join("etc/sv/svlogd"), &root.stock().join("svlogd"));
        let out = Command::new("sh")
            .arg(debian.join("usr/bin/cpsv"))
            .args(["a", "haveged"])
            .env("CPSV_DEST", root.stock())
            .env("CPSV_SOURCE", debian.join("usr/share/runit/sv"))
            .output()
            .unwrap();
        assert!(out.status.success(), "cpsv: {out:?}");
        let stock = root.stock();
        let svlogd_run = stock.join("svlogd/run");
        relink(stock.join("haveged/log/run"), svlogd_run.to_str().unwrap());
        // svlogd/run's own knob, `./conf` (sourced after it derived
        // SERVICE from the parent directory): log into this root, not
        // /var/log/runit, as root, since the test root is private to root.
        std::fs::write(
            stock.join("haveged/log/conf"),
            format!(
                "LOGDIR={}/runit-log/$SERVICE\nLOGUSER=root\n",
                root.path().display()
            ),
        )
        .unwrap();
        add_logging_service(&root, "web", "v1");
        root
    }

    /// Starts runsvdir as a booted Debian system would run it: in a
    /// private mount namespace where /usr/sbin/policy-rc.d (in containers,
    /// Docker's `exit 101`, which makes invoke-run refuse every start) is
    /// a policy that allows, and with `CPSV_DEST` naming the stock tree, so
    /// `sv_wtime checkbin` reads the service's `.meta/bin` there.
    fn start_debian_runsvdir(root: &Root) -> Scanner {
        let allow = root.path().join("policy-rc.d");
        write_executable(&allow, "#!/bin/sh\nexit 0\n");
        let script = "if [ -e /usr/sbin/policy-rc.d ]; then \
                      mount --bind \"$0\" /usr/sbin/policy-rc.d || exit 1; fi; exec \"$@\"";
        Scanner::start_wrapped(
            root,
            Family::Runit,
            &[
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
                allow.to_str().unwrap(),
            ],
            &[("CPSV_DEST", root.stock().display().to_string())],
        )
    }

    #[test]
    fn debian_invoke_run_service_sees_its_name_and_an_upgrade_restarts_only_it() {
        if !Family::Runit.require()
            || !require_tool("haveged", "haveged")
            || !require_tool("unshare", "util-linux")
        {
            return;
        }
        let Some(debian) = debian_runit() else {
            return;
        };
        let root = debian_haveged_root(debian.path());
        let stock = root.stock();
        let run = std::fs::read_to_string(stock.join("haveged/run")).unwrap();
        assert!(
            run.starts_with("#!/usr/bin/env /lib/runit/invoke-run\n"),
            "{run}"
        );
        assert_eq!(
            std::fs::read_to_string(stock.join("haveged/.meta/bin")).unwrap(),
            "/usr/sbin/haveged",
            "what checkbin checks"
        );
        root.commit().ok();
        let scanner = start_debian_runsvdir(&root);
        let v1 = wait_for_daemon(&scanner, "haveged", "haveged");
        let web = scanner.wait_pid("web");
        let cwd = std::fs::read_link(format!("/proc/{v1}/cwd")).unwrap();
        assert_eq!(cwd, live_object(&root, "haveged"));
        assert!(cwd.ends_with("haveged"), "{}", cwd.display());
        assert_eq!(environ_var(v1, "NAME").as_deref(), Some("haveged"));
        let logs = root.path().join("runit-log");
        wait_until("svlogd writes haveged's log", REACT, || {
            logs.join("haveged/current").is_file()
        });
        let made: Vec<_> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(made, ["haveged"], "the log directory svlogd/run chose");

        // A runit-services upgrade writes haveged's run anew.
        std::fs::write(stock.join("haveged/run"), format!("{run}# upgraded\n")).unwrap();
        root.commit().ok();
        let mut v2 = 0;
        wait_until("the upgraded haveged up", REACT, || {
            v2 = scanner.service_pid("haveged").unwrap_or(0);
            v2 != 0 && v2 != v1 && comm(v2).as_deref() == Some("haveged")
        });
        assert!(!alive(v1), "the old haveged was stopped");
        let cwd = std::fs::read_link(format!("/proc/{v2}/cwd")).unwrap();
        assert_eq!(cwd, live_object(&root, "haveged"));
        assert_eq!(environ_var(v2, "NAME").as_deref(), Some("haveged"));
        assert_eq!(scanner.service_pid("web"), Some(web), "web kept its pid");
        assert_eq!(runs(&root, "web").len(), 1, "web started once");
    }

    /// Stubs first on PATH for the getty Void's agetty-generic/run execs
    /// (through the real `chpst`): each records its argv in
    /// `<root>/out/getty.<pid>`, then becomes a long sleep (same pid).
    fn getty_stubs(root: &Root) -> String {
        let stubs = root.path().join("stubs");
        let out = root.path().join("out");
        std::fs::create_dir_all(&stubs).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        let stub = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > {}/getty.$$\nexec sleep 100000\n",
            out.display()
        );
        for name in ["getty", "agetty"] {
            write_executable(&stubs.join(name), &stub);
        }
        format!("{}:{}", stubs.display(), std::env::var("PATH").unwrap())
    }

    /// The argv the getty stub running as `pid` was given.
    fn getty_args(root: &Root, pid: u32) -> Vec<String> {
        std::fs::read_to_string(root.path().join(format!("out/getty.{pid}")))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until `name` runs the getty stub and it has written its argv.
    #[track_caller]
    fn wait_for_getty(root: &Root, scanner: &Scanner, name: &str, not: u32) -> (u32, Vec<String>) {
        let mut found = (0, Vec::new());
        wait_until(&format!("{name}'s getty"), REACT, || {
            let pid = scanner.service_pid(name).unwrap_or(0);
            found = (pid, getty_args(root, pid));
            pid != not && !found.1.is_empty()
        });
        found
    }

    #[test]
    fn void_agetty_services_get_their_tty_and_a_new_generic_run_restarts_both() {
        if !Family::Runit.require() {
            return;
        }
        let root = Root::empty();
        // As on Void, the template agetty-generic is not a running service.
        root.config("supervisor: runit\nstop_timeout: 10\ndisabled: [agetty-generic]\n");
        copy_tree(&void_fixture(), &root.stock());
        add_logging_service(&root, "web", "v1");
        root.commit().ok();
        let path = getty_stubs(&root);
        let scanner = Scanner::start_wrapped(&root, Family::Runit, &[], &[("PATH", path)]);
        let (tty1, args1) = wait_for_getty(&root, &scanner, "agetty-tty1", 0);
        let (tty2, args2) = wait_for_getty(&root, &scanner, "agetty-tty2", 0);
        let web = scanner.wait_pid("web");
        // agetty-tty1/conf adds --noclear for tty1 when util-linux's agetty
        // is installed (it is on every Debian system: util-linux is essential).
        assert_eq!(args1, ["--noclear", "tty1", "38400", "linux"]);
        assert_eq!(args2, ["tty2", "38400", "linux"]);
        for (name, pid) in [("agetty-tty1", tty1), ("agetty-tty2", tty2)] {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
            assert_eq!(cwd, live_object(&root, name));
            assert!(cwd.ends_with(name), "{}", cwd.display());
        }
        assert_eq!(scanner.service_pid("agetty-generic"), None, "disabled");

        let generic = root.stock().join("agetty-generic/run");
        let mut shared = std::fs::read(&generic).unwrap();
        shared.extend_from_slice(b"# a new release\n");
        std::fs::write(&generic, &shared).unwrap();
        root.commit().ok();
        let (new1, again1) = wait_for_getty(&root, &scanner, "agetty-tty1", tty1);
        let (new2, again2) = wait_for_getty(&root, &scanner, "agetty-tty2", tty2);
        assert!(!alive(tty1) && !alive(tty2), "the old gettys were stopped");
        assert_ne!((new1, new2), (tty1, tty2));
        assert_eq!(again1, args1);
        assert_eq!(again2, args2);
        assert_eq!(scanner.service_pid("web"), Some(web), "web kept its pid");
        assert_eq!(runs(&root, "web").len(), 1, "web started once");
    }
}
