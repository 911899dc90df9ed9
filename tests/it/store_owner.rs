//! Who can change what is published (docs/security.md#published-objects-belong-to-the-state-owner):
//! store objects owned by the state owner whatever the stock's owners, a
//! set-gid or default-ACL state refused, `verify` naming every planted
//! entry, and `exec` keeping to the store object.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use svcdir_update::error::exit;

use crate::harness::*;

/// uid and gid of `nobody` / `nogroup` on Debian.
const NOBODY: u32 = 65534;

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, PermissionsExt::from_mode(mode)).unwrap();
}

/// A committed example with a pending change to `web`, `spoil`ed: the
/// commit exits 77 naming `named` and saying `fix`, and changes nothing;
/// after `repair` it commits and `verify` is clean.
#[track_caller]
fn assert_refused_77(spoil: impl FnOnce(&Root) -> PathBuf, fix: &str, repair: impl FnOnce(&Root)) {
    let root = Root::example();
    root.commit().ok();
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let before = root.snapshot();
    let named = spoil(&root);
    let run = root
        .run(&["--json", "commit"])
        .code(exit::NO_PERM)
        .kind("unsafe");
    assert!(
        run.stderr.contains(&named.display().to_string()) && run.stderr.contains(fix),
        "the refusal does not name {} and `{fix}`:\n{}",
        named.display(),
        run.stderr
    );
    assert!(
        root.snapshot() == before,
        "a refused commit changed the state"
    );
    repair(&root);
    root.commit().ok();
    assert_eq!(root.live_generation(), Some(2));
    root.run(&["verify"]).ok();
}

#[test]
fn set_gid_state_is_refused_with_77_before_anything_is_created() {
    // Before the refusal, objects and manifests made in a set-gid state
    // (group nogroup) belonged to nogroup, not to root.
    assert_refused_77(
        |root| {
            std::os::unix::fs::chown(root.state(), None, Some(NOBODY)).unwrap();
            chmod(&root.state(), 0o2755);
            root.state()
        },
        "chmod g-s",
        |root| chmod(&root.state(), 0o755),
    );
    let root = Root::example();
    std::fs::create_dir(root.state()).unwrap();
    std::os::unix::fs::chown(root.state(), None, Some(NOBODY)).unwrap();
    chmod(&root.state(), 0o2755);
    root.run(&["--json", "commit"])
        .code(exit::NO_PERM)
        .kind("unsafe");
    assert!(
        !root.state().join("store").exists(),
        "nothing is created in a set-gid state"
    );
}

#[test]
fn set_gid_store_is_refused_with_77() {
    assert_refused_77(
        |root| {
            let store = root.state().join("store");
            std::os::unix::fs::chown(&store, None, Some(NOBODY)).unwrap();
            chmod(&store, 0o2755);
            store
        },
        "chmod g-s",
        |root| chmod(&root.state().join("store"), 0o755),
    );
}

fn setfacl(args: &[&str], path: &Path) {
    let ok = Command::new("setfacl")
        .args(args)
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "setfacl {args:?} {}", path.display());
}

#[test]
fn default_acl_on_the_state_is_refused_with_77() {
    if !require_tool("setfacl", "acl") {
        return;
    }
    // Before the refusal, every object inherited `user:nobody:rwx` (masked
    // by the group bits) from the state's default ACL.
    let state = |root: &Root| root.state();
    let store = |root: &Root| root.state().join("store");
    let generations = |root: &Root| root.state().join("generations");
    for dir in [state, store, generations] {
        assert_refused_77(
            |root| {
                setfacl(&["-d", "-m", "u:nobody:rwx"], &dir(root));
                dir(root)
            },
            "setfacl -k",
            |root| setfacl(&["-k"], &dir(root)),
        );
    }
}

#[test]
fn exec_resolves_the_program_beneath_the_object_and_refuses_links_out() {
    let root = Root::example();
    let web = root.stock().join("web");
    std::os::unix::fs::symlink("/usr/bin", web.join("bin")).unwrap();
    std::os::unix::fs::symlink("../..", web.join("up")).unwrap();
    root.write_stock(
        "web/tools/hello",
        "#!/bin/sh\necho \"hello from $(pwd)\"\n",
        0o755,
    );
    std::os::unix::fs::symlink("tools", web.join("alias")).unwrap();
    root.commit().ok();
    // Before: `bin/id` ran /usr/bin/id, which is not pinned with the object.
    for (program, link) in [
        ("bin/id", "bin -> /usr/bin"),
        ("up/usr/bin/id", "up -> ../.."),
    ] {
        let run = root
            .run(&["--json", "exec", "web", program])
            .code(exit::NO_PERM)
            .kind("unsafe");
        assert!(
            run.stderr.contains("leads out of the store object") && run.stderr.contains(link),
            "{program}: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains("uid="),
            "{program} ran: {}",
            run.stdout
        );
    }
    // A link inside the object is followed there.
    let run = root.run(&["exec", "web", "alias/hello"]).ok();
    assert!(run.stdout.contains("hello from"), "{}", run.stdout);
}

