#!/usr/bin/env bash
# Load benchmark: wrk through a real nginx, in one run, for
#   - nginx answering by itself (`return 200`): the ceiling;
#   - a minimal C responder on libfcgi (benches/c-responder): the ceiling of
#     the FastCGI path, with fastcgi_keep_conn on and off;
#   - GET /health through nginx -> nene, with fastcgi_keep_conn on and off.
# Cases alternate (A B A B ...) so machine drift hits all of them; the table
# shows the median req/s and p99 over the rounds and the ratio to the ceiling.
#
# Usage: benches/load.sh [ROUNDS] [DURATION]     (defaults: 3 rounds, 10s)
# Needs: nginx, wrk, gcc, libfcgi-dev (Debian: apt-get install -y nginx wrk
# gcc libfcgi-dev gettext-base). Loopback only.
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-10s}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk gcc:gcc envsubst:gettext-base
[ -f /usr/include/fcgiapp.h ] || { echo "missing libfcgi: apt-get install -y libfcgi-dev" >&2; exit 1; }

gcc -O2 -o "$WORK/c-responder" "$REPO/benches/c-responder/responder.c" -lfcgi -lpthread
C_PORT=$(free_port)
"$WORK/c-responder" "127.0.0.1:$C_PORT" &
PIDS+=($!)

build_nene
NENE_PORT=$(free_port)
start_nene "$NENE_PORT"

KEEP=$(free_port); CLOSE=$(free_port); C_KEEP=$(free_port); C_CLOSE=$(free_port); CEIL=$(free_port)
site "$KEEP" nene_kept "127.0.0.1:$NENE_PORT" on
site "$CLOSE" nene_closed "127.0.0.1:$NENE_PORT" off
site "$C_KEEP" c_kept "127.0.0.1:$C_PORT" on
site "$C_CLOSE" c_closed "127.0.0.1:$C_PORT" off
start_nginx "server { listen 127.0.0.1:$CEIL; location = /ret200 { return 200 '{\"status\":\"ok\"}'; } }"
curl -sf "http://127.0.0.1:$KEEP/health" >/dev/null || { echo "nene did not answer through nginx" >&2; cat "$WORK/error.log" >&2; exit 1; }

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    run_wrk "nginx return 200 (ceiling)" "http://127.0.0.1:$CEIL/ret200"
    run_wrk "C libfcgi, keep_conn on" "http://127.0.0.1:$C_KEEP/health"
    run_wrk "nene /health, keep_conn on" "http://127.0.0.1:$KEEP/health"
    run_wrk "C libfcgi, keep_conn off" "http://127.0.0.1:$C_CLOSE/health"
    run_wrk "nene /health, keep_conn off" "http://127.0.0.1:$CLOSE/health"
done

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds alternating, medians"
echo
median_table "nginx return 200 (ceiling)"
echo
echo "nene RSS at the end: $(awk '/VmRSS/ {printf "%.1f MiB", $2/1024}' "/proc/$NENE_PID/status")"
