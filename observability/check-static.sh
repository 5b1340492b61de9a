#!/usr/bin/env bash
# The observability files, checked without a running platform (run by scripts/test.sh):
# - the Prometheus configuration and rules load (`promtool check config`, `check rules`);
# - every alert fires on the series that should fire it and stays quiet on the others
#   (`promtool test rules`, prometheus/tests/);
# - every metric a rule or dashboard reads is registered by a component (check-metrics.py);
# - the dashboards parse, with unique uids and panel ids and the one provisioned datasource
#   (check-dashboards.py);
# - the Fluent Bit pipelines are well formed, merge JSON logs, and ship to Cloud Logging and
#   CloudWatch Logs with the same inputs and filters (check-fluent-bit.py);
# - the PrometheusRule for the operator is the rule file, unchanged (prometheusrule.py --check);
# - the Kubernetes kustomization renders (`kubectl kustomize`);
# - and each of these checks fails on a deliberately broken copy.
# check-live.sh runs every expression on a real Prometheus scraping `ecom up`.
set -euo pipefail
cd "$(dirname "$0")/.."

promtool=target/servers/prometheus/usr/bin/promtool
python=target/servers/venv/bin/python
rules=(observability/prometheus/rules/*.yml)
dashboards=(observability/grafana/dashboards/*.json)

"$promtool" check config observability/prometheus/prometheus.yml
"$promtool" check rules "${rules[@]}"
"$promtool" test rules observability/prometheus/tests/*.yml
"$python" observability/check-metrics.py "${rules[@]}" "${dashboards[@]}"
"$python" observability/check-dashboards.py observability
"$python" observability/check-fluent-bit.py observability/fluent-bit
"$python" observability/prometheusrule.py --check
kubectl kustomize observability >/dev/null
echo "kubectl kustomize observability: $(kubectl kustomize observability | grep -c '^kind:') resources"

# Each check must be able to fail.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source scripts/must-fail.sh
cp -r observability "$work/copy"
copy=$work/copy
# An alert whose condition no longer fires: its test fails.
sed -i 's/> (14.4 \* 0.001)/> (144 * 0.001)/' "$copy/prometheus/rules/ecom.rules.yml"
must_fail "an alert that no longer fires" "EcomErrorBudgetFastBurn" \
  "$promtool" test rules "$copy/prometheus/tests/ecom.rules.test.yml"
# A rule and a panel reading metrics nobody registers.
sed -i 's/stream_watermark_lag_seconds/stream_watermark_delay_seconds/' \
  "$copy/prometheus/rules/ecom.rules.yml" "$copy/grafana/dashboards/ecom-stream-engine.json"
must_fail "a metric no component registers" "stream_watermark_delay_seconds" \
  "$python" observability/check-metrics.py "$copy/prometheus/rules/ecom.rules.yml" "$copy/grafana/dashboards/ecom-stream-engine.json"
# A broken rule expression.
sed -i '0,/expr: sum by/s//expr: sum bye/' "$copy/prometheus/rules/ecom.rules.yml"
must_fail "a rule that does not parse" "parse error" "$promtool" check rules "$copy/prometheus/rules/ecom.rules.yml"
# The operator's copy of the rules, left behind by a change to the rule file.
must_fail "a PrometheusRule older than the rules" "not up to date" "$python" "$copy/prometheusrule.py" --check
# Dashboards: a repeated panel id, a second datasource, a dashboard left out of Kubernetes.
"$python" - "$copy/grafana/dashboards/ecom-services.json" <<'PY'
import json, sys
path = sys.argv[1]
dashboard = json.load(open(path))
dashboard["panels"][2]["id"] = dashboard["panels"][1]["id"]
dashboard["panels"][3]["targets"][0]["datasource"] = {"type": "prometheus", "uid": "another"}
json.dump(dashboard, open(path, "w"))
PY
cp "$copy/grafana/dashboards/ecom-pods.json" "$copy/grafana/dashboards/ecom-pods-copy.json"
must_fail "a repeated panel id" "share id" "$python" observability/check-dashboards.py "$copy"
must_fail "a panel naming another datasource" "not the provisioned" "$python" observability/check-dashboards.py "$copy"
must_fail "a repeated dashboard uid" "is also" "$python" observability/check-dashboards.py "$copy"
must_fail "a dashboard Kubernetes would not load" "no ConfigMap" "$python" observability/check-dashboards.py "$copy"
# A scrape configuration that does not load.
sed -i 's/scrape_interval: 15s/scrape_interval: fifteen/' "$copy/prometheus/prometheus.yml"
must_fail "a broken scrape configuration" "FAILED" "$promtool" check config "$copy/prometheus/prometheus.yml"
# A Fluent Bit pipeline that no longer merges JSON logs, and so differs from the other.
sed -i 's/merge_log: on/merge_log: off/' "$copy/fluent-bit/cloudwatch.yaml"
must_fail "a log pipeline that keeps JSON lines as text" "merge JSON logs" \
  "$python" observability/check-fluent-bit.py "$copy/fluent-bit"
must_fail "two log pipelines that drifted apart" "differ in their filters" \
  "$python" observability/check-fluent-bit.py "$copy/fluent-bit"
