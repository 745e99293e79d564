# Shared by the bench scripts: tool checks, free ports, a work directory
# cleaned up on exit, nginx rendered from the repository's own template, and
# wrk runs collected into one results file. Source it; do not run it.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$PATH:/usr/sbin
THREADS=${WRK_THREADS:-2}
CONNECTIONS=${WRK_CONNECTIONS:-32}

require_tools() { # tool:package ...
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || {
            echo "missing ${pair%%:*}: apt-get install -y ${pair#*:}" >&2
            exit 1
        }
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

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

build_nene() {
    echo "building nene (release)..." >&2
    cargo build --release --quiet --manifest-path "$REPO/Cargo.toml" -p nene --features full
}

# start_nene PORT [ENV=VALUE ...]: a release nene on 127.0.0.1:PORT; sets NENE_PID.
# The access log is off (nginx logs requests, as with PHP-FPM's default);
# NENE_ACCESS__LOG=stderr in the environment measures it on. BENCH_BINARY picks
# another build (A/B runs); the repository's release build by default.
start_nene() {
    local port=$1
    shift
    env RUST_LOG=warn NENE_ACCESS__LOG="${NENE_ACCESS__LOG:-off}" \
        NENE_SESSION__SAVE_PATH="$WORK/sessions-$port" "$@" \
        "${BENCH_BINARY:-$REPO/target/release/nene}" serve --listen "127.0.0.1:$port" \
        --htdocs "$REPO/htdocs" 2>"$WORK/nene-$port.log" &
    NENE_PID=$!
    PIDS+=("$NENE_PID")
}

# site LISTEN_PORT UPSTREAM_NAME UPSTREAM_ADDR KEEP_CONN [PARAM=VALUE ...]: one
# server block from deploy/nginx/nene.conf.template, written to $WORK and
# included by nginx. Each PARAM=VALUE adds `fastcgi_param PARAM VALUE;` (the
# PHP-FPM side needs SCRIPT_FILENAME). Two upstream servers:
# UPSTREAM_ADDR="127.0.0.1:A; server 127.0.0.1:B". client_max_body_size is
# $SITE_MAX_BODY when set, else 8m.
site() {
    local port=$1 name=$2 addr=$3 keep=$4 params="" pair
    shift 4
    for pair in "$@"; do params+="        fastcgi_param ${pair%%=*} ${pair#*=};\n"; done
    NGINX_LISTEN=127.0.0.1:$port NENE_UPSTREAM=$addr NENE_HTDOCS=$REPO/htdocs \
    NENE_FASTCGI_KEEP_CONN=$keep NENE_MAX_BODY=${SITE_MAX_BODY:-8m} \
        envsubst '${NGINX_LISTEN} ${NENE_UPSTREAM} ${NENE_HTDOCS} ${NENE_FASTCGI_KEEP_CONN} ${NENE_MAX_BODY}' \
        <"$REPO/deploy/nginx/nene.conf.template" |
        sed "s/upstream nene/upstream $name/; s/fastcgi_pass nene;/fastcgi_pass $name;/
             /fastcgi_keep_conn/a\\
$params" >"$WORK/site-$port.conf"
    SITES+="    include $WORK/site-$port.conf;"$'\n'
}

# axum_site PORT ADDR: a server block on PORT passing to axum at ADDR over
# HTTP/1.1 (benches/axum_hello). The same block as nene's template but for
# the pass: nginx serves a file from htdocs when there is one (`try_files`,
# a stat per request) and hands everything else to the application, as a
# Rust team puts nginx in front of axum too. Without it the axum case
# skipped a syscall nene's case pays, and a ratio measured more than
# FastCGI.
axum_site() {
    cat >"$WORK/site-axum.conf" <<CONF
upstream axum {
    server $2;
    # As the nene template's: idle connections kept per worker.
    keepalive 1024;
}
server {
    listen 127.0.0.1:$1;
    root $REPO/htdocs;
    client_max_body_size 8m;
    location / {
        try_files \$uri @axum;
    }
    location @axum {
        proxy_pass http://axum;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
    }
}
CONF
    SITES+="    include $WORK/site-axum.conf;"$'\n'
}

# start_redis: a throwaway redis-server on a free port; sets REDIS_PORT and REDIS_PID.
start_redis() {
    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK" >"$WORK/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    wait_port "$REDIS_PORT"
}

# start_mariadb: a throwaway MariaDB on a free port, with the user
# `todo` (password `bench-pw`) and the database `todo`; sets MARIA_PORT.
# mariadb_database NAME adds another database that `todo` may use.
start_mariadb() {
    MARIA_PORT=$(free_port)
    local root=()
    [ "$(id -u)" = 0 ] && root=(--user=root)
    mariadb-install-db --no-defaults --datadir="$WORK/maria" --auth-root-authentication-method=normal \
        --skip-test-db "${root[@]}" >"$WORK/maria-install.log" 2>&1
    mariadbd --no-defaults --datadir="$WORK/maria" --port="$MARIA_PORT" --bind-address=127.0.0.1 \
        --socket="$WORK/maria.sock" --pid-file="$WORK/maria.pid" --skip-log-bin --skip-name-resolve \
        --innodb-buffer-pool-size=64M "${root[@]}" >"$WORK/maria.log" 2>&1 &
    PIDS+=($!)
    wait_port "$MARIA_PORT"
    mariadb --no-defaults --socket="$WORK/maria.sock" -uroot -e \
        "CREATE USER 'todo'@'127.0.0.1' IDENTIFIED BY 'bench-pw';"
    mariadb_database todo
}
mariadb_database() {
    mariadb --no-defaults --socket="$WORK/maria.sock" -uroot -e \
        "CREATE DATABASE $1; GRANT ALL ON $1.* TO 'todo'@'127.0.0.1';"
}

# redis_commands: how many commands the bench's Redis has run (INFO itself not counted).
redis_commands() {
    redis-cli -p "$REDIS_PORT" info commandstats |
        awk -F'[=,:]' '/^cmdstat_/ && !/cmdstat_info/ {sum += $3} END {print sum + 0}'
}

# wait_port PORT: until something accepts on 127.0.0.1:PORT (at most 10 s).
wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# cpu_ticks PID...: user + system time these processes (all their threads)
# have used so far, summed, in clock ticks (getconf CLK_TCK per second).
cpu_ticks() {
    local pid
    for pid in "$@"; do cat "/proc/$pid/stat" 2>/dev/null; done | awk '{t += $14 + $15} END {print t + 0}'
}

# rss_mib PID...: the resident memory (VmRSS) of these processes, summed, in MiB.
rss_mib() {
    local pid
    for pid in "$@"; do cat "/proc/$pid/status" 2>/dev/null; done |
        awk '/^VmRSS/ {kb += $2} END {printf "%.1f", kb / 1024}'
}

# start_nginx [EXTRA_HTTP_CONFIG]: one nginx serving every site() so far,
# with $NGINX_WORKERS worker processes (default: one per core).
start_nginx() {
    local user=""
    [ "$(id -u)" = 0 ] && user="user root;"
    cat >"$WORK/nginx.conf" <<CONF
$user
daemon off;
worker_processes ${NGINX_WORKERS:-auto};
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/body; fastcgi_temp_path $WORK/fastcgi;
    proxy_temp_path $WORK/proxy; uwsgi_temp_path $WORK/uwsgi; scgi_temp_path $WORK/scgi;
$SITES
    ${1:-}
}
CONF
    nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/error.log" &
    PIDS+=($!)
    sleep 1
}

