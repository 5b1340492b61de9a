#!/usr/bin/env python3
"""Structural check of the Terraform trees terraform-aws/ and terraform-gcp/ (no terraform binary
or provider registry is reachable here, so this reads the .tf files with python-hcl2).

    target/servers/hcl2/bin/python scripts/check-terraform.py [ROOT] [--tree terraform-gcp]...

ROOT defaults to the repository root; --tree limits the check to the named trees (default both).
Each tree has ONE root module, the tree's directory itself (terraform-aws/, terraform-gcp/, next
to modules/), and per environment only environments/<env>/backend.hcl (partial backend
configuration, `terraform init -reconfigure -backend-config=environments/<env>/backend.hcl`) and
environments/<env>/terraform.tfvars (`-var-file=environments/<env>/terraform.tfvars`).
Rules (each one was made to fail on a broken copy of the trees):
  modules     every `module` block has a local source (./ or ../) naming a directory with .tf
              files; it passes only variables that module declares and every variable of it
              without a default;
  references  in every directory, each `var.x` is a declared variable, each `local.x` a defined
              local, each `module.m.o` a module block of that directory whose module declares
              output `o`, each `data.t.n` and `<provider>_<type>.n` a block declared there;
  layout      the root module is the tree's directory; environments/ has dev and prod, each
              holding backend.hcl and terraform.tfvars and no .tf or .tf.json file (the copies of
              the root module cannot come back); the root holds no terraform.tfvars or
              *.auto.tfvars (terraform would load it into every environment);
  tfvars      each environment's terraform.tfvars sets only variables the root declares and every
              one without a default, sets `environment` to its directory's name, and the
              environments of a tree set the same variables (parity: the root is shared, so this
              is what can drift);
  required    the resources the design requires (REQUIRED below), reachable from the root through
              its module calls, with the attributes named there, their variables resolved with
              each environment's terraform.tfvars;
  backend     the root has exactly one backend, an empty `backend "s3" {}`; each backend.hcl sets
              only literal values of arguments the s3 backend has, key ecom/<env>/<aws|gcp>.tfstate,
              bucket, region, dynamodb_table and encrypt = true, and all environments of both
              trees share one bucket, region and lock table;
  remote      each `data "terraform_remote_state"` of a root reads, per environment, the bucket
              and region of that environment's backend.hcl and the key the other tree's same
              environment writes; each `data.terraform_remote_state.x.outputs.o` is an output
              of the root it reads (when both trees are checked);
  paths       files the root reads by a path relative to where terraform runs (PATHS below)
              resolve, per environment, to the file the build makes.
Exits 1 printing one `file: problem` line per problem, else prints a summary.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field

import hcl2

TREES = ("terraform-aws", "terraform-gcp")
MODULE_META = {"source", "version", "count", "for_each", "providers", "depends_on"}
PROVIDER_PREFIXES = (
    "aws|google|google-beta|helm|kubernetes|kubectl|random|tls|null|archive|time|local|"
    "cloudinit|external|http"
)

ANY = object()  # the attribute must be present, any value
TRUE, FALSE = True, False

# Per tree: (resource type, minimum count, conditions, mode). Conditions are (path, expected):
# a dotted path into the resource body (nested blocks and dynamic blocks are searched) and the
# literal value it must have (ANY: present). Mode "each": every resource of that type must meet
# the conditions; "some": at least `minimum` of them must.
REQUIRED = {
    "terraform-aws": [
        ("aws_vpc", 1, [], "some"),
        ("aws_flow_log", 1, [], "some"),
        ("aws_eks_cluster", 1, [], "some"),
        ("aws_eks_node_group", 1, [], "some"),
        # NetworkPolicies are enforced only by the VPC CNI add-on with its policy agent on.
        ("aws_eks_addon", 1, [("addon_name", "vpc-cni")], "some"),
        ("aws_iam_openid_connect_provider", 1, [], "some"),
        (
            "aws_db_instance",
            1,
            [("multi_az", TRUE), ("storage_encrypted", TRUE), ("publicly_accessible", FALSE)],
            "each",
        ),
        ("aws_msk_cluster", 1, [], "some"),
        ("aws_dynamodb_table", 2, [("point_in_time_recovery.enabled", TRUE)], "some"),
        ("aws_s3_bucket", 1, [], "some"),
        ("aws_s3_bucket_public_access_block", 1, [], "some"),
        ("aws_s3_bucket_versioning", 1, [], "some"),
        ("aws_s3_bucket_notification", 1, [], "some"),
        ("aws_lambda_function", 1, [("dead_letter_config", ANY)], "some"),
        ("aws_sqs_queue", 1, [], "some"),
        ("aws_ecr_repository", 1, [], "some"),
        ("aws_kms_key", 1, [], "some"),
        ("aws_secretsmanager_secret", 1, [], "some"),
        ("helm_release", 1, [("chart", "argo-cd")], "some"),
    ],
    "terraform-gcp": [
        (
            "google_container_cluster",
            1,
            [
                ("private_cluster_config.enable_private_nodes", TRUE),
                ("workload_identity_config.workload_pool", ANY),
            ],
            "some",
        ),
        ("google_container_node_pool", 1, [], "some"),
        ("google_compute_network", 1, [], "some"),
        ("google_compute_subnetwork", 1, [], "some"),
        ("google_compute_router_nat", 1, [], "some"),
        ("google_service_account", 1, [], "some"),
        (
            "google_service_account_iam_member",
            1,
            [("role", "roles/iam.workloadIdentityUser")],
            "some",
        ),
        ("aws_iam_openid_connect_provider", 1, [], "some"),
        ("aws_iam_role", 1, [], "some"),
    ],
}

# IAM roles of the contract: an aws_iam_role named `...-<workload>` reachable from each
# environment (a role with a computed name counts when the workload's name appears as a value
# or key there, e.g. in its for_each map or the module's arguments).
REQUIRED_ROLES = {
    "terraform-aws": [
        "ingest", "orders", "catalog", "inventory", "payments", "analytics", "external-secrets",
        "aws-load-balancer-controller",
    ],
    "terraform-gcp": ["stream-engine"],
}

STATE_KEY = {"terraform-aws": "aws", "terraform-gcp": "gcp"}

# The environments every tree must have, and what an environment directory holds.
ENVIRONMENTS = ("dev", "prod")
BACKEND_FILE, TFVARS_FILE = "backend.hcl", "terraform.tfvars"

# Arguments of Terraform's s3 backend (internal/backend/remote-state/s3/backend.go, ConfigSchema),
# and those every environment's backend.hcl must set.
S3_BACKEND_ARGS = {
    "bucket", "key", "region", "allowed_account_ids", "dynamodb_endpoint",
    "ec2_metadata_service_endpoint", "ec2_metadata_service_endpoint_mode", "endpoint", "endpoints",
    "forbidden_account_ids", "iam_endpoint", "sts_endpoint", "sts_region", "encrypt", "acl",
    "access_key", "secret_key", "kms_key_id", "dynamodb_table", "profile", "retry_mode",
    "shared_config_files", "shared_credentials_file", "shared_credentials_files", "token",
    "skip_credentials_validation", "skip_requesting_account_id", "skip_metadata_api_check",
    "skip_region_validation", "skip_s3_checksum", "sse_customer_key", "workspace_key_prefix",
    "force_path_style", "use_path_style", "max_retries", "assume_role",
    "assume_role_with_web_identity", "custom_ca_bundle", "http_proxy", "https_proxy", "no_proxy",
    "insecure", "use_fips_endpoint", "use_dualstack_endpoint", "use_lockfile",
}
S3_BACKEND_REQUIRED = ("bucket", "key", "region", "dynamodb_table", "encrypt")

# Per tree: root variables holding a path relative to the directory terraform runs in (the
# tree's root), and the file of the repository they must name.
PATHS = {
    "terraform-aws": [("lambda_package_path", "target/lambda/lambda-import/bootstrap.zip")],
}


# --- reading python-hcl2 output (bc-python-hcl2 wraps attribute values in one-element lists,
# --- python-hcl2 8.x does not; both are accepted) -------------------------------------------


def normalize(value):
    """One shape for both parsers: python-hcl2 8.x keeps the quotes of string literals and
    block labels and adds `__is_block__`; bc-python-hcl2 (installed over it by checkov) does
    not. Quotes are dropped and `__...__` metadata keys removed."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            return value[1:-1].replace('\\"', '"')
        return value
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {normalize(k): normalize(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("__"))}
    return value


