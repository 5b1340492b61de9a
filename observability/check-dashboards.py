"""Checks the Grafana dashboards and their provisioning.

    check-dashboards.py [OBSERVABILITY_DIR]

- every dashboard in grafana/dashboards/ parses, has a uid and a title, and its uid is unique;
- panel ids are unique within a dashboard (rows' nested panels included), and every panel has a
  grid position;
- exactly one datasource is provisioned (grafana/provisioning/datasources/), and every
  datasource a panel, target or variable names is that one (by uid; none left to a `${DS_*}`
  import placeholder);
- the Kubernetes kustomization generates a ConfigMap from every dashboard file.
Exits 1 naming each problem. The metric names are checked by check-metrics.py, the
expressions themselves against a real Prometheus by check-queries.py.
"""

import json
import pathlib
import sys

import yaml

from expressions import panels


def check(root):
    problems = []
    sources = []
    for path in sorted((root / "grafana/provisioning/datasources").glob("*.y*ml")):
        sources += yaml.safe_load(path.read_text()).get("datasources", [])
    if len(sources) != 1:
        problems.append(f"{len(sources)} datasources are provisioned; the dashboards expect exactly one")
    uid = sources[0].get("uid") if sources else None

    files = sorted((root / "grafana/dashboards").glob("*.json"))
    if not files:
        problems.append("no dashboards in grafana/dashboards/")
    uids = {}
    for path in files:
        name = path.name
        try:
            dashboard = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            problems.append(f"{name}: not JSON: {e}")
            continue
        for key in ("uid", "title"):
            if not dashboard.get(key):
                problems.append(f"{name}: no {key}")
        if dashboard.get("uid") in uids:
            problems.append(f"{name}: uid {dashboard['uid']!r} is also {uids[dashboard['uid']]}'s")
        uids[dashboard.get("uid")] = name
        ids = {}
        for panel in panels(dashboard):
            title = panel.get("title", "?")
            if panel.get("id") in ids:
                problems.append(f"{name}: panels {ids[panel.get('id')]!r} and {title!r} share id {panel.get('id')}")
            ids[panel.get("id")] = title
            if not panel.get("gridPos"):
                problems.append(f"{name}: panel {title!r} has no gridPos")
            named = [panel.get("datasource")] + [t.get("datasource") for t in panel.get("targets", [])]
            if panel.get("type") != "row" and not panel.get("targets"):
                problems.append(f"{name}: panel {title!r} has no query")
            for source in named:
                if panel.get("type") == "row" and source is None:
                    continue
                if not isinstance(source, dict) or source.get("uid") != uid:
                    problems.append(f"{name}: panel {title!r} names datasource {source!r}, not the provisioned {uid!r}")
        for var in dashboard.get("templating", {}).get("list", []):
            if var.get("type") == "query" and (var.get("datasource") or {}).get("uid") != uid:
                problems.append(f"{name}: variable {var.get('name')!r} names datasource {var.get('datasource')!r}")
        if "${DS_" in path.read_text():
            problems.append(f"{name}: holds an import placeholder ${{DS_...}}; name the provisioned datasource")

    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    generated = {f for g in kustomization.get("configMapGenerator", []) for f in g.get("files", [])}
    for path in files:
        if f"grafana/dashboards/{path.name}" not in generated:
            problems.append(f"{path.name}: no ConfigMap in kustomization.yaml, so Kubernetes would not load it")
    return problems, len(files)


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
    problems, count = check(root)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"{count} dashboards: unique uids and panel ids, one provisioned datasource, all in kustomization.yaml")


if __name__ == "__main__":
    main()
