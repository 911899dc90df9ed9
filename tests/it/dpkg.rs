//! dpkg integration, with the real dpkg: the example packages of
//! docs/integration/dpkg are built with `dpkg-deb --build` and installed,
//! upgraded and removed with `dpkg --root` in a throwaway root that has its
//! own package database (never the machine's). After every dpkg run the
//! live generation and the scan directory hold exactly the installed
//! packages' services, and history.log grew by exactly one commit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::*;

const STOCK: &str = "usr/share/svcdir-update/stock";

/// Whether dpkg and dpkg-deb are installed: a test fails without them
/// unless it may be left out (`harness::require_tool`).
#[track_caller]
fn have_dpkg() -> bool {
    require_tool("dpkg", "dpkg") && require_tool("dpkg-deb", "dpkg")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/integration/dpkg")
}

/// The built packages.
struct Debs {
    trigger: PathBuf,
    hello_1: PathBuf,
    hello_2: PathBuf,
    /// 3.0, broken: its `run` is not executable (a bad-input commit, 65).
    hello_broken: PathBuf,
    world: PathBuf,
}

/// A throwaway dpkg root with its own admindir and an svcdir-update config
/// at `<root>/etc/svcdir-update/config.yaml` (where the trigger's postinst
/// looks, through `$DPKG_ROOT`).
struct DpkgRoot {
    tmp: tempfile::TempDir,
    debs: Debs,
}

impl DpkgRoot {
    fn new() -> DpkgRoot {
        let tmp = tempfile::Builder::new()
            .prefix("svcdir-dpkg-")
            .tempdir()
            .unwrap();
        let debs = build_debs(&tmp.path().join("build"));
        let root = tmp.path().join("root");
        let admin = root.join("var/lib/dpkg");
        for d in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(admin.join(d)).unwrap();
        }
        for f in ["status", "available"] {
            std::fs::write(admin.join(f), "").unwrap();
        }
        std::fs::create_dir_all(root.join("etc/svcdir-update")).unwrap();
        // The state directory's parents must not be group/world-writable.
        for d in [tmp.path(), &root] {
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        std::fs::write(
            root.join("etc/svcdir-update/config.yaml"),
            format!(
                "stock: [{r}/{STOCK}]\nstate: {r}/var/lib/svcdir-update\n\
                 runtime: {r}/run/svcdir-update\nscandir: {r}/run/service\nsupervisor: none\n",
                r = root.display()
            ),
        )
        .unwrap();
        DpkgRoot { tmp, debs }
    }

