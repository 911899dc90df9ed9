//! Dormant generations (docs/design.md#dormant-generations): a commit
//! takes the directory of the newest generation that is not live and
//! remakes only the links that differ, so its cost follows the change; the
//! generation it took stays as its manifest and a marker, and gets its
//! links back when `rollback` makes it live again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::harness::*;
use crate::invariant::*;
use crate::slow::crash::change_stock;

fn generation_dir(root: &Root, n: u64) -> PathBuf {
    root.state().join(layout::GENERATIONS).join(n.to_string())
}

/// The names in generation `n`'s directory.
fn entries(root: &Root, n: u64) -> BTreeSet<String> {
    std::fs::read_dir(generation_dir(root, n))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn is_dormant(root: &Root, n: u64) -> bool {
    entries(root, n)
        == BTreeSet::from([
            ".manifest.yaml".into(),
            ".summary.json".into(),
            layout::DORMANT.into(),
        ])
}

/// Changes only `web/run`, a different text each time.
fn touch_web(root: &Root, tag: &str) {
    root.write_stock(
        "web/run",
        &format!("#!/bin/sh\n# {tag}\nexec sleep 1000\n"),
        0o755,
    );
}

#[test]
fn a_third_commit_takes_the_first_generations_directory_and_remakes_only_changed_links() {
    let root = Root::example();
    root.commit().ok();
    touch_web(&root, "two");
    root.commit().ok();
    let dir1 = root.inode(&generation_dir(&root, 1));
    let db1 = root.inode(&generation_dir(&root, 1).join("db"));
    let web2 = std::fs::read_link(generation_dir(&root, 2).join("web")).unwrap();
    touch_web(&root, "three");
    root.commit().ok();

    assert_eq!(root.live_generation(), Some(3));
    // Generation 3 is generation 1's directory, and db's link in it the
    // very same inode: only web's link was made again.
    assert_eq!(root.inode(&generation_dir(&root, 3)), dir1);
    assert_eq!(root.inode(&generation_dir(&root, 3).join("db")), db1);
    assert_ne!(
        std::fs::read_link(generation_dir(&root, 3).join("web")).unwrap(),
        web2
    );
    assert!(is_dormant(&root, 1), "{:?}", entries(&root, 1));
    // The generation before live keeps its links: the default rollback
    // stays a switch of `live` and nothing else.
    assert!(!is_dormant(&root, 2));
    assert_eq!(
        std::fs::read_to_string(root.state().join("format")).unwrap(),
        "3\n"
    );
    assert_eq!(live_contents(&root), stock_contents(&root));
    assert_consistent(&root);
}

/// A link the taken directory lacks, or has with an old object, is a hard
/// link of the live generation's where live has the wanted object: the
/// previous commit's changes cost a `linkat` each, not a new symlink that
/// `syncfs` must write (docs/performance.md#hints).
#[test]
fn links_the_taken_directory_lacks_are_hard_links_of_lives() {
    let root = Root::example();
    root.commit().ok();
    // Generation 2 adds `extra-a` and changes `web`; generation 3 keeps
    // `extra-a` and changes `web` again.
    change_stock(&root, "a");
    root.commit().ok();
    let extra2 = root.inode(&generation_dir(&root, 2).join("extra-a"));
    let web2 = root.inode(&generation_dir(&root, 2).join("web"));
    touch_web(&root, "b");
    root.commit().ok();

    assert_eq!(root.live_generation(), Some(3));
    assert!(is_dormant(&root, 1), "{:?}", entries(&root, 1));
    // Generation 1's directory lacked `extra-a`: linked from generation 2.
    assert_eq!(
        root.inode(&generation_dir(&root, 3).join("extra-a")),
        extra2
    );
    // `web` differs from live: a new symlink.
    assert_ne!(root.inode(&generation_dir(&root, 3).join("web")), web2);
    assert_eq!(live_contents(&root), stock_contents(&root));
    assert_consistent(&root);
}

#[test]
fn a_rollback_to_a_dormant_generation_gives_it_its_links_and_keeps_unchanged_services() {
    let root = Root::example();
    root.commit().ok();
    let gen1 = stock_contents(&root);
    let db_dir = std::fs::canonicalize(root.live().join("db")).unwrap();
    let db = root.inode(&db_dir);
    change_stock(&root, "a");
    root.commit().ok();
    touch_web(&root, "three");
    root.commit().ok();
    assert!(is_dormant(&root, 1));

    root.run(&["rollback", "1"]).ok();
    assert_eq!(root.live_generation(), Some(1));
    assert!(!is_dormant(&root, 1), "live generation 1 has no links");
    assert_eq!(live_contents(&root), gen1);
    // db never changed: it runs from the very same directory.
    assert_eq!(
        root.inode(&std::fs::canonicalize(root.live().join("db")).unwrap()),
        db
    );
    assert_consistent(&root);
    // And back: generation 3 kept its links (it was live), 2 gave its own.
    assert!(is_dormant(&root, 2), "{:?}", entries(&root, 2));
    root.run(&["rollback", "3"]).ok();
    assert_eq!(root.live_generation(), Some(3));
    assert_eq!(live_contents(&root), stock_contents(&root));
    assert_consistent(&root);
}

#[test]
fn verify_checks_a_dormant_generations_objects_and_says_it_is_dormant() {
    let root = Root::example();
    root.commit().ok();
    for tag in ["two", "three"] {
        touch_web(&root, tag);
        root.commit().ok();
    }
    let all = root.run(&["verify", "--all", "--json"]).ok().json();
    let dormant: Vec<bool> = all["generations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["dormant"].as_bool().unwrap())
        .collect();
    assert_eq!(dormant, vec![true, false, false]);
    let one = root.run(&["verify", "1"]).ok();
    assert!(one.stdout.contains("dormant"), "{}", one.stdout);

    // Its objects are still read: damage to generation 1's web is found.
    let object = generation_services(&root, 1)["web"].clone();
    let run = root.object_dir(&object).join("run");
    let mut perms = std::fs::metadata(&run).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&run, perms).unwrap();
    std::fs::write(&run, "#!/bin/sh\n# tampered\n").unwrap();
    let (kind, _) = root.error_kind(&["verify", "1"]);
    assert_eq!(kind, "store_damaged");
}

#[test]
fn a_format_2_state_is_read_as_it_is_and_its_marker_rewritten_by_the_next_commit() {
    let root = Root::example();
    root.commit().ok();
    let format = root.state().join("format");
    std::fs::write(&format, "2\n").unwrap();
    for reader in [&["status"][..], &["list"], &["verify"]] {
        root.run(reader).ok();
    }
    touch_web(&root, "two");
    root.commit().ok();
    assert_eq!(std::fs::read_to_string(&format).unwrap(), "3\n");
    // A newer format than this version knows is refused, not guessed at.
    std::fs::write(&format, "4\n").unwrap();
    let (kind, run) = root.error_kind(&["status"]);
    assert_eq!(kind, "state_format");
    assert!(run.stderr.contains("newer"), "{}", run.stderr);
}

/// A stray name left in the directory a commit takes (by hand, or a link
/// a power cut wrote late and the manifest does not name) is removed, and
/// a missing link of an unchanged service is made again: the taken
/// directory is listed, never trusted from its manifest alone.
#[test]
fn a_taken_directory_is_corrected_against_a_listing_not_its_manifest() {
    let root = Root::example();
    root.commit().ok();
    touch_web(&root, "two");
    root.commit().ok();
    let dir1 = generation_dir(&root, 1);
    std::fs::remove_file(dir1.join("db")).unwrap();
    std::os::unix::fs::symlink("../../store/nowhere", dir1.join("stray")).unwrap();
    touch_web(&root, "three");
    root.commit().ok();
    let three = entries(&root, 3);
    assert!(
        three.contains("db") && !three.contains("stray"),
        "{three:?}"
    );
    assert_eq!(live_contents(&root), stock_contents(&root));
    assert_consistent(&root);
}

/// `gc` of a dormant generation removes two files, not a link per service.
#[test]
fn gc_removes_dormant_generations() {
    let root = Root::example();
    root.commit().ok();
    for tag in ["two", "three", "four"] {
        touch_web(&root, tag);
        root.commit().ok();
    }
    assert!(is_dormant(&root, 1) && is_dormant(&root, 2));
    root.run(&["gc", "--keep", "2"]).ok();
    assert_eq!(generations(&root), vec![3, 4]);
    assert!(!Path::new(&generation_dir(&root, 1)).exists());
    assert_consistent(&root);
}
