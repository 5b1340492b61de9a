# The engine's image registry on GCP. GKE's nodes pull from here (the same image as ECR's,
# pushed to both: DEPLOY.md), so the cluster needs no AWS credential to pull. Tags are
# immutable, as in ECR, so a tag always names one digest; the repository is encrypted with its
# own Cloud KMS key.
data "google_project" "this" {
  project_id = var.project_id
}

resource "google_kms_key_ring" "registry" {
  project  = var.project_id
  name     = "ecom-${var.environment}-registry"
  location = var.region
}

resource "google_kms_crypto_key" "registry" {
  name            = "ecom-${var.environment}-registry"
  key_ring        = google_kms_key_ring.registry.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.rotation_period

  lifecycle {
    prevent_destroy = true
  }
}

# Artifact Registry's service agent encrypts and decrypts the repository's blobs.
resource "google_kms_crypto_key_iam_member" "registry_agent" {
  crypto_key_id = google_kms_crypto_key.registry.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
}

resource "google_artifact_registry_repository" "ecom" {
  project       = var.project_id
  location      = var.region
  repository_id = "ecom"
  description   = "The ecom image (the stream engine's pods pull it)"
  format        = "DOCKER"
  kms_key_name  = google_kms_crypto_key.registry.id
  labels        = var.labels

  docker_config {
    immutable_tags = true
  }

  depends_on = [google_kms_crypto_key_iam_member.registry_agent]
}

# The nodes pull, nothing more.
resource "google_artifact_registry_repository_iam_member" "nodes" {
  project    = var.project_id
  location   = google_artifact_registry_repository.ecom.location
  repository = google_artifact_registry_repository.ecom.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${var.node_service_account_email}"
}
