output "cluster_name" {
  description = "Name of the GKE cluster."
  value       = module.gke.cluster_name
}

output "cluster_location" {
  description = "Region of the GKE cluster."
  value       = module.gke.location
}

output "cluster_endpoint" {
  description = "Address of the GKE control plane."
  value       = module.gke.endpoint
  sensitive   = true
}

output "engine_service_account_email" {
  description = "The engine's Google service account (KSA annotation iam.gke.io/gcp-service-account)."
  value       = module.engine_identity.email
}

output "engine_aws_role_arn" {
  description = "The AWS role the engine assumes (its AWS_ROLE_ARN)."
  value       = module.aws_trust.role_arn
}

output "oidc_issuer_url" {
  description = "The GKE cluster's OIDC issuer trusted by AWS IAM."
  value       = module.gke.issuer_url
}

output "nat_ip_addresses" {
  description = "Static egress addresses of the GKE nodes to the internet (AWS STS and DynamoDB endpoints); MSK is reached over the VPN."
  value       = module.network.nat_ip_addresses
}

output "image_repository" {
  description = "The Artifact Registry repository of the image (push ecom:<tag> here too: DEPLOY.md)."
  value       = module.registry.repository_url
}

output "vpn_gateway_interface_ips" {
  description = "Public addresses of the HA VPN gateway's two interfaces (terraform-aws makes one customer gateway each); empty while cross_cloud_vpn is off."
  value       = flatten(module.vpn[*].gateway_interface_ips)
}

output "vpn_router_asn" {
  description = "BGP ASN of the VPN's Cloud Router (the AWS customer gateways' ASN); null while cross_cloud_vpn is off."
  value       = one(module.vpn[*].router_asn)
}

output "vpn_advertised_cidr_blocks" {
  description = "Ranges advertised to AWS over the VPN (GKE node subnet and pods range), which terraform-aws admits on the MSK security group; empty while cross_cloud_vpn is off."
  value       = flatten(module.vpn[*].advertised_cidr_blocks)
}

output "vpn_tunnel_names" {
  description = "The four VPN tunnels (empty until terraform-aws has built the AWS side and this tree is applied again)."
  value       = flatten(module.vpn[*].tunnel_names)
}

output "kubernetes_values" {
  description = "k8s/overlays/gcp/values.env of this environment: terraform output -raw kubernetes_values > k8s/overlays/gcp/values.env"
  value       = <<-EOT
    IMAGE=${module.registry.repository_url}/ecom:${var.image_tag}
    GCP_SERVICE_ACCOUNT=${module.engine_identity.email}
    AWS_REGION=${data.terraform_remote_state.aws.outputs.region}
    AWS_ROLE_ARN=${module.aws_trust.role_arn}
    KAFKA_BOOTSTRAP_SERVERS=${data.terraform_remote_state.aws.outputs.msk_bootstrap_brokers_sasl_iam}
    DYNAMODB_TABLE=${data.terraform_remote_state.aws.outputs.dynamodb_results_table_name}
  EOT
}
