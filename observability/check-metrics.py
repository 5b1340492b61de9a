"""Checks that every metric a rule reads is one some component registers.

    check-metrics.py RULE_FILE...

The known metrics are the names the Rust sources register (`registry.register("name", ...)`,
and `register_with_unit`), found under the repository's crates: a family shows in a
`/metrics` scrape only once it has a series, so a scrape of an idle platform would miss the
error counters. A counter registered as `name` is read as `name_total`, a histogram as
`name_bucket`, `_sum`, `_count`. Series from outside the platform (kube-state-metrics' `kube_*`)
and recorded series (`level:metric:operations`) are not checked. Exits 1 naming each unknown
metric and the rule that reads it.
"""

import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATES = ["src", "ingest", "event-log", "stream-engine", "result-store", "analytics-api", "services", "lambda-import"]
REGISTERED = re.compile(r"\.register(?:_with_unit)?\(\s*\"([a-z0-9_]+)\"")
# Our metric names, not inside a recorded name (`job:http_errors:rate5m`).
OURS = re.compile(
    r"(?<![\w:])((?:http|gateway|ingest|stream|event_log|outbox|analytics|auth|catalog|customers|orders)_[a-z0-9_]+)(?![\w:])"
)
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def registered():
    known = set()
    for crate in CRATES:
        for path in (ROOT / crate).rglob("*.rs"):
            known.update(REGISTERED.findall(path.read_text()))
    return known


def main():
    known = registered()
    unknown = []
    for path in sys.argv[1:]:
        for group in yaml.safe_load(open(path))["groups"]:
            for rule in group["rules"]:
                what = rule.get("alert") or rule.get("record")
                for name in sorted(set(OURS.findall(rule["expr"]))):
                    bases = [name] + [name[: -len(s)] for s in SUFFIXES if name.endswith(s)]
                    if not any(b in known for b in bases):
                        unknown.append(f"{path}: {what} reads {name}, which no component registers")
    for line in unknown:
        print(line, file=sys.stderr)
    if unknown:
        sys.exit(1)
    print(f"every metric the rules read is registered by a component ({len(known)} known)")


if __name__ == "__main__":
    main()
