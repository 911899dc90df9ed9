//! Random kill: SIGKILL a commit of a 200-service tree at a random
//! moment, 300 times, and prove after each `recover` that live is exactly
//! the old or the new content. The delay before the kill is the random
//! variable under test, not a synchronisation: it is drawn from 0 to a bit
//! more than a measured commit's duration.

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::invariant::*;

const SERVICES: usize = 200;
const ITERATIONS: usize = 300;

fn iterations() -> usize {
    std::env::var("SVCDIR_TEST_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(ITERATIONS)
}

/// xorshift64*: a tiny deterministic generator; the seed is printed so a
/// failure can be replayed with SVCDIR_TEST_SEED.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Changes 1–3 random services; now and then adds or removes one.
fn change(root: &Root, rng: &mut Rng, round: usize) {
    for _ in 0..=rng.below(3) {
        let i = rng.below(SERVICES as u64);
        root.add_service(&format!("svc{i:03}"), &format!("round {round}"));
    }
    match rng.below(10) {
        0 => root.add_service(&format!("new{round:03}"), "added"),
        1 => {
            let i = rng.below(SERVICES as u64);
            #[allow(clippy::disallowed_methods)] // the stock, not the state
            let _ = std::fs::remove_dir_all(root.stock().join(format!("svc{i:03}")));
        }
        _ => {}
    }
}

#[test]
fn sigkill_at_a_random_moment_of_a_commit_always_recovers_to_old_or_new() {
    let seed = std::env::var("SVCDIR_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("random kill: seed {seed}");
    let mut rng = Rng(seed);
    let root = Root::empty();
    for i in 0..SERVICES {
        root.add_service(&format!("svc{i:03}"), "v0");
        root.write_stock(
            &format!("svc{i:03}/env/NAME"),
            &format!("svc{i:03}\n"),
            0o644,
        );
    }
    root.commit().ok();

    // How long a commit of a few changed services takes here: the median of
    // the last five, re-measured every 20 rounds (a shared 2-core machine's
    // speed drifts; a stale window would put every kill before the switch).
    let mut took: Vec<Duration> = Vec::new();
    let mut measure = |root: &Root, rng: &mut Rng, round: usize| {
        change(root, rng, round);
        let t = Instant::now();
        root.commit().ok();
        took.push(t.elapsed());
        let mut last: Vec<Duration> = took.iter().rev().take(5).copied().collect();
        last.sort();
        last[last.len() / 2]
    };
    let mut median = Duration::ZERO;
    for k in 0..5 {
        median = measure(&root, &mut rng, 10_000 + k);
    }
    println!("random kill: median commit {median:?}");

    let mut live = live_contents(&root);
    let (mut before, mut after, mut completed) = (0, 0, 0);
    for round in 0..iterations() {
        if round % 20 == 19 {
            median = measure(&root, &mut rng, 20_000 + round);
            live = live_contents(&root);
        }
        let window = median.mul_f64(1.5);
        change(&root, &mut rng, round);
        let new = stock_contents(&root);
        let old_gen = root.live_generation();
        let delay = Duration::from_nanos(rng.below(window.as_nanos() as u64));
        let mut child = root
            .command(&["commit"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; a no-op if it already exited
        let status = child.wait().unwrap();
        let switched = root.live_generation() != old_gen;
        if status.success() {
            completed += 1;
        } else if switched {
            after += 1;
        } else {
            before += 1;
        }
        root.run(&["recover"]).ok();
        let what = format!("round {round} (seed {seed}, delay {delay:?})");
        let is_new = assert_old_or_new_at(&root, &live, &new, &what, Depth::Quick);
        assert!(
            is_new || !switched,
            "{what}: switched, yet recovered to old"
        );
        live = if is_new { new } else { live };
        if round % 50 == 49 {
            root.run(&["gc", "--keep", "2"]).ok();
            assert_consistent(&root);
        }
    }
    println!(
        "random kill: {} kills: {before} before the switch, {after} after it, \
         {completed} after the commit completed; final median commit {median:?}",
        iterations()
    );
    assert!(
        before > 0 && after + completed > 0,
        "the kills did not spread over the commit"
    );
}
