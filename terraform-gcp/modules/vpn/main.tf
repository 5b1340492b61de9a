# The GCP half of the HA VPN to the AWS VPC (MSK's private brokers), the documented Cloud VPN
# <-> AWS pattern: an HA VPN gateway (two interfaces), a Cloud Router with its own ASN, an
# external VPN gateway of AWS's four tunnel addresses, four tunnels (two per HA VPN interface,
# one AWS VPN connection each) with a router interface and a BGP session apiece. The other half
# is terraform-aws/modules/vpn.
#
# Two passes: the gateway and the router are made first (the AWS side needs the interfaces'
# addresses); the external gateway, tunnels and BGP sessions once terraform-aws has built the
# AWS side and its state lists the tunnels (var.aws_tunnels non-empty).

locals {
  name    = "ecom-${var.environment}"
  tunnels = { for i, t in var.aws_tunnels : tostring(i) => merge(t, { index = i }) }
}

resource "google_compute_ha_vpn_gateway" "this" {
  project    = var.project_id
  name       = "${local.name}-aws-vpn"
  region     = var.region
  network    = var.network_id
  stack_type = "IPV4_ONLY"
}

# Routes learnt from AWS (the VPC's CIDR block) are more specific than the default route, so the
# nodes' and pods' traffic to the brokers goes through the tunnels, not Cloud NAT. Only the node
# subnet and the pods range are advertised (the services range never leaves the cluster).
resource "google_compute_router" "vpn" {
  project = var.project_id
  name    = "${local.name}-aws-vpn-router"
  region  = var.region
  network = var.network_id

  bgp {
    asn               = var.router_asn
    advertise_mode    = "CUSTOM"
    advertised_groups = []

    dynamic "advertised_ip_ranges" {
      for_each = var.advertised_cidr_blocks

      content {
        range       = advertised_ip_ranges.value
        description = "GKE node subnet or pods range"
      }
    }
  }
}

resource "google_compute_external_vpn_gateway" "aws" {
  count = length(var.aws_tunnels) == 4 ? 1 : 0

  project         = var.project_id
  name            = "${local.name}-aws"
  redundancy_type = "FOUR_IPS_REDUNDANCY"
  description     = "The four tunnel endpoints of the AWS virtual private gateway of ${local.name}"

  dynamic "interface" {
    for_each = var.aws_tunnels

    content {
      id         = interface.key
      ip_address = interface.value.outside_address
    }
  }
}

resource "google_compute_vpn_tunnel" "aws" {
  for_each = local.tunnels

  project                         = var.project_id
  name                            = "${local.name}-aws-${each.key}"
  region                          = var.region
  vpn_gateway                     = google_compute_ha_vpn_gateway.this.id
  vpn_gateway_interface           = each.value.gcp_interface
  peer_external_gateway           = google_compute_external_vpn_gateway.aws[0].id
  peer_external_gateway_interface = each.value.index
  shared_secret                   = var.aws_preshared_keys[each.value.index]
  router                          = google_compute_router.vpn.id
  ike_version                     = 2

  lifecycle {
    precondition {
      condition     = length(var.aws_preshared_keys) == length(var.aws_tunnels)
      error_message = "One pre-shared key per AWS tunnel (terraform-aws outputs vpn_tunnels and vpn_preshared_keys)."
    }
  }
}

resource "google_compute_router_interface" "aws" {
  for_each = local.tunnels

  project    = var.project_id
  name       = "${local.name}-aws-${each.key}"
  router     = google_compute_router.vpn.name
  region     = var.region
  ip_range   = "${each.value.cgw_inside_address}/30"
  vpn_tunnel = google_compute_vpn_tunnel.aws[each.key].name
}

resource "google_compute_router_peer" "aws" {
  for_each = local.tunnels

  project                   = var.project_id
  name                      = "${local.name}-aws-${each.key}"
  router                    = google_compute_router.vpn.name
  region                    = var.region
  interface                 = google_compute_router_interface.aws[each.key].name
  peer_ip_address           = each.value.vgw_inside_address
  peer_asn                  = each.value.bgp_asn
  advertised_route_priority = 100
}
