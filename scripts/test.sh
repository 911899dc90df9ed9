#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (Debian's s6, runit and daemontools, strace, dpkg, pacman, script(1), man, GNU time for the
# peak-memory checks), then `cargo test` with the crash failpoints compiled
# in. Needs root for apt-get, the ownership tests, `mount -t tmpfs` (ENOSPC
# test) and `chattr +i`; setpriv, mount (util-linux) and chattr (e2fsprogs)
# are part of every Debian system.
#
# A test whose tool is missing fails (tests/it/harness.rs `require_tool`),
# unless SVCDIR_TEST_ALLOW_MISSING_TOOLS=1 lets it leave itself out (refused
# under CI=true); this script ends by saying how many were left out.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v s6-svscan >/dev/null 2>&1 || need+=(s6)
command -v runsvdir >/dev/null 2>&1 || need+=(runit)
command -v svscan >/dev/null 2>&1 || need+=(daemontools)
command -v strace >/dev/null 2>&1 || need+=(strace)
# The daemon of Debian's runit-services `haveged` (tests/it/distros.rs).
command -v haveged >/dev/null 2>&1 || need+=(haveged)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
# pacman and makepkg build and install the ALPM hook's packages (tests/it/pacman.rs).
command -v pacman >/dev/null 2>&1 || need+=(pacman-package-manager)
command -v makepkg >/dev/null 2>&1 || need+=(makepkg fakeroot)
command -v bsdtar >/dev/null 2>&1 || need+=(libarchive-tools)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
command -v man >/dev/null 2>&1 || need+=(man-db)
# The completion scripts are sourced and driven in each shell (tests/it/completions.rs).
command -v zsh >/dev/null 2>&1 || need+=(zsh)
command -v fish >/dev/null 2>&1 || need+=(fish)
[ -x /usr/bin/time ] || need+=(time)
# setfacl: the default-ACL refusal (tests/it/hostile.rs).
command -v setfacl >/dev/null 2>&1 || need+=(acl)
# The power-cut model is a FUSE file system (tests/it/powercut_fs.rs).
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
# The crash matrix also runs on xfs and btrfs loop images (tests/it/crash.rs).
command -v mkfs.xfs >/dev/null 2>&1 || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null 2>&1 || need+=(btrfs-progs)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# tests/it/distros.rs runs Debian's own runit-services (made by cpsv from the
# runit package): fetch the two packages once, from Debian's archive.
debs=target/distro-debs
if ! ls "$debs"/runit_*.deb "$debs"/runit-services_*.deb >/dev/null 2>&1; then
  mkdir -p "$debs"
  (cd "$debs" && { apt-get download -qq runit runit-services 2>/dev/null ||
    { apt-get update -qq && apt-get download -qq runit runit-services; }; })
fi

# Every test left out for a missing tool appends a line here (the harness's
# `left_out_log`, under CARGO_TARGET_TMPDIR); counted at the end, pass or fail.
left_out="${CARGO_TARGET_DIR:-target}/tmp/left-out-for-missing-tools.txt"
rm -f "$left_out"
report_left_out() {
  if [ -s "$left_out" ]; then
    echo "$(wc -l <"$left_out") test(s) left out for a missing tool:" >&2
    cat "$left_out" >&2
  else
    echo "no test left out for a missing tool" >&2
  fi
}
# The power-cut sweep (tests/it/powercut.rs) appends one row per phase here.
powercut_table="${CARGO_TARGET_DIR:-target}/tmp/powercut-table.txt"
rm -f "$powercut_table"
report_powercut() {
  if [ -s "$powercut_table" ]; then
    echo "power-cut sweep (SVCDIR_POWERCUT_FULL=1 cuts at every operation):" >&2
    echo "| phase                              | ops   | cuts | old  | new  | broken | time     |" >&2
    cat "$powercut_table" >&2
  fi
}
trap 'report_left_out; report_powercut' EXIT

# Every test that drives a real s6, runit or daemontools sits in a module
# named `supervisors` (slow::supervisors, distros::supervisors,
# restart_on::supervisors): they wait with deadlines, so they run
# in a pass of their own, where the CPU-heavy crash and concurrency tests
# cannot starve them on a 2-core machine; one at a time, so no two scanners
# compete. The inner loop while developing is
# `cargo test --features failpoints -- --skip slow::` (README.md#development).
cargo test --features failpoints "$@" -- --skip supervisors::
cargo test --features failpoints --test it "$@" -- supervisors:: --test-threads=1
