#!/bin/sh
# The hands-on part of docs/guide.md, line for line: every command here is
# quoted in the guide, and tests/it/guide.rs runs this script against a
# temporary directory (DEMO) to prove the guide works. Needs svcdir-update
# in PATH. Run it yourself: DEMO=$(mktemp -d) sh docs/guide.sh
set -eu
: "${DEMO:?set DEMO to an empty directory}"

# First commit
mkdir -p "$DEMO/stock/hello/log"
printf '#!/bin/sh\nexec 2>&1\necho "hello 1.0"\nexec sleep 2147483647\n' > "$DEMO/stock/hello/run"
printf '#!/bin/sh\nexec cat\n' > "$DEMO/stock/hello/log/run"
chmod 755 "$DEMO/stock/hello/run" "$DEMO/stock/hello/log/run"
svcdir-update --root "$DEMO" check
svcdir-update --root "$DEMO" plan
svcdir-update --root "$DEMO" commit
ls -l "$DEMO/service"
svcdir-update --root "$DEMO" status

# Upgrade
sed -i 's/hello 1.0/hello 2.0/' "$DEMO/stock/hello/run"
svcdir-update --root "$DEMO" plan
svcdir-update --root "$DEMO" commit
svcdir-update --root "$DEMO" list
svcdir-update --root "$DEMO" diff 1 2

# Rollback
svcdir-update --root "$DEMO" rollback
svcdir-update --root "$DEMO" verify

# Update locks: a commit that would restart hello waits for its lock
svcdir-update --root "$DEMO" lock hello -- sh -c 'svcdir-update --root "$DEMO" commit || echo "commit deferred: exit $?"'
svcdir-update --root "$DEMO" status
svcdir-update --root "$DEMO" commit

# Recovery after a crash
svcdir-update --root "$DEMO" recover

# Boot: /run is empty again
rm -rf "$DEMO/service" "$DEMO/run"
svcdir-update --root "$DEMO" sync
svcdir-update --root "$DEMO" sync

# Housekeeping
svcdir-update --root "$DEMO" gc --keep 1
svcdir-update --root "$DEMO" list

# The operator's day: look first, leave a note, keep a known-good generation
sed -i 's/hello 2.0/hello 2.1/' "$DEMO/stock/hello/run"
svcdir-update --root "$DEMO" commit --dry-run
svcdir-update --root "$DEMO" commit -m "hello 2.1: the greeting fix"
svcdir-update --root "$DEMO" history
svcdir-update --root "$DEMO" pin 2
svcdir-update --root "$DEMO" gc --keep 1 --dry-run
svcdir-update --root "$DEMO" rollback --dry-run
svcdir-update --root "$DEMO" rollback
svcdir-update --root "$DEMO" list
svcdir-update --root "$DEMO" unpin 2

# One service from every side, and what changed inside it
svcdir-update --root "$DEMO" status hello
svcdir-update --root "$DEMO" services
svcdir-update --root "$DEMO" diff -p 2 3 hello

# Every generation's objects checked; a damaged one restored from the stock
svcdir-update --root "$DEMO" verify --all
svcdir-update --root "$DEMO" verify --repair