# run_wrk NAME URL [HEADER]: one wrk run (with the Lua script $WRK_SCRIPT
# when set); appends
# name|req/s|p99|errors|requests|p50 to $WORK/results and echoes progress.
# Also sets WRK_REQUESTS (responses of any status), WRK_RPS, WRK_P50_MS,
# WRK_P99_MS, WRK_NON2XX (answers that were not 2xx/3xx) and
# WRK_SOCKET_ERRORS (connect, read, write errors and timeouts, summed).
run_wrk() {
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
    [ -n "${3:-}" ] && args+=(-H "$3")
    [ -n "${WRK_SCRIPT:-}" ] && args+=(-s "$WRK_SCRIPT")
    wrk "${args[@]}" "$2" >"$WORK/wrk.out"
    WRK_REQUESTS=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
    local p50 p99 errors
    WRK_RPS=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
    p50=$(awk '$1=="50%" {print $2}' "$WORK/wrk.out")
    p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.out")
    WRK_P50_MS=$(to_ms "$p50")
    WRK_P99_MS=$(to_ms "$p99")
    WRK_NON2XX=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.out")
    WRK_NON2XX=${WRK_NON2XX:-0}
    WRK_SOCKET_ERRORS=$(awk '/Socket errors/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) n += $i}
        END {print n + 0}' "$WORK/wrk.out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/wrk.out" | tr '\n' ' ')
    echo "$1|$WRK_RPS|$p99|$errors|$WRK_REQUESTS|$p50" >>"$WORK/results"
    echo "$1: $WRK_RPS req/s, p99 $p99 $errors" >&2
}

# to_ms 1.23ms|456.00us|1.20s: wrk's latency in milliseconds.
to_ms() {
    awk -v t="$1" 'BEGIN {
        if (t ~ /us$/) f = 0.001; else if (t ~ /ms$/) f = 1; else if (t ~ /m$/) f = 60000; else f = 1000
        sub(/[a-z]+$/, "", t); printf "%.3f", t * f }'
}

