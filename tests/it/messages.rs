//! Messages that finish the sentence (docs/faq.md): config errors in plain
//! words with the key and line, a near-miss key named, `rollback` to the
//! live generation saying so, lock holders with wall-clock start times,
//! and no parentheses inside parentheses. Disk-full and EPERM advice is
//! asserted where those failures are made, in hostile.rs.

use std::time::Duration;

use crate::harness::*;

/// The deepest nesting of parentheses in `text`.
fn paren_depth(text: &str) -> i32 {
    let (mut depth, mut max) = (0, 0);
    for c in text.chars() {
        depth += i32::from(c == '(') - i32::from(c == ')');
        max = max.max(depth);
    }
    max
}

#[test]
fn config_errors_speak_plainly_and_name_a_near_miss() {
    let root = Root::example();
    let cases = [
        (
            "keep_generations: -1\n",
            "keep_generations must be a whole number >= 1, not -1, at line 1",
        ),
        (
            "keep_generation: 3\n",
            "unknown key `keep_generation`; did you mean `keep_generations`?",
        ),
        (
            "stock:\n\t- stock\n",
            "line 2: tabs cannot indent YAML; indent with spaces",
        ),
        (
            "lock_wait: soon\n",
            "lock_wait must be a number of seconds from 0 to 604800, like 30 or 0.5, not \"soon\"",
        ),
        (
            "supervisor: s7\n",
            "supervisor must be one of s6, runit, daemontools, none, not `s7`, at line 1; did \
             you mean `s6`?",
        ),
        (
            "limits: {max_entry: 5}\n",
            "unknown key `max_entry` in limits, at line 1; did you mean `max_entries`?",
        ),
    ];
    for (yaml, said) in cases {
        root.config(yaml);
        let (kind, run) = root.error_kind(&["plan"]);
        assert_eq!(
            (kind.as_str(), run.code),
            ("config", i32::from(exit::DATA_ERR))
        );
        assert!(run.stderr.contains(said), "{yaml:?}: {}", run.stderr);
        for jargon in ["usize", "u64", "f64", "cannot start any token"] {
            assert!(!run.stderr.contains(jargon), "{yaml:?}: {}", run.stderr);
        }
        assert!(paren_depth(&run.stderr) <= 1, "{}", run.stderr);
    }
}

#[test]
fn rollback_to_the_live_generation_says_it_is_already_live() {
    let root = Root::example();
    root.commit().ok();
    let before = root.snapshot();
    let run = root.run(&["rollback", "1"]).ok();
    assert_eq!(run.stdout, "generation 1 is already live\n");
    assert_eq!(root.snapshot(), before);
}

/// A held update lock names its holder with the time it started, as a
/// wall-clock time (never clock ticks), and no parentheses nest.
#[test]
fn a_lock_holder_is_named_with_a_wall_clock_start_time() {
    let root = Root::example();
    root.commit().ok();
    let mut holder = root.command(&["lock", "web", "--", "sleep", "30"]);
    let _holder = KillOnDrop(holder.spawn().unwrap());
    wait_until("web's lock held", Duration::from_secs(10), || {
        root.run(&["--json", "status"]).json()["update_locks"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    });
    root.write_stock("web/env/VERSION", "2.0\n", 0o644);
    let run = root.run(&["--wait", "0", "commit"]).code(exit::TEMP_FAIL);
    let year = &humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..5];
    assert!(
        run.stderr.contains(&format!(" (started {year}")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("tick"), "{}", run.stderr);
    assert!(paren_depth(&run.stderr) <= 1, "{}", run.stderr);
}
