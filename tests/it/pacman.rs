//! pacman integration, with the real pacman and makepkg (Debian's
//! `pacman-package-manager` and `makepkg`): the PKGBUILDs of
//! docs/integration/pacman are built with `makepkg` as `nobody`, and the
//! packages are installed, upgraded and removed with `pacman --root` in a
//! throwaway root that has its own package database (never the machine's).
//! pacman runs the ALPM hook chrooted into that root, so the root also gets
//! a `/bin/sh` and the C libraries; the svcdir-update binary comes from the
//! package, as on Artix. After every transaction the live generation and
//! the scan directory hold exactly the installed packages' services, and
//! history.log grew by exactly one commit.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::harness::*;

const STOCK: &str = "usr/share/svcdir-update/stock";
/// The state directory as the chrooted commit sees it.
const STATE_IN_ROOT: &str = "/var/lib/svcdir-update";

/// Whether pacman, makepkg and what makepkg runs are installed: a test
/// fails without them unless it may be left out (`harness::require_tool`).
#[track_caller]
fn have_pacman() -> bool {
    require_tool("pacman", "pacman-package-manager")
        && require_tool("makepkg", "makepkg")
        && require_tool("fakeroot", "fakeroot")
        && require_tool("bsdtar", "libarchive-tools")
        && require_tool("runuser", "util-linux")
        && require_tool("chroot", "coreutils")
        && require_tool("ldd", "libc-bin")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/integration/pacman")
}

/// The built packages.
struct Packages {
    /// svcdir-update itself: the binary, the hook and its script.
    svcdir_update: PathBuf,
    hello_1: PathBuf,
    hello_2: PathBuf,
    /// 3.0, broken: its `run` is not executable.
    hello_broken: PathBuf,
    world: PathBuf,
    /// Artix-style: `/etc/runit/sv/hello` with its `supervise` link.
    hello_runit: PathBuf,
    /// Owns `/etc/runit/sv`, as Artix's runit packages do: a stock tree
    /// must outlive its last service package (pacman removes a directory
    /// no installed package lists).
    runit_base: PathBuf,
}

/// The packages, built once per test process (makepkg takes seconds) in
/// a directory that the first caller removes again from a previous
/// process's leftovers.
fn packages() -> &'static Packages {
    static PACKAGES: OnceLock<Packages> = OnceLock::new();
    PACKAGES.get_or_init(|| {
        let tmp = std::env::temp_dir();
        let prefix = "svcdir-update-it-pacman-";
        for entry in std::fs::read_dir(&tmp).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(prefix) {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = tmp.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        build_packages(&dir)
    })
}

