#!/usr/bin/env bash
# nene's request-duration histogram against wrk's own latency: the p99 that
# Prometheus' `histogram_quantile` computes from `/status?openmetrics`'s
# buckets, next to the p99 wrk measured for the same requests.
#   - a release nene behind the shipped nginx template, GET PATH under
#     `wrk -t1 -c32` for DURATION (the status page is scraped just before
#     and just after, and only the difference counts);
#   - histogram_quantile as Prometheus computes it: the bucket that holds
#     the rank, linear within it.
# nene's clock starts when its operations layer gets the request and stops
# at the answer; wrk's also holds nginx, both sockets and any queueing in
# front of nene, so wrk's p99 is the higher one, by what those cost.
# Usage: benches/histogram_p99.sh [DURATION] [PATH]   (defaults: 10s, /health)
# Needs (Debian): apt-get install -y nginx wrk gettext-base curl python3 python3-prometheus-client
# Loopback only.
set -euo pipefail
DURATION=${1:-10s}
URL_PATH=${2:-/health}
THREADS=1
source "$(dirname "$0")/lib.sh"
require_tools nginx:nginx wrk:wrk envsubst:gettext-base curl:curl python3:python3
/usr/bin/python3 -c 'import prometheus_client' 2>/dev/null || {
    echo "missing prometheus_client: apt-get install -y python3-prometheus-client" >&2
    exit 1
}

build_nene
NENE=$(free_port)
start_nene "$NENE"
wait_port "$NENE"
SITE=$(free_port)
site "$SITE" nene "127.0.0.1:$NENE" on
NGINX_WORKERS=1 start_nginx
for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$SITE$URL_PATH"; done

curl -s "http://127.0.0.1:$SITE/status?openmetrics" >"$WORK/before.txt"
run_wrk nene "http://127.0.0.1:$SITE$URL_PATH"
curl -s "http://127.0.0.1:$SITE/status?openmetrics" >"$WORK/after.txt"

/usr/bin/python3 - "$WORK/before.txt" "$WORK/after.txt" "$WRK_P99_MS" "$WRK_REQUESTS" <<'PY'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families

def buckets(path):
    """(route, status) -> {le: cumulative count} of the request histogram."""
    series = {}
    for family in text_string_to_metric_families(open(path).read()):
        if family.name != "nene_request_duration_seconds":
            continue
        for s in family.samples:
            if s.name.endswith("_bucket"):
                key = (s.labels["route"], s.labels["status"])
                series.setdefault(key, {})[float(s.labels["le"])] = s.value
    return series

before, after = buckets(sys.argv[1]), buckets(sys.argv[2])
wrk_p99_ms, wrk_requests = float(sys.argv[3]), int(sys.argv[4])
# The series the load went to: the one that grew most.
def grown(key):
    return after[key][float("inf")] - before.get(key, {}).get(float("inf"), 0)
key = max(after, key=grown)
delta = sorted((le, n - before.get(key, {}).get(le, 0)) for le, n in after[key].items())
count = delta[-1][1]

def histogram_quantile(q):
    rank = q * count
    lower, below = 0.0, 0.0
    for le, cumulative in delta:
        if cumulative >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / (cumulative - below)
        lower, below = le, cumulative
    return lower

def bucket_of(seconds):
    return next(i for i, (le, _) in enumerate(delta) if seconds <= le)

p99 = histogram_quantile(0.99)
wrk_p99 = wrk_p99_ms / 1000
apart = bucket_of(wrk_p99) - bucket_of(p99)
print(f"series: route={key[0]!r} status={key[1]}: {count:.0f} requests (wrk: {wrk_requests})")
print(f"| p99 | ms | bucket (le, ms) |")
print(f"|---|---|---|")
print(f"| histogram_quantile(0.99) | {p99 * 1000:.3f} | {delta[bucket_of(p99)][0] * 1000:g} |")
print(f"| wrk | {wrk_p99_ms:.3f} | {delta[bucket_of(wrk_p99)][0] * 1000:g} |")
print(f"buckets apart: {apart} ({'within one bucket' if abs(apart) <= 1 else 'more than one bucket'})")
PY
