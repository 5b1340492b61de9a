variable "name" {
  type        = string
  description = "Name prefix of the VPN's resources (ecom-<environment>)."
}

variable "vpc_id" {
  type        = string
  description = "Id of the VPC the virtual private gateway is attached to."
}

variable "private_route_table_ids" {
  type        = list(string)
  description = "Route tables of the private subnets (EKS nodes, MSK brokers): the routes learnt by BGP from GCP are propagated into them."
}

variable "amazon_side_asn" {
  type        = number
  description = "Private BGP ASN of the virtual private gateway (different from the GCP Cloud Router's)."
  default     = 64512
}

variable "gcp_router_asn" {
  type        = number
  description = "BGP ASN of the GCP Cloud Router of the HA VPN (terraform-gcp output vpn_router_asn)."

  validation {
    condition     = (var.gcp_router_asn >= 64512 && var.gcp_router_asn <= 65534) || (var.gcp_router_asn >= 4200000000 && var.gcp_router_asn <= 4294967294)
    error_message = "The GCP Cloud Router's ASN is a private ASN: apply terraform-gcp with cross_cloud_vpn = true first (README: cross-cloud VPN)."
  }
}

variable "gcp_interface_ips" {
  type        = list(string)
  description = "The two public addresses of the GCP HA VPN gateway's interfaces 0 and 1 (terraform-gcp output vpn_gateway_interface_ips): one customer gateway each."

  validation {
    condition     = length(var.gcp_interface_ips) == 2
    error_message = "The GCP HA VPN gateway has two interfaces: apply terraform-gcp with cross_cloud_vpn = true before this tree's VPN pass (README: cross-cloud VPN)."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "ARN of the KMS key encrypting the tunnels' log group."
}

variable "log_retention_days" {
  type        = number
  description = "Days the tunnels' logs are kept."
  default     = 365
}
