//! `cargo bench`: svcdir-update's commands against the scripts a user would
//! otherwise write and the walks they cannot beat, on the same generated
//! trees, in the same run.
//!
//! For each N (services of ~8 files: run, finish, log/run, env/*, and a
//! 64 KiB binary-like file in 1 of 10 services) it times, A/B interleaved
//! over several rounds, and reports medians and ratios to the floor (a bare
//! walk that lstat()s every stock entry):
//! ours — first commit, no-op commit, commit with K changed services,
//! commit --changed naming the one changed file (K=1), rollback; theirs — `cp -a` + syncfs + symlink swap, `rsync -a
//! --link-dest` + syncfs + symlink swap. Then, with at least 10 generations
//! present: plan, diff, status, list, history, and verify against `tar` of
//! the same live service trees. Then the first commit against `cp -a` on
//! loop images (ext4, btrfs, xfs) the bench makes, and at the very end gc
//! of many generations against a walk of the state it reads. Peak RSS of
//! every command of ours comes from GNU time. Trees are never deleted
//! between timed runs (on a journal-less ext4 a large deletion slows file
//! creation for minutes), which is why gc runs last; all is removed at the
//! end. docs/performance.md#how-to-reproduce lists the targets marked.
//!
//! Environment: `BENCH_SIZES=100,1000,10000` (default), `BENCH_ROUNDS=5`,
//! `BENCH_DIR=/var/tmp/svcdir-bench`, `BENCH_OUT=FILE` to also write the
//! markdown tables there, `BENCH_FS=ext4,btrfs,xfs` (loop images; empty for
//! none), `BENCH_LIST_GENERATIONS=10`, `BENCH_GC_GENERATIONS` (100 at
//! N ≤ 10,000, else 10).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
// Tests and benches report to the terminal that runs them.
#![allow(clippy::print_stdout, clippy::print_stderr)]
// A test binary has no public API: `pub` only shares helpers between its modules.
#![allow(unreachable_pub, missing_docs)]
// The 80-line limit is for src/; a scenario test reads best as one story.
#![allow(clippy::too_many_lines)]

mod common;
mod loopfs;
use common::{binary, cpu_model};
use loopfs::LoopFs;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FLOOR: &str = "floor: find -printf (lstat walk)";
const FIRST: &str = "ours: first commit";
const CP: &str = "cp -a + syncfs + swap";
const RSYNC: &str = "rsync --link-dest + syncfs + swap";
const NOOP: &str = "ours: no-op commit";
const K1: &str = "ours: commit, K=1 changed";
const HINTED: &str = "ours: commit --changed, K=1";
const HINTED_AFTER_K10: &str = "ours: commit --changed, K=1, right after K=N/10";
const K10: &str = "ours: commit, K=N/10 changed";
const ROLLBACK: &str = "ours: rollback";
const PLAN: &str = "ours: plan";
const DIFF: &str = "ours: diff (stock vs live)";
const STATUS: &str = "ours: status";
const LIST: &str = "ours: list";
const HISTORY: &str = "ours: history";
const VERIFY: &str = "ours: verify (live)";
const TAR: &str = "peer: tar -ch of the live services, to cat";
const GC: &str = "ours: gc --keep 2";
const STATE_WALK: &str = "peer: find -printf of the state gc reads";

/// The knobs, from the environment.
struct Opts {
    rounds: usize,
    list_generations: usize,
    gc_generations: Option<usize>,
    fs: Vec<String>,
}

fn env_num(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok())
}

fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "100,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let opts = Opts {
        rounds: env_num("BENCH_ROUNDS").unwrap_or(5).max(1),
        list_generations: env_num("BENCH_LIST_GENERATIONS").unwrap_or(10),
        gc_generations: env_num("BENCH_GC_GENERATIONS"),
        fs: std::env::var("BENCH_FS")
            .unwrap_or_else(|_| "ext4,btrfs,xfs".into())
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    let base = PathBuf::from(
        std::env::var("BENCH_DIR").unwrap_or_else(|_| "/var/tmp/svcdir-bench".into()),
    );
    progress("building the release binary");
    let bin = binary();
    let mut report = String::new();
    writeln!(report, "{}", machine_line()).ok();
    let mut done = Vec::new();
    let mut trees = RemoveOnDrop(Vec::new());
    for &n in &sizes {
        let dir = base.join(format!("n{n}"));
        if dir.exists() {
            progress(&format!(
                "removing {} left by an earlier run",
                dir.display()
            ));
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::fs::create_dir_all(&dir).expect("bench dir");
        trees.0.push(dir.clone());
        done.push(bench_size(&bin, &base, &dir, n, &opts));
    }
    // gc deletes; it runs after every other timed run (see the header).
    for size in &mut done {
        gc_phase(&bin, size, &opts);
    }
    for size in &done {
        report.push_str(&render(size));
    }
    print!("{report}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(&out, &report).expect("write BENCH_OUT");
    }
    drop(trees);
}

