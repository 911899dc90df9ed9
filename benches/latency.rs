//! `cargo bench --bench latency`: how long after a commit starts the
//! changed service's new instance runs, under real s6, runit and
//! daemontools, beside the supervisor's own restart floor.
//!
//! For each family, N services are committed under the family's scanner
//! (s6-svscan, runsvdir, svscan, started on the root's scan directory as
//! the tests start them). Each service's `run` writes `date +%s%N` to a
//! stamp file as its first action, then execs a long `sleep`. Each round:
//!
//! - **commit**: `svc00`'s `run` is changed, the clock is read just before
//!   `svcdir-update commit` is spawned, and the latency is the new
//!   instance's stamp minus that reading (the commit stops the old
//!   instance, switches the scan entry to the new object and notifies the
//!   scanner: docs/supervisors.md).
//! - **floor**: `t` (SIGTERM) is written to `svc01`'s `supervise/control`
//!   FIFO, as `s6-svc -t` / `sv term` / `svc -t` would, and the latency is
//!   its new stamp minus the clock read just before: the supervisor's own
//!   restart of a service it already supervises, which no tool that
//!   installs a *new* service directory can beat. A commit also waits for
//!   the scanner to notice the new directory: s6-svscan at once on `an`,
//!   runsvdir on the scan directory's mtime change (it looks about once a
//!   second), svscan only on its 5 s timer.
//!
//! Each service is left up at least 1.1 s before it is restarted again:
//! all three supervisors hold a service started less than a second ago
//! (docs/supervisors.md#daemontools), which would time their pause, not
//! the restart.
//!
//! Environment: `BENCH_LATENCY_SIZES=10,1000` (N), `BENCH_ROUNDS=5`,
//! `BENCH_FAMILIES=s6,runit,daemontools`,
//! `BENCH_DIR=/var/tmp/svcdir-bench-latency`, `BENCH_OUT=FILE` to also
//! write the markdown table there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
// Tests and benches report to the terminal that runs them.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![allow(unreachable_pub, missing_docs)]

mod common;
mod supervised;
use common::binary;
use supervised::{Scanner, env_or, installed, machine_line, median};

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a new instance gets to write its stamp (svscan rescans every
/// 5 s; 1,000 services come up slowly on a shared machine).
const REACT: Duration = Duration::from_secs(300);

/// How long a service stays up before it is restarted again: past the
/// supervisors' one-second hold after a start.
const SETTLE: Duration = Duration::from_millis(1100);

fn main() {
    let rounds: usize = env_or("BENCH_ROUNDS", 5).max(1);
    let sizes = std::env::var("BENCH_LATENCY_SIZES").unwrap_or_else(|_| "10,1000".into());
    let families =
        std::env::var("BENCH_FAMILIES").unwrap_or_else(|_| "s6,runit,daemontools".into());
    let base = PathBuf::from(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp/svcdir-bench-latency".into()),
    );
    let bin = binary();
    let mut report = String::new();
    writeln!(report, "{}", machine_line()).ok();
    writeln!(
        report,
        "medians of {rounds} rounds; floor = the supervisor restarting a service it \
         supervises (`t` on its control FIFO)\n\n\
         | supervisor | N | commit start → new `run` | floor | latency / floor |\n\
         |---|---:|---:|---:|---:|"
    )
    .ok();
    for n in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<usize>().ok())
    {
        for family in families.split(',').map(str::trim) {
            let Some(family) = Family::named(family) else {
                eprintln!("unknown family {family:?}; known: s6, runit, daemontools");
                continue;
            };
            if !installed(family.scanner()) {
                eprintln!("{} is not installed: {family:?} left out", family.scanner());
                continue;
            }
            let dir = base.join(format!("{}-{n}", family.config_name()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("stock")).expect("bench dir");
            std::fs::create_dir_all(dir.join("stamps")).expect("stamps dir");
            let (latency, floor) = bench_family(&bin, &dir, family, n.max(2), rounds);
            let row = format!(
                "| {} | {n} | {:.0} ms | {:.0} ms | {:.1}× |\n",
                family.config_name(),
                latency.as_secs_f64() * 1e3,
                floor.as_secs_f64() * 1e3,
                latency.as_secs_f64() / floor.as_secs_f64().max(1e-6)
            );
            print!("{row}");
            report.push_str(&row);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    // Only when empty: BENCH_DIR may be a directory that holds more.
    let _ = std::fs::remove_dir(&base);
    println!("\n{report}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(&out, &report).expect("write BENCH_OUT");
    }
}
#[derive(Debug, Clone, Copy)]
enum Family {
    S6,
    Runit,
    Daemontools,
}

impl Family {
    fn named(name: &str) -> Option<Family> {
        match name {
            "s6" => Some(Family::S6),
            "runit" => Some(Family::Runit),
            "daemontools" => Some(Family::Daemontools),
            _ => None,
        }
    }

    fn config_name(self) -> &'static str {
        match self {
            Family::S6 => "s6",
            Family::Runit => "runit",
            Family::Daemontools => "daemontools",
        }
    }

    fn scanner(self) -> &'static str {
        match self {
            Family::S6 => "s6-svscan",
            Family::Runit => "runsvdir",
            Family::Daemontools => "svscan",
        }
    }

    /// Arguments before the scan directory: s6-svscan's default cap on
    /// supervised services is below N = 1,000 plus the ones being replaced.
    fn scanner_args(self) -> &'static [&'static str] {
        match self {
            Family::S6 => &["-c", "4096"],
            Family::Runit | Family::Daemontools => &[],
        }
    }
}

