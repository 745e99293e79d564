#!/usr/bin/env bash
# Instructions and heap allocations per request in nene's own process, counted
# by valgrind's callgrind: a measure of nene's user-space cost per request
# that the neighbours' load does not move (wrk and nginx run beside it,
# uncounted; the kernel's share of the request is not in it). Use it to A/B a
# change in the request path on a shared machine, where req/s swings.
#   - each build serves GET PATH through one nginx (the shipped template,
#     fastcgi_keep_conn on, access log off) under callgrind;
#   - after a warm-up the counters are zeroed, `wrk -t1 -c32` runs for
#     DURATION, the counters are dumped, and the totals are divided by the
#     requests wrk completed.
#   - for /health (no SESSIONS), axum alone is counted too, the same way:
#     benches/axum_hello's same answer behind `proxy_pass` (as
#     benches/vs_axum.sh serves it), the anchor nene's count is held to.
# Usage: benches/instructions.sh [DURATION] [PATH]       (defaults: 10s, /health)
#        BEFORE_BINARY=/path/to/nene benches/instructions.sh   (adds that build)
#        SESSIONS=redis benches/instructions.sh 10s /session/whoami
#          (sessions in a throwaway redis-server; each build's requests carry
#          the cookie of one session it made first with /session/counter)
#        TRACED=1 benches/instructions.sh 5s /health
#          (built with the `otel` feature; adds `traced`: the same build
#          with traces on, 1 % of requests sampled (traceidratio 0.01), to
#          a stand-in collector; `now` has traces off)
#        ACCESS_LOG=1 benches/instructions.sh 5s /health
#          (adds `logged`: the same build writing the default access log to
#          a file, as a default configuration does; with BEFORE_BINARY, also
#          `before_logged`)
#        APP=todo benches/instructions.sh 10s /todo/index
#          (examples/todo instead of nene's demo application, on SQLite with
#          Redis sessions: a user with 20 todos, logged in; BEFORE_BINARY is
#          then a build of the todo app)
#        TODO_DB=mariadb APP=todo benches/instructions.sh 10s /todo/index
#          (the todo app on a throwaway MariaDB instead of SQLite, a
#          database for each build)
#        ALLOC_SITES=1 APP=todo benches/instructions.sh 5s /todo/index
#          (instead of counting: the `now` build alone under valgrind's heap
#          profiler, dhat, and the 25 places that allocate most often, in
#          allocations per request, start-up and warm-up included: where to
#          look for allocations to take out)
# Builds with line tables (CARGO_PROFILE_RELEASE_DEBUG=1) into
# target/instructions, so the release build is left alone and the dump names
# functions (callgrind_annotate target/instructions/callgrind.*).
# Needs (Debian): apt-get install -y nginx wrk valgrind gettext-base curl python3
set -euo pipefail
DURATION=${1:-10s}
URL_PATH=${2:-/health}
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk valgrind:valgrind callgrind_control:valgrind \
    envsubst:gettext-base curl:curl python3:python3

OUT=$REPO/target/instructions
APP=${APP:-nene}
case $APP in
    nene) PACKAGE=nene APP_ARGS=(--htdocs "$REPO/htdocs") ;;
    todo) PACKAGE=todo SESSIONS=redis
        APP_ARGS=(--ini-dir "$REPO/examples/todo/ini" --htdocs "$REPO/examples/todo/htdocs") ;;
    *) echo "APP is nene or todo, not $APP" >&2; exit 1 ;;
esac
echo "building $APP (release, with line tables)..." >&2
FEATURES=()
[ -n "${TRACED:-}" ] && FEATURES=(--features nene/otel)
CARGO_PROFILE_RELEASE_DEBUG=1 cargo build --release --quiet --manifest-path "$REPO/Cargo.toml" \
    --target-dir "$OUT" -p "$PACKAGE" --bin "$APP" "${FEATURES[@]}"
CASES="now:$OUT/release/$APP"
TRACE_ENV=()
if [ -n "${TRACED:-}" ]; then
    CASES="$CASES traced:$OUT/release/$APP"
    sink=$(free_port)
    start_otlp_sink "$sink"
    TRACE_ENV=(OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink"
        OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01)
fi
TODO_DB=${TODO_DB:-sqlite}
case $TODO_DB in
    sqlite) ;;
    mariadb) require_tools mariadbd:mariadb-server mariadb:mariadb-client \
        mariadb-install-db:mariadb-server
        start_mariadb ;;
    *) echo "TODO_DB is sqlite or mariadb, not $TODO_DB" >&2; exit 1 ;;
