"""Static checks of the Kubernetes manifests and the Argo CD applications (nothing can be
applied here: no cluster). Run by scripts/check-k8s.sh.

    check-k8s.py [ROOT] [--out DIR]

- Every overlay (k8s/overlays/aws, k8s/overlays/gcp) and observability/ renders with
  `kubectl kustomize`; the output is written to DIR (for checkov) when given.
- Every rendered resource validates: Kubernetes' own kinds against the API schemas
  (kubernetes-validate, strict: an unknown field is an error), custom resources against
  k8s/schemas/ (a kind without a schema is an error). The same for the Argo CD applications.
- The platform's rules, which no schema knows:
  - the AWS overlay runs gateway, auth, catalog, customers, orders, inventory, payments, ingest
    and analytics, the GCP overlay the stream engine, each Deployment named after its service
    and running that subcommand, with a port named `http` (the one its ECOM_ADDR names, and the
    one the PodMonitor scrapes), a Service and a ServiceAccount of its name, and a
    PodDisruptionBudget;
  - readiness on /readyz and liveness on /healthz; CPU and memory requests and limits; the
    restricted security context (non-root, read-only root filesystem, no privilege escalation,
    no capabilities, seccomp RuntimeDefault);
  - every variable a pod is given (env, and the keys of its ConfigMaps and Secrets) is one the
    code reads;
  - HorizontalPodAutoscalers on the gateway and ingest exactly: 2 to 10 replicas, CPU 60 % and
    memory 70 % of requests (seed 002 §7), a scale-down stabilisation window, and Deployments
    that leave the replica count to them;
  - ingress into the namespace is denied by default, and only the gateway admits traffic from
    outside the cluster's pods (an ipBlock), through the one Ingress, which routes to it alone;
  - the workloads that call AWS have IRSA roles, the engine a Workload Identity account;
  - each overlay's values.env has exactly the keys its kustomization's replacements read, and
    exactly those the `kubernetes_values` output of its Terraform tree's root module writes
    (the file is that output, DEPLOY.md);
  - every Argo CD Application syncs automatically with prune and self-heal, from one repository
    and revision, from a path (or Helm value file) that exists in ROOT, into a destination its
    project allows.
Exits 1 naming each problem.
"""

import importlib.util
import pathlib
import re
import subprocess
import sys

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES = "1.33.0"  # the oldest minor version EKS and GKE both still support in standard support
RENDERED = {
    "aws": "k8s/overlays/aws",
    "gcp": "k8s/overlays/gcp",
    "observability": "observability",
}
WORKLOADS = {
    "aws": {"gateway", "auth", "catalog", "customers", "orders", "inventory", "payments", "ingest",
            "analytics"},
    "gcp": {"stream-engine"},
}
AUTOSCALED = {"gateway", "ingest"}
# Workloads that call AWS APIs, and so need a role (DEPLOY.md): the services on MSK (ingest,
# analytics, and the order flow's catalog, orders, inventory and payments), and the log shipper
# (CloudWatch Logs).
IRSA = {"ingest", "orders", "analytics", "catalog", "inventory", "payments", "fluent-bit"}
SCHEMAS = {
    ("argoproj.io/v1alpha1", "Application"): "application.yaml",
    ("argoproj.io/v1alpha1", "AppProject"): "appproject.yaml",
    ("external-secrets.io/v1", "ExternalSecret"): "externalsecret.yaml",
    ("external-secrets.io/v1", "ClusterSecretStore"): "clustersecretstore.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.yaml",
}


