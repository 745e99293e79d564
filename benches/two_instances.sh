#!/usr/bin/env bash
# A/B of two nene builds where two instances share one hot Redis session:
# nginx sends the requests of one session round robin to two nene processes,
# so every request's lock is taken from the other instance (Redis lock
# hand-off between instances). Also the same with the session pinned to one
# instance (`hash $cookie_NENESESSID`), the ceiling. Runs alternate A B A B;
# medians are printed, and the count reached is checked against the
# requests answered (no lost increments).
#
# Usage: benches/two_instances.sh A_BINARY B_BINARY [ROUNDS] [DURATION]
#   e.g. git worktree add /tmp/old HEAD~1 && (cd /tmp/old && cargo build --release)
#   benches/two_instances.sh /tmp/old/target/release/nene target/release/nene 3 10s
# A_WORKER_THREADS / B_WORKER_THREADS, when set, are each side's
# server.worker_threads (one build against itself, two thread counts:
#   A_WORKER_THREADS=1 benches/two_instances.sh target/release/nene target/release/nene).
# Needs: nginx, wrk, redis-server, redis-cli, curl, envsubst. Loopback only.
set -euo pipefail
A=${1:?A binary}
B=${2:?B binary}
ROUNDS=${3:-3}
DURATION=${4:-10s}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk redis-server:redis-server redis-cli:redis-server envsubst:gettext-base curl:curl

start_redis
DSN="redis://127.0.0.1:$REDIS_PORT"
A1=$(free_port); A2=$(free_port); B1=$(free_port); B2=$(free_port)
A_THREADS=NENE_SERVER__WORKER_THREADS=${A_WORKER_THREADS:-0}
B_THREADS=NENE_SERVER__WORKER_THREADS=${B_WORKER_THREADS:-0}
BENCH_BINARY=$A start_nene "$A1" NENE_SESSION_DSN="$DSN" "$A_THREADS"
BENCH_BINARY=$A start_nene "$A2" NENE_SESSION_DSN="$DSN" "$A_THREADS"
BENCH_BINARY=$B start_nene "$B1" NENE_SESSION_DSN="$DSN" "$B_THREADS"
BENCH_BINARY=$B start_nene "$B2" NENE_SESSION_DSN="$DSN" "$B_THREADS"
NGINX_A=$(free_port); NGINX_B=$(free_port); PINNED_A=$(free_port); PINNED_B=$(free_port)
site "$NGINX_A" build_a "127.0.0.1:$A1; server 127.0.0.1:$A2" on
site "$NGINX_B" build_b "127.0.0.1:$B1; server 127.0.0.1:$B2" on
# The same pairs with each session pinned to one instance by its cookie.
site "$PINNED_A" pinned_a "127.0.0.1:$A1; server 127.0.0.1:$A2; hash \$cookie_NENESESSID consistent" on
site "$PINNED_B" pinned_b "127.0.0.1:$B1; server 127.0.0.1:$B2; hash \$cookie_NENESESSID consistent" on
start_nginx

hot_cookie() {
    curl -s -i "http://127.0.0.1:$1/session/counter" | awk -F'[=;]' 'tolower($1) ~ /^set-cookie/ {print $2}'
}

# hot NAME PORT: wrk on one session; records requests answered and the count reached.
hot() {
    local url="http://127.0.0.1:$2/session/counter" cookie count
    cookie=$(hot_cookie "$2")
    run_wrk "$1" "$url" "Cookie: NENESESSID=$cookie"
    sleep 0.5 # requests wrk left in flight finish
    count=$(curl -s -H "Cookie: NENESESSID=$cookie" "$url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
    echo "$1|$WRK_REQUESTS|$count" >>"$WORK/counts"
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    hot "A, one hot session on two instances" "$NGINX_A"
    hot "B, one hot session on two instances" "$NGINX_B"
    hot "A, pinned to one instance" "$PINNED_A"
    hot "B, pinned to one instance" "$PINNED_B"
done

echo "A = $A (server.worker_threads ${A_WORKER_THREADS:-0})"
echo "B = $B (server.worker_threads ${B_WORKER_THREADS:-0})"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds alternating A B, medians"
echo
median_table
echo
echo "| run | requests answered | count reached |"
echo "|---|---:|---:|"
while IFS='|' read -r name requests count; do echo "| $name | $requests | $count |"; done <"$WORK/counts"
