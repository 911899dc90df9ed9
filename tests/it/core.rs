//! Core behaviour (issue 2): commit, inode sharing, rollback, scan directory.

use crate::harness::*;

#[test]
fn first_commit_creates_generation_one_and_links_every_service() {
    let root = Root::example();
    let run = root.commit().ok();
    assert!(
        run.stdout.contains("generation 1 is live"),
        "{}",
        run.stdout
    );
    assert_eq!(root.live_generation(), Some(1));
    for name in ["cron", "db", "web"] {
        let link = std::fs::read_link(root.scandir().join(name)).unwrap();
        assert_eq!(link, root.live().join(name));
        assert!(root.scandir().join(name).join("run").is_file());
    }
}
