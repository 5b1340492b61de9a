#!/usr/bin/env bash
# The container files, checked without a Docker engine (run by scripts/test.sh):
# - compose.yaml against the Compose specification's schema (check-jsonschema's built-in
#   `vendor.compose-spec`);
# - check-deploy.py: the Dockerfile's stages, user, health check and entry point; compose's
#   services run real subcommands with variables the code reads, wait only for services with
#   health checks, and are scraped on their ports;
# - each check failing on a deliberately broken copy.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/servers/venv/bin
"$venv/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml
"$venv/python" scripts/check-deploy.py

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source scripts/must-fail.sh
mkdir -p "$work/copy/observability/prometheus"
cp Dockerfile compose.yaml "$work/copy/"
cp observability/prometheus/prometheus.yml "$work/copy/observability/prometheus/"
copy=$work/copy
sed -i 's/condition: service_healthy}/condition: healthy}/' "$copy/compose.yaml"
must_fail "a depends_on condition Compose does not have" "is not one of" \
  "$venv/check-jsonschema" --builtin-schema vendor.compose-spec "$copy/compose.yaml"
cp compose.yaml "$copy/compose.yaml"
sed -i 's/command: \["stream-engine"\]/command: ["stream_engine"]/; s/ECOM_ADDR: 0.0.0.0:8085/ECOM_ADDR: 0.0.0.0:9999/; s/      REDIS_URL: redis/      REDIS_ADDRESS: redis/' "$copy/compose.yaml"
must_fail "a subcommand that does not exist" "not an ecom subcommand" "$venv/python" scripts/check-deploy.py "$copy"
must_fail "a variable nothing reads" "REDIS_ADDRESS, which nothing reads" "$venv/python" scripts/check-deploy.py "$copy"
must_fail "a service Prometheus scrapes on the wrong port" "scrapes analytics at port 8085" "$venv/python" scripts/check-deploy.py "$copy"
cp compose.yaml "$copy/compose.yaml"
sed -i 's/^USER 10001:10001/USER root/; s/CMD \["ecom", "health"\]/CMD ["true"]/' "$copy/Dockerfile"
must_fail "an image that runs as root" "numeric non-root USER" "$venv/python" scripts/check-deploy.py "$copy"
must_fail "an image whose health check checks nothing" "no HEALTHCHECK running" "$venv/python" scripts/check-deploy.py "$copy"
