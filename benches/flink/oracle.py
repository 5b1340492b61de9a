#!/usr/bin/env python3
"""Brute-force oracle for the 1-minute tumbling-window job.

For every valid event, window = floor(utc_epoch_ms / 60000) * 60000, and per
(product_id, window) it computes COUNT(DISTINCT user_id) and COUNT(*).

A line is skipped (like Flink with json.ignore-parse-errors plus the job's
validity filter) unless it is a JSON object whose user_id and product_id are
strings and whose timestamp is an RFC 3339 string
YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM).

The oracle applies no lateness: it is exact for streams whose disorder is
below the 10 s watermark delay (then Flink drops nothing either).

Output: NDJSON sorted by (window_start, product_id), one line per window:
{"product_id":"42","window_start":"2024-01-01T12:00:00Z","window_end":"2024-01-01T12:01:00Z","unique_user_count":3,"event_count":5}

Usage: python oracle.py --input events.ndjson --output expected.ndjson
"""
import argparse
import calendar
import json
import re
import sys
import time

TS_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")
WINDOW_MS = 60_000


def parse_rfc3339_ms(s):
    """UTC epoch milliseconds (fraction truncated to ms), or None if invalid."""
    m = TS_RE.match(s)
    if not m:
        return None
    y, mo, d, h, mi, se, frac, off = m.groups()
    y, mo, d, h, mi, se = int(y), int(mo), int(d), int(h), int(mi), int(se)
    if not (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60 and se < 60):
        return None
    secs = calendar.timegm((y, mo, d, h, mi, se, 0, 0, 0))
    if off != "Z":
        oh, om = int(off[1:3]), int(off[4:6])
        delta = (oh * 60 + om) * 60
        secs -= delta if off[0] == "+" else -delta
    ms = int((frac or "0")[:3].ljust(3, "0"))
    return secs * 1000 + ms


def fmt_utc(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms // 1000))


def window_line(pid, wstart_ms, users, count):
    return json.dumps({
        "product_id": pid,
        "window_start": fmt_utc(wstart_ms),
        "window_end": fmt_utc(wstart_ms + WINDOW_MS),
        "unique_user_count": users,
        "event_count": count,
    }, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", "-i", required=True)
    ap.add_argument("--output", "-o", default="-")
    a = ap.parse_args()

    t0 = time.time()
    groups = {}  # (wstart_ms, pid) -> [set(users), count]
    lines = skipped = 0
    with open(a.input, "rb") as f:
        for raw in f:
            lines += 1
            try:
                ev = json.loads(raw)
            except ValueError:
                skipped += 1
                continue
            if not isinstance(ev, dict):
                skipped += 1
                continue
            uid, pid, ts = ev.get("user_id"), ev.get("product_id"), ev.get("timestamp")
            if not (isinstance(uid, str) and isinstance(pid, str) and isinstance(ts, str)):
                skipped += 1
                continue
            ms = parse_rfc3339_ms(ts)
            if ms is None:
                skipped += 1
                continue
            key = (ms - ms % WINDOW_MS, pid)
            g = groups.get(key)
            if g is None:
                groups[key] = g = [set(), 0]
            g[0].add(uid)
            g[1] += 1
    out = sys.stdout if a.output == "-" else open(a.output, "w")
    for (ws, pid) in sorted(groups):
        users, cnt = groups[(ws, pid)]
        out.write(window_line(pid, ws, len(users), cnt) + "\n")
    if out is not sys.stdout:
        out.close()
    print(json.dumps({"lines": lines, "skipped": skipped, "events": lines - skipped,
                      "windows": len(groups), "elapsed_s": round(time.time() - t0, 3)}), file=sys.stderr)


if __name__ == "__main__":
    main()
