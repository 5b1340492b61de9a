#!/usr/bin/env bash
# The dashboards and rules on a real Prometheus scraping a running platform:
#   1. `ecom up` with its demo traffic (live events into ingest) and Prometheus (Debian's, from
#      scripts/servers.sh) scraping its /metrics every second, with the repository's rules
#      evaluated every second;
#   2. more traffic through the gateway: three minutes of past events (late once the demo's
#      live events have moved the watermark on, or windows that fire at once if they come
#      first), one event ingest refuses, then every half second a live event and reads of the
#      catalog, analytics and an unknown route (a 404);
#   3. check-queries.py: every expression of every rule and dashboard through Prometheus' HTTP
#      API, none failing, the core panels with data, every rule healthy.
# Run by scripts/test.sh after the tests (it uses their debug build of `ecom`).
set -euo pipefail
cd "$(dirname "$0")/.."

ecom=${ECOM:-target/debug/ecom}
prometheus=target/servers/prometheus/usr/bin/prometheus
python=target/servers/venv/bin/python
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

work=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
"$ecom" up --addr "127.0.0.1:$port" --data-dir "$work/data" >"$work/up.log" 2>&1 &
base="http://127.0.0.1:$port"
for _ in $(seq 300); do
  curl -fs "$base/readyz" >/dev/null && break
  sleep 0.2
done
curl -fs "$base/readyz" >/dev/null || { tail -20 "$work/up.log"; exit 1; }

prom_port=$(free_port)
cat >"$work/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/observability/prometheus/rules/*.yml
scrape_configs:
  - job_name: ecom
    static_configs: [{targets: ["127.0.0.1:$port"]}]
YAML
"$prometheus" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$prom_port/-/ready" >/dev/null && break
  sleep 0.2
done

# Three minutes of past events, 20 products.
now=$(date +%s)
python3 - "$now" >"$work/past.ndjson" <<'PY'
import datetime, sys
now = int(sys.argv[1])
for i in range(1800):
    t = datetime.datetime.fromtimestamp(now - 180 + i // 10, datetime.timezone.utc)
    print(f'{{"user_id":"u{i % 97}","product_id":"p{i % 20}","event_type":"VIEW_PRODUCT","timestamp":"{t:%Y-%m-%dT%H:%M:%S}Z"}}')
PY
curl -fs -H 'content-type: application/x-ndjson' --data-binary @"$work/past.ndjson" "$base/api/v1/events" >/dev/null
# And one event ingest refuses (no user), for the rejection series.
curl -s -o /dev/null -H 'content-type: application/json' "$base/api/v1/events" \
  -d '{"product_id":"p1","event_type":"VIEW_PRODUCT","timestamp":"2024-01-01T00:00:00Z"}'
(
  while true; do
    curl -s -o /dev/null -H 'content-type: application/json' "$base/api/v1/events" \
      -d "{\"user_id\":\"u$RANDOM\",\"product_id\":\"p$((RANDOM % 20))\",\"event_type\":\"VIEW_PRODUCT\",\"timestamp\":\"$(date -u +%FT%TZ)\"}"
    curl -s -o /dev/null "$base/api/v1/products"
    curl -s -o /dev/null "$base/api/v1/analytics/top"
    curl -s -o /dev/null "$base/api/v1/nothing-here"
    sleep 0.5
  done
) &

status=0
"$python" observability/check-queries.py "http://127.0.0.1:$prom_port" \
  observability/prometheus/rules/*.yml observability/grafana/dashboards/*.json || status=$?
if [[ $status -ne 0 ]]; then
  tail -n 20 "$work/up.log" "$work/prometheus.log"
  exit $status
fi

# The check can fail: a dashboard with an expression Prometheus refuses and a core panel
# without data must not pass.
"$python" - observability/grafana/dashboards/ecom-overview.json >"$work/ecom-overview.json" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
for panel in dashboard["panels"]:
    if panel["title"] == "Events accepted /s":
        panel["targets"][0]["expr"] = 'sum(rate(ingest_events_accepted_total{service="nowhere"}[1m]))'
    if panel["title"] == "Requests /s by service":
        panel["targets"][0]["expr"] = "sum by (service) (rate(http_requests_total[1m])"
print(json.dumps(dashboard))
PY
if "$python" observability/check-queries.py "http://127.0.0.1:$prom_port" "$work/ecom-overview.json" 2>"$work/broken.err"; then
  echo "check-queries.py passed a broken dashboard" >&2
  exit 1
fi
grep -q "Requests /s by service.*bad_data" "$work/broken.err" && grep -q "'Events accepted /s' of ecom-overview returned no data" "$work/broken.err" || {
  echo "check-queries.py failed a broken dashboard for other reasons:" >&2
  cat "$work/broken.err" >&2
  exit 1
}
echo "and it fails a broken dashboard (a refused expression, a core panel without data)"
