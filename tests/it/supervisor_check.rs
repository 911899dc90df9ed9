//! Nothing restarts in silence (docs/cli.md#supervisor-check): with
//! `supervisor: none` on a scan directory a real scanner watches, a commit
//! that plans a restart warns that the old instance keeps running; with a
//! supervisor configured and no scanner of its family watching, it warns
//! that the new versions do not start. `init` writes the supervisor it
//! finds watching into a new config. Once per family, with real s6-svscan,
//! runsvdir and svscan.

use crate::harness::*;

/// Files only (no supervisor configured, no scanner): a commit that plans a
/// restart says, as a note `-q` silences, that nothing restarted it.
#[test]
fn files_only_a_restart_is_noted_not_warned() {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let run = root.commit().ok();
    assert!(
        run.stderr
            .contains("supervisor: none, so nothing stopped or restarted web: no scanner watches"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
    root.write_stock("web/env/VERSION", "3.0\n", 0o644);
    assert_eq!(root.run(&["-q", "commit"]).ok().stderr, "");
}

/// `init` without a config writes one (`supervisor: none` when no scanner
/// watches), which the next command reads; it never replaces one.
#[test]
fn init_writes_a_new_config_once_and_never_replaces_one() {
    let root = Root::example();
    let run = root.run(&["init"]).ok();
    assert!(run.stdout.contains("supervisor: none"), "{}", run.stdout);
    let path = root.path().join("config.yaml");
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written.contains("\nsupervisor: none  # no scanner watched"),
        "{written}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o644);
    root.commit().ok();
    root.config("supervisor: none\nkeep_generations: 3\n");
    let json = root.run(&["--json", "init"]).ok().json();
    assert_eq!(json["config_written"], serde_json::Value::Null);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "supervisor: none\nkeep_generations: 3\n"
    );
}

/// With real scanners: the serial pass of scripts/test.sh runs every
/// `supervisors::` module one test at a time.
mod supervisors {
    use crate::harness::*;
    use crate::supervise_harness::*;

    const FAMILIES: [Family; 3] = [Family::S6, Family::Runit, Family::Daemontools];

    /// The case: `supervisor: none`, a scanner watching. The commit
    /// says `web restart`, and now also that nothing did it; the old instance
    /// is indeed still the one running.
    #[test]
    fn supervisor_none_under_a_real_scanner_warns_that_nothing_restarted() {
        for family in FAMILIES {
            if !family.require() {
                continue;
            }
            let root = Root::empty();
            root.config("supervisor: none\n");
            add_logging_service(&root, "web", "v1");
            add_logging_service(&root, "db", "v1");
            root.commit().ok();
            let scanner = Scanner::start(&root, family);
            let web = scanner.wait_pid("web");
            add_logging_service(&root, "web", "v2");
            let run = root.commit().ok();
            assert!(
                run.stdout.contains("web  restart: run changed"),
                "{}",
                run.stdout
            );
            let (scanner_name, _) = family.scanner();
            let expected = format!(
                "warning: supervisor: none, so nothing stopped or restarted web: {scanner_name} watches"
            );
            assert!(run.stderr.contains(&expected), "{family:?}: {}", run.stderr);
            assert!(
                run.stderr
                    .contains(&format!("set `supervisor: {}`", family.config_name())),
                "{}",
                run.stderr
            );
            assert!(alive(web), "{family:?}: the old web was stopped after all");
            assert!(runs(&root, "web").iter().all(|(_, t)| t == "v1"));
            // A commit that only starts a service has nothing to warn about.
            add_logging_service(&root, "extra", "v1");
            let run = root.commit().ok();
            assert!(!run.stderr.contains("warning"), "{}", run.stderr);
        }
    }

    /// A supervisor configured, but its scanner not running: the restarted
    /// and started services wait for it, and the commit says so.
    #[test]
    fn a_configured_supervisor_whose_scanner_is_not_running_is_named() {
        for family in FAMILIES {
            if !family.require() {
                continue;
            }
            let root = Root::empty();
            configure(&root, family);
            add_logging_service(&root, "web", "v1");
            let run = root.commit().ok();
            let (scanner_name, _) = family.scanner();
            let expected = format!(
                "warning: no {scanner_name} watches {}: web will not start until it runs",
                root.scandir().display()
            );
            assert!(run.stderr.contains(&expected), "{family:?}: {}", run.stderr);
            // Once the scanner runs, a commit is silent again.
            let scanner = Scanner::start(&root, family);
            scanner.wait_pid("web");
            add_logging_service(&root, "web", "v2");
            let run = root.commit().ok();
            assert!(
                !run.stderr.contains("warning"),
                "{family:?}: {}",
                run.stderr
            );
        }
    }

    /// `init` on a machine whose scanner already watches the scan directory
    /// writes that family into a new config; the next commit uses it.
    #[test]
    fn init_writes_the_supervisor_it_finds_watching() {
        for family in FAMILIES {
            if !family.require() {
                continue;
            }
            let root = Root::empty();
            std::fs::create_dir(root.scandir()).unwrap();
            let scanner = Scanner::start(&root, family);
            let json = root.run(&["--json", "init"]).ok().json();
            assert_eq!(json["detected_supervisor"], family.config_name(), "{json}");
            let config = std::fs::read_to_string(root.path().join("config.yaml")).unwrap();
            assert!(
                config.contains(&format!("\nsupervisor: {}  #", family.config_name())),
                "{config}"
            );
            add_logging_service(&root, "web", "v1");
            let run = root.commit().ok();
            assert!(
                !run.stderr.contains("warning"),
                "{family:?}: {}",
                run.stderr
            );
            scanner.wait_pid("web");
        }
    }
}
