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

Results go to a filesystem sink (format json) in a temporary directory next to
--output; after the job the part files are merged, sorted by
(window_start, product_id) and written as one NDJSON file with RFC 3339 UTC
'Z' window bounds (not part of the job time). A one-line JSON summary goes to
stdout (to stderr when --output is '-').
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

T_PROCESS = time.time()


def ts_expr_fast(col="`timestamp`"):
    """RFC 3339 string -> TIMESTAMP_LTZ(3) at the right UTC instant (default).

    Only the fixed-width 'yyyy-MM-ddTHH:mm:ss' head goes through a (cached)
    DateTimeFormatter; milliseconds (first 3 fraction digits, any number of
    digits allowed) and the Z / +HH:MM / -HH:MM offset are cut out with SUBSTR.
    Invalid strings give NULL -> sentinel epoch 0, filtered out in the view
    (a NULL rowtime makes the job fail: "RowTime field should not be null").
    """
    n = f"CHAR_LENGTH({col})"
    tz_len = f"(CASE WHEN SUBSTR({col}, {n}, 1) = 'Z' THEN 1 WHEN SUBSTR({col}, {n} - 2, 1) = ':' THEN 6 ELSE -1000 END)"
    body_end = f"({n} - {tz_len})"
    base = (f"(CASE WHEN SUBSTR({col}, 11, 1) = 'T'"
            f" THEN TO_TIMESTAMP_LTZ(SUBSTR({col}, 1, 19), 'yyyy-MM-dd''T''HH:mm:ss') END)")
    frac_ms = (f"(CASE WHEN {body_end} = 19 THEN 0 WHEN SUBSTR({col}, 20, 1) = '.' AND {body_end} >= 21"
               f" THEN TRY_CAST(RPAD(SUBSTR({col}, 21, LEAST(3, {body_end} - 20)), 3, '0') AS INT) END)")
    off_min = (f"(CASE WHEN SUBSTR({col}, {n}, 1) = 'Z' THEN 0 ELSE"
               f" (CASE SUBSTR({col}, {n} - 5, 1) WHEN '+' THEN 1 WHEN '-' THEN -1 END)"
               f" * (TRY_CAST(SUBSTR({col}, {n} - 4, 2) AS INT) * 60 + TRY_CAST(SUBSTR({col}, {n} - 1, 2) AS INT)) END)")
    return f"COALESCE({base} + ({frac_ms} - {off_min} * 60000) * INTERVAL '0.001' SECOND, TO_TIMESTAMP_LTZ(0, 3))"


# Fraction of seconds may have 1..9 digits: DateTimeFormatter has no
# variable-width fraction in pattern form, so list the widths as optional
# sections (longest first). XXX accepts 'Z' and +HH:MM / -HH:MM.
TS_PATTERN = "yyyy-MM-dd''T''HH:mm:ss" + "".join("[.%s]" % ("S" * k) for k in range(9, 0, -1)) + "XXX"


def ts_expr_pattern(col="`timestamp`"):
    """Alternative (--ts-parser pattern): one full DateTimeFormatter pattern.

    Stricter validation but slower (~5 us/event more on this machine). Pitfall:
    TO_TIMESTAMP_LTZ(str, fmt) validates the offset (XXX) but then IGNORES it
    (it builds a LocalDateTime and reads it in UTC), so the offset is applied by hand.
    """
    n = f"CHAR_LENGTH({col})"
    wall = f"TO_TIMESTAMP_LTZ({col}, '{TS_PATTERN}')"
    off_min = (f"(CASE WHEN SUBSTR({col}, {n}, 1) = 'Z' THEN 0 ELSE"
               f" (CASE WHEN SUBSTR({col}, {n} - 5, 1) = '-' THEN 1 ELSE -1 END)"
               f" * (TRY_CAST(SUBSTR({col}, {n} - 4, 2) AS INT) * 60 + TRY_CAST(SUBSTR({col}, {n} - 1, 2) AS INT)) END)")
    return f"COALESCE(TIMESTAMPADD(MINUTE, {off_min}, {wall}), TO_TIMESTAMP_LTZ(0, 3))"


TS_PARSERS = {"fast": ts_expr_fast, "pattern": ts_expr_pattern}


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


