# The AWS half of the HA VPN between the GCP VPC (the stream engine's GKE cluster) and this VPC,
# the documented GCP HA VPN <-> AWS pattern: a virtual private gateway on the VPC, one customer
# gateway per GCP HA VPN interface, one VPN connection (two tunnels, BGP) per customer gateway,
# so four tunnels in all. The other half (HA VPN gateway, Cloud Router, external VPN gateway of
# the four tunnel addresses, tunnels and BGP sessions) is terraform-gcp/modules/vpn.

resource "aws_vpn_gateway" "this" {
  vpc_id          = var.vpc_id
  amazon_side_asn = var.amazon_side_asn

  tags = {
    Name = "${var.name}-gcp-vpn"
  }
}

# The GKE subnet and pods ranges the Cloud Router advertises reach the private route tables;
# the VGW advertises the VPC's CIDR block to GCP.
resource "aws_vpn_gateway_route_propagation" "private" {
  count = length(var.private_route_table_ids)

  vpn_gateway_id = aws_vpn_gateway.this.id
  route_table_id = var.private_route_table_ids[count.index]
}

# Customer gateway c is the GCP HA VPN gateway's interface c.
resource "aws_customer_gateway" "gcp" {
  count = 2

  bgp_asn    = var.gcp_router_asn
  ip_address = var.gcp_interface_ips[count.index]
  type       = "ipsec.1"

  tags = {
    Name = "${var.name}-gcp-ha-vpn-${count.index}"
  }
}

# The tunnels' pre-shared keys (connection c, tunnel t -> index 2c + t - 1): generated here and
# kept only in Terraform state (this tree's, and terraform-gcp's, which reads them from it), both
# in the KMS-encrypted state bucket; never in a file, a variable or the repository. Letters only:
# AWS accepts 8-64 characters of [A-Za-z0-9._] not starting with 0.
resource "random_password" "psk" {
  count = 4

  length  = 48
  special = false
  numeric = false
}

resource "aws_cloudwatch_log_group" "tunnels" {
  name              = "/aws/vpn/${var.name}-gcp"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# IKEv2 and the ciphers both AWS and Cloud VPN support (AES-256 CBC/GCM, SHA-2, DH 14/19/20);
# GCP initiates, AWS answers. BGP routing, no static routes.
resource "aws_vpn_connection" "gcp" {
  count = 2

  vpn_gateway_id      = aws_vpn_gateway.this.id
  customer_gateway_id = aws_customer_gateway.gcp[count.index].id
  type                = "ipsec.1"
  static_routes_only  = false

  tunnel1_preshared_key                = random_password.psk[2 * count.index].result
  tunnel1_ike_versions                 = ["ikev2"]
  tunnel1_phase1_encryption_algorithms = ["AES256", "AES256-GCM-16"]
  tunnel1_phase2_encryption_algorithms = ["AES256", "AES256-GCM-16"]
  tunnel1_phase1_integrity_algorithms  = ["SHA2-256", "SHA2-384", "SHA2-512"]
  tunnel1_phase2_integrity_algorithms  = ["SHA2-256", "SHA2-384", "SHA2-512"]
  tunnel1_phase1_dh_group_numbers      = [14, 19, 20]
  tunnel1_phase2_dh_group_numbers      = [14, 19, 20]

  tunnel1_log_options {
    cloudwatch_log_options {
      log_enabled       = true
      log_group_arn     = aws_cloudwatch_log_group.tunnels.arn
      log_output_format = "json"
    }
  }

  tunnel2_preshared_key                = random_password.psk[2 * count.index + 1].result
  tunnel2_ike_versions                 = ["ikev2"]
  tunnel2_phase1_encryption_algorithms = ["AES256", "AES256-GCM-16"]
  tunnel2_phase2_encryption_algorithms = ["AES256", "AES256-GCM-16"]
  tunnel2_phase1_integrity_algorithms  = ["SHA2-256", "SHA2-384", "SHA2-512"]
  tunnel2_phase2_integrity_algorithms  = ["SHA2-256", "SHA2-384", "SHA2-512"]
  tunnel2_phase1_dh_group_numbers      = [14, 19, 20]
  tunnel2_phase2_dh_group_numbers      = [14, 19, 20]

  tunnel2_log_options {
    cloudwatch_log_options {
      log_enabled       = true
      log_group_arn     = aws_cloudwatch_log_group.tunnels.arn
      log_output_format = "json"
    }
  }

  tags = {
    Name = "${var.name}-gcp-ha-vpn-${count.index}"
  }
}
