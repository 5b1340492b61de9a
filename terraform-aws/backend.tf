# Partial backend configuration: one root module serves every environment, and a backend block
# takes no variables, so each environment's state settings (the bucket and lock table made by
# bootstrap/, the key ecom/<env>/aws.tfstate) are in environments/<env>/backend.hcl:
#   terraform init -reconfigure -backend-config=environments/<env>/backend.hcl
# Another account's names go in those files, nowhere else.
terraform {
  backend "s3" {}
}
