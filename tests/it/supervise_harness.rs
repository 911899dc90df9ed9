//! Real supervisors for tests: start s6-svscan, runsvdir or svscan on a
//! root's scan directory, ask them for pids, and kill every process they started — by
//! pid, when the guard drops, even when the test panics.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// How long a test waits for a supervisor to react (generous: the machines
/// are shared, runsvdir rescans about once a second and daemontools'
/// svscan every 5 s).
pub const REACT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    S6,
    Runit,
    Daemontools,
}

impl Family {
    pub fn config_name(self) -> &'static str {
        match self {
            Family::S6 => "s6",
            Family::Runit => "runit",
            Family::Daemontools => "daemontools",
        }
    }

    /// The scanner program, and the Debian package that has it and the
    /// family's other tools (`s6-svc`, `sv`, ...).
    pub fn scanner(self) -> (&'static str, &'static str) {
        match self {
            Family::S6 => ("s6-svscan", "s6"),
            Family::Runit => ("runsvdir", "runit"),
            Family::Daemontools => ("svscan", "daemontools"),
        }
    }

    /// Whether this family's tools are installed: a test fails without them
    /// unless it may be left out (`harness::require_tool`).
    #[track_caller]
    pub fn require(self) -> bool {
        let (program, package) = self.scanner();
        require_tool(program, package)
    }

    /// The `comm` of this family's per-service supervisor.
    pub fn supervisor_comm(self) -> &'static str {
        match self {
            Family::S6 => "s6-supervise",
            Family::Runit => "runsv",
            Family::Daemontools => "supervise",
        }
    }

    /// The `--check-up` seconds a failing service is given: enough for
    /// the scanner to start it at least once. daemontools' svscan finds a
    /// new service only on its 5 s timer.
    pub fn check_up_secs(self) -> u64 {
        match self {
            Family::S6 | Family::Runit => 5,
            Family::Daemontools => 8,
        }
    }
}

/// Writes `<root>/config.yaml` selecting `family`.
pub fn configure(root: &Root, family: Family) {
    root.config(&format!(
        "supervisor: {}\nstop_timeout: 10\n",
        family.config_name()
    ));
}

/// A running scanner; dropping it kills the scanner, every supervisor and
/// every service process it started, and anything whose cwd is in the root.
pub struct Scanner {
    pub family: Family,
    child: Option<std::process::Child>,
    root: PathBuf,
    scandir: PathBuf,
}

impl Scanner {
    /// Starts the family's scanner on `root`'s scan directory (which must
    /// exist: commit or `init` first).
    pub fn start(root: &Root, family: Family) -> Scanner {
        Scanner::start_wrapped(root, family, &[], &[])
    }

