//! `cargo bench --bench restart`: what a commit costs when it restarts many
//! services under a real supervisor, against one that restarts one.
//!
//! For each supervisor family (s6-svscan and runsvdir, started on the
//! root's scan directory as the tests start them; and `none`, no
//! supervisor, for what staging and switching N changed services costs
//! without any stop), N services whose `run` execs a long `sleep` (or,
//! with a grace, shuts down that long after SIGTERM, as a daemon flushing
//! its state would) are committed and brought up. Then, A/B interleaved
//! over several rounds, it times a commit that changes (so restarts) 1
//! service and one that changes all N, waiting between commits until every
//! new instance is up (not timed). It reports the medians and their ratio:
//! old instances are stopped side by side (config `max_parallel_stops`,
//! default 64), so restarting N should cost about as much as restarting one
//! (target: at most 2×), not N times as much.
//!
//! Environment: `BENCH_RESTARTS=50` (N), `BENCH_ROUNDS=5`,
//! `BENCH_FAMILIES=none,s6,runit`, `BENCH_GRACE_MS=0` (shutdown time), `BENCH_DIR=/var/tmp/svcdir-bench-restart`,
//! `BENCH_OUT=FILE` to also write the markdown table there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
// Tests and benches report to the terminal that runs them.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![allow(unreachable_pub, missing_docs)]

mod common;
mod supervised;
use common::binary;
use supervised::{Scanner, env_or, installed, machine_line, median};

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the supervisors get to bring a service up (runsvdir rescans
/// about once a second; the machine is shared).
const REACT: Duration = Duration::from_secs(60);

fn main() {
    let n: usize = env_or("BENCH_RESTARTS", 50);
    let rounds: usize = env_or("BENCH_ROUNDS", 5);
    let grace_ms = env_or("BENCH_GRACE_MS", 0);
    let families = std::env::var("BENCH_FAMILIES").unwrap_or_else(|_| "none,s6,runit".into());
    let base = PathBuf::from(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp/svcdir-bench-restart".into()),
    );
    let bin = binary();
    let mut report = String::new();
    writeln!(report, "{}", machine_line()).ok();
    writeln!(
        report,
        "services shut down {grace_ms} ms after SIGTERM; medians of {rounds} rounds\n\n\
         | supervisor | commit restarting 1 | commit restarting {n} | ratio |\n|---|---:|---:|---:|"
    )
    .ok();
    for family in families.split(',').map(str::trim) {
        let Some(family) = Family::named(family) else {
            eprintln!("unknown family {family:?}; known: none, s6, runit");
            continue;
        };
        if let Some(scanner) = family.scanner()
            && !installed(scanner)
        {
            eprintln!("{scanner} is not installed: {family:?} left out");
            continue;
        }
        let dir = base.join(family.config_name());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("stock")).expect("bench dir");
        let service = Service { n, grace_ms };
        let (one, all) = bench_family(&bin, &dir, family, &service, rounds);
        let row = format!(
            "| {} | {:.0} ms | {:.0} ms | {:.2}× |\n",
            family.config_name(),
            one.as_secs_f64() * 1e3,
            all.as_secs_f64() * 1e3,
            all.as_secs_f64() / one.as_secs_f64()
        );
        print!("{row}");
        report.push_str(&row);
        let _ = std::fs::remove_dir_all(&dir);
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
    None,
    S6,
    Runit,
}

impl Family {
    fn named(name: &str) -> Option<Family> {
        match name {
            "none" => Some(Family::None),
            "s6" => Some(Family::S6),
            "runit" => Some(Family::Runit),
            _ => None,
        }
    }

    fn config_name(self) -> &'static str {
        match self {
            Family::None => "none",
            Family::S6 => "s6",
            Family::Runit => "runit",
        }
    }

    fn scanner(self) -> Option<&'static str> {
        match self {
            Family::None => None,
            Family::S6 => Some("s6-svscan"),
            Family::Runit => Some("runsvdir"),
        }
    }

    /// The pid of the service at `dir`, if its supervisor says it is up.
    fn service_pid(self, dir: &Path) -> Option<u32> {
        let (prog, args): (&str, &[&str]) = match self {
            Family::None => return None,
            Family::S6 => ("s6-svstat", &["-o", "up,pid"]),
            Family::Runit => ("sv", &["status"]),
        };
        let out = Command::new(prog)
            .args(args)
            .arg(dir)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        match self {
            Family::None => None,
            Family::S6 => {
                let mut f = text.split_whitespace();
                (f.next()? == "true").then_some(())?;
                f.next()?.parse().ok()
            }
            Family::Runit => {
                let rest = text.strip_prefix("run: ")?;
                rest.split("(pid ").nth(1)?.split(')').next()?.parse().ok()
            }
        }
    }
}

