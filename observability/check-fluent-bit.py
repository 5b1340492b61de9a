"""Checks the Fluent Bit configurations (no fluent-bit binary is obtainable on these machines,
so its own `--dry-run` cannot run here).

    check-fluent-bit.py [FLUENT_BIT_DIR]

- each file parses as YAML with `service` and `pipeline` (inputs, filters, outputs);
- every plugin is one Fluent Bit has, and every entry of a pipeline has a `match` (filters,
  outputs) that its inputs' tags reach;
- the kubernetes filter merges JSON log lines (`merge_log: on`), so that the services' JSON
  fields (request id, trace id, level) become the record's;
- gcp.yaml ships to Cloud Logging (stackdriver, resource k8s_container), cloudwatch.yaml to
  CloudWatch Logs, and their inputs and filters are identical (one pipeline, two destinations).
Exits 1 naming each problem.
"""

import fnmatch
import pathlib
import sys

import yaml

PLUGINS = {
    "inputs": {"tail", "systemd", "forward", "dummy"},
    "filters": {"kubernetes", "modify", "grep", "record_modifier", "lua", "nest", "parser", "multiline"},
    "outputs": {"stackdriver", "cloudwatch_logs", "stdout", "forward", "null"},
}
DESTINATIONS = {"gcp.yaml": "stackdriver", "cloudwatch.yaml": "cloudwatch_logs"}


def check_file(path):
    problems = []
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict) or "service" not in config or "pipeline" not in config:
        return [f"{path.name}: no service and pipeline sections"], None
    pipeline = config["pipeline"]
    for section, known in PLUGINS.items():
        entries = pipeline.get(section) or []
        if not entries:
            problems.append(f"{path.name}: no {section}")
        for entry in entries:
            if entry.get("name") not in known:
                problems.append(f"{path.name}: {section} plugin {entry.get('name')!r} is not one Fluent Bit has")
    tags = [i.get("tag", "") for i in pipeline.get("inputs") or []]
    for section in ("filters", "outputs"):
        for entry in pipeline.get(section) or []:
            pattern = entry.get("match")
            if not pattern or not any(fnmatch.fnmatch(t.replace("*", "x"), pattern) for t in tags):
                problems.append(f"{path.name}: {section} {entry.get('name')} matches no input's tag ({pattern!r})")
    kube = [f for f in pipeline.get("filters") or [] if f.get("name") == "kubernetes"]
    if not kube or kube[0].get("merge_log") not in (True, "on"):
        problems.append(f"{path.name}: the kubernetes filter must merge JSON logs (merge_log: on)")
    want = DESTINATIONS.get(path.name)
    outputs = [o.get("name") for o in pipeline.get("outputs") or []]
    if want and want not in outputs:
        problems.append(f"{path.name}: ships to {outputs}, not {want}")
    stack = [o for o in pipeline.get("outputs") or [] if o.get("name") == "stackdriver"]
    if stack and stack[0].get("resource") != "k8s_container":
        problems.append(f"{path.name}: the stackdriver output must use the k8s_container resource")
    return problems, pipeline


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent / "fluent-bit")
    problems, pipelines = [], {}
    for name in DESTINATIONS:
        path = root / name
        if not path.exists():
            problems.append(f"{name}: missing")
            continue
        found, pipeline = check_file(path)
        problems += found
        pipelines[name] = pipeline
    gcp, aws = pipelines.get("gcp.yaml"), pipelines.get("cloudwatch.yaml")
    if gcp and aws:
        for section in ("inputs", "filters"):
            if gcp.get(section) != aws.get(section):
                problems.append(f"gcp.yaml and cloudwatch.yaml differ in their {section}: keep one pipeline")
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("fluent-bit: gcp.yaml (Cloud Logging) and cloudwatch.yaml (CloudWatch Logs), one pipeline")


if __name__ == "__main__":
    main()
