#!/bin/sh
# The hands-on s6 part of docs/guide.md ("Try it under s6"), line for line:
# every command here is quoted in the guide, and tests/it/guide.rs runs this
# script against a temporary directory (DEMO) with Debian's s6. Needs
# svcdir-update and s6 in PATH. Run it yourself: DEMO=$(mktemp -d) sh docs/guide-s6.sh
set -eu
: "${DEMO:?set DEMO to an empty directory}"

# A service that says which version it is
mkdir -p "$DEMO/stock/hello"
printf '#!/bin/sh\necho "hello 1.0 as $$" >> %s/hello.log\nexec sleep 2147483647\n' "$DEMO" > "$DEMO/stock/hello/run"
chmod 755 "$DEMO/stock/hello/run"
echo 'supervisor: s6' > "$DEMO/config.yaml"
svcdir-update --root "$DEMO" commit

# Start the scanner on the scan directory, stop it when done
s6-svscan "$DEMO/service" > /dev/null 2>&1 &
trap 's6-svscanctl -t "$DEMO/service"' EXIT
for i in $(seq 100); do s6-svok "$DEMO/service/hello" && break; sleep 0.1; done
s6-svwait -u -t 10000 "$DEMO/service/hello"

# Upgrade: the old instance stops, the new one starts, checked healthy
sed -i 's/hello 1.0/hello 2.0/' "$DEMO/stock/hello/run"
svcdir-update --root "$DEMO" commit --check-up 10
s6-svstat "$DEMO/service/hello"
cat "$DEMO/hello.log"