def load_check_deploy():
    path = pathlib.Path(__file__).resolve().parent / "check-deploy.py"
    spec = importlib.util.spec_from_file_location("check_deploy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(root, path):
    result = subprocess.run(["kubectl", "kustomize", str(root / path)], capture_output=True, text=True)
    if result.returncode != 0:
        return None, result.stderr.strip()
    return [d for d in yaml.safe_load_all(result.stdout) if d], result.stdout


def validate(docs, where, schemas, problems):
    for doc in docs:
        name = f"{where}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key in SCHEMAS:
            errors = sorted(schemas[key].iter_errors(doc), key=lambda e: list(e.path))
            for error in errors:
                path = "/".join(str(p) for p in error.path)
                problems.append(f"{name}: {path}: {error.message}")
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{name}: no schema for {key[0]} {key[1]} (add one to k8s/schemas/)")
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            problems.append(f"{name}: {path}: {e.message}")


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def probe_path(probe):
    get = (probe or {}).get("httpGet") or {}
    return get.get("path"), get.get("port")


def workload_problems(overlay, docs, known_env, library_env):
    problems = []
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    accounts = by_kind(docs, "ServiceAccount")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    configmaps = by_kind(docs, "ConfigMap")
    external = {d["spec"]["target"]["name"]: d for d in docs if d.get("kind") == "ExternalSecret"}
    where = f"overlay {overlay}"
    if set(deployments) != WORKLOADS[overlay]:
        problems.append(f"{where}: runs {sorted(deployments)}, should run {sorted(WORKLOADS[overlay])}")
    for name, deployment in deployments.items():
        at = f"{where}: Deployment {name}"
        pod = deployment["spec"]["template"]
        spec = pod["spec"]
        labels = pod["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/name") != name or labels.get("app.kubernetes.io/part-of") != "ecom":
            problems.append(f"{at}: pods must be labelled app.kubernetes.io/name={name} and part-of=ecom (the PodMonitor selects them)")
        containers = spec.get("containers", [])
        if len(containers) != 1:
            problems.append(f"{at}: one container expected, found {len(containers)}")
            continue
        container = containers[0]
        if container.get("args", [None])[0] != name:
            problems.append(f"{at}: runs `ecom {' '.join(container.get('args', []))}`, not `ecom {name}`")
        ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        listen = (env.get("ECOM_ADDR") or "").rsplit(":", 1)[-1]
        if "http" not in ports or str(ports["http"]) != listen:
            problems.append(f"{at}: the port named http ({ports.get('http')}) is not the one ECOM_ADDR listens on ({listen or 'unset'})")
        service = services.get(name)
        if not service or service["spec"].get("selector", {}).get("app.kubernetes.io/name") != name \
                or not any(p.get("targetPort") == "http" for p in service["spec"].get("ports", [])):
            problems.append(f"{at}: no Service {name} sending to its http port")
        if spec.get("serviceAccountName") != name or name not in accounts:
            problems.append(f"{at}: its ServiceAccount must be {name}, and exist")
        if not any(p["spec"].get("selector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == name
                   for p in pdbs.values()):
            problems.append(f"{at}: no PodDisruptionBudget selects it")
        if probe_path(container.get("readinessProbe")) != ("/readyz", "http"):
            problems.append(f"{at}: readiness must be GET /readyz on port http")
        if probe_path(container.get("livenessProbe")) != ("/healthz", "http"):
            problems.append(f"{at}: liveness must be GET /healthz on port http")
        resources = container.get("resources", {})
        for side in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(side, {}):
                    problems.append(f"{at}: no {resource} {side}")
        pod_security = spec.get("securityContext", {})
        security = container.get("securityContext", {})
        if not (pod_security.get("runAsNonRoot") or security.get("runAsNonRoot")):
            problems.append(f"{at}: may run as root (runAsNonRoot)")
        seccomp = (security.get("seccompProfile") or pod_security.get("seccompProfile") or {}).get("type")
        if seccomp != "RuntimeDefault":
            problems.append(f"{at}: seccomp profile is {seccomp}, not RuntimeDefault")
        if security.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: allowPrivilegeEscalation must be false")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: the root filesystem must be read-only")
        if security.get("privileged"):
            problems.append(f"{at}: privileged")
        if security.get("capabilities", {}).get("drop") != ["ALL"] or security.get("capabilities", {}).get("add"):
            problems.append(f"{at}: must drop ALL capabilities and add none")
        # Every variable the pod is given must be one the code reads.
        given = dict.fromkeys(env, "env")
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                ref = source["configMapRef"]["name"]
                if ref not in configmaps:
                    if not source["configMapRef"].get("optional"):
                        problems.append(f"{at}: ConfigMap {ref} does not exist")
                    continue
                given.update(dict.fromkeys(configmaps[ref].get("data", {}), f"ConfigMap {ref}"))
            if "secretRef" in source:
                ref = source["secretRef"]["name"]
                if ref not in external:
                    problems.append(f"{at}: Secret {ref} comes from no ExternalSecret")
                    continue
                keys = [d["secretKey"] for d in external[ref]["spec"].get("data", [])]
                given.update(dict.fromkeys(keys, f"Secret {ref}"))
        for variable, origin in sorted(given.items()):
            if variable not in known_env and not library_env.match(variable):
                problems.append(f"{at}: is given {variable} ({origin}), which nothing reads")
        if name in AUTOSCALED:
            if "replicas" in deployment["spec"]:
                problems.append(f"{at}: sets replicas, which its HorizontalPodAutoscaler owns (each sync would reset it)")
        elif deployment["spec"].get("replicas", 1) < 2:
            problems.append(f"{at}: one replica: a node's loss or a drain stops the service")
    # Autoscaling: seed 002 §7.
    expected = AUTOSCALED & WORKLOADS[overlay]
    if set(hpas) != expected:
        problems.append(f"{where}: HorizontalPodAutoscalers on {sorted(hpas)}, should be on {sorted(expected)}")
    for name, hpa in hpas.items():
        at = f"{where}: HorizontalPodAutoscaler {name}"
        spec = hpa["spec"]
        if spec.get("scaleTargetRef", {}).get("name") not in deployments:
            problems.append(f"{at}: scales {spec.get('scaleTargetRef', {}).get('name')}, which is not a Deployment here")
        if (spec.get("minReplicas"), spec.get("maxReplicas")) != (2, 10):
            problems.append(f"{at}: {spec.get('minReplicas')} to {spec.get('maxReplicas')} replicas, the seed says 2 to 10")
        targets = {m["resource"]["name"]: m["resource"]["target"].get("averageUtilization")
                   for m in spec.get("metrics", []) if m.get("type") == "Resource"}
        if targets != {"cpu": 60, "memory": 70}:
            problems.append(f"{at}: targets {targets}, the seed says cpu 60 and memory 70")
        window = spec.get("behavior", {}).get("scaleDown", {}).get("stabilizationWindowSeconds")
        if not window or window < 60:
            problems.append(f"{at}: scale-down stabilisation window {window}, should be at least 60 s")
    # Network: closed by default, open from outside to the gateway alone.
    policies = by_kind(docs, "NetworkPolicy")
    if not any(p["spec"].get("podSelector") == {} and p["spec"].get("policyTypes") == ["Ingress"]
               and not p["spec"].get("ingress") for p in policies.values()):
        problems.append(f"{where}: no NetworkPolicy denies ingress to every pod by default")
    for name, policy in policies.items():
        selected = policy["spec"].get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
        for rule in policy["spec"].get("ingress", []):
            peers = rule.get("from")
            outside = not peers or any("ipBlock" in p for p in peers) or \
                any("namespaceSelector" in p and p["namespaceSelector"] in ({}, None) for p in peers)
            if outside and selected != "gateway":
                problems.append(f"{where}: NetworkPolicy {name} admits traffic from outside to pods other than the gateway")
    for name, ingress in by_kind(docs, "Ingress").items():
        backends = {p["backend"]["service"]["name"] for r in ingress["spec"].get("rules", [])
                    for p in r.get("http", {}).get("paths", [])}
        if backends != {"gateway"}:
            problems.append(f"{where}: Ingress {name} routes to {sorted(backends)}, only the gateway may be reachable")
    if overlay == "aws" and len(by_kind(docs, "Ingress")) != 1:
        problems.append(f"{where}: one Ingress (the gateway's) expected")
    # Identities.
    for name, account in accounts.items():
        annotations = account["metadata"].get("annotations", {})
        role = annotations.get("eks.amazonaws.com/role-arn")
        if overlay == "aws" and (name in IRSA) != bool(role):
            problems.append(f"{where}: ServiceAccount {name} {'needs' if name in IRSA else 'must not have'} an IRSA role")
        if role and not re.fullmatch(rf"arn:aws:iam::\d{{12}}:role/ecom-[a-z]+-{name}", role):
            problems.append(f"{where}: ServiceAccount {name}'s role {role} is not ecom-<env>-{name}")
        if overlay == "gcp" and not re.fullmatch(r"ecom-stream-engine@[a-z0-9-]+\.iam\.gserviceaccount\.com",
                                                 annotations.get("iam.gke.io/gcp-service-account", "")):
            problems.append(f"{where}: ServiceAccount {name} has no Workload Identity account")
    return problems


def values_problems(root, overlay):
    """values.env, the replacements that read it and the Terraform output that writes it agree."""
    problems = []
    where = f"k8s/overlays/{overlay}"
    env = root / where / "values.env"
    keys = {line.split("=", 1)[0] for line in env.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")}
    kustomization = yaml.safe_load((root / where / "kustomization.yaml").read_text())
    read = {r["source"]["fieldPath"].removeprefix("data.") for r in kustomization.get("replacements", [])
            if r["source"].get("name") == "values"}
    if keys != read:
        problems.append(f"{where}/values.env: keys {sorted(keys - read)} are read by no replacement, "
                        f"replacements read {sorted(read - keys)} it lacks")
    # One root module per tree (terraform-<cloud>/outputs.tf) serves every environment.
    environments = sorted((root / f"terraform-{overlay}").glob("outputs.tf"))
    if not environments:
        problems.append(f"{where}: no terraform-{overlay}/outputs.tf writes its values.env")
    for outputs in environments:
        text = outputs.read_text()
        match = re.search(r'output "kubernetes_values" \{.*?<<-EOT\n(.*?)\n\s*EOT', text, re.S)
        if not match:
            problems.append(f"{outputs.relative_to(root)}: no kubernetes_values output (the overlay's values.env)")
            continue
        written = set(re.findall(r"^\s*([A-Z][A-Z0-9_]*)=", match.group(1), re.M))
        if written != keys:
            problems.append(f"{outputs.relative_to(root)}: kubernetes_values writes {sorted(written)}, "
                            f"{where}/values.env has {sorted(keys)}")
    return problems


def argocd_problems(root, docs):
    problems = []
    apps = [d for d in docs if d.get("kind") == "Application"]
    projects = by_kind(docs, "AppProject")
    if not apps:
        return ["k8s/argocd: no Application"]
    git = set()
    for app in apps:
        at = f"Application {app['metadata']['name']}"
        spec = app["spec"]
        automated = spec.get("syncPolicy", {}).get("automated") or {}
        if not (automated.get("prune") and automated.get("selfHeal")):
            problems.append(f"{at}: must sync automatically with prune and selfHeal")
        sources = spec.get("sources") or [spec.get("source")]
        refs = {}
        for source in sources:
            if "chart" in source:
                continue
            git.add((source["repoURL"], source["targetRevision"]))
            if "ref" in source:
                refs[source["ref"]] = source
            elif not (root / source.get("path", "")).is_dir() or not source.get("path"):
                problems.append(f"{at}: source.path {source.get('path')} is not a directory of the repository")
        for source in sources:
            for values in source.get("helm", {}).get("valueFiles", []):
                if values.startswith("$"):
                    ref, _, path = values[1:].partition("/")
                    if ref not in refs or not (root / path).is_file():
                        problems.append(f"{at}: value file {values} does not exist in the repository")
        project = spec["project"]
        if project != "default":
            allowed = projects.get(project, {}).get("spec", {})
            if not allowed:
                problems.append(f"{at}: project {project} is not defined")
                continue
            destination = spec["destination"]
            if not any(d.get("namespace") == destination.get("namespace") and
                       (d.get("server"), d.get("name")) == (destination.get("server"), destination.get("name"))
                       for d in allowed.get("destinations", [])):
                problems.append(f"{at}: its destination {destination} is not one project {project} allows")
            for source in sources:
                if source["repoURL"] not in allowed.get("sourceRepos", []):
                    problems.append(f"{at}: project {project} does not allow {source['repoURL']}")
    if len(git) > 1:
        problems.append(f"k8s/argocd: the Applications name several repositories or revisions: {sorted(git)}")
    # Terraform's Argo CD module creates the root Application from its own variables.
    for tfvars in sorted((root / "terraform-aws" / "environments").glob("*/terraform.tfvars")):
        text = tfvars.read_text()
        url = re.search(r'^gitops_repository_url\s*=\s*"([^"]+)"', text, re.M)
        revision = re.search(r'^gitops_target_revision\s*=\s*"([^"]+)"', text, re.M)
        if not url or not revision or {(url.group(1), revision.group(1))} != git:
            problems.append(f"{tfvars.relative_to(root)}: the root Application's repository and revision "
                            f"({url and url.group(1)}, {revision and revision.group(1)}) are not the "
                            f"Applications' {sorted(git)}")
    return problems


def main():
    args = sys.argv[1:]
    out = None
    if "--out" in args:
        i = args.index("--out")
        out = pathlib.Path(args[i + 1])
        del args[i:i + 2]
    root = pathlib.Path(args[0] if args else pathlib.Path(__file__).resolve().parent.parent).resolve()
    code = pathlib.Path(__file__).resolve().parent.parent
    check_deploy = load_check_deploy()
    known_env = check_deploy.flags_env(code)
    schemas = {}
    for key, file in SCHEMAS.items():
        schema = yaml.safe_load((root / "k8s/schemas" / file).read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        schemas[key] = jsonschema.Draft202012Validator(schema)
    problems = []
    counts = {}
    for name, path in RENDERED.items():
        docs, text = render(root, path)
        if docs is None:
            problems.append(f"{path}: kubectl kustomize fails: {text}")
            continue
        counts[name] = len(docs)
        if out:
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{name}.yaml").write_text(text)
        validate(docs, path, schemas, problems)
        if name in WORKLOADS:
            problems += workload_problems(name, docs, known_env, check_deploy.LIBRARY_ENV)
            problems += values_problems(root, name)
    argocd = []
    for file in sorted((root / "k8s/argocd").rglob("*.yaml")):
        if "values" in file.relative_to(root / "k8s/argocd").parts:
            continue
        argocd += [d for d in yaml.safe_load_all(file.read_text()) if d]
    validate(argocd, "k8s/argocd", schemas, problems)
    problems += argocd_problems(root, argocd)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        sys.exit(1)
    rendered = ", ".join(f"{n} {c}" for n, c in counts.items())
    print(f"Kubernetes: rendered {rendered} resources, all valid (Kubernetes {KUBERNETES} and k8s/schemas); "
          f"{len(argocd)} Argo CD resources; the platform's rules hold")


if __name__ == "__main__":
    main()
