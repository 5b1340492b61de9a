output "repository_url" {
  description = "Where to push the image: <region>-docker.pkg.dev/<project>/ecom (the image is <url>/ecom:<tag>)."
  value       = "${google_artifact_registry_repository.ecom.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.ecom.repository_id}"
}