# median_table [CEILING_CASE]: the markdown table of medians over rounds.
median_table() {
    python3 - "$WORK/results" "${1:-}" <<'PY'
import statistics, sys
path, ceiling_name = sys.argv[1], sys.argv[2]
def ms(text):
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)
rows = {}
for line in open(path):
    name, rps, p99, errors, _requests = line.rstrip("\n").split("|")[:5]
    rows.setdefault(name, []).append((float(rps), ms(p99), errors.strip()))
ceiling = statistics.median(r for r, _, _ in rows[ceiling_name]) if ceiling_name else None
header = "| case | req/s | p99 (ms) |" + (" % of ceiling |" if ceiling else "") + " errors |"
print(header)
print("|---" * (header.count("|") - 1) + "|")
for name, samples in rows.items():
    rps = statistics.median(s[0] for s in samples)
    p99 = statistics.median(s[1] for s in samples)
    errors = "; ".join(sorted({s[2] for s in samples if s[2]})) or "none"
    share = f" {100 * rps / ceiling:.0f}% |" if ceiling else ""
    print(f"| {name} | {rps:,.0f} | {p99:.2f} |{share} {errors} |")
PY
}

# PHP-FPM's binary (Debian names it php-fpm8.2 and so on), or empty.
find_php_fpm() {
    compgen -c php-fpm | sort -V | tail -1
}

# start_php_fpm CHILDREN: $PHP_FPM (see find_php_fpm) from
# benches/php/{php-fpm.conf,php.ini}, a static pool of CHILDREN workers on
# PHP_PORT (picked once, kept across restarts so nginx's sites stay valid);
# sets PHP_FPM_PID (the master).
start_php_fpm() {
    PHP_PORT=${PHP_PORT:-$(free_port)}
    mkdir -p "$WORK/php-sessions"
    WORK=$WORK PHP_PORT=$PHP_PORT PHP_CHILDREN=$1 envsubst '${WORK} ${PHP_PORT} ${PHP_CHILDREN}' \
        <"$REPO/benches/php/php-fpm.conf" >"$WORK/php-fpm.conf"
    local root=()
    [ "$(id -u)" = 0 ] && root=(--allow-to-run-as-root)
    "$PHP_FPM" --nodaemonize "${root[@]}" -y "$WORK/php-fpm.conf" -c "$REPO/benches/php/php.ini" \
        2>>"$WORK/php-fpm.log" &
    PHP_FPM_PID=$!
    PIDS+=("$PHP_FPM_PID")
    wait_port "$PHP_PORT"
}

# stop_php_fpm: ends the pool started last and waits until it has gone.
stop_php_fpm() {
    kill "$PHP_FPM_PID" 2>/dev/null || true
    wait "$PHP_FPM_PID" 2>/dev/null || true
}

# php_fpm_pids: the master and its workers.
php_fpm_pids() {
    echo "$PHP_FPM_PID" $(pgrep -P "$PHP_FPM_PID")
}

# sessions_script PORT N: a wrk Lua script sending N session cookies in turn.
sessions_script() {
    local url="http://127.0.0.1:$1/session/counter" i cookie
    {
        echo "local cookies = {"
        for i in $(seq 1 "$2"); do
            cookie=$(curl -s -i "$url" | awk -F'[=;]' 'tolower($1) ~ /^set-cookie/ {print $2}')
            echo "  \"NENESESSID=$cookie\","
        done
        echo "}"
        echo "local n = 0"
        echo "request = function()"
        echo "  n = n % #cookies + 1"
        echo "  return wrk.format(nil, nil, { Cookie = cookies[n] })"
        echo "end"
    } >"$WORK/sessions-$1.lua"
}

# start_otlp_sink PORT [DELAY_SECONDS]: a stand-in OpenTelemetry collector
# on 127.0.0.1:PORT that takes OTLP/HTTP exports (`POST /v1/traces`) and
# answers 200 after DELAY_SECONDS (0: at once), counting the bytes it got
# in $WORK/otlp-PORT.bytes. For the trace benches; the tests use the test
# support's receiver, which decodes the spans.
start_otlp_sink() {
    python3 - "$1" "${2:-0}" "$WORK/otlp-$1.bytes" <<'PY' 2>"$WORK/otlp-$1.log" &
import http.server, socketserver, sys, time
port, delay, tally = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
received = 0
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        global received
        received += len(self.rfile.read(int(self.headers.get("content-length", 0))))
        open(tally, "w").write(str(received))
        time.sleep(delay)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
Server(("127.0.0.1", port), Sink).serve_forever()
PY
    PIDS+=($!)
    wait_port "$1"
}
