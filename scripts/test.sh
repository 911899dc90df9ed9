#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need
# (Debian's s6, runit and daemontools, strace, dpkg-dev, GNU time for the peak-memory
# checks), then `cargo test` with the crash failpoints compiled in. Needs root
# for apt-get, the ownership tests, `mount -t tmpfs` (ENOSPC test) and
# `chattr +i`; setpriv, mount (util-linux) and chattr (e2fsprogs) are part of
# every Debian system.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v s6-svscan >/dev/null 2>&1 || need+=(s6)
command -v runsvdir >/dev/null 2>&1 || need+=(runit)
command -v svscan >/dev/null 2>&1 || need+=(daemontools)
command -v strace >/dev/null 2>&1 || need+=(strace)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg-dev)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The real-supervisor tests wait on s6, runit and daemontools with deadlines; they run
# in a pass of their own so the CPU-heavy crash and concurrency tests do not
# starve them on a 2-core machine; one at a time, so no two scanners compete.
cargo test --features failpoints "$@" -- --skip supervisors::
cargo test --features failpoints --test it "$@" -- supervisors:: --test-threads=1
