//! What a scan lets go of (docs/performance.md#100000-services-memory-after-this-change):
//! the entries of a service whose object is live are dropped as soon as it
//! is walked. Nothing a command prints or does may change for it: a change
//! to any one file still restarts its service with that file named, `-v`
//! still counts every entry, and a live object removed from the store by
//! hand is still copied again by the next commit that stages anything.

use std::os::unix::fs::PermissionsExt;

use crate::harness::*;

/// A stock of `n` services shaped like the bench's: run, finish, log/run
/// and env/NAME, 7 entries each with their directories.
fn stock_of(n: usize) -> Root {
    let root = Root::empty();
    for i in 0..n {
        let name = format!("svc{i:02}");
        root.add_service(&name, &name);
        root.write_stock(&format!("{name}/finish"), "#!/bin/sh\nexit 0\n", 0o755);
        root.write_stock(&format!("{name}/log/run"), "#!/bin/sh\nexec cat\n", 0o755);
        root.write_stock(&format!("{name}/env/NAME"), &format!("{name}\n"), 0o644);
    }
    root
}

/// A service a plan does not keep: (name, action, [(path, change)]).
type Changed = (String, String, Vec<(String, String)>);

/// A step that changes one entry of a service.
type Step<'a> = Box<dyn Fn() + 'a>;

/// The services a `--json` commit or plan did not keep, with their files.
fn changed(run: &Run) -> Vec<Changed> {
    run.json()["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] != "keep")
        .map(|s| {
            let files = s["files"]
                .as_array()
                .map(|files| {
                    files
                        .iter()
                        .map(|f| {
                            let field = |k: &str| f[k].as_str().unwrap().to_string();
                            (field("path"), field("change"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let field = |k: &str| s[k].as_str().unwrap().to_string();
            (field("name"), field("action"), files)
        })
        .collect()
}

fn restart_of(name: &str, path: &str, change: &str) -> Vec<Changed> {
    vec![(
        name.to_string(),
        "restart".to_string(),
        vec![(path.to_string(), change.to_string())],
    )]
}

#[test]
fn a_change_to_any_one_file_restarts_its_service_and_names_the_file() {
    let root = stock_of(30);
    root.commit().ok();
    let svc = root.stock().join("svc17");
    let steps: [(&str, &str, Step<'_>); 6] = [
        (
            "run",
            "content",
            Box::new(|| root.add_service("svc17", "v2")),
        ),
        (
            "env/NAME",
            "content",
            Box::new(|| std::fs::write(svc.join("env/NAME"), "other\n").unwrap()),
        ),
        (
            "finish",
            "mode",
            Box::new(|| {
                std::fs::set_permissions(svc.join("finish"), PermissionsExt::from_mode(0o700))
                    .unwrap()
            }),
        ),
        (
            "env/NEW",
            "added",
            Box::new(|| std::fs::write(svc.join("env/NEW"), "1\n").unwrap()),
        ),
        (
            "env/NEW",
            "removed",
            Box::new(|| std::fs::remove_file(svc.join("env/NEW")).unwrap()),
        ),
        (
            "log",
            "mode",
            Box::new(|| {
                std::fs::set_permissions(svc.join("log"), PermissionsExt::from_mode(0o700)).unwrap()
            }),
        ),
    ];
    for (path, change, step) in &steps {
        step();
        let plan = root.run(&["--json", "plan"]).ok();
        assert_eq!(changed(&plan), restart_of("svc17", path, change), "plan");
        let commit = root.run(&["--json", "commit"]).ok();
        assert_eq!(
            changed(&commit),
            restart_of("svc17", path, change),
            "commit"
        );
        let again = root.run(&["--json", "commit"]).ok();
        assert_eq!(again.json()["up_to_date"], true, "after {path} {change}");
    }
    root.run(&["verify"]).ok();
}

#[test]
fn verbose_counts_every_entry_also_of_unchanged_services() {
    let root = stock_of(30);
    let count = "stock: 30 services, 210 entries scanned";
    let before = root.run(&["-v", "plan"]).ok();
    assert!(before.stderr.contains(count), "{}", before.stderr);
    root.commit().ok();
    // Every service is live now: all their entries are let go once walked.
    let after = root.run(&["-v", "plan"]).ok();
    assert!(after.stderr.contains(count), "{}", after.stderr);
    let commit = root.run(&["-v", "commit"]).ok();
    assert!(commit.stderr.contains(count), "{}", commit.stderr);
}

#[test]
fn a_live_object_removed_from_the_store_is_copied_again_by_the_next_commit() {
    let root = stock_of(5);
    root.commit().ok();
    let dir = std::fs::canonicalize(root.live().join("svc03")).unwrap();
    let object = object_of_dir(&dir);
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
    std::fs::remove_file(manifest_of_dir(&dir)).unwrap();
    root.add_service("svc01", "v2");
    let commit = root.run(&["--json", "commit"]).ok();
    assert_eq!(changed(&commit), restart_of("svc01", "run", "content"));
    // The same object as before, whole again.
    let again = std::fs::canonicalize(root.live().join("svc03")).unwrap();
    assert_eq!(object_of_dir(&again), object);
    assert!(again.join("run").is_file() && again.join("env/NAME").is_file());
    root.run(&["verify"]).ok();
}
