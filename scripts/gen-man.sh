#!/usr/bin/env bash
# Regenerates the man pages under docs/man/ from the clap definitions
# (`svcdir-update man`); tests/it/interface.rs fails while they are stale.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q
bin="${CARGO_TARGET_DIR:-target}/debug/svcdir-update"
rm -f docs/man/*.1
mkdir -p docs/man
for page in $("$bin" man --list); do
  "$bin" man "$page" > "docs/man/$page.1"
done
echo "regenerated $(ls docs/man/*.1 | wc -l) pages in docs/man/"
