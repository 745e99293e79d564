#!/usr/bin/env bash
# nene against axum alone, through the same nginx: what FastCGI and nene's
# layers cost next to the same axum handler served over HTTP/1.1.
#   - axum: GET /health (`{"status":"ok"}`, benches/axum_hello) behind
#     `proxy_pass` with upstream keepalive (`proxy_http_version 1.1;
#     proxy_set_header Connection "";`), in the same server block as
#     nene's (static files first: `try_files $uri @axum`);
#   - nene: GET /health behind the shipped template (`fastcgi_pass`,
#     `fastcgi_keep_conn on`, upstream keepalive), access log off;
#   - nene-before, when BEFORE_BINARY names another nene build (an A/B of a
#     change in nene's FastCGI path, in the same run).
# One nginx worker, `wrk -t1 -c32`; the cases alternate within each round
# (A B A B, the order reversed every other round) and the table shows the
# median req/s and p99 over the rounds, and nene ÷ axum. It also shows the
# CPU time the server behind nginx and nginx's worker spent per request
# (user + system, from /proc/PID/stat over each run): on a shared machine
# req/s moves with the neighbours' load, CPU per request much less.
#
# Usage: benches/vs_axum.sh [ROUNDS] [DURATION]   (defaults: 5 rounds, 10s)
#        BEFORE_BINARY=/path/to/nene benches/vs_axum.sh
# Needs (Debian): apt-get install -y nginx wrk gettext-base curl python3
# Loopback only.
set -euo pipefail
ROUNDS=${1:-5}
DURATION=${2:-10s}
WRK_THREADS=${WRK_THREADS:-1}
NGINX_WORKERS=${NGINX_WORKERS:-1}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk envsubst:gettext-base curl:curl python3:python3

echo "building nene and axum_hello (release)..." >&2
cargo build --release --quiet --manifest-path "$REPO/Cargo.toml" -p nene --bin nene \
    --example axum_hello --features bench-axum
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
BENCH_BINARY=${BENCH_BINARY:-$TARGET/release/nene}

AXUM=$(free_port)
"$TARGET/release/examples/axum_hello" "127.0.0.1:$AXUM" 2>"$WORK/axum.log" &
AXUM_PID=$!
PIDS+=("$AXUM_PID")
NENE=$(free_port)
start_nene "$NENE"; NOW_PID=$NENE_PID
CASES="axum nene"
if [ -n "${BEFORE_BINARY:-}" ]; then
    BEFORE=$(free_port)
    BENCH_BINARY=$BEFORE_BINARY start_nene "$BEFORE"; BEFORE_PID=$NENE_PID
    CASES="axum nene nene-before"
fi
wait_port "$AXUM"; wait_port "$NENE"

SITE_AXUM=$(free_port); SITE_NENE=$(free_port); SITE_BEFORE=$(free_port)
site "$SITE_NENE" nene_now "127.0.0.1:$NENE" on
[ -n "${BEFORE_BINARY:-}" ] && site "$SITE_BEFORE" nene_before "127.0.0.1:$BEFORE" on
axum_site "$SITE_AXUM" "127.0.0.1:$AXUM"
start_nginx

url() {
    case $1 in
        axum) echo "http://127.0.0.1:$SITE_AXUM/health" ;;
        nene) echo "http://127.0.0.1:$SITE_NENE/health" ;;
        nene-before) echo "http://127.0.0.1:$SITE_BEFORE/health" ;;
    esac
}
pid_of() {
    case $1 in
        axum) echo "$AXUM_PID" ;;
        nene) echo "$NOW_PID" ;;
        nene-before) echo "$BEFORE_PID" ;;
    esac
}
# nginx's one worker: its CPU per request tells what each pass costs nginx.
NGINX_WORKER=$(pgrep -P "$(cat "$WORK/nginx.pid")" | head -1)
for which in $CASES; do
    curl -sf "$(url "$which")" >/dev/null ||
        { echo "$which: $(url "$which") did not answer" >&2; cat "$WORK/error.log" >&2; exit 1; }
    DURATION=2s run_wrk "warm-up" "$(url "$which")" >/dev/null
done
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    order=$CASES
    [ $((round % 2)) = 0 ] && order=$(echo "$CASES" | tr ' ' '\n' | tac | tr '\n' ' ')
    for which in $order; do
        before=$(cpu_ticks "$(pid_of "$which")")
        nginx_before=$(cpu_ticks "$NGINX_WORKER")
        run_wrk "$which" "$(url "$which")"
        ticks=$(($(cpu_ticks "$(pid_of "$which")") - before))
        nginx_ticks=$(($(cpu_ticks "$NGINX_WORKER") - nginx_before))
        echo "$which|$WRK_RPS|$WRK_P99_MS|$ticks|$WRK_REQUESTS|$nginx_ticks" >>"$WORK/ab"
    done
done

python3 - "$WORK/ab" "$ROUNDS" "$DURATION" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
tick_us = 1e6 / int(sys.argv[4])
by = {}
for line in open(sys.argv[1]):
    name, rps, p99, ticks, requests, nginx_ticks = line.strip().split("|")
    per_request = tick_us / max(int(requests), 1)
    by.setdefault(name, []).append((float(rps), float(p99), int(ticks) * per_request, int(nginx_ticks) * per_request))
med = {n: [statistics.median(s[i] for s in v) for i in range(4)] for n, v in by.items()}
print(f"GET /health through nginx (1 worker, upstream keepalive), wrk -t1 -c32, {sys.argv[2]} rounds of {sys.argv[3]}, medians")
print()
print("| case | req/s | p99 ms | server CPU µs/request | nginx CPU µs/request | runs (req/s) |")
print("|---|---:|---:|---:|---:|---|")
for name, v in by.items():
    runs = ", ".join(f"{r[0]:,.0f}" for r in v)
    print(f"| {name} | {med[name][0]:,.0f} | {med[name][1]:.2f} | {med[name][2]:.1f} | {med[name][3]:.1f} | {runs} |")
print()
print(f"nene / axum: {med['nene'][0] / med['axum'][0]:.3f} (req/s), {med['nene'][2] / med['axum'][2]:.2f}x the CPU per request")
if "nene-before" in med:
    print(f"nene / nene-before: {med['nene'][0] / med['nene-before'][0]:.3f} (req/s), {med['nene'][2] / med['nene-before'][2]:.2f}x the CPU per request")
PY
