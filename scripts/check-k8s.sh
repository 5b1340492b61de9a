#!/usr/bin/env bash
# The Kubernetes manifests and Argo CD applications, checked without a cluster (run by
# scripts/test.sh):
# - check-k8s.py: every overlay renders (`kubectl kustomize`), every resource validates
#   against the Kubernetes API schemas (kubernetes-validate, strict) or k8s/schemas/, and the
#   platform's rules hold (workloads, probes, security context, variables the code reads, the
#   seed's HPAs, NetworkPolicies, identities, Argo CD paths and sync policies);
# - checkov on the rendered manifests: no failed check, and every skip says why in the manifest;
# - each check failing on a deliberately broken copy.
set -euo pipefail
cd "$(dirname "$0")/.."

iac=target/servers/iac/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source scripts/must-fail.sh

"$iac/python" scripts/check-k8s.py --out "$work/rendered"
"$iac/checkov" -d "$work/rendered" --framework kubernetes --compact --skip-download -o json \
  >"$work/checkov.json" 2>"$work/checkov.log" || true
"$iac/python" scripts/checkov-summary.py "$work/checkov.json" "the rendered manifests"

# Each check must be able to fail: a copy of the repository's manifests, broken one way at a time.
copy=$work/copy
fresh() {
  rm -rf "$copy"
  mkdir -p "$copy"
  cp -r k8s observability terraform-aws terraform-gcp "$copy/"
}
check() { "$iac/python" scripts/check-k8s.py "$copy"; }

fresh
sed -i 's/maxReplicas: 10/maxReplicas: 5/; s/averageUtilization: 70/averageUtilization: 80/' "$copy/k8s/base/ingest/hpa.yaml"
must_fail "an HPA off the seed's numbers" "the seed says 2 to 10" check
must_fail "an HPA off the seed's memory target" "memory 70" check
fresh
sed -i 's/readinessProbe:/readinesProbe:/' "$copy/k8s/base/orders/deployment.yaml"
must_fail "a field Kubernetes does not have" "readinesProbe" check
must_fail "a Deployment without readiness" "readiness must be GET /readyz" check
fresh
sed -i 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' "$copy/k8s/base/catalog/deployment.yaml"
must_fail "a writable root filesystem" "root filesystem must be read-only" check
fresh
sed -i 's/  RUST_LOG: info/  RUST_LOG: info\n  ECOM_LOGLEVEL: debug/' "$copy/k8s/base/common/config.yaml"
must_fail "a variable nothing reads" "ECOM_LOGLEVEL (ConfigMap ecom-config), which nothing reads" check
fresh
sed -i 's/  secretStoreRef:/  secretStore:/' "$copy/k8s/overlays/aws/external-secrets.yaml"
must_fail "an ExternalSecret off its schema" "'secretStoreRef' is a required property" check
fresh
sed -i 's/name: gateway$/name: catalog/' "$copy/k8s/overlays/aws/ingress.yaml"
must_fail "the outside let in to another service than the gateway" \
  "admits traffic from outside to pods other than the gateway" check
must_fail "an Ingress to another service than the gateway" "only the gateway may be reachable" check
fresh
sed -i 's|path: k8s/overlays/gcp|path: k8s/overlays/gke|' "$copy/k8s/argocd/apps/ecom-gcp.yaml"
sed -i 's/selfHeal: true/selfHeal: false/' "$copy/k8s/argocd/apps/ecom-aws.yaml"
must_fail "an Application path that does not exist" "k8s/overlays/gke is not a directory" check
must_fail "an Application that does not heal" "prune and selfHeal" check
fresh
sed -i 's|  - ../../base/analytics|  - ../../base/analytic|' "$copy/k8s/overlays/aws/kustomization.yaml"
must_fail "an overlay that does not render" "kubectl kustomize fails" check
fresh
sed -i '/    DB_SECRET_ARN=/d' "$copy/terraform-aws/outputs.tf"
echo "REDIS_URL=redis://cache:6379" >>"$copy/k8s/overlays/gcp/values.env"
must_fail "a Terraform output that no longer writes a value the overlay reads" \
  "kubernetes_values writes" check
must_fail "a value no replacement reads" "are read by no replacement" check
fresh
"$iac/python" - "$copy/k8s/base/auth/deployment.yaml" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
text = text.replace("            privileged: false\n", "            privileged: true\n")
text = text.replace("    checkov.io/skip3: CKV_K8S_35=", "    checkov.io/skip3: CKV_K8S_35\n    checkov.io/skip4: CKV_K8S_12=")
open(path, "w").write(text)
PY
"$iac/python" scripts/check-k8s.py "$copy" --out "$work/broken" >/dev/null 2>&1 || true
"$iac/checkov" -d "$work/broken" --framework kubernetes --compact --skip-download -o json \
  >"$work/broken.json" 2>/dev/null || true
must_fail "a privileged container" "CKV_K8S_16" "$iac/python" scripts/checkov-summary.py "$work/broken.json" broken
must_fail "a skipped check without a reason" "without a reason" \
  "$iac/python" scripts/checkov-summary.py "$work/broken.json" broken
