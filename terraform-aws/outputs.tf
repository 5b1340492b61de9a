output "account_id" {
  description = "AWS account id of the environment."
  value       = local.account_id
}

output "region" {
  description = "AWS region of the environment (AWS_REGION)."
  value       = var.region
}

output "kms_key_arn" {
  description = "ARN of the environment's KMS key (the GCP tree's stream-engine role needs kms:Decrypt/GenerateDataKey through DynamoDB on it)."
  value       = module.kms.key_arn
}

output "vpc_id" {
  description = "Id of the VPC."
  value       = module.vpc.vpc_id
}

output "nat_public_ips" {
  description = "Egress addresses of the VPC."
  value       = module.vpc.nat_public_ips
}

output "eks_cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.eks.cluster_name
}

output "eks_cluster_endpoint" {
  description = "Kubernetes API URL of the EKS cluster."
  value       = module.eks.cluster_endpoint
}

output "eks_oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider."
  value       = module.eks.oidc_provider_arn
}

output "workload_role_arns" {
  description = "IRSA role ARN per ServiceAccount: the eks.amazonaws.com/role-arn annotations of the overlay."
  value = merge(module.iam.role_arns, {
    aws-load-balancer-controller = module.eks.lb_controller_role_arn
  })
}

output "ingest_role_arn" {
  description = "Role of ServiceAccount ecom/ingest."
  value       = module.iam.ingest_role_arn
}

output "orders_role_arn" {
  description = "Role of ServiceAccount ecom/orders."
  value       = module.iam.orders_role_arn
}

output "catalog_role_arn" {
  description = "Role of ServiceAccount ecom/catalog."
  value       = module.iam.catalog_role_arn
}

output "inventory_role_arn" {
  description = "Role of ServiceAccount ecom/inventory."
  value       = module.iam.inventory_role_arn
}

output "payments_role_arn" {
  description = "Role of ServiceAccount ecom/payments."
  value       = module.iam.payments_role_arn
}

output "analytics_role_arn" {
  description = "Role of ServiceAccount ecom/analytics."
  value       = module.iam.analytics_role_arn
}

output "external_secrets_role_arn" {
  description = "Role of ServiceAccount external-secrets/external-secrets."
  value       = module.iam.external_secrets_role_arn
}

output "aws_load_balancer_controller_role_arn" {
  description = "Role of ServiceAccount kube-system/aws-load-balancer-controller."
  value       = module.eks.lb_controller_role_arn
}

output "rds_endpoint" {
  description = "PostgreSQL host name (DB_HOST)."
  value       = module.rds.address
}

output "rds_port" {
  description = "PostgreSQL port (DB_PORT)."
  value       = module.rds.port
}

output "rds_database_name" {
  description = "PostgreSQL database (DB_NAME)."
  value       = module.rds.database_name
}

output "rds_username" {
  description = "PostgreSQL user (DB_USER)."
  value       = module.rds.master_username
}

output "rds_master_user_secret_arn" {
  description = "ARN of the RDS-managed secret holding DB_USER/DB_PASSWORD (keys username, password), for an ExternalSecret."
  value       = module.rds.master_user_secret_arn
}

output "msk_bootstrap_brokers_sasl_iam" {
  description = "KAFKA_BOOTSTRAP_SERVERS: SASL/IAM over TLS brokers (port 9098)."
  value       = module.msk.bootstrap_brokers_sasl_iam
}

output "msk_cluster_arn" {
  description = "ARN of the MSK cluster."
  value       = module.msk.cluster_arn
}

output "msk_topic_arn_prefix" {
  description = "Prefix of the MSK topic ARNs (for the GCP tree's stream-engine role)."
  value       = module.msk.topic_arn_prefix
}

output "msk_group_arn_prefix" {
  description = "Prefix of the MSK consumer group ARNs (for the GCP tree's stream-engine role)."
  value       = module.msk.group_arn_prefix
}

output "dynamodb_results_table_name" {
  description = "DYNAMODB_TABLE."
  value       = module.dynamodb.results_table_name
}

output "dynamodb_results_table_arn" {
  description = "ARN of the results table."
  value       = module.dynamodb.results_table_arn
}

