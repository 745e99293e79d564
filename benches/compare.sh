#!/usr/bin/env bash
# Side by side: nene against PHP-FPM running the same front controller
# (benches/php: NeNe's bootstrap, routes and session handlers), with the C
# libfcgi responder and nginx's own `return 200` as references, all through
# one nginx with the same wrk settings:
#   - nginx `return 200` (the ceiling);
#   - GET /health: nene, PHP-FPM, C libfcgi, fastcgi_keep_conn on and off
#     (nene with access.log = off, and once more as shipped, access log on);
#   - /session/counter, one hot cookie: files; Redis with locking (nene,
#     phpredis's own handler); Redis without locking (nene lock=off, NeNe's
#     PHP handler); lost increments (answered 200s the counter never saw);
#   - /session/counter, a new session per request, Redis;
#   - two nene instances behind one upstream, on the same Redis (round robin,
#     and for the hot session also pinned by `hash $cookie_NENESESSID`).
# Before the rounds, PHP-FPM's static pool is measured with 2, 4, 8 and 16
# children and the best is kept; after them, nene's Redis counter is swept
# over 1 to 512 connections. Cases alternate within each round (A B A B) and
# the tables show medians over the rounds.
#
# Usage: benches/compare.sh [ROUNDS] [DURATION]    (defaults: 3 rounds, 10s;
#        QUICK=1 benches/compare.sh for 1 round of 3s, a smoke run)
# Needs (Debian): apt-get install -y nginx wrk redis-server redis-tools gcc
#   libfcgi-dev gettext-base curl python3 php-fpm php-redis php-opcache gnuplot-nox
# Writes benches/results/compare.md (the tables), compare.tsv (medians),
# compare-runs.tsv (every run) and compare.png (the chart). Loopback only.
set -euo pipefail
if [ -n "${QUICK:-}" ]; then
    ROUNDS=${1:-1}; DURATION=${2:-3s}
else
    ROUNDS=${1:-3}; DURATION=${2:-10s}
fi
source "$(dirname "$0")/lib.sh"
OUT=${RESULTS_DIR:-$REPO/benches/results}
# Kept connections pin a PHP-FPM worker to one nginx connection (the
# /health keep_conn rows show what that costs), so PHP-FPM's session cases
# use its usual nginx setting, off; nene's use its template's, on.
PHP_SESSION_KEEP_CONN=${PHP_SESSION_KEEP_CONN:-off}

require_tools nginx:nginx wrk:wrk redis-server:redis-server redis-cli:redis-tools gcc:gcc \
    envsubst:gettext-base curl:curl python3:python3 gnuplot:gnuplot-nox
[ -f /usr/include/fcgiapp.h ] || { echo "missing libfcgi: apt-get install -y libfcgi-dev" >&2; exit 1; }
PHP_FPM=$(find_php_fpm)
[ -n "$PHP_FPM" ] || { echo "missing php-fpm: apt-get install -y php-fpm php-redis php-opcache" >&2; exit 1; }
# Read whole first: `php-fpm -m | grep -q` fails at random under pipefail
# (grep exits at its first match; php-fpm gets SIGPIPE).
PHP_MODULES=$("$PHP_FPM" -m)
for module in redis "Zend OPcache"; do
    grep -qx "$module" <<<"$PHP_MODULES" ||
        { echo "php-fpm has no $module: apt-get install -y php-redis php-opcache" >&2; exit 1; }
done
BEGAN=$(date +%s)

# --- everything on free loopback ports ---
start_redis
REDIS_DSN=redis://127.0.0.1:$REDIS_PORT

gcc -O2 -o "$WORK/c-responder" "$REPO/benches/c-responder/responder.c" -lfcgi -lpthread
C_PORT=$(free_port)
"$WORK/c-responder" "127.0.0.1:$C_PORT" &
PIDS+=($!)

