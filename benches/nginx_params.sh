#!/usr/bin/env bash
# Whether sending only the FastCGI params nene reads is faster than the
# template's set (nginx's stock fastcgi_params): GET /health through one
# nginx (one worker, upstream keepalive, fastcgi_keep_conn on) to one nene,
# two server blocks from deploy/nginx/nene.conf.template — as shipped
# ("full"), and with the lines of the params nene never reads deleted
# ("lean": GATEWAY_INTERFACE, SERVER_SOFTWARE, DOCUMENT_URI, DOCUMENT_ROOT,
# QUERY_STRING, REQUEST_SCHEME; the query is REQUEST_URI's, the scheme is
# HTTPS). The cases alternate within each round (A B A B) and the table
# shows the median req/s and p99 over the rounds.
#
# Usage: benches/nginx_params.sh [ROUNDS] [DURATION]   (defaults: 5 rounds, 10s)
# Needs (Debian): apt-get install -y nginx wrk gettext-base curl python3
# Loopback only.
set -euo pipefail
ROUNDS=${1:-5}
DURATION=${2:-10s}
WRK_THREADS=${WRK_THREADS:-1}
NGINX_WORKERS=${NGINX_WORKERS:-1}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk envsubst:gettext-base curl:curl python3:python3

echo "building nene (release)..." >&2
cargo build --release --quiet --manifest-path "$REPO/Cargo.toml" -p nene --bin nene
BENCH_BINARY=${BENCH_BINARY:-${CARGO_TARGET_DIR:-$REPO/target}/release/nene}
NENE=$(free_port)
start_nene "$NENE"
wait_port "$NENE"
LEAN=$(free_port); FULL=$(free_port)
site "$FULL" nene_full "127.0.0.1:$NENE" on
site "$LEAN" nene_lean "127.0.0.1:$NENE" on
sed -i -E '/fastcgi_param +(GATEWAY_INTERFACE|SERVER_SOFTWARE|DOCUMENT_URI|DOCUMENT_ROOT|QUERY_STRING|REQUEST_SCHEME) /d' \
    "$WORK/site-$LEAN.conf"
[ "$(grep -c fastcgi_param "$WORK/site-$LEAN.conf")" = 12 ] ||
    { echo "the template's params changed; update the lean list" >&2; exit 1; }
start_nginx
for port in "$LEAN" "$FULL"; do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null ||
        { echo "127.0.0.1:$port/health did not answer" >&2; cat "$WORK/error.log" >&2; exit 1; }
    DURATION=2s run_wrk "warm-up" "http://127.0.0.1:$port/health" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    if [ $((round % 2)) = 1 ]; then order="lean full"; else order="full lean"; fi
    for which in $order; do
        if [ "$which" = lean ]; then port=$LEAN; else port=$FULL; fi
        run_wrk "$which" "http://127.0.0.1:$port/health"
        echo "$which|$WRK_RPS|$WRK_P99_MS" >>"$WORK/ab"
    done
done

python3 - "$WORK/ab" "$ROUNDS" "$DURATION" <<'PY'
import statistics, sys
by = {}
for line in open(sys.argv[1]):
    name, rps, p99 = line.strip().split("|")
    by.setdefault(name, []).append((float(rps), float(p99)))
med = {n: (statistics.median(r for r, _ in v), statistics.median(p for _, p in v)) for n, v in by.items()}
print(f"GET /health through nginx (1 worker, keep_conn on), wrk -t1 -c32, {sys.argv[2]} rounds of {sys.argv[3]}, medians")
print()
print("| params | req/s | p99 ms | runs (req/s) |")
print("|---|---:|---:|---|")
for name, label in [("full", "the template's params (as shipped)"), ("lean", "only the params nene reads")]:
    runs = ", ".join(f"{r:,.0f}" for r, _ in by[name])
    print(f"| {label} | {med[name][0]:,.0f} | {med[name][1]:.2f} | {runs} |")
print()
print(f"lean / full: {med['lean'][0] / med['full'][0]:.3f} (req/s)")
PY
