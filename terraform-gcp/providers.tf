provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = {
    project     = "ecom"
    environment = var.environment
    managed-by  = "terraform"
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project     = "ecom"
      Environment = var.environment
      ManagedBy   = "terraform-gcp"
    }
  }
}
