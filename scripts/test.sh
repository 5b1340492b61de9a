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

echo
echo "all checks passed"
