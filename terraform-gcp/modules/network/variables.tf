variable "environment" {
  description = "Environment name (dev or prod)."
  type        = string
}

variable "project_id" {
  description = "GCP project that holds the network."
  type        = string
}

variable "region" {
  description = "Region of the subnet, router and NAT."
  type        = string
}

variable "subnet_cidr" {
  description = "Primary range of the private node subnet."
  type        = string
}

variable "pods_cidr" {
  description = "Secondary range of the subnet for pod IPs."
  type        = string
}

variable "services_cidr" {
  description = "Secondary range of the subnet for Service cluster IPs."
  type        = string
}

variable "master_ipv4_cidr_block" {
  description = "The /28 of the GKE control plane (private endpoint); it may reach the nodes on the ports GKE needs."
  type        = string
}

variable "nat_ip_count" {
  description = "Static external addresses of Cloud NAT (stable egress IPs that AWS security groups can allow)."
  type        = number
  default     = 2
}
