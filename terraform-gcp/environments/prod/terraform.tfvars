environment = "prod"
project_id  = "ecom-prod-analytics"
region      = "europe-west1"
aws_region  = "eu-west-1"

# Disjoint from both AWS VPCs (dev 10.10.0.0/16, prod 10.20.0.0/16) and the other GCP
# environment: the node subnet and pods range are routed to AWS over the VPN.
subnet_cidr            = "10.40.0.0/20"
pods_cidr              = "10.44.0.0/14"
services_cidr          = "10.48.0.0/20"
master_ipv4_cidr_block = "172.16.0.16/28"

# Operators and the ArgoCD egress addresses (the EKS NAT gateways); replace with the real ones.
master_authorized_networks = [
  {
    cidr_block   = "203.0.113.16/28"
    display_name = "operators"
  },
]

release_channel     = "STABLE"
rbac_security_group = "gke-security-groups@ecom.example.com"
machine_type        = "e2-standard-4"
min_node_count      = 1
max_node_count      = 3
deletion_protection = true
image_tag           = "0.1.0"

# Site-to-site HA VPN to the AWS VPC (MSK's private brokers): two passes with terraform-aws,
# see ../../README.md "Cross-cloud VPN".
cross_cloud_vpn = true
