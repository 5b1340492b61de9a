variable "environment" {
  description = "Environment name (dev or prod)."
  type        = string
}

variable "project_id" {
  description = "The GCP project of the registry."
  type        = string
}

variable "region" {
  description = "Region of the repository (the cluster's, so pulls stay in the region)."
  type        = string
}

variable "node_service_account_email" {
  description = "The GKE nodes' service account, which pulls the image."
  type        = string
}

variable "rotation_period" {
  description = "Rotation period of the repository's KMS key."
  type        = string
  default     = "7776000s"
}

variable "labels" {
  description = "Labels of the repository."
  type        = map(string)
  default     = {}
}
