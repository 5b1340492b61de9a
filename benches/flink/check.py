#!/usr/bin/env python3
"""Order-insensitive comparison of two window-result NDJSON files.

Each line is reduced to the tuple (product_id, window_start, window_end,
unique_user_count, event_count); timestamps are normalised to UTC 'Z' form so
'2024-01-01T12:00:00Z' == '2024-01-01T12:00:00.000Z' == '2024-01-01T14:00:00+02:00'.

Usage: python check.py expected.ndjson actual.ndjson   (exit 0 iff identical multisets)
"""
import collections
import json
import sys

from oracle import fmt_utc, parse_rfc3339_ms


def load(path):
    c = collections.Counter()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            r = json.loads(line)
            ws, we = parse_rfc3339_ms(r["window_start"]), parse_rfc3339_ms(r["window_end"])
            if ws is None or we is None:
                raise SystemExit(f"{path}:{n}: bad window timestamp: {line.strip()}")
            c[(str(r["product_id"]), fmt_utc(ws), fmt_utc(we),
               int(r["unique_user_count"]), int(r["event_count"]))] += 1
    return c


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    exp, act = load(sys.argv[1]), load(sys.argv[2])
    missing, extra = exp - act, act - exp
    summary = {
        "expected_rows": sum(exp.values()), "actual_rows": sum(act.values()),
        "expected_events": sum(k[4] * v for k, v in exp.items()),
        "actual_events": sum(k[4] * v for k, v in act.items()),
        "missing": sum(missing.values()), "extra": sum(extra.values()),
        "match": not missing and not extra,
    }
    print(json.dumps(summary))
    for label, d in (("missing", missing), ("extra", extra)):
        for k in sorted(d)[:10]:
            print(f"  {label}: {k}", file=sys.stderr)
    sys.exit(0 if summary["match"] else 1)


if __name__ == "__main__":
    main()