build_nene
N_FILES=$(free_port); N_LOCK=$(free_port); N_NOLOCK=$(free_port); N_SECOND=$(free_port)
start_nene "$N_FILES"; NENE_FILES_PID=$NENE_PID
start_nene "$N_LOCK" NENE_SESSION_DSN="$REDIS_DSN"; NENE_LOCK_PID=$NENE_PID
start_nene "$N_NOLOCK" NENE_SESSION_DSN="$REDIS_DSN?lock=off"; NENE_NOLOCK_PID=$NENE_PID
start_nene "$N_SECOND" NENE_SESSION_DSN="$REDIS_DSN"; NENE_SECOND_PID=$NENE_PID
# nene as shipped: file sessions, the access log on (to stderr, here a file).
N_DEFAULT=$(free_port)
NENE_ACCESS__LOG=stderr start_nene "$N_DEFAULT"; NENE_DEFAULT_PID=$NENE_PID

start_php_fpm 16
SCRIPT=SCRIPT_FILENAME=$REPO/benches/php/index.php

NENE_KEEP=$(free_port); NENE_CLOSE=$(free_port); C_KEEP=$(free_port); C_CLOSE=$(free_port)
PHP_KEEP=$(free_port); PHP_CLOSE=$(free_port); PHP_FILES=$(free_port); PHP_NENE=$(free_port)
PHP_LOCK=$(free_port); NENE_REDIS=$(free_port); NENE_REDIS_NOLOCK=$(free_port)
NENE_PAIR=$(free_port); NENE_STICKY=$(free_port); CEIL=$(free_port); NENE_DEFAULT=$(free_port)
site "$NENE_KEEP" nene_kept "127.0.0.1:$N_FILES" on
site "$NENE_DEFAULT" nene_default "127.0.0.1:$N_DEFAULT" on
site "$NENE_CLOSE" nene_closed "127.0.0.1:$N_FILES" off
site "$C_KEEP" c_kept "127.0.0.1:$C_PORT" on
site "$C_CLOSE" c_closed "127.0.0.1:$C_PORT" off
site "$PHP_KEEP" php_kept "127.0.0.1:$PHP_PORT" on "$SCRIPT"
site "$PHP_CLOSE" php_closed "127.0.0.1:$PHP_PORT" off "$SCRIPT"
site "$PHP_FILES" php_files "127.0.0.1:$PHP_PORT" "$PHP_SESSION_KEEP_CONN" "$SCRIPT"
site "$PHP_NENE" php_nene "127.0.0.1:$PHP_PORT" "$PHP_SESSION_KEEP_CONN" "$SCRIPT" \
    "NENE_SESSION_DSN=$REDIS_DSN"
site "$PHP_LOCK" php_phpredis "127.0.0.1:$PHP_PORT" "$PHP_SESSION_KEEP_CONN" "$SCRIPT" \
    "NENE_SESSION_DSN=$REDIS_DSN?handler=phpredis"
site "$NENE_REDIS" nene_redis "127.0.0.1:$N_LOCK" on
site "$NENE_REDIS_NOLOCK" nene_redis_nolock "127.0.0.1:$N_NOLOCK" on
site "$NENE_PAIR" nene_pair "127.0.0.1:$N_LOCK; server 127.0.0.1:$N_SECOND" on
# The same pair with each session pinned to one instance by its cookie.
site "$NENE_STICKY" nene_sticky \
    "127.0.0.1:$N_LOCK; server 127.0.0.1:$N_SECOND; hash \$cookie_NENESESSID consistent" on