/// Runs `makepkg` as `nobody` (makepkg refuses root) in `dir`, which holds
/// a PKGBUILD, and returns the one package it made.
fn makepkg(dir: &Path, extra: &[&str]) -> PathBuf {
    let chown = Command::new("chown")
        .args(["-R", "nobody"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(chown.success());
    let out = Command::new("runuser")
        .args(["-u", "nobody", "--", "env"])
        .arg(format!("HOME={}", dir.display()))
        // Uncompressed: pacman reads it the same, and it is faster.
        .arg("PKGEXT=.pkg.tar")
        .args(["makepkg", "--nodeps", "--noconfirm", "--force"])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let built: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".pkg.tar"))
        .collect();
    assert!(
        out.status.success() && built.len() == 1,
        "makepkg in {}: {:?}\n{}\n{}",
        dir.display(),
        built,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    built.into_iter().next().unwrap()
}

/// Builds svcdir-update with `makepkg --repackage` (its package() only,
/// from a source tree holding the binary under test), example-hello 1.0,
/// 2.0 and a broken 3.0, and example-world (example-hello renamed).
fn build_packages(dir: &Path) -> Packages {
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let edit = |path: &Path, from: &str, to: &str| {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(from), "{} lacks {from:?}", path.display());
        std::fs::write(path, text.replace(from, to)).unwrap();
    };

    // svcdir-update: the source tree its PKGBUILD's package() reads.
    let own = dir.join("svcdir-update");
    let src = own.join("src/svcdir-update-0.1.0");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(src.join("target/release")).unwrap();
    std::fs::create_dir_all(src.join("docs/integration/pacman")).unwrap();
    std::fs::create_dir_all(src.join("docs/man")).unwrap();
    std::fs::copy(examples().join("PKGBUILD"), own.join("PKGBUILD")).unwrap();
    std::fs::copy(bin(), src.join("target/release/svcdir-update")).unwrap();
    copy_tree(&examples(), &src.join("docs/integration/pacman"));
    copy_tree(&manifest.join("docs/man"), &src.join("docs/man"));
    for f in ["LICENSE-MIT", "LICENSE-APACHE"] {
        std::fs::copy(manifest.join(f), src.join(f)).unwrap();
    }
    let svcdir_update = makepkg(&own, &["--repackage"]);

    let stage = |name: &str| -> PathBuf {
        let to = dir.join(name);
        std::fs::create_dir(&to).unwrap();
        copy_tree(&examples().join("example-hello"), &to);
        to
    };
    let hello_1 = stage("example-hello-1.0");
    let hello_2 = stage("example-hello-2.0");
    edit(&hello_2.join("PKGBUILD"), "pkgver=1.0", "pkgver=2.0");
    edit(
        &hello_2.join("run"),
        "example-hello 1.0",
        "example-hello 2.0",
    );
    let broken = stage("example-hello-3.0");
    edit(&broken.join("PKGBUILD"), "pkgver=1.0", "pkgver=3.0");
    edit(
        &broken.join("PKGBUILD"),
        "install -Dm755 run",
        "install -Dm644 run",
    );
    let world = stage("example-world");
    edit(
        &world.join("PKGBUILD"),
        "pkgname=example-hello",
        "pkgname=example-world",
    );
    edit(&world.join("PKGBUILD"), "stock/hello/", "stock/world/");
    let runit = stage("example-hello-runit");
    let pkgbuild = runit.join("PKGBUILD");
    edit(
        &pkgbuild,
        "pkgname=example-hello",
        "pkgname=example-hello-runit",
    );
    edit(
        &pkgbuild,
        "usr/share/svcdir-update/stock/hello/",
        "etc/runit/sv/hello/",
    );
    edit(
        &pkgbuild,
        "package() {\n",
        "package() {\n  install -d \"$pkgdir/etc/runit/sv/hello\"\n  \
         ln -s /run/runit/supervise.hello \"$pkgdir/etc/runit/sv/hello/supervise\"\n",
    );
    let base = dir.join("example-runit-base");
    std::fs::create_dir(&base).unwrap();
    std::fs::write(
        base.join("PKGBUILD"),
        "pkgname=example-runit-base\npkgver=1.0\npkgrel=1\narch=(any)\n\
         package() {\n  install -d \"$pkgdir/etc/runit/sv\"\n}\n",
    )
    .unwrap();
    Packages {
        svcdir_update,
        hello_1: makepkg(&hello_1, &[]),
        hello_2: makepkg(&hello_2, &[]),
        hello_broken: makepkg(&broken, &[]),
        world: makepkg(&world, &[]),
        hello_runit: makepkg(&runit, &[]),
        runit_base: makepkg(&base, &[]),
    }
}

/// A throwaway pacman root: its own package database, log and hook
/// directory, a config for pacman (signatures off: the packages are built
/// here) and one for svcdir-update at the default path, and what the
/// chrooted hook needs to run: `/bin/sh` and the C libraries.
struct PacmanRoot {
    tmp: tempfile::TempDir,
    packages: &'static Packages,
}

