output "email" {
  description = "Email of the engine's Google service account (the KSA's iam.gke.io/gcp-service-account annotation)."
  value       = google_service_account.engine.email
}

output "name" {
  description = "Resource name of the engine's Google service account."
  value       = google_service_account.engine.name
}
