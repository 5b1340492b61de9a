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

step "tests"
cargo test --workspace --locked

step "API description"
# `ecom up` serves the description of every API it runs; it must be a valid OpenAPI document.
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/debug/ecom up --no-demo --addr "127.0.0.1:$port" --data-dir "$data" >/dev/null 2>&1 &
up=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/openapi.json" >"$data/openapi.json"
kill $up; wait $up || true
target/servers/venv/bin/openapi-spec-validator "$data/openapi.json"
rm -rf "$data"

echo
echo "all checks passed"
