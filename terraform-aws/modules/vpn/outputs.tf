output "vpn_gateway_id" {
  description = "Id of the virtual private gateway."
  value       = aws_vpn_gateway.this.id
}

output "vpn_connection_ids" {
  description = "Ids of the two VPN connections (one per GCP HA VPN interface)."
  value       = aws_vpn_connection.gcp[*].id
}

# Tunnel i is tunnel (i % 2) + 1 of connection i / 2, which ends on GCP HA VPN interface i / 2;
# GCP's external VPN gateway interface i is its outside address.
output "tunnels" {
  description = "The four tunnels for terraform-gcp: AWS outside address, inside addresses (/30, GCP side = cgw), AWS BGP ASN, the GCP HA VPN interface they end on."
  value = flatten([
    for c, conn in aws_vpn_connection.gcp : [
      {
        gcp_interface      = c
        outside_address    = conn.tunnel1_address
        cgw_inside_address = conn.tunnel1_cgw_inside_address
        vgw_inside_address = conn.tunnel1_vgw_inside_address
        bgp_asn            = tonumber(conn.tunnel1_bgp_asn)
      },
      {
        gcp_interface      = c
        outside_address    = conn.tunnel2_address
        cgw_inside_address = conn.tunnel2_cgw_inside_address
        vgw_inside_address = conn.tunnel2_vgw_inside_address
        bgp_asn            = tonumber(conn.tunnel2_bgp_asn)
      },
    ]
  ])
}

output "preshared_keys" {
  description = "Pre-shared keys of the four tunnels, in the order of `tunnels` (state only)."
  value       = random_password.psk[*].result
  sensitive   = true
}