esac
# todo_dsn CASE: the database of a build of the todo app.
todo_dsn() {
    if [ "$TODO_DB" = mariadb ]; then
        mariadb_database "todo_$1"
        echo "mariadb://todo:bench-pw@127.0.0.1:$MARIA_PORT/todo_$1"
    else
        echo "sqlite://$WORK/todo-$1.db"
    fi
}
SESSION_ENV=()
if [ "${SESSIONS:-}" = redis ]; then
    require_tools redis-server:redis-server
    start_redis
    SESSION_ENV=(NENE_SESSION_DSN="redis://127.0.0.1:$REDIS_PORT")
fi
[ -n "${ACCESS_LOG:-}" ] && CASES="$CASES logged:$OUT/release/$APP"
[ -n "${BEFORE_BINARY:-}" ] && CASES="before:$BEFORE_BINARY $CASES"
[ -n "${BEFORE_BINARY:-}" ] && [ -n "${ACCESS_LOG:-}" ] && CASES="$CASES before_logged:$BEFORE_BINARY"
[ -n "${ALLOC_SITES:-}" ] && CASES="now:$OUT/release/$APP"

# Ir and malloc calls in a callgrind dump (function names are compressed:
# `cfn=(7) malloc` or `fn=(7) malloc` names id 7 once, later calls say
# `cfn=(7)`; a dump that named malloc by `fn=` first counted 0 allocations
# before this read both).
# sites DHAT_FILE REQUESTS: the allocation sites of a dhat profile, most
# allocations first, each named by its first three frames with a path
# (inlined helpers have none) outside the allocator and the standard library.
sites() {
    python3 - "$1" "$2" <<'PY'
import json, re, sys
profile, requests = json.load(open(sys.argv[1])), int(sys.argv[2])
inner = re.compile(r'^(alloc|core|std|hashbrown|__rust|__rdl)|alloc$|malloc|memalign|UnknownInlinedFun|^\?\?\?')
print(f"{'allocs/request':>14}  where")
for point in sorted(profile['pps'], key=lambda p: -p['tbk'])[:25]:
    frames = [re.sub(r' \(.*\)$', '', re.sub(r'^0x[0-9A-F]+: ', '', profile['ftbl'][i]))
              for i in point['fs']]
    named = [f[:70] for f in frames if '::' in f.split('<')[0] and not inner.search(f)][:3]
    print(f"{point['tbk'] / requests:14.2f}  " + '  <  '.join(named))
PY
}

totals() {
    python3 - "$1" <<'PY'
import re, sys
ids, total, allocs, pending = {}, 0, 0, False
for line in open(sys.argv[1]):
    if line.startswith('summary:') or line.startswith('totals:'):
        total = int(line.split()[1])
    # A function's name comes with its first mention, as a callee (cfn=)
    # or as the function a block belongs to (fn=).
    named = re.match(r'fn=\((\d+)\) (.*)', line)
    if named:
        ids[named.group(1)] = named.group(2).strip()
    m = re.match(r'cfn=\((\d+)\)(?: (.*))?', line)
    if m:
        if m.group(2):
            ids[m.group(1)] = m.group(2).strip()
        pending = ids.get(m.group(1), '').split(' ')[0] == 'malloc'
        continue
    if pending and line.startswith('calls='):
        allocs += int(line.split('=')[1].split()[0])
        pending = False
print(total, allocs)
PY
}

for case in $CASES; do
    name=${case%%:*} binary=${case#*:}
    port=$(free_port)
    VALGRIND_TOOL="--tool=callgrind --callgrind-out-file=$OUT/callgrind.$name.%p"
    [ -n "${ALLOC_SITES:-}" ] && VALGRIND_TOOL="--tool=dhat --dhat-out-file=$OUT/dhat.$name.%p"
    cat >"$WORK/vg-$name" <<SH
#!/bin/sh
exec valgrind $VALGRIND_TOOL "$binary" "\$@"
SH
    chmod +x "$WORK/vg-$name"
    case_env=()
    [ "$name" = traced ] && case_env=("${TRACE_ENV[@]}")
    case $name in *logged) case_env=(NENE_ACCESS__LOG="$WORK/access-$port.log") ;; esac
    # Each build its own database (the todo app's), and its own files.
    env RUST_LOG=warn NENE_ACCESS__LOG=off NENE_SESSION__SAVE_PATH="$WORK/sessions-$port" \
        NENE_TODO__DATABASE_DSN="$(todo_dsn "$name")" "${SESSION_ENV[@]}" "${case_env[@]}" \
        "$WORK/vg-$name" serve --listen "127.0.0.1:$port" "${APP_ARGS[@]}" \
        2>"$WORK/$APP-$port.log" &
    PIDS+=($!)
    eval "PID_$name=\$! PORT_$name=\$port"
done
SITES=""
for case in $CASES; do
    name=${case%%:*}
    eval "port=\$PORT_$name"
    # Under valgrind start-up takes seconds.
    for _ in $(seq 1 120); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.5; done
    site_port=$(free_port)
    site "$site_port" "nene_$name" "127.0.0.1:$port" on
    eval "SITE_$name=\$site_port"
