//! The stat cache (docs/security.md#a-stale-stat-cache): a file written
//! through a shared mapping changes behind unchanged timestamps, so its
//! cached hash lies. A commit that finds out (its copy re-hashes) drops the
//! record and reads the stock again; `--rehash` ignores the cache. No state
//! ever needs deleting by hand.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::harness::*;

/// A python3 process holding `path` mapped shared: each line `OFFSET BYTE`
/// on its stdin stores that byte there and answers `ok`. The first store
/// dirties the page (the kernel updates mtime and ctime then); later stores
/// to the same page, until writeback cleans it, change no timestamp.
struct Mapper {
    child: Child,
    answers: BufReader<std::process::ChildStdout>,
}

const MAPPER: &str = "\
import mmap, sys
f = open(sys.argv[1], 'r+b')
m = mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED)
for line in sys.stdin:
    off, byte = line.split()
    m[int(off)] = int(byte)
    print('ok', flush=True)
";

impl Mapper {
    fn start(path: &std::path::Path) -> Mapper {
        let mut child = Command::new("python3")
            .args(["-c", MAPPER])
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let answers = BufReader::new(child.stdout.take().unwrap());
        Mapper { child, answers }
    }

    fn store(&mut self, offset: usize, byte: u8) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{offset} {byte}").unwrap();
        let mut line = String::new();
        self.answers.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ok", "the mapper did not store");
    }
}

impl Drop for Mapper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// (mtime, ctime) in nanoseconds: what the stat cache trusts.
fn stamps(path: &std::path::Path) -> (i128, i128) {
    let md = std::fs::metadata(path).unwrap();
    (
        i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
        i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()),
    )
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Makes the stat cache hold a hash of `web/data` that its content no
/// longer has, with the file's timestamps unchanged: store a byte (page
/// dirtied, timestamps move), wait until the timestamps are old enough to
/// be cached, commit (cached), store another byte on the same page. If
/// writeback cleaned the page in between (another process's sync), the
/// timestamps move and the round is tried again.
fn make_cache_lie(root: &Root, mapper: &mut Mapper, round: u8) {
    let data = root.stock().join("web/data");
    for attempt in 0..5u8 {
        let tag = round * 10 + attempt;
        mapper.store(0, b'a' + tag % 26);
        let (mtime, ctime) = stamps(&data);
        let newest = (mtime.max(ctime) / 1_000_000_000) as i64;
        // The cache keeps only files unchanged for over a second.
        wait_until(
            "web/data to be old enough to cache",
            Duration::from_secs(10),
            || now_seconds() >= newest + 2,
        );
        root.commit().ok();
        let before = stamps(&data);
        mapper.store(1, b'A' + tag % 26);
        if stamps(&data) == before {
            return;
        }
    }
    panic!("every store through the mapping moved the timestamps: cannot make the cache lie");
}

/// The content of web/data in the live object.
fn live_data(root: &Root) -> Vec<u8> {
    std::fs::read(root.live().join("web/data")).unwrap()
}

#[test]
fn a_stale_cache_record_heals_itself_and_rehash_ignores_the_cache() {
    if !require_tool("python3", "python3") {
        return;
    }
    // On tmpfs a page is never written back, so it stays dirty and a
    // second store through the mapping moves no timestamp, whatever a
    // commit's syncfs does to the disk (docs/durability.md#the-switch-and-symlinks).
    let root = Root::example_in(std::path::Path::new("/dev/shm"));
    root.write_stock("web/data", &"x".repeat(8192), 0o644);
    root.commit().ok();
    let data = root.stock().join("web/data");
    let mut mapper = Mapper::start(&data);

    // The cache lies: plan trusts it (the limit of any stat cache), plan
    // --rehash reads the file and sees the change.
    make_cache_lie(&root, &mut mapper, 0);
    assert_ne!(live_data(&root), std::fs::read(&data).unwrap());
    let plan = root.run(&["--json", "plan"]).ok().json();
    assert_eq!(plan["up_to_date"], true, "{plan}");
    let plan = root.run(&["--json", "plan", "--rehash"]).ok().json();
    assert_eq!(plan["counts"]["restart"], 1, "{plan}");
    // commit --rehash commits it, and replaces the cache.
    let json = root.run(&["--json", "commit", "--rehash"]).ok().json();
    assert_eq!(json["counts"]["restart"], 1, "{json}");
    assert_eq!(live_data(&root), std::fs::read(&data).unwrap());
    let plan = root.run(&["--json", "plan"]).ok().json();
    assert_eq!(plan["up_to_date"], true, "{plan}");

    // The cache lies again; another file of the service changes: the copy
    // finds the lie, the record is dropped, the stock read again, and the
    // commit goes through — every time, with no file deleted by hand.
    make_cache_lie(&root, &mut mapper, 1);
    root.write_stock("web/env/VERSION", "3\n", 0o644);
    let run = root.commit().ok();
    assert!(
        run.stderr.contains("stat cache was stale"),
        "{}",
        run.stderr
    );
    assert_eq!(live_data(&root), std::fs::read(&data).unwrap());
    assert_eq!(
        std::fs::read_to_string(root.live().join("web/env/VERSION")).unwrap(),
        "3\n"
    );
    let plan = root.run(&["--json", "plan"]).ok().json();
    assert_eq!(plan["up_to_date"], true, "{plan}");
    root.commit().ok();
}
