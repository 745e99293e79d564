#!/usr/bin/env bash
# Soak test (run by hand, not in CI): wrk through nginx against
# /session/counter on Redis (locking on), one new session per connection
# run, for MINUTES minutes in one-minute slices. Prints, per minute, the
# requests, errors (non-2xx and socket errors) and p99, and nene's resident
# memory at the start and the end: steady growth would be a leak.
#
# Usage: benches/soak.sh [MINUTES]     (default 10)
# Needs: nginx, wrk, redis-server (Debian: apt-get install -y nginx wrk
# redis-server gettext-base). Loopback only.
set -euo pipefail
MINUTES=${1:-10}
DURATION=${SOAK_SLICE:-60s}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk redis-server:redis-server envsubst:gettext-base

start_redis
build_nene
NENE_PORT=$(free_port)
start_nene "$NENE_PORT" NENE_SESSION_DSN="redis://127.0.0.1:$REDIS_PORT"
NGINX_PORT=$(free_port)
site "$NGINX_PORT" soak "127.0.0.1:$NENE_PORT" on
start_nginx
URL="http://127.0.0.1:$NGINX_PORT/session/counter"
curl -sf "$URL" >/dev/null || { echo "nene did not answer through nginx" >&2; exit 1; }

rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$NENE_PID/status"; }
RSS_START=$(rss)
echo "| minute | requests | errors | p99 (ms) | RSS (MiB) |"
echo "|---:|---:|---|---:|---:|"
for minute in $(seq 1 "$MINUTES"); do
    # A fixed cookie per minute: the hot-session path, with a fresh session
    # each minute so Redis holds one key per minute.
    cookie=$(curl -s -i "$URL" | awk -F'[=;]' 'tolower($1) ~ /^set-cookie/ {print $2}')
    run_wrk "minute $minute" "$URL" "Cookie: NENESESSID=$cookie" 2>/dev/null
    errors=$(tail -1 "$WORK/results" | cut -d'|' -f4)
    p99=$(tail -1 "$WORK/results" | cut -d'|' -f3)
    echo "| $minute | $WRK_REQUESTS | ${errors:-none} | $p99 | $(rss) |"
done
echo
echo "nene RSS: $RSS_START MiB at the start, $(rss) MiB at the end"
grep -c "panicked" "$WORK/nene-$NENE_PORT.log" | sed 's/^/panics in the log: /' || true
