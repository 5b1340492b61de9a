# State in the bucket and lock table made by ../../bootstrap (applied once with local state).
# Backend blocks take no variables: another account's names go in with -backend-config.
terraform {
  backend "s3" {
    bucket         = "ecom-terraform-state"
    key            = "ecom/prod/aws.tfstate"
    region         = "eu-west-1"
    dynamodb_table = "ecom-terraform-locks"
    encrypt        = true
    kms_key_id     = "alias/ecom-terraform-state"
  }
}
