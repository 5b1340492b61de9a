# Applied once per account with local state (no backend block): it makes the bucket and the
# lock table every environment's S3 backend then uses. Keep its terraform.tfstate safe.
terraform {
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.82"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project   = "ecom"
      ManagedBy = "terraform"
      Component = "terraform-state"
    }
  }
}