output "dynamodb_results_index_arns" {
  description = "ARNs of the results table's indexes."
  value       = module.dynamodb.results_index_arns
}

output "dynamodb_checkpoints_table_name" {
  description = "DYNAMODB_CHECKPOINT_TABLE."
  value       = module.dynamodb.checkpoints_table_name
}

output "dynamodb_checkpoints_table_arn" {
  description = "ARN of the checkpoints table."
  value       = module.dynamodb.checkpoints_table_arn
}

output "ecr_repository_url" {
  description = "Image repository of every workload."
  value       = module.ecr.repository_url
}

output "import_bucket_name" {
  description = "Bucket whose .csv uploads the import Lambda imports."
  value       = module.s3.bucket_name
}

output "import_lambda_name" {
  description = "Name of the import Lambda."
  value       = module.lambda.function_name
}

output "import_dlq_url" {
  description = "Dead-letter queue of failed imports."
  value       = module.lambda.dlq_url
}

output "auth_secret_name" {
  description = "Secrets Manager name of ECOM_ADMIN_PASSWORD and ECOM_IMPORTER_SECRET (an ExternalSecret's remote key)."
  value       = module.secrets.auth_secret_name
}

output "auth_secret_arn" {
  description = "ARN of the auth secret."
  value       = module.secrets.auth_secret_arn
}

output "importer_secret_arn" {
  description = "ARN of the importer's secret the Lambda reads."
  value       = module.secrets.importer_secret_arn
}

output "kubernetes_values" {
  description = "k8s/overlays/aws/values.env of this environment: terraform output -raw kubernetes_values > k8s/overlays/aws/values.env"
  value       = <<-EOT
    IMAGE=${module.ecr.repository_url}:${var.image_tag}
    AWS_REGION=${var.region}
    CLUSTER_NAME=${module.eks.cluster_name}
    PUBLIC_HOST=${var.public_host}
    TOKEN_ISSUER=https://${var.public_host}
    CERTIFICATE_ARN=${var.certificate_arn}
    VPC_CIDR=${module.vpc.vpc_cidr_block}
    KAFKA_BOOTSTRAP_SERVERS=${module.msk.bootstrap_brokers_sasl_iam}
    DYNAMODB_TABLE=${module.dynamodb.results_table_name}
    DB_HOST=${module.rds.address}
    DB_SECRET_ARN=${module.rds.master_user_secret_arn}
    AUTH_SECRET_NAME=${module.secrets.auth_secret_name}
    INGEST_ROLE_ARN=${module.iam.ingest_role_arn}
    ORDERS_ROLE_ARN=${module.iam.orders_role_arn}
    CATALOG_ROLE_ARN=${module.iam.catalog_role_arn}
    INVENTORY_ROLE_ARN=${module.iam.inventory_role_arn}
    PAYMENTS_ROLE_ARN=${module.iam.payments_role_arn}
    ANALYTICS_ROLE_ARN=${module.iam.analytics_role_arn}
    FLUENT_BIT_ROLE_ARN=${module.iam.fluent_bit_role_arn}
  EOT
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR block of the VPC (VPC_CIDR of the overlay's NetworkPolicies)."
  value       = module.vpc.vpc_cidr_block
}

output "argocd_root_application" {
  description = "Name of the ArgoCD root Application (namespace argocd)."
  value       = module.argocd.root_application_name
}

output "vpn_tunnels" {
  description = "The cross-cloud VPN's four tunnels (outside and inside addresses, AWS BGP ASN, GCP HA VPN interface) that terraform-gcp builds its side from; empty while cross_cloud_vpn is off."
  value       = flatten(module.vpn[*].tunnels)
}

output "vpn_preshared_keys" {
  description = "Pre-shared keys of the VPN tunnels, in the order of vpn_tunnels (read by terraform-gcp from the state; never written elsewhere)."
  value       = flatten(module.vpn[*].preshared_keys)
  sensitive   = true
}

output "msk_allowed_cidr_blocks" {
  description = "Private networks admitted to the brokers on 9098 besides the EKS nodes (with the VPN: the GKE node subnet and pods range)."
  value       = distinct(concat(var.msk_allowed_cidr_blocks, local.gke_cidr_blocks))
}
