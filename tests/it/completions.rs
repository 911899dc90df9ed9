//! Completions that complete (docs/cli.md#completions-shell): each
//! shell's script, as `svcdir-update completions SHELL` prints it, is
//! sourced in that very shell and asked to complete — bash through its
//! completion function as `complete -p` names it, fish with `complete -C`,
//! zsh on a pseudo-terminal (zsh/zpty) pressing TAB. Options after a
//! command complete, and the hidden commands (`man`, `failpoints`) are not
//! offered.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// Writes `svcdir-update completions SHELL` to a file in `dir`.
fn script(shell: &str, dir: &Path) -> PathBuf {
    let text = Root::empty().run(&["completions", shell]).ok().stdout;
    let file = dir.join(format!("svcdir-update.{shell}"));
    std::fs::write(&file, text).unwrap();
    file
}

fn words(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// What bash's completion for `svcdir-update` offers for `line` (the last
/// word is the one completed; a trailing space completes an empty word).
fn bash_offers(file: &Path, line: &str) -> Vec<String> {
    let script = format!(
        r#"source '{}'
spec=$(complete -p svcdir-update) || exit 9
fn=${{spec#*-F }}; fn=${{fn%% *}}
read -ra COMP_WORDS <<< "svcdir-update {line}"
[[ "{line}" == *" " || -z "{line}" ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
COMP_LINE="svcdir-update {line}"; COMP_POINT=${{#COMP_LINE}}
"$fn" svcdir-update "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\n' "${{COMPREPLY[@]}}""#,
        file.display()
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    words(&out)
}

#[test]
fn bash_completes_options_after_a_command_and_hides_hidden_commands() {
    let dir = tempfile::tempdir().unwrap();
    let file = script("bash", dir.path());
    let commit = bash_offers(&file, "commit --");
    for option in [
        "--dry-run",
        "--allow-stop-all",
        "--message",
        "--force",
        "--json",
    ] {
        assert!(commit.contains(&option.to_string()), "{option}: {commit:?}");
    }
    assert_eq!(bash_offers(&file, "rollback --d"), vec!["--dry-run"]);
    let commands = bash_offers(&file, "");
    for name in ["commit", "history", "pin", "unpin", "completions"] {
        assert!(commands.contains(&name.to_string()), "{name}: {commands:?}");
    }
    for hidden in ["man", "failpoints"] {
        assert!(
            !commands.contains(&hidden.to_string()),
            "{hidden}: {commands:?}"
        );
    }
}

#[test]
fn fish_completes_options_after_a_command_and_hides_hidden_commands() {
    if !require_tool("fish", "fish") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = script("fish", dir.path());
    let offers = |line: &str| {
        let cmd = format!(
            "source '{}'; complete -C 'svcdir-update {line}' | string replace -r '\\t.*' ''",
            file.display()
        );
        let out = Command::new("fish")
            .args(["--no-config", "-c", &cmd])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        words(&out)
    };
    let commit = offers("commit --");
    for option in ["--dry-run", "--allow-stop-all", "--message"] {
        assert!(commit.contains(&option.to_string()), "{option}: {commit:?}");
    }
    let commands = offers("");
    assert!(commands.contains(&"history".to_string()), "{commands:?}");
    for hidden in ["man", "failpoints"] {
        assert!(
            !commands.contains(&hidden.to_string()),
            "{hidden}: {commands:?}"
        );
    }
}

/// Types `line` and TAB into an interactive zsh (on a pty, through the
/// zsh/zpty module) whose completion system loaded the script; once the
/// listing has begun (`started` shows: zsh lists nothing while input is
/// pending), kills the line and runs a command that prints a marker, and
/// returns what zsh wrote up to the marker — the whole listing — or what
/// came within 10 s.
fn zsh_offers(file: &Path, line: &str, started: &str) -> String {
    let driver = format!(
        r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT='>'; autoload -U compinit; compinit -u -D; setopt NO_BEEP; LISTMAX=1000"
zpty -w z "source '{}'; compdef _svcdir-update svcdir-update"
zpty -w -n z $'svcdir-update {line}\t'
out=''
deadline=$(( SECONDS + 10 ))
while (( SECONDS < deadline )) && [[ "$out" != *'{started}'* ]]; do
  zpty -r -t z chunk && out+="$chunk"
done
zpty -w z $'\x15print LISTING\'\'-DONE'
while (( SECONDS < deadline )) && [[ "$out" != *LISTING-DONE* ]]; do
  zpty -r -t z chunk && out+="$chunk"
done
zpty -d z
print -r -- "$out""#,
        file.display()
    );
    let out = Command::new("zsh")
        .args(["-f", "-c", &driver])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

#[test]
fn zsh_completes_options_after_a_command_and_hides_hidden_commands() {
    if !require_tool("zsh", "zsh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = script("zsh", dir.path());
    let commit = zsh_offers(&file, "commit --", "--allow-stop-all");
    assert!(commit.contains("LISTING-DONE"), "{commit}");
    for option in ["--dry-run", "--allow-stop-all", "--message"] {
        assert!(commit.contains(option), "{option}: {commit}");
    }
    let commands = zsh_offers(&file, "", "check");
    let listed: Vec<&str> = commands
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(listed.contains(&"history"), "{commands}");
    for hidden in ["man", "failpoints"] {
        assert!(!listed.contains(&hidden), "{hidden}: {commands}");
    }
}
