//! `cargo bench`: svcdir-update's commit against the scripts a user would
//! otherwise write, on the same generated trees, in the same run.
//!
//! For each N (services of ~8 files: run, finish, log/run, env/*, and a
//! 64 KiB binary-like file in 1 of 10 services) it times, A/B interleaved
//! over several rounds, and reports medians and ratios to the floor (a bare
//! walk that lstat()s every stock entry):
//! ours — first commit, no-op commit, commit with K changed services,
//! commit --changed naming the one changed file (K=1), rollback; theirs — `cp -a` + syncfs + symlink swap, `rsync -a
//! --link-dest` + syncfs + symlink swap. Peak RSS of ours comes from GNU
//! time. Trees are never deleted between timed runs (on a journal-less ext4
//! a large deletion slows file creation for minutes); all is removed at the
//! end.

//!
//! Environment: `BENCH_SIZES=100,1000,10000` (default), `BENCH_ROUNDS=5`,
//! `BENCH_DIR=/var/tmp/svcdir-bench`, `BENCH_OUT=FILE` to also write the
//! markdown table there.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
// Tests and benches report to the terminal that runs them.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// A test binary has no public API: `pub` only shares helpers between its modules.
#![allow(unreachable_pub, missing_docs)]
// The 80-line limit is for src/; a scenario test reads best as one story.
#![allow(clippy::too_many_lines)]