def descendants_cpu_s():
    """CPU seconds (user+sys) used so far by all descendant processes (the JVM). Linux only."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        procs = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        st = f.read().rsplit(")", 1)[1].split()
                    procs[int(pid)] = (int(st[1]), int(st[11]) + int(st[12]))  # ppid, utime+stime
                except OSError:
                    pass
        kids, todo, total = set(), [os.getpid()], 0
        while todo:
            parent = todo.pop()
            for pid, (ppid, _) in procs.items():
                if ppid == parent and pid not in kids:
                    kids.add(pid)
                    todo.append(pid)
        return sum(procs[k][1] for k in kids) / tick
    except Exception:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", "-i", required=True)
    ap.add_argument("--output", "-o", required=True, help="NDJSON result file, '-' for stdout")
    ap.add_argument("--parallelism", "-p", type=int, default=1)
    ap.add_argument("--ts-parser", choices=sorted(TS_PARSERS), default="fast")
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                    help="extra Flink configuration, repeatable (e.g. pipeline.object-reuse=true)")
    ap.add_argument("--explain", action="store_true", help="print the optimized plan to stderr")
    a = ap.parse_args()
    in_path = os.path.abspath(a.input)
    out_dir = os.path.dirname(os.path.abspath(a.output)) if a.output != "-" else None

    t_count = time.time()
    events_read = count_lines(in_path)  # not part of the timed job
    t_count = time.time() - t_count

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
            -- rows that will be skipped get the sentinel already here, so they
            -- cannot advance the watermark (it is assigned before the WHERE)
            ts AS CASE WHEN user_id IS NULL OR product_id IS NULL THEN TO_TIMESTAMP_LTZ(0, 3)
                       ELSE {TS_PARSERS[a.ts_parser]()} END,
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
    sink_dir = tempfile.mkdtemp(prefix=".flink-sink-", dir=out_dir)
    tenv.execute_sql(f"""
        CREATE TEMPORARY TABLE results (
            product_id STRING,
            window_start STRING,
            window_end STRING,
            unique_user_count BIGINT,
            event_count BIGINT
        ) WITH (
            'connector' = 'filesystem',
            'path' = 'file://{sink_dir}',
            'format' = 'json'
        )""")
    # window_start/window_end are TIMESTAMP(3) wall-clock values in
    # table.local-time-zone (= UTC), so formatting them with a literal 'Z' is exact.
    query = """
        INSERT INTO results
        SELECT product_id,
               DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss''Z'''),
               DATE_FORMAT(window_end, 'yyyy-MM-dd''T''HH:mm:ss''Z'''),
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

    cpu0 = descendants_cpu_s()
    t_job = time.time()
    result = tenv.execute_sql(query)  # returns once submitted (planning + mini-cluster start)
    t_submit = time.time() - t_job
    result.wait()
    t_job = time.time() - t_job
    cpu1 = descendants_cpu_s()
    jvm_cpu_s = round(cpu1 - cpu0, 2) if cpu0 is not None and cpu1 is not None else None
    net_runtime_s = None
    try:
        jr = result.get_job_client().get_job_execution_result().result()
        net_runtime_s = jr.get_net_runtime() / 1000.0
    except Exception:  # job result may not be retrievable any more
        pass

    # Merge committed part files (in-progress/hidden ones start with '.'), sort, write one file.
    t_merge = time.time()
    rows = []
    for root, _dirs, files in os.walk(sink_dir):
        for fn in files:
            if fn.startswith("."):
                continue
            with open(os.path.join(root, fn)) as f:
                for line in f:
                    if line.strip():
                        r = json.loads(line)
                        rows.append((r["window_start"], r["product_id"], r["window_end"],
                                     r["unique_user_count"], r["event_count"]))
    shutil.rmtree(sink_dir, ignore_errors=True)
    rows.sort()
    out = sys.stdout if a.output == "-" else open(a.output, "w")
    for ws, pid, we, users, cnt in rows:
        out.write(json.dumps({"product_id": pid, "window_start": ws, "window_end": we,
                              "unique_user_count": users, "event_count": cnt},
                             separators=(",", ":")) + "\n")
    if out is not sys.stdout:
        out.close()
    t_merge = time.time() - t_merge

    total = time.time() - T_PROCESS
    summary = {
        "engine": "flink", "flink_version": _flink_version(), "parallelism": a.parallelism,
        "ts_parser": a.ts_parser,
        "events_read": events_read,                     # input lines
        "events_in_windows": sum(r[4] for r in rows),   # sum(event_count)
        "windows_written": len(rows),
        "job_s": round(t_job, 3),                       # submit -> job finished (planning, mini-cluster start, run)
        "submit_s": round(t_submit, 3),                 #   of which: planning + mini-cluster start + submission
        "flink_net_runtime_s": net_runtime_s,           # Flink's own job runtime (JobExecutionResult)
        "jvm_cpu_s_job": jvm_cpu_s,                     # JVM CPU seconds (all threads) during job_s
        "jvm_env_s": round(t_jvm, 3),                   # JVM/py4j gateway start + TableEnvironment
        "count_lines_s": round(t_count, 3),
        "merge_output_s": round(t_merge, 3),
        "total_wall_s": round(total, 3),                # whole process incl. Python/JVM start
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