/// The trees of every N, removed at the end, also when the bench panics.
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn machine_line() -> String {
    let cpu = cpu_model();
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T", "/var/tmp"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_string();
    format!(
        "machine: {} cores, {cpu}; /var/tmp on {fs}; load average {load} at the start\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
}

/// A line on stderr: seconds since the start, what comes next, the load.
fn progress(what: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let since = START.get_or_init(Instant::now).elapsed().as_secs();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?").to_string();
    eprintln!("bench: {since:>5} s  {what} (load {load})");
}

/// Writes N services into `stock`, on all cores; returns (files, dirs).
fn generate(stock: &Path, n: usize) -> (usize, usize) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |t| t.get())
        .min(8);
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for i in (t..n).step_by(threads) {
                    write_service(stock, i);
                }
            });
        }
    });
    let sync = Command::new("sync").arg("-f").arg(stock).status();
    assert!(sync.is_ok_and(|s| s.success()), "sync -f {stock:?}");
    (7 * n + n.div_ceil(10), 1 + 3 * n)
}

fn write_service(stock: &Path, i: usize) {
    let s = stock.join(format!("svc{i:05}"));
    for d in ["log", "env"] {
        std::fs::create_dir_all(s.join(d)).expect("mkdir");
    }
    let put = |rel: &str, body: &[u8], mode: u32| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(s.join(rel))
            .expect("create");
        f.write_all(body).expect("write");
        // The umask may have taken bits off.
        f.set_permissions(std::fs::Permissions::from_mode(mode))
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
    if i % 10 == 0 {
        let blob: Vec<u8> = (0..65536u32)
            .map(|x| (x.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        put("blob.bin", &blob, 0o644);
    }
}

fn sh(cmd: &str) -> Duration {
    try_sh(cmd).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `cmd` with `sh -c`; its wall time, or the failure as a sentence.
fn try_sh(cmd: &str) -> Result<Duration, String> {
    let t = Instant::now();
    let st = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run sh: {e}"))?;
    if st.success() {
        Ok(t.elapsed())
    } else {
        Err(format!("{cmd}: {st}"))
    }
}

fn walk(path: &Path) -> Duration {
    sh(&format!(
        "find {} -printf '%s %T@\\n' >/dev/null",
        path.display()
    ))
}

/// Runs the binary under GNU time; returns (wall, peak RSS KiB).
fn ours(bin: &Path, root: &Path, args: &[&str]) -> (Duration, u64) {
    try_ours(bin, root, args).unwrap_or_else(|e| panic!("{e}"))
}

/// [`ours`], the failure as a sentence.
fn try_ours(bin: &Path, root: &Path, args: &[&str]) -> Result<(Duration, u64), String> {
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
        .map_err(|e| format!("cannot run /usr/bin/time: {e}"))?;
    let wall = t.elapsed();
    if !st.success() {
        return Err(format!("svcdir-update {args:?} in {root:?} failed: {st}"));
    }
    let rss = std::fs::read_to_string(&rss_file)
        .ok()
        .and_then(|s| s.trim().lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    Ok((wall, rss))
}

/// Wall times (every round) and the largest peak RSS, by row.
#[derive(Default)]
struct Times {
    t: BTreeMap<String, Vec<Duration>>,
    rss: BTreeMap<String, u64>,
}

impl Times {
    fn add(&mut self, name: &str, d: Duration) {
        self.t.entry(name.to_string()).or_default().push(d);
    }

    fn ours(&mut self, name: &str, bin: &Path, root: &Path, args: &[&str]) {
        self.try_ours(name, bin, root, args)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    fn try_ours(
        &mut self,
        name: &str,
        bin: &Path,
        root: &Path,
        args: &[&str],
    ) -> Result<(), String> {
        let (d, r) = try_ours(bin, root, args)?;
        self.add(name, d);
        let max = self.rss.entry(name.to_string()).or_default();
        *max = (*max).max(r);
        Ok(())
    }

    fn median(&self, name: &str) -> Option<Duration> {
        let mut v = self.t.get(name)?.clone();
        v.sort();
        Some(v[v.len() / 2])
    }

    fn rss(&self, name: &str) -> Option<u64> {
        self.rss.get(name).copied()
    }
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

/// Changes one service's `run` and commits naming it: one new generation.
fn hinted_commit(times: &mut Times, row: &str, bin: &Path, root: &Path, n: usize, seq: usize) {
    let stock = root.join("stock");
    touch_services(&stock, n, 1, seq);
    let hint = stock.join(format!("svc{:05}/run", seq % n));
    let hint = hint.to_str().expect("utf-8 bench path");
    times.ours(row, bin, root, &["commit", "--changed", hint]);
}

/// A first commit against `cp -a` on one file system: its walk, ours, cp.
struct FsRow {
    kind: String,
    result: Result<Times, String>,
}

/// What one N measured.
struct Size {
    n: usize,
    files: usize,
    dirs: usize,
    k10: usize,
    rounds: usize,
    dir: PathBuf,
    /// Generations present while status, list, … ran.
    generations: usize,
    /// Generations made so far (gc's row adds more).
    made: usize,
    /// Sequence number of the next hinted commit's change.
    seq: usize,
    times: Times,
    fs: Vec<FsRow>,
    /// gc: generations present before it, and why that many.
    gc: Option<(usize, String)>,
}

fn bench_size(bin: &Path, base: &Path, dir: &Path, n: usize, opts: &Opts) -> Size {
    let rounds = opts.rounds;
    // Our root: dir/ours/{stock,state,service,run}; the alternatives copy
    // the very same stock tree.
    let ours_root = dir.join("ours");
    let stock = ours_root.join("stock");
    std::fs::create_dir_all(&stock).expect("mkdir");
    progress(&format!("N = {n}: generating the stock"));
    let (files, dirs) = generate(&stock, n);
    let alt = dir.join("alt");
    std::fs::create_dir_all(&alt).expect("mkdir");
    let k10 = (n / 10).max(1);
    let mut t = Times::default();

    // Warm the page cache and the stat cache once (not timed).
    walk(&stock);
    progress(&format!("N = {n}: first commit (not timed)"));
    let (_, _) = ours(bin, &ours_root, &["commit"]);
    let mut made = 1;

    for round in 0..rounds {
        progress(&format!("N = {n}: commits, round {}/{rounds}", round + 1));
        t.add(FLOOR, walk(&stock));
        // ours: first commit into a fresh root sharing the stock (by its config)
        let fresh = dir.join(format!("first-{round}"));
        std::fs::create_dir_all(&fresh).expect("mkdir");
        std::fs::write(
            fresh.join("config.yaml"),
            format!("stock: [{}]\n", stock.display()),
        )
        .expect("config");
        t.ours(FIRST, bin, &fresh, &["commit"]);
        t.add(CP, sh_ok(cp_swap(&stock, &alt, round)));
        t.ours(NOOP, bin, &ours_root, &["commit"]);
        // rsync --link-dest + swap
        let prev = if round == 0 {
            alt.join("cp-0")
        } else {
            alt.join(format!("rs-{}", round - 1))
        };
        let dst = alt.join(format!("rs-{round}"));
        t.add(
            RSYNC,
            sh(&format!(
                "rsync -a --link-dest={p} {s}/ {d}/ && sync -f {d} && ln -sfn {d} {a}/.tmp-live && mv -T {a}/.tmp-live {a}/live-rs",
                p = prev.display(),
                s = stock.display(),
                d = dst.display(),
                a = alt.display()
            )),
        );
        touch_services(&stock, n, 1, round);
        t.ours(K1, bin, &ours_root, &["commit"]);
        // to the generation before
        t.ours(ROLLBACK, bin, &ours_root, &["rollback"]);
        touch_services(&stock, n, k10, round + 1000);
        t.ours(K10, bin, &ours_root, &["commit"]);
        // K = 1 with the hint (docs/performance.md#hints). The first one
        // also remakes the links the K = N/10 commit changed (the spare
        // generation is the one before it, docs/design.md#dormant-generations);
        // the second is the steady state of back-to-back package hooks.
        hinted_commit(&mut t, HINTED_AFTER_K10, bin, &ours_root, n, round + 2000);
        hinted_commit(&mut t, HINTED, bin, &ours_root, n, round + 4000);
        made += 4;
    }

    // The read-only commands, with at least BENCH_LIST_GENERATIONS
    // generations (the extra hinted commits are not timed).
    let mut seq = 3000;
    let mut scratch = Times::default();
    while made < opts.list_generations {
        hinted_commit(&mut scratch, HINTED, bin, &ours_root, n, seq);
        seq += 1;
        made += 1;
    }
    let scan_dir = ours_root.join("service");
    for round in 0..rounds {
        progress(&format!(
            "N = {n}: read-only commands, round {}/{rounds}",
            round + 1
        ));
        t.add(FLOOR, walk(&stock));
        t.ours(PLAN, bin, &ours_root, &["plan"]);
        t.ours(DIFF, bin, &ours_root, &["diff"]);
        t.ours(STATUS, bin, &ours_root, &["status"]);
        t.ours(LIST, bin, &ours_root, &["list"]);
        t.ours(HISTORY, bin, &ours_root, &["history"]);
        // What verify reads: every file of every live service, which the
        // scan directory's links lead to.
        t.add(
            TAR,
            sh(&format!(
                "tar -chf - -C {} . | cat >/dev/null",
                scan_dir.display()
            )),
        );
        t.ours(VERIFY, bin, &ours_root, &["verify"]);
    }

    let mut fs = Vec::new();
    for kind in &opts.fs {
        progress(&format!("N = {n}: first commit on a {kind} loop image"));
        let result = bench_fs(bin, base, kind, n, rounds);
        if let Err(why) = &result {
            eprintln!("bench: N = {n}: the {kind} row is skipped: {why}");
        }
        fs.push(FsRow {
            kind: kind.clone(),
            result,
        });
    }
    Size {
        n,
        files,
        dirs,
        k10,
        rounds,
        dir: dir.to_path_buf(),
        generations: made,
        made,
        seq,
        times: t,
        fs,
        gc: None,
    }
}

/// `cp -a` (coreutils' default `--reflink=auto`) + syncfs + symlink swap.
fn cp_swap(stock: &Path, alt: &Path, round: usize) -> Result<Duration, String> {
    let dst = alt.join(format!("cp-{round}"));
    try_sh(&format!(
        "cp -a {s} {d} && sync -f {d} && ln -sfn {d} {a}/.tmp-live && mv -T {a}/.tmp-live {a}/live-cp",
        s = stock.display(),
        d = dst.display(),
        a = alt.display()
    ))
}

fn sh_ok(r: Result<Duration, String>) -> Duration {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// The first commit, with its state on a loop image of `kind` holding the
/// stock, against `cp -a` of that stock on the same image.
fn bench_fs(bin: &Path, base: &Path, kind: &str, n: usize, rounds: usize) -> Result<Times, String> {
    // ≈ 50 KiB a service on ext4: the stock, then one copy per round for
    // each side, with room to spare; the image is sparse.
    let bytes = (n as u64) * (2 + 2 * rounds as u64) * 96 * 1024 + (1 << 30);
    let image = LoopFs::make(kind, base, &format!("n{n}"), bytes)?;
    let mnt = image.path();
    let root = mnt.join("ours");
    let stock = root.join("stock");
    let alt = mnt.join("alt");
    std::fs::create_dir_all(&stock).map_err(|e| format!("mkdir on the image: {e}"))?;
    std::fs::create_dir_all(&alt).map_err(|e| format!("mkdir on the image: {e}"))?;
    generate(&stock, n);
    walk(&stock);
    let mut t = Times::default();
    for round in 0..rounds {
        t.add(FLOOR, walk(&stock));
        let fresh = mnt.join(format!("first-{round}"));
        std::fs::create_dir_all(&fresh).map_err(|e| format!("mkdir on the image: {e}"))?;
        std::fs::write(
            fresh.join("config.yaml"),
            format!("stock: [{}]\n", stock.display()),
        )
        .map_err(|e| format!("config on the image: {e}"))?;
        t.try_ours(FIRST, bin, &fresh, &["commit"])?;
        t.add(CP, cp_swap(&stock, &alt, round)?);
    }
    Ok(t)
}

/// gc of many generations against a walk of the state it reads; one run
/// (it deletes what it measures).
fn gc_phase(bin: &Path, size: &mut Size, opts: &Opts) {
    let n = size.n;
    let (want, why) = match opts.gc_generations {
        Some(g) => (g, "BENCH_GC_GENERATIONS".to_string()),
        None if n <= 10_000 => (100, "the default at N ≤ 10,000".to_string()),
        None => (
            10,
            "the default above N = 10,000: each generation is a hinted commit of N \
             entries; BENCH_GC_GENERATIONS=100 measures 100"
                .to_string(),
        ),
    };
    let root = size.dir.join("ours");
    progress(&format!(
        "N = {n}: {} hinted commits to reach {want} generations for gc",
        want.saturating_sub(size.made)
    ));
    let mut scratch = Times::default();
    while size.made < want {
        hinted_commit(&mut scratch, HINTED, bin, &root, n, size.seq);
        size.seq += 1;
        size.made += 1;
    }
    let state = root.join("state");
    walk(&state);
    progress(&format!("N = {n}: gc of {} generations", size.made));
    size.times.add(STATE_WALK, walk(&state));
    size.times.ours(GC, bin, &root, &["gc", "--keep", "2"]);
    size.gc = Some((size.made, why));
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// The operations table (the columns of the earlier tables), the loop
/// images, the targets.
fn render(size: &Size) -> String {
    let Size {
        n,
        files,
        dirs,
        k10,
        rounds,
        ref times,
        ..
    } = *size;
    let floor = times.median(FLOOR).expect("floor");
    let cp = times.median(CP).expect("cp");
    let rs = times.median(RSYNC).expect("rs");
    let mut out = String::new();
    writeln!(out, "\n### N = {n} services ({files} files, {dirs} directories), K = 1 and {k10}, {rounds} rounds\n").ok();
    writeln!(
        out,
        "plan, diff, status, list, history and verify ran with {} generations present; \
         gc once, last, with {}.\n",
        size.generations,
        size.gc
            .as_ref()
            .map_or("no".to_string(), |(g, why)| format!("{g} ({why})"))
    )
    .ok();
    writeln!(
        out,
        "| operation | median | × floor | cp -a ÷ this | rsync ÷ this | peak RSS |"
    )
    .ok();
    writeln!(out, "|---|---:|---:|---:|---:|---:|").ok();
    let order = [
        FLOOR,
        NOOP,
        K1,
        HINTED,
        HINTED_AFTER_K10,
        K10,
        ROLLBACK,
        FIRST,
        CP,
        RSYNC,
        PLAN,
        DIFF,
        STATUS,
        LIST,
        HISTORY,
        VERIFY,
        TAR,
        GC,
        STATE_WALK,
    ];
    for name in order {
        let Some(m) = times.median(name) else {
            continue;
        };
        let rss = times.rss(name).map_or_else(String::new, mib);
        writeln!(
            out,
            "| {name} | {:.3} s | {:.2} | {:.1} | {:.1} | {rss} |",
            secs(m),
            secs(m) / secs(floor),
            secs(cp) / secs(m),
            secs(rs) / secs(m),
        )
        .ok();
    }

    // Each against the peer that does the same work.
    writeln!(
        out,
        "\n| operation | median | peer | peer median | ÷ peer |"
    )
    .ok();
    writeln!(out, "|---|---:|---|---:|---:|").ok();
    let mut pairs = vec![
        ("/var/tmp".to_string(), FIRST, CP, times),
        (String::new(), VERIFY, TAR, times),
        (String::new(), GC, STATE_WALK, times),
    ];
    for row in &size.fs {
        if let Ok(t) = &row.result {
            pairs.push((format!("{} loop image", row.kind), FIRST, CP, t));
        }
    }
    for (place, ours_row, peer, t) in &pairs {
        let (Some(a), Some(b)) = (t.median(ours_row), t.median(peer)) else {
            continue;
        };
        let on = if place.is_empty() {
            String::new()
        } else {
            format!(", {place}")
        };
        writeln!(
            out,
            "| {ours_row}{on} | {:.3} s | {peer} | {:.3} s | {:.2} |",
            secs(a),
            secs(b),
            secs(a) / secs(b)
        )
        .ok();
    }

    if !size.fs.is_empty() {
        writeln!(out, "\nFirst commit on loop images made by the bench (stock, state and copies on the image), {rounds} rounds:\n").ok();
        writeln!(
            out,
            "| file system | floor | ours: first commit | × floor | cp -a + syncfs + swap | ÷ cp | peak RSS |"
        )
        .ok();
        writeln!(out, "|---|---:|---:|---:|---:|---:|---:|").ok();
        for row in &size.fs {
            match &row.result {
                Ok(t) => {
                    let (f, o, c) = (
                        t.median(FLOOR).expect("floor"),
                        t.median(FIRST).expect("first"),
                        t.median(CP).expect("cp"),
                    );
                    writeln!(
                        out,
                        "| {} (loop) | {:.3} s | {:.3} s | {:.2} | {:.3} s | {:.2} | {} |",
                        row.kind,
                        secs(f),
                        secs(o),
                        secs(o) / secs(f),
                        secs(c),
                        secs(o) / secs(c),
                        t.rss(FIRST).map_or_else(String::new, mib)
                    )
                    .ok();
                }
                Err(why) => {
                    writeln!(out, "| {} (loop) | skipped: {why} | | | | | |", row.kind).ok();
                }
            }
        }
    }
    out.push_str(&targets(size));
    out
}

/// target, measured, whether it holds (None: not measured).
type Row = (String, String, Option<bool>);

/// The targets at this N: target | measured | holds.
fn targets(size: &Size) -> String {
    let t = &size.times;
    let floor = t.median(FLOOR).expect("floor");
    let mut rows: Vec<Row> = Vec::new();
    let ratio = |rows: &mut Vec<Row>,
                 target: &str,
                 a: Option<Duration>,
                 b: Duration,
                 limit: f64,
                 of: &str| {
        if let Some(a) = a {
            let r = secs(a) / secs(b);
            rows.push((
                target.to_string(),
                format!("{r:.2} × {of}"),
                Some(r <= limit),
            ));
        }
    };
    ratio(
        &mut rows,
        "no-op commit ≤ 1.2 × floor",
        t.median(NOOP),
        floor,
        1.2,
        "floor",
    );
    ratio(
        &mut rows,
        "commit, K=1 ≤ 1.5 × floor",
        t.median(K1),
        floor,
        1.5,
        "floor",
    );
    ratio(
        &mut rows,
        "commit --changed, K=1 ≤ 0.1 × floor (set at N = 10,000)",
        t.median(HINTED),
        floor,
        0.1,
        "floor",
    );
    if let Some(cp) = t.median(CP) {
        ratio(
            &mut rows,
            "first commit ≤ 0.7 × cp -a + syncfs + swap (/var/tmp)",
            t.median(FIRST),
            cp,
            0.7,
            "cp",
        );
    }
    for row in &size.fs {
        let limit = if row.kind == "ext4" { 0.7 } else { 0.3 };
        match &row.result {
            Ok(fs) => ratio(
                &mut rows,
                &format!(
                    "first commit ≤ {limit} × cp -a + syncfs + swap ({} loop)",
                    row.kind
                ),
                fs.median(FIRST),
                fs.median(CP).expect("cp"),
                limit,
                "cp",
            ),
            Err(why) => rows.push((
                format!(
                    "first commit ≤ {limit} × cp -a + syncfs + swap ({} loop)",
                    row.kind
                ),
                format!("skipped: {why}"),
                None,
            )),
        }
    }
    for (name, what) in [(STATUS, "status"), (LIST, "list")] {
        if let Some(d) = t.median(name) {
            rows.push((
                format!("{what} < 1 s ({} generations)", size.generations),
                format!("{:.3} s", secs(d)),
                Some(secs(d) < 1.0),
            ));
        }
    }
    if let Some(tar) = t.median(TAR) {
        ratio(
            &mut rows,
            "verify ≤ 2 × tar of what it reads",
            t.median(VERIFY),
            tar,
            2.0,
            "tar",
        );
    }
    if let Some(w) = t.median(STATE_WALK) {
        ratio(
            &mut rows,
            "gc ≤ 2 × a walk of the state it reads",
            t.median(GC),
            w,
            2.0,
            "walk",
        );
    }
    // Every command of ours, the loop images' first commits included.
    let mut all: Vec<(String, u64)> = t.rss.iter().map(|(k, v)| (k.clone(), *v)).collect();
    for row in &size.fs {
        if let Ok(fs) = &row.result {
            all.extend(
                fs.rss
                    .iter()
                    .map(|(k, v)| (format!("{k}, {} loop", row.kind), *v)),
            );
        }
    }
    if let Some((name, max)) = all.iter().max_by_key(|(_, v)| *v) {
        rows.push((
            "peak RSS ≤ 256 MiB, every command".to_string(),
            format!("{} at most ({name})", mib(*max)),
            Some(*max <= 256 * 1024),
        ));
    }
    let mut out = format!("\nTargets at N = {}:\n\n", size.n);
    writeln!(out, "| target | measured | holds |").ok();
    writeln!(out, "|---|---|---|").ok();
    for (target, measured, holds) in rows {
        let holds = match holds {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        writeln!(out, "| {target} | {measured} | {holds} |").ok();
    }
    out
}
