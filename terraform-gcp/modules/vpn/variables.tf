variable "environment" {
  description = "Environment name (dev or prod)."
  type        = string
}

variable "project_id" {
  description = "GCP project of the network."
  type        = string
}

variable "region" {
  description = "Region of the HA VPN gateway, the Cloud Router and the tunnels (the GKE cluster's)."
  type        = string
}

variable "network_id" {
  description = "Id of the VPC the HA VPN gateway and the Cloud Router belong to."
  type        = string
}

variable "router_asn" {
  description = "Private BGP ASN of the VPN's Cloud Router (the AWS customer gateways' ASN; different from the AWS side's)."
  type        = number

  validation {
    condition     = (var.router_asn >= 64512 && var.router_asn <= 65534) || (var.router_asn >= 4200000000 && var.router_asn <= 4294967294)
    error_message = "The Cloud Router's ASN is a private ASN (RFC 6996)."
  }
}

variable "advertised_cidr_blocks" {
  description = "Ranges the Cloud Router advertises to AWS (custom advertisement): the GKE node subnet and the pods range, so the engine's traffic to the brokers is routable back."
  type        = list(string)
}

variable "aws_tunnels" {
  description = "The four tunnels of the AWS side (terraform-aws output vpn_tunnels): outside_address, cgw_inside_address (this side's BGP address), vgw_inside_address (AWS's), bgp_asn (AWS's), gcp_interface. Empty until terraform-aws has built its side: the tunnels are made on the next apply."
  type = list(object({
    gcp_interface      = number
    outside_address    = string
    cgw_inside_address = string
    vgw_inside_address = string
    bgp_asn            = number
  }))
  default = []

  validation {
    condition     = length(var.aws_tunnels) == 0 || length(var.aws_tunnels) == 4
    error_message = "The AWS side has two VPN connections of two tunnels each: four tunnels (or none yet)."
  }
}

variable "aws_preshared_keys" {
  description = "Pre-shared keys of the four tunnels, in the order of aws_tunnels (terraform-aws output vpn_preshared_keys, generated there and kept only in the states)."
  type        = list(string)
  default     = []
  sensitive   = true
}
