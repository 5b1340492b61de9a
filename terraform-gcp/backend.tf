# Partial backend configuration: one root module serves every environment, and a backend block
# takes no variables, so each environment's state settings are in environments/<env>/backend.hcl:
#   terraform init -reconfigure -backend-config=environments/<env>/backend.hcl
# S3, not GCS: the same bucket and DynamoDB lock table as terraform-aws/ (made by
# terraform-aws/bootstrap), so one lock table serves both trees and this tree reads the AWS
# tree's state from the same bucket (README.md, "State").
terraform {
  backend "s3" {}
}
