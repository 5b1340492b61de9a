"""Checks that every metric a rule or a dashboard reads is one some component registers.

    check-metrics.py RULE_FILE.yml... DASHBOARD.json...

The known metrics are the names the Rust sources register (`registry.register("name", ...)`,
`register_with_unit`, and the names a collector (`impl Collector`) encodes), found under the
repository's crates: a family shows in a `/metrics` scrape only once it has a series, so a
scrape of an idle platform would miss the error counters (the live check, check-queries.py,
runs every expression against a real scrape). A counter registered as `name` is read as
`name_total`, a histogram as `name_bucket`, `_sum`, `_count`. Series from outside the platform
(kube-state-metrics' `kube_*`, cAdvisor's `container_*`, Prometheus' `ALERTS`) and recorded
series (`level:metric:operations`) are not checked. Exits 1 naming each unknown metric and
where it is read.
"""

import pathlib
import re
import sys

from expressions import expressions

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATES = ["src", "primitives", "ingest", "event-log", "stream-engine", "stream-runtime", "result-store", "analytics-api", "services", "product-import", "lambda-import"]
REGISTERED = re.compile(r"(?:\.register(?:_with_unit)?|encode_descriptor)\(\s*\"([a-z0-9_]+)\"")
# Our metric names, not inside a recorded name (`service:http_errors:rate5m`).
OURS = re.compile(
    r"(?<![\w:])((?:http|gateway|ingest|stream|event_log|outbox|analytics|auth|catalog|customers|orders|db|process)_[a-z0-9_]+)(?![\w:])"
)
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def registered():
    known = set()
    for crate in CRATES:
        for path in (ROOT / crate).rglob("*.rs"):
            text = path.read_text()
            known.update(REGISTERED.findall(text))
            if "impl Collector for" in text:
                known.update(m for m in re.findall(r'"([a-z0-9_]+)"', text) if OURS.fullmatch(m))
    return known


def main():
    known = registered()
    unknown = []
    found = expressions(sys.argv[1:])
    for where, expr in found:
        for name in sorted(set(OURS.findall(expr))):
            bases = [name] + [name[: -len(s)] for s in SUFFIXES if name.endswith(s)]
            if not any(b in known for b in bases):
                unknown.append(f"{where} reads {name}, which no component registers")
    for line in unknown:
        print(line, file=sys.stderr)
    if unknown:
        sys.exit(1)
    print(f"every metric of {len(found)} expressions is registered by a component ({len(known)} known)")


if __name__ == "__main__":
    main()
