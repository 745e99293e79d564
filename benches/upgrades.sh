#!/usr/bin/env bash
# Graceful upgrades under load: wrk through nginx (one upstream server) on
# one hot session's /session/counter while nene is sent SIGUSR2 every half
# second, UPGRADES times (each a check, a drain and an exec of the binary
# in place, docs/decisions/0025). Reports wrk's non-2xx answers and socket
# errors (both should be 0), the count reached against the requests
# answered (no acknowledged increment lost), and that the process id did
# not change. The same with SIGTERM and a new nene on a socket this script
# holds is what tests/process/passed_socket.rs does.
#
# Usage: benches/upgrades.sh [UPGRADES] (default 20)
# Needs: nginx, wrk, curl, envsubst, python3. Loopback only.
set -euo pipefail
UPGRADES=${1:-20}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk envsubst:gettext-base curl:curl

build_nene
NENE=$(free_port)
start_nene "$NENE" RUST_LOG=info
wait_port "$NENE"
PID=$NENE_PID
NGINX=$(free_port)
site "$NGINX" nene "127.0.0.1:$NENE" on
start_nginx
wait_port "$NGINX"

url="http://127.0.0.1:$NGINX/session/counter"
cookie=$(curl -s -i "$url" | awk -F'[=;]' 'tolower($1) ~ /^set-cookie/ {print $2}')
seconds=$((UPGRADES / 2 + 3))
THREADS=2 CONNECTIONS=16 DURATION=${seconds}s
run_wrk "wrk during $UPGRADES upgrades" "$url" "Cookie: NENESESSID=$cookie" &
WRK=$!
sleep 1
for _ in $(seq 1 "$UPGRADES"); do
    kill -USR2 "$PID"
    sleep 0.5
done
wait "$WRK"
sleep 0.5
count=$(curl -s -H "Cookie: NENESESSID=$cookie" "$url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
upgraded=$(grep -c "passed in as fd 3" "$WORK/nene-$NENE.log" || true)
refused=$(grep -c "upgrade refused" "$WORK/nene-$NENE.log" || true)
echo "upgrades done: $upgraded of $UPGRADES (refused: $refused); process $PID still the same: $(kill -0 "$PID" 2>/dev/null && echo yes || echo no)"
echo "answered $(awk '/requests in/ {print $1}' "$WORK/wrk.out"), count reached $count (at least the answered requests + 1 for this check; more by what wrk left in flight)"
grep -E "Non-2xx|Socket errors" "$WORK/wrk.out" || echo "wrk reported no non-2xx answers and no socket errors"
