variable "environment" {
  description = "Environment name (dev or prod)."
  type        = string
}

variable "project_id" {
  description = "GCP project of the key ring."
  type        = string
}

variable "region" {
  description = "Location of the key ring (the cluster's region: GKE needs the key in the same location)."
  type        = string
}

variable "rotation_period" {
  description = "Automatic rotation period of the key."
  type        = string
  default     = "7776000s"
}