/// Every path of the object of `service` in generation `live`.
fn object_paths(root: &Root, service: &str) -> Vec<PathBuf> {
    let object = std::fs::canonicalize(root.live().join(service)).unwrap();
    walkdir::WalkDir::new(object.parent().unwrap())
        .into_iter()
        .map(|e| e.unwrap().path().to_path_buf())
        .collect()
}

/// Runs `script` (sh) as nobody; its exit status and stderr.
fn as_nobody(script: &str) -> (bool, String) {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(script)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `web` of the example, every entry of it owned by nobody and writable by
/// its group, as a package might ship a service that runs as a user.
fn foreign_owned_web(root: &Root) {
    for path in walkdir::WalkDir::new(root.stock().join("web")) {
        let path = path.unwrap().path().to_path_buf();
        std::os::unix::fs::lchown(&path, Some(NOBODY), Some(NOBODY)).unwrap();
        if !path.is_symlink() {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            chmod(&path, mode | 0o020);
        }
    }
}

#[test]
fn published_objects_cannot_be_changed_by_the_stocks_owner() {
    let root = Root::example();
    foreign_owned_web(&root);
    let run = root.commit().ok();
    for path in object_paths(&root, "web") {
        let md = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!((md.uid(), md.gid()), (0, 0), "{}", path.display());
        if !md.is_symlink() {
            assert_eq!(
                md.mode() & 0o022,
                0,
                "{} is writable by others",
                path.display()
            );
        }
    }
    assert!(
        run.stderr.contains("foreign_owners"),
        "the commit says the stock's owners are not kept: {}",
        run.stderr
    );
    let web = std::fs::canonicalize(root.live().join("web")).unwrap();
    let manifest = std::fs::read_to_string(manifest_of_dir(&web)).unwrap();
    assert!(
        manifest.contains("65534"),
        "the manifest records the stock's owner"
    );
    // Before: nobody appended to the live `run`, added entries and could
    // plant `supervise`.
    let w = web.display();
    for attempt in [
        format!("echo evil >> {w}/run"),
        format!("echo evil > {w}/env/VERSION"),
        format!("touch {w}/new"),
        format!("touch {w}/env/new"),
        format!("chmod 0777 {w}/run"),
        format!("ln -s /elsewhere {w}/supervise"),
        format!("mkdir {w}/log/supervise"),
        format!("mv {w}/env/VERSION {w}/env/OLD"),
        format!("mv {w} {w}.moved"),
    ] {
        let (ok, stderr) = as_nobody(&attempt);
        assert!(
            !ok && (stderr.contains("Permission denied")
                || stderr.contains("Operation not permitted")),
            "as nobody, `{attempt}` was not refused with EACCES/EPERM: {stderr}"
        );
    }
    root.run(&["verify"]).ok();
    let plan = root.run(&["plan"]).ok();
    assert!(plan.stdout.contains("up to date"), "{}", plan.stdout);
}

#[test]
fn verify_names_every_planted_changed_or_missing_entry_links_included() {
    let root = Root::example();
    root.commit().ok();
    let web = std::fs::canonicalize(root.live().join("web")).unwrap();
    // What root (or anyone who once could) might plant: before, verify
    // skipped `supervise` whatever it was.
    std::os::unix::fs::symlink("/elsewhere", web.join("supervise")).unwrap();
    std::os::unix::fs::symlink("/x", web.join("log/event")).unwrap();
    std::os::unix::fs::symlink("/y", web.join("env/extra")).unwrap();
    std::fs::create_dir(web.join("event")).unwrap();
    std::os::unix::fs::chown(web.join("event"), Some(NOBODY), None).unwrap();
    std::fs::remove_file(web.join("finish")).unwrap();
    chmod(&web.join("run"), 0o775);
    let run = root.run(&["verify"]).code(exit::DATA_ERR);
    for (path, said) in [
        ("supervise", "(a symlink -> /elsewhere)"),
        ("log/event", "(a symlink -> /x)"),
        ("env/extra", "not in the manifest"),
        ("event", "owned by uid 65534"),
        ("finish", "missing"),
        ("run", "mode 0775, expected 0755"),
    ] {
        let line = format!("{}: ", web.join(path).display());
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(&line) && l.contains(said)),
            "verify does not say `{said}` of {path}:\n{}",
            run.stderr
        );
    }
    // What the supervisor makes itself is fine.
    for path in ["supervise", "log/event", "env/extra", "event"] {
        let path = web.join(path);
        if path.is_symlink() {
            std::fs::remove_file(&path).unwrap();
        } else {
            std::fs::remove_dir(&path).unwrap();
        }
    }
    std::fs::create_dir(web.join("supervise")).unwrap();
    std::fs::create_dir(web.join("log/event")).unwrap();
    std::fs::write(web.join("finish"), "#!/bin/sh\n").unwrap();
    chmod(&web.join("run"), 0o755);
    let run = root.run(&["verify"]).code(exit::DATA_ERR);
    let named: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains(&web.display().to_string()))
        .collect();
    assert!(
        !named.is_empty() && named.iter().all(|l| l.contains("/web/finish: ")),
        "only the rewritten finish is left: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("finish: content changed"),
        "{}",
        run.stderr
    );
}

