#!/usr/bin/env bash
# Session benchmark: wrk through a real nginx on /session/counter, for files
# and for Redis with locking on and off, with one hot cookie (every request
# the same session) and with a new session per request. Reports req/s, p99,
# lost increments on the hot session (every 200 should be one increment) and
# Redis commands per request (INFO commandstats before and after).
#
# Usage: benches/sessions.sh [ROUNDS] [DURATION]     (defaults: 3 rounds, 10s)
# Needs: nginx, wrk, redis-server, redis-cli (Debian: apt-get install -y
# nginx wrk redis-server gettext-base). Loopback only.
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-10s}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk redis-server:redis-server redis-cli:redis-server envsubst:gettext-base

start_redis

build_nene
FILES=$(free_port); LOCKED=$(free_port); UNLOCKED=$(free_port)
start_nene "$FILES"
start_nene "$LOCKED" NENE_SESSION_DSN="redis://127.0.0.1:$REDIS_PORT"
start_nene "$UNLOCKED" NENE_SESSION_DSN="redis://127.0.0.1:$REDIS_PORT?lock=off"
NGINX_FILES=$(free_port); NGINX_LOCKED=$(free_port); NGINX_UNLOCKED=$(free_port)
site "$NGINX_FILES" files "127.0.0.1:$FILES" on
site "$NGINX_LOCKED" locked "127.0.0.1:$LOCKED" on
site "$NGINX_UNLOCKED" unlocked "127.0.0.1:$UNLOCKED" on
start_nginx

# hot NAME PORT REDIS?: one session for every request; checks the count.
hot() {
    local url="http://127.0.0.1:$2/session/counter"
    local cookie before count
    cookie=$(curl -s -i "$url" | awk -F'[=;]' 'tolower($1) ~ /^set-cookie/ {print $2}')
    before=$(redis_commands)
    run_wrk "$1, one hot session" "$url" "Cookie: NENESESSID=$cookie"
    local after requests
    after=$(redis_commands)
    requests=$WRK_REQUESTS
    sleep 0.5 # requests wrk left in flight finish
    count=$(curl -s -H "Cookie: NENESESSID=$cookie" "$url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
    echo "$1, one hot session|$requests|$count|$((after - before))" >>"$WORK/counts"
}

fresh() {
    local before after
    before=$(redis_commands)
    run_wrk "$1, new session per request" "http://127.0.0.1:$2/session/counter"
    after=$(redis_commands)
    echo "$1, new session per request|$WRK_REQUESTS||$((after - before))" >>"$WORK/counts"
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    hot "files" "$NGINX_FILES"
    hot "redis lock on" "$NGINX_LOCKED"
    hot "redis lock off" "$NGINX_UNLOCKED"
    fresh "files" "$NGINX_FILES"
    fresh "redis lock on" "$NGINX_LOCKED"
    fresh "redis lock off" "$NGINX_UNLOCKED"
done

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds alternating, medians"
echo
median_table
echo
echo "| case | requests answered (wrk) | count reached | Redis commands per request |"
echo "|---|---:|---:|---:|"
while IFS='|' read -r name requests count commands; do
    per=$(python3 -c "print(f'{$commands / max($requests, 1):.2f}')")
    echo "| $name | $requests | ${count:--} | $per |"
done <"$WORK/counts"
echo
echo "On the hot session the count should exceed the answered requests only by"
echo "the requests wrk left in flight at its deadline (at most $CONNECTIONS);"
echo "anything lower is lost updates. Redis counts the lock-release script's own"
echo "GET and DEL as commands: a request that takes the lock itself costs 6"
echo "commands in 2 round trips (SET NX + GET pipelined, then SET EX + EVAL"
echo "pipelined). Queued requests of a hot session take the lock and the data"
echo "over in-process and one write stores every change queued meanwhile, so"
echo "the hot case needs far fewer commands per request."
