"""Evaluates every expression of the rules and dashboards on a real Prometheus.

    check-queries.py PROMETHEUS_URL RULE_FILE.yml... DASHBOARD.json...

Against a Prometheus that scrapes a running platform (check-live.sh starts both): waits until
windows have fired and requests have been served, then sends every expression (Grafana's
variables replaced as a request would carry them) to `/api/v1/query`. Fails if any query
fails, if a core panel returns no data, or if Prometheus reports a rule unhealthy (a rule that
failed to evaluate). Exits 1 naming each problem.
"""

import json
import pathlib
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from expressions import expressions

# The panels that must show data on a platform under traffic: ingest rate, windows fired,
# watermark lag, request rate and latency.
CORE = {
    ("ecom-overview", "Events accepted /s"),
    ("ecom-overview", "Windows fired /s"),
    ("ecom-overview", "Watermark lag (max)"),
    ("ecom-overview", "Requests /s by service"),
    ("ecom-overview", "p99 latency by service"),
    ("ecom-stream-engine", "Events /s"),
    ("ecom-stream-engine", "Windows fired /s"),
    ("ecom-stream-engine", "Watermark lag per partition"),
    ("ecom-stream-engine", "Consumer lag per partition"),
    ("ecom-ingest-gateway", "Requests /s by route"),
    ("ecom-ingest-gateway", "Events /s accepted and rejected"),
    ("ecom-ingest-gateway", "Ingest p99 latency"),
    ("ecom-services", "Pool connections busy of max"),
}
# Before the check: data that only traffic creates.
READY = [
    "sum(stream_windows_fired_total) > 0",
    'sum(rate(http_requests_total{service="gateway"}[1m])) > 0',
    "sum(rate(ingest_events_accepted_total[1m])) > 0",
]


def get(url, path, **params):
    query = urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(f"{url}{path}?{query}", timeout=30) as answer:
            return json.load(answer)
    except urllib.error.HTTPError as e:
        # Prometheus answers a bad query with 400 and a JSON body naming the error.
        return json.load(e)


def query(url, expr):
    answer = get(url, "/api/v1/query", query=expr)
    if answer.get("status") != "success":
        return None, f"{answer.get('errorType')}: {answer.get('error')}"
    return answer["data"]["result"], None


def wait(url, deadline):
    pending = list(READY)
    while pending and time.monotonic() < deadline:
        pending = [expr for expr in pending if not (query(url, expr)[0] or [])]
        if pending:
            time.sleep(1)
    return pending


def rule_problems(url, deadline):
    while True:
        groups = get(url, "/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        unknown = [r for r in rules if r.get("health") == "unknown"]
        if not unknown or time.monotonic() > deadline:
            break
        time.sleep(1)
    problems = [f"rule {r['name']}: health {r.get('health')} {r.get('lastError', '')}"
                for r in rules if r.get("health") != "ok"]
    return problems, len(rules)


def main():
    url, paths = sys.argv[1].rstrip("/"), sys.argv[2:]
    # The first window of live events fires once the watermark passes the next minute's end:
    # up to 70 s after the first event.
    deadline = time.monotonic() + 180
    pending = wait(url, deadline)
    if pending:
        print(f"no traffic seen within 180 s: {pending}", file=sys.stderr)
        sys.exit(1)
    problems, rules = rule_problems(url, deadline)
    found = expressions(paths)
    with_data = 0
    core_data = {}
    for where, expr in found:
        result, error = query(url, expr)
        if error:
            problems.append(f"{where}: {error}\n    {expr}")
            continue
        with_data += bool(result)
        if ": panel " in where:
            stem = pathlib.Path(where.split(":")[0]).stem
            title = where.split(": panel ", 1)[1].rsplit(" ", 1)[0].strip("'\"")
            if (stem, title) in CORE:
                core_data[(stem, title)] = core_data.get((stem, title), False) or bool(result)
    for (stem, title), data in sorted(core_data.items()):
        if not data:
            problems.append(f"core panel {title!r} of {stem} returned no data")
    core_seen = set(core_data)
    for stem, title in sorted(CORE - core_seen):
        problems.append(f"core panel {title!r} of {stem} not found")
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"{len(found)} expressions evaluated without error ({with_data} with data, "
          f"{len(CORE)} core panels among them); {rules} rules evaluated healthy")


if __name__ == "__main__":
    main()
