//! Update locks, process signatures and pinned launches, with real
//! lock-holding processes: `flock(1)` from a shell, the binary itself.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

const DEADLINE: Duration = Duration::from_secs(10);

fn lock_file(root: &Root, service: &str) -> PathBuf {
    root.runtime().join("locks").join(format!("{service}.lock"))
}

/// Is anyone holding a flock on `path`? (Tries `LOCK_EX|LOCK_NB` and lets go.)
fn is_locked(path: &Path) -> bool {
    let file = std::fs::File::open(path).unwrap();
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            rustix::fs::flock(&file, rustix::fs::FlockOperation::Unlock).unwrap();
            false
        }
        Err(rustix::io::Errno::WOULDBLOCK) => true,
        Err(e) => panic!("flock {}: {e}", path.display()),
    }
}

/// One process (the returned child itself) holding `flock FLAG` on `path`:
/// the shell opens fd 9, `flock(1)` locks it, and the shell becomes `sleep`.
fn hold(path: &Path, flag: &str) -> KillOnDrop {
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 9<'{}'; flock {flag} 9 || exit 9; exec sleep 30",
            path.display()
        ))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let holder = KillOnDrop(child);
    wait_until(&format!("{} locked", path.display()), DEADLINE, || {
        is_locked(path)
    });
    holder
}

/// Kills a process that is not our child (an orphan we made) when dropped.
struct KillPidOnDrop(i32);

impl Drop for KillPidOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Changes the `run` file of each service, so a commit restarts them.
fn change(root: &Root, services: &[&str], tag: &str) {
    for s in services {
        let path = root.stock().join(s).join("run");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(&format!("# {tag}\n"));
        std::fs::write(&path, text).unwrap();
    }
}

fn timed(f: impl FnOnce() -> Run) -> (Run, Duration) {
    let t = Instant::now();
    let run = f();
    (run, t.elapsed())
}