fn name(i: usize) -> String {
    format!("svc{i:02}")
}

fn stamp_path(root: &Path, i: usize) -> PathBuf {
    root.join("stamps").join(name(i))
}

/// Writes `run` of service `i`; `version` makes its content new. The stamp
/// is written aside and renamed so a reader never sees half of it.
fn write_service(root: &Path, i: usize, version: &str) {
    let dir = root.join("stock").join(name(i));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let run = dir.join("run");
    let stamp = stamp_path(root, i);
    let stamp = stamp.display();
    std::fs::write(
        &run,
        format!(
            "#!/bin/sh\n# {version}\ndate +%s%N > {stamp}.new && mv -f {stamp}.new {stamp}\n\
             exec sleep 100000\n"
        ),
    )
    .expect("write run");
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
}

/// Nanoseconds since the epoch, the clock `date +%s%N` reads.
fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

/// Waits for service `i`'s stamp to appear (after its removal); its value.
fn wait_stamp(root: &Path, i: usize) -> u128 {
    let path = stamp_path(root, i);
    let deadline = Instant::now() + REACT;
    loop {
        if let Some(ns) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return ns;
        }
        assert!(Instant::now() < deadline, "{} did not run", name(i));
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn commit(bin: &Path, root: &Path) {
    let out = Command::new(bin)
        .arg("--root")
        .arg(root)
        .arg("commit")
        .stdin(Stdio::null())
        .output()
        .expect("run svcdir-update");
    assert!(
        out.status.success(),
        "commit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
fn since(t0: u128, stamp: u128) -> Duration {
    Duration::from_nanos(u64::try_from(stamp.saturating_sub(t0)).unwrap_or(u64::MAX))
}

/// Medians of (commit start → `svc00`'s new run, floor restart of `svc01`).
fn bench_family(
    bin: &Path,
    root: &Path,
    family: Family,
    n: usize,
    rounds: usize,
) -> (Duration, Duration) {
    std::fs::write(
        root.join("config.yaml"),
        format!("supervisor: {}\nstop_timeout: 10\n", family.config_name()),
    )
    .expect("config");
    for i in 0..n {
        write_service(root, i, "start");
    }
    commit(bin, root);
    let scanner = Scanner::start(root, family.scanner(), family.scanner_args());
    for i in 0..n {
        wait_stamp(root, i);
    }
    let (mut latency, mut floor) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        std::thread::sleep(SETTLE);
        write_service(root, 0, &format!("round {round}"));
        std::fs::remove_file(stamp_path(root, 0)).expect("remove stamp");
        let t0 = now_ns();
        commit(bin, root);
        latency.push(since(t0, wait_stamp(root, 0)));

        std::fs::remove_file(stamp_path(root, 1)).expect("remove stamp");
        let control = root.join("service").join(name(1)).join("supervise/control");
        let mut fifo = std::fs::OpenOptions::new()
            .write(true)
            .open(&control)
            .expect("open control FIFO");
        let t0 = now_ns();
        fifo.write_all(b"t").expect("write control FIFO");
        floor.push(since(t0, wait_stamp(root, 1)));
    }
    drop(scanner);
    eprintln!("{family:?} N={n}: commit {latency:?}; floor {floor:?}");
    (median(&mut latency), median(&mut floor))
}
