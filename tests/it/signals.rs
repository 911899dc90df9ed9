//! SIGTERM, SIGINT and SIGHUP during a transaction
//! (docs/security.md#a-signal-during-a-transaction-finishes-or-undoes-it):
//! before the switch the transaction is undone, after it completed, and
//! the run exits 130 saying which. With real supervisors, in a module
//! named `supervisors` so scripts/test.sh runs it in the serial pass.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use crate::harness::*;

/// Outside a transaction a signal keeps its default action: SIGTERM while
/// the commit reads the stock (held there by a stop failpoint) ends it at
/// once, by the signal, with `live` and the state as they were.
#[test]
#[cfg_attr(
    not(feature = "failpoints"),
    ignore = "needs --features failpoints (scripts/test.sh)"
)]
fn sigterm_before_the_transaction_keeps_its_default_action() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let mut cmd = root.command(&["commit"]);
    cmd.failpoint("commit.after-scan=stop")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut commit = KillOnDrop(cmd.spawn().unwrap());
    let pid = commit.0.id();
    wait_until("the commit stopped after the scan", REACT_LOCAL, || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| t[t.rfind(')')? + 2..].chars().next())
            == Some('T')
    });
    let target = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(target, rustix::process::Signal::TERM).unwrap();
    rustix::process::kill_process(target, rustix::process::Signal::CONT).unwrap();
    let status = commit.0.wait().unwrap();
    assert_eq!(status.signal(), Some(15), "{status:?}");
    assert_eq!(root.live_generation(), Some(1));
    assert!(!root.state().join(layout::TXN).exists());
}

/// How long a test without a supervisor waits for the binary to get somewhere.
const REACT_LOCAL: std::time::Duration = std::time::Duration::from_secs(20);

mod supervisors {
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::process::{Child, Command, Output, Stdio};

    use crate::harness::*;
    use crate::supervise_harness::*;

    /// A service that logs "PID TAG" to `<root>/out/NAME.log` (for
    /// [`runs`]) and takes `grace` seconds to stop after its SIGTERM.
    fn add_slow_service(root: &Root, name: &str, tag: &str, grace: &str) {
        let out = root.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        root.write_stock(
            &format!("{name}/run"),
            &format!(
                "#!/bin/sh\necho \"$$ {tag}\" >> {out}/{name}.log\nsleep 100000 &\n\
                 trap 'kill $!; sleep {grace}; exit 0' TERM\nwait\n",
                out = out.display()
            ),
            0o755,
        );
    }

    /// Does the supervisor of `dir` want the service down (the state a
    /// commit leaves a service in while it stops it)?
    fn wants_down(family: Family, dir: &Path) -> bool {
        let said = |cmd: &mut Command| {
            let out = cmd.arg(dir).stderr(Stdio::null()).output().unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        match family {
            Family::S6 => {
                said(Command::new("s6-svstat").args(["-o", "wantedup"])).trim() == "false"
            }
            Family::Runit => said(Command::new("sv").arg("status")).contains("want down"),
            Family::Daemontools => said(&mut Command::new("svstat")).contains("want down"),
        }
    }

    /// The state letter of `/proc/PID/stat` (`T` when stopped).
    fn proc_state(pid: u32) -> Option<char> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        text[text.rfind(')')? + 2..].chars().next()
    }

    fn signal(pid: u32, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    fn spawn(cmd: &mut Command) -> Child {
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[track_caller]
    fn assert_exited_130(out: &Output, says: &str) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            (out.status.code(), out.status.signal()),
            (Some(i32::from(exit::INTERRUPTED)), None),
            "{stderr}"
        );
        assert!(
            stderr.contains("SIGTERM received during the transaction"),
            "{stderr}"
        );
        assert!(stderr.contains(says), "{stderr}");
    }

