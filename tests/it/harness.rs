//! The test harness: temporary roots, running the real binary, reading state
//! back from disk, and polling with deadlines (never sleep-and-hope).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The exit codes, by name: tests never copy their numbers.
pub use svcdir_update::error::exit;

/// On-disk names of the state directory, as src/state/layout.rs spells them
/// (private there: the library's public surface is `cli`, `error`, `run`).
/// The test `layout_names_match_the_binary` in tests/it/core.rs fails when the
/// two drift apart.
pub mod layout {
    /// The transaction log of an interrupted commit or rollback.
    pub const TXN: &str = ".txn.yaml";
    /// One line per finished transaction.
    pub const HISTORY: &str = "history.log";
    /// The numbered generations.
    pub const GENERATIONS: &str = "generations";
    /// The content-addressed objects.
    pub const STORE: &str = "store";
    /// The symlink to the generation in use.
    pub const LIVE: &str = "live";
    /// The marker of a commit deferred by an update lock.
    pub const PENDING: &str = "pending";
    /// The marker of a dormant generation (docs/design.md#dormant-generations).
    pub const DORMANT: &str = ".dormant";
}

/// The variable that names a crash point in a binary built with
/// `--features failpoints` (src/sys/failpoint.rs).
pub const FAILPOINT_ENV: &str = "SVCDIR_UPDATE_FAILPOINT";

/// Arms a crash point on a command of the binary under test.
pub trait FailpointExt {
    /// Sets [`FAILPOINT_ENV`] to `spec`. Fails the test when the binary was
    /// built without failpoints (such tests are `#[ignore]`d then; this stops
    /// `--include-ignored` from driving a binary that would not crash).
    fn failpoint(&mut self, spec: &str) -> &mut Self;
}

impl FailpointExt for Command {
    #[track_caller]
    fn failpoint(&mut self, spec: &str) -> &mut Self {
        if !cfg!(feature = "failpoints") {
            panic!(
                "failpoint {spec:?} needs a binary built with --features failpoints (scripts/test.sh)"
            );
        }
        self.env(FAILPOINT_ENV, spec)
    }
}

/// The local opt-in (`=1`) that lets a test whose tool is missing leave
/// itself out instead of failing. Refused under `CI=true`.
pub const ALLOW_MISSING_TOOLS: &str = "SVCDIR_TEST_ALLOW_MISSING_TOOLS";

/// The file every test left out for a missing tool appends one line to, so
/// that a run can count them: scripts/test.sh empties it first and prints
/// the count at the end.
pub fn left_out_log() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("left-out-for-missing-tools.txt")
}

/// Whether `tool` (a name looked up in `PATH`, or an absolute path) is
/// installed. When it is not, the test fails naming the tool, its Debian
/// `package` and scripts/test.sh (which installs it) — unless
/// [`ALLOW_MISSING_TOOLS`]`=1` is set outside CI: then the caller must
/// leave the test (or the part that needs the tool) out, which is said on
/// stderr (past libtest's capture) and recorded in [`left_out_log`].
#[track_caller]
pub fn require_tool(tool: &str, package: &str) -> bool {
    if tool_installed(tool) {
        return true;
    }
    require_available(&format!(
        "{tool} is not installed (Debian package {package}; scripts/test.sh installs it)"
    ))
}

/// What [`require_tool`] does once something a test needs is found
/// `missing` (a tool, or Debian packages the archive did not give): fail,
/// or, with [`ALLOW_MISSING_TOOLS`]`=1` outside CI, say and record that the
/// test leaves itself out, and return `false`.
#[track_caller]
pub fn require_available(missing: &str) -> bool {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let at = std::panic::Location::caller();
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let allowed = std::env::var(ALLOW_MISSING_TOOLS).is_ok_and(|v| v == "1");
    assert!(
        !in_ci,
        "{test}: {missing}; under CI=true a missing tool always fails"
    );
    assert!(
        allowed,
        "{test}: {missing}; set {ALLOW_MISSING_TOOLS}=1 to leave such tests out locally"
    );
    let line = format!("left out for a missing tool: {test} ({at}): {missing}\n");
    // Straight to the stream: libtest captures only the print macros.
    let _ = std::io::stderr().write_all(line.as_bytes());
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(left_out_log());
    // One write(2) with O_APPEND: lines of parallel tests do not interleave.
    let recorded = log.and_then(|mut file| file.write_all(line.as_bytes()));
    assert!(
        recorded.is_ok(),
        "cannot record the left-out test in {}: {recorded:?}",
        left_out_log().display()
    );
    false
}

/// Whether `tool` names an executable file, directly or through `PATH`.
fn tool_installed(tool: &str) -> bool {
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|md| md.is_file() && md.permissions().mode() & 0o111 != 0)
    };
    if tool.contains('/') {
        return executable(Path::new(tool));
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(tool))))
}

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_svcdir-update"))
}

