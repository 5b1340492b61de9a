provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "ecom"
      Environment = var.environment
      ManagedBy   = "terraform"
      Repository  = var.gitops_repository_url
    }
  }
}

# Both authenticate with a fresh token from `aws eks get-token` at each run (no long-lived
# kubeconfig credentials); the caller needs the AWS CLI and access to the cluster.
provider "helm" {
  kubernetes {
    host                   = module.eks.cluster_endpoint
    cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)

    exec {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
    }
  }
}

provider "kubernetes" {
  host                   = module.eks.cluster_endpoint
  cluster_ca_certificate = base64decode(module.eks.cluster_certificate_authority_data)

  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", module.eks.cluster_name, "--region", var.region]
  }
}
