output "gateway_interface_ips" {
  description = "Public addresses of the HA VPN gateway's interfaces 0 and 1 (the AWS customer gateways)."
  value       = google_compute_ha_vpn_gateway.this.vpn_interfaces[*].ip_address
}

output "router_asn" {
  description = "BGP ASN of the VPN's Cloud Router."
  value       = var.router_asn
}

output "advertised_cidr_blocks" {
  description = "Ranges advertised to AWS (to admit on the MSK security group)."
  value       = var.advertised_cidr_blocks
}

output "tunnel_names" {
  description = "Names of the VPN tunnels (empty until the AWS side exists)."
  value       = [for t in google_compute_vpn_tunnel.aws : t.name]
}
