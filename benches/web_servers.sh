#!/usr/bin/env bash
# Web servers benchmark: wrk against GET /health through each web server
# nene runs behind, configured from the repository's deploy/ files, one nene
# behind all of them:
#   - nginx, deploy/nginx/nene.conf.template (upstream keepalive,
#     fastcgi_keep_conn on);
#   - nginx, deploy/nginx/php-style.conf.template (Debian's PHP snippet,
#     fastcgi_pass to an address: a connection per request);
#   - Apache 2.4 with mod_proxy_fcgi, deploy/apache/nene-proxypass.conf.template
#     (ProxyPass ... enablereuse=on);
#   - lighttpd, deploy/lighttpd/lighttpd.conf.template (a connection per
#     request);
#   - Caddy, deploy/caddy/Caddyfile.template (php_fastcgi; a connection per
#     request).
# Cases alternate (A B C ... A B C) over the rounds; the table shows medians.
# The web servers' own access logs are off, as is nene's.
#
# Usage: benches/web_servers.sh [ROUNDS] [DURATION]   (defaults: 1 round, 10s)
# wrk runs with 1 thread and 32 connections (WRK_THREADS, WRK_CONNECTIONS).
# Needs: nginx, apache2, lighttpd, caddy, wrk (Debian: apt-get install -y
# nginx apache2 lighttpd caddy wrk gettext-base). Loopback only.
set -euo pipefail
ROUNDS=${1:-1}
DURATION=${2:-10s}
WRK_THREADS=${WRK_THREADS:-1}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx apache2:apache2 lighttpd:lighttpd caddy:caddy wrk:wrk envsubst:gettext-base

# render TEMPLATE OUT NAME=VALUE...: the repository's TEMPLATE with those
# ${NAME} placeholders set (only those: the servers' own $uri, ${url.path}
# and the like stay), the values given to envsubst alone.
render() {
    local template=$1 out=$2 names="" pair
    shift 2
    for pair in "$@"; do names+="\${${pair%%=*}} "; done
    env "$@" envsubst "$names" <"$REPO/$template" >"$out"
}

# The PHP-style document root: htdocs and the index.php the front-controller
# rules look for. Readable by Apache's children (www-data when run as root).
chmod 755 "$WORK"
mkdir -p "$WORK/docroot"
cp "$REPO"/htdocs/* "$WORK/docroot/"
echo '<?php // answered by nene' >"$WORK/docroot/index.php"
chmod -R a+rX "$WORK/docroot"
DOCROOT=$WORK/docroot

build_nene
NENE_PORT=$(free_port)
start_nene "$NENE_PORT"
wait_port "$NENE_PORT"
UPSTREAM=127.0.0.1:$NENE_PORT

# nginx: both server blocks in one nginx.
NGINX_KEPT=$(free_port)
NGINX_PHP=$(free_port)
site "$NGINX_KEPT" nene_kept "$UPSTREAM" on
mkdir -p "$WORK/snippets"
cp /etc/nginx/fastcgi.conf "$WORK/"
cp /etc/nginx/snippets/fastcgi-php.conf "$WORK/snippets/"
render deploy/nginx/php-style.conf.template "$WORK/site-php.conf" \
    NGINX_LISTEN="127.0.0.1:$NGINX_PHP" NENE_UPSTREAM="$UPSTREAM" NENE_HTDOCS="$DOCROOT" NENE_MAX_BODY=8m
SITES+="    include $WORK/site-php.conf;"$'\n'
start_nginx
wait_port "$NGINX_KEPT"

# Apache: its own directory for the pid, error log and mutexes.
APACHE_PORT=$(free_port)
mkdir -m 755 "$WORK/apache"
APACHE=(APACHE_DIR="$WORK/apache" APACHE_LISTEN="127.0.0.1:$APACHE_PORT" APACHE_RUN_USER=www-data
    APACHE_RUN_GROUP=www-data APACHE_SITE="$WORK/apache/site.conf" NENE_UPSTREAM="$UPSTREAM"
    NENE_HTDOCS="$DOCROOT")
render deploy/apache/apache2.conf.template "$WORK/apache/apache2.conf" "${APACHE[@]}"
render deploy/apache/nene-proxypass.conf.template "$WORK/apache/site.conf" "${APACHE[@]}"
/usr/sbin/apache2 -f "$WORK/apache/apache2.conf" -DFOREGROUND 2>"$WORK/apache/stderr.log" &
PIDS+=($!)
wait_port "$APACHE_PORT"

# lighttpd.
LIGHTTPD_PORT=$(free_port)
mkdir "$WORK/lighttpd"
render deploy/lighttpd/lighttpd.conf.template "$WORK/lighttpd/lighttpd.conf" \
    LIGHTTPD_DIR="$WORK/lighttpd" LIGHTTPD_PORT="$LIGHTTPD_PORT" NENE_HOST=127.0.0.1 \
    NENE_PORT="$NENE_PORT" NENE_HTDOCS="$DOCROOT"
lighttpd -D -f "$WORK/lighttpd/lighttpd.conf" 2>"$WORK/lighttpd/stderr.log" &
PIDS+=($!)
wait_port "$LIGHTTPD_PORT"

# Caddy, writing nothing outside $WORK. Its default logs (stderr) are
# startup messages only: no access log is configured.
CADDY_PORT=$(free_port)
mkdir "$WORK/caddy"
render deploy/caddy/Caddyfile.template "$WORK/caddy/Caddyfile" \
    CADDY_SITE="http://127.0.0.1:$CADDY_PORT" NENE_UPSTREAM="$UPSTREAM" NENE_HTDOCS="$DOCROOT"
HOME=$WORK/caddy XDG_DATA_HOME=$WORK/caddy/data XDG_CONFIG_HOME=$WORK/caddy/config \
    caddy run --config "$WORK/caddy/Caddyfile" --adapter caddyfile 2>"$WORK/caddy/caddy.log" &
PIDS+=($!)
wait_port "$CADDY_PORT"

CASES=(
    "nginx, upstream keepalive|$NGINX_KEPT"
    "nginx, Debian PHP snippet (conn per request)|$NGINX_PHP"
    "Apache ProxyPass enablereuse=on|$APACHE_PORT"
    "lighttpd (conn per request)|$LIGHTTPD_PORT"
    "Caddy php_fastcgi (conn per request)|$CADDY_PORT"
)
for case in "${CASES[@]}"; do
    body=$(curl -sf "http://127.0.0.1:${case#*|}/health") || body=""
    [ "$body" = '{"status":"ok"}' ] || {
        echo "${case%|*} did not answer /health: '$body'" >&2
        cat "$WORK"/error.log "$WORK"/apache/*.log "$WORK"/lighttpd/*.log "$WORK"/caddy/caddy.log >&2 2>/dev/null
        exit 1
    }
done

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    for case in "${CASES[@]}"; do
        run_wrk "${case%|*}" "http://127.0.0.1:${case#*|}/health"
    done
done

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency GET /health, $ROUNDS round(s), medians"
echo
median_table
echo
echo "nene RSS at the end: $(rss_mib "$NENE_PID") MiB"
