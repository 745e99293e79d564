#!/usr/bin/env bash
# Request bodies: what spilling them to disk costs small requests, and what
# it keeps out of memory. Everything goes through one nginx.
#   1. Small requests, before and after: GET /session/counter (one session
#      cookie, file sessions) and a 1 KiB JSON POST to /health, on nene built
#      from BASE (the commit before bodies spilled) and from this tree. The
#      two alternate (A B, then B A) over ROUNDS; the table shows medians.
#   2. Upload throughput: a 100 MiB file as the raw body of POST /upload/raw
#      (spilled, streamed to the handler) and as a multipart POST /upload
#      (UploadForm: spilled, then parsed into a file), RUNS times each; the
#      median MiB/s and nene's peak RSS.
#   3. A 1 GiB upload to POST /upload with max_body_bytes raised, on a nene
#      that has served nothing else: the SHA-1 of the file as nene stored
#      it against the original's, and nene's peak RSS (VmHWM).
#
# Usage: benches/uploads.sh [ROUNDS] [DURATION] [RUNS]   (defaults 3, 10s, 5)
#   BASE=<commit>                   "before" (default b5608c7)
#   BIN_BEFORE=bin BIN_AFTER=bin  use these release binaries, build nothing
#   BENCH_TARGET_DIR=dir            cargo's target directory for the builds
#   UPLOAD_TMP_DIR=dir              nene's upload_tmp_dir (default: on disk,
#                                   in the work directory)
#   SKIP_SMALL=1                    parts 2 and 3 only
# Needs: nginx, wrk, curl, python3, sha1sum; about 5 GiB of free disk for
# part 3 (the file, nginx's copy, nene's spilled body and the stored file).
# Writes benches/results/uploads.md. Loopback only.
set -euo pipefail
ROUNDS=${1:-3}; DURATION=${2:-10s}; RUNS=${3:-5}
source "$(dirname "$0")/lib.sh"
OUT=${RESULTS_DIR:-$REPO/benches/results}
BASE=${BASE:-b5608c7}
TARGET=${BENCH_TARGET_DIR:-$WORK/target}
require_tools nginx:nginx wrk:wrk curl:curl envsubst:gettext-base python3:python3 \
    sha1sum:coreutils

# build_at SOURCE_DIR OUT: a release nene from SOURCE_DIR, copied to OUT.
build_at() {
    echo "building nene (release) from $1..." >&2
    CARGO_TARGET_DIR=$TARGET cargo build --release --quiet -p nene --bin nene \
        --manifest-path "$1/Cargo.toml"
    cp "$TARGET/release/nene" "$2"
}
if [ -z "${BIN_BEFORE:-}" ]; then
    mkdir "$WORK/before"
    git -C "$REPO" archive "$BASE" | tar -x -C "$WORK/before"
    build_at "$WORK/before" "$WORK/nene-before"
    BIN_BEFORE=$WORK/nene-before
fi
if [ -z "${BIN_AFTER:-}" ]; then
    build_at "$REPO" "$WORK/nene-after"
    BIN_AFTER=$WORK/nene-after
fi

# start_bin BINARY PORT [ENV=VALUE ...]: nene on 127.0.0.1:PORT; sets NENE_PID.
start_bin() {
    local bin=$1 port=$2
    shift 2
    env RUST_LOG=warn NENE_ACCESS__LOG=off NENE_SESSION__SAVE_PATH="$WORK/sessions-$port" "$@" \
        "$bin" serve --listen "127.0.0.1:$port" --htdocs "$REPO/htdocs" 2>"$WORK/nene-$port.log" &
    NENE_PID=$!
    PIDS+=("$NENE_PID")
    wait_port "$port" || { cat "$WORK/nene-$port.log" >&2; exit 1; }
}

UPLOADS=${UPLOAD_TMP_DIR:-$WORK/uploads}
N_BEFORE=$(free_port); N_AFTER=$(free_port); N_UPLOAD=$(free_port); N_GIB=$(free_port)
start_bin "$BIN_BEFORE" "$N_BEFORE"
start_bin "$BIN_AFTER" "$N_AFTER"
UPLOAD_ENV=(NENE_SERVER__MAX_BODY_BYTES=1100M NENE_SERVER__UPLOAD_MAX_FILESIZE=1G
    NENE_SERVER__UPLOAD_TMP_DIR="$UPLOADS")
start_bin "$BIN_AFTER" "$N_UPLOAD" "${UPLOAD_ENV[@]}"
UPLOAD_PID=$NENE_PID
start_bin "$BIN_AFTER" "$N_GIB" "${UPLOAD_ENV[@]}"
GIB_PID=$NENE_PID
S_BEFORE=$(free_port); S_AFTER=$(free_port); S_UPLOAD=$(free_port); S_GIB=$(free_port)
site "$S_BEFORE" before "127.0.0.1:$N_BEFORE" on
site "$S_AFTER" after "127.0.0.1:$N_AFTER" on
SITE_MAX_BODY=2g site "$S_UPLOAD" uploads "127.0.0.1:$N_UPLOAD" on
SITE_MAX_BODY=2g site "$S_GIB" gib "127.0.0.1:$N_GIB" on
start_nginx

