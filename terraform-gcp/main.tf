# What this tree needs from terraform-aws/ (see README.md): the ARNs the engine's AWS role
# is scoped to, the KMS key of the tables, the brokers and, for the VPN, the AWS side's tunnels.
data "terraform_remote_state" "aws" {
  backend = "s3"

  config = {
    bucket = var.state_bucket
    key    = "ecom/${var.environment}/aws.tfstate"
    region = var.aws_region
  }
}

locals {
  # The AWS side of the cross-cloud VPN: empty until terraform-aws has applied with
  # cross_cloud_vpn = true (the second pass of README.md "Cross-cloud VPN").
  aws_vpn_tunnels        = try(data.terraform_remote_state.aws.outputs.vpn_tunnels, [])
  aws_vpn_preshared_keys = try(data.terraform_remote_state.aws.outputs.vpn_preshared_keys, [])
}

# The project's APIs this environment uses, enabled before anything that needs them (and left
# enabled on destroy: other things in the project may use them).
resource "google_project_service" "apis" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "cloudkms.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
  ])

  project            = var.project_id
  service            = each.key
  disable_on_destroy = false
}

module "network" {
  source = "./modules/network"

  environment            = var.environment
  project_id             = var.project_id
  region                 = var.region
  subnet_cidr            = var.subnet_cidr
  pods_cidr              = var.pods_cidr
  services_cidr          = var.services_cidr
  master_ipv4_cidr_block = var.master_ipv4_cidr_block

  depends_on = [google_project_service.apis]
}

module "kms" {
  source = "./modules/kms"

  environment = var.environment
  project_id  = var.project_id
  region      = var.region

  depends_on = [google_project_service.apis]
}

module "gke" {
  source = "./modules/gke"

  environment                = var.environment
  project_id                 = var.project_id
  region                     = var.region
  network_id                 = module.network.network_id
  subnetwork_id              = module.network.subnetwork_id
  pods_range_name            = module.network.pods_range_name
  services_range_name        = module.network.services_range_name
  master_ipv4_cidr_block     = var.master_ipv4_cidr_block
  master_authorized_networks = var.master_authorized_networks
  release_channel            = var.release_channel
  database_encryption_key    = module.kms.crypto_key_id
  rbac_security_group        = var.rbac_security_group
  machine_type               = var.machine_type
  min_node_count             = var.min_node_count
  max_node_count             = var.max_node_count
  deletion_protection        = var.deletion_protection

  depends_on = [google_project_service.apis]
}

module "registry" {
  source = "./modules/registry"

  environment                = var.environment
  project_id                 = var.project_id
  region                     = var.region
  node_service_account_email = module.gke.node_service_account_email

  depends_on = [google_project_service.apis]
}

module "engine_identity" {
  source = "./modules/engine-identity"

  project_id    = var.project_id
  workload_pool = module.gke.workload_pool

  depends_on = [google_project_service.apis]
}

module "aws_trust" {
  source = "./modules/aws-trust"

  environment                    = var.environment
  issuer_url                     = module.gke.issuer_url
  dynamodb_results_table_arn     = data.terraform_remote_state.aws.outputs.dynamodb_results_table_arn
  dynamodb_checkpoints_table_arn = data.terraform_remote_state.aws.outputs.dynamodb_checkpoints_table_arn
  msk_cluster_arn                = data.terraform_remote_state.aws.outputs.msk_cluster_arn
  msk_topic_arn_prefix           = data.terraform_remote_state.aws.outputs.msk_topic_arn_prefix
  msk_group_arn_prefix           = data.terraform_remote_state.aws.outputs.msk_group_arn_prefix
  kms_key_arn                    = data.terraform_remote_state.aws.outputs.kms_key_arn
  dynamodb_region                = data.terraform_remote_state.aws.outputs.region

  depends_on = [google_project_service.apis]
}

# Site-to-site HA VPN to the AWS VPC (terraform-aws/modules/vpn is the other half): the engine
# reaches MSK's private brokers on 9098. The gateway and router come first, the tunnels once the
# AWS side exists.
module "vpn" {
  source = "./modules/vpn"
  count  = var.cross_cloud_vpn ? 1 : 0

  environment            = var.environment
  project_id             = var.project_id
  region                 = var.region
  network_id             = module.network.network_id
  router_asn             = var.vpn_router_asn
  advertised_cidr_blocks = [var.subnet_cidr, var.pods_cidr]
  aws_tunnels            = local.aws_vpn_tunnels
  aws_preshared_keys     = local.aws_vpn_preshared_keys

  depends_on = [google_project_service.apis]
}