    /// Adds `strict: true` to the config: all or nothing.
    fn strict(&self) {
        let mut config = std::fs::read_to_string(self.config()).unwrap();
        config.push_str("strict: true\n");
        std::fs::write(self.config(), config).unwrap();
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn state(&self) -> PathBuf {
        self.root().join("var/lib/svcdir-update")
    }

    fn config(&self) -> PathBuf {
        self.root().join("etc/svcdir-update/config.yaml")
    }

    /// The binary under test with `--config` of this root.
    fn tool(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.arg("--config").arg(self.config()).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `dpkg --root` with the built binary first in PATH; returns
    /// dpkg's exit code and its output (for assertion messages).
    fn dpkg(&self, args: &[&str]) -> (i32, String) {
        let bindir = bin().parent().unwrap().to_path_buf();
        let path = format!(
            "{}:{}",
            bindir.display(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into())
        );
        let out = Command::new("dpkg")
            .arg(format!("--root={}", self.root().display()))
            // Maintainer scripts run outside the root, with DPKG_ROOT set.
            .arg("--force-script-chrootless")
            .arg("--log=/dev/null")
            .args(args)
            .env("PATH", path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "dpkg {args:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Runs dpkg, which must succeed, and returns how many commits
    /// history.log gained during the run, and dpkg's output.
    #[track_caller]
    fn dpkg_ok(&self, args: &[&str]) -> (usize, String) {
        let before = self.history_lines();
        let (code, text) = self.dpkg(args);
        assert_eq!(code, 0, "{text}");
        (self.history_lines() - before, text)
    }

    fn history_lines(&self) -> usize {
        history_len(&self.state())
    }

    /// Asserts that the live generation and the scan directory hold exactly
    /// `expected`, and that each link reaches the live service.
    #[track_caller]
    fn assert_services(&self, expected: &[&str], context: &str) {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        let live = names(&self.state().join(layout::LIVE));
        assert_eq!(live, expected, "live generation\n{context}");
        let scandir = self.root().join("run/service");
        assert_eq!(names(&scandir), expected, "scan directory\n{context}");
        for name in &expected {
            let link = std::fs::read_link(scandir.join(name)).unwrap();
            assert_eq!(link, self.state().join(layout::LIVE).join(name));
            assert!(scandir.join(name).join("run").is_file(), "{name}/run");
            assert!(
                scandir.join(name).join("log/run").is_file(),
                "{name}/log/run"
            );
        }
    }

    /// The live `run` of a service.
    fn live_run(&self, service: &str) -> String {
        std::fs::read_to_string(self.state().join(layout::LIVE).join(service).join("run")).unwrap()
    }

    fn pending(&self) -> PathBuf {
        self.state().join(layout::PENDING)
    }
}

/// Non-dot entries of a directory (none if it is missing).
fn names(dir: &Path) -> BTreeSet<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return BTreeSet::new();
    };
    rd.map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// Builds the trigger package, example-hello 1.0 and 2.0, and
/// example-world 1.0 (example-hello renamed) from docs/integration/dpkg.
fn build_debs(dir: &Path) -> Debs {
    std::fs::create_dir_all(dir).unwrap();
    let stage = |pkg: &str, from: &str| -> PathBuf {
        let to = dir.join(pkg);
        std::fs::create_dir(&to).unwrap();
        copy_tree(&examples().join(from), &to);
        // dpkg-deb wants DEBIAN at 0755..0775, whatever the checkout's umask.
        std::fs::set_permissions(
            to.join("DEBIAN"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        to
    };
    let build = |staged: &Path| -> PathBuf {
        let mut deb = staged.as_os_str().to_owned();
        deb.push(".deb");
        let deb = PathBuf::from(deb);
        let out = Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(staged)
            .arg(&deb)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dpkg-deb --build {}: {}",
            staged.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        deb
    };
    let edit = |path: &Path, from: &str, to: &str| {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(from), "{} lacks {from:?}", path.display());
        std::fs::write(path, text.replace(from, to)).unwrap();
    };

    let trigger = stage("svcdir-update-trigger", "svcdir-update-trigger");
    // The trigger package owns the (empty) stock directory; git keeps no
    // empty directories, so it is made here.
    std::fs::create_dir_all(trigger.join(STOCK)).unwrap();
    let hello_1 = stage("example-hello_1.0", "example-hello");
    let hello_2 = stage("example-hello_2.0", "example-hello");
    edit(
        &hello_2.join("DEBIAN/control"),
        "Version: 1.0",
        "Version: 2.0",
    );
    edit(
        &hello_2.join(STOCK).join("hello/run"),
        "example-hello 1.0",
        "example-hello 2.0",
    );
    let broken = stage("example-hello_3.0", "example-hello");
    edit(
        &broken.join("DEBIAN/control"),
        "Version: 1.0",
        "Version: 3.0",
    );
    std::fs::set_permissions(
        broken.join(STOCK).join("hello/run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let world = stage("example-world", "example-hello");
    edit(
        &world.join("DEBIAN/control"),
        "Package: example-hello",
        "Package: example-world",
    );
    std::fs::rename(
        world.join(STOCK).join("hello"),
        world.join(STOCK).join("world"),
    )
    .unwrap();
    Debs {
        trigger: build(&trigger),
        hello_1: build(&hello_1),
        hello_2: build(&hello_2),
        hello_broken: build(&broken),
        world: build(&world),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn dpkg_install_upgrade_remove_commit_once_per_run() {
    if !have_dpkg() {
        return;
    }
    let r = DpkgRoot::new();

    // The trigger package alone: its `configure` commits the empty stock.
    let (commits, out) = r.dpkg_ok(&["-i", s(&r.debs.trigger)]);
    assert_eq!(commits, 1, "{out}");
    r.assert_services(&[], &out);

    // Two service packages in one dpkg run: one trigger run, one commit.
    let (commits, out) = r.dpkg_ok(&["-i", s(&r.debs.hello_1), s(&r.debs.world)]);
    assert_eq!(commits, 1, "{out}");
    assert!(
        out.contains("Processing triggers for svcdir-update-trigger"),
        "{out}"
    );
    r.assert_services(&["hello", "world"], &out);
    assert!(r.live_run("hello").contains("example-hello 1.0"));
    let world_before = std::fs::metadata(r.state().join("live/world")).unwrap();

    // Upgrade: hello gets a new object, world keeps its very directory.
    let (commits, out) = r.dpkg_ok(&["-i", s(&r.debs.hello_2)]);
    assert_eq!(commits, 1, "{out}");
    r.assert_services(&["hello", "world"], &out);
    assert!(r.live_run("hello").contains("example-hello 2.0"), "{out}");
    let world_after = std::fs::metadata(r.state().join("live/world")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (world_before.dev(), world_before.ino()),
        (world_after.dev(), world_after.ino()),
        "an unchanged service must keep its inode"
    );

    // A run that changes nothing in the stock commits nothing new
    // (reinstalling the same version: the trigger runs, the commit is
    // "up to date").
    let (commits, out) = r.dpkg_ok(&["-i", s(&r.debs.hello_2)]);
    assert_eq!(commits, 0, "{out}");

    // Removing both in one run: one commit, nothing left.
    let (commits, out) = r.dpkg_ok(&["-r", "example-hello", "example-world"]);
    assert_eq!(commits, 1, "{out}");
    r.assert_services(&[], &out);
    assert!(!r.pending().exists());
}

#[test]
fn dpkg_installing_the_trigger_with_services_commits_once() {
    if !have_dpkg() {
        return;
    }
    let r = DpkgRoot::new();
    // The trigger package configured in the same run as the packages that
    // activate it: dpkg folds the pending trigger into its `configure`.
    let (commits, out) = r.dpkg_ok(&[
        "-i",
        s(&r.debs.hello_1),
        s(&r.debs.trigger),
        s(&r.debs.world),
    ]);
    assert_eq!(commits, 1, "{out}");
    r.assert_services(&["hello", "world"], &out);
}

#[test]
fn dpkg_does_not_fail_when_an_update_lock_defers_the_commit_and_sync_applies_it() {
    if !have_dpkg() {
        return;
    }
    let r = DpkgRoot::new();
    r.dpkg_ok(&["-i", s(&r.debs.trigger), s(&r.debs.hello_1)]);
    r.assert_services(&["hello"], "after install");

    // hello is in a critical section: it holds its update lock, as a
    // service would (docs/update-locks.md) — one process, so that killing
    // it releases the lock and leaves nothing behind.
    let lock = r.root().join("run/svcdir-update/locks/hello.lock");
    let holder = flock_holder(&lock, "-s");

    // The upgrade succeeds for dpkg; the commit is deferred and recorded.
    let (commits, out) = r.dpkg_ok(&["-i", s(&r.debs.hello_2)]);
    assert_eq!(commits, 0, "{out}");
    assert!(out.contains("commit deferred (exit 75)"), "{out}");
    assert!(r.live_run("hello").contains("example-hello 1.0"), "{out}");
    let marker = std::fs::read_to_string(r.pending()).unwrap();
    assert!(marker.contains("update locks are held"), "{marker}");
    let status = r.tool(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("pending:      a commit deferred at"),
        "{status}"
    );

    // While the lock is held, `sync` keeps the marker and still succeeds.
    let run = r.tool(&["sync"]).output().unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("pending commit deferred again"),
        "{run:?}"
    );
    assert!(r.pending().exists());

    // Released: the next `sync` (e.g. at boot) applies it, once.
    drop(holder);
    let before = r.history_lines();
    let run = r.tool(&["sync"]).output().unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("pending commit applied"),
        "{run:?}"
    );
    assert_eq!(r.history_lines(), before + 1);
    assert!(r.live_run("hello").contains("example-hello 2.0"));
    assert!(
        !r.pending().exists(),
        "a commit that succeeded clears the marker"
    );
    r.assert_services(&["hello"], "after sync");

    // Nothing pending any more: another sync changes nothing.
    let run = r.tool(&["sync"]).output().unwrap();
    assert!(run.status.success(), "{run:?}");
    assert_eq!(r.history_lines(), before + 1);
}

#[test]
fn dpkg_reports_a_broken_service_and_the_fixed_package_commits() {
    if !have_dpkg() {
        return;
    }
    let r = DpkgRoot::new();
    r.strict();
    r.dpkg_ok(&["-i", s(&r.debs.trigger), s(&r.debs.hello_1)]);

    // With `strict: true`, a package whose service is bad input: the
    // commit exits 65, the trigger fails, dpkg says so — not a silent
    // success — and the live generation keeps running the last good version.
    let before = r.history_lines();
    let (code, out) = r.dpkg(&["-i", s(&r.debs.hello_broken)]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("is not executable") || out.contains("run"),
        "{out}"
    );
    assert_eq!(r.history_lines(), before, "{out}");
    assert!(r.live_run("hello").contains("example-hello 1.0"));
    assert!(!r.pending().exists(), "bad input is not a deferral");
    r.assert_services(&["hello"], &out);

    // dpkg leaves the trigger package half-configured, as for any failed
    // maintainer script: `dpkg --audit` names it, and later runs do not run
    // its trigger until it is configured again.
    let (_, audit) = r.dpkg(&["--audit"]);
    assert!(audit.contains("svcdir-update-trigger"), "{audit}");

    // The fixed version, then what dpkg asks for: `dpkg --configure -a`
    // runs the postinst again, which commits once.
    let (commits, out) = r.dpkg_ok(&["-i", s(&r.debs.hello_2)]);
    assert_eq!(commits, 0, "{out}");
    let (commits, out) = r.dpkg_ok(&["--configure", "-a"]);
    assert_eq!(commits, 1, "{out}");
    assert!(r.live_run("hello").contains("example-hello 2.0"), "{out}");
    r.assert_services(&["hello"], &out);
    let (code, audit) = r.dpkg(&["--audit"]);
    assert_eq!(code, 0, "{audit}");
    assert!(!audit.contains("svcdir-update-trigger"), "{audit}");
}

/// The default for a package manager: one broken package never blocks
/// another. dpkg installs a broken example-hello 3.0 and a fine
/// example-world in one run: world goes live, hello keeps its live 1.0 and
/// is named (path and fix) in dpkg's output, and dpkg exits 0 — the commit
/// held hello back and committed the rest, once.
#[test]
fn dpkg_one_broken_package_does_not_block_another() {
    if !have_dpkg() {
        return;
    }
    let r = DpkgRoot::new();
    r.dpkg_ok(&["-i", s(&r.debs.trigger), s(&r.debs.hello_1)]);
    let (commits, out) = r.dpkg_ok(&["-i", s(&r.debs.hello_broken), s(&r.debs.world)]);
    assert_eq!(commits, 1, "{out}");
    r.assert_services(&["hello", "world"], &out);
    assert!(r.live_run("hello").contains("example-hello 1.0"), "{out}");
    let hello = r.root().join(STOCK).join("hello");
    assert!(out.contains("hello: held back"), "{out}");
    assert!(out.contains(s(&hello)), "{out}");
    assert!(
        out.contains("`run` is not executable (chmod +x run)"),
        "{out}"
    );
    assert!(!r.pending().exists(), "bad input is not a deferral");
    // `status` keeps naming it until it is fixed.
    let status = r.tool(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.contains("held back:    hello"), "{status}");
    let (commits, out) = r.dpkg_ok(&["-i", s(&r.debs.hello_2)]);
    assert_eq!(commits, 1, "{out}");
    assert!(r.live_run("hello").contains("example-hello 2.0"), "{out}");
    let status = r.tool(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(!status.contains("held back"), "{status}");
}
