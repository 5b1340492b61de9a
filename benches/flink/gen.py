#!/usr/bin/env python3
"""Deterministic generator of realistic activity events (NDJSON).

Each line: {"user_id":"u123","product_id":"42","event_type":"VIEW_PRODUCT",
            "timestamp":"2024-01-01T12:00:00Z","metadata":{...}}

* product popularity is Zipf-skewed (exponent --zipf-s, default 1.1)
* event time advances at --rate events per second of event time
  (default 100000/60 ~= 1667/s, i.e. ~100k events per minute)
* bounded disorder: each timestamp is the "true" advancing time jittered
  back by a uniform amount in [0, --max-disorder-ms] (default 8000 ms), so
  the stream is never out of order by more than 8 s (< the 10 s watermark)
* timestamps in mixed RFC 3339 forms: mostly 'Z', some +02:00 / +05:30 /
  -04:00 offsets, some with milliseconds, a few with microseconds
* optional malformed lines (--malformed-rate) that consumers must skip

Usage: python gen.py --events 2000000 --output events.ndjson --seed 42
"""
import argparse
import bisect
import datetime as dt
import itertools
import random
import sys

EVENT_TYPES = [
    ("VIEW_PRODUCT", 70), ("ADD_TO_CART", 12), ("REMOVE_FROM_CART", 3),
    ("ADD_TO_WISHLIST", 4), ("SEARCH", 6), ("BEGIN_CHECKOUT", 2), ("PURCHASE", 3),
]
# (offset minutes, weight)
OFFSETS = [(0, 80), (120, 10), (330, 5), (-240, 5)]
DEVICES = ["web", "ios", "android"]
REFERRERS = ["direct", "search", "email", "social", "ads"]
MALFORMED = [
    '{"user_id":"u1","product_id":"1","event_type":"VIEW_PRODUCT","timestamp":"2024-01-01T12:0',  # truncated
    'not json at all',
    '{"user_id":"u1","product_id":"1","event_type":"VIEW_PRODUCT","timestamp":"yesterday"}',     # bad ts
    '{"user_id":"u1","product_id":"1","event_type":"VIEW_PRODUCT"}',                             # no ts
    '{"product_id":"1","event_type":"VIEW_PRODUCT","timestamp":"2024-01-01T12:00:00Z"}',         # no user
    '[1,2,3]',
    '',                                                                                           # empty line
]


def fmt_ts(epoch_us: int, offset_min: int, frac: int) -> str:
    """RFC 3339 with the given offset; frac = 0 (none), 3 (ms) or 6 (us) digits."""
    t = EPOCH + dt.timedelta(microseconds=epoch_us + offset_min * 60_000_000)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if frac == 3:
        s += ".%03d" % (t.microsecond // 1000)
    elif frac == 6:
        s += ".%06d" % t.microsecond
    if offset_min == 0:
        return s + "Z"
    sign = "+" if offset_min > 0 else "-"
    h, m = divmod(abs(offset_min), 60)
    return "%s%s%02d:%02d" % (s, sign, h, m)


EPOCH = dt.datetime(1970, 1, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", "-n", type=int, default=200_000)
    ap.add_argument("--products", "-p", type=int, default=1000)
    ap.add_argument("--users", "-u", type=int, default=100_000)
    ap.add_argument("--rate", "-e", type=float, default=100_000 / 60, help="events per second of event time")
    ap.add_argument("--zipf-s", type=float, default=1.1)
    ap.add_argument("--max-disorder-ms", type=int, default=8000)
    ap.add_argument("--start", default="2024-01-01T12:00:00Z", help="event time of the first event (UTC, Z)")
    ap.add_argument("--malformed-rate", type=float, default=0.0001, help="fraction of malformed lines")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--output", "-o", default="-")
    a = ap.parse_args()

    rng = random.Random(a.seed)
    start = dt.datetime.strptime(a.start, "%Y-%m-%dT%H:%M:%SZ")
    start_us = int((start - EPOCH).total_seconds()) * 1_000_000

    # Zipf over ranks 1..P, ranks mapped to shuffled product ids
    weights = [1.0 / (r ** a.zipf_s) for r in range(1, a.products + 1)]
    cum_p = list(itertools.accumulate(weights))
    pids = [str(i) for i in range(1, a.products + 1)]
    rng.shuffle(pids)
    et_names = [e for e, _ in EVENT_TYPES]
    cum_et = list(itertools.accumulate(w for _, w in EVENT_TYPES))
    off_vals = [o for o, _ in OFFSETS]
    cum_off = list(itertools.accumulate(w for _, w in OFFSETS))
    total_p, total_et, total_off = cum_p[-1], cum_et[-1], cum_off[-1]

    out = sys.stdout if a.output == "-" else open(a.output, "w", buffering=1 << 20)
    us_per_event = 1_000_000 / a.rate
    max_jit = a.max_disorder_ms * 1000
    rnd, bis, randrange = rng.random, bisect.bisect_right, rng.randrange
    buf = []
    for i in range(a.events):
        if a.malformed_rate and rnd() < a.malformed_rate:
            buf.append(MALFORMED[randrange(len(MALFORMED))])
        else:
            base = start_us + int(i * us_per_event)
            t_us = base - randrange(max_jit + 1) if max_jit else base
            r = rnd()
            frac = 0 if r < 0.65 else (3 if r < 0.97 else 6)
            if frac == 0:
                t_us -= t_us % 1_000_000
            elif frac == 3:
                t_us -= t_us % 1000
            off = off_vals[bis(cum_off, rnd() * total_off)]
            pid = pids[bis(cum_p, rnd() * total_p)]
            uid = randrange(a.users)
            et = et_names[bis(cum_et, rnd() * total_et)]
            sess = "%08x" % rng.getrandbits(32)
            buf.append(
                '{"user_id":"u%d","product_id":"%s","event_type":"%s","timestamp":"%s",'
                '"metadata":{"session_id":"%s","device":"%s","referrer":"%s"}}'
                % (uid, pid, et, fmt_ts(t_us, off, frac), sess,
                   DEVICES[randrange(3)], REFERRERS[randrange(5)])
            )
        if len(buf) >= 10000:
            out.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        out.write("\n".join(buf) + "\n")
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
