#!/usr/bin/env bash
# What traces cost a request, and what a collector that is down or slow
# costs (issue 39): the same nene build (`--features full`, which has
# `otel`) seven ways, through one nginx, the cases alternating within each
# round (A B C …, reversed every other round):
#   - off:       traces off (no OTEL_* set), the baseline;
#   - sampled1:  1 % of requests traced (OTEL_TRACES_SAMPLER=traceidratio,
#                OTEL_TRACES_SAMPLER_ARG=0.01), to a collector that answers
#                at once;
#   - down1, slow1: the same, the collector's port closed, or a collector
#                that answers each export after 5 s;
#   - all, down, slow: every request traced (always_on), to a collector
#                that answers at once, is down, or is slow.
# The table: median req/s and p99, nene's CPU per request, its RSS at the
# end and the spans the status page counts as exported and dropped.
#
# Usage: benches/traces.sh [ROUNDS] [DURATION] [PATH]   (defaults: 3, 10s, /health)
#        benches/traces.sh 1 30s                        (the issue's 30 s of load)
#        CASES="off down slow" benches/traces.sh        (some of the cases)
# Needs (Debian): apt-get install -y nginx wrk gettext-base curl python3
# Loopback only.
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-10s}
URL_PATH=${3:-/health}
WRK_THREADS=${WRK_THREADS:-1}
NGINX_WORKERS=${NGINX_WORKERS:-1}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk envsubst:gettext-base curl:curl python3:python3
build_nene

SINK=$(free_port); SLOW_SINK=$(free_port); CLOSED=$(free_port)
start_otlp_sink "$SINK" 0
start_otlp_sink "$SLOW_SINK" 5
traced() { # ENDPOINT_PORT SAMPLER [ARG]
    echo OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$1" \
        OTEL_TRACES_SAMPLER="$2" OTEL_TRACES_SAMPLER_ARG="${3:-1.0}"
}
CASES=${CASES:-off sampled1 down1 slow1 all down slow}
for which in $CASES; do
    port=$(free_port)
    case $which in
        off) start_nene "$port" ;;
        sampled1) start_nene "$port" $(traced "$SINK" traceidratio 0.01) ;;
        down1) start_nene "$port" $(traced "$CLOSED" traceidratio 0.01) ;;
        slow1) start_nene "$port" $(traced "$SLOW_SINK" traceidratio 0.01) ;;
        all) start_nene "$port" $(traced "$SINK" always_on) ;;
        down) start_nene "$port" $(traced "$CLOSED" always_on) ;;
        slow) start_nene "$port" $(traced "$SLOW_SINK" always_on) ;;
        *) echo "unknown case $which" >&2; exit 1 ;;
    esac
    wait_port "$port"
    site_port=$(free_port)
    site "$site_port" "nene_$which" "127.0.0.1:$port" on
    eval "PID_$which=\$NENE_PID SITE_$which=\$site_port"
done
start_nginx
url() { eval "echo http://127.0.0.1:\$SITE_$1"; }
pid_of() { eval "echo \$PID_$1"; }
for which in $CASES; do
    curl -sf "$(url "$which")$URL_PATH" >/dev/null ||
        { echo "$which: $URL_PATH did not answer" >&2; cat "$WORK/error.log" >&2; exit 1; }
    DURATION=2s run_wrk "warm-up" "$(url "$which")$URL_PATH" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    order=$CASES
    [ $((round % 2)) = 0 ] && order=$(echo "$CASES" | tr ' ' '\n' | tac | tr '\n' ' ')
    for which in $order; do
        before=$(cpu_ticks "$(pid_of "$which")")
        run_wrk "$which" "$(url "$which")$URL_PATH"
        ticks=$(($(cpu_ticks "$(pid_of "$which")") - before))
        echo "$which|$WRK_RPS|$WRK_P99_MS|$ticks|$WRK_REQUESTS|$WRK_NON2XX|$WRK_SOCKET_ERRORS" >>"$WORK/ab"
    done
done
# Give the batches of the last run time to leave (or fail) before counting.
sleep 6
for which in $CASES; do
    status=$(curl -sf "$(url "$which")/status?json")
    echo "$which|$(rss_mib "$(pid_of "$which")")|$status" >>"$WORK/ends"
done

python3 - "$WORK/ab" "$WORK/ends" "$ROUNDS" "$DURATION" "$URL_PATH" "$(getconf CLK_TCK)" <<'PY'
import json, statistics, sys
tick_us = 1e6 / int(sys.argv[6])
by = {}
for line in open(sys.argv[1]):
    name, rps, p99, ticks, requests, non2xx, socket = line.strip().split("|")
    cpu = int(ticks) * tick_us / max(int(requests), 1)
    by.setdefault(name, []).append((float(rps), float(p99), cpu, int(non2xx) + int(socket)))
ends = {}
for line in open(sys.argv[2]):
    name, rss, status = line.rstrip("\n").split("|", 2)
    ends[name] = (float(rss), json.loads(status))
print(f"GET {sys.argv[5]} through nginx (1 worker), wrk -t1 -c32, {sys.argv[3]} rounds of {sys.argv[4]}, medians")
print()
print("| case | req/s | ÷ off | p99 ms | nene CPU µs/request | errors | RSS MiB | spans exported | spans dropped |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
off = statistics.median(r[0] for r in by["off"])
for name, runs in by.items():
    rps = statistics.median(r[0] for r in runs)
    rss, status = ends[name]
    exported = status.get("trace spans exported", "-")
    dropped = status.get("trace spans dropped", "-")
    print(f"| {name} | {rps:,.0f} | {rps / off:.3f} | {statistics.median(r[1] for r in runs):.2f} | "
          f"{statistics.median(r[2] for r in runs):.1f} | {sum(r[3] for r in runs)} | {rss:.1f} | {exported} | {dropped} |")
PY
