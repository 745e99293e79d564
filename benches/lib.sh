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
    cargo build --release --quiet --manifest-path "$REPO/Cargo.toml"
}

# start_nene PORT [ENV=VALUE ...]: a release nene on 127.0.0.1:PORT; sets NENE_PID.
# The access log is off (nginx logs requests, as with PHP-FPM's default);
# NENE_ACCESS__LOG=stderr in the environment measures it on.
start_nene() {
    local port=$1
    shift
    env RUST_LOG=warn NENE_ACCESS__LOG="${NENE_ACCESS__LOG:-off}" \
        NENE_SESSION__SAVE_PATH="$WORK/sessions-$port" "$@" \
        "$REPO/target/release/nene" serve --listen "127.0.0.1:$port" \
        --htdocs "$REPO/htdocs" 2>"$WORK/nene-$port.log" &
    NENE_PID=$!
    PIDS+=("$NENE_PID")
}

# site LISTEN_PORT UPSTREAM_NAME UPSTREAM_ADDR KEEP_CONN: one server block from
# deploy/nginx/nene.conf.template, written to $WORK and included by nginx.
site() {
    NGINX_LISTEN=127.0.0.1:$1 NENE_UPSTREAM=$3 NENE_HTDOCS=$REPO/htdocs \
    NENE_FASTCGI_KEEP_CONN=$4 NENE_MAX_BODY=8m \
        envsubst '${NGINX_LISTEN} ${NENE_UPSTREAM} ${NENE_HTDOCS} ${NENE_FASTCGI_KEEP_CONN} ${NENE_MAX_BODY}' \
        <"$REPO/deploy/nginx/nene.conf.template" |
        sed "s/upstream nene/upstream $2/; s/fastcgi_pass nene;/fastcgi_pass $2;/" >"$WORK/site-$1.conf"
    SITES+="    include $WORK/site-$1.conf;"$'\n'
}

# start_nginx [EXTRA_HTTP_CONFIG]: one nginx serving every site() so far.
start_nginx() {
    local user=""
    [ "$(id -u)" = 0 ] && user="user root;"
    cat >"$WORK/nginx.conf" <<CONF
$user
daemon off;
worker_processes auto;
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

# run_wrk NAME URL [HEADER]: one wrk run; appends
# name|req/s|p99|errors|requests to $WORK/results and echoes progress.
run_wrk() {
    local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency)
    [ -n "${3:-}" ] && args+=(-H "$3")
    wrk "${args[@]}" "$2" >"$WORK/wrk.out"
    WRK_REQUESTS=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
    local rps p99 errors
    rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
    p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.out")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$WORK/wrk.out" | tr '\n' ' ')
    echo "$1|$rps|$p99|$errors|$WRK_REQUESTS" >>"$WORK/results"
    echo "$1: $rps req/s, p99 $p99 $errors" >&2
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
    name, rps, p99, errors, _requests = line.rstrip("\n").split("|")
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
