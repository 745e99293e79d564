#!/usr/bin/env bash
# Redis topologies side by side, one nene build: the session counter over 64
# sessions in turn (every request locks, reads and writes its session)
# through plain `redis://`, `redis://…?wait=1` (a replica must acknowledge
# each write), `redis+sentinel://` (three sentinels, primary and replica) and
# `redis+cluster://` (three primaries). Runs alternate between the four;
# medians are printed.
#
# Usage: benches/redis_ha.sh [ROUNDS] [DURATION]     (defaults: 3 rounds, 10s)
# Needs: nginx, wrk, redis-server, redis-cli, curl, envsubst. Loopback only.
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-10s}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk redis-server:redis-server redis-cli:redis-tools envsubst:gettext-base curl:curl

# redis_node PORT [ARGS...]: one more throwaway redis-server.
redis_node() {
    local port=$1
    shift
    mkdir -p "$WORK/redis-$port"
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK/redis-$port" "$@" >"$WORK/redis-$port.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port"
}

start_redis # the primary, $REDIS_PORT
REPLICA=$(free_port)
redis_node "$REPLICA" --replicaof 127.0.0.1 "$REDIS_PORT"
SENTINELS=""
for _ in 1 2 3; do
    port=$(free_port)
    mkdir -p "$WORK/sentinel-$port"
    printf 'port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor bench 127.0.0.1 %s 2\n' \
        "$port" "$WORK/sentinel-$port" "$REDIS_PORT" >"$WORK/sentinel-$port/sentinel.conf"
    redis-server "$WORK/sentinel-$port/sentinel.conf" --sentinel >"$WORK/sentinel-$port.log" 2>&1 &
    PIDS+=($!)
    wait_port "$port"
    SENTINELS+="${SENTINELS:+,}127.0.0.1:$port"
done
CLUSTER=""
for _ in 1 2 3; do
    port=$(free_port)
    # The bus port is the client port + 10000 unless set: none above 55535.
    redis_node "$port" --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$(free_port)"
    CLUSTER+="${CLUSTER:+ }127.0.0.1:$port"
done
# shellcheck disable=SC2086 # one argument per node
redis-cli --cluster create $CLUSTER --cluster-replicas 0 --cluster-yes >"$WORK/cluster-create.log"
sleep 2 # the nodes agree on the slots
redis-cli -p "$REDIS_PORT" wait 1 5000 >/dev/null

PLAIN=$(free_port); WAIT=$(free_port); SENTINEL=$(free_port); CLUSTERED=$(free_port)
start_nene "$PLAIN" NENE_SESSION_DSN="redis://127.0.0.1:$REDIS_PORT"
start_nene "$WAIT" NENE_SESSION_DSN="redis://127.0.0.1:$REDIS_PORT?wait=1"
start_nene "$SENTINEL" NENE_SESSION_DSN="redis+sentinel://$SENTINELS/bench"
start_nene "$CLUSTERED" NENE_SESSION_DSN="redis+cluster://${CLUSTER// /,}"
N_PLAIN=$(free_port); N_WAIT=$(free_port); N_SENTINEL=$(free_port); N_CLUSTER=$(free_port)
site "$N_PLAIN" plain "127.0.0.1:$PLAIN" on
site "$N_WAIT" waiting "127.0.0.1:$WAIT" on
site "$N_SENTINEL" sentinel "127.0.0.1:$SENTINEL" on
site "$N_CLUSTER" clustered "127.0.0.1:$CLUSTERED" on
start_nginx

for port in "$N_PLAIN" "$N_WAIT" "$N_SENTINEL" "$N_CLUSTER"; do sessions_script "$port" 64; done

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    for case in "redis://:$N_PLAIN" "redis:// wait=1:$N_WAIT" "redis+sentinel://:$N_SENTINEL" "redis+cluster://:$N_CLUSTER"; do
        port=${case##*:}
        WRK_SCRIPT=$WORK/sessions-$port.lua run_wrk "${case%:*}, 64 sessions in turn" "http://127.0.0.1:$port/session/counter"
    done
done

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds alternating, medians"
echo
median_table
