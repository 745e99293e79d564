#!/usr/bin/env bash
# A/B of two nene builds on Redis sessions, through one nginx and one Redis:
# 64 sessions taken in turn (every request locks, reads and writes its
# session: the path a change to the Redis handler touches) and one hot
# session (hand-offs and group commit). Runs alternate A B A B so that a
# noisy machine hurts both alike; medians and the B/A ratio are printed.
#
# Usage: benches/redis_ab.sh A_BINARY B_BINARY [ROUNDS] [DURATION]
#   A_ENV / B_ENV: extra NENE_* settings for one side, e.g. one build with
#   A_ENV=NENE_SESSION__SERIALIZE_HANDLER=json B_ENV=NENE_SESSION__SERIALIZE_HANDLER=php
#   e.g. build the previous commit into another target directory:
#   git worktree add /tmp/old HEAD~1 && (cd /tmp/old && cargo build --release)
#   benches/redis_ab.sh /tmp/old/target/release/nene target/release/nene 3 10s
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
A_PORT=$(free_port); B_PORT=$(free_port)
# shellcheck disable=SC2086 # A_ENV/B_ENV are NAME=VALUE words
BENCH_BINARY=$A start_nene "$A_PORT" NENE_SESSION_DSN="$DSN" ${A_ENV:-}
# shellcheck disable=SC2086
BENCH_BINARY=$B start_nene "$B_PORT" NENE_SESSION_DSN="$DSN" ${B_ENV:-}
NGINX_A=$(free_port); NGINX_B=$(free_port)
site "$NGINX_A" build_a "127.0.0.1:$A_PORT" on
site "$NGINX_B" build_b "127.0.0.1:$B_PORT" on
start_nginx

sessions_script "$NGINX_A" 64
sessions_script "$NGINX_B" 64
hot_cookie() {
    curl -s -i "http://127.0.0.1:$1/session/counter" | awk -F'[=;]' 'tolower($1) ~ /^set-cookie/ {print $2}'
}
HOT_A=$(hot_cookie "$NGINX_A")
HOT_B=$(hot_cookie "$NGINX_B")

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    WRK_SCRIPT=$WORK/sessions-$NGINX_A.lua run_wrk "A, 64 sessions in turn" "http://127.0.0.1:$NGINX_A/session/counter"
    WRK_SCRIPT=$WORK/sessions-$NGINX_B.lua run_wrk "B, 64 sessions in turn" "http://127.0.0.1:$NGINX_B/session/counter"
    run_wrk "A, one hot session" "http://127.0.0.1:$NGINX_A/session/counter" "Cookie: NENESESSID=$HOT_A"
    run_wrk "B, one hot session" "http://127.0.0.1:$NGINX_B/session/counter" "Cookie: NENESESSID=$HOT_B"
done

echo "A = $A ${A_ENV:-}"
echo "B = $B ${B_ENV:-}"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds alternating A B, medians"
echo
median_table
