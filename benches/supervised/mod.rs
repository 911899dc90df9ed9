//! What the benches that run real supervisors share (restart, latency):
//! environment knobs, the machine line, medians, and a scanner started on
//! a root's scan directory that takes everything it started with it.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::cpu_model;

/// `name` from the environment as a number, else `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Whether `program` is on `PATH`.
pub fn installed(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The report's first line: cores, CPU, load average at the start.
pub fn machine_line() -> String {
    let cpu = cpu_model();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    format!(
        "machine: {} cores, {cpu}; load average {load} at the start\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

pub fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The scanner and everything it started (found by working directory:
/// supervisors and services run in the root's store objects).
pub struct Scanner {
    child: Child,
    root: PathBuf,
}

impl Scanner {
    /// Starts `program ARGS… <root>/service`, logging to `<root>/scanner.log`.
    pub fn start(root: &Path, program: &str, args: &[&str]) -> Scanner {
        let log = File::create(root.join("scanner.log")).expect("scanner log");
        let child = Command::new(program)
            .args(args)
            .arg(root.join("service"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start the scanner");
        Scanner {
            child,
            root: root.to_path_buf(),
        }
    }

    /// Kills the scanner and every process working under the root.
    fn kill_all(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for pid in pids_under(&self.root) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

impl Drop for Scanner {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Processes (not this one) whose working directory is under `root`.
pub fn pids_under(root: &Path) -> Vec<i32> {
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&p| p != me)
                .filter(|p| {
                    std::fs::read_link(format!("/proc/{p}/cwd")).is_ok_and(|c| c.starts_with(root))
                })
                .collect()
        })
        .unwrap_or_default()
}