impl PacmanRoot {
    fn new() -> PacmanRoot {
        let packages = packages();
        let tmp = tempfile::Builder::new()
            .prefix("svcdir-pacman-")
            .tempdir()
            .unwrap();
        let root = tmp.path().join("root");
        for d in [
            "var/lib/pacman",
            "var/log",
            "var/cache/pacman/pkg",
            "etc/pacman.d/hooks",
            "etc/svcdir-update",
            "bin",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        // The state directory's parents must not be group/world-writable.
        for d in [tmp.path(), &root] {
            std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        }
        std::fs::copy("/bin/sh", root.join("bin/sh")).unwrap();
        for lib in shared_libraries(&[Path::new("/bin/sh"), &bin()]) {
            let to = root.join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(&lib, &to).unwrap();
        }
        std::fs::write(
            tmp.path().join("pacman.conf"),
            "[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n",
        )
        .unwrap();
        // Paths as the chrooted commit sees them: the defaults, but one stock.
        std::fs::write(
            root.join("etc/svcdir-update/config.yaml"),
            format!("stock: [/{STOCK}]\nsupervisor: none\n"),
        )
        .unwrap();
        PacmanRoot { tmp, packages }
    }

    /// Replaces the config's stock trees by `trees` (paths in the root).
    fn stock(&self, trees: &[&str]) {
        let path = self.root().join("etc/svcdir-update/config.yaml");
        let config = std::fs::read_to_string(&path).unwrap();
        let old = format!("stock: [/{STOCK}]");
        assert!(config.contains(&old), "{config}");
        std::fs::write(
            path,
            config.replace(&old, &format!("stock: [{}]", trees.join(", "))),
        )
        .unwrap();
    }

    /// Adds `strict: true` to the config: all or nothing.
    fn strict(&self) {
        let path = self.root().join("etc/svcdir-update/config.yaml");
        let mut config = std::fs::read_to_string(&path).unwrap();
        config.push_str("strict: true\n");
        std::fs::write(path, config).unwrap();
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    fn state(&self) -> PathBuf {
        self.root().join(STATE_IN_ROOT.trim_start_matches('/'))
    }

    /// The packaged binary, run in the root as an operator there would.
    fn tool(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("chroot");
        cmd.arg(self.root())
            .arg("/usr/bin/svcdir-update")
            .args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs pacman on this root only — its database, log, cache, GnuPG
    /// and hook directories (`--hookdir` replaces the host's
    /// /etc/pacman.d/hooks; `<root>/usr/share/libalpm/hooks` is always
    /// read) — and returns pacman's exit code and its output.
    fn pacman(&self, args: &[&str]) -> (i32, String) {
        let root = self.root();
        let out = Command::new("pacman")
            .arg("--noconfirm")
            .arg("--root")
            .arg(&root)
            .arg("--dbpath")
            .arg(root.join("var/lib/pacman"))
            .arg("--config")
            .arg(self.tmp.path().join("pacman.conf"))
            .arg("--hookdir")
            .arg(root.join("etc/pacman.d/hooks"))
            .arg("--logfile")
            .arg(root.join("var/log/pacman.log"))
            .arg("--cachedir")
            .arg(root.join("var/cache/pacman/pkg"))
            .arg("--gpgdir")
            .arg(root.join("etc/pacman.d/gnupg"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = format!(
            "pacman {args:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Runs pacman, which must succeed, and returns how many commits
    /// history.log gained during the run, and pacman's output.
    #[track_caller]
    fn pacman_ok(&self, args: &[&str]) -> (usize, String) {
        let before = history_len(&self.state());
        let (code, text) = self.pacman(args);
        assert_eq!(code, 0, "{text}");
        (history_len(&self.state()) - before, text)
    }

    /// Installs svcdir-update (its dependencies, glibc and gcc-libs, are
    /// not packages in this root: `-dd`) with `more` in one transaction.
    #[track_caller]
    fn install_svcdir_update(&self, more: &[&Path]) -> (usize, String) {
        let mut args = vec!["-U", "-dd", s(&self.packages.svcdir_update)];
        args.extend(more.iter().map(|p| s(p)));
        self.pacman_ok(&args)
    }

    /// Asserts that the live generation and the scan directory hold exactly
    /// `expected`, and that each link reaches the live service in the root.
    #[track_caller]
    fn assert_services(&self, expected: &[&str], context: &str) {
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        let live = self.state().join(layout::LIVE);
        assert_eq!(names(&live), expected, "live generation\n{context}");
        let scandir = self.root().join("run/service");
        assert_eq!(names(&scandir), expected, "scan directory\n{context}");
        for name in &expected {
            let link = std::fs::read_link(scandir.join(name)).unwrap();
            assert_eq!(link, Path::new(STATE_IN_ROOT).join(layout::LIVE).join(name));
            assert!(live.join(name).join("run").is_file(), "{name}/run");
            assert!(live.join(name).join("log/run").is_file(), "{name}/log/run");
        }
    }

    /// The live `run` of a service.
    fn live_run(&self, service: &str) -> String {
        std::fs::read_to_string(self.state().join(layout::LIVE).join(service).join("run")).unwrap()
    }

    fn pending(&self) -> PathBuf {
        self.state().join(layout::PENDING)
    }

    fn status(&self) -> String {
        let out = self.tool(&["status"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The shared libraries and program interpreter that `programs` load, from
/// ldd(1): what the chrooted hook needs besides the packaged files.
fn shared_libraries(programs: &[&Path]) -> BTreeSet<PathBuf> {
    let mut libs = BTreeSet::new();
    for program in programs {
        let out = Command::new("ldd").arg(program).output().unwrap();
        assert!(out.status.success(), "ldd {}: {out:?}", program.display());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or
            // "/lib64/ld-linux-x86-64.so.2 (0x…)"; vdso has no file.
            let path = line.split("=>").last().unwrap().trim();
            let path = path.split(" (").next().unwrap().trim();
            if path.starts_with('/') {
                libs.insert(PathBuf::from(path));
            }
        }
    }
    libs
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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn pacman_install_upgrade_remove_commit_once_per_transaction() {
    if !have_pacman() {
        return;
    }
    let r = PacmanRoot::new();
    let p = r.packages;

    // svcdir-update alone: its hook matches the stock directory it owns,
    // and the hook commits the empty stock once.
    let (commits, out) = r.install_svcdir_update(&[]);
    assert_eq!(commits, 1, "{out}");
    assert!(
        r.root()
            .join("usr/share/libalpm/hooks/svcdir-update.hook")
            .is_file()
    );
    r.assert_services(&[], &out);

    // Two service packages in one transaction: one hook run, one commit.
    let (commits, out) = r.pacman_ok(&["-U", s(&p.hello_1), s(&p.world)]);
    assert_eq!(commits, 1, "{out}");
    assert_eq!(
        out.matches("Committing service directories").count(),
        1,
        "{out}"
    );
    r.assert_services(&["hello", "world"], &out);
    assert!(r.live_run("hello").contains("example-hello 1.0"));
    let world_before = std::fs::metadata(r.state().join("live/world")).unwrap();

    // Upgrade: only hello restarts (a new object); world keeps its very
    // directory.
    let (commits, out) = r.pacman_ok(&["-U", s(&p.hello_2)]);
    assert_eq!(commits, 1, "{out}");
    assert!(out.contains("hello  restart"), "{out}");
    assert!(!out.contains("world  restart"), "{out}");
    assert!(
        out.contains("1 to restart, 0 to stop, 1 unchanged"),
        "{out}"
    );
    r.assert_services(&["hello", "world"], &out);
    assert!(r.live_run("hello").contains("example-hello 2.0"), "{out}");
    let world_after = std::fs::metadata(r.state().join("live/world")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (world_before.dev(), world_before.ino()),
        (world_after.dev(), world_after.ino()),
        "an unchanged service must keep its inode"
    );

    // Reinstalling the same version: the hook runs, nothing changed, no
    // new commit.
    let (commits, out) = r.pacman_ok(&["-U", s(&p.hello_2)]);
    assert_eq!(commits, 0, "{out}");
    assert!(out.contains("Committing service directories"), "{out}");

    // Removing both in one transaction: one commit, nothing left.
    let (commits, out) = r.pacman_ok(&["-R", "example-hello", "example-world"]);
    assert_eq!(commits, 1, "{out}");
    r.assert_services(&[], &out);
    assert!(!r.pending().exists());
}

#[test]
fn pacman_installing_svcdir_update_with_services_commits_once() {
    if !have_pacman() {
        return;
    }
    let r = PacmanRoot::new();
    // The hook is read at the end of the transaction that installs it.
    let (commits, out) = r.install_svcdir_update(&[&r.packages.hello_1, &r.packages.world]);
    assert_eq!(commits, 1, "{out}");
    r.assert_services(&["hello", "world"], &out);
}

#[test]
fn pacman_does_not_fail_when_an_update_lock_defers_the_commit_and_sync_applies_it() {
    if !have_pacman() {
        return;
    }
    let r = PacmanRoot::new();
    r.install_svcdir_update(&[&r.packages.hello_1]);
    r.assert_services(&["hello"], "after install");

    // hello is in a critical section: it holds its update lock, as a
    // service would (docs/update-locks.md).
    let lock = r.root().join("run/svcdir-update/locks/hello.lock");
    let holder = flock_holder(&lock, "-s");

    // The upgrade succeeds for pacman; the commit is deferred and recorded.
    let (commits, out) = r.pacman_ok(&["-U", s(&r.packages.hello_2)]);
    assert_eq!(commits, 0, "{out}");
    assert!(out.contains("commit deferred (exit 75)"), "{out}");
    assert!(!out.contains("error: command failed"), "{out}");
    assert!(r.live_run("hello").contains("example-hello 1.0"), "{out}");
    let marker = std::fs::read_to_string(r.pending()).unwrap();
    assert!(marker.contains("update locks are held"), "{marker}");
    let status = r.status();
    assert!(
        status.contains("pending:      a commit deferred at"),
        "{status}"
    );

    // Released: the next `sync` (e.g. at boot) applies it, once.
    drop(holder);
    let before = history_len(&r.state());
    let run = r.tool(&["sync"]).output().unwrap();
    assert!(run.status.success(), "{run:?}");
    assert!(
        String::from_utf8_lossy(&run.stdout).contains("pending commit applied"),
        "{run:?}"
    );
    assert_eq!(history_len(&r.state()), before + 1);
    assert!(r.live_run("hello").contains("example-hello 2.0"));
    assert!(!r.pending().exists());
    r.assert_services(&["hello"], "after sync");
}

/// The default for a package manager: one broken package never blocks
/// another. pacman installs a broken example-hello 3.0 and a fine
/// example-world in one transaction: world goes live, hello keeps its live
/// 1.0 and is named (path and fix) in pacman's output, and pacman exits 0.
#[test]
fn pacman_names_a_broken_service_and_commits_the_rest() {
    if !have_pacman() {
        return;
    }
    let r = PacmanRoot::new();
    r.install_svcdir_update(&[&r.packages.hello_1]);
    let (commits, out) = r.pacman_ok(&["-U", s(&r.packages.hello_broken), s(&r.packages.world)]);
    assert_eq!(commits, 1, "{out}");
    r.assert_services(&["hello", "world"], &out);
    assert!(r.live_run("hello").contains("example-hello 1.0"), "{out}");
    assert!(out.contains("hello: held back"), "{out}");
    assert!(out.contains(&format!("/{STOCK}/hello")), "{out}");
    assert!(
        out.contains("`run` is not executable (chmod +x run)"),
        "{out}"
    );
    assert!(!out.contains("error: command failed"), "{out}");
    assert!(!r.pending().exists(), "bad input is not a deferral");
    assert!(r.status().contains("held back:    hello"));

    // The fixed version commits, and `status` stops naming it.
    let (commits, out) = r.pacman_ok(&["-U", s(&r.packages.hello_2)]);
    assert_eq!(commits, 1, "{out}");
    assert!(r.live_run("hello").contains("example-hello 2.0"), "{out}");
    assert!(!r.status().contains("held back"));
}

/// With `strict: true` the commit refuses the whole change (65): a
/// PostTransaction hook cannot undo the transaction, so pacman still exits
/// 0, but its output names the broken file, says the live services are
/// unchanged and flags the hook as failed.
#[test]
fn pacman_strict_refusal_is_reported_and_live_is_unchanged() {
    if !have_pacman() {
        return;
    }
    let r = PacmanRoot::new();
    r.strict();
    r.install_svcdir_update(&[&r.packages.hello_1]);
    let (commits, out) = r.pacman_ok(&["-U", s(&r.packages.hello_broken)]);
    assert_eq!(commits, 0, "{out}");
    assert!(out.contains("is not executable"), "{out}");
    assert!(out.contains("commit refused (exit 65)"), "{out}");
    assert!(
        out.contains("error: command failed to execute correctly"),
        "{out}"
    );
    assert!(r.live_run("hello").contains("example-hello 1.0"), "{out}");
    assert!(!r.pending().exists(), "bad input is not a deferral");
    r.assert_services(&["hello"], &out);

    // The fixed package commits once.
    let (commits, out) = r.pacman_ok(&["-U", s(&r.packages.hello_2)]);
    assert_eq!(commits, 1, "{out}");
    assert!(r.live_run("hello").contains("example-hello 2.0"), "{out}");
}

/// Artix's runit packages ship `/etc/runit/sv/NAME`, with a `supervise`
/// link into /run/runit: the hook's `etc/runit/sv/*` Target runs the
/// commit once that tree is a stock in the config, and the link is left
/// out of the copy (each copy gets its own supervise directory).
#[test]
fn pacman_commits_an_artix_runit_service_package_from_etc_runit_sv() {
    if !have_pacman() {
        return;
    }
    let r = PacmanRoot::new();
    r.stock(&[&format!("/{STOCK}"), "/etc/runit/sv"]);
    r.install_svcdir_update(&[&r.packages.runit_base]);
    let (commits, out) = r.pacman_ok(&["-U", s(&r.packages.hello_runit)]);
    assert_eq!(commits, 1, "{out}");
    assert!(out.contains("Committing service directories"), "{out}");
    r.assert_services(&["hello"], &out);
    assert!(r.live_run("hello").contains("example-hello 1.0"), "{out}");
    let supervise = r.state().join(layout::LIVE).join("hello/supervise");
    assert!(
        std::fs::symlink_metadata(&supervise).is_err(),
        "the supervise link is not copied\n{out}"
    );
    assert!(out.contains("supervise"), "{out}");

    // Removing it: one commit, nothing left.
    let (commits, out) = r.pacman_ok(&["-R", "example-hello-runit"]);
    assert_eq!(commits, 1, "{out}");
    r.assert_services(&[], &out);
}
