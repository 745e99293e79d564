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
# gcc libfcgi-dev). Loopback only.
set -euo pipefail

ROUNDS=${1:-3}
DURATION=${2:-10s}
THREADS=${WRK_THREADS:-2}
CONNECTIONS=${WRK_CONNECTIONS:-32}
REPO=$(cd "$(dirname "$0")/.." && pwd)

for tool in nginx wrk gcc; do
    command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null || {
        echo "missing $tool: apt-get install -y $tool" >&2
        exit 1
    }
done
export PATH=$PATH:/usr/sbin

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    # libfcgi ignores SIGTERM while its threads sit in accept().
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

[ -f /usr/include/fcgiapp.h ] || { echo "missing libfcgi: apt-get install -y libfcgi-dev" >&2; exit 1; }
gcc -O2 -o "$WORK/c-responder" "$REPO/benches/c-responder/responder.c" -lfcgi -lpthread
C_PORT=$(free_port)
"$WORK/c-responder" "127.0.0.1:$C_PORT" &
PIDS+=($!)

echo "building nene (release)..." >&2
cargo build --release --quiet --manifest-path "$REPO/Cargo.toml"

NENE_PORT=$(free_port)
RUST_LOG=warn "$REPO/target/release/nene" serve --listen "127.0.0.1:$NENE_PORT" \
    --htdocs "$REPO/htdocs" 2>"$WORK/nene.log" &
PIDS+=($!)
NENE_PID=$!

# Two server blocks from the same template (keep_conn on / off) plus the
# ceiling, all in one nginx.
render() { # listen keep_conn upstream_name [upstream_port]
    NGINX_LISTEN=$1 NENE_UPSTREAM=127.0.0.1:${4:-$NENE_PORT} NENE_HTDOCS=$REPO/htdocs \
    NENE_FASTCGI_KEEP_CONN=$2 NENE_MAX_BODY=8m \
        envsubst '${NGINX_LISTEN} ${NENE_UPSTREAM} ${NENE_HTDOCS} ${NENE_FASTCGI_KEEP_CONN} ${NENE_MAX_BODY}' \
        <"$REPO/deploy/nginx/nene.conf.template" | sed "s/upstream nene/upstream $3/; s/fastcgi_pass nene;/fastcgi_pass $3;/"
}
KEEP_PORT=$(free_port); CLOSE_PORT=$(free_port); CEIL_PORT=$(free_port)
C_KEEP_PORT=$(free_port); C_CLOSE_PORT=$(free_port)
render "127.0.0.1:$KEEP_PORT" on nene_kept >"$WORK/kept.conf"
render "127.0.0.1:$CLOSE_PORT" off nene_closed >"$WORK/closed.conf"
render "127.0.0.1:$C_KEEP_PORT" on c_kept "$C_PORT" >"$WORK/c_kept.conf"
render "127.0.0.1:$C_CLOSE_PORT" off c_closed "$C_PORT" >"$WORK/c_closed.conf"
USER_LINE=""; [ "$(id -u)" = 0 ] && USER_LINE="user root;"
cat >"$WORK/nginx.conf" <<CONF
$USER_LINE
daemon off;
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/body; fastcgi_temp_path $WORK/fastcgi;
    proxy_temp_path $WORK/proxy; uwsgi_temp_path $WORK/uwsgi; scgi_temp_path $WORK/scgi;
    include $WORK/kept.conf;
    include $WORK/closed.conf;
    include $WORK/c_kept.conf;
    include $WORK/c_closed.conf;
    server { listen 127.0.0.1:$CEIL_PORT; location = /ret200 { return 200 '{"status":"ok"}'; } }
}
CONF
nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/error.log" &
PIDS+=($!)
sleep 1
curl -sf "http://127.0.0.1:$KEEP_PORT/health" >/dev/null || { echo "nene did not answer through nginx" >&2; cat "$WORK/error.log" >&2; exit 1; }

CASES=(
    "nginx return 200 (ceiling)|http://127.0.0.1:$CEIL_PORT/ret200"
    "C libfcgi, keep_conn on|http://127.0.0.1:$C_KEEP_PORT/health"
    "nene /health, keep_conn on|http://127.0.0.1:$KEEP_PORT/health"
    "C libfcgi, keep_conn off|http://127.0.0.1:$C_CLOSE_PORT/health"
    "nene /health, keep_conn off|http://127.0.0.1:$CLOSE_PORT/health"
)
for round in $(seq 1 "$ROUNDS"); do
    for case in "${CASES[@]}"; do
        name=${case%%|*}; url=${case#*|}
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$WORK/wrk.out"
        rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
        p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.out")
        errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/wrk.out" | tr '\n' ' ')
        echo "$name|$rps|$p99|$errors" >>"$WORK/results"
        echo "round $round: $name: $rps req/s, p99 $p99 $errors" >&2
    done
done
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$NENE_PID/status")

python3 - "$WORK/results" "$RSS_KB" "$THREADS" "$CONNECTIONS" "$DURATION" "$ROUNDS" <<'PY'
import statistics, sys
path, rss, threads, conns, duration, rounds = sys.argv[1:]
def ms(text):
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)
rows = {}
for line in open(path):
    name, rps, p99, errors = line.rstrip("\n").split("|")
    rows.setdefault(name, []).append((float(rps), ms(p99), errors.strip()))
ceiling = statistics.median(r for r, _, _ in rows["nginx return 200 (ceiling)"])
print(f"wrk -t{threads} -c{conns} -d{duration} --latency, {rounds} rounds alternating, medians")
print()
print("| case | req/s | p99 (ms) | % of ceiling | errors |")
print("|---|---:|---:|---:|---|")
for name, samples in rows.items():
    rps = statistics.median(s[0] for s in samples)
    p99 = statistics.median(s[1] for s in samples)
    errors = "; ".join(sorted({s[2] for s in samples if s[2]})) or "none"
    print(f"| {name} | {rps:,.0f} | {p99:.2f} | {100 * rps / ceiling:.0f}% | {errors} |")
print()
print(f"nene RSS at the end: {int(rss) / 1024:.1f} MiB")
PY