fn name(i: usize) -> String {
    format!("svc{i:02}")
}

/// The services of a run: how many, and how long each takes to shut down.
struct Service {
    n: usize,
    grace_ms: usize,
}

/// Writes `run` of service `i`; `version` makes its content new.
fn write_service(root: &Path, service: &Service, i: usize, version: &str) {
    let dir = root.join("stock").join(name(i));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let run = dir.join("run");
    let body = if service.grace_ms == 0 {
        "exec sleep 100000\n".to_string()
    } else {
        format!(
            "sleep 100000 &\ntrap 'kill $!; sleep {}; exit 0' TERM\nwait\n",
            service.grace_ms as f64 / 1000.0
        )
    };
    std::fs::write(&run, format!("#!/bin/sh\n# {version}\n{body}")).expect("write run");
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
}

/// Runs a commit on `root`; its wall time.
fn commit(bin: &Path, root: &Path) -> Duration {
    let start = Instant::now();
    let out = Command::new(bin)
        .arg("--root")
        .arg(root)
        .arg("commit")
        .stdin(Stdio::null())
        .output()
        .expect("run svcdir-update");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "commit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// Waits until services `0..k` are up with pids other than `before`'s;
/// returns their pids.
fn wait_new_pids(
    family: Family,
    root: &Path,
    k: usize,
    before: &[Option<u32>],
) -> Vec<Option<u32>> {
    let deadline = Instant::now() + REACT;
    let mut pids = before.to_vec();
    for (i, pid) in pids.iter_mut().enumerate().take(k) {
        let dir = root.join("service").join(name(i));
        loop {
            let now = family.service_pid(&dir);
            if now.is_some() && now != before[i] {
                *pid = now;
                break;
            }
            assert!(Instant::now() < deadline, "{} did not come up", name(i));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    pids
}
/// Medians of (commit restarting 1, commit restarting all of `service`).
fn bench_family(
    bin: &Path,
    root: &Path,
    family: Family,
    service: &Service,
    rounds: usize,
) -> (Duration, Duration) {
    let n = service.n;
    std::fs::write(
        root.join("config.yaml"),
        format!("supervisor: {}\nstop_timeout: 10\n", family.config_name()),
    )
    .expect("config");
    for i in 0..n {
        write_service(root, service, i, "start");
    }
    commit(bin, root);
    let scanner = family
        .scanner()
        .map(|program| Scanner::start(root, program, &[]));
    let wait = |k: usize, before: &[Option<u32>]| match scanner {
        Some(_) => wait_new_pids(family, root, k, before),
        None => before.to_vec(),
    };
    let mut pids = wait(n, &vec![None; n]);
    let (mut one, mut all) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // A/B interleaved, and alternating which goes first.
        let order = if round % 2 == 0 { [1, n] } else { [n, 1] };
        for k in order {
            for i in 0..k {
                write_service(root, service, i, &format!("round {round}, {k} changed"));
            }
            let took = commit(bin, root);
            pids = wait(k, &pids);
            if k == 1 { &mut one } else { &mut all }.push(took);
        }
    }
    drop(scanner);
    eprintln!("{family:?}: restarting 1: {one:?}; restarting {n}: {all:?}");
    (median(&mut one), median(&mut all))
}
