#!/usr/bin/env bash
# The CSV import's throughput and memory: a ROWS-row CSV (about 400 bytes a row) put into moto's
# S3, imported with `ecom import s3://...` (release build) through the gateway of `ecom up`
# (release build, the catalog on SQLite), first into an empty catalog (every row created), then
# again (every row unchanged). Prints each run's report summary, rows/s and peak memory (the
# import process's VmHWM); the figures go to BENCHMARKS.md.
#
#   scripts/bench-import.sh            # ROWS=100000 BATCH=1000 by default
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-100000}
BATCH=${BATCH:-1000}
scripts/servers.sh install >/dev/null
cargo build --release --locked --bin ecom
ecom=$PWD/target/release/ecom
python=$PWD/target/servers/venv/bin/python

work=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
moto_port=$(free_port)
up_port=$(free_port)

target/servers/venv/bin/moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
ECOM_IMPORTER_SECRET=import-bench-secret RUST_LOG=warn \
  $ecom up --no-demo --addr "127.0.0.1:$up_port" --data-dir "$work/data" >"$work/up.log" 2>&1 &
for _ in $(seq 300); do
  curl -fs "http://127.0.0.1:$up_port/readyz" >/dev/null && curl -fs "http://127.0.0.1:$moto_port/" >/dev/null && break
  sleep 0.2
done

export AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port AWS_REGION=us-east-1 \
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
"$python" - "$ROWS" "$work/products.csv" <<'PY'
import sys, boto3
rows, path = int(sys.argv[1]), sys.argv[2]
filler = "Sturdy, dishwasher-safe and made to last; " * 8
with open(path, "w") as f:
    f.write("sku,name,description,price,currency,category,stock_quantity\n")
    for i in range(rows):
        f.write(f'SKU-{i:07},Product {i},"{filler}item {i}",{i % 500}.{i % 100:02},EUR,category-{i % 40},{i % 1000}\n')
s3 = boto3.client("s3")
s3.create_bucket(Bucket="imports")
s3.upload_file(path, "imports", "products.csv")
PY
echo "== $ROWS rows, $(du -m "$work/products.csv" | cut -f1) MiB, batches of $BATCH, ecom up (SQLite) on this machine"
for run in "into an empty catalog" "again (every row unchanged)"; do
  PRODUCT_API_URL="http://127.0.0.1:$up_port" IMPORT_CLIENT_SECRET=import-bench-secret \
    IMPORT_BATCH_ROWS=$BATCH $ecom import s3://imports/products.csv >"$work/report.json" 2>"$work/stderr"
  summary=$(tail -1 "$work/stderr")
  "$python" - "$work/report.json" "$run" "$summary" <<'PY'
import json, sys
report, run, summary = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
rate = report["rows_read"] / (report["duration_ms"] / 1000)
print(f"{run}: {report['duration_ms'] / 1000:.2f} s, {rate:,.0f} rows/s; {summary}")
PY
done
