# The same S3 state bucket and DynamoDB lock table as terraform-aws/: one lock table serves
# both trees, and this tree reads the AWS tree's state from the same bucket (made by
# terraform-aws/bootstrap).
terraform {
  backend "s3" {
    bucket         = "ecom-terraform-state"
    key            = "ecom/dev/gcp.tfstate"
    region         = "eu-west-1"
    dynamodb_table = "ecom-terraform-locks"
    encrypt        = true
    kms_key_id     = "alias/ecom-terraform-state"
  }
}
