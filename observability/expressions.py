"""The PromQL expressions of the repository's rule files and dashboards, for the checks.

    expressions(PATH...) -> [(where, expr)]

A rule file (YAML with `groups`) gives each rule's `expr`; a dashboard (JSON) gives each
panel's targets and each query variable (`label_values(selector, label)` becomes the series
query Grafana would send). Grafana's variables are replaced by what a request would carry:
`$__rate_interval` and the other intervals by `1m`, a dashboard variable by its "All" value.
"""

import json
import pathlib
import re

import yaml

INTERVALS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")
VARIABLE = re.compile(r"\$\{?(\w+)\}?")
LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$", re.S)


def panels(dashboard):
    """Every panel, rows' nested panels included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _grafana(expr, variables):
    expr = INTERVALS.sub("1m", expr)
    return VARIABLE.sub(lambda m: variables.get(m.group(1), m.group(0)), expr)


def dashboard_expressions(path):
    dashboard = json.loads(pathlib.Path(path).read_text())
    variables = {}
    found = []
    for var in dashboard.get("templating", {}).get("list", []):
        variables[var["name"]] = var.get("allValue") or ".*"
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else (query or "")
        match = LABEL_VALUES.match(query.strip())
        if match:
            found.append((f"{path}: variable {var['name']}", f"group by ({match.group(2)}) ({match.group(1)})"))
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((f"{path}: panel {panel['title']!r} {target['refId']}", target["expr"]))
    return [(where, _grafana(expr, variables)) for where, expr in found]


def rule_expressions(path):
    found = []
    for group in yaml.safe_load(pathlib.Path(path).read_text())["groups"]:
        for rule in group["rules"]:
            what = rule.get("alert") or rule.get("record")
            found.append((f"{path}: {what}", rule["expr"]))
    return found


def expressions(paths):
    found = []
    for path in paths:
        if str(path).endswith(".json"):
            found.extend(dashboard_expressions(path))
        else:
            found.extend(rule_expressions(path))
    return found
