locals {
  name = "ecom-${var.environment}"
}

resource "google_compute_network" "this" {
  project                         = var.project_id
  name                            = "${local.name}-vpc"
  auto_create_subnetworks         = false
  routing_mode                    = "REGIONAL"
  delete_default_routes_on_create = false
}

# Private subnet of the GKE nodes: pods and services in secondary ranges (VPC-native cluster),
# Private Google Access for Google APIs without external IPs, flow logs on.
resource "google_compute_subnetwork" "private" {
  project                  = var.project_id
  name                     = "${local.name}-gke-nodes"
  region                   = var.region
  network                  = google_compute_network.this.id
  ip_cidr_range            = var.subnet_cidr
  private_ip_google_access = true

  secondary_ip_range {
    range_name    = "pods"
    ip_cidr_range = var.pods_cidr
  }

  secondary_ip_range {
    range_name    = "services"
    ip_cidr_range = var.services_cidr
  }

  log_config {
    aggregation_interval = "INTERVAL_5_SEC"
    flow_sampling        = 0.5
    metadata             = "INCLUDE_ALL_METADATA"
  }
}

# Private nodes have no external IP: Cloud NAT gives them egress to the AWS APIs (STS,
# DynamoDB) and the image registries, from static addresses. MSK's private brokers are reached
# over the cross-cloud VPN (../vpn), whose BGP routes to the AWS VPC bypass NAT.
resource "google_compute_address" "nat" {
  count        = var.nat_ip_count
  project      = var.project_id
  name         = "${local.name}-nat-${count.index}"
  region       = var.region
  address_type = "EXTERNAL"
  network_tier = "PREMIUM"
}

resource "google_compute_router" "this" {
  project = var.project_id
  name    = "${local.name}-router"
  region  = var.region
  network = google_compute_network.this.id
}

resource "google_compute_router_nat" "this" {
  project                            = var.project_id
  name                               = "${local.name}-nat"
  router                             = google_compute_router.this.name
  region                             = var.region
  nat_ip_allocate_option             = "MANUAL_ONLY"
  nat_ips                            = google_compute_address.nat[*].self_link
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.private.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# Ingress: everything is denied (priority 65000, logged) except what GKE needs. GKE also
# creates its own rules for the cluster at priority 1000; these make the intent explicit.
resource "google_compute_firewall" "deny_all_ingress" {
  project       = var.project_id
  name          = "${local.name}-deny-all-ingress"
  network       = google_compute_network.this.id
  direction     = "INGRESS"
  priority      = 65000
  source_ranges = ["0.0.0.0/0"]

  deny {
    protocol = "all"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# The control plane reaches the kubelets (10250) and admission webhooks / API services on the
# nodes and pods (443, 8443, 9443).
resource "google_compute_firewall" "allow_master" {
  project       = var.project_id
  name          = "${local.name}-allow-gke-master"
  network       = google_compute_network.this.id
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = [var.master_ipv4_cidr_block]

  allow {
    protocol = "tcp"
    ports    = ["443", "8443", "9443", "10250"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}

# Node-to-node and pod-to-pod traffic inside the cluster (NetworkPolicies, enforced by
# Dataplane V2, narrow it further).
resource "google_compute_firewall" "allow_intra_cluster" {
  project       = var.project_id
  name          = "${local.name}-allow-intra-cluster"
  network       = google_compute_network.this.id
  direction     = "INGRESS"
  priority      = 1000
  source_ranges = [var.subnet_cidr, var.pods_cidr]

  allow {
    protocol = "tcp"
  }

  allow {
    protocol = "udp"
  }

  allow {
    protocol = "icmp"
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
