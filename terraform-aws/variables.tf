variable "environment" {
  type        = string
  description = "Environment name: dev or prod."

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment is dev or prod."
  }
}

variable "region" {
  type        = string
  description = "AWS region of the environment."
}

variable "azs" {
  type        = list(string)
  description = "The three availability zones used."
}

variable "vpc_cidr" {
  type        = string
  description = "IPv4 CIDR block of the VPC."
}

variable "public_subnet_cidrs" {
  type        = list(string)
  description = "Public subnet CIDR blocks, one per zone."
}

variable "private_subnet_cidrs" {
  type        = list(string)
  description = "Private subnet CIDR blocks, one per zone."
}

variable "database_subnet_cidrs" {
  type        = list(string)
  description = "Database subnet CIDR blocks, one per zone."
}

variable "single_nat_gateway" {
  type        = bool
  description = "One NAT gateway for the three zones (dev) rather than one per zone (prod)."
}

variable "log_retention_days" {
  type        = number
  description = "Days every CloudWatch log group of the environment keeps its logs."
  default     = 365

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "Logs are kept for at least a year."
  }
}

variable "kubernetes_version" {
  type        = string
  description = "Kubernetes version of the EKS cluster."
}

variable "eks_public_access_cidrs" {
  type        = list(string)
  description = "CIDR blocks allowed to reach the EKS public API endpoint (operators, CI runners)."
}

variable "node_instance_types" {
  type        = list(string)
  description = "Instance types of the EKS managed node group."
}

variable "node_capacity_type" {
  type        = string
  description = "ON_DEMAND or SPOT nodes."
}

variable "node_min_size" {
  type        = number
  description = "Fewest EKS nodes."
}

variable "node_desired_size" {
  type        = number
  description = "EKS nodes at creation."
}

variable "node_max_size" {
  type        = number
  description = "Most EKS nodes."
}

variable "node_volume_size_gb" {
  type        = number
  description = "Root volume size of each node in GiB."
}

variable "autoscaling_service_linked_role_exists" {
  type        = bool
  description = "Whether AWSServiceRoleForAutoScaling exists in the account (bootstrap makes it); the KMS key policy then lets it encrypt the node volumes."
  default     = true
}

variable "rds_instance_class" {
  type        = string
  description = "Instance class of the PostgreSQL instance."
}

variable "rds_allocated_storage_gb" {
  type        = number
  description = "Initial PostgreSQL storage in GiB."
}

variable "rds_max_allocated_storage_gb" {
  type        = number
  description = "PostgreSQL storage autoscaling ceiling in GiB."
}

variable "rds_backup_retention_days" {
  type        = number
  description = "Days PostgreSQL backups are kept (7 or more)."
}

variable "rds_deletion_protection" {
  type        = bool
  description = "Deletion protection of the PostgreSQL instance."
}

variable "rds_log_min_duration_statement_ms" {
  type        = number
  description = "PostgreSQL logs statements slower than this many milliseconds."
}

variable "msk_kafka_version" {
  type        = string
  description = "Kafka version of the MSK brokers."
}

variable "msk_broker_instance_type" {
  type        = string
  description = "Instance type of the MSK brokers."
}

variable "msk_broker_volume_size_gb" {
  type        = number
  description = "Storage in GiB per MSK broker."
}

variable "msk_enhanced_monitoring" {
  type        = string
  description = "MSK CloudWatch metrics level."
}

variable "msk_allowed_cidr_blocks" {
  type        = list(string)
  description = "Further private networks admitted to the brokers on 9098 (the GKE side of a VPN, when there is one)."
  default     = []
}

variable "cross_cloud_vpn" {
  type        = bool
  description = "Site-to-site HA VPN to the GKE VPC (terraform-gcp). Needs terraform-gcp's HA VPN gateway, so the very first apply of an environment sets it false (README: cross-cloud VPN)."
  default     = false
}

variable "vpn_amazon_side_asn" {
  type        = number
  description = "Private BGP ASN of the virtual private gateway (must differ from terraform-gcp's vpn_router_asn)."
  default     = 64512
}

variable "state_bucket" {
  type        = string
  description = "S3 bucket of both trees' states (terraform-gcp's state is read from it for the VPN)."
  default     = "ecom-terraform-state"
}

variable "state_region" {
  type        = string
  description = "Region of the state bucket."
  default     = "eu-west-1"
}

variable "dynamodb_deletion_protection" {
  type        = bool
  description = "Deletion protection of the DynamoDB tables."
}

variable "lambda_package_path" {
  type        = string
  description = "Zip of the import Lambda, from `cargo lambda build --profile lambda --arm64 -p lambda-import --output-format zip` (or --release) at the workspace root, relative to terraform-aws/ (where Terraform runs)."
  default     = "../target/lambda/lambda-import/bootstrap.zip"
}

variable "lambda_architecture" {
  type        = string
  description = "Architecture the Lambda zip was built for: arm64 or x86_64."
}

variable "lambda_memory_size_mb" {
  type        = number
  description = "Memory of the import Lambda in MB."
}

variable "lambda_timeout_seconds" {
  type        = number
  description = "Timeout of the import Lambda in seconds."
}

variable "lambda_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the import Lambda."
}

variable "public_host" {
  type        = string
  description = "Public host name of the gateway (the ALB's Ingress host, the token issuer, and the address the import Lambda posts products to)."
}

variable "certificate_arn" {
  type        = string
  description = "ARN of the ACM certificate for public_host in this region, served by the ALB."
}

variable "image_tag" {
  type        = string
  description = "Tag of the ecom image in ECR the overlay deploys (tags are immutable)."
}

variable "ecr_repository_name" {
  type        = string
  description = "Name of the ECR repository of the ecom image."
  default     = "ecom"
}

variable "lb_controller_chart_version" {
  type        = string
  description = "Pinned aws-load-balancer-controller chart version."
}

variable "argocd_chart_version" {
  type        = string
  description = "Pinned argo-cd chart version."
}

variable "argocd_apps_chart_version" {
  type        = string
  description = "Pinned argocd-apps chart version."
}

variable "external_secrets_chart_version" {
  type        = string
  description = "Pinned external-secrets chart version."
}

variable "gitops_repository_url" {
  type        = string
  description = "Git URL of this repository, which ArgoCD syncs."
}

variable "gitops_target_revision" {
  type        = string
  description = "Branch, tag or commit ArgoCD follows."
}
