# The prod environment's state (partial configuration of the root's backend "s3" {}), in the
# bucket and lock table made by terraform-aws/bootstrap. In terraform-gcp/:
#   terraform init -reconfigure -backend-config=environments/prod/backend.hcl
bucket         = "ecom-terraform-state"
key            = "ecom/prod/gcp.tfstate"
region         = "eu-west-1"
dynamodb_table = "ecom-terraform-locks"
encrypt        = true
kms_key_id     = "alias/ecom-terraform-state"