# --- 1. small requests, before and after ---
cookie_for() { # SITE_PORT: a session cookie for the counter
    curl -s -o /dev/null -c - "http://127.0.0.1:$1/session/counter" |
        awk '$6 == "NENESESSID" {print "NENESESSID=" $7}'
}
COOKIE_BEFORE=$(cookie_for "$S_BEFORE"); COOKIE_AFTER=$(cookie_for "$S_AFTER")
python3 -c 'import json; print(json.dumps({"name": "a" * 990, "n": 1}), end="")' >"$WORK/body.json"
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/body.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA
small_requests() { # before|after
    local port=$S_BEFORE cookie=$COOKIE_BEFORE
    [ "$1" = after ] && port=$S_AFTER cookie=$COOKIE_AFTER
    WRK_SCRIPT="" run_wrk "counter, $1" "http://127.0.0.1:$port/session/counter" "Cookie: $cookie"
    WRK_SCRIPT=$WORK/post.lua run_wrk "1 KiB JSON POST, $1" "http://127.0.0.1:$port/health"
}
SMALL="(skipped)"
if [ -z "${SKIP_SMALL:-}" ]; then
    for round in $(seq "$ROUNDS"); do
        if [ $((round % 2)) = 1 ]; then order="before after"; else order="after before"; fi
        for side in $order; do small_requests "$side"; done
    done
    SMALL=$(median_table)
fi

# --- 2. 100 MiB uploads ---
head -c $((100 * 1024 * 1024)) /dev/urandom >"$WORK/100m"
SHA_100M=$(sha1sum "$WORK/100m" | cut -d' ' -f1)
: >"$WORK/uploads.tsv"
upload() { # NAME CURL_ARGS...: one upload, checked, its MiB/s appended
    local name=$1 seconds
    shift
    seconds=$(curl -s -o "$WORK/answer.json" -w '%{time_total}' "$@")
    grep -q "$SHA_100M" "$WORK/answer.json" ||
        { echo "$name: the upload arrived changed: $(cat "$WORK/answer.json")" >&2; exit 1; }
    echo "$name	$(python3 -c "print(f'{100 / $seconds:.1f}')")" >>"$WORK/uploads.tsv"
}
echo 5 >"/proc/$UPLOAD_PID/clear_refs"
for _ in $(seq "$RUNS"); do
    upload "raw body, POST /upload/raw" -H 'Content-Type: application/octet-stream' \
        --data-binary "@$WORK/100m" "http://127.0.0.1:$S_UPLOAD/upload/raw"
    upload "multipart, POST /upload" -F "file=@$WORK/100m" "http://127.0.0.1:$S_UPLOAD/upload"
done
PEAK_100M=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$UPLOAD_PID/status")
THROUGHPUT=$(python3 - "$WORK/uploads.tsv" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rate = line.rstrip("\n").split("\t")
    rows.setdefault(name, []).append(float(rate))
print("| upload of 100 MiB through nginx | MiB/s (median) | runs |")
print("|---|---|---|")
for name, rates in rows.items():
    print(f"| {name} | {statistics.median(rates):.1f} | {', '.join(f'{r:.0f}' for r in rates)} |")
PY
)

# --- 3. 1 GiB upload ---
head -c $((1024 * 1024 * 1024)) /dev/urandom >"$WORK/1g"
SHA_1G=$(sha1sum "$WORK/1g" | cut -d' ' -f1)
rm -f "$WORK/100m"
BEFORE_1G=$(rss_mib "$GIB_PID")
SECONDS_1G=$(curl -s -o "$WORK/answer.json" -w '%{time_total}' -F "file=@$WORK/1g" \
    "http://127.0.0.1:$S_GIB/upload")
STORED_1G=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["files"][0]["sha1"])' \
    "$WORK/answer.json")
PEAK_1G=$(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$GIB_PID/status")
INTACT=no; [ "$STORED_1G" = "$SHA_1G" ] && INTACT=yes

mkdir -p "$OUT"
{
    echo "# Request bodies: small requests before and after, uploads"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores; $ROUNDS rounds of $DURATION, wrk -t$THREADS -c$CONNECTIONS;"
    echo "before = $BASE, after = $(git -C "$REPO" rev-parse --short HEAD) (working tree)."
    echo
    echo "$SMALL"
    echo
    echo "$THROUGHPUT"
    echo
    echo "nene's peak RSS over the 100 MiB uploads: $PEAK_100M MiB."
    echo
    echo "1 GiB (multipart, POST /upload, max_body_bytes = 1100M, a fresh nene): ${SECONDS_1G} s;"
    echo "stored intact (SHA-1 compared): $INTACT; nene's RSS before $BEFORE_1G MiB, peak $PEAK_1G MiB."
} | tee "$OUT/uploads.md"
[ "$INTACT" = yes ]
