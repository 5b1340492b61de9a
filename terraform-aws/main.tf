data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  name       = "ecom-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id

  import_bucket_name = "${local.name}-imports-${local.account_id}"
  autoscaling_role   = "arn:${data.aws_partition.current.partition}:iam::${local.account_id}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"

  # The GCP side of the cross-cloud VPN (empty while cross_cloud_vpn is off): the HA VPN
  # gateway's two interface addresses, the Cloud Router's ASN and the ranges it advertises (the
  # GKE node subnet and pods range), which MSK admits on 9098.
  gcp_vpn_interface_ips = try(data.terraform_remote_state.gcp[0].outputs.vpn_gateway_interface_ips, [])
  gcp_vpn_router_asn    = coalesce(try(data.terraform_remote_state.gcp[0].outputs.vpn_router_asn, null), 0)
  gke_cidr_blocks       = try(data.terraform_remote_state.gcp[0].outputs.vpn_advertised_cidr_blocks, [])
}

# Read only for the VPN (second pass, README.md "Cross-cloud VPN"): terraform-gcp makes
# its HA VPN gateway first and this tree then builds the AWS side to its addresses.
data "terraform_remote_state" "gcp" {
  count   = var.cross_cloud_vpn ? 1 : 0
  backend = "s3"

  config = {
    bucket = var.state_bucket
    key    = "ecom/${var.environment}/gcp.tfstate"
    region = var.state_region
  }
}

module "kms" {
  source = "./modules/kms"

  environment                  = var.environment
  ebs_service_linked_role_arns = var.autoscaling_service_linked_role_exists ? [local.autoscaling_role] : []
}

module "vpc" {
  source = "./modules/vpc"

  name                    = local.name
  cidr_block              = var.vpc_cidr
  azs                     = var.azs
  public_subnet_cidrs     = var.public_subnet_cidrs
  private_subnet_cidrs    = var.private_subnet_cidrs
  database_subnet_cidrs   = var.database_subnet_cidrs
  single_nat_gateway      = var.single_nat_gateway
  cluster_name            = local.name
  kms_key_arn             = module.kms.key_arn
  flow_log_retention_days = var.log_retention_days
}

module "eks" {
  source = "./modules/eks"

  cluster_name                = local.name
  kubernetes_version          = var.kubernetes_version
  vpc_id                      = module.vpc.vpc_id
  private_subnet_ids          = module.vpc.private_subnet_ids
  public_access_cidrs         = var.eks_public_access_cidrs
  kms_key_arn                 = module.kms.key_arn
  log_retention_days          = var.log_retention_days
  node_instance_types         = var.node_instance_types
  node_capacity_type          = var.node_capacity_type
  node_min_size               = var.node_min_size
  node_desired_size           = var.node_desired_size
  node_max_size               = var.node_max_size
  node_volume_size_gb         = var.node_volume_size_gb
  lb_controller_chart_version = var.lb_controller_chart_version
}

module "rds" {
  source = "./modules/rds"

  identifier                    = "${local.name}-postgres"
  instance_class                = var.rds_instance_class
  allocated_storage_gb          = var.rds_allocated_storage_gb
  max_allocated_storage_gb      = var.rds_max_allocated_storage_gb
  database_name                 = "ecom"
  master_username               = "ecom"
  vpc_id                        = module.vpc.vpc_id
  database_subnet_ids           = module.vpc.database_subnet_ids
  allowed_security_group_ids    = [module.eks.cluster_security_group_id]
  kms_key_arn                   = module.kms.key_arn
  backup_retention_days         = var.rds_backup_retention_days
  deletion_protection           = var.rds_deletion_protection
  log_min_duration_statement_ms = var.rds_log_min_duration_statement_ms
  log_retention_days            = var.log_retention_days
}

module "msk" {
  source = "./modules/msk"

  cluster_name               = local.name
  kafka_version              = var.msk_kafka_version
  broker_instance_type       = var.msk_broker_instance_type
  broker_volume_size_gb      = var.msk_broker_volume_size_gb
  vpc_id                     = module.vpc.vpc_id
  private_subnet_ids         = module.vpc.private_subnet_ids
  allowed_security_group_ids = [module.eks.cluster_security_group_id]
  allowed_cidr_blocks        = distinct(concat(var.msk_allowed_cidr_blocks, local.gke_cidr_blocks))
  kms_key_arn                = module.kms.key_arn
  enhanced_monitoring        = var.msk_enhanced_monitoring
  log_retention_days         = var.log_retention_days
}

