"""Tables and chart data for benches/compare.sh, from its runs.tsv (one line per
wrk run). Writes into OUT_DIR: compare.md (markdown tables of medians),
compare.tsv (the same medians), compare-runs.tsv (every run), and
compare-chart.tsv + compare-chart.title for benches/compare.gp.

Usage: compare_report.py RUNS_TSV OUT_DIR SETTINGS MACHINE DATE CHILDREN PHP_KEEP_CONN
"""

import csv
import re
import shutil
import statistics
import sys
from pathlib import Path

runs_path, out, settings, machine, date, children, php_keep = sys.argv[1:8]
out = Path(out)
runs = list(csv.DictReader(open(runs_path), delimiter="\t"))
shutil.copy(runs_path, out / "compare-runs.tsv")


def num(value):
    return float(value) if value not in ("", None) else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def grouped(phase):
    """(case, system) -> its runs, in the order the cases first ran."""
    groups = {}
    for run in runs:
        if run["phase"] == phase:
            groups.setdefault((run["case"], run["system"]), []).append(run)
    return groups


def lost(run):
    """200s the counter never saw; wrk does not count the requests it left in
    flight at its deadline, so a correct store can show a few more increments
    than 200s (never fewer)."""
    if run["counter increase"] == "":
        return None
    answered = int(run["requests"]) - int(run["non-2xx"])
    return max(0, answered - int(run["counter increase"])), answered


def summary(samples):
    losses = [lost(s) for s in samples]
    losses = [x for x in losses if x is not None]
    non2xx = sum(int(s["non-2xx"]) for s in samples)
    socket = sum(int(s["socket errors"]) for s in samples)
    errors = []
    if non2xx:
        errors.append(f"{non2xx:,} non-2xx")
    if socket:
        errors.append(f"{socket:,} socket errors")
    return {
        "rps": median(num(s["req/s"]) for s in samples),
        "p50": median(num(s["p50 ms"]) for s in samples),
        "p99": median(num(s["p99 ms"]) for s in samples),
        "rss": median(num(s["RSS MiB"]) for s in samples),
        "commands": median(num(s["Redis commands/request"]) for s in samples),
        "lost": median(l for l, _ in losses) if losses else None,
        "lost_share": median(l / max(a, 1) for l, a in losses) if losses else None,
        "errors": ", ".join(errors) or "none",
        "errors_total": non2xx + socket,
    }


def fmt(value, pattern, empty="–"):
    return empty if value is None else format(value, pattern)


def lost_text(s):
    if s["lost"] is None:
        return "–"
    return f"{s['lost']:,.0f} ({100 * s['lost_share']:.0f}%)"


main = {key: summary(samples) for key, samples in grouped("main").items()}
ceiling = next((s["rps"] for (case, _), s in main.items() if "ceiling" in case), None)

md = [
    "# nene vs PHP-FPM, side by side",
    "",
    f"{date}, {machine} (wrk, nginx, the application and Redis share these cores).",
    f"{settings}; all through one nginx. PHP-FPM: pm = static, "
    f"pm.max_children = {children} (the best of 2, 4, 8, 16, below), opcache on, "
    f"fastcgi_keep_conn {php_keep} for its session cases; nene: keep_conn on.",
    "",
    "| case | system | req/s | % of ceiling | p50 (ms) | p99 (ms) | RSS (MiB) | lost increments | Redis cmds/req | errors (all rounds) |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
]
with open(out / "compare.tsv", "w") as tsv:
    tsv.write("case\tsystem\treq/s\tp50 ms\tp99 ms\tRSS MiB\tlost increments\tlost share\tRedis commands/request\terrors\n")
    for (case, system), s in main.items():
        share = fmt(100 * s["rps"] / ceiling, ".0f") + "%" if ceiling else "–"
        md.append(
            f"| {case} | {system} | {fmt(s['rps'], ',.0f')} | {share} | {fmt(s['p50'], '.2f')} "
            f"| {fmt(s['p99'], '.2f')} | {fmt(s['rss'], '.1f')} | {lost_text(s)} "
            f"| {fmt(s['commands'] or None, '.2f')} | {s['errors']} |"
        )
        tsv.write("\t".join(str(x if x is not None else "") for x in (
            case, system, s["rps"], s["p50"], s["p99"], s["rss"], s["lost"], s["lost_share"],
            s["commands"], s["errors"])) + "\n")

