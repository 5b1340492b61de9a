#!/usr/bin/env bash
# Regenerates docs/dashboard.png, the screenshot at the top of the README: the dashboard's
# browser test (headless Chromium against `ecom up` with demo traffic) saves what it shows.
#
#   scripts/screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/servers.sh install >/dev/null
cargo test --locked --test pipeline dashboard::the_dashboard_shows_what_the_api_says
cp target/test-artifacts/chromium.png docs/dashboard.png
echo "docs/dashboard.png updated"