    /// SIGTERM while the commit waits for web to stop: the commit lets the
    /// stop finish, starts web v1 again and exits 130. Nothing is left
    /// "want down", generation 1 stays live, no rollback log is left, and
    /// the commit is pending for the next `commit` or `sync`.
    fn sigterm_while_stopping_undoes(family: Family) {
        let root = Root::empty();
        configure(&root, family);
        add_slow_service(&root, "web", "v1", "3");
        add_logging_service(&root, "db", "v1");
        root.commit().ok();
        let scanner = Scanner::start(&root, family);
        let web_v1 = scanner.wait_pid("web");
        let db = scanner.wait_pid("db");

        add_slow_service(&root, "web", "v2", "3");
        let commit = spawn(&mut root.command(&["commit"]));
        let web_dir = root.scandir().join("web");
        wait_until("the commit stopping web", REACT, || {
            wants_down(family, &web_dir)
        });
        assert!(alive(web_v1), "web stopped before its grace time");
        signal(commit.id(), rustix::process::Signal::TERM);
        let out = commit.wait_with_output().unwrap();
        assert_exited_130(&out, "undone before the switch");

        assert_eq!(root.live_generation(), Some(1));
        assert!(!root.state().join(layout::TXN).exists());
        assert!(root.state().join(layout::PENDING).exists());
        let history = std::fs::read_to_string(root.state().join(layout::HISTORY)).unwrap();
        assert!(history.trim_end().ends_with("undone"), "{history}");
        let mut web = 0;
        wait_until("web v1 up again", REACT, || {
            web = scanner.service_pid("web").unwrap_or(0);
            web != 0 && web != web_v1
        });
        assert!(!wants_down(family, &web_dir), "web is left want down");
        let tags: Vec<String> = runs(&root, "web").into_iter().map(|(_, t)| t).collect();
        assert_eq!(tags, ["v1", "v1"]);
        assert_eq!(scanner.service_pid("db"), Some(db));
        assert!(!wants_down(family, &root.scandir().join("db")));

        // The next commit takes the change.
        root.commit().ok();
        assert_eq!(root.live_generation(), Some(2));
    }

    /// SIGTERM right after the switch (the commit held there by a stop
    /// failpoint): the commit completes — scan directory, history, log —
    /// and exits 130. web v2 runs, nothing is "want down", no log is left.
    fn sigterm_after_the_switch_completes(family: Family) {
        let root = Root::empty();
        configure(&root, family);
        add_slow_service(&root, "web", "v1", "0.2");
        root.commit().ok();
        let scanner = Scanner::start(&root, family);
        let web_v1 = scanner.wait_pid("web");

        add_slow_service(&root, "web", "v2", "0.2");
        let commit = spawn(root.command(&["commit"]).failpoint("txn.after-switch=stop"));
        let pid = commit.id();
        wait_until("the commit stopped after the switch", REACT, || {
            proc_state(pid) == Some('T')
        });
        assert_eq!(root.live_generation(), Some(2));
        signal(pid, rustix::process::Signal::TERM);
        signal(pid, rustix::process::Signal::CONT);
        let out = commit.wait_with_output().unwrap();
        assert_exited_130(&out, "completed first: generation 2 is live");

        assert_eq!(root.live_generation(), Some(2));
        assert!(!root.state().join(layout::TXN).exists());
        let history = std::fs::read_to_string(root.state().join(layout::HISTORY)).unwrap();
        assert!(history.trim_end().ends_with(" done"), "{history}");
        wait_until("web v2 up", REACT, || {
            scanner.service_pid("web").is_some_and(|p| p != web_v1)
                && runs(&root, "web").iter().any(|(_, t)| t == "v2")
        });
        assert!(!wants_down(family, &root.scandir().join("web")));
    }

    #[test]
    fn s6_sigterm_while_stopping_undoes_the_commit() {
        if !Family::S6.require() {
            return;
        }
        sigterm_while_stopping_undoes(Family::S6);
    }

    #[test]
    fn runit_sigterm_while_stopping_undoes_the_commit() {
        if !Family::Runit.require() {
            return;
        }
        sigterm_while_stopping_undoes(Family::Runit);
    }

    #[test]
    fn daemontools_sigterm_while_stopping_undoes_the_commit() {
        if !Family::Daemontools.require() {
            return;
        }
        sigterm_while_stopping_undoes(Family::Daemontools);
    }

    #[test]
    #[cfg_attr(
        not(feature = "failpoints"),
        ignore = "needs --features failpoints (scripts/test.sh)"
    )]
    fn s6_sigterm_after_the_switch_completes_the_commit() {
        if !Family::S6.require() {
            return;
        }
        sigterm_after_the_switch_completes(Family::S6);
    }

    #[test]
    #[cfg_attr(
        not(feature = "failpoints"),
        ignore = "needs --features failpoints (scripts/test.sh)"
    )]
    fn runit_sigterm_after_the_switch_completes_the_commit() {
        if !Family::Runit.require() {
            return;
        }
        sigterm_after_the_switch_completes(Family::Runit);
    }
}