# Site-to-site HA VPN to the GKE cluster's VPC (terraform-gcp/modules/vpn is the other half):
# the stream engine reaches the brokers' private addresses on 9098.
module "vpn" {
  source = "./modules/vpn"
  count  = var.cross_cloud_vpn ? 1 : 0

  name                    = local.name
  vpc_id                  = module.vpc.vpc_id
  private_route_table_ids = module.vpc.private_route_table_ids
  amazon_side_asn         = var.vpn_amazon_side_asn
  gcp_router_asn          = local.gcp_vpn_router_asn
  gcp_interface_ips       = local.gcp_vpn_interface_ips
  kms_key_arn             = module.kms.key_arn
  log_retention_days      = var.log_retention_days
}

module "dynamodb" {
  source = "./modules/dynamodb"

  name_prefix         = local.name
  kms_key_arn         = module.kms.key_arn
  deletion_protection = var.dynamodb_deletion_protection
}

module "secrets" {
  source = "./modules/secrets"

  environment        = var.environment
  kms_key_arn        = module.kms.key_arn
  importer_client_id = "importer"
}

module "lambda" {
  source = "./modules/lambda"

  function_name        = "${local.name}-import"
  package_path         = var.lambda_package_path
  architecture         = var.lambda_architecture
  memory_size_mb       = var.lambda_memory_size_mb
  timeout_seconds      = var.lambda_timeout_seconds
  reserved_concurrency = var.lambda_reserved_concurrency
  vpc_id               = module.vpc.vpc_id
  subnet_ids           = module.vpc.private_subnet_ids
  kms_key_arn          = module.kms.key_arn
  import_bucket_name   = local.import_bucket_name
  importer_secret_arn  = module.secrets.importer_secret_arn
  product_api_url      = "https://${var.public_host}"
  import_client_id     = "importer"
  log_retention_days   = var.log_retention_days
}

module "s3" {
  source = "./modules/s3"

  bucket_name               = local.import_bucket_name
  log_bucket_name           = "${local.name}-access-logs-${local.account_id}"
  kms_key_arn               = module.kms.key_arn
  lambda_function_arn       = module.lambda.function_arn
  lambda_function_name      = module.lambda.function_name
  access_log_retention_days = var.log_retention_days
}

module "iam" {
  source = "./modules/iam"

  name_prefix           = local.name
  environment           = var.environment
  oidc_provider_arn     = module.eks.oidc_provider_arn
  oidc_provider         = module.eks.oidc_provider
  namespace             = "ecom"
  kms_key_arn           = module.kms.key_arn
  results_table_arn     = module.dynamodb.results_table_arn
  results_index_arns    = module.dynamodb.results_index_arns
  checkpoints_table_arn = module.dynamodb.checkpoints_table_arn
  msk_cluster_arn       = module.msk.cluster_arn
  msk_topic_arn_prefix  = module.msk.topic_arn_prefix
  msk_group_arn_prefix  = module.msk.group_arn_prefix
  rds_master_secret_arn = module.rds.master_user_secret_arn

  container_log_group_arn = module.eks.container_log_group_arn
}

module "ecr" {
  source = "./modules/ecr"

  repository_name = var.ecr_repository_name
  kms_key_arn     = module.kms.key_arn
}

module "argocd" {
  source = "./modules/argocd"

  argocd_chart_version           = var.argocd_chart_version
  argocd_apps_chart_version      = var.argocd_apps_chart_version
  external_secrets_chart_version = var.external_secrets_chart_version
  external_secrets_role_arn      = module.iam.external_secrets_role_arn
  repository_url                 = var.gitops_repository_url
  target_revision                = var.gitops_target_revision
  apps_path                      = "k8s/argocd/apps"

  # The controllers need nodes to run on; the EKS module's Helm release waits for them.
  depends_on = [module.eks]
}
