#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, then runs every check.
# `.ci/run` calls exactly this.
#
# The integration tests run against real servers (a Kafka-protocol broker, a DynamoDB and S3
# endpoint), which scripts/servers.sh installs under target/servers/; each test starts its own
# instances on free loopback ports (testkit/).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain"
cargo --version
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

step "servers"
scripts/servers.sh install

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "observability"
# The Prometheus configuration, rules and dashboards: they load, every alert fires and stays
# quiet in its unit tests, every metric they read exists, and each check fails on a broken
# copy (observability/check-static.sh).
observability/check-static.sh

step "containers"
# The Dockerfile and compose.yaml (no Docker engine here): the Compose schema, the image's
# user, health check and entry point, compose's subcommands, variables and health checks, and
# each check failing on a broken copy (scripts/check-deploy.sh).
scripts/check-deploy.sh

step "deployment"
# Kubernetes and Terraform (no cluster, no terraform binary, no provider registry here): the
# overlays render and validate against the API schemas and k8s/schemas/, the platform's rules
# (probes, security context, the seed's HPAs, NetworkPolicies, identities, Argo CD paths) hold,
# checkov passes on the rendered manifests (scripts/check-k8s.sh); every .tf file parses with
# HashiCorp's parser and is formatted, every module call and reference resolves, the design's
# resources are there, checkov passes on both trees (scripts/check-terraform.sh); each check
# fails on a broken copy.
scripts/check-k8s.sh
scripts/check-terraform.sh

step "tests"
# The Lambda's test runs the function's binary under `cargo lambda watch`; `cargo test` builds
# only the test harnesses of a package without integration tests, so it is built first.
cargo build -p lambda-import --locked
cargo test --workspace --locked

step "dashboards and rules on a live Prometheus"
# Every expression of every dashboard and rule, evaluated by a real Prometheus scraping
# `ecom up` under traffic: none fails, the core panels have data, every rule is healthy.
observability/check-live.sh

step "API description"
# The gateway of `ecom up` serves the description of every API; it must be a valid OpenAPI
# document, and the API must keep to it: schemathesis sends generated requests (valid and
# invalid) to every operation with an admin token and checks that none gets a 5xx, an
# undocumented status, content type or header, or a body outside its schema, and that no
# secured route answers without a token. (Analytics is asked for a token too, as in a
# deployment: ECOM_LOCAL_ANALYTICS=false.)
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ECOM_ADMIN_PASSWORD=schemathesis-admin-password ECOM_LOCAL_ANALYTICS=false \
  target/debug/ecom up --no-demo --addr "127.0.0.1:$port" --data-dir "$data" >"$data/up.log" 2>&1 &
up=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/api/v1/openapi.json" >"$data/openapi.json"
target/servers/venv/bin/openapi-spec-validator "$data/openapi.json"
token=$(curl -fs "http://127.0.0.1:$port/api/v1/auth/token" -d grant_type=password \
  -d username=admin -d password=schemathesis-admin-password |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
status=0
(cd "$data" && "$OLDPWD/target/servers/venv/bin/schemathesis" run \
  "http://127.0.0.1:$port/api/v1/openapi.json" -H "Authorization: Bearer $token" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,ignored_auth \
  --phases examples,coverage,fuzzing --max-examples 15 --workers 2 --seed 1 --no-color) || status=$?
kill $up; wait $up || true
if [[ $status -ne 0 ]]; then
  tail -20 "$data/up.log"
  exit $status
fi
rm -rf "$data"

echo
echo "all checks passed"
