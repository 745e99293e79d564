#!/usr/bin/env bash
# What the access log costs: GET /health through one nginx (keep_conn on) to
# two instances of the same release build, one with the default
# configuration (access log on, to stderr, here redirected to a file as
# journald or docker would take it) and one with `access.log = off`. Cases
# alternate within each round (A B A B); the table shows the median req/s
# and p99 over the rounds and the ratio default / off.
#
# Usage: benches/access_log.sh [ROUNDS] [DURATION]   (defaults: 5 rounds, 10s)
# Needs (Debian): apt-get install -y nginx wrk gettext-base curl python3
# Loopback only.
set -euo pipefail
ROUNDS=${1:-5}
DURATION=${2:-10s}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk envsubst:gettext-base curl:curl

build_nene
DEFAULT=$(free_port); OFF=$(free_port)
# start_nene turns the access log off unless told; `stderr` is the default.
NENE_ACCESS__LOG=stderr start_nene "$DEFAULT"; DEFAULT_PID=$NENE_PID
start_nene "$OFF"; OFF_PID=$NENE_PID
SITE_DEFAULT=$(free_port); SITE_OFF=$(free_port)
site "$SITE_DEFAULT" nene_default "127.0.0.1:$DEFAULT" on
site "$SITE_OFF" nene_off "127.0.0.1:$OFF" on
start_nginx
for port in "$SITE_DEFAULT" "$SITE_OFF"; do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null ||
        { echo "127.0.0.1:$port/health did not answer" >&2; cat "$WORK/error.log" >&2; exit 1; }
done

DURATION=2s run_wrk "warm-up" "http://127.0.0.1:$SITE_DEFAULT/health" >/dev/null
DURATION=2s run_wrk "warm-up" "http://127.0.0.1:$SITE_OFF/health" >/dev/null
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    if [ $((round % 2)) = 1 ]; then order="default off"; else order="off default"; fi
    for which in $order; do
        if [ "$which" = default ]; then port=$SITE_DEFAULT; else port=$SITE_OFF; fi
        run_wrk "$which" "http://127.0.0.1:$port/health"
        echo "$which|$WRK_RPS|$WRK_P99_MS" >>"$WORK/ab"
    done
done
lines=$(wc -l <"$WORK/nene-$DEFAULT.log")

python3 - "$WORK/ab" "$lines" "$ROUNDS" "$DURATION" <<'PY'
import statistics, sys
rows = [line.strip().split("|") for line in open(sys.argv[1]) if line.strip()]
by = {}
for name, rps, p99 in rows:
    by.setdefault(name, []).append((float(rps), float(p99)))
med = {name: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v)) for name, v in by.items()}
print(f"GET /health through nginx (keep_conn on), {sys.argv[3]} rounds of {sys.argv[4]}, medians")
print()
print("| configuration | req/s | p99 ms | runs (req/s) |")
print("|---|---|---|---|")
for name, label in [("default", "default (access log to stderr)"), ("off", "access.log = off")]:
    runs = ", ".join(f"{r:,.0f}" for r, _ in by[name])
    print(f"| {label} | {med[name][0]:,.0f} | {med[name][1]:.2f} | {runs} |")
print()
print(f"default / off: {med['default'][0] / med['off'][0]:.3f} (req/s); access log lines written: {sys.argv[2]}")
PY