    /// Starts the scanner as [`Scanner::start`] does, but as the last
    /// arguments of `wrapper` (a program that ends by exec'ing them, so the
    /// pid stays the scanner's), with `envs` added to its environment.
    pub fn start_wrapped(
        root: &Root,
        family: Family,
        wrapper: &[&str],
        envs: &[(&str, String)],
    ) -> Scanner {
        let log = File::create(root.path().join(format!("{}.log", family.config_name()))).unwrap();
        let program = family.scanner().0;
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut cmd = Command::new(first);
                cmd.args(rest).arg(program);
                cmd
            }
            None => Command::new(program),
        };
        cmd.envs(envs.iter().map(|(k, v)| (k, v)));
        cmd.arg(root.scandir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {family:?}: {e}"));
        Scanner {
            family,
            child: Some(child),
            root: root.path().to_path_buf(),
            scandir: root.scandir(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    /// The pid of the service linked as `<scandir>/<name>`, if it is up.
    pub fn service_pid(&self, name: &str) -> Option<u32> {
        service_pid(self.family, &self.scandir.join(name))
    }

    /// Waits until `name` is up and returns its pid.
    #[track_caller]
    pub fn wait_pid(&self, name: &str) -> u32 {
        let mut pid = None;
        wait_until(&format!("{name} up under {:?}", self.family), REACT, || {
            pid = self.service_pid(name);
            pid.is_some()
        });
        pid.unwrap_or_default()
    }

    /// Pids of this family's supervisors whose cwd is `dir`.
    pub fn supervisors_of(&self, dir: &Path) -> Vec<u32> {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        all_pids()
            .into_iter()
            .filter(|&p| comm(p).as_deref() == Some(self.family.supervisor_comm()))
            .filter(|&p| {
                std::fs::read_link(format!("/proc/{p}/cwd")).ok().as_deref() == Some(&*dir)
            })
            .collect()
    }

    /// Kills everything now (the drop does the same).
    pub fn kill_all(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let scanner = child.id();
        // Collect first, then kill: killing reparents orphans to init.
        let mut doomed: BTreeSet<u32> = descendants(scanner);
        doomed.extend(all_pids().into_iter().filter(|&p| {
            std::fs::read_link(format!("/proc/{p}/cwd"))
                .is_ok_and(|cwd| cwd.starts_with(&self.root))
        }));
        doomed.remove(&std::process::id());
        let _ = child.kill();
        for pid in doomed {
            kill9(pid);
        }
        let _ = child.wait();
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Kills (SIGKILL) every process whose working directory is under `root`:
/// scanners, supervisors and services started from a test's directory.
pub fn kill_everything_under(root: &Path) {
    for pid in running_under(root) {
        kill9(pid);
    }
}

/// Live processes (not zombies, not this one) whose working directory is
/// under `root`: supervisors and services run in their store objects.
pub fn running_under(root: &Path) -> Vec<u32> {
    all_pids()
        .into_iter()
        .filter(|&p| p != std::process::id() && alive(p))
        .filter(|&p| {
            std::fs::read_link(format!("/proc/{p}/cwd")).is_ok_and(|cwd| cwd.starts_with(root))
        })
        .collect()
}

fn kill9(pid: u32) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `comm` of a process.
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// (state, ppid) from /proc/PID/stat.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    let mut f = after.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Is the process alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

/// All descendants of `root` (not `root` itself).
pub fn descendants(root: u32) -> BTreeSet<u32> {
    let parents: Vec<(u32, u32)> = all_pids()
        .into_iter()
        .filter_map(|p| Some((p, stat(p)?.1)))
        .collect();
    let mut out = BTreeSet::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parents {
            if parent == p && out.insert(child) {
                frontier.push(child);
            }
        }
    }
    out
}

/// The pid of the service at `dir` per its supervisor, if it is up.
pub fn service_pid(family: Family, dir: &Path) -> Option<u32> {
    match family {
        Family::S6 => {
            let out = Command::new("s6-svstat")
                .args(["-o", "up,pid"])
                .arg(dir)
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let mut f = text.split_whitespace();
            (f.next()? == "true").then_some(())?;
            f.next()?.parse().ok()
        }
        Family::Runit => {
            let out = Command::new("sv")
                .arg("status")
                .arg(dir)
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let rest = text.strip_prefix("run: ")?;
            let pid = rest.split("(pid ").nth(1)?.split(')').next()?;
            pid.parse().ok()
        }
        Family::Daemontools => daemontools_pid(dir),
    }
}

/// The pid `svstat DIR` shows (`DIR: up (pid N) 3 seconds`), if up.
fn daemontools_pid(dir: &Path) -> Option<u32> {
    let out = Command::new("svstat")
        .arg(dir)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rest = text.split(": up (pid ").nth(1)?;
    rest.split(')').next()?.parse().ok()
}

/// A service whose `run` appends "PID TAG" to `<root>/out/NAME.log`, then
/// execs a long sleep (same pid), so the log counts the runs.
pub fn add_logging_service(root: &Root, name: &str, tag: &str) {
    let out = root.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    root.write_stock(
        &format!("{name}/run"),
        &format!(
            "#!/bin/sh\necho \"$$ {tag}\" >> {}/{name}.log\nexec sleep 100000\n",
            out.display()
        ),
        0o755,
    );
}

/// The lines of `<root>/out/NAME.log` ("PID TAG").
pub fn runs(root: &Root, name: &str) -> Vec<(u32, String)> {
    std::fs::read_to_string(root.path().join("out").join(format!("{name}.log")))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (pid, tag) = l.split_once(' ')?;
            Some((pid.parse().ok()?, tag.to_string()))
        })
        .collect()
}

/// The store object directory the live generation uses for `name`.
pub fn live_object(root: &Root, name: &str) -> PathBuf {
    std::fs::canonicalize(root.live().join(name)).unwrap()
}

/// Deletes a service from the stock (as a package removal would).
pub fn remove_service(root: &Root, name: &str) {
    let status = Command::new("rm")
        .arg("-rf")
        .arg(root.stock().join(name))
        .status()
        .unwrap();
    assert!(status.success());
}

/// Takes a service down the way an administrator would, and waits for it.
pub fn admin_down(family: Family, dir: &Path) {
    let status = match family {
        Family::S6 => Command::new("s6-svc")
            .args(["-T", "10000", "-wD", "-d"])
            .arg(dir)
            .status(),
        Family::Runit => Command::new("sv")
            .args(["-w", "10", "down"])
            .arg(dir)
            .status(),
        // svc only sends the command; svstat says when it is done.
        Family::Daemontools => Command::new("svc").arg("-d").arg(dir).status(),
    }
    .unwrap();
    assert!(status.success(), "cannot take {} down", dir.display());
    if family == Family::Daemontools {
        wait_until(&format!("{} down", dir.display()), REACT, || {
            let out = Command::new("svstat").arg(dir).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            text.contains(": down ") && !text.contains("want up")
        });
    }
}
