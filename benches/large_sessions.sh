#!/usr/bin/env bash
# What large PHP-format sessions cost the requests beside them: two
# sessions of 100,000 variables each (PHP's `php` format, about 1.5 MB,
# under session.max_size), read, counted and written back in a loop on two
# connections, while a third connection asks /health. Reports /health's
# latency alone and beside that load (rounds alternate), and the large
# sessions' own latency: their decode runs on a blocking thread, so the
# async workers stay free for /health.
#
# Usage: benches/large_sessions.sh [ROUNDS] [DURATION]   (defaults: 3, 8s)
# Needs: nginx, wrk, redis-server, redis-cli, curl, envsubst, python3.
# Loopback only.
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-8s}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk redis-server:redis-server redis-cli:redis-server envsubst:gettext-base curl:curl

start_redis
build_nene
NENE=$(free_port)
start_nene "$NENE" NENE_SESSION_DSN="redis://127.0.0.1:$REDIS_PORT" \
    NENE_SESSION__SERIALIZE_HANDLER=php
NGINX=$(free_port)
site "$NGINX" nene "127.0.0.1:$NENE" on
start_nginx
wait_port "$NGINX"

# Two stored sessions of 100,000 variables, as a PHP application writes them.
IDS=()
for _ in 1 2; do
    id=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
    python3 -c 'import sys; sys.stdout.write("".join(f"k{n}|i:{n};" for n in range(100000)))' |
        redis-cli -p "$REDIS_PORT" -x SET "sess_$id" >/dev/null
    IDS+=("$id")
done
size=$(redis-cli -p "$REDIS_PORT" STRLEN "sess_${IDS[0]}")
echo "two sessions of $size bytes" >&2

THREADS=1 CONNECTIONS=1
health() {
    run_wrk "$1" "http://127.0.0.1:$NGINX/health"
    echo "$1: p50 $WRK_P50_MS ms" >&2
}
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    health "/health alone"
    for at in 0 1; do
        wrk -t1 -c1 -d"$DURATION" --latency -H "Cookie: NENESESSID=${IDS[$at]}" \
            "http://127.0.0.1:$NGINX/session/counter" >"$WORK/large-$at.out" &
    done
    health "/health beside two large sessions"
    wait "${!}" 2>/dev/null || true
    sleep 1
    for at in 0 1; do
        echo "large session $at: $(awk '/Requests\/sec/ {print $2}' "$WORK/large-$at.out") req/s," \
            "p50 $(awk '$1=="50%" {print $2}' "$WORK/large-$at.out")," \
            "$(awk '/Non-2xx/ {print}' "$WORK/large-$at.out")" >&2
    done
done

echo "wrk -t1 -c1 -d$DURATION --latency, $ROUNDS rounds alternating, medians"
echo
median_table
echo
for id in "${IDS[@]}"; do
    count=$(curl -s -H "Cookie: NENESESSID=$id" "http://127.0.0.1:$NGINX/session/counter" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
    echo "session ${id:0:6}…: count $count after the runs (every answered request counted once)"
done
