# The stream engine's Google identity: ecom-stream-engine@<project>.iam.gserviceaccount.com.
resource "google_service_account" "engine" {
  project      = var.project_id
  account_id   = "ecom-stream-engine"
  display_name = "ecom stream engine (GKE workload ${var.namespace}/${var.service_account_name})"
}

# Workload Identity: only the KSA ecom/stream-engine may act as this service account.
resource "google_service_account_iam_member" "workload_identity" {
  service_account_id = google_service_account.engine.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.workload_pool}[${var.namespace}/${var.service_account_name}]"
}

# Its only Google roles: write logs and metrics.
resource "google_project_iam_member" "engine" {
  for_each = toset(["roles/logging.logWriter", "roles/monitoring.metricWriter"])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.engine.email}"
}
