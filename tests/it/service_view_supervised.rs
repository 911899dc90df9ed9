//! `status NAME` and `services` under real supervisors: the pid, how long
//! it is up, and whether the supervisor wants it up, as s6 and runit say
//! them (docs/cli.md#status-name-services).

use crate::harness::*;
use crate::supervise_harness::*;

fn shows_pid_uptime_and_wanted_state(family: Family) {
    let root = Root::empty();
    configure(&root, family);
    add_logging_service(&root, "web", "v1");
    add_logging_service(&root, "db", "v1");
    root.commit().ok();
    let scanner = Scanner::start(&root, family);
    let pid = scanner.wait_pid("web");
    scanner.wait_pid("db");

    let web = root.run(&["--json", "status", "web"]).ok().json();
    let sup = &web["supervisor"];
    assert_eq!(sup["supervised"], true, "{web}");
    assert_eq!(sup["up"], true, "{web}");
    assert_eq!(sup["want_up"], true, "{web}");
    assert_eq!(sup["pid"], pid, "{web}");
    assert!(sup["for_secs"].is_u64(), "{web}");
    let human = root.run(&["status", "web"]).ok().stdout;
    let line = human
        .lines()
        .find(|l| l.starts_with("supervisor:"))
        .expect(&human);
    assert!(
        line.contains(&format!("pid {pid}")) && line.contains("up for ") && line.contains(" s,"),
        "{human}"
    );
    assert!(line.ends_with("wanted up"), "{human}");

    admin_down(family, &live_object(&root, "db"));
    let db = root.run(&["--json", "status", "db"]).ok().json();
    assert_eq!(db["supervisor"]["up"], false, "{db}");
    assert_eq!(db["supervisor"]["want_up"], false, "{db}");
    let all = root.run(&["services"]).ok().stdout;
    let db_line = all
        .lines()
        .find(|l| l.trim_start().starts_with("db "))
        .expect(&all);
    assert!(
        db_line.contains("down for") && db_line.contains("wanted down"),
        "{all}"
    );
    let web_line = all
        .lines()
        .find(|l| l.trim_start().starts_with("web "))
        .expect(&all);
    assert!(web_line.contains(&format!("pid {pid}, wanted up")), "{all}");
    assert!(all.lines().nth(1).unwrap().contains("SUPERVISOR"), "{all}");
}

#[test]
fn s6_status_name_shows_pid_uptime_and_wanted_state() {
    if !Family::S6.require() {
        return;
    }
    shows_pid_uptime_and_wanted_state(Family::S6);
}

#[test]
fn runit_status_name_shows_pid_uptime_and_wanted_state() {
    if !Family::Runit.require() {
        return;
    }
    shows_pid_uptime_and_wanted_state(Family::Runit);
}
