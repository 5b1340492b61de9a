"""Static checks of the container files, which cannot be run here (no Docker engine).

    check-deploy.py [ROOT]

- Dockerfile: at least two stages; the build uses `--locked` and BuildKit cache mounts; the
  last stage runs as a numeric non-root user, has a HEALTHCHECK running `ecom health`, and its
  entry point is the `ecom` binary.
- compose.yaml (after the Compose schema check, done by check-jsonschema): every service of
  the ecom image runs a real subcommand, and every variable it is given is one the code reads
  (an `env = "..."` of a flag, the OpenTelemetry and AWS SDK variables, RUST_LOG); every
  depends_on names a service that has a health check; Prometheus' targets are the services'
  ECOM_ADDR ports.
Exits 1 naming each problem.
"""

import pathlib
import re
import sys

import yaml

SUBCOMMANDS = {"up", "window", "gen", "ingest", "stream-engine", "analytics", "gateway", "auth",
               "catalog", "customers", "orders", "inventory", "payments", "import", "migrate",
               "health"}
# Read by libraries rather than by our flags: the AWS SDK, OpenTelemetry, tracing, and sqlx's
# libpq variables for TLS to PostgreSQL.
LIBRARY_ENV = re.compile(r"^(AWS_[A-Z_]+|OTEL_[A-Z_]+|RUST_LOG|ECOM_LOG_FORMAT|PGSSLMODE|PGSSLROOTCERT)$")


def dockerfile_problems(text):
    problems = []
    lines = re.sub(r"\\\n", " ", text).splitlines()
    instructions = [l.strip() for l in lines if l.strip() and not l.strip().startswith("#")]
    stages = [i for i in instructions if i.upper().startswith("FROM ")]
    if len(stages) < 2:
        problems.append("Dockerfile: one stage; build in one and run in a small other")
    last = instructions[max(i for i, l in enumerate(instructions) if l.upper().startswith("FROM ")):]
    build = " ".join(instructions)
    if "--locked" not in build:
        problems.append("Dockerfile: cargo build without --locked")
    if "--mount=type=cache" not in build:
        problems.append("Dockerfile: no BuildKit cache mount for the dependencies")
    users = [l.split(None, 1)[1] for l in last if l.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("0", "root") or not users[-1].split(":")[0].isdigit():
        problems.append(f"Dockerfile: the runtime stage must run as a numeric non-root USER (got {users})")
    health = [l for l in last if l.upper().startswith("HEALTHCHECK ")]
    if not health or '"ecom", "health"' not in health[-1]:
        problems.append("Dockerfile: the runtime stage has no HEALTHCHECK running `ecom health`")
    entry = [l for l in last if l.upper().startswith("ENTRYPOINT ")]
    if not entry or entry[-1] != 'ENTRYPOINT ["ecom"]':
        problems.append("Dockerfile: the entry point must be the ecom binary")
    return problems


def flags_env(root):
    names = set()
    for crate in ["src", "ingest", "stream-engine", "stream-runtime", "analytics-api", "services", "product-import", "lambda-import"]:
        for path in (root / crate).rglob("*.rs"):
            names.update(re.findall(r'env = "([A-Z0-9_]+)"', path.read_text()))
    return names


def compose_problems(compose, prometheus, known_env):
    problems = []
    services = compose["services"]
    for name, service in services.items():
        for dependency in (service.get("depends_on") or {}):
            target = services.get(dependency)
            if target is None:
                problems.append(f"compose: {name} depends on {dependency}, which is not a service")
            elif "healthcheck" not in target and target.get("image") != "ecom:local":
                problems.append(f"compose: {name} waits for {dependency}, which has no health check")
        if service.get("image") != "ecom:local":
            continue
        command = service.get("command") or []
        if not command or command[0] not in SUBCOMMANDS:
            problems.append(f"compose: {name} runs {command}, not an ecom subcommand")
        for variable in service.get("environment") or {}:
            if variable not in known_env and not LIBRARY_ENV.match(variable):
                problems.append(f"compose: {name} is given {variable}, which nothing reads")
    targets = {}
    for job in prometheus["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets[host] = port
    for name, service in services.items():
        if service.get("image") != "ecom:local":
            continue
        addr = (service.get("environment") or {}).get("ECOM_ADDR", "")
        port = addr.rsplit(":", 1)[-1]
        if targets.get(name) != port:
            problems.append(f"compose: Prometheus scrapes {name} at port {targets.get(name)}, it listens on {port or '?'}")
    return problems


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    problems = dockerfile_problems((root / "Dockerfile").read_text())
    compose = yaml.safe_load((root / "compose.yaml").read_text())
    prometheus = yaml.safe_load((root / "observability/prometheus/prometheus.yml").read_text())
    code = pathlib.Path(__file__).resolve().parent.parent
    problems += compose_problems(compose, prometheus, flags_env(code))
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        sys.exit(1)
    ecom = [n for n, s in compose["services"].items() if s.get("image") == "ecom:local"]
    print(f"Dockerfile and compose.yaml: {len(ecom)} ecom services, each a real subcommand reading only known variables")


if __name__ == "__main__":
    main()
