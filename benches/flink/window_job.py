#!/usr/bin/env python3
"""Apache Flink (PyFlink Table API, local mini-cluster) peer benchmark:
1-minute tumbling event-time windows over NDJSON activity events.

    python window_job.py --input events.ndjson --output flink.ndjson [--parallelism 1]

Job (Flink SQL, streaming mode, table.local-time-zone = UTC):
  * filesystem source, format json, json.ignore-parse-errors = true
  * ts = event time parsed from the RFC 3339 `timestamp` string and normalised
    to UTC (TIMESTAMP_LTZ(3)), WATERMARK FOR ts AS ts - INTERVAL '10' SECOND
  * SELECT product_id, window_start, window_end, COUNT(DISTINCT user_id),
    COUNT(*) FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1'
    MINUTE)) GROUP BY product_id, window_start, window_end
Rows whose timestamp does not parse, or without user_id/product_id, are
skipped (same rule as oracle.py).

Results are collected to the client, sorted by (window_start, product_id) and
written as NDJSON with RFC 3339 UTC 'Z' window bounds. A one-line JSON summary
goes to stdout (to stderr when --output is '-').
"""
import argparse
import json
import os
import sys
import time

T_PROCESS = time.time()

# Fraction of seconds may have 1..9 digits: DateTimeFormatter has no
# variable-width fraction in pattern form, so list the widths as optional
# sections (longest first). XXX accepts 'Z' and +HH:MM / -HH:MM.
_FRACS = "".join("[.%s]" % ("S" * n) for n in range(9, 0, -1))
TS_PATTERN = "yyyy-MM-dd''T''HH:mm:ss" + _FRACS + "XXX"


def ts_expr(col="`timestamp`"):
    """SQL expression: RFC 3339 string -> TIMESTAMP_LTZ(3) at the right UTC instant.

    Pitfall: TO_TIMESTAMP_LTZ(str, fmt) *validates* the offset (XXX) but then
    ignores it (it parses a LocalDateTime and interprets it in UTC), so the
    offset is applied by hand. Invalid strings give NULL -> sentinel epoch 0,
    which the view below filters out (a NULL rowtime is not allowed).
    """
    n = f"CHAR_LENGTH({col})"
    wall = f"TO_TIMESTAMP_LTZ({col}, '{TS_PATTERN}')"
    off_min = (
        f"(CASE WHEN SUBSTR({col}, {n} - 5, 1) = '-' THEN 1 ELSE -1 END)"
        f" * (TRY_CAST(SUBSTR({col}, {n} - 4, 2) AS INT) * 60 + TRY_CAST(SUBSTR({col}, {n} - 1, 2) AS INT))"
    )
    off_min = f"(CASE WHEN SUBSTR({col}, {n}, 1) = 'Z' THEN 0 ELSE {off_min} END)"
    return f"COALESCE(TIMESTAMPADD(MINUTE, {off_min}, {wall}), TO_TIMESTAMP_LTZ(0, 3))"