mod common;
use common::{binary, cpu_model};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let base = PathBuf::from(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp/svcdir-bench".into()),
    );
    let bin = binary();
    let mut report = String::new();
    writeln!(report, "{}", machine_line()).ok();
    for &n in &sizes {
        let dir = base.join(format!("n{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let table = bench_size(&bin, &dir, n, rounds);
        print!("{table}");
        report.push_str(&table);
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(&out, &report).expect("write BENCH_OUT");
    }
}

fn machine_line() -> String {
    let cpu = cpu_model();
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T", "/var/tmp"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "machine: {} cores, {cpu}; /var/tmp on {fs}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// Writes N services into `stock`.
fn generate(stock: &Path, n: usize) -> (usize, usize) {
    let (mut files, mut dirs) = (0, 1);
    for i in 0..n {
        let s = stock.join(format!("svc{i:05}"));
        for d in ["log", "env"] {
            std::fs::create_dir_all(s.join(d)).expect("mkdir");
        }
        dirs += 3;
        let put = |rel: &str, body: &[u8], mode: u32| {
            let p = s.join(rel);
            std::fs::write(&p, body).expect("write");
            std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .expect("chmod");
        };
        put(
            "run",
            format!("#!/bin/sh\n# service {i}\nexec sleep 100000\n").as_bytes(),
            0o755,
        );
        put("finish", b"#!/bin/sh\nexit 0\n", 0o755);
        put("log/run", b"#!/bin/sh\nexec cat >/dev/null\n", 0o755);
        put("env/NAME", format!("svc{i}\n").as_bytes(), 0o644);
        put("env/PORT", format!("{}\n", 10000 + i).as_bytes(), 0o644);
        put("env/OPTS", b"--verbose\n", 0o644);
        put("notification-fd", b"3\n", 0o644);
        files += 7;
        if i % 10 == 0 {
            let blob: Vec<u8> = (0..65536u32)
                .map(|x| (x.wrapping_mul(2654435761) >> 13) as u8)
                .collect();
            put("blob.bin", &blob, 0o644);
            files += 1;
        }
    }
    (files, dirs)
}

fn sh(cmd: &str) -> Duration {
    let t = Instant::now();
    let st = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdout(Stdio::null())
        .status()
        .expect("sh");
    assert!(st.success(), "{cmd}");
    t.elapsed()
}

/// Runs the binary under GNU time; returns (wall, peak RSS KiB).
fn ours(bin: &Path, root: &Path, args: &[&str]) -> (Duration, u64) {
    let rss_file = root.join(".rss");
    let t = Instant::now();
    let st = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&rss_file)
        .arg(bin)
        .arg("-q")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("run svcdir-update");
    let wall = t.elapsed();
    assert!(st.success(), "svcdir-update {args:?} failed");
    let rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.trim().lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    (wall, rss)
}

fn touch_services(stock: &Path, n: usize, k: usize, round: usize) {
    for i in 0..k {
        let idx = (i * n / k.max(1) + round) % n;
        let run = stock.join(format!("svc{idx:05}/run"));
        let mut body = std::fs::read_to_string(&run).expect("read run");
        body.push_str(&format!("# round {round}\n"));
        std::fs::write(&run, body).expect("write run");
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench_size(bin: &Path, dir: &Path, n: usize, rounds: usize) -> String {
    // Our root: dir/ours/{stock,state,service,run}; the alternatives copy
    // the very same stock tree.
    let ours_root = dir.join("ours");
    let stock = ours_root.join("stock");
    std::fs::create_dir_all(&stock).expect("mkdir");
    let (files, dirs) = generate(&stock, n);
    let alt = dir.join("alt");
    std::fs::create_dir_all(&alt).expect("mkdir");
    let k10 = (n / 10).max(1);

    let mut t: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut rss: BTreeMap<&str, u64> = BTreeMap::new();
    let record = |t: &mut BTreeMap<&str, Vec<Duration>>, name: &'static str, d: Duration| {
        t.entry(name).or_default().push(d)
    };

    // Warm the page cache and the stat cache once (not timed).
    sh(&format!(
        "find {} -printf '%s %T@\\n' >/dev/null",
        stock.display()
    ));
    let (_, _) = ours(bin, &ours_root, &["commit"]);

    for round in 0..rounds {
        // floor
        record(
            &mut t,
            "floor: find -printf (lstat walk)",
            sh(&format!(
                "find {} -printf '%s %T@\\n' >/dev/null",
                stock.display()
            )),
        );
        // ours: first commit into a fresh root sharing the stock (by symlinked config)
        let fresh = dir.join(format!("first-{round}"));
        std::fs::create_dir_all(&fresh).expect("mkdir");
        std::fs::write(
            fresh.join("config.yaml"),
            format!("stock: [{}]\n", stock.display()),
        )
        .expect("config");
        let (d, r) = ours(bin, &fresh, &["commit"]);
        record(&mut t, "ours: first commit", d);
        rss.insert("ours: first commit", r);
        // cp -a + swap
        let dst = alt.join(format!("cp-{round}"));
        record(
            &mut t,
            "cp -a + syncfs + swap",
            sh(&format!(
                "cp -a {s} {d} && sync -f {d} && ln -sfn {d} {a}/.tmp-live && mv -T {a}/.tmp-live {a}/live-cp",
                s = stock.display(),
                d = dst.display(),
                a = alt.display()
            )),
        );
        // ours: no-op
        let (d, r) = ours(bin, &ours_root, &["commit"]);
        record(&mut t, "ours: no-op commit", d);
        rss.insert("ours: no-op commit", r);
        // rsync --link-dest + swap
        let prev = if round == 0 {
            alt.join("cp-0")
        } else {
            alt.join(format!("rs-{}", round - 1))
        };
        let dst = alt.join(format!("rs-{round}"));
        record(
            &mut t,
            "rsync --link-dest + syncfs + swap",
            sh(&format!(
                "rsync -a --link-dest={p} {s}/ {d}/ && sync -f {d} && ln -sfn {d} {a}/.tmp-live && mv -T {a}/.tmp-live {a}/live-rs",
                p = prev.display(),
                s = stock.display(),
                d = dst.display(),
                a = alt.display()
            )),
        );
        // ours: K = 1
        touch_services(&stock, n, 1, round);
        let (d, r) = ours(bin, &ours_root, &["commit"]);
        record(&mut t, "ours: commit, K=1 changed", d);
        rss.insert("ours: commit, K=1 changed", r);
        // ours: rollback (to the generation before)
        let (d, r) = ours(bin, &ours_root, &["rollback"]);
        record(&mut t, "ours: rollback", d);
        rss.insert("ours: rollback", r);
        // ours: K = N/10
        touch_services(&stock, n, k10, round + 1000);
        let (d, r) = ours(bin, &ours_root, &["commit"]);
        record(&mut t, "ours: commit, K=N/10 changed", d);
        rss.insert("ours: commit, K=N/10 changed", r);
        // ours: K = 1 with the hint (docs/performance.md#hints)
        touch_services(&stock, n, 1, round + 2000);
        let hint = stock.join(format!("svc{:05}/run", (round + 2000) % n));
        let hint = hint.to_str().expect("utf-8 bench path");
        let (d, r) = ours(bin, &ours_root, &["commit", "--changed", hint]);
        record(&mut t, "ours: commit --changed, K=1", d);
        rss.insert("ours: commit --changed, K=1", r);
    }

    let floor = median(
        t.get_mut("floor: find -printf (lstat walk)")
            .expect("floor"),
    );
    let cp = median(t.get_mut("cp -a + syncfs + swap").expect("cp"));
    let rs = median(t.get_mut("rsync --link-dest + syncfs + swap").expect("rs"));
    let mut out = String::new();
    writeln!(out, "\n### N = {n} services ({files} files, {dirs} directories), K = 1 and {k10}, {rounds} rounds\n").ok();
    writeln!(
        out,
        "| operation | median | × floor | cp -a ÷ this | rsync ÷ this | peak RSS |"
    )
    .ok();
    writeln!(out, "|---|---:|---:|---:|---:|---:|").ok();
    let order = [
        "floor: find -printf (lstat walk)",
        "ours: no-op commit",
        "ours: commit, K=1 changed",
        "ours: commit --changed, K=1",
        "ours: commit, K=N/10 changed",
        "ours: rollback",
        "ours: first commit",
        "cp -a + syncfs + swap",
        "rsync --link-dest + syncfs + swap",
    ];
    for name in order {
        let m = median(t.get_mut(name).expect("timed"));
        let rss = rss.get(name).map_or_else(
            || "".to_string(),
            |k| format!("{:.1} MiB", *k as f64 / 1024.0),
        );
        writeln!(
            out,
            "| {name} | {:.3} s | {:.2} | {:.1} | {:.1} | {rss} |",
            m.as_secs_f64(),
            m.as_secs_f64() / floor.as_secs_f64(),
            cp.as_secs_f64() / m.as_secs_f64(),
            rs.as_secs_f64() / m.as_secs_f64(),
        )
        .ok();
    }
    out
}
