//! The power-cut sweep (docs/durability.md#the-power-cut-model): every
//! phase — the first commit, an upgrade, a commit large enough for the
//! syncfs path, rollback, gc, and recover itself in four interrupted
//! states — runs with the state on the power-cut model
//! (tests/it/powercut_fs.rs), and the power is cut before its N-th mutating
//! operation. After a remount of what was durable, the scan directory is
//! empty (tmpfs at boot), `recover` and `sync` run, and the checker of
//! tests/it/invariant.rs proves the live content is exactly the old or the
//! new one (BLAKE3 of every file against its manifest, no `.tmp-*`, history
//! without duplicates, `verify` clean); then the next commit must succeed.
//!
//! The normal suite cuts at [`SAMPLED_POINTS`] evenly spaced points of
//! each phase (from the first operation to the moment after the last) and
//! at each of its last [`TAIL_POINTS`]; `SVCDIR_POWERCUT_FULL=1` cuts at
//! every one (about 2 h for the large commit, 4 min for the rest). Each phase
//! appends its row (phase, operations, points cut, old, new, broken, time)
//! to `<CARGO_TARGET_TMPDIR>/powercut-table.txt`, which scripts/test.sh prints.

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::invariant::*;
use crate::powercut_fs::{Model, Mounted, require_fuse};
use crate::slow::crash::change_stock;

/// Set to `1` to cut at every operation of every phase.
pub const FULL_ENV: &str = "SVCDIR_POWERCUT_FULL";
/// Evenly spaced cut points per phase in the normal suite.
pub const SAMPLED_POINTS: u64 = 24;
/// And every one of the last operations of a phase, where a large commit
/// switches, records its history and removes its log (which even spacing
/// over thousands of staging operations would mostly miss).
pub const TAIL_POINTS: u64 = 12;

/// A phase, set up once: the durable image every cut starts from.
struct Phase {
    name: String,
    root: Root,
    image: Model,
    scandir: Vec<(String, PathBuf)>,
    old: Services,
    new: Services,
    args: Vec<&'static str>,
    /// ext2 rules: a new symlink is durable only after a syncfs.
    ext2: bool,
}

/// What became of one cut.
enum Outcome {
    Old,
    New,
    Broken(String),
}

/// Mounts a fresh model on `root`'s state directory, runs `setup` through
/// it, and settles it (everything durable): the phase's starting image.
fn prepare(
    name: &str,
    root: Root,
    args: Vec<&'static str>,
    setup: impl FnOnce(&Root) -> (Services, Services),
) -> Phase {
    std::fs::create_dir_all(root.state()).unwrap();
    let mounted = Mounted::mount(Model::new(), &root.state());
    let (old, new) = setup(&root);
    let image = mounted.lock().settled();
    drop(mounted);
    let scandir = std::fs::read_dir(root.scandir())
        .map(|rd| {
            rd.map(|e| {
                let e = e.unwrap();
                let target = std::fs::read_link(e.path()).unwrap();
                (e.file_name().into_string().unwrap(), target)
            })
            .collect()
        })
        .unwrap_or_default();
    Phase {
        name: name.to_string(),
        root,
        image,
        scandir,
        old,
        new,
        args,
        ext2: true,
    }
}

/// The scan directory as the phase started (it lives on the real disk
/// while the command runs).
fn restore_scandir(phase: &Phase) {
    let dir = phase.root.scandir();
    empty_scandir(phase);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, target) in &phase.scandir {
        std::os::unix::fs::symlink(target, dir.join(name)).unwrap();
    }
}

