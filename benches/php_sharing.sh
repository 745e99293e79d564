#!/usr/bin/env bash
# One hot session shared by PHP-FPM and nene: wrk on /session/counter with
# one cookie through one nginx that sends each request to PHP-FPM or to nene
# at random (split_clients), both on one Redis — phpredis' handler with its
# locking, nene with serialize_handler = php and lock_suffix = _LOCK, so the
# two take the same lock. Also each side alone, for reference. Reports req/s,
# p99 and lost increments (answered 200s the counter never saw).
#
# Usage: benches/php_sharing.sh [ROUNDS] [DURATION]   (defaults: 3 rounds, 10s)
# Needs (Debian): nginx wrk redis-server redis-tools php-fpm php-redis curl
# gettext-base. Loopback only.
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-10s}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk redis-server:redis-server envsubst:gettext-base curl:curl
PHP_FPM=$(find_php_fpm)
[ -n "$PHP_FPM" ] || { echo "missing php-fpm: apt-get install -y php-fpm php-redis" >&2; exit 1; }

start_redis
DSN=redis://127.0.0.1:$REDIS_PORT
build_nene
N_PORT=$(free_port)
start_nene "$N_PORT" NENE_SESSION_DSN="$DSN?lock_suffix=_LOCK" NENE_SESSION__SERIALIZE_HANDLER=php
start_php_fpm 8
SITES=""

MIXED=$(free_port); NENE_ONLY=$(free_port); PHP_ONLY=$(free_port)
cp /etc/nginx/fastcgi_params "$WORK/fastcgi_params"
# shellcheck disable=SC2016 # nginx variables, not shell ones
PARAMS='include '"$WORK"'/fastcgi_params;
        fastcgi_param SCRIPT_FILENAME '"$REPO"'/benches/php/index.php;
        fastcgi_param NENE_SESSION_DSN '"$DSN"'?handler=phpredis;'
start_nginx "
    upstream php_pool { server 127.0.0.1:$PHP_PORT; }
    upstream nene_pool { server 127.0.0.1:$N_PORT; keepalive 64; }
    split_clients \"\$request_id\" \$pool { 50% php_pool; * nene_pool; }
    server { listen 127.0.0.1:$MIXED;
        location / { fastcgi_pass \$pool; fastcgi_keep_conn on; $PARAMS } }
    server { listen 127.0.0.1:$NENE_ONLY;
        location / { fastcgi_pass nene_pool; fastcgi_keep_conn on; $PARAMS } }
    server { listen 127.0.0.1:$PHP_ONLY;
        location / { fastcgi_pass php_pool; $PARAMS } }
"

# hot NAME PORT: one cookie for every request; counts lost increments.
hot() {
    local url="http://127.0.0.1:$2/session/counter" cookie before after
    cookie=$(curl -s -i "$url" | awk -F'[=;]' 'tolower($1) ~ /^set-cookie/ {print $2}')
    before=$(curl -s -H "Cookie: NENESESSID=$cookie" "$url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
    run_wrk "$1" "$url" "Cookie: NENESESSID=$cookie"
    local answered=$WRK_REQUESTS errors=$WRK_NON2XX
    sleep 0.5 # requests wrk left in flight finish
    after=$(curl -s -H "Cookie: NENESESSID=$cookie" "$url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
    # after - before - 1 increments happened; answered - errors were told 200.
    echo "$1|$((answered - errors))|$((after - before - 1))" >>"$WORK/counts"
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    hot "PHP and nene at random, one hot session" "$MIXED"
    hot "nene alone (serialize_handler = php)" "$NENE_ONLY"
    hot "PHP-FPM alone (phpredis, locking)" "$PHP_ONLY"
done

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds alternating, medians"
echo
median_table
echo
echo "| case | answered 200 | increments stored | lost |"
echo "|---|---:|---:|---:|"
while IFS='|' read -r name ok stored; do
    # wrk's deadline leaves up to CONNECTIONS requests in flight: they are
    # stored but not counted as answered, so stored may exceed ok.
    lost=$((ok > stored ? ok - stored : 0))
    echo "| $name | $ok | $stored | $lost |"
done <"$WORK/counts"