def unwrap(value):
    while isinstance(value, list) and len(value) == 1 and not isinstance(value[0], dict):
        value = value[0]
    return value


def literal(value):
    """The literal value of an attribute: bools, numbers, plain strings (None if unknown)."""
    value = unwrap(value)
    if isinstance(value, str):
        text = value
        if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
            text = text[1:-1]
        if text in ("true", "${true}"):
            return True
        if text in ("false", "${false}"):
            return False
        return text
    return value


def blocks(body, name):
    """The nested blocks `name` of a body, plain and from `dynamic "name" { content {...} }`."""
    found = []
    if not isinstance(body, dict):
        return found
    value = body.get(name)
    if isinstance(value, list):
        found.extend(v for v in value if isinstance(v, dict))
    elif isinstance(value, dict):
        found.append(value)
    for dyn in body.get("dynamic", []) or []:
        if isinstance(dyn, dict) and isinstance(dyn.get(name), dict):
            for content in dyn[name].get("content", []) or []:
                if isinstance(content, dict):
                    found.append(content)
    return found


def lookup(body, path):
    """Values at a dotted path (last element an attribute or a block)."""
    parts = path.split(".")
    current = [body]
    for part in parts[:-1]:
        current = [b for c in current for b in blocks(c, part)]
    last = parts[-1]
    values = []
    for c in current:
        if not isinstance(c, dict):
            continue
        if last in c:
            values.append(c[last])
        elif blocks(c, last):
            values.append(blocks(c, last))
    return values


