variable "environment" {
  description = "Environment name."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "The environment is dev or prod."
  }
}

variable "project_id" {
  description = "GCP project of this environment (the engine's service account is ecom-stream-engine@<project>)."
  type        = string
}

variable "region" {
  description = "GCP region of the network, the key ring and the regional cluster."
  type        = string
}

variable "aws_region" {
  description = "AWS region of the MSK cluster, the DynamoDB tables and the state bucket."
  type        = string
}

variable "state_bucket" {
  description = "S3 bucket holding both trees' states (the AWS tree's state is read from it)."
  type        = string
  default     = "ecom-terraform-state"
}

variable "subnet_cidr" {
  description = "Primary range of the node subnet."
  type        = string
}

variable "pods_cidr" {
  description = "Secondary range for pods."
  type        = string
}

variable "services_cidr" {
  description = "Secondary range for services."
  type        = string
}

variable "master_ipv4_cidr_block" {
  description = "The /28 of the control plane."
  type        = string
}

variable "master_authorized_networks" {
  description = "CIDR blocks allowed to reach the control plane."
  type = list(object({
    cidr_block   = string
    display_name = string
  }))
}

variable "release_channel" {
  description = "GKE release channel."
  type        = string
}

variable "rbac_security_group" {
  description = "Google Group for RBAC (gke-security-groups@<domain>)."
  type        = string
}

variable "machine_type" {
  description = "Machine type of the nodes."
  type        = string
}

variable "min_node_count" {
  description = "Minimum nodes per zone."
  type        = number
}

variable "max_node_count" {
  description = "Maximum nodes per zone."
  type        = number
}

variable "deletion_protection" {
  description = "Refuse to destroy the cluster."
  type        = bool
  default     = true
}

variable "cross_cloud_vpn" {
  description = "Site-to-site HA VPN to the AWS VPC (MSK's private brokers). On: the HA VPN gateway and its Cloud Router, then, once terraform-aws has built its side, the four tunnels (README: cross-cloud VPN)."
  type        = bool
  default     = false
}

variable "vpn_router_asn" {
  description = "Private BGP ASN of the VPN's Cloud Router (must differ from terraform-aws's vpn_amazon_side_asn, 64512 by default)."
  type        = number
  default     = 65010
}

variable "image_tag" {
  description = "Tag of the ecom image in Artifact Registry the overlay deploys (tags are immutable)."
  type        = string
}