md += [
    "",
    "Lost increments: answered 200s minus the counter's increase on the one hot",
    "session (median over rounds, and its share of the 200s). RSS: nene's process",
    "(both for ×2); PHP-FPM's master and workers summed (VmRSS, so pages they",
    "share, opcache's included, count once per process). Redis cmds/req counts",
    "every command Redis ran during the run, lock scripts' own included.",
    "Neither side fsyncs file sessions (nene's session.save_path_fsync is off, as PHP never syncs).",
    "PHP-FPM with keep_conn on: a worker serves one kept nginx connection until",
    "nginx drops it, so requests on connections beyond pm.max_children wait for",
    "a worker to come free (its p99).",
    "",
    "## PHP-FPM pool size (measured once, before the rounds)",
    "",
    "| pm.max_children | case | req/s | p99 (ms) | RSS (MiB) | errors |",
    "|---:|---|---:|---:|---:|---|",
]
for (case, size), s in grouped("tune").items():
    s = summary(s)
    md.append(f"| {size} | {case} | {fmt(s['rps'], ',.0f')} | {fmt(s['p99'], '.2f')} "
              f"| {fmt(s['rss'], '.1f')} | {s['errors']} |")
md += ["", f"Kept: pm.max_children = {children} (best req/s over both cases, each relative to its best).",
       "The sizes are measured with keep_conn off; with keep_conn on a pool smaller than",
       "nginx's connection count leaves requests waiting for a pinned worker.", ""]

md += [
    "## nene, /session/counter on Redis (locking on), by wrk connections",
    "",
    "One run each (wrk -t1 for 1 connection, -t2 otherwise).",
    "",
    "| connections | case | req/s | p50 (ms) | p99 (ms) | lost increments | errors |",
    "|---:|---|---:|---:|---:|---:|---|",
]
for (case, connections), s in grouped("sweep").items():
    s = summary(s)
    md.append(f"| {connections.removeprefix('c=')} | {case} | {fmt(s['rps'], ',.0f')} "
              f"| {fmt(s['p50'], '.2f')} | {fmt(s['p99'], '.2f')} | {lost_text(s)} | {s['errors']} |")


def log_summary(path, pattern_sub):
    """The most frequent lines of a log, with timestamps and ids taken out."""
    counts = {}
    for line in open(path, errors="replace"):
        line = pattern_sub(line.strip())
        if line:
            counts[line] = counts.get(line, 0) + 1
    return sorted(counts.items(), key=lambda item: -item[1])[:5]


work = Path(runs_path).parent
logs = [(work / "php-errors.log", lambda l: re.sub(
            r"^\[[^]]*\] |\s*\(path: [^)]*\)| in /\S+ on line \d+$", "", l))]
logs += [(work / "error.log", lambda l: re.sub(r"^\S+ \S+ |\*\d+ |, client: .*$", "", l))]
logs += [(p, lambda l: re.sub(r"^\S*\d{4}-\d\d-\d\dT\S*\s*|[0-9a-z]{26,}", "", l))
         for p in sorted(work.glob("nene-*.log"))]
if list(work.glob("nene-*.log")):  # the run's work directory, not a re-run of the report
    md += ["", "## Warnings and errors in the logs", ""]
quiet = bool(list(work.glob("nene-*.log")))
for path, clean in logs:
    if path.exists() and path.stat().st_size:
        quiet = False
        md.append(f"{path.name}:")
        md.append("")
        md += [f"    {count:>7} × {line[:160]}" for line, count in log_summary(path, clean)]
        md.append("")
if quiet:
    md.append("None: nginx's error log, the PHP error log and nene's logs are empty.")
(out / "compare.md").write_text("\n".join(md) + "\n")

# The chart: one cluster per case, nene / PHP-FPM / reference side by side.
columns = ("nene", "PHP-FPM", "reference")


def column(system):
    if system.startswith("nene"):
        return "nene"
    if system.startswith("PHP"):
        return "PHP-FPM"
    return "reference"


cases = {}
for (case, system), s in main.items():
    cases.setdefault(case, {})[column(system)] = s
with open(out / "compare-chart.tsv", "w") as chart:
    chart.write("# case\t" + "\t".join(f"{c} req/s" for c in columns) + "\t"
                + "\t".join(f"{c} p99 ms" for c in columns) + "\n")
    for case, by_column in cases.items():
        rps = [fmt(by_column[c]["rps"], ".0f", "-") if c in by_column else "-" for c in columns]
        p99 = [fmt(by_column[c]["p99"], ".3f", "-") if c in by_column else "-" for c in columns]
        chart.write(case.replace("counter, ", "") + "\t" + "\t".join(rps + p99) + "\n")
title = (f"nene vs PHP-FPM (pm static, {children} children) through one nginx; {machine}; {date}\\n"
         f"{settings}\\n"
         "Redis, locking: nene lock on vs phpredis's locking handler; no lock: nene lock=off vs "
         "NeNe's PHP handler; reference: nginx return 200 / C libfcgi")
(out / "compare-chart.title").write_text(title.replace('"', ""))
