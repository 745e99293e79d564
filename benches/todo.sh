#!/usr/bin/env bash
# The todo application side by side: a logged-in GET /todo/index returning
# 20 items, sessions in Redis (locking on both sides; SESSIONS=32 sessions of
# one user, requests spread over them), through one nginx:
#   - nene's examples/todo (release) on SQLite and on MariaDB;
#   - the same routes as a PHP front controller on PHP-FPM with PDO
#     (benches/php/todo.php: phpredis sessions, persistent PDO connections),
#     reading the same database files and tables.
#   - with BEFORE_BINARY=/path/to/todo, that build of the app too, on
#     SQLite (an A/B of a change, in the same run).
# nene runs with its default configuration (access log on, to a file).
# Cases alternate within each round (A B A B); the table shows medians over
# the rounds, nene's resident memory and PHP-FPM's (master and workers),
# and the CPU time per request of the application (nene, or PHP-FPM's
# master and workers), nginx's workers and Redis: with wrk, nginx, Redis
# and the application on the same cores, req/s follows their sum.
#
# Usage: benches/todo.sh [ROUNDS] [DURATION]   (defaults: 3 rounds, 10s)
#        BEFORE_BINARY=/path/to/todo benches/todo.sh
#        PAGE_PATH=/list benches/todo.sh   (the HTML list page instead: nene's
#          minijinja template against benches/php/todo.php's plain PHP one)
#        SYSCALLS=1 benches/todo.sh 1 5s   (also the system calls per request
#          of each application, counted by perf's syscall tracepoints during
#          the last round; tracing every call inflates that run's CPU
#          columns several times over, so take CPU from a run without it)
# Needs (Debian): apt-get install -y nginx wrk redis-server mariadb-server
#   mariadb-client php-fpm php-redis php-opcache php-sqlite3 php-mysql
#   gettext-base curl python3
# Loopback only.
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-10s}
PHP_CHILDREN=${PHP_CHILDREN:-8}
PAGE_PATH=${PAGE_PATH:-/todo/index}
source "$(dirname "$0")/lib.sh"
[ -n "${SYSCALLS:-}" ] && require_tools perf:linux-perf
require_tools nginx:nginx wrk:wrk redis-server:redis-server mariadbd:mariadb-server \
    mariadb:mariadb-client mariadb-install-db:mariadb-server envsubst:gettext-base \
    curl:curl python3:python3
PHP_FPM=$(find_php_fpm)
[ -n "$PHP_FPM" ] || { echo "missing php-fpm: apt-get install -y php-fpm php-redis php-opcache php-sqlite3 php-mysql" >&2; exit 1; }
# The list is read whole first: `php-fpm -m | grep -q` fails at random
# under pipefail (grep exits at its first match; php-fpm gets SIGPIPE).
PHP_MODULES=$("$PHP_FPM" -m)
for module in redis pdo_sqlite pdo_mysql "Zend OPcache"; do
    grep -qx "$module" <<<"$PHP_MODULES" ||
        { echo "php-fpm has no $module: apt-get install -y php-redis php-sqlite3 php-mysql php-opcache" >&2; exit 1; }
done

# --- Redis and MariaDB on free loopback ports ---
start_redis
start_mariadb

# --- nene's todo app, on SQLite and on MariaDB (and BEFORE_BINARY's, on SQLite) ---
echo "building examples/todo (release)..." >&2
cargo build --release --quiet --manifest-path "$REPO/Cargo.toml" -p todo
# start_todo PORT DSN [BINARY]: sets TODO_PID.
start_todo() {
    env RUST_LOG=warn NENE_SESSION_DSN="redis://127.0.0.1:$REDIS_PORT" \
        NENE_TODO__DATABASE_DSN="$2" NENE_ACCESS__LOG="$WORK/access-$1.log" \
        "${3:-$REPO/target/release/todo}" serve --listen "127.0.0.1:$1" \
        --ini-dir "$REPO/examples/todo/ini" --htdocs "$REPO/examples/todo/htdocs" \
        2>"$WORK/todo-$1.log" &
    TODO_PID=$!
    PIDS+=("$TODO_PID")
    wait_port "$1"
}
N_SQLITE=$(free_port); N_MARIA=$(free_port)
start_todo "$N_SQLITE" "sqlite://$WORK/todo.db"; SQLITE_PID=$TODO_PID
start_todo "$N_MARIA" "mariadb://todo:bench-pw@127.0.0.1:$MARIA_PORT/todo"; MARIA_PID=$TODO_PID
if [ -n "${BEFORE_BINARY:-}" ]; then
    N_BEFORE=$(free_port)
    start_todo "$N_BEFORE" "sqlite://$WORK/todo.db" "$BEFORE_BINARY"; BEFORE_PID=$TODO_PID
fi

