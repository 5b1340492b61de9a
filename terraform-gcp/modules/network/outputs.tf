output "network_id" {
  description = "Id of the VPC."
  value       = google_compute_network.this.id
}

output "network_name" {
  description = "Name of the VPC."
  value       = google_compute_network.this.name
}

output "subnetwork_id" {
  description = "Id of the private node subnet."
  value       = google_compute_subnetwork.private.id
}

output "subnetwork_name" {
  description = "Name of the private node subnet."
  value       = google_compute_subnetwork.private.name
}

output "pods_range_name" {
  description = "Name of the secondary range for pods."
  value       = google_compute_subnetwork.private.secondary_ip_range[0].range_name
}

output "services_range_name" {
  description = "Name of the secondary range for services."
  value       = google_compute_subnetwork.private.secondary_ip_range[1].range_name
}

output "nat_ip_addresses" {
  description = "Static egress addresses of Cloud NAT (what AWS's public endpoints see)."
  value       = google_compute_address.nat[*].address
}
