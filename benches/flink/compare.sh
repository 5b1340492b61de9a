#!/usr/bin/env bash
# The same windowing job in ecom (Rust) and in Apache Flink SQL, over the same NDJSON file,
# in one run; both outputs checked against the brute-force oracle; figures side by side.
#
#   benches/flink/compare.sh [EVENTS]          # default 2,000,000 events
#
# Env: DATA_DIR (default target/flink-bench), FLINK_VENV (default target/flink-venv; created
# with requirements.txt when missing), JAVA_HOME (else the `java` on PATH).
# Per core: ecom window runs on one thread; Flink runs at parallelism 1, and its events/s per
# core divides by the CPU seconds its JVM used during the job (it uses about one core).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
events=${1:-2000000}
data=${DATA_DIR:-$root/target/flink-bench}
venv=${FLINK_VENV:-$root/target/flink-venv}
mkdir -p "$data"

if [ ! -x "$venv/bin/python" ]; then
  echo "== installing PyFlink into $venv (about a minute)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r "$here/requirements.txt"
fi
cargo build --release -q --manifest-path "$root/Cargo.toml"
ecom="$root/target/release/ecom"

input="$data/events_$events.ndjson"
if [ ! -s "$input" ]; then
  echo "== generating $events events: 10k products (Zipf 1.1), 100k users, disorder <= 9 s"
  "$ecom" gen --events "$events" --products 10000 --users 100000 --rate 20000 --seed 42 --output "$input"
fi

echo "== ecom window (one thread)"
"$ecom" window --input "$input" --output "$data/ecom.ndjson" --summary json 2>"$data/ecom.summary.json"
cat "$data/ecom.summary.json"

echo "== Flink SQL (parallelism 1)"
"$venv/bin/python" "$here/window_job.py" -i "$input" -o "$data/flink.ndjson" -p 1 \
  >"$data/flink.summary.json" 2>"$data/flink.log"
cat "$data/flink.summary.json"

echo "== exactness against the oracle"
python3 "$here/oracle.py" -i "$input" -o "$data/oracle.ndjson"
python3 "$here/check.py" "$data/oracle.ndjson" "$data/ecom.ndjson"
python3 "$here/check.py" "$data/oracle.ndjson" "$data/flink.ndjson"

python3 - "$data/ecom.summary.json" "$data/flink.summary.json" <<'PY'
import json, sys
ecom = json.load(open(sys.argv[1]))
flink = json.load(open(sys.argv[2]))
events = ecom["events_read"]
ecom_rate = ecom["events_per_second"]
flink_job = flink["flink_net_runtime_s"]
flink_cpu = flink.get("jvm_cpu_s_job") or flink_job
flink_rate = events / flink_job
flink_per_core = events / flink_cpu
print()
print(f"| engine | events | seconds | events/s | events/s per core |")
print(f"|---|---:|---:|---:|---:|")
print(f"| ecom window | {events} | {ecom['elapsed']:.2f} | {ecom_rate:,.0f} | {ecom_rate:,.0f} |")
print(f"| Flink SQL, p=1 (job runtime) | {events} | {flink_job:.2f} | {flink_rate:,.0f} | {flink_per_core:,.0f} |")
print(f"| Flink, whole process incl. JVM start | {events} | {flink['total_wall_s']:.2f} | {events / flink['total_wall_s']:,.0f} | |")
print(f"\nratio per core: ecom / Flink = {ecom_rate / flink_per_core:.1f}x (target: at least 20x)")
PY
