output "cluster_name" {
  description = "Name of the cluster."
  value       = google_container_cluster.this.name
}

output "cluster_id" {
  description = "Id of the cluster."
  value       = google_container_cluster.this.id
}

output "location" {
  description = "Location (region) of the cluster."
  value       = google_container_cluster.this.location
}

output "endpoint" {
  description = "Address of the control plane."
  value       = google_container_cluster.this.endpoint
}

output "ca_certificate" {
  description = "Cluster CA certificate (base64)."
  value       = google_container_cluster.this.master_auth[0].cluster_ca_certificate
}

output "workload_pool" {
  description = "Workload Identity pool of the cluster."
  value       = google_container_cluster.this.workload_identity_config[0].workload_pool
}

output "issuer_url" {
  description = "OIDC issuer of the cluster's Kubernetes service-account tokens."
  value       = "https://container.googleapis.com/v1/projects/${var.project_id}/locations/${google_container_cluster.this.location}/clusters/${google_container_cluster.this.name}"
}

output "node_service_account_email" {
  description = "Service account of the nodes."
  value       = google_service_account.nodes.email
}

output "node_pool_name" {
  description = "Name of the managed node pool."
  value       = google_container_node_pool.primary.name
}