done
MEASURED=$CASES
if [ "$URL_PATH" = /health ] && [ -z "${SESSION_ENV[*]}" ] && [ -z "${ALLOC_SITES:-}" ]; then
    echo "building axum_hello (release, with line tables)..." >&2
    CARGO_PROFILE_RELEASE_DEBUG=1 cargo build --release --quiet --manifest-path "$REPO/Cargo.toml" \
        --target-dir "$OUT" -p nene --example axum_hello --features bench-axum
    axum_port=$(free_port)
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.axum.%p" \
        "$OUT/release/examples/axum_hello" "127.0.0.1:$axum_port" 2>"$WORK/axum.log" &
    PID_axum=$!
    PIDS+=("$PID_axum")
    for _ in $(seq 1 120); do (exec 3<>"/dev/tcp/127.0.0.1/$axum_port") 2>/dev/null && break; sleep 0.5; done
    SITE_axum=$(free_port)
    axum_site "$SITE_axum" "127.0.0.1:$axum_port"
    MEASURED="$CASES axum:"
fi
# todo_user BASE_URL: registers `bench` with 20 todos in the todo app at
# BASE_URL, logged in; prints the session id.
todo_user() {
    local base=$1 jar token
    jar=$(mktemp -p "$WORK")
    field() { python3 -c "import json,sys; print(json.load(sys.stdin)['data']['csrf_token'])"; }
    token=$(curl -sf -c "$jar" -b "$jar" "$base/auth/csrf" | field)
    curl -sf -c "$jar" -b "$jar" -H "X-CSRF-Token: $token" -H 'Content-Type: application/json' \
        -d '{"username":"bench","password":"bench-password"}' "$base/auth/register" >/dev/null
    token=$(curl -sf -c "$jar" -b "$jar" -H "X-CSRF-Token: $token" -H 'Content-Type: application/json' \
        -d '{"username":"bench","password":"bench-password"}' "$base/auth/login" | field)
    for n in $(seq 1 20); do
        curl -sf -c "$jar" -b "$jar" -H "X-CSRF-Token: $token" -H 'Content-Type: application/json' \
            -d "{\"title\":\"todo number $n\"}" "$base/todo/index" >/dev/null
    done
    awk '$6 == "NENESESSID" {print $7}' "$jar"
}

NGINX_WORKERS=1 start_nginx
[ -z "${ALLOC_SITES:-}" ] && printf '%-8s %12s %14s %12s\n' build requests "instr/request" "allocs/request"
for case in $MEASURED; do
    name=${case%%:*}
    eval "site=\$SITE_$name pid=\$PID_$name"
    url="http://127.0.0.1:$site$URL_PATH"
    cookie=()
    if [ "$APP" = todo ] && [ "$name" != axum ]; then
        cookie=(-H "Cookie: NENESESSID=$(todo_user "http://127.0.0.1:$site")")
    elif [ -n "${SESSION_ENV[*]}" ]; then
        id=$(curl -s -i "http://127.0.0.1:$site/session/counter" |
            awk -F'[=;]' 'tolower($1) ~ /^set-cookie/ {print $2}')
        cookie=(-H "Cookie: NENESESSID=$id")
    fi
    curl -sf "${cookie[@]}" "$url" >/dev/null || { echo "$name: $url did not answer" >&2; exit 1; }
    if [ -n "${ALLOC_SITES:-}" ]; then
        rm -f "$OUT"/dhat."$name".*
        warm=$(wrk -t1 -c32 -d3s "${cookie[@]}" "$url" | awk '/requests in/ {print $1}')
        requests=$(wrk -t1 -c32 -d"$DURATION" "${cookie[@]}" "$url" | awk '/requests in/ {print $1}')
        # dhat writes its profile when the process exits.
        kill -TERM "$pid"
        wait "$pid" 2>/dev/null || true
        sites "$(ls "$OUT"/dhat."$name".* | head -1)" $((warm + requests))
        continue
    fi
    wrk -t1 -c32 -d3s "${cookie[@]}" "$url" >/dev/null
    rm -f "$OUT"/callgrind."$name".*
    callgrind_control -z "$pid" >/dev/null 2>&1
    requests=$(wrk -t1 -c32 -d"$DURATION" "${cookie[@]}" "$url" | awk '/requests in/ {print $1}')
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 1
    dump=$(ls "$OUT"/callgrind."$name".*.1 | head -1)
    read -r instructions allocs < <(totals "$dump")
    printf '%-8s %12d %14d %12.1f\n' "$name" "$requests" $((instructions / requests)) \
        "$(python3 -c "print($allocs / $requests)")"
done
