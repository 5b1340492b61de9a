output "crypto_key_id" {
  description = "Id of the GKE secrets key, available once the GKE service agent may use it."
  value       = google_kms_crypto_key.gke_secrets.id
  depends_on  = [google_kms_crypto_key_iam_member.gke_service_agent]
}

output "key_ring_id" {
  description = "Id of the key ring."
  value       = google_kms_key_ring.this.id
}
