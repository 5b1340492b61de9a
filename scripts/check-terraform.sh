#!/usr/bin/env bash
# The Terraform trees (terraform-aws/, terraform-gcp/), checked without terraform: no terraform
# or OpenTofu binary and no provider registry is reachable here, so `terraform validate` cannot
# run (run by scripts/test.sh):
# - every .tf file parses with HashiCorp's HCL parser and is formatted as `terraform fmt` leaves
#   it (check-hcl.js: npm @cdktf/hcl2json and @cdktf/hcl-tools, HashiCorp's Go libraries built
#   to WebAssembly);
# - check-terraform.py (python-hcl2): every module call passes only declared variables and all
#   required ones, every module output, variable, local and block referenced exists, the
#   resources the design requires are there with the attributes it requires (Multi-AZ,
#   encryption, point-in-time recovery, private nodes...), the remote state is shared and
#   locked, dev and prod have the same modules;
# - checkov on both trees: no failed check, and every skip says why in the resource;
# - each check failing on a deliberately broken copy.
set -euo pipefail
cd "$(dirname "$0")/.."

iac=target/servers/iac/bin
hcl2=target/servers/hcl2/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source scripts/must-fail.sh

# One run per tree (one JSON report each). A module's resources are counted once on their own
# and once per environment that calls the module.
checkov_json() {
  local tree
  : >"$2"
  for tree in terraform-aws terraform-gcp; do
    "$iac/checkov" -d "$1/$tree" --framework terraform --compact --skip-download \
      --download-external-modules false -o json >>"$2" 2>>"$2.log" || true
  done
}

node scripts/check-hcl.js terraform-aws terraform-gcp
"$hcl2" scripts/check-terraform.py
checkov_json . "$work/checkov.json"
"$iac/python" scripts/checkov-summary.py "$work/checkov.json" "terraform-aws and terraform-gcp"

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
must_fail "a file that does not parse" "lambda/main.tf: does not parse" \
  node scripts/check-hcl.js "$copy/terraform-aws" "$copy/terraform-gcp"
must_fail "a file terraform fmt would change" "gke/main.tf:.*not formatted" \
  node scripts/check-hcl.js "$copy/terraform-gcp"

fresh
sed -i '0,/^module "kms" {/s//module "kms" {\n  key_alias_suffix = "x"/' "$copy/terraform-aws/environments/prod/main.tf"
sed -i 's/module\.gke\.issuer_url/module.gke.oidc_issuer/' "$copy/terraform-gcp/environments/dev/main.tf"
sed -i 's/  multi_az               = true/  multi_az               = false/' "$copy/terraform-aws/modules/rds/main.tf"
sed -i 's/    encrypt        = true/    encrypt        = false/' "$copy/terraform-aws/environments/prod/backend.tf"
must_fail "a module argument the module does not declare" 'argument "key_alias_suffix" is not a variable' \
  "$hcl2" scripts/check-terraform.py "$copy"
must_fail "an output the module does not have" 'declares no output "oidc_issuer"' \
  "$hcl2" scripts/check-terraform.py "$copy"
must_fail "a database in one zone" "multi_az must be" "$hcl2" scripts/check-terraform.py "$copy"
must_fail "an unencrypted remote state" "encrypt" "$hcl2" scripts/check-terraform.py "$copy"

fresh
sed -i '0,/  block_public_acls       = true/s//  block_public_acls       = false/' "$copy/terraform-aws/modules/s3/main.tf"
# A skip whose reason was dropped.
sed -i 's/#checkov:skip=CKV_AWS_272:.*/#checkov:skip=CKV_AWS_272/' "$copy/terraform-aws/modules/lambda/main.tf"
checkov_json "$copy" "$work/broken.json"
must_fail "a bucket that lets public ACLs in" "CKV_AWS_53" \
  "$iac/python" scripts/checkov-summary.py "$work/broken.json" broken
must_fail "a skipped check without a reason" "without a reason" \
  "$iac/python" scripts/checkov-summary.py "$work/broken.json" broken