/// The bundled example stock tree.
pub fn fixture_stock() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/example/stock")
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// A `Run` from a finished `std::process::Output`.
    pub fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code,
            i32::from(exit::OK),
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts the exit code (one of [`exit`]) and returns self.
    #[track_caller]
    pub fn code(self, code: u8) -> Run {
        assert_eq!(
            self.code,
            i32::from(code),
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Whether the run exited with `code` (one of [`exit`]).
    pub fn exited(&self, code: u8) -> bool {
        self.code == i32::from(code)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    /// Asserts the run (made with `--json`) failed with an error document of
    /// `kind` (docs/json.md#errors) and returns self; chain after `code`.
    #[track_caller]
    pub fn kind(self, kind: &str) -> Run {
        assert_eq!(self.error_kind(), kind, "stdout:\n{}", self.stdout);
        self
    }

    /// The `kind` of the error document a failed `--json` run printed on
    /// stdout (docs/json.md#errors), after checking the document's
    /// `exit_code` is the process's and the message is also on stderr.
    #[track_caller]
    pub fn error_kind(&self) -> String {
        assert_ne!(self.code, 0, "expected a failure\nstdout:\n{}", self.stdout);
        let doc = self.json();
        let error = &doc["error"];
        assert_eq!(error["exit_code"], self.code, "{doc}");
        let message = error["message"].as_str().unwrap_or_else(|| panic!("{doc}"));
        assert!(
            self.stderr
                .contains(message.lines().next().unwrap_or_default()),
            "the message is not on stderr:\n{}",
            self.stderr
        );
        error["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("no kind: {doc}"))
            .to_string()
    }
}

/// The write end of a pipe whose read end is already closed: a child given
/// it as stdout or stderr gets EPIPE on its first write, like a command
/// piped into `head` that has exited. A FIFO makes that deterministic: its
/// O_RDWR opening lets the write end open without blocking, and is closed
/// before the child starts.
pub fn closed_pipe() -> Stdio {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    drop(reader);
    Stdio::from(writer)
}

/// A temporary `--root` directory: `stock/`, `state/`, `run/`, `service/`.
pub struct Root {
    pub tmp: tempfile::TempDir,
}

impl Root {
    /// An empty root with an empty `stock/`.
    pub fn empty() -> Root {
        Root::empty_in(&std::env::temp_dir())
    }

    /// An empty root in `dir` (e.g. on a file system the test made).
    pub fn empty_in(dir: &Path) -> Root {
        let tmp = tempfile::Builder::new()
            .prefix("svcdir-test-")
            .tempdir_in(dir)
            .unwrap();
        // Temp dirs are 0700; the state safety check wants no group/world
        // write, which holds. Make the root traversable for other users
        // (tests that drop privileges).
        std::fs::set_permissions(
            tmp.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::create_dir(tmp.path().join("stock")).unwrap();
        Root { tmp }
    }

    /// A root whose stock is a copy of `fixtures/example/stock` (web, db, cron).
    pub fn example() -> Root {
        Root::example_in(&std::env::temp_dir())
    }

    /// [`Root::example`] in `dir`.
    pub fn example_in(dir: &Path) -> Root {
        let root = Root::empty_in(dir);
        copy_tree(&fixture_stock(), &root.stock());
        root
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
    pub fn stock(&self) -> PathBuf {
        self.path().join("stock")
    }
    pub fn state(&self) -> PathBuf {
        self.path().join("state")
    }
    pub fn scandir(&self) -> PathBuf {
        self.path().join("service")
    }
    pub fn runtime(&self) -> PathBuf {
        self.path().join("run")
    }
    pub fn live(&self) -> PathBuf {
        self.state().join(layout::LIVE)
    }
    /// The service directory of store object `<name>-<digest>`, where its
    /// supervisor runs it: `store/<name>-<digest>/<name>`.
    pub fn object_dir(&self, object: &str) -> PathBuf {
        self.state()
            .join(layout::STORE)
            .join(object)
            .join(service_of_object(object))
    }

    /// Writes `<root>/config.yaml`.
    pub fn config(&self, yaml: &str) {
        std::fs::write(self.path().join("config.yaml"), yaml).unwrap();
    }

    /// A `Command` for the binary with `--root` set.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.arg("--root").arg(self.path()).args(args);
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs the binary with `--root` under `wrapper` (`strace …`,
    /// `setpriv …`, `prlimit … --`, GNU `time …`): the wrapper's own
    /// arguments, then the binary and `args`; stdin is /dev/null.
    pub fn run_under(&self, wrapper: &mut Command, args: &[&str]) -> Run {
        let out = wrapper
            .arg(bin())
            .arg("--root")
            .arg(self.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run::from(out)
    }

    /// Runs the binary with `--root` and waits for it.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    /// Runs the binary with `--root` and `--json`, expects it to fail, and
    /// returns the `kind` of its error document and the run: tests check
    /// what failed by kind, not by wording.
    #[track_caller]
    pub fn error_kind(&self, args: &[&str]) -> (String, Run) {
        let run = self.run(&[&["--json"], args].concat());
        (run.error_kind(), run)
    }

    pub fn commit(&self) -> Run {
        self.run(&["commit"])
    }

    /// The generation `live` points at.
    pub fn live_generation(&self) -> Option<u64> {
        let target = std::fs::read_link(self.live()).ok()?;
        target.to_str()?.strip_prefix("generations/")?.parse().ok()
    }

    /// Writes a stock file (creating parents), with mode.
    pub fn write_stock(&self, rel: &str, content: &str, mode: u32) {
        let path = self.stock().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
    }

    /// Adds a minimal valid service `name` whose run prints `tag`.
    pub fn add_service(&self, name: &str, tag: &str) {
        self.write_stock(
            &format!("{name}/run"),
            &format!("#!/bin/sh\n# {tag}\nexec sleep 100000\n"),
            0o755,
        );
    }

    /// (dev, ino) of a path, following symlinks (what scanners see).
    pub fn inode(&self, path: &Path) -> (u64, u64) {
        let md = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        (md.dev(), md.ino())
    }

    /// A byte-level picture of everything a failed command must not change:
    /// the live link, every generation (links and manifests), and the scan
    /// directory (link targets).
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for base in [self.state().join(layout::GENERATIONS), self.scandir()] {
            if !base.exists() {
                continue;
            }
            for entry in walkdir::WalkDir::new(&base).sort_by_file_name() {
                let entry = entry.unwrap();
                let key = entry
                    .path()
                    .strip_prefix(self.path())
                    .unwrap()
                    .display()
                    .to_string();
                let ft = entry.file_type();
                let value = if ft.is_symlink() {
                    let mut v = b"link:".to_vec();
                    v.extend(
                        std::fs::read_link(entry.path())
                            .unwrap()
                            .as_os_str()
                            .as_encoded_bytes(),
                    );
                    v
                } else if ft.is_file() {
                    std::fs::read(entry.path()).unwrap()
                } else {
                    b"dir".to_vec()
                };
                out.insert(key, value);
            }
        }
        if let Ok(t) = std::fs::read_link(self.live()) {
            out.insert(
                "state/live".into(),
                t.as_os_str().as_encoded_bytes().to_vec(),
            );
        }
        out
    }
}

/// Lines of `<state>/history.log` (0 when absent): one per transaction.
/// The service name part of a store object name `<name>-<digest>`.
pub fn service_of_object(object: &str) -> &str {
    object.rsplit_once('-').unwrap().0
}

/// What a generation's link for `object` says: its service directory,
/// `../../store/<name>-<digest>/<name>`.
pub fn generation_link_target(object: &str) -> PathBuf {
    Path::new("../../")
        .join(layout::STORE)
        .join(object)
        .join(service_of_object(object))
}

/// The store object name of a service directory or a link to it
/// (`…/store/<object>/<name>`).
pub fn object_of_dir(dir: &Path) -> String {
    let outer = dir.parent().unwrap().file_name().unwrap();
    outer.to_str().unwrap().to_string()
}

/// The manifest beside the object whose service directory is `dir`.
pub fn manifest_of_dir(dir: &Path) -> PathBuf {
    let outer = dir.parent().unwrap();
    outer.with_file_name(format!("{}.manifest.yaml", object_of_dir(dir)))
}

pub fn history_len(state: &Path) -> usize {
    std::fs::read_to_string(state.join(layout::HISTORY))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Lines of a root's `history.log`.
pub fn history_lines(root: &Root) -> usize {
    history_len(&root.state())
}

/// Published generation numbers on disk, ascending.
pub fn generations(root: &Root) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(root.state().join(layout::GENERATIONS))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    out
}

/// The names directly in the state directory that start with `prefix`:
/// staging leftovers (`.tmp-*`, `.tmp-capture:*`) that recovery sweeps.
pub fn staging_names(root: &Root, prefix: &str) -> Vec<String> {
    std::fs::read_dir(root.state())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Copies a directory tree, keeping modes and symlinks.
pub fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

/// Polls `cond` until it holds or `timeout` passes; panics naming `what`.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One process (the returned child itself) holding `flock FLAG` (`-s`,
/// `-x`) on `path`, as a service holds its update lock: the shell opens fd
/// 9, `flock(1)` locks it, says so, and the shell becomes `sleep`; returns
/// once the lock is held. Killing it releases the lock and leaves nothing.
pub fn flock_holder(path: &Path, flag: &str) -> KillOnDrop {
    use std::io::BufRead;
    let mut holder = Command::new("sh");
    holder
        .arg("-c")
        .arg(format!(
            "exec 9<'{}'; flock {flag} 9 || exit 9; echo held; exec sleep 600",
            path.display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    let mut holder = KillOnDrop(holder.spawn().unwrap());
    let mut line = String::new();
    std::io::BufReader::new(holder.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "held\n", "flock {flag} {}", path.display());
    holder
}

/// Kills a child process (and waits for it) when dropped, even on panic.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
