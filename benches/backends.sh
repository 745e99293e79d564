#!/usr/bin/env bash
# Every session backend side by side, one nene build, through one nginx:
# the session counter with one hot session (every request the same cookie)
# and with a new session per request, for Redis, memcached, SQLite, MariaDB
# and PostgreSQL, locking on (each backend's default). Runs alternate
# between backends; medians are printed, then the backend operations per
# request, counted by each server: Redis commands (INFO commandstats),
# memcached commands (stats: gets, sets, touches, deletes), MariaDB
# statements (Questions) and PostgreSQL transactions (pg_stat_database;
# every nene operation there is one transaction of one to three statements).
# SQLite runs inside nene: nothing to count.
#
# Usage: benches/backends.sh [ROUNDS] [DURATION]     (defaults: 3 rounds, 10s)
# Needs (Debian): nginx wrk redis-server memcached mariadb-server
#   mariadb-client postgresql gettext-base curl. Loopback only.
set -euo pipefail
ROUNDS=${1:-3}
DURATION=${2:-10s}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk redis-server:redis-server redis-cli:redis-tools \
    memcached:memcached mariadbd:mariadb-server mariadb:mariadb-client \
    mariadb-install-db:mariadb-server envsubst:gettext-base curl:curl
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PG_BIN/initdb" ] || { echo "missing initdb: apt-get install -y postgresql" >&2; exit 1; }

# --- the servers, on free loopback ports ---
start_redis
MEMCACHED_PORT=$(free_port)
# -I: an item as large as session.max_size (4 MiB by default) must fit.
memcached -l 127.0.0.1 -p "$MEMCACHED_PORT" -U 0 -m 256 -I 8m -u root >"$WORK/memcached.log" 2>&1 &
PIDS+=($!)
wait_port "$MEMCACHED_PORT"
memcached_commands() {
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$MEMCACHED_PORT"
    printf 'stats\r\n' >&3
    while IFS= read -r -t 2 line <&3; do
        line=${line%$'\r'}
        [ "$line" = END ] && break
        echo "$line"
    done | awk '$2 ~ /^(cmd_get|cmd_set|cmd_touch|delete_hits|delete_misses|incr_hits|incr_misses)$/ {sum += $3}
             END {print sum + 0}'
    exec 3<&-
}

MARIA_PORT=$(free_port)
root=(); [ "$(id -u)" = 0 ] && root=(--user=root)
mariadb-install-db --no-defaults --datadir="$WORK/maria" --auth-root-authentication-method=normal \
    --skip-test-db "${root[@]}" >"$WORK/maria-install.log" 2>&1
mariadbd --no-defaults --datadir="$WORK/maria" --port="$MARIA_PORT" --bind-address=127.0.0.1 \
    --socket="$WORK/maria.sock" --pid-file="$WORK/maria.pid" --skip-log-bin --skip-name-resolve \
    --innodb-buffer-pool-size=64M --innodb-flush-log-at-trx-commit=2 "${root[@]}" >"$WORK/maria.log" 2>&1 &
PIDS+=($!)
wait_port "$MARIA_PORT"
mariadb --no-defaults --socket="$WORK/maria.sock" -uroot -e \
    "CREATE DATABASE sessions; CREATE USER 'nene'@'127.0.0.1' IDENTIFIED BY 'bench-pw';
     GRANT ALL ON sessions.* TO 'nene'@'127.0.0.1';"
maria_statements() {
    mariadb --no-defaults --socket="$WORK/maria.sock" -uroot -N -e "SHOW GLOBAL STATUS LIKE 'Questions'" |
        awk '{print $2}'
}

