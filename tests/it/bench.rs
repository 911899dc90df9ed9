//! A throwaway measurement behind `--ignored` (not a test of behaviour):
//! making N freshly staged files durable by fsync of every file and
//! directory (store::Durability::PerFile) versus one syncfs
//! (Durability::SyncFs), for N = 10, 1000, 10000. Interleaved A/B runs,
//! medians, nothing deleted between timed runs (docs/performance.md). Results and the
//! chosen threshold are in docs/durability.md.
//!
//! `cargo test --release --test it bench_ -- --ignored --nocapture`

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Files per directory, like a small service directory.
const PER_DIR: usize = 8;

/// Writes `n` 200-byte files in directories of [`PER_DIR`] under `base`;
/// with `per_file`, fsyncs each file and each directory bottom-up.
fn stage(base: &Path, n: usize, per_file: bool) {
    std::fs::create_dir(base).unwrap();
    let payload = [b'x'; 200];
    for d in 0..n.div_ceil(PER_DIR) {
        let dir = base.join(format!("d{d}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..PER_DIR.min(n - d * PER_DIR) {
            let mut file = std::fs::File::create(dir.join(format!("f{f}"))).unwrap();
            file.write_all(&payload).unwrap();
            if per_file {
                file.sync_all().unwrap();
            }
        }
        if per_file {
            std::fs::File::open(&dir).unwrap().sync_all().unwrap();
        }
    }
    let dir = std::fs::File::open(base).unwrap();
    if per_file {
        dir.sync_all().unwrap();
    } else {
        rustix::fs::syncfs(&dir).unwrap();
    }
}

/// Leaves `mb` MiB of unrelated dirty data in the page cache (another
/// package manager's writes), which a syncfs must flush too.
fn dirty(base: &Path, mb: usize) {
    if mb == 0 {
        return;
    }
    let mut file = std::fs::File::create(base).unwrap();
    let chunk = vec![7u8; 1 << 20];
    for _ in 0..mb {
        file.write_all(&chunk).unwrap();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
#[ignore = "measurement, not a test; see docs/durability.md"]
fn bench_per_file_fsync_vs_syncfs() {
    let tmp = tempfile::Builder::new()
        .prefix("svcdir-bench-")
        .tempdir()
        .unwrap();
    println!("files  unrelated dirty MiB  per-file fsync (median)  syncfs (median)  ratio");
    for (n, reps, mb) in [
        (10, 9, 0),
        (100, 7, 0),
        (1000, 5, 0),
        (10_000, 3, 0),
        (10, 7, 64),
        (100, 7, 64),
        (1000, 5, 64),
    ] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for r in 0..reps {
            // Interleave A and B; alternate which goes first.
            for per_file in if r % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            } {
                let dir = tmp.path().join(format!("{n}-{mb}-{r}-{per_file}"));
                dirty(&tmp.path().join(format!("dirty-{n}-{r}-{per_file}")), mb);
                let t = Instant::now();
                stage(&dir, n, per_file);
                let took = t.elapsed();
                if per_file { &mut a } else { &mut b }.push(took);
            }
        }
        let (ma, mb_) = (median(a), median(b));
        let ratio = ma.as_secs_f64() / mb_.as_secs_f64();
        println!(
            "{n:>6}  {mb:>19}  {:>23}  {:>15}  {ratio:.2}",
            format!("{ma:.1?}"),
            format!("{mb_:.1?}"),
        );
    }
}