# --- PHP-FPM, one pool for both databases ---
start_php_fpm "$PHP_CHILDREN"
SCRIPT=SCRIPT_FILENAME=$REPO/benches/php/todo.php
SAVE=REDIS_SAVE_PATH="\"tcp://127.0.0.1:$REDIS_PORT?persistent=1&prefix=phpsess_\""
NENE_SQLITE=$(free_port); NENE_MARIA=$(free_port); PHP_SQLITE=$(free_port); PHP_MARIA=$(free_port)
site "$NENE_SQLITE" todo_sqlite "127.0.0.1:$N_SQLITE" on
site "$NENE_MARIA" todo_maria "127.0.0.1:$N_MARIA" on
NENE_BEFORE=$(free_port)
[ -n "${BEFORE_BINARY:-}" ] && site "$NENE_BEFORE" todo_before "127.0.0.1:$N_BEFORE" on
site "$PHP_SQLITE" php_sqlite "127.0.0.1:$PHP_PORT" off "$SCRIPT" "$SAVE" \
    "TODO_PDO_DSN=sqlite:$WORK/todo.db"
site "$PHP_MARIA" php_maria "127.0.0.1:$PHP_PORT" off "$SCRIPT" "$SAVE" \
    "TODO_PDO_DSN=\"mysql:host=127.0.0.1;port=$MARIA_PORT;dbname=todo\"" \
    TODO_PDO_USER=todo TODO_PDO_PASSWORD=bench-pw
start_nginx

# --- one user with 20 todos in each database, created through nene, then
# logged in SESSIONS times on each side: wrk's connections spread over that
# many sessions (a user's browser tabs and devices), so the figure is not
# one session's lock queue ---
SESSIONS=${SESSIONS:-32}
json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
# nene_login PORT: a new session logged in as `bench`; prints its id.
nene_login() {
    local base="http://127.0.0.1:$1" jar token
    jar=$(mktemp -p "$WORK")
    token=$(curl -sf -c "$jar" -b "$jar" "$base/auth/csrf" | json_field '["data"]["csrf_token"]')
    curl -sf -c "$jar" -b "$jar" -H "X-CSRF-Token: $token" -H 'Content-Type: application/json' \
        -d '{"username":"bench","password":"bench-password"}' "$base/auth/login" >/dev/null
    awk '$6 == "NENESESSID" {print $7}' "$jar"
}
# seed PORT: registers `bench` and adds 20 todos through nene's API.
seed() {
    local base="http://127.0.0.1:$1" jar="$WORK/jar-$1" token
    token=$(curl -sf -c "$jar" -b "$jar" "$base/auth/csrf" | json_field '["data"]["csrf_token"]')
    curl -sf -c "$jar" -b "$jar" -H "X-CSRF-Token: $token" -H 'Content-Type: application/json' \
        -d '{"username":"bench","password":"bench-password"}' "$base/auth/register" >/dev/null
    token=$(curl -sf -c "$jar" -b "$jar" -H "X-CSRF-Token: $token" -H 'Content-Type: application/json' \
        -d '{"username":"bench","password":"bench-password"}' "$base/auth/login" | json_field '["data"]["csrf_token"]')
    for n in $(seq 1 20); do
        curl -sf -c "$jar" -b "$jar" -H "X-CSRF-Token: $token" -H 'Content-Type: application/json' \
            -d "{\"title\":\"todo number $n\"}" "$base/todo/index" >/dev/null
    done
}
# php_login PORT: a new PHP session logged in as `bench`; prints its id.
php_login() {
    curl -sf -i -H 'Content-Type: application/json' -d '{"username":"bench","password":"bench-password"}' \
        "http://127.0.0.1:$1/auth/login" | awk -F'[=;]' 'tolower($1) ~ /^set-cookie: nenesessid/ {print $2}' | tail -1
}
# sessions NAME LOGIN PORT: SESSIONS logins; writes a wrk script that sends
# them round robin, and checks each sees 20 todos.
sessions() {
    local name=$1 login=$2 port=$3 id items
    : >"$WORK/ids-$name"
    for _ in $(seq 1 "$SESSIONS"); do
        id=$($login "$port")
        items=$(curl -sf -H "Cookie: NENESESSID=$id" "http://127.0.0.1:$port/todo/index" |
            json_field '["data"].__len__()') || items=error
        [ "$items" = 20 ] || { echo "$name: a session saw $items todos, not 20" >&2;
            cat "$WORK"/todo-*.log "$WORK/php-errors.log" "$WORK/error.log" 2>/dev/null >&2; exit 1; }
        echo "$id" >>"$WORK/ids-$name"
    done
    {
        echo "local ids = {"
        sed 's/.*/  "&",/' "$WORK/ids-$name"
        echo "}"
        echo 'local n = 0'
        echo 'request = function()'
        echo '  n = n % #ids + 1'
        echo "  return wrk.format(\"GET\", \"$PAGE_PATH\", {Cookie = \"NENESESSID=\" .. ids[n]})"
        echo 'end'
    } >"$WORK/$name.lua"
}
seed "$NENE_SQLITE"
seed "$NENE_MARIA"
sessions nene_sqlite nene_login "$NENE_SQLITE"
sessions nene_maria nene_login "$NENE_MARIA"
[ -n "${BEFORE_BINARY:-}" ] && sessions nene_before nene_login "$NENE_BEFORE"
sessions php_sqlite php_login "$PHP_SQLITE"
sessions php_maria php_login "$PHP_MARIA"

