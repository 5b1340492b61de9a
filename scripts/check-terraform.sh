#!/usr/bin/env bash
# The Terraform trees (terraform-aws/, terraform-gcp/), checked without terraform: no terraform
# or OpenTofu binary and no provider registry is reachable here, so `terraform validate` cannot
# run (run by scripts/test.sh). Each tree is ONE root module (its .tf files directly in the
# tree, next to modules/), and each environment only environments/<env>/backend.hcl (partial
# backend configuration) and environments/<env>/terraform.tfvars:
# - every .tf, .tfvars and .hcl file parses with HashiCorp's HCL parser and is formatted as
#   `terraform fmt` leaves it (check-hcl.js: npm @cdktf/hcl2json and @cdktf/hcl-tools,
#   HashiCorp's Go libraries built to WebAssembly);
# - check-terraform.py (python-hcl2): every module call passes only declared variables and all
#   required ones, every module output, variable, local and block referenced exists, no
#   environment directory holds a .tf file, each environment's tfvars sets only the root's
#   variables and all required ones, the resources the design requires are there with the
#   attributes it requires (Multi-AZ, encryption, point-in-time recovery, private nodes...) in
#   each environment, each backend.hcl has the keys the s3 backend needs and the remote state is
#   shared, encrypted and locked, the remote-state reads find the other tree's state;
# - checkov on both trees, once per environment (-var-file its terraform.tfvars): no failed
#   check, and every skip says why in the resource;
# - each check failing on a deliberately broken copy.
set -euo pipefail
cd "$(dirname "$0")/.."

iac=target/servers/iac/bin
hcl2=target/servers/hcl2/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source scripts/must-fail.sh