PG_PORT=$(free_port)
mkdir -p "$WORK/pg"
as_postgres=(); [ "$(id -u)" = 0 ] && { chown postgres "$WORK/pg"; chmod 755 "$WORK"; as_postgres=(runuser -u postgres --); }
"${as_postgres[@]}" "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -E UTF8 --no-locale --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 >"$WORK/pg-init.log" 2>&1
# Durability as in the other servers here: the bench measures the session
# path, not the disk (the same settings as the tests' PostgreSQL).
"${as_postgres[@]}" "$PG_BIN/postgres" -D "$WORK/pg/data" -p "$PG_PORT" -k "$WORK/pg" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c shared_buffers=64MB >"$WORK/pg.log" 2>&1 &
PIDS+=($!)
wait_port "$PG_PORT"
sleep 0.5
psql_root() { "${as_postgres[@]}" "$PG_BIN/psql" -X -q -h "$WORK/pg" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 "$@"; }
psql_root -c "CREATE ROLE nene LOGIN PASSWORD 'bench-pw'" -c "CREATE DATABASE sessions OWNER nene"
pg_transactions() {
    psql_root -At -c "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'sessions'"
}

# --- one nene per backend, one nginx ---
build_nene
declare -A PORT DSN COUNTER
DSN[redis]="redis://127.0.0.1:$REDIS_PORT"
DSN[memcached]="memcached://127.0.0.1:$MEMCACHED_PORT"
DSN[sqlite]="sqlite://$WORK/sessions.db"
DSN[mariadb]="mysql://nene:bench-pw@127.0.0.1:$MARIA_PORT/sessions"
DSN[postgres]="postgres://nene:bench-pw@127.0.0.1:$PG_PORT/sessions"
COUNTER[redis]=redis_commands
COUNTER[memcached]=memcached_commands
COUNTER[sqlite]=""
COUNTER[mariadb]=maria_statements
COUNTER[postgres]=pg_transactions
# BENCH_BACKENDS="mariadb postgres" runs only those.
read -r -a BACKENDS <<<"${BENCH_BACKENDS:-redis memcached sqlite mariadb postgres}"
for backend in "${BACKENDS[@]}"; do
    nene_port=$(free_port)
    start_nene "$nene_port" NENE_SESSION_DSN="${DSN[$backend]}"
    wait_port "$nene_port"
    PORT[$backend]=$(free_port)
    site "${PORT[$backend]}" "$backend" "127.0.0.1:$nene_port" on
done
start_nginx

# operations BACKEND: the backend's own count so far (empty for SQLite).
operations() {
    local counter=${COUNTER[$1]}
    [ -n "$counter" ] && "$counter" || echo ""
}

# measure NAME BACKEND URL [HEADER]: one run, and its operations per request.
measure() {
    local before after
    before=$(operations "$2")
    run_wrk "$1" "$3" "${4:-}"
    after=$(operations "$2")
    if [ -n "$before" ]; then
        echo "$1|$WRK_REQUESTS|$((after - before))" >>"$WORK/counts"
    else
        echo "$1|$WRK_REQUESTS|" >>"$WORK/counts"
    fi
}

for round in $(seq 1 "$ROUNDS"); do
    echo "round $round" >&2
    for backend in "${BACKENDS[@]}"; do
        url="http://127.0.0.1:${PORT[$backend]}/session/counter"
        cookie=$(curl -s -i "$url" | awk -F'[=;]' 'tolower($1) ~ /^set-cookie/ {print $2}')
        measure "$backend, one hot session" "$backend" "$url" "Cookie: NENESESSID=$cookie"
        measure "$backend, new session per request" "$backend" "$url"
    done
done

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds alternating, medians"
echo
median_table
echo
echo "| case | backend operations per request (median of rounds) |"
echo "|---|---:|"
python3 - "$WORK/counts" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, requests, ops = line.rstrip("\n").split("|")
    if ops:
        runs.setdefault(name, []).append(int(ops) / max(int(requests), 1))
    else:
        runs.setdefault(name, [])
for name, values in runs.items():
    shown = f"{statistics.median(values):.2f}" if values else "in process"
    print(f"| {name} | {shown} |")
PY