#[test]
fn a_held_lock_defers_the_whole_commit_and_the_retry_reuses_the_staged_generation() {
    let root = Root::example();
    root.commit().ok();
    // The tool made a lock per live service: root-owned 0644 in a 0755 dir.
    let dir = std::fs::metadata(root.runtime().join("locks")).unwrap();
    assert_eq!((dir.mode() & 0o7777, dir.uid()), (0o755, 0));
    for s in ["cron", "db", "web"] {
        let md = std::fs::metadata(lock_file(&root, s)).unwrap();
        assert!(md.is_file());
        assert_eq!((md.mode() & 0o7777, md.uid(), md.len()), (0o644, 0, 0));
    }

    change(&root, &["cron", "db", "web"], "v2");
    let holder = hold(&lock_file(&root, "web"), "-s");
    let before = root.snapshot();
    let (run, first) = timed(|| root.run(&["--wait", "1", "commit"]));
    let run = run.code(exit::TEMP_FAIL);
    assert!(first >= Duration::from_secs(1), "gave up after {first:?}");
    assert!(
        run.stderr.contains(&format!("pid {}", holder.0.id())) && run.stderr.contains("web"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("generation 2 stays staged"),
        "{}",
        run.stderr
    );
    // Nothing switched: live, generation 1 and the scan directory are as
    // they were; no rollback log, no history record.
    let after = root.snapshot();
    let without_staged = |snap: &std::collections::BTreeMap<String, Vec<u8>>| {
        snap.iter()
            .filter(|(k, _)| !k.starts_with("state/generations/2"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(without_staged(&before), without_staged(&after));
    assert_eq!(root.live_generation(), Some(1));
    assert!(!root.state().join(layout::TXN).exists());
    assert_eq!(history_lines(&root), 1);
    for s in ["cron", "db", "web"] {
        let run_file = std::fs::read_to_string(root.scandir().join(s).join("run")).unwrap();
        assert!(!run_file.contains("# v2"), "{s} changed: {run_file}");
    }
    let staged = root.inode(&root.state().join("generations/2"));

    drop(holder);
    let (run, retry) = timed(|| root.run(&["-v", "--wait", "0", "commit"]));
    let run = run.ok();
    assert!(
        run.stdout.contains("generation 2 is live"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("3 to restart"), "{}", run.stdout);
    assert!(
        run.stderr.contains("reusing staged generation 2"),
        "{}",
        run.stderr
    );
    // Staged once: the very same generation directory, no generation 3.
    assert_eq!(root.inode(&root.state().join("generations/2")), staged);
    assert!(!root.state().join("generations/3").exists());
    for s in ["cron", "db", "web"] {
        let run_file = std::fs::read_to_string(root.scandir().join(s).join("run")).unwrap();
        assert!(run_file.contains("# v2"), "{s} not switched");
    }
    eprintln!(
        "timing: deferred attempt (--wait 1) {first:?}, retry that reused generation 2 {retry:?}"
    );
}

#[test]
fn force_overrides_one_run_loudly_and_the_next_commit_respects_locks() {
    let root = Root::example();
    root.commit().ok();
    change(&root, &["web"], "v2");
    let holder = hold(&lock_file(&root, "web"), "-s");
    let pid = holder.0.id();

    let run = root.run(&["--wait", "0", "commit", "--force"]).ok();
    assert_eq!(root.live_generation(), Some(2));
    assert!(
        run.stderr
            .contains("warning: --force: overriding the update lock of web")
            && run.stderr.contains(&format!("pid {pid}")),
        "{}",
        run.stderr
    );
    let history = std::fs::read_to_string(root.state().join(layout::HISTORY)).unwrap();
    assert!(
        history.lines().last().unwrap().ends_with("done forced=1"),
        "{history}"
    );

    change(&root, &["web"], "v3");
    root.run(&["--wait", "0", "commit"]).code(exit::TEMP_FAIL);
    assert_eq!(root.live_generation(), Some(2));

    // Rollback to 1 restarts web too: it respects the lock, and --force goes past it.
    root.run(&["--wait", "0", "rollback", "1"])
        .code(exit::TEMP_FAIL);
    assert_eq!(root.live_generation(), Some(2));
    root.run(&["--wait", "0", "rollback", "1", "--force"]).ok();
    assert_eq!(root.live_generation(), Some(1));

    // The permanent knob.
    root.config("override_update_locks: true\n");
    let run = root.run(&["--wait", "0", "commit"]).ok();
    assert!(
        run.stderr
            .contains("override_update_locks: true: overriding")
            && run.stderr.contains(&format!("pid {pid}")),
        "{}",
        run.stderr
    );
    assert!(holder.0.id() == pid);
}

#[test]
fn a_child_that_inherited_the_lock_is_named_after_the_locker_exited() {
    let root = Root::example();
    root.commit().ok();
    let lock = lock_file(&root, "web");
    let pidfile = root.path().join("child.pid");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec 9<'{}'; flock -s 9 || exit 9; sleep 30 >/dev/null 2>&1 & echo $! > '{}'",
            lock.display(),
            pidfile.display()
        ))
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let child: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = KillPidOnDrop(child);
    assert!(is_locked(&lock), "the orphaned child keeps the lock");

    change(&root, &["web"], "v2");
    let run = root.run(&["--wait", "0", "commit"]).code(exit::TEMP_FAIL);
    assert!(
        run.stderr.contains(&format!("pid {child} ")) && run.stderr.contains("sleep 30"),
        "{}",
        run.stderr
    );
    let status = root.run(&["--json", "status"]).ok().json();
    let locks = status["update_locks"].as_array().unwrap();
    assert_eq!(locks.len(), 1, "{status}");
    assert_eq!(locks[0]["service"], "web");
    assert_eq!(locks[0]["holders"][0]["pid"], child);
    assert_eq!(locks[0]["holders"][0]["mode"], "shared");
}

#[test]
fn a_sigkilled_holder_leaves_no_stale_lock() {
    let root = Root::example();
    root.commit().ok();
    change(&root, &["web"], "v2");
    let mut holder = hold(&lock_file(&root, "web"), "-s");
    root.run(&["--wait", "0", "commit"]).code(exit::TEMP_FAIL);
    holder.0.kill().unwrap(); // SIGKILL
    holder.0.wait().unwrap();
    let (run, took) = timed(|| root.run(&["--wait", "0", "commit"]));
    run.ok();
    assert_eq!(root.live_generation(), Some(2));
    eprintln!("timing: commit right after SIGKILL of the holder {took:?}");
}

#[test]
fn lock_runs_a_command_holding_the_lock_shared_and_passes_its_status() {
    let root = Root::example();
    root.commit().ok();
    let lock = lock_file(&root, "web");
    root.run(&["lock", "web", "--", "sh", "-c", "exit 3"])
        .code(3);
    root.run(&["lock", "web", "--", "sh", "-c", "kill -TERM $$"])
        .code(128 + 15);
    root.run(&["lock", "web", "--", "/nonexistent/cmd"])
        .code(127);

    // While the command runs the lock is held (an exclusive try fails), and
    // the command does not inherit the tool's lock fd.
    let script = format!(
        "if flock -n -x '{}' true; then echo free; else echo held; fi; \
         for f in /proc/$$/fd/*; do readlink $f; done; true",
        lock.display()
    );
    let run = root.run(&["lock", "web", "--", "sh", "-c", &script]).ok();
    assert!(run.stdout.starts_with("held\n"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("web.lock"),
        "fd leaked:\n{}",
        run.stdout
    );
    assert!(!is_locked(&lock), "released after the command");

    // A commit meanwhile is deferred, naming the `lock` process.
    change(&root, &["web"], "v2");
    let mut cmd = root.command(&["lock", "web", "--", "sleep", "30"]);
    let locker = KillOnDrop(cmd.spawn().unwrap());
    wait_until("lock taken", DEADLINE, || is_locked(&lock));
    let run = root.run(&["--wait", "0", "commit"]).code(exit::TEMP_FAIL);
    assert!(
        run.stderr.contains(&format!("pid {}", locker.0.id())),
        "{}",
        run.stderr
    );
    drop(locker);

    // Held exclusively elsewhere: give up after --wait with 75.
    let holder = hold(&lock, "-x");
    let (run, took) = timed(|| root.run(&["--wait", "0.5", "lock", "web", "--", "true"]));
    let run = run.code(exit::TEMP_FAIL);
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(
        run.stderr.contains(&format!("pid {}", holder.0.id())),
        "{}",
        run.stderr
    );
}

#[test]
fn legacy_lock_path_defers_while_it_exists_and_is_never_created_or_deleted() {
    let root = Root::example();
    let legacy = root.path().join("legacy-web.lock");
    root.config("legacy_locks:\n  - service: web\n    path: legacy-web.lock\n");
    root.commit().ok();
    assert!(!legacy.exists());
    std::fs::write(&legacy, "").unwrap();
    change(&root, &["web"], "v2");
    let run = root.run(&["--wait", "0", "commit"]).code(exit::TEMP_FAIL);
    assert!(
        run.stderr.contains(&legacy.display().to_string()),
        "{}",
        run.stderr
    );
    assert!(legacy.exists());
    assert_eq!(root.live_generation(), Some(1));
    std::fs::remove_file(&legacy).unwrap();
    root.run(&["--wait", "0", "commit"]).ok();
    assert_eq!(root.live_generation(), Some(2));
    assert!(!legacy.exists());
}

/// `run` of web for pinned-launch tests: says where it runs from, leaves
/// the object (so only the pin keeps it), then sleeps.
fn pinned_web(root: &Root, out: &Path) {
    root.write_stock(
        "web/run",
        &format!(
            "#!/bin/sh\necho \"$0 $(pwd) $SVCDIR_UPDATE_OBJECT\" > '{}.tmp'\n\
             mv '{}.tmp' '{}'\ncd /\nexec sleep 30\n",
            out.display(),
            out.display(),
            out.display()
        ),
        0o755,
    );
}

fn web_object(root: &Root) -> String {
    object_of_dir(&std::fs::read_link(root.state().join("live/web")).unwrap())
}

#[test]
fn exec_runs_from_the_object_and_gc_keeps_it_until_the_program_exits() {
    let root = Root::example();
    let out = root.path().join("exec.out");
    pinned_web(&root, &out);
    root.commit().ok();
    let first = web_object(&root);
    let object_dir = root.object_dir(&first);

    let mut program = KillOnDrop(root.command(&["exec", "web"]).spawn().unwrap());
    let pid = program.0.id();
    wait_until("the program started", DEADLINE, || out.exists());
    let said = std::fs::read_to_string(&out).unwrap();
    let run_path = object_dir.join("run");
    assert_eq!(
        said.trim(),
        format!(
            "{} {} {}",
            run_path.display(),
            object_dir.display(),
            object_dir.display()
        )
    );
    // `exec` replaced itself: the pid we spawned is now the program.
    wait_until("the program became sleep", DEADLINE, || {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep"))
    });

    // Two commits replace web; the program keeps running from its object.
    change(&root, &["web"], "v2");
    root.commit().ok();
    let second = web_object(&root);
    change(&root, &["web"], "v3");
    root.commit().ok();
    assert_eq!(root.live_generation(), Some(3));
    assert!(program.0.try_wait().unwrap().is_none(), "the program died");
    assert!(object_dir.join("run").is_file());

    let status = root.run(&["--json", "status"]).ok().json();
    let pins = status["pins"].as_array().unwrap();
    assert_eq!(pins.len(), 1, "{status}");
    assert_eq!(pins[0]["object"], first.as_str());
    assert_eq!(pins[0]["holders"][0]["pid"], pid);
    let human = root.run(&["status"]).ok().stdout;
    assert!(
        human.contains(&format!("{first}: pinned by pid {pid}")),
        "{human}"
    );

    // gc --keep 1: generation 1 and 2 go; the unpinned object of generation
    // 2 goes; the pinned one stays.
    let gc = root.run(&["--json", "gc", "--keep", "1"]).ok().json();
    assert_eq!(gc["pinned"], serde_json::json!([first]));
    assert!(
        gc["removed_objects"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(second)),
        "{gc}"
    );
    assert!(object_dir.join("run").is_file());
    assert!(!root.state().join(layout::STORE).join(&second).exists());

    // gc --wait waits for the program: it is running when gc starts waiting.
    let mut gc = root.command(&["--wait", "20", "--json", "gc", "--keep", "1"]);
    gc.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut gc = gc.spawn().unwrap();
    // Read stderr until gc says it waits (EOF first would mean it did not).
    let mut said = String::new();
    let mut stderr = std::io::BufReader::new(gc.stderr.take().unwrap());
    while !said.contains("pinned object(s) to be released") {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(n > 0, "gc did not wait for the pin: {said}");
        said.push_str(&line);
    }
    assert!(object_dir.exists());
    program.0.kill().unwrap();
    program.0.wait().unwrap();
    let done = gc.wait_with_output().unwrap();
    assert!(done.status.success(), "{done:?}");
    let report: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(report["removed_objects"], serde_json::json!([first]));
    assert!(!object_dir.exists());
    assert!(
        !root
            .runtime()
            .join("pins")
            .join(format!("{first}.pin"))
            .exists()
    );
}

#[test]
fn gc_without_wait_removes_the_object_once_the_pinned_program_ended() {
    let root = Root::example();
    let out = root.path().join("exec.out");
    pinned_web(&root, &out);
    root.commit().ok();
    let first = web_object(&root);
    let mut program = KillOnDrop(root.command(&["exec", "web"]).spawn().unwrap());
    wait_until("the program started", DEADLINE, || out.exists());
    change(&root, &["web"], "v2");
    root.commit().ok();
    root.run(&["gc", "--keep", "1"]).ok();
    assert!(root.state().join(layout::STORE).join(&first).exists());
    program.0.kill().unwrap();
    program.0.wait().unwrap();
    root.run(&["gc", "--keep", "1"]).ok();
    assert!(!root.state().join(layout::STORE).join(&first).exists());
}

/// `exec` waits for `gc`'s exclusive hold on the pin like every waiter
/// (src/locks/wait.rs): it says so once, gives up with 75 at the deadline
/// naming the pin, and launches once the pin is free.
#[test]
fn exec_waits_for_an_exclusive_hold_on_the_pin_then_gives_up_with_75() {
    let root = Root::example();
    let out = root.path().join("exec.out");
    pinned_web(&root, &out);
    root.commit().ok();
    let pins = root.runtime().join("pins");
    std::fs::create_dir_all(&pins).unwrap();
    std::fs::set_permissions(&pins, PermissionsExt::from_mode(0o755)).unwrap();
    let pin = pins.join(format!("{}.pin", web_object(&root)));
    std::fs::write(&pin, "").unwrap();
    let holder = hold(&pin, "-x");
    wait_until("pin held", DEADLINE, || is_locked(&pin));

    let (run, took) = timed(|| root.run(&["--wait", "0.5", "exec", "web"]));
    let run = run.code(exit::TEMP_FAIL);
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(run.stderr.contains("waiting up to 0.5s"), "{}", run.stderr);
    // The holder is named from /proc, not blamed on gc.
    assert!(
        run.stderr.contains(&format!(
            "{} is held exclusively by pid {}",
            pin.display(),
            holder.0.id()
        )),
        "{}",
        run.stderr
    );
    assert!(!out.exists(), "the program ran while the pin was held");

    drop(holder);
    let _program = KillOnDrop(root.command(&["exec", "web"]).spawn().unwrap());
    wait_until("the program started", DEADLINE, || out.exists());
}

/// `/proc/<pid>/stat` field 22, the start time in clock ticks.
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(19).unwrap().parse().unwrap()
}

#[test]
fn a_recorded_signature_with_another_start_time_is_a_different_process() {
    let root = Root::example();
    root.commit().ok();
    let lock = root.state().join(".lock");
    let holder = hold(&lock, "-x");
    let pid = holder.0.id();
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let record = |start: u64| {
        std::fs::write(
            &lock,
            format!(
                "boot_id: {}\npid: {pid}\nstart_time: {start}\n",
                boot_id.trim()
            ),
        )
        .unwrap();
    };
    let start = start_time(pid);

    record(start);
    let status = root.run(&["--json", "status"]).ok().json();
    assert_eq!(status["manager_lock"]["pid"], pid, "{status}");
    assert_eq!(status["manager_lock_recorded"]["liveness"], "running");
    assert_eq!(status["manager_lock_holders"][0]["pid"], pid);

    record(start + 1);
    let status = root.run(&["--json", "status"]).ok().json();
    assert!(status["manager_lock"].is_null(), "{status}");
    assert_eq!(status["manager_lock_recorded"]["liveness"], "pid-reused");
    // The kernel's view still names the real holder, with its real start time.
    assert_eq!(status["manager_lock_holders"][0]["pid"], pid);
    assert_eq!(status["manager_lock_holders"][0]["start_time"], start);
    let human = root.run(&["status"]).ok().stdout;
    assert!(human.contains("different process"), "{human}");
    // A waiting commit does not present the edited record as the holder.
    let run = root.run(&["--wait", "0", "commit"]).code(exit::TEMP_FAIL);
    // The kernel's holder is named from /proc (a `sleep`), not the record.
    assert!(
        run.stderr.contains("which is not svcdir-update"),
        "{}",
        run.stderr
    );
    assert!(lock.metadata().unwrap().permissions().mode() & 0o777 == 0o600);
}
