environment = "prod"
region      = "eu-west-1"
azs         = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]

vpc_cidr              = "10.20.0.0/16"
public_subnet_cidrs   = ["10.20.0.0/22", "10.20.4.0/22", "10.20.8.0/22"]
private_subnet_cidrs  = ["10.20.32.0/19", "10.20.64.0/19", "10.20.96.0/19"]
database_subnet_cidrs = ["10.20.16.0/24", "10.20.17.0/24", "10.20.18.0/24"]
single_nat_gateway    = false
log_retention_days    = 731

kubernetes_version = "1.31"
# Replace with the operators' and CI runners' egress ranges (documentation range here).
eks_public_access_cidrs = ["198.51.100.0/24"]
node_instance_types     = ["m6i.xlarge"]
node_capacity_type      = "ON_DEMAND"
node_min_size           = 3
node_desired_size       = 3
node_max_size           = 9
node_volume_size_gb     = 100

rds_instance_class                = "db.r6g.large"
rds_allocated_storage_gb          = 100
rds_max_allocated_storage_gb      = 500
rds_backup_retention_days         = 14
rds_deletion_protection           = true
rds_log_min_duration_statement_ms = 500

msk_kafka_version         = "3.6.0"
msk_broker_instance_type  = "kafka.m5.large"
msk_broker_volume_size_gb = 500
msk_enhanced_monitoring   = "PER_TOPIC_PER_BROKER"

# Site-to-site HA VPN to the GKE VPC (terraform-gcp). The environment's very first apply runs
# with -var cross_cloud_vpn=false: terraform-gcp's HA VPN gateway must exist first (README).
cross_cloud_vpn = true

dynamodb_deletion_protection = true

lambda_architecture         = "arm64"
lambda_memory_size_mb       = 512
lambda_timeout_seconds      = 600
lambda_reserved_concurrency = 5

# The gateway's public address and its ACM certificate (made and validated outside Terraform).
public_host     = "shop.example.com"
certificate_arn = "arn:aws:acm:eu-west-1:222222222222:certificate/00000000-0000-0000-0000-000000000002"
image_tag       = "0.1.0"

lb_controller_chart_version    = "1.8.1"
argocd_chart_version           = "7.7.11"
argocd_apps_chart_version      = "2.0.2"
external_secrets_chart_version = "0.17.0"
gitops_repository_url          = "https://github.com/ecom-platform/ecom.git"
gitops_target_revision         = "main"
