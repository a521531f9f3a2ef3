#!/usr/bin/env bash
# Autobahn|Testsuite conformance, both sides, strict: every case must be OK.
# Needs ../shared/conformance/autobahn.py (the suite is not part of this repository).
# Usage: scripts/autobahn.sh [CASES]   (default: every case, 1-13 including 9.*)
set -euo pipefail
cd "$(dirname "$0")/.."
runner=../shared/conformance/autobahn.py
if [ ! -f "$runner" ]; then
    echo "autobahn: SKIPPED: $runner not found (the Autobahn suite is not shipped with sockjet)"
    exit 0
fi
cases=${1:-"*"}
cargo build --release -p sockjet-examples --bin autobahn_server --bin autobahn_client
cargo build --release -p sockjet-cli
out=$(mktemp -d "${TMPDIR:-/tmp}/sockjet-autobahn-XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

target/release/autobahn_server "127.0.0.1:$port" > "$out/testee-server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
done

status=0
echo "== autobahn: server side (cases $cases)"
python3 "$runner" server "ws://127.0.0.1:$port" --cases "$cases" --exclude '' --strict \
    --out "$out/server" | tee "$out/server.txt" || status=1
kill $server_pid 2>/dev/null || true

# The same server cases against the io_uring engine (`sockjet serve --engine uring`), where
# the kernel allows io_uring; its echo is the CLI's, with the suite's 16 MiB messages let in.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/sockjet serve --engine uring "127.0.0.1:$port" --max-size 67108864 \
    --ping-interval 0 -q > "$out/testee-uring.log" 2>&1 &
server_pid=$!
uring=no
for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then uring=yes; break; fi
    kill -0 $server_pid 2>/dev/null || break
    sleep 0.1
done
if [ "$uring" = yes ]; then
    echo "== autobahn: server side, io_uring engine (cases $cases)"
    python3 "$runner" server "ws://127.0.0.1:$port" --cases "$cases" --exclude '' --strict \
        --out "$out/server-uring" | sed 's/^autobahn-server:/autobahn-server-uring:/' \
        | tee "$out/server-uring.txt" || status=1
else
    echo "autobahn: io_uring engine SKIPPED: $(cat "$out/testee-uring.log")"
fi
kill $server_pid 2>/dev/null || true

echo "== autobahn: client side (cases $cases)"
python3 "$runner" client --testee "$PWD/target/release/autobahn_client {url} {agent}" \
    --cases "$cases" --exclude '' --strict --out "$out/client" | tee "$out/client.txt" || status=1

echo "autobahn reports: $out/server/reports and $out/client/reports"
# One closing line for both sides: "autobahn: N passed, M failed".
passed=0
failed=0
sides="server client"
[ "$uring" = yes ] && sides="server server-uring client"
for side in $sides; do
    line=$(grep -E "^autobahn-$side: [0-9]+ passed, [0-9]+ failed" "$out/$side.txt" || true)
    if [ -z "$line" ]; then
        echo "autobahn: the $side side produced no summary"
        status=1
        continue
    fi
    passed=$((passed + $(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')))
    failed=$((failed + $(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')))
done
[ "$failed" -eq 0 ] || status=1
echo "autobahn: $passed passed, $failed failed"
exit $status