# One run per tree and environment (one JSON report each), the root's variables set by that
# environment's terraform.tfvars as `terraform plan -var-file=...` would (without them checkov
# cannot resolve, e.g., the EKS endpoint's allowed ranges). The state bucket's root (bootstrap/)
# and a module's resources are counted in each run.
checkov_json() {
  local tree env
  : >"$2"
  for tree in terraform-aws terraform-gcp; do
    for env in "$1/$tree"/environments/*/; do
      "$iac/checkov" -d "$1/$tree" --framework terraform --compact --skip-download \
        --download-external-modules false --var-file "${env}terraform.tfvars" -o json \
        >>"$2" 2>>"$2.log" || true
    done
  done
}

node scripts/check-hcl.js terraform-aws terraform-gcp
"$hcl2" scripts/check-terraform.py
checkov_json . "$work/checkov.json"
"$iac/python" scripts/checkov-summary.py "$work/checkov.json" "terraform-aws and terraform-gcp (dev and prod)"

# Each check must be able to fail: a copy of the trees, broken one way at a time.
copy=$work/copy
fresh() {
  rm -rf "$copy"
  mkdir -p "$copy"
  cp -r terraform-aws terraform-gcp "$copy/"
}

fresh
printf 'resource "aws_sqs_queue" "broken" {\n  name = \n}\n' >>"$copy/terraform-aws/modules/lambda/main.tf"
printf 'locals {\n  a = 1\n  bb = 2\n}\n' >>"$copy/terraform-gcp/modules/gke/main.tf"
sed -i 's/^key            = /key = /' "$copy/terraform-aws/environments/prod/backend.hcl"
must_fail "a file that does not parse" "lambda/main.tf: does not parse" \
  node scripts/check-hcl.js "$copy/terraform-aws" "$copy/terraform-gcp"
must_fail "a file terraform fmt would change" "gke/main.tf:.*not formatted" \
  node scripts/check-hcl.js "$copy/terraform-gcp"
must_fail "a backend configuration terraform fmt would change" "prod/backend.hcl:.*not formatted" \
  node scripts/check-hcl.js "$copy/terraform-aws"

check() { "$hcl2" scripts/check-terraform.py "$copy"; }

fresh
sed -i '0,/^module "kms" {/s//module "kms" {\n  key_alias_suffix = "x"/' "$copy/terraform-aws/main.tf"
sed -i 's/module\.gke\.issuer_url/module.gke.oidc_issuer/' "$copy/terraform-gcp/main.tf"
sed -i 's/  multi_az               = true/  multi_az               = false/' "$copy/terraform-aws/modules/rds/main.tf"
sed -i 's/^encrypt        = true/encrypt        = false/' "$copy/terraform-aws/environments/prod/backend.hcl"
sed -i '/^dynamodb_table/d' "$copy/terraform-gcp/environments/dev/backend.hcl"
sed -i '/^public_host /d' "$copy/terraform-aws/environments/prod/terraform.tfvars"
echo 'node_count = 3' >>"$copy/terraform-gcp/environments/dev/terraform.tfvars"
sed -i 's/^environment = "prod"/environment = "dev"/' "$copy/terraform-gcp/environments/prod/terraform.tfvars"
must_fail "a module argument the module does not declare" 'argument "key_alias_suffix" is not a variable' check
must_fail "an output the module does not have" 'declares no output "oidc_issuer"' check
must_fail "a database in one zone" "multi_az must be" check
must_fail "an unencrypted remote state" "prod/backend.hcl: backend \"s3\": encrypt is not true" check
must_fail "a remote state without its lock table" "dev/backend.hcl: backend \"s3\": no dynamodb_table" check
must_fail "an environment that leaves a required variable unset" \
  'prod/terraform.tfvars: variable "public_host" of terraform-aws has no default and is not set' check
must_fail "an environment that sets a variable the root does not declare" \
  'dev/terraform.tfvars: "node_count" is not a declared variable of terraform-gcp' check
must_fail "a variable set in one environment only" \
  'aws/environments/prod/terraform.tfvars: "public_host" is set in terraform-aws/environments/dev/terraform.tfvars, not here' check
must_fail "an environment named after another" "prod/terraform.tfvars: environment is 'dev', want 'prod'" check
must_fail "a remote state read from another environment" \
  "is the state of terraform-aws/environments/dev, not of the other tree's prod" check

fresh
cp "$copy/terraform-aws/main.tf" "$copy/terraform-aws/variables.tf" "$copy/terraform-aws/environments/prod/"
cp "$copy/terraform-gcp/environments/dev/terraform.tfvars" "$copy/terraform-gcp/terraform.tfvars"
rm "$copy/terraform-aws/environments/dev/backend.hcl"
echo 'dynamo_table = "ecom-terraform-locks"' >>"$copy/terraform-gcp/environments/prod/backend.hcl"
sed -i 's|^key            = "ecom/prod/gcp.tfstate"|key            = "ecom/dev/gcp.tfstate"|' \
  "$copy/terraform-gcp/environments/prod/backend.hcl"
sed -i 's|  backend "s3" {}|  backend "s3" {\n    key = "ecom/aws.tfstate"\n  }|' "$copy/terraform-aws/backend.tf"
sed -i 's|"\.\./target/lambda/|"../../../target/lambda/|' "$copy/terraform-aws/variables.tf"
sed -i '/^variable "state_bucket"/,/^}/s/default     = "ecom-terraform-state"/default     = "ecom-state"/' \
  "$copy/terraform-gcp/variables.tf"
must_fail "the root module's files copied into an environment again" \
  "environments/prod/main.tf: an environment holds no .tf file" check
must_fail "a terraform.tfvars in the root, loaded into every environment" \
  "terraform-gcp/terraform.tfvars: terraform loads it into every environment" check
must_fail "an environment without its backend configuration" "terraform-aws/environments/dev: no backend.hcl" check
must_fail "a backend configuration with an argument the s3 backend has not" \
  '"dynamo_table" is not an argument of the s3 backend' check
must_fail "an environment writing another environment's state" \
  "prod/backend.hcl: backend \"s3\": key is 'ecom/dev/gcp.tfstate', want 'ecom/prod/gcp.tfstate'" check
must_fail "settings in the root's backend block" "the root's block stays empty" check
must_fail "a Lambda zip path relative to the old environment directories" \
  'variable "lambda_package_path" is .*not target/lambda/lambda-import/bootstrap.zip' check
must_fail "a remote state read from another bucket than the backend's" \
  "data.terraform_remote_state.aws (with terraform-gcp/environments/dev/terraform.tfvars): bucket is 'ecom-state'" check

fresh
sed -i '0,/  block_public_acls       = true/s//  block_public_acls       = false/' "$copy/terraform-aws/modules/s3/main.tf"
# A skip whose reason was dropped.
sed -i 's/#checkov:skip=CKV_AWS_272:.*/#checkov:skip=CKV_AWS_272/' "$copy/terraform-aws/modules/lambda/main.tf"
checkov_json "$copy" "$work/broken.json"
must_fail "a bucket that lets public ACLs in" "CKV_AWS_53" \
  "$iac/python" scripts/checkov-summary.py "$work/broken.json" broken
must_fail "a skipped check without a reason" "without a reason" \
  "$iac/python" scripts/checkov-summary.py "$work/broken.json" broken
