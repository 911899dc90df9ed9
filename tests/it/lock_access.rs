//! Who may open which lock file (docs/security.md#the-manager-lock-is-private-to-the-state-owner
//! and the sections after it): every case runs the would-be blocker as
//! another user with `setpriv`, against the real binary's files.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness::*;

const DEADLINE: Duration = Duration::from_secs(10);
/// uid and gid of `nobody` / `nogroup` on Debian.
const NOBODY: u32 = 65534;
/// gid of `users` on Debian: a group `nobody` is not in.
const USERS: u32 = 100;

/// Runs `flock -n FLAG path true` as uid `uid`, gid `gid`, no other groups.
fn flock_as(uid: u32, gid: u32, flag: &str, path: &Path) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .args(["flock", "-n", flag])
        .arg(path)
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv and flock (util-linux)")
}

#[track_caller]
fn assert_denied(out: &Output, path: &Path) {
    assert!(
        !out.status.success(),
        "{} could be flocked: {out:?}",
        path.display()
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Permission denied"), "{said}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

/// `flock -x PATH sleep 60` as root: a program that is not svcdir-update
/// holding the manager lock.
fn foreign_holder(lock: &Path) -> KillOnDrop {
    let child = Command::new("flock")
        .args(["-x", "-F"])
        .arg(lock)
        .args(["sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .expect("flock(1) from util-linux");
    let holder = KillOnDrop(child);
    wait_until("flock to hold the manager lock", DEADLINE, || {
        !Command::new("flock")
            .args(["-n", "-s"])
            .arg(lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
    });
    holder
}

/// The manager lock is 0600: `nobody` cannot open it, so cannot flock it
/// and hold every writing command at exit 75. A root program that holds
/// it is named from /proc as what it is, not as "another svcdir-update".
#[test]
fn manager_lock_is_private_and_a_foreign_holder_is_named() {
    let root = Root::example();
    root.commit().ok();
    let lock = root.state().join(".lock");
    assert_eq!(mode(&lock), 0o600);
    assert_denied(&flock_as(NOBODY, NOBODY, "-x", &lock), &lock);
    assert_denied(&flock_as(NOBODY, NOBODY, "-s", &lock), &lock);

    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let holder = foreign_holder(&lock);
    let run = root
        .run(&["--json", "--wait", "0", "commit"])
        .code(exit::TEMP_FAIL)
        .kind("manager_lock_held");
    let message = run.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(&format!("held by pid {}", holder.0.id())),
        "{message}"
    );
    assert!(message.contains("sleep"), "{message}");
    assert!(message.contains("uid 0"), "{message}");
    assert!(message.contains("which is not svcdir-update"), "{message}");
    assert!(!message.contains("another svcdir-update"), "{message}");
    assert_eq!(root.live_generation(), Some(1));
    drop(holder);
    root.commit().ok();
    assert_eq!(root.live_generation(), Some(2));
}

/// A `.lock` an older version left 0644 is made 0600 by the next writing
/// command of its owner; one owned by another user is refused (77) with
/// the fix (hostile::lock_owned_by_another_user_is_refused_with_77).
#[test]
fn an_older_world_readable_manager_lock_is_made_private() {
    let root = Root::example();
    root.commit().ok();
    let lock = root.state().join(".lock");
    std::fs::set_permissions(&lock, PermissionsExt::from_mode(0o644)).unwrap();
    assert!(flock_as(NOBODY, NOBODY, "-s", &lock).status.success());
    root.run(&["gc"]).ok();
    assert_eq!(mode(&lock), 0o600);
    assert_denied(&flock_as(NOBODY, NOBODY, "-x", &lock), &lock);
}

/// `run` of web that drops to `nobody` after `exec` pinned its object:
/// the program (uid 65534) keeps the pin through the inherited fd and
/// writes `id -u` to `out` once it runs.
fn web_dropping_privileges(root: &Root, out: &Path) {
    root.write_stock(
        "web/run",
        &format!(
            "#!/bin/sh\nexec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups \
             sh -c 'id -u > {out}.tmp; mv {out}.tmp {out}; exec sleep 60'\n",
            out = out.display()
        ),
        0o755,
    );
}

fn live_object_name(root: &Root) -> String {
    object_of_dir(&std::fs::read_link(root.live().join("web")).unwrap())
}

/// Pins are 0600 in a 0700 directory: `nobody` can neither stop a launch
/// (`flock -x`) nor keep an object from gc forever (`flock -s`). A program
/// that drops privileges after `exec` still holds its pin: the fd is
/// inherited, and opening is the only step that checks permissions.
#[test]
fn pins_are_private_and_survive_a_dropped_privilege() {
    let root = Root::example();
    let scratch = root.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    std::fs::set_permissions(&scratch, PermissionsExt::from_mode(0o777)).unwrap();
    let out = scratch.join("web.uid");
    web_dropping_privileges(&root, &out);
    root.commit().ok();
    let object = live_object_name(&root);

    let program = KillOnDrop(root.command(&["exec", "web"]).spawn().unwrap());
    let pid = program.0.id();
    wait_until("the program runs as nobody", DEADLINE, || out.exists());
    assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), "65534");

    let pins = root.runtime().join("pins");
    let pin = pins.join(format!("{object}.pin"));
    assert_eq!(mode(&pins), 0o700);
    assert_eq!(mode(&pin), 0o600);
    assert_denied(&flock_as(NOBODY, NOBODY, "-x", &pin), &pin);
    assert_denied(&flock_as(NOBODY, NOBODY, "-s", &pin), &pin);

    // The object is unreferenced after two commits; gc keeps it for the
    // program, named with its uid.
    for tag in ["v2", "v3"] {
        root.write_stock("web/env/VERSION", &format!("{tag}\n"), 0o644);
        root.commit().ok();
    }
    let gc = root.run(&["--json", "gc", "--keep", "1"]).ok().json();
    assert_eq!(gc["pinned"], serde_json::json!([object]), "{gc}");
    let status = root.run(&["--json", "status"]).ok().json();
    let holder = &status["pins"][0]["holders"][0];
    assert_eq!(holder["pid"], pid, "{status}");
    assert_eq!(holder["uid"], NOBODY, "{status}");
    drop(program);
}

/// A pins directory and pin an older version made 0755/0644 are made
/// private by the next `exec`.
#[test]
fn older_open_pins_are_made_private_by_the_next_exec() {
    let root = Root::example();
    root.write_stock("web/run", "#!/bin/sh\nexit 0\n", 0o755);
    root.commit().ok();
    let object = live_object_name(&root);
    let pins = root.runtime().join("pins");
    std::fs::create_dir_all(&pins).unwrap();
    std::fs::set_permissions(&pins, PermissionsExt::from_mode(0o755)).unwrap();
    let pin = pins.join(format!("{object}.pin"));
    std::fs::write(&pin, "").unwrap();
    std::fs::set_permissions(&pin, PermissionsExt::from_mode(0o644)).unwrap();
    root.run(&["exec", "web"]).ok();
    assert_eq!(mode(&pins), 0o700);
    assert_eq!(mode(&pin), 0o600);
}

fn update_lock(root: &Root, service: &str) -> PathBuf {
    root.runtime().join("locks").join(format!("{service}.lock"))
}

/// `update_lock_group: {web: nogroup}` makes web's update lock 0640, group
/// `nogroup`, from the next commit on (even one that leaves web alone): a
/// user in the group can flock it (and so defer web's updates), a user
/// outside cannot even open it. Other services keep 0644.
#[test]
fn update_lock_group_restricts_a_lock_to_its_group() {
    // The premise: nobody's group is nogroup (65534), and users (100) is
    // another group.
    let id = Command::new("id").args(["-g", "nobody"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&id.stdout).trim(), "65534");
    let root = Root::example();
    root.commit().ok();
    let web = update_lock(&root, "web");
    assert_eq!(mode(&web), 0o644);
    // A commit that changes only db applies the new key to web's lock.
    root.config("update_lock_group: {web: nogroup}\n");
    root.write_stock("db/extra", "x\n", 0o644);
    root.commit().ok();
    assert_eq!(root.live_generation(), Some(2));
    let md = std::fs::metadata(&web).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o640, 0, NOBODY));
    assert_eq!(mode(&update_lock(&root, "db")), 0o644);

    // In the group: may flock it, shared or exclusive.
    assert!(flock_as(NOBODY, NOBODY, "-s", &web).status.success());
    assert!(flock_as(NOBODY, NOBODY, "-x", &web).status.success());
    // Outside it: cannot open it.
    assert_denied(&flock_as(NOBODY, USERS, "-x", &web), &web);
    // db is open to every user (docs/update-locks.md: by design).
    let db = update_lock(&root, "db");
    assert!(flock_as(NOBODY, USERS, "-s", &db).status.success());

    // Without the key, the next writing command gives the lock back to all.
    root.config("");
    root.commit().ok();
    assert_eq!(mode(&web), 0o644);
}

/// An unknown group is a config error (65) naming the key and the group;
/// nothing is committed.
#[test]
fn update_lock_group_naming_no_group_is_65() {
    let root = Root::example();
    root.config("update_lock_group: {web: no-such-group-here}\n");
    let run = root
        .run(&["--json", "commit"])
        .code(exit::DATA_ERR)
        .kind("config");
    assert!(
        run.stderr
            .contains("`update_lock_group` of web: there is no group \"no-such-group-here\""),
        "{}",
        run.stderr
    );
    assert_eq!(root.live_generation(), None);
}