start_nginx "server { listen 127.0.0.1:$CEIL; location = /ret200 { return 200 '{\"status\":\"ok\"}'; } }"
for port in "$NENE_KEEP" "$NENE_DEFAULT" "$NENE_REDIS" "$NENE_REDIS_NOLOCK" "$NENE_PAIR" "$NENE_STICKY" "$C_KEEP" "$PHP_KEEP" "$PHP_NENE" "$PHP_LOCK"; do
    curl -sf "http://127.0.0.1:$port/health" >/dev/null ||
        { echo "127.0.0.1:$port/health did not answer" >&2; cat "$WORK/error.log" "$WORK"/*.log >&2; exit 1; }
done

# --- one wrk run, one line of runs.tsv ---
printf 'phase\tround\tcase\tsystem\treq/s\tp50 ms\tp99 ms\trequests\tnon-2xx\tsocket errors\tRSS MiB\tcounter increase\tRedis commands/request\n' >"$WORK/runs.tsv"
PHASE=main; ROUND=0

# memory_of nene:PID...|php|-: resident memory after a run, in MiB.
memory_of() {
    case $1 in
        php) rss_mib $(php_fpm_pids) ;;
        nene:*) rss_mib ${1#nene:} ;;
        *) echo "" ;;
    esac
}

# record CASE SYSTEM MEMORY [COUNTER_INCREASE] [REDIS_COMMANDS]
record() {
    local per=""
    [ -n "${5:-}" ] && per=$(awk -v c="$5" -v r="$WRK_REQUESTS" 'BEGIN {printf "%.2f", c / (r > 0 ? r : 1)}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$PHASE" "$ROUND" "$1" "$2" \
        "$WRK_RPS" "$WRK_P50_MS" "$WRK_P99_MS" "$WRK_REQUESTS" "$WRK_NON2XX" "$WRK_SOCKET_ERRORS" \
        "$(memory_of "$3")" "${4:-}" "$per" >>"$WORK/runs.tsv"
}

# plain CASE SYSTEM URL MEMORY
plain() {
    run_wrk "$1 / $2" "$3"
    record "$1" "$2" "$4"
}

# count URL SESSION_ID: the counter after one more request (tried 3 times).
count() {
    for _ in 1 2 3; do
        curl -sf -H "Cookie: NENESESSID=$2" "$1" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])' && return
        sleep 0.5
    done
    echo -1
}

# hot CASE SYSTEM PORT MEMORY: every request carries one session's cookie;
# the counter's increase is compared with the 200s by the report.
hot() {
    local url="http://127.0.0.1:$3/session/counter" cookie before after final
    cookie=$(curl -s -i "$url" | awk -F'[=;]' 'tolower($1) ~ /^set-cookie/ {print $2}')
    before=$(redis_commands)
    run_wrk "$1 / $2" "$url" "Cookie: NENESESSID=$cookie"
    after=$(redis_commands)
    sleep 0.5 # requests wrk left in flight finish
    final=$(count "$url" "$cookie")
    # The first request made the count 1 and the last one made it final.
    record "$1" "$2" "$4" $((final - 2)) $((after - before))
}

# fresh CASE SYSTEM PORT MEMORY: no cookie, a new session every request.
fresh() {
    local before after
    before=$(redis_commands)
    run_wrk "$1 / $2" "http://127.0.0.1:$3/session/counter"
    after=$(redis_commands)
    record "$1" "$2" "$4" "" $((after - before))
}

# --- PHP-FPM's pool size: 2, 4, 8, 16 static children, the best is kept ---
PHASE=tune
for children in 2 4 8 16; do
    stop_php_fpm
    start_php_fpm "$children"
    DURATION=1s run_wrk "warm-up" "http://127.0.0.1:$PHP_NENE/session/counter" 2>/dev/null
    plain "GET /health, keep_conn off" "$children" "http://127.0.0.1:$PHP_CLOSE/health" php
    fresh "counter, new session, Redis" "$children" "$PHP_NENE" php
done
# The best sum of req/s relative to each case's best.
CHILDREN=$(awk -F'\t' '$1 == "tune" {rps[$3, $4] = $5; if ($5 > best[$3]) best[$3] = $5; sizes[$4]; cases[$3]}
    END {for (s in sizes) {score = 0; for (c in cases) score += rps[c, s] / best[c]
         if (score > top) {top = score; winner = s}} print winner}' "$WORK/runs.tsv")
echo "PHP-FPM pm.max_children: $CHILDREN measured best" >&2
stop_php_fpm
start_php_fpm "$CHILDREN"

# --- the rounds ---
PHASE=main
NENE_PAIR_PIDS="nene:$NENE_LOCK_PID $NENE_SECOND_PID"
for ROUND in $(seq 1 "$ROUNDS"); do
    echo "round $ROUND of $ROUNDS" >&2
    plain "nginx return 200 (ceiling)" "nginx" "http://127.0.0.1:$CEIL/ret200" -
    for keep in on off; do
        if [ $keep = on ]; then n=$NENE_KEEP p=$PHP_KEEP c=$C_KEEP; else n=$NENE_CLOSE p=$PHP_CLOSE c=$C_CLOSE; fi
        plain "GET /health, keep_conn $keep" "nene" "http://127.0.0.1:$n/health" "nene:$NENE_FILES_PID"
        if [ $keep = on ]; then
            plain "GET /health, keep_conn on" "nene (default config: access log on)" \
                "http://127.0.0.1:$NENE_DEFAULT/health" "nene:$NENE_DEFAULT_PID"
        fi
        plain "GET /health, keep_conn $keep" "PHP-FPM" "http://127.0.0.1:$p/health" php
        if [ $keep = on ]; then
            # Each worker now sits on one of nginx's idle kept connections
            # until nginx drops it (a minute later): every later request
            # would wait for one. A fresh pool starts the next case clean.
            stop_php_fpm
            start_php_fpm "$CHILDREN"
        fi
        plain "GET /health, keep_conn $keep" "C libfcgi" "http://127.0.0.1:$c/health" -
    done
    hot "counter, hot, files" "nene" "$NENE_KEEP" "nene:$NENE_FILES_PID"
    hot "counter, hot, files" "PHP-FPM" "$PHP_FILES" php
    hot "counter, hot, Redis, locking" "nene (lock on)" "$NENE_REDIS" "nene:$NENE_LOCK_PID"
    hot "counter, hot, Redis, locking" "PHP-FPM phpredis (locking)" "$PHP_LOCK" php
    hot "counter, hot, Redis, no lock" "nene (lock=off)" "$NENE_REDIS_NOLOCK" "nene:$NENE_NOLOCK_PID"
    hot "counter, hot, Redis, no lock" "PHP-FPM NeNe handler" "$PHP_NENE" php
    fresh "counter, new session, Redis" "nene (lock on)" "$NENE_REDIS" "nene:$NENE_LOCK_PID"
    fresh "counter, new session, Redis" "PHP-FPM NeNe handler" "$PHP_NENE" php
    hot "counter, hot, Redis, 2 nene" "nene ×2 (lock on)" "$NENE_PAIR" "$NENE_PAIR_PIDS"
    hot "counter, hot, Redis, 2 nene, sticky" 'nene ×2 (hash $cookie_NENESESSID)' "$NENE_STICKY" "$NENE_PAIR_PIDS"
    fresh "counter, new session, Redis, 2 nene" "nene ×2 (lock on)" "$NENE_PAIR" "$NENE_PAIR_PIDS"
done

# --- nene's Redis counter (locking on) from 1 to 512 connections ---
PHASE=sweep; ROUND=1
for CONNECTIONS in 1 8 32 128 512; do
    THREADS=$([ "$CONNECTIONS" = 1 ] && echo 1 || echo 2)
    hot "counter, hot, Redis" "c=$CONNECTIONS" "$NENE_REDIS" "nene:$NENE_LOCK_PID"
    fresh "counter, new session, Redis" "c=$CONNECTIONS" "$NENE_REDIS" "nene:$NENE_LOCK_PID"
done
THREADS=${WRK_THREADS:-2}; CONNECTIONS=${WRK_CONNECTIONS:-32}

for log in "$WORK"/nene-*.log "$WORK/php-errors.log"; do
    [ -s "$log" ] && echo "$(basename "$log"): $(wc -l <"$log") lines, last: $(tail -1 "$log")" >&2
done

mkdir -p "$OUT"
python3 "$REPO/benches/compare_report.py" "$WORK/runs.tsv" "$OUT" \
    "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS round(s), medians" \
    "$(nproc) CPUs (nproc), $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
    "$(date -u +%Y-%m-%d)" "$CHILDREN" "$PHP_SESSION_KEEP_CONN"
gnuplot -e "datafile='$OUT/compare-chart.tsv'; outfile='$OUT/compare.png'; heading=\"$(cat "$OUT/compare-chart.title")\"" \
    "$REPO/benches/compare.gp"
rm -f "$OUT/compare-chart.title"
echo "The whole run took $(( ($(date +%s) - BEGAN) / 60 )) minutes." >>"$OUT/compare.md"
cat "$OUT/compare.md"
echo "wrote $OUT/compare.{md,tsv,png} and compare-runs.tsv" >&2