/// A boot after a power cut: the scan directory (tmpfs) is empty.
fn empty_scandir(phase: &Phase) {
    if let Ok(rd) = std::fs::read_dir(phase.root.scandir()) {
        for e in rd {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }
}

/// Runs the phase's command on a fresh copy of its image, with the power
/// cut before mutating operation `at` (`None`: never). Returns the
/// operations it made, the one it was cut at, and the mount (the durable
/// image, remounted).
fn run_cut(phase: &Phase, at: Option<u64>) -> (u64, Option<String>, Mounted) {
    restore_scandir(phase);
    let mut image = phase.image.durable_image();
    image.symlinks_need_syncfs = phase.ext2;
    let mut mounted = Mounted::mount(image, &phase.root.state());
    mounted.lock().arm(at);
    let mut child = phase.root.command(&phase.args).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{}: {:?} cut at {at:?} hangs", phase.name, phase.args);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(status.signal(), None, "{}: died of a signal", phase.name);
    let ops = mounted.lock().ops;
    if at.is_none() || at > Some(ops) {
        assert!(
            status.success(),
            "{}: {:?} with no cut must succeed",
            phase.name,
            phase.args
        );
    }
    let cut = mounted.cut_and_remount();
    (ops, cut, mounted)
}

/// Recovers after the cut and checks the result; a failed check is a
/// broken outcome, with its message.
fn check(phase: &Phase) -> Outcome {
    let root = &phase.root;
    let checked = catch_unwind(AssertUnwindSafe(|| {
        empty_scandir(phase);
        root.run(&["recover"]).ok();
        if root.live_generation().is_some() {
            root.run(&["sync"]).ok();
        }
        let laid_out = [layout::STORE, layout::GENERATIONS]
            .iter()
            .all(|d| root.state().join(d).is_dir());
        let is_new = if laid_out {
            assert_old_or_new(root, &phase.old, &phase.new, &phase.name)
        } else {
            // Cut before `init` made the layout durable: there is no state
            // yet (the next `commit` makes it), the old one of a first commit.
            assert!(phase.old.is_empty() && root.live_generation().is_none());
            false
        };
        root.commit().ok();
        assert_consistent_at(root, Depth::Quick);
        assert_eq!(live_contents(root), stock_contents(root), "next commit");
        is_new
    }));
    match checked {
        Ok(true) => Outcome::New,
        Ok(false) => Outcome::Old,
        Err(panic) => Outcome::Broken(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
    }
}

/// The points to cut at: every operation, and the moment after the last
/// (what writeback had not written when the command ended) — or, unless
/// [`FULL_ENV`] is set, [`SAMPLED_POINTS`] of them evenly spaced and the
/// last [`TAIL_POINTS`].
fn points(ops: u64) -> Vec<u64> {
    let all = ops + 1;
    let full = std::env::var_os(FULL_ENV).is_some_and(|v| v == "1");
    if full || all <= SAMPLED_POINTS + TAIL_POINTS {
        return (1..=all).collect();
    }
    let mut out: Vec<u64> = (0..SAMPLED_POINTS)
        .map(|k| 1 + k * (all - 1) / (SAMPLED_POINTS - 1))
        .chain(all - TAIL_POINTS + 1..=all)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Sweeps `phase`: counts its operations, cuts at each point, records
/// the row of the table, and fails on any broken outcome.
fn sweep(phase: &Phase) {
    let started = Instant::now();
    let (ops, _, counted) = run_cut(phase, None);
    drop(counted);
    let (mut old, mut new, mut broken) = (0, 0, Vec::new());
    let cuts = points(ops);
    for &at in &cuts {
        let (_, cut, mounted) = run_cut(phase, Some(at));
        match check(phase) {
            Outcome::Old => old += 1,
            Outcome::New => new += 1,
            Outcome::Broken(why) => broken.push(format!(
                "cut before op {at} ({}): {why}",
                cut.unwrap_or_else(|| "after the last".into())
            )),
        }
        drop(mounted);
    }
    let row = format!(
        "| {:<34} | {:>5} | {:>4} | {:>4} | {:>4} | {:>6} | {:>6.1} s |",
        phase.name,
        ops,
        cuts.len(),
        old,
        new,
        broken.len(),
        started.elapsed().as_secs_f64()
    );
    println!("{row}");
    let table = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("powercut-table.txt");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(table)
        .unwrap();
    file.write_all(format!("{row}\n").as_bytes()).unwrap();
    assert!(
        broken.is_empty(),
        "{}: {} of {} cuts broke the state:\n{}",
        phase.name,
        broken.len(),
        cuts.len(),
        broken.join("\n")
    );
}

/// A stock of `n` services `svc-NN`, each with a run script and `files`
/// files in `env/`.
fn services(root: &Root, n: usize, files: usize, tag: &str) {
    for i in 0..n {
        let name = format!("svc-{tag}{i:03}");
        root.add_service(&name, tag);
        for f in 0..files {
            root.write_stock(
                &format!("{name}/env/V{f}"),
                &format!("{tag}{i}.{f}\n"),
                0o644,
            );
        }
    }
}

fn first_commit() -> Phase {
    prepare("first commit", Root::example(), vec!["commit"], |root| {
        (Services::new(), stock_contents(root))
    })
}

fn upgrade() -> Phase {
    prepare(
        "upgrade (1 of 50 changed, +1, -1)",
        Root::empty(),
        vec!["commit"],
        |root| {
            services(root, 50, 0, "");
            root.commit().ok();
            let old = stock_contents(root);
            root.add_service("svc-000", "changed");
            // A link out of the stock, kept as a link in the new object
            // (docs/design.md#links): durable only by a syncfs on ext2.
            std::os::unix::fs::symlink("/etc/hostname", root.stock().join("svc-000/conf")).unwrap();
            root.add_service("svc-new", "new");
            std::fs::remove_dir_all(root.stock().join("svc-049")).unwrap();
            (old, stock_contents(root))
        },
    )
}

fn large_commit() -> Phase {
    prepare(
        "large commit (syncfs path)",
        Root::example(),
        vec!["commit"],
        |root| {
            root.commit().ok();
            let old = stock_contents(root);
            // 90 services of a directory, a run script, an env/ directory
            // and 3 files: 540 new entries, over store::SYNCFS_THRESHOLD.
            services(root, 90, 3, "L");
            (old, stock_contents(root))
        },
    )
}

fn rollback() -> Phase {
    prepare("rollback", Root::example(), vec!["rollback"], |root| {
        root.commit().ok();
        let gen1 = stock_contents(root);
        change_stock(root, "a");
        root.commit().ok();
        (stock_contents(root), gen1)
    })
}

fn gc() -> Phase {
    prepare(
        "gc --keep 1",
        Root::example(),
        vec!["gc", "--keep", "1"],
        |root| {
            root.commit().ok();
            change_stock(root, "a");
            root.commit().ok();
            change_stock(root, "b");
            root.commit().ok();
            let gen3 = stock_contents(root);
            (gen3.clone(), gen3)
        },
    )
}

/// A third commit, whose links are the first generation's directory taken
/// whole (docs/design.md#dormant-generations).
fn recycling_commit() -> Phase {
    prepare(
        "commit from a recycled generation",
        Root::example(),
        vec!["commit"],
        |root| {
            root.commit().ok();
            change_stock(root, "a");
            root.commit().ok();
            let old = stock_contents(root);
            change_stock(root, "b");
            (old, stock_contents(root))
        },
    )
}

/// A rollback to a dormant generation, which gets its links back first.
fn rollback_to_dormant() -> Phase {
    prepare(
        "rollback to a dormant generation",
        Root::example(),
        vec!["rollback", "1"],
        |root| {
            root.commit().ok();
            let gen1 = stock_contents(root);
            change_stock(root, "a");
            root.commit().ok();
            change_stock(root, "b");
            root.commit().ok();
            (stock_contents(root), gen1)
        },
    )
}

/// `recover` after a commit killed (SIGKILL) at `point`, its state settled.
fn recover_after(point: &'static str) -> Phase {
    prepare(
        &format!("recover after {point}"),
        Root::example(),
        vec!["recover"],
        |root| {
            root.commit().ok();
            let old = stock_contents(root);
            change_stock(root, "a");
            assert!(
                crate::slow::crash::run_at(root, &["commit"], point),
                "commit not killed at {point}"
            );
            (old, stock_contents(root))
        },
    )
}

macro_rules! powercut_tests {
    ($($name:ident => $phase:expr;)*) => {$(
        #[test]
        #[cfg_attr(
            not(feature = "failpoints"),
            ignore = "needs --features failpoints: only a test build accepts its state on FUSE"
        )]
        fn $name() {
            if !require_fuse() {
                return;
            }
            sweep(&$phase);
        }
    )*};
}

powercut_tests! {
    a_power_cut_in_the_first_commit_leaves_nothing_or_all => first_commit();
    a_power_cut_in_an_upgrade_leaves_old_or_new => upgrade();
    a_power_cut_in_a_large_commit_leaves_old_or_new => large_commit();
    a_power_cut_in_rollback_leaves_old_or_new => rollback();
    a_power_cut_in_a_commit_from_a_recycled_generation_leaves_old_or_new => recycling_commit();
    a_power_cut_in_a_rollback_to_a_dormant_generation_leaves_old_or_new => rollback_to_dormant();
    a_power_cut_in_gc_leaves_the_live_generation => gc();
    a_power_cut_in_recover_after_the_log_was_written => recover_after("txn.after-write");
    a_power_cut_in_recover_after_the_stop => recover_after("txn.after-stop");
    a_power_cut_in_recover_after_the_switch => recover_after("switch.after-rename");
    a_power_cut_in_recover_after_the_history => recover_after("txn.after-history");
}

/// The large phase really takes the syncfs path, and the small ones the
/// per-file one: the syncfs calls counted in the model's own trace.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints: only a test build accepts its state on FUSE"
)]
fn each_commit_makes_the_documented_syncfs_barriers() {
    if !require_fuse() {
        return;
    }
    // FUSE is not a file system whose directory fsync keeps new symlinks
    // (docs/durability.md#the-barrier-table): every commit has one syncfs
    // before the generation is published and one before the log is
    // removed; staging adds one on the syncfs path (>= 400 new entries) or
    // for an object with a kept symlink.
    for (phase, want) in [(first_commit(), 2), (upgrade(), 3), (large_commit(), 3)] {
        restore_scandir(&phase);
        let mounted = Mounted::mount(phase.image.durable_image(), &phase.root.state());
        mounted.lock().trace = Some(Vec::new());
        phase.root.commit().ok();
        let trace = mounted.lock().trace.take().unwrap();
        let syncfs = trace.iter().filter(|op| *op == "syncfs").count();
        assert_eq!(syncfs, want, "{}: {syncfs} syncfs", phase.name);
    }
}