#[test]
fn foreign_owners_keeps_the_stocks_owners_and_says_so() {
    let root = Root::example();
    foreign_owned_web(&root);
    root.commit().ok();
    let stored = std::fs::canonicalize(root.live().join("web")).unwrap();
    root.config("foreign_owners: [web]\n");
    let plan = root.run(&["plan"]).ok();
    assert!(
        plan.stdout.contains("re-staged with the stock's owners"),
        "{}",
        plan.stdout
    );
    let run = root.commit().ok();
    assert!(
        run.stderr
            .contains("keeps the stock's owners (`foreign_owners`)"),
        "{}",
        run.stderr
    );
    let kept = std::fs::canonicalize(root.live().join("web")).unwrap();
    assert_ne!(kept, stored, "a new object");
    let md = std::fs::metadata(kept.join("run")).unwrap();
    assert_eq!((md.uid(), md.gid()), (NOBODY, NOBODY));
    root.run(&["verify"]).ok();
    // The weaker choice: nobody can change its live `run` again.
    let (ok, stderr) = as_nobody(&format!("echo ok >> {}/run", kept.display()));
    assert!(ok, "{stderr}");
}

/// The tree digest of a manifest's entries (src/model/tree.rs `digest`):
/// the name an object had before owners were part of its identity.
fn tree_digest(manifest: &serde_json::Value) -> String {
    let mut text = b"svcdir-update tree v1\n".to_vec();
    for e in manifest["entries"].as_array().unwrap() {
        let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        let mode = u32::from_str_radix(&s("mode"), 8).unwrap();
        let payload = match s("type").as_str() {
            "file" => s("blake3"),
            "symlink" => s("target"),
            _ => String::new(),
        };
        assert!(e.get("from_link").is_none());
        text.extend(
            format!(
                "{}\0{}\0{mode:o}\0{}\0{}\0{payload}\n",
                s("path"),
                s("type"),
                e["uid"],
                e["gid"]
            )
            .as_bytes(),
        );
    }
    blake3::hash(&text).to_hex().to_string()
}

/// Turns the live `web` object (committed with `foreign_owners: [web]`, so
/// its files carry the stock's owners) into what an older version made: no
/// owners marker, named by its tree digest, linked from generation 1.
fn make_legacy_web(root: &Root) -> PathBuf {
    let store = root.state().join("store");
    let dir = std::fs::canonicalize(root.live().join("web")).unwrap();
    let object = object_of_dir(&dir);
    let manifest_path = manifest_of_dir(&dir);
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    assert_eq!(manifest["owners"], "stock");
    manifest.as_object_mut().unwrap().remove("owners");
    let legacy = format!("web-{}", tree_digest(&manifest));
    manifest["digest"] = tree_digest(&manifest).into();
    std::fs::remove_file(&manifest_path).unwrap();
    std::fs::write(
        store.join(format!("{legacy}.manifest.yaml")),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    std::fs::rename(store.join(&object), store.join(&legacy)).unwrap();
    let generation = root.state().join("generations/1");
    let gen_manifest = generation.join(".manifest.yaml");
    let text = std::fs::read_to_string(&gen_manifest).unwrap();
    std::fs::write(&gen_manifest, text.replace(&object, &legacy)).unwrap();
    std::fs::remove_file(generation.join("web")).unwrap();
    std::os::unix::fs::symlink(format!("../../store/{legacy}/web"), generation.join("web"))
        .unwrap();
    store.join(legacy).join("web")
}

#[test]
fn objects_an_older_version_left_foreign_owned_are_flagged_then_re_staged() {
    let root = Root::example();
    foreign_owned_web(&root);
    root.config("foreign_owners: [web]\n");
    root.commit().ok();
    let legacy = make_legacy_web(&root);
    std::fs::remove_file(root.path().join("config.yaml")).unwrap();
    let run = root.run(&["verify"]).code(exit::DATA_ERR);
    assert!(
        run.stderr.contains(&format!(
            "{}: 7 entries are owned or writable by users other than uid 0",
            legacy.display()
        )) && run.stderr.contains("re-stages the object owned by uid 0"),
        "{}",
        run.stderr
    );
    let plan = root.run(&["plan"]).ok();
    assert!(
        plan.stdout.contains("re-staged owned by the state owner"),
        "{}",
        plan.stdout
    );
    root.commit().ok();
    let web = std::fs::canonicalize(root.live().join("web")).unwrap();
    assert_ne!(web, legacy, "a new object");
    for path in object_paths(&root, "web") {
        let md = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!((md.uid(), md.gid()), (0, 0), "{}", path.display());
    }
    root.run(&["verify"]).ok();
}
