#!/usr/bin/env bash
# A/B of two nene builds on Redis sessions, through one nginx and one Redis:
# 64 sessions taken in turn (every request locks, reads and writes its
# session: the path a change to the Redis handler touches), one hot
# session (hand-offs and group commit), and read-only requests of that
# session (`/session/whoami`: read without the lock, expiry restarted). Runs alternate A B A B so that a
# noisy machine hurts both alike; medians and the B/A ratio are printed,
# and beside them what the neighbours cannot move as much: the CPU time
# Redis and each nene process spent per request, and Redis commands per
# request.
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
PID_A=$NENE_PID
# shellcheck disable=SC2086
BENCH_BINARY=$B start_nene "$B_PORT" NENE_SESSION_DSN="$DSN" ${B_ENV:-}
PID_B=$NENE_PID
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

# costed_run NENE_PID NAME URL [HEADER]: run_wrk, and the CPU Redis and that
# nene spent per request (µs) and Redis commands per request, appended to
# $WORK/costs.
TICK_US=$((1000000 / $(getconf CLK_TCK)))
costed_run() {
    local nene=$1 redis_before nene_before commands_before
    shift
    redis_before=$(cpu_ticks "$REDIS_PID"); nene_before=$(cpu_ticks "$nene")
    commands_before=$(redis_commands)
    run_wrk "$@"
    awk -v name="$1" -v n="$WRK_REQUESTS" -v tick="$TICK_US" \
        -v r="$(($(cpu_ticks "$REDIS_PID") - redis_before))" \
        -v a="$(($(cpu_ticks "$nene") - nene_before))" \
        -v c="$(($(redis_commands) - commands_before))" \
        'BEGIN {printf "%s|%.1f|%.1f|%.2f\n", name, r * tick / n, a * tick / n, c / n}' >>"$WORK/costs"
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    WRK_SCRIPT=$WORK/sessions-$NGINX_A.lua costed_run "$PID_A" "A, 64 sessions in turn" "http://127.0.0.1:$NGINX_A/session/counter"
    WRK_SCRIPT=$WORK/sessions-$NGINX_B.lua costed_run "$PID_B" "B, 64 sessions in turn" "http://127.0.0.1:$NGINX_B/session/counter"
    costed_run "$PID_A" "A, one hot session" "http://127.0.0.1:$NGINX_A/session/counter" "Cookie: NENESESSID=$HOT_A"
    costed_run "$PID_B" "B, one hot session" "http://127.0.0.1:$NGINX_B/session/counter" "Cookie: NENESESSID=$HOT_B"
    costed_run "$PID_A" "A, read-only" "http://127.0.0.1:$NGINX_A/session/whoami" "Cookie: NENESESSID=$HOT_A"
    costed_run "$PID_B" "B, read-only" "http://127.0.0.1:$NGINX_B/session/whoami" "Cookie: NENESESSID=$HOT_B"
done

echo "A = $A ${A_ENV:-}"
echo "B = $B ${B_ENV:-}"
echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds alternating A B, medians"
echo
median_table
echo
python3 - "$WORK/costs" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, redis, nene, commands = line.rstrip("\n").split("|")
    rows.setdefault(name, []).append((float(redis), float(nene), float(commands)))
print("| case | Redis CPU µs/request | nene CPU µs/request | Redis commands/request |")
print("|---|---:|---:|---:|")
for name, samples in rows.items():
    med = [statistics.median(s[i] for s in samples) for i in range(3)]
    print(f"| {name} | {med[0]:.1f} | {med[1]:.1f} | {med[2]:.2f} |")
PY