# --- the rounds ---
# case_run NAME PORT SCRIPT PIDS...: PIDS are the application's.
case_run() {
    local name=$1 port=$2 script=$3 nginx_workers app nginx redis
    shift 3
    nginx_workers=$(pgrep -P "$(cat "$WORK/nginx.pid")")
    app=$(cpu_ticks "$@"); nginx=$(cpu_ticks $nginx_workers); redis=$(cpu_ticks "$REDIS_PID")
    local perf_pid=
    if [ -n "${SYSCALLS:-}" ]; then
        perf stat -x, -e 'syscalls:sys_enter_*' -p "$(IFS=,; echo "$*")" \
            -o "$WORK/syscalls-$script" &
        perf_pid=$!
    fi
    WRK_SCRIPT=$WORK/$script.lua run_wrk "$name" "http://127.0.0.1:$port$PAGE_PATH"
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
        echo "$name|$WRK_REQUESTS|$WORK/syscalls-$script" >>"$WORK/syscall-runs"
    fi
    app=$(($(cpu_ticks "$@") - app)); nginx=$(($(cpu_ticks $nginx_workers) - nginx))
    redis=$(($(cpu_ticks "$REDIS_PID") - redis))
    echo "$name|$WRK_RPS|$WRK_P99_MS|$WRK_NON2XX|$WRK_SOCKET_ERRORS|$(rss_mib "$@")|$WRK_REQUESTS|$app|$nginx|$redis" >>"$WORK/rows"
}
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    case_run "nene, SQLite" "$NENE_SQLITE" nene_sqlite "$SQLITE_PID"
    [ -n "${BEFORE_BINARY:-}" ] && case_run "nene before, SQLite" "$NENE_BEFORE" nene_before "$BEFORE_PID"
    case_run "PHP-FPM, SQLite" "$PHP_SQLITE" php_sqlite $(php_fpm_pids)
    case_run "nene, MariaDB" "$NENE_MARIA" nene_maria "$MARIA_PID"
    case_run "PHP-FPM, MariaDB" "$PHP_MARIA" php_maria $(php_fpm_pids)
done

python3 - "$WORK/rows" "$ROUNDS" "$DURATION" "$THREADS" "$CONNECTIONS" "$PHP_CHILDREN" "$(getconf CLK_TCK)" "$PAGE_PATH" <<'PY'
import statistics, sys
rows, rounds, duration, threads, connections, children, ticks_per_second, path = sys.argv[1:9]
tick_us = 1e6 / int(ticks_per_second)
by = {}
for line in open(rows):
    name, rps, p99, non2xx, socket, rss, requests, app, nginx, redis = line.strip().split("|")
    per_request = tick_us / max(int(requests), 1)
    by.setdefault(name, []).append((float(rps), float(p99), int(non2xx) + int(socket), float(rss),
                                    int(app) * per_request, int(nginx) * per_request, int(redis) * per_request))
def med(name, i):
    return statistics.median(v[i] for v in by[name])
print(f"Logged-in GET {path} (20 items, Redis sessions), wrk -t{threads} -c{connections} -d{duration}, "
      f"{rounds} round(s), medians; PHP-FPM pm.static with {children} children")
print()
print("| case | req/s | p99 ms | errors | RSS MiB | CPU µs/request: app | nginx | Redis |")
print("|---|---|---|---|---|---|---|---|")
for name in by:
    errors = sum(v[2] for v in by[name])
    print(f"| {name} | {med(name, 0):,.0f} | {med(name, 1):.2f} | {errors} | {med(name, 3):.1f} "
          f"| {med(name, 4):.0f} | {med(name, 5):.0f} | {med(name, 6):.0f} |")
print()
for db in ("SQLite", "MariaDB"):
    n, p = f"nene, {db}", f"PHP-FPM, {db}"
    print(f"{db}: nene / PHP-FPM req/s {med(n, 0) / med(p, 0):.1f}x, p99 {med(n, 1) / med(p, 1):.2f} of PHP-FPM's")
if "nene before, SQLite" in by:
    n, b = "nene, SQLite", "nene before, SQLite"
    print(f"nene / nene before (SQLite): req/s {med(n, 0) / med(b, 0):.3f}, CPU per request {med(n, 4) / med(b, 4):.2f}x")
PY
if [ -n "${SYSCALLS:-}" ]; then
    python3 - "$WORK/syscall-runs" <<'PY'
import sys
print()
print("System calls per request (last round), the most frequent:")
runs = {}
for line in open(sys.argv[1]):
    name, requests, path = line.strip().split("|")
    runs[name] = (int(requests), path)
for name, (requests, path) in runs.items():
    counts = {}
    for row in open(path):
        fields = row.strip().split(",")
        if len(fields) > 2 and fields[0].isdigit() and int(fields[0]) > 0:
            counts[fields[2].removeprefix("syscalls:sys_enter_")] = int(fields[0])
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:6]
    total = sum(counts.values()) / max(requests, 1)
    print(f"- {name}: {total:.1f} (" + ", ".join(f"{k} {v / requests:.1f}" for k, v in top) + ")")
PY
fi