def count_lines(path):
    n, last = 0, b"\n"
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 24)
            if not b:
                break
            n += b.count(b"\n")
            last = b[-1:]
    return n + (last != b"\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", "-i", required=True)
    ap.add_argument("--output", "-o", required=True, help="NDJSON result file, '-' for stdout")
    ap.add_argument("--parallelism", "-p", type=int, default=1)
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Flink configuration, repeatable (e.g. pipeline.object-reuse=true)")
    ap.add_argument("--explain", action="store_true", help="print the optimized plan to stderr")
    a = ap.parse_args()
    in_path = os.path.abspath(a.input)

    t_events = time.time()
    events_read = count_lines(in_path)  # not part of the timed job
    t_events = time.time() - t_events

    t_jvm = time.time()
    from pyflink.table import EnvironmentSettings, TableEnvironment
    tenv = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = tenv.get_config()
    conf.set("table.local-time-zone", "UTC")
    conf.set("parallelism.default", str(a.parallelism))
    conf.set("pipeline.name", "flink-window-bench")
    for kv in a.conf:
        k, v = kv.split("=", 1)
        conf.set(k.strip(), v.strip())
    t_jvm = time.time() - t_jvm

    tenv.execute_sql(f"""
        CREATE TEMPORARY TABLE raw_events (
            user_id STRING,
            product_id STRING,
            event_type STRING,
            `timestamp` STRING,
            ts AS {ts_expr()},
            WATERMARK FOR ts AS ts - INTERVAL '10' SECOND
        ) WITH (
            'connector' = 'filesystem',
            'path' = 'file://{in_path}',
            'format' = 'json',
            'json.ignore-parse-errors' = 'true',
            'json.fail-on-missing-field' = 'false'
        )""")
    tenv.execute_sql("""
        CREATE TEMPORARY VIEW events AS
        SELECT user_id, product_id, ts FROM raw_events
        WHERE ts > TO_TIMESTAMP_LTZ(0, 3) AND user_id IS NOT NULL AND product_id IS NOT NULL""")
    query = """
        SELECT product_id,
               DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss''Z''') AS window_start,
               DATE_FORMAT(window_end, 'yyyy-MM-dd''T''HH:mm:ss''Z''') AS window_end,
               unique_user_count, event_count
        FROM (
            SELECT product_id, window_start, window_end,
                   COUNT(DISTINCT user_id) AS unique_user_count,
                   COUNT(*) AS event_count
            FROM TABLE(TUMBLE(TABLE events, DESCRIPTOR(ts), INTERVAL '1' MINUTE))
            GROUP BY product_id, window_start, window_end
        )"""
    if a.explain:
        print(tenv.explain_sql(query), file=sys.stderr)

    t_job = time.time()
    result = tenv.execute_sql(query)
    t_submit = time.time() - t_job
    rows = []
    t_first = None
    with result.collect() as it:
        for r in it:
            if t_first is None:
                t_first = time.time() - t_job
            rows.append((r[1], r[0], r[2], r[3], r[4]))
    t_job = time.time() - t_job
    net_runtime_s = None
    try:
        jr = result.get_job_client().get_job_execution_result().result()
        net_runtime_s = jr.get_net_runtime() / 1000.0
    except Exception:  # job result may no longer be retrievable from the mini-cluster
        pass

    rows.sort()
    out = sys.stdout if a.output == "-" else open(a.output, "w")
    for ws, pid, we, users, cnt in rows:
        out.write(json.dumps({"product_id": pid, "window_start": ws, "window_end": we,
                              "unique_user_count": users, "event_count": cnt},
                             separators=(",", ":")) + "\n")
    if out is not sys.stdout:
        out.close()

    total = time.time() - T_PROCESS
    summary = {
        "engine": "flink", "flink_version": _flink_version(), "parallelism": a.parallelism,
        "events_read": events_read, "events_in_windows": sum(r[4] for r in rows),
        "windows_written": len(rows),
        "job_s": round(t_job, 3),                      # submit -> last result (incl. mini-cluster start, planning)
        "flink_net_runtime_s": net_runtime_s,          # Flink's own job runtime, if available
        "submit_s": round(t_submit, 3),               # planning + mini-cluster start + submission
        "first_result_s": round(t_first, 3) if t_first is not None else None,
        "jvm_env_s": round(t_jvm, 3),                  # JVM/gateway start + TableEnvironment
        "count_lines_s": round(t_events, 3),
        "total_wall_s": round(total, 3),               # whole process incl. python/JVM start
        "events_per_s_job": round(events_read / t_job) if t_job else None,
        "events_per_s_net": round(events_read / net_runtime_s) if net_runtime_s else None,
        "events_per_s_total": round(events_read / total) if total else None,
    }
    print(json.dumps(summary), file=sys.stderr if a.output == "-" else sys.stdout, flush=True)


def _flink_version():
    try:
        from pyflink.version import __version__
        return __version__
    except Exception:
        return None


if __name__ == "__main__":
    main()
