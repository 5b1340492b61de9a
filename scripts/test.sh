#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what it needs, then runs every check.
# `.ci/run` calls exactly this.
#
# Today the suite needs only the Rust toolchain; the issues that bring real servers (Kafka
# protocol broker, DynamoDB and S3 endpoints, PostgreSQL) add their installation and start-up
# here, so that this one command stays the whole story.
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

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

echo
echo "all checks passed"