def strings(value):
    """Every string inside a value, keys of objects included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and k.startswith("__"):
                continue
            yield k
            yield from strings(v)


# --- references -----------------------------------------------------------------------------

IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
RE_VAR = re.compile(rf"(?<![\w.$-])var\.({IDENT})")
RE_LOCAL = re.compile(rf"(?<![\w.$-])local\.({IDENT})")
RE_MODULE = re.compile(rf"(?<![\w.$-])module\.({IDENT})(?:\[[^\]]*\])?(?:\.({IDENT}))?")
RE_DATA = re.compile(rf"(?<![\w.$-])data\.({IDENT})\.({IDENT})")
RE_RESOURCE = re.compile(rf"(?<![\w.$/:-])((?:{PROVIDER_PREFIXES})_[a-z0-9_]+)\.({IDENT})")
RE_QUOTED = re.compile(r"'([^'$]*)'|\"([^\"$]*)\"")
RE_REMOTE = re.compile(rf"(?<![\w.$-])data\.terraform_remote_state\.({IDENT})(?:\[[^\]]*\])?\.outputs\.({IDENT})")


def expressions(text):
    """The parts of a string that are expressions: the string itself if it holds `${`."""
    return text if "${" in text else ""


@dataclass
class File:
    path: str
    rel: str
    doc: dict


@dataclass
class Dir:
    path: str
    rel: str
    files: list = field(default_factory=list)
    variables: dict = field(default_factory=dict)  # name -> (has_default, rel file, default)
    locals: dict = field(default_factory=dict)  # name -> value
    outputs: set = field(default_factory=set)
    modules: dict = field(default_factory=dict)  # name -> (body, rel file)
    resources: dict = field(default_factory=dict)  # (type, name) -> (body, rel file)
    data: set = field(default_factory=set)
    data_bodies: dict = field(default_factory=dict)  # (type, name) -> (body, rel file)
    backends: list = field(default_factory=list)  # (kind, body, rel file)
    tfvars: dict | None = None
    tfvars_rel: str | None = None


UNKNOWN = object()  # a value computed at apply time


@dataclass
class Instance:
    dir: Dir
    parent: "Instance | None"
    call: dict | None  # the module block's body that instantiates dir (None: the root module)
    tfvars: dict | None = None  # the root's values (an environment's terraform.tfvars)


@dataclass
class Env:
    """An environment of a tree: the shared root module, its tfvars and its backend settings."""

    name: str
    path: str
    rel: str
    root: Dir
    tfvars: dict | None = None
    tfvars_rel: str | None = None
    backend: dict | None = None
    backend_rel: str | None = None


class Checker:
    def __init__(self, root):
        self.root = root
        self.problems = []
        self.dirs = {}
        self.stats = {"directories": 0, "files": 0, "modules": 0, "references": 0, "required": 0, "environments": 0}

    def problem(self, rel, text):
        self.problems.append(f"{rel}: {text}")

    def rel(self, path):
        return os.path.relpath(path, self.root)

    # --- loading ---

    def load_dir(self, path):
        path = os.path.normpath(path)
        if path in self.dirs:
            return self.dirs[path]
        d = Dir(path=path, rel=self.rel(path))
        self.dirs[path] = d
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return d
        for name in names:
            full = os.path.join(path, name)
            if not os.path.isfile(full):
                continue
            if name.endswith(".tf"):
                doc = self.parse(full)
                if doc is not None:
                    d.files.append(File(full, self.rel(full), doc))
            elif name == "terraform.tfvars":
                doc = self.parse(full)
                if doc is not None:
                    d.tfvars = {k: v for k, v in doc.items() if not k.startswith("__")}
                    d.tfvars_rel = self.rel(full)
        for f in d.files:
            self.index(d, f)
        return d

    def parse(self, path):
        self.stats["files"] += 1
        try:
            with open(path, encoding="utf-8") as fh:
                doc = hcl2.load(fh)
        except Exception as e:  # noqa: BLE001 - any parser error is a problem to report
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self.problem(self.rel(path), f"does not parse: {first}")
            return None
        if not isinstance(doc, dict):
            self.problem(self.rel(path), "does not parse to a document")
            return None
        return normalize(doc)

    @staticmethod
    def named(doc, kind):
        """(name, body) of the blocks `kind "name" {}` of a document."""
        for entry in doc.get(kind, []) or []:
            if isinstance(entry, dict):
                for name, body in entry.items():
                    if not name.startswith("__"):
                        yield name, body if isinstance(body, dict) else {}

    def index(self, d, f):
        doc = f.doc
        for name, body in self.named(doc, "variable"):
            d.variables[name] = ("default" in body, f.rel, body.get("default"))
        for entry in doc.get("locals", []) or []:
            if isinstance(entry, dict):
                for name, value in entry.items():
                    if not name.startswith("__"):
                        d.locals[name] = value
        for name, _ in self.named(doc, "output"):
            d.outputs.add(name)
        for name, body in self.named(doc, "module"):
            if name in d.modules:
                self.problem(f.rel, f'module "{name}" declared twice')
            d.modules[name] = (body, f.rel)
        for kind, target in (("resource", d.resources), ("data", None)):
            for entry in doc.get(kind, []) or []:
                if not isinstance(entry, dict):
                    continue
                for rtype, named in entry.items():
                    if not isinstance(named, dict):
                        continue
                    for rname, body in named.items():
                        if rname.startswith("__"):
                            continue
                        if target is not None:
                            target[(rtype, rname)] = (body if isinstance(body, dict) else {}, f.rel)
                        else:
                            d.data.add((rtype, rname))
                            d.data_bodies[(rtype, rname)] = (body if isinstance(body, dict) else {}, f.rel)
        for terraform in doc.get("terraform", []) or []:
            if not isinstance(terraform, dict):
                continue
            for backend in terraform.get("backend", []) or []:
                if isinstance(backend, dict):
                    for kind, body in backend.items():
                        if not kind.startswith("__"):
                            d.backends.append((kind, body if isinstance(body, dict) else {}, f.rel))

    # --- rules ---

    def module_dir(self, d, name, body, rel):
        """The directory of a module call, or None (reported)."""
        source = literal(body.get("source"))
        if not isinstance(source, str) or not source:
            self.problem(rel, f'module "{name}": no source')
            return None
        if not (source.startswith("./") or source.startswith("../")):
            self.problem(rel, f'module "{name}": source "{source}" is not a local path')
            return None
        target = os.path.normpath(os.path.join(d.path, source))
        if not os.path.isdir(target):
            self.problem(rel, f'module "{name}": source "{source}" is not a directory')
            return None
        if not any(n.endswith(".tf") for n in os.listdir(target)):
            self.problem(rel, f'module "{name}": source "{source}" holds no .tf file')
            return None
        return self.load_dir(target)

    def check_modules(self, d):
        for name, (body, rel) in sorted(d.modules.items()):
            self.stats["modules"] += 1
            m = self.module_dir(d, name, body, rel)
            if m is None:
                continue
            passed = {k for k in body if not k.startswith("__") and k not in MODULE_META}
            for arg in sorted(passed - set(m.variables)):
                self.problem(rel, f'module "{name}": argument "{arg}" is not a variable of {m.rel}')
            for var, (has_default, *_) in sorted(m.variables.items()):
                if not has_default and var not in passed:
                    self.problem(rel, f'module "{name}": required variable "{var}" of {m.rel} is not passed')

    def check_references(self, d):
        for f in d.files:
            for text in strings(f.doc):
                expr = expressions(text)
                if not expr:
                    continue
                for m in RE_VAR.finditer(expr):
                    self.stats["references"] += 1
                    if m.group(1) not in d.variables:
                        self.problem(f.rel, f"var.{m.group(1)} is not a declared variable of {d.rel}")
                for m in RE_LOCAL.finditer(expr):
                    self.stats["references"] += 1
                    if m.group(1) not in d.locals:
                        self.problem(f.rel, f"local.{m.group(1)} is not defined in {d.rel}")
                for m in RE_MODULE.finditer(expr):
                    self.stats["references"] += 1
                    name, output = m.group(1), m.group(2)
                    if name not in d.modules:
                        self.problem(f.rel, f"module.{name} is not a module block of {d.rel}")
                        continue
                    if output is None:
                        continue
                    body, rel = d.modules[name]
                    source = literal(body.get("source"))
                    if not isinstance(source, str) or not source.startswith(("./", "../")):
                        continue  # reported by the module rule
                    target = os.path.normpath(os.path.join(d.path, source))
                    if not os.path.isdir(target):
                        continue  # reported by the module rule
                    md = self.load_dir(target)
                    if output not in md.outputs:
                        self.problem(f.rel, f"module.{name}.{output}: {md.rel} declares no output \"{output}\"")
                for m in RE_DATA.finditer(expr):
                    self.stats["references"] += 1
                    if (m.group(1), m.group(2)) not in d.data:
                        self.problem(f.rel, f"data.{m.group(1)}.{m.group(2)} is not declared in {d.rel}")
                for m in RE_RESOURCE.finditer(expr):
                    self.stats["references"] += 1
                    if (m.group(1), m.group(2)) not in d.resources:
                        self.problem(f.rel, f"{m.group(1)}.{m.group(2)} is not a resource of {d.rel}")
        if d.tfvars is not None:
            self.check_tfvars_vars(d, d.tfvars, d.tfvars_rel)

    def check_tfvars_vars(self, d, tfvars, rel):
        """A variable file sets only variables of d and every one of them without a default."""
        for name in sorted(set(tfvars) - set(d.variables)):
            self.problem(rel, f'"{name}" is not a declared variable of {d.rel}')
        for name, (has_default, *_) in sorted(d.variables.items()):
            if not has_default and name not in tfvars:
                self.problem(rel, f'variable "{name}" of {d.rel} has no default and is not set')

    def instances(self, d, parent=None, call=None, depth=0, tfvars=None):
        """The directory and the module directories it calls, transitively, each with its call
        (to resolve `var.x` through the module arguments); tfvars: the root's values."""
        found = [Instance(d, parent, call, tfvars)]
        if depth > 8:
            return found
        for _, (body, _) in sorted(d.modules.items()):
            source = literal(body.get("source"))
            if isinstance(source, str) and source.startswith(("./", "../")):
                target = os.path.normpath(os.path.join(d.path, source))
                if os.path.isdir(target):
                    found.extend(self.instances(self.load_dir(target), found[0], body, depth + 1))
        return found

    def resolve(self, inst, value, depth=0):
        """The literal value of an attribute, following `var.x` (module argument, tfvars or
        default) and `local.x`; UNKNOWN when it is computed."""
        value = literal(value)
        if depth > 10 or not isinstance(value, str):
            return value
        m = re.fullmatch(rf"\$\{{(var|local)\.({IDENT})\}}", value)
        if m is None:
            return self.substitute(inst, value, depth)
        kind, name = m.groups()
        d = inst.dir
        if kind == "local":
            return self.resolve(inst, d.locals[name], depth + 1) if name in d.locals else UNKNOWN
        if inst.call is not None and name in inst.call:
            return self.resolve(inst.parent, inst.call[name], depth + 1)
        if inst.call is None and inst.tfvars is not None and name in inst.tfvars:
            return literal(inst.tfvars[name])
        if name in d.variables and d.variables[name][0]:
            return self.resolve(inst, d.variables[name][2], depth + 1)
        return UNKNOWN

    def substitute(self, inst, text, depth):
        """A template with its simple `${var.x}` / `${local.x}` parts replaced when known."""

        def sub(m):
            value = self.resolve(inst, m.group(0), depth + 1)
            return value if isinstance(value, str) else m.group(0)

        return re.sub(rf"\$\{{(?:var|local)\.{IDENT}\}}", sub, text)

    def meets(self, inst, body, conditions):
        failed = []
        for path, expected in conditions:
            values = [self.resolve(inst, v) for v in lookup(body, path)]
            if expected is ANY:
                ok = bool(values)
            else:
                ok = bool(values) and all(v == expected for v in values)
            if not ok:
                shown = ["(computed)" if v is UNKNOWN else v for v in values] or "absent"
                want = "present" if expected is ANY else repr(expected)
                failed.append(f"{path} must be {want} (is {shown})")
        return failed

    def check_required(self, tree, env):
        insts = self.instances(env.root, tfvars=env.tfvars)
        resources = [(t, n, body, rel, inst) for inst in insts for (t, n), (body, rel) in inst.dir.resources.items()]
        for rtype, minimum, conditions, mode in REQUIRED.get(tree, []):
            self.stats["required"] += 1
            found = [(n, body, rel, inst) for t, n, body, rel, inst in resources if t == rtype]
            good, reasons = [], set()
            for name, body, rel, inst in found:
                failed = self.meets(inst, body, conditions)
                reasons.update(failed)
                if failed and mode == "each":
                    for why in failed:
                        self.problem(rel, f"{rtype}.{name}: {why} (from {env.rel})")
                if not failed:
                    good.append(name)
            if mode == "each" and len(found) < minimum:
                self.problem(env.rel, f"requires at least {minimum} {rtype}, found {len(found)}")
            elif mode == "some" and len(good) < minimum:
                what = f"{rtype}" + (
                    " with " + ", ".join(f"{p} = {'(set)' if v is ANY else repr(v)}" for p, v in conditions)
                    if conditions
                    else ""
                )
                detail = ": " + "; ".join(sorted(reasons)) if reasons else ""
                self.problem(env.rel, f"requires at least {minimum} {what}, found {len(good)}{detail}")
        # the contract's IAM roles
        tokens = set()
        for inst in insts:
            for f in inst.dir.files:
                for text in strings(f.doc):
                    tokens.add(literal(text))
                    # string literals inside expressions (a for_each set, a map's keys)
                    for single, double in RE_QUOTED.findall(expressions(text)):
                        tokens.add(single or double)
            tokens.update(inst.dir.modules)
        role_names = [
            self.resolve(inst, body.get("name")) for t, _, body, _, inst in resources if t == "aws_iam_role"
        ]
        for workload in REQUIRED_ROLES.get(tree, []):
            self.stats["required"] += 1
            named = any(isinstance(n, str) and (n == workload or n.endswith("-" + workload)) for n in role_names)
            computed = any(n is UNKNOWN or (isinstance(n, str) and "${" in n) for n in role_names)
            if not named and not (computed and workload in tokens):
                self.problem(env.rel, f'no aws_iam_role named "ecom-${{env}}-{workload}" reachable from here')

    # --- layout, environments, backends ---

    def load_envs(self, tree, root):
        """The environments of a tree (environments/<env>/), each checked for its files."""
        envs = {}
        env_base = os.path.join(root.path, "environments")
        names = sorted(n for n in os.listdir(env_base) if os.path.isdir(os.path.join(env_base, n))) \
            if os.path.isdir(env_base) else []
        for name in ENVIRONMENTS:
            if name not in names:
                self.problem(f"{root.rel}/environments/{name}", "missing")
        for name in names:
            path = os.path.join(env_base, name)
            env = Env(name=name, path=path, rel=self.rel(path), root=root)
            envs[name] = env
            self.stats["environments"] += 1
            for entry in sorted(os.listdir(path)):
                if entry.endswith((".tf", ".tf.json")):
                    self.problem(
                        self.rel(os.path.join(path, entry)),
                        f"an environment holds no .tf file: the root module is {root.rel}/, "
                        f"an environment only {BACKEND_FILE} and {TFVARS_FILE}",
                    )
            for file, attr in ((TFVARS_FILE, "tfvars"), (BACKEND_FILE, "backend")):
                full = os.path.join(path, file)
                if not os.path.isfile(full):
                    self.problem(env.rel, f"no {file}")
                    continue
                doc = self.parse(full)
                if doc is not None:
                    setattr(env, attr, {k: v for k, v in doc.items() if not k.startswith("__")})
                    setattr(env, attr + "_rel", self.rel(full))
        return envs

    def check_root_files(self, root):
        """A root's terraform.tfvars or *.auto.tfvars would be loaded into every environment."""
        for name in sorted(os.listdir(root.path)):
            if name == TFVARS_FILE or name.endswith((".auto.tfvars", ".auto.tfvars.json")):
                self.problem(
                    self.rel(os.path.join(root.path, name)),
                    "terraform loads it into every environment: values go in environments/<env>/terraform.tfvars",
                )

    def check_env_tfvars(self, env):
        if env.tfvars is None:
            return
        self.check_tfvars_vars(env.root, env.tfvars, env.tfvars_rel)
        value = literal(env.tfvars.get("environment"))
        if "environment" in env.root.variables and value != env.name:
            self.problem(env.tfvars_rel, f'environment is {value!r}, want {env.name!r} (its directory)')

    def check_tfvars_parity(self, envs):
        names = sorted(n for n, e in envs.items() if e.tfvars is not None)
        for other in names[1:]:
            a, b = set(envs[names[0]].tfvars), set(envs[other].tfvars)
            for name in sorted(a - b):
                self.problem(envs[other].tfvars_rel, f'"{name}" is set in {envs[names[0]].tfvars_rel}, not here')
            for name in sorted(b - a):
                self.problem(envs[other].tfvars_rel, f'"{name}" is set here, not in {envs[names[0]].tfvars_rel}')

    def check_root_backend(self, root):
        """The root has one backend, `backend "s3" {}`, empty: the settings are per environment."""
        if len(root.backends) != 1 or root.backends[0][0] != "s3":
            kinds = [kind for kind, _, _ in root.backends]
            self.problem(root.rel, f'want exactly one backend "s3" {{}} (found {kinds or "none"})')
        for kind, body, rel in root.backends:
            set_here = sorted(k for k in body if not k.startswith("__"))
            if set_here:
                self.problem(
                    rel,
                    f'backend "{kind}" sets {set_here}: the root\'s block stays empty, every setting is '
                    f"in environments/<env>/{BACKEND_FILE}",
                )

    def check_backend(self, tree, env, shared):
        body, rel = env.backend, env.backend_rel
        if body is None:
            return
        for name, value in sorted(body.items()):
            if name not in S3_BACKEND_ARGS:
                self.problem(rel, f'"{name}" is not an argument of the s3 backend')
            if any("${" in text for text in strings(value)):
                self.problem(rel, f'"{name}": a backend configuration takes literal values only, no expression')
        for name in S3_BACKEND_REQUIRED:
            if name not in body:
                what = " (state lock)" if name == "dynamodb_table" else ""
                self.problem(rel, f'backend "s3": no {name}{what}')
        key = literal(body.get("key"))
        want = f"ecom/{env.name}/{STATE_KEY[tree]}.tfstate"
        if "key" in body and key != want:
            self.problem(rel, f'backend "s3": key is {key!r}, want {want!r}')
        if "encrypt" in body and literal(body.get("encrypt")) is not True:
            self.problem(rel, 'backend "s3": encrypt is not true')
        shared.append(
            (literal(body.get("bucket")), literal(body.get("dynamodb_table")), literal(body.get("region")), rel)
        )

    def check_remote_states(self, tree, root, envs, all_envs, trees):
        """Each terraform_remote_state reads, per environment, where the other tree writes."""
        writers = {}  # backend key -> (tree, env)
        read = set()  # (data source name, the root it reads)
        for t, (_, t_envs, _) in all_envs.items():
            for e in t_envs.values():
                if e.backend is not None:
                    writers[literal(e.backend.get("key"))] = (t, e)
        for (rtype, rname), (body, rel) in sorted(root.data_bodies.items()):
            if rtype != "terraform_remote_state":
                continue
            backend = literal(body.get("backend"))
            if backend != "s3":
                self.problem(rel, f"data.terraform_remote_state.{rname}: backend {backend!r}, want 's3' (the state bucket)")
                continue
            config = body.get("config")
            config = config[0] if isinstance(config, list) and config and isinstance(config[0], dict) else config
            if not isinstance(config, dict):
                self.problem(rel, f"data.terraform_remote_state.{rname}: no config")
                continue
            for env in envs.values():
                if env.backend is None or env.tfvars is None:
                    continue
                inst = Instance(root, None, None, env.tfvars)
                where = f"data.terraform_remote_state.{rname} (with {env.tfvars_rel})"
                for arg in ("bucket", "region"):
                    value = self.resolve(inst, config.get(arg))
                    mine = literal(env.backend.get(arg))
                    if value != mine:
                        shown = "(computed)" if value is UNKNOWN else repr(value)
                        self.problem(rel, f"{where}: {arg} is {shown}, the backend's is {mine!r} ({env.backend_rel})")
                key = self.resolve(inst, config.get("key"))
                if not isinstance(key, str) or "${" in key:
                    self.problem(rel, f"{where}: key {key if isinstance(key, str) else '(computed)'} is not known")
                    continue
                writer = writers.get(key)
                other = [t for t in trees if t != tree]
                if writer is None:
                    if other and all(t in all_envs for t in other):
                        self.problem(rel, f"{where}: key {key!r} is the state of no environment of {', '.join(other)}")
                    continue
                t, e = writer
                if t == tree or e.name != env.name:
                    self.problem(rel, f"{where}: key {key!r} is the state of {e.rel}, not of the other tree's {env.name}")
                    continue
                read.add((rname, e.root.path))
        for rname, path in sorted(read):
            self.check_remote_outputs(root, rname, self.dirs[path])

    def check_remote_outputs(self, root, rname, other_root):
        for f in root.files:
            for text in strings(f.doc):
                for m in RE_REMOTE.finditer(expressions(text)):
                    if m.group(1) != rname:
                        continue
                    self.stats["references"] += 1
                    if m.group(2) not in other_root.outputs:
                        self.problem(
                            f.rel,
                            f'{other_root.rel} declares no output "{m.group(2)}" (read as '
                            f"data.terraform_remote_state.{rname}.outputs.{m.group(2)})",
                        )

    def check_paths(self, tree, env):
        for var, want in PATHS.get(tree, []):
            if var not in env.root.variables:
                self.problem(env.root.rel, f'no variable "{var}" (the path of {want})')
                continue
            value = self.resolve(Instance(env.root, None, None, env.tfvars or {}), f"${{var.{var}}}")
            if not isinstance(value, str) or value is UNKNOWN:
                self.problem(env.tfvars_rel or env.rel, f'variable "{var}" is not a literal path')
                continue
            target = os.path.normpath(os.path.join(env.root.path, value))
            if target != os.path.normpath(os.path.join(self.root, want)):
                where = env.tfvars_rel if env.tfvars and var in env.tfvars else env.root.variables[var][1]
                self.problem(
                    f"{where} (for {env.rel})",
                    f'variable "{var}" is {value!r}: from {env.root.rel}/, where terraform runs, that is '
                    f"{self.rel(target)}, not {want}",
                )

    def run(self, trees):
        envs_by_tree = {}
        for tree in trees:
            base = os.path.join(self.root, tree)
            if not os.path.isdir(base):
                self.problem(tree, "missing")
                continue
            tf_dirs = []
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = sorted(n for n in dirnames if n != ".terraform" and not n.startswith("."))
                if dirpath == base:
                    # environments/ holds values, not modules (a .tf file there is refused below)
                    dirnames[:] = [n for n in dirnames if n != "environments"]
                if any(n.endswith(".tf") for n in filenames):
                    tf_dirs.append(dirpath)
            if not tf_dirs:
                self.problem(tree, "no .tf file")
                continue
            for path in tf_dirs:
                d = self.load_dir(path)
                self.stats["directories"] += 1
                try:
                    self.check_modules(d)
                    self.check_references(d)
                except Exception as e:  # noqa: BLE001 - report, never crash on a half-written tree
                    self.problem(d.rel, f"could not be analysed: {type(e).__name__}: {e}")
            root = self.load_dir(base)
            if not root.files:
                self.problem(tree, f"no root module: the root's .tf files are directly in {tree}/")
                continue
            self.check_root_files(root)
            self.check_root_backend(root)
            envs = self.load_envs(tree, root)
            shared = []
            for name, env in envs.items():
                try:
                    self.check_env_tfvars(env)
                    self.check_required(tree, env)
                    self.check_backend(tree, env, shared)
                    self.check_paths(tree, env)
                except Exception as e:  # noqa: BLE001
                    self.problem(env.rel, f"could not be analysed: {type(e).__name__}: {e}")
            self.check_tfvars_parity(envs)
            envs_by_tree[tree] = (root, envs, shared)
        # one state bucket and one lock table for every environment of every tree
        shared = [s for _, (_, _, sh) in envs_by_tree.items() for s in sh]
        for what, index in (("bucket", 0), ("dynamodb_table", 1), ("region", 2)):
            values = {s[index] for s in shared}
            if len(values) > 1:
                for s in shared:
                    self.problem(s[3], f'backend "s3": {what} {s[index]!r} is not shared by all environments ({sorted(map(str, values))})')
        for tree, (root, envs, _) in envs_by_tree.items():
            try:
                self.check_remote_states(tree, root, envs, envs_by_tree, trees)
            except Exception as e:  # noqa: BLE001
                self.problem(tree, f"remote states could not be analysed: {type(e).__name__}: {e}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", nargs="?", default=os.path.dirname(here))
    parser.add_argument("--tree", action="append", choices=TREES, help="check only this tree (repeatable)")
    args = parser.parse_args()
    trees = args.tree or list(TREES)
    checker = Checker(os.path.abspath(args.root))
    checker.run(trees)
    if checker.problems:
        for p in dict.fromkeys(checker.problems):
            print(p)
        sys.exit(1)
    s = checker.stats
    print(
        f"{', '.join(trees)}: {s['directories']} directories, {s['files']} files, "
        f"{s['modules']} module calls, {s['references']} references, "
        f"{s['required']} required resources checked over {s['environments']} environments; no problem"
    )


if __name__ == "__main__":
    main()
